"""Feedback that points at a plan's actual shortfall, never at the optimum's values.

For an infeasible plan: each broken wall, what breaks it, and the levers this mission
opens against it. For a feasible plan short of the certified optimum, the plan is
compared with the optimum decision by decision:

* each decision whose value differs is tried alone at the optimum's value (the rest of the
  plan kept), then each pair of them; the smallest changes that give a feasible, better plan
  are the *levers that are short*, named with their direction for numbers ("your global
  batch is below what the optimum uses") or as "another choice" for names - never a value;
* if no one or two changes help, the decisions in which the plans differ are named together;
* a wall that binds at the optimum is mentioned only where the plan keeps more slack on
  it than the optimum does (beyond the walls' one tolerance): "the optimum uses room on
  the memory wall that your plan leaves".

Levers come from the mission's own decisions (:func:`levers`), so a mission that offers no
bf16 or no pipeline is never told about them.
"""

from __future__ import annotations

import itertools

from trainwall.optimizer.walls import TOLERANCE, WALLS

#: Readable names of decisions where the field name alone would not be.
_LABELS = {"training.data_parallel": "data-parallel degree (devices averaging together)",
           "training.global_batch": "global batch", "training.trainable": "layers that train",
           "training.local_steps": "local steps between averages", "data.echo": "data-echoing factor"}


def label(field: str) -> str:
    return _LABELS.get(field, field.rpartition(".")[2].replace("_", " "))


def levers(mission, wall: str) -> str:
    """The levers against ``wall`` that this mission opens, as a sentence ("" if none)."""
    opened = set(mission.decisions) | ({"select_layers"} if mission.select_layers else set())
    names = [text for decision, text in WALLS[wall].levers if decision in opened]
    return f" Levers this mission opens: {', '.join(names)}." if names else ""


def infeasible(mission, walls) -> list[str]:
    return [f"The plan breaks the {w.wall} wall: {w.message}.{levers(mission, w.wall)}"
            for w in walls if not w.satisfied]


def short_of_optimum(mission, best, chosen: dict, config, value: float, walls) -> list[str]:
    """A feasible plan short of the optimum: the levers that are short, then the walls with room.
    ``chosen`` is the plan's dotted decisions as submitted, ``config`` the plan it gives."""
    from trainwall.challenges.plans import field_value

    optimum = _optimum_choices(mission, best)
    mine = {f: field_value(config, f) for f in optimum}
    differing = [f for f in optimum if not _same(mine[f], optimum[f])]
    for size in (1, 2):         # the smallest sets of decisions that, changed together, improve the plan
        found = [combo for combo in itertools.combinations(differing, size)
                 if _improves(mission, {**chosen, **{f: optimum[f] for f in combo}}, value)]
        if found:
            return [_lever_line(combo, mine, optimum) for combo in found] + _room_on_binding_walls(mission, best, walls)
    out = ([(f"No one or two of your decisions, changed alone, improve the plan: the optimum differs in your "
            f"{', '.join(label(f) for f in differing)} together.")] if differing else [])
    return out + _room_on_binding_walls(mission, best, walls)


def _lever_line(combo: tuple[str, ...], mine: dict, optimum: dict) -> str:
    parts = []
    for field in combo:
        if _number(mine[field]) and _number(optimum[field]):
            side = "below" if mine[field] < optimum[field] else "above"
            parts.append(f"your {label(field)} is {side} what the optimum uses")
        else:
            parts.append(f"the optimum makes another choice of {label(field)}")
    change = "changing it" if len(combo) == 1 else "changing these together"
    text = " and ".join(parts)
    return f"{text[0].upper()}{text[1:]}: {change} improves your plan."


def _room_on_binding_walls(mission, best, walls) -> list[str]:
    theirs = {w.wall: w for w in _optimum_checks(mission, best)}
    out = []
    for w in walls:
        other = theirs.get(w.wall)
        if w.wall not in best.binding or other is None:
            continue
        if w.slack > other.slack + TOLERANCE * max(abs(w.limit), abs(other.limit), 1e-300):
            out.append(f"The {w.wall} wall binds at the optimum; your plan leaves room on it that the optimum uses.")
    return out


def _optimum_choices(mission, best) -> dict:
    """The optimum's value of each field this mission lets a plan choose (from its configuration)."""
    from trainwall.challenges.plans import stated_fields

    config = best.configuration or {}
    out = {}
    for field in stated_fields(mission):
        section, _, name = field.partition(".")
        if name in config.get(section, {}):
            out[field] = config[section][name]
    return out


def _optimum_checks(mission, best):
    from trainwall.challenges import plans
    from trainwall.optimizer.costmodel import evaluate

    if not best.configuration:
        return []
    return mission.checks(evaluate(plans.from_configuration(mission, best.configuration,
                                                            f"{mission.reference} optimum")))


def _improves(mission, changed: dict, current: float) -> bool:
    """The plan ``changed`` (dotted decisions) is valid, feasible and strictly better than ``current``."""
    from trainwall.challenges.quantities import objective_value
    from trainwall.challenges.submission import plan
    from trainwall.core.errors import InputError
    from trainwall.optimizer.costmodel import evaluate

    try:
        config = plan(mission, changed, "a lever probe")
        metrics = evaluate(config)
    except (InputError, ArithmeticError):
        return False            # that change alone is not a valid plan (e.g. the batch no longer divides)
    if not all(w.satisfied for w in mission.checks(metrics)):
        return False
    better = objective_value(mission.objective.quantity, config, metrics)
    margin = TOLERANCE * max(abs(current), 1e-300)
    return better > current + margin if mission.objective.sense == "maximize" else better < current - margin


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) else a == b
