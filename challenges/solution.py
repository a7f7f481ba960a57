"""What solving a mission gives: :class:`MissionSolution` (``solve --json``), the runner-up
and next best plans (:func:`alternatives`) and the certificate's wording.

Every part's driver (:mod:`trainwall.challenges.solve`, :mod:`trainwall.challenges.scaling`)
returns this one type.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from trainwall.optimizer.highs import Status


@dataclass(frozen=True)
class MissionSolution:
    mission: object
    status: Status
    configuration: dict | None
    metrics: object | None
    objective: float | None
    memory_fraction: float | None
    binding: tuple[str, ...]
    slack: dict
    solve_s: float
    build_s: float
    mip_gap: float | None
    certified: bool
    certification: str
    conflicts: tuple[str, ...] = ()
    extra: dict | None = None          # part-specific findings (the longest pole, Dinkelbach iterations)

    def to_dict(self) -> dict:
        m = self.mission
        return {
            "mission": m.id,
            "title": m.rendered().title,
            "status": self.status.value,
            "objective": {"name": m.objective.quantity, "sense": m.objective.sense, "value": self.objective},
            "configuration": self.configuration,
            "metrics": self.metrics.to_dict() if self.metrics is not None else None,
            "binding_constraints": list(self.binding),
            "slack": self.slack,
            "conflicts": list(self.conflicts),
            **(self.extra or {}),
            "lock_answers": m.lock_answers(),
            "solver": {"name": "highs", "time_s": self.solve_s, "build_s": self.build_s, "mip_gap": self.mip_gap,
                       "certified": self.certified, "certification": self.certification},
        }


def wall_slack(wall: str, value: float, limit: float) -> dict:
    """A wall's value, limit and slack (positive on the allowed side), for ``solve --json``."""
    from trainwall.optimizer.walls import WALLS

    return {"value": value, "limit": limit, "slack": WALLS[wall].slack(value, limit)}


@contextmanager
def excluding(model, *modes: int):
    """The formulation with ``modes`` forbidden (each formulation's ``allow``), for the runner-up."""
    for mode in modes:
        model.allow(mode, False)
    try:
        yield
    finally:
        for mode in modes:
            model.allow(mode)


#: Two objectives this close (relative) tie: the plans differ only in choices the objective
#: does not see (gradient clipping below the critical batch), and the tie-break picks.
TIE = 1e-9
#: How many tied modes :func:`alternatives` excludes before it stops looking.
MAX_TIED_MODES = 16


def alternatives(mission, model, best_mode: int, best: dict, best_value: float, solve_once) -> dict:
    """The runner-up (the best plan in any other mode) and the next best: the best plan whose
    objective is strictly worse than the optimum's, found by excluding the optimum's mode and
    then each mode that ties it. ``solve_once()`` gives the current formulation's optimum as
    (mode, choices, objective), or None when it has none.

    ``next_best`` is None when no strictly worse plan exists; its objective is None when more
    than :data:`MAX_TIED_MODES` modes tie (the search stopped)."""
    excluded, first, next_best = [best_mode], None, None
    while True:
        with excluding(model, *excluded):
            found = solve_once()
        if found is None:
            break
        mode, choices, value = found
        first = first or (choices, value)
        if abs(value - best_value) > TIE * abs(best_value):
            next_best = runner_up(mission, best, choices, value)
            break
        if len(excluded) > MAX_TIED_MODES:
            next_best = {"changes": None, "objective": None}
            break
        excluded.append(mode)
    return {"runner_up": runner_up(mission, best, *first) if first else None,
            "next_best": None if next_best is None else {**next_best, "tied_modes": len(excluded) - 1}}


def runner_up(mission, best: dict, choices: dict | None, objective: float | None) -> dict | None:
    """The best plan with other choices than the optimum's: what differs and its objective."""
    if choices is None or objective is None:
        return None
    return {"changes": {k: v for k, v in choices.items() if best.get(k) != v}, "objective": objective}


def certification(exhaustive, agrees: bool) -> str:
    verdict = "agrees" if agrees else "DISAGREES"
    if exhaustive.method == "dynamic programming":
        return (f"a Pareto dynamic programme over all {exhaustive.configurations:.3g} configurations "
                f"(every selection that can be optimal, evaluated exactly, in the objective's order) {verdict}")
    return f"exhaustive evaluation of {exhaustive.configurations:,} configurations (in the objective's order) {verdict}"
