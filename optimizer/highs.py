"""Our adapter over Pyomo's persistent HiGHS interface (``pyomo.contrib.solver``).

A formulation builds its Pyomo model once and re-solves it through :class:`Solver`
after changing mutable parameters or fixing variables; the adapter maps every
termination condition Pyomo reports to our :class:`Status`, so callers never see a
bare "it failed". Reference solves are deterministic: one thread, zero relative and
absolute MIP gap, HiGHS's fixed random seed (docs/DESIGN.md, "Optimisation").

Pyomo is imported lazily (on the first solve): the CLI's other commands stay fast.
"""

from __future__ import annotations

import enum
import sys
import time
from dataclasses import dataclass

from trainwall.optimizer.walls import TOLERANCE


class Status(enum.Enum):
    """How a solve ended, in our words (linopy's habit: a typed status, never a string)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    LIMIT = "limit"      # time or iteration limit: the incumbent, if any, is not proven optimal
    ERROR = "error"


#: pyomo.contrib.solver TerminationCondition name -> our status.
_TERMINATION = {
    "convergenceCriteriaSatisfied": Status.OPTIMAL,
    "provenInfeasible": Status.INFEASIBLE,
    "locallyInfeasible": Status.INFEASIBLE,
    "infeasibleOrUnbounded": Status.INFEASIBLE,  # our models are bounded: every variable has finite bounds
    "unbounded": Status.UNBOUNDED,
    "maxTimeLimit": Status.LIMIT,
    "iterationLimit": Status.LIMIT,
    "objectiveLimit": Status.LIMIT,
    "minStepLength": Status.LIMIT,
    "interrupted": Status.LIMIT,
    "error": Status.ERROR,
    "licensingProblems": Status.ERROR,
    "emptyModel": Status.ERROR,
    "unknown": Status.ERROR,
}


#: Relative differences this small are rounding: eight units in the last place of a double.
ROUNDING = 8 * sys.float_info.epsilon


@dataclass(frozen=True)
class SolveResult:
    status: Status
    objective: float | None
    bound: float | None
    seconds: float
    termination: str     # Pyomo's own name for it, kept for the record

    @property
    def mip_gap(self) -> float | None:
        """|bound - incumbent| / max(1, |incumbent|); a gap within a few units of the last place
        (the bound and the incumbent summed in different orders) is 0: no plan lies inside it."""
        if self.objective is None or self.bound is None:
            return None
        gap = abs(self.bound - self.objective) / max(1.0, abs(self.objective))
        return 0.0 if gap <= ROUNDING else gap


#: Feasibility tolerances of reference solves. HiGHS's defaults (1e-7 for rows, 1e-6 for
#: a MIP's rows) would admit a configuration whose MFU lies 1e-6 below a level the
#: lexicographic stages hold; the models are scaled to O(1), so the walls' one tolerance
#: (:data:`trainwall.optimizer.walls.TOLERANCE`, 1e-9) is attainable, and the MILP draws
#: the line where the cost model and the certifiers draw it.
TOLERANCES = {"primal_feasibility_tolerance": TOLERANCE, "mip_feasibility_tolerance": TOLERANCE}

#: Bits of HiGHS's ``presolve_rule_off`` (numbered as HiGHS 1.16 prints them with
#: ``log_dev_level``; tests/test_highs_presolve.py checks the numbering against the installed
#: HiGHS). Rule 12, the Aggregator, never returned on some part-3 models: tiny/3 variants (4
#: boards, a 50-60 % busy channel, 248, 296 or 416 samples per round, an 8-9 % target) stayed
#: in presolve for more than 500 s, and HiGHS does not check its time limit there
#: (ERGO-Code/HiGHS issues 1501 and 2226 report presolve outliving the limit). Switching the
#: rule off (and it alone was enough on each) leaves its substitutions to branch and bound:
#: the optimum and its proof are the same.
PRESOLVE_RULE_BITS = {"aggregator": 12, "probing": 15}
#: The rules every solve switches off.
ALWAYS_OFF = ("aggregator",)


def presolve_rules_off(*rules: str) -> int:
    """The ``presolve_rule_off`` mask for ``rules`` and :data:`ALWAYS_OFF`."""
    return sum(1 << PRESOLVE_RULE_BITS[rule] for rule in sorted(set(rules) | set(ALWAYS_OFF)))


class Solver:
    """One persistent HiGHS instance bound to one Pyomo model."""

    def __init__(self, model, time_limit: float = 60.0, parameters_only: bool = False,
                 options: dict | None = None):
        """``options``: HiGHS options of this formulation (speed only: never a tolerance or a gap;
        a ``presolve_rule_off`` mask comes from :func:`presolve_rules_off`).
        ``parameters_only``: the caller promises that between solves only mutable
        parameters, variable bounds and the objective change (no constraint activated,
        added or removed, no variable fixed), so the persistent interface skips
        re-scanning the constraints - the difference between 0.1 s and a few ms per re-solve."""
        from pyomo.contrib.solver.solvers.highs import Highs

        self.model = model
        self._highs = Highs()
        self._time_limit = time_limit
        self._options = {"random_seed": 0, "output_flag": False, "presolve_rule_off": presolve_rules_off(),
                         **(options or {}), **TOLERANCES}
        self._updates = ({"check_for_new_or_removed_constraints": False, "check_for_new_or_removed_vars": False,
                          "check_for_new_or_removed_params": False, "update_constraints": False,
                          "update_vars": True, "update_named_expressions": False, "update_parameters": True,
                          "check_for_new_objective": False, "update_objective": True}
                         if parameters_only else {})
        self._added = False

    def constraints_added(self) -> None:
        """The caller added constraints (a cut) since the last solve: the next solve looks for them."""
        self._added = True

    def solve(self) -> SolveResult:
        """Solve (or re-solve) the model; on OPTIMAL / LIMIT with an incumbent, load it."""
        start = time.perf_counter()
        try:
            updates = {**self._updates, "check_for_new_or_removed_constraints": True} if self._added else self._updates
            self._added = False
            res = self._highs.solve(self.model, threads=1, rel_gap=0.0, abs_gap=0.0, time_limit=self._time_limit,
                                    load_solutions=False, raise_exception_on_nonoptimal_result=False,
                                    auto_updates=updates, solver_options=self._options)
        except Exception as exc:  # HiGHS or Pyomo raised: report it, never crash the caller
            return SolveResult(Status.ERROR, None, None, time.perf_counter() - start, f"error: {exc}")
        name = res.termination_condition.name
        status = _TERMINATION.get(name, Status.ERROR)
        objective = res.incumbent_objective
        if objective is not None and status in (Status.OPTIMAL, Status.LIMIT):
            res.solution_loader.load_vars()
        bound = res.objective_bound
        return SolveResult(status, objective, bound if bound is not None and abs(bound) < float("inf") else None,
                           time.perf_counter() - start, name)


def pin_wall(relax, wall: str, lifted: bool, imposed) -> None:
    """Pin wall ``wall``'s relaxation variable r_w by its bounds: 1 (lifted) when asked or when the
    problem does not impose the wall, else 0 (held). Only bounds move, so a persistent solver
    re-solves without rebuilding."""
    value = float(lifted or wall not in imposed)
    relax[wall].setlb(value)
    relax[wall].setub(value)
