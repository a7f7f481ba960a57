"""Solve a mission: build its formulation, solve it, certify it, and say which walls bind.

``solve(mission)`` returns a :class:`MissionSolution` whose ``to_dict`` has the keys of
docs/INTERFACE.md ("solve --json"). A wall *binds* when dropping it would give a better
objective: each is lifted in turn (:data:`trainwall.optimizer.walls.WALLS` says how) by
the bounds of one persistent formulation, which is re-solved. ``certified`` is True
when the exhaustive evaluator enumerated the whole space and found the same optimum
(objective, mode and layers).
"""

from __future__ import annotations

import time
from trainwall.challenges import plans
from trainwall.challenges.solution import MissionSolution, alternatives, certification, wall_slack
from trainwall.optimizer.highs import Status


def solve(mission) -> MissionSolution:
    """The proven optimum of a mission, its binding walls and its certification."""
    if mission.part == 2:
        return _solve_pipeline_race(mission)
    if mission.part == 3:
        from trainwall.challenges.scaling import solve_scaling_wall

        return solve_scaling_wall(mission)
    return _solve_state_audit(mission)


def _improves(sense: str, lifted: float | None, best: float) -> bool:
    """A lifted wall binds when the objective it then reaches beats the optimum's."""
    return lifted is not None and (lifted > best if sense == "maximize" else lifted < best)


def _solve_state_audit(mission) -> MissionSolution:
    from trainwall.challenges.problems import state_audit_problem
    from trainwall.optimizer import certify
    from trainwall.optimizer.costmodel import evaluate
    from trainwall.optimizer.state_audit import StateAuditModel

    start = time.perf_counter()
    problem = state_audit_problem(mission)
    tables = problem.tables
    model = StateAuditModel(problem)
    sol = model.solve()
    solve_s = time.perf_counter() - start
    liftable = [w for w in mission.constraints if w != "flash" or any(tb.mcu for tb in tables)]
    exhaustive = certify.state_audit(problem)
    if sol.status is not Status.OPTIMAL:
        conflicts = tuple(w for w in liftable if model.lifted_optimum(w) is not None)
        agrees = not exhaustive.feasible
        return MissionSolution(mission, sol.status, None, None, None, None, (), {}, solve_s, sol.build_s, None,
                               agrees, certification(exhaustive, agrees), conflicts)
    table = tables[sol.mode]
    choices = dict(table.choices)
    if mission.select_layers:
        choices["training.trainable"] = [i for i, on in enumerate(sol.mask) if on]
    data = plans.decided_data(mission, choices)
    metrics = evaluate(plans.decided(mission, choices, label=f"{mission.reference} optimum"))
    binding = tuple(w for w in liftable if _improves(mission.objective.sense, model.lifted_optimum(w), sol.objective))

    def solve_once():
        second = model.solve()
        return None if second.status is not Status.OPTIMAL else (second.mode, tables[second.mode].choices,
                                                                   second.objective)

    extra = alternatives(mission, model, sol.mode, table.choices, sol.objective, solve_once)
    slack = {"memory": wall_slack("memory", metrics.memory.total, metrics.memory.capacity)}
    if table.mcu:
        slack["flash"] = wall_slack("flash", metrics.memory.flash, metrics.memory.flash_capacity)
    agrees = (exhaustive.feasible and exhaustive.mode == sol.mode
              and exhaustive.mask == sol.mask and exhaustive.objective == sol.objective)
    return MissionSolution(mission, Status.OPTIMAL, {"training": dict(data["training"]), "data": dict(data["data"])},
                           metrics, sol.objective, sol.memory_fraction, binding, slack, solve_s, sol.build_s,
                           sol.solves[0].mip_gap, agrees and metrics.feasible, certification(exhaustive, agrees),
                           (), extra)


def _solve_pipeline_race(mission) -> MissionSolution:
    from trainwall.challenges.problems import pipeline_race_problem
    from trainwall.optimizer import certify
    from trainwall.optimizer.costmodel import evaluate
    from trainwall.optimizer.pipeline_race import PipelineRaceModel

    start = time.perf_counter()
    problem = pipeline_race_problem(mission)
    modes = problem.modes
    model = PipelineRaceModel(problem)
    sol = model.solve()
    solve_s = time.perf_counter() - start
    exhaustive = certify.pipeline_race(problem)
    field, _ = mission.integer_decision
    liftable = [w for w in mission.constraints if w == "starvation" or any(w in p.walls for p in modes)]
    if sol.status is not Status.OPTIMAL:
        conflicts = tuple(w for w in liftable if model.lifted_optimum(w) is not None)
        agrees = not exhaustive.feasible
        return MissionSolution(mission, sol.status, None, None, None, None, (), {}, solve_s, sol.build_s, None,
                               agrees, certification(exhaustive, agrees), conflicts)
    choices = {**modes[sol.mode].choices, field: sol.value}
    data = plans.decided_data(mission, choices)
    metrics = evaluate(plans.decided(mission, choices, label=f"{mission.reference} optimum"))
    binding = tuple(w for w in liftable if _improves("minimize", model.lifted_optimum(w), sol.value))
    poles = {s: u for s, u in metrics.pipeline_utilization.items() if s != "compute"}
    longest = max(poles, key=poles.get)
    fed = next(c for c in mission.checks(metrics) if c.wall == "starvation")
    slack = {"starvation": wall_slack("starvation", fed.value, fed.limit),
             "memory": wall_slack("memory", metrics.memory.total, metrics.memory.capacity)}
    agrees = exhaustive.feasible and exhaustive.mode == sol.mode and exhaustive.mask == (sol.value,)

    def solve_once():
        second = model.solve()
        return None if second.status is not Status.OPTIMAL else (second.mode, modes[second.mode].choices,
                                                                   float(second.value))

    extra = {"longest_pole": {"stage": longest, "utilization": poles[longest]},
             "balance_point": {field: sol.value},
             **alternatives(mission, model, sol.mode, modes[sol.mode].choices, float(sol.value), solve_once)}
    return MissionSolution(mission, Status.OPTIMAL, {"training": dict(data["training"]), "data": dict(data["data"])},
                           metrics, float(sol.value), None, binding, slack, solve_s, sol.build_s, sol.mip_gap,
                           agrees and not mission.violations(metrics), certification(exhaustive, agrees), (), extra)
