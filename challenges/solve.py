"""Solve a mission: build its formulation, solve it, certify it, and say which walls bind.

``solve(mission)`` returns a :class:`MissionSolution` whose ``to_dict`` has the keys of
INTERFACE.md ("solve --json"). A constraint *binds* when dropping it would give a
better objective: each is relaxed in turn (its capacity raised to what no
configuration can exceed, or the stability rules lifted) and the formulation
re-solved. ``certified`` is True when the exhaustive evaluator enumerated the whole
space and found the same optimum (objective, mode and layers).
"""

from __future__ import annotations

import time
from dataclasses import replace

from trainwall.challenges.solution import MissionSolution, alternatives, certification
from trainwall.optimizer.highs import Status


def _memory_relaxed(table):
    """The table with a memory capacity no configuration can exceed."""
    worst = (sum(max(a, b) for a, b in zip(table.trained, table.frozen))
             + table.micro_batch * (sum(max(k) for k in table.kept) + max(max(r) for r in table.transient))
             + table.other)
    return replace(table, capacity=max(worst, table.capacity))


#: How each constraint is lifted to ask whether it binds.
RELAXATIONS = {"memory": _memory_relaxed,
               "flash": lambda table: replace(table, flash_capacity=max(sum(table.frozen), table.flash_capacity)),
               "stability": lambda table: replace(table, stable=True)}


def solve(mission) -> MissionSolution:
    """The proven optimum of a mission, its binding walls and its certification."""
    if mission.part == 2:
        return _solve_pipeline_race(mission)
    if mission.part == 3:
        from trainwall.challenges.scaling import solve_scaling_wall

        return solve_scaling_wall(mission)
    return _solve_state_audit(mission)


def _solve_state_audit(mission) -> MissionSolution:
    from trainwall.core.config import parse_config
    from trainwall.optimizer import certify
    from trainwall.optimizer.costmodel import evaluate
    from trainwall.optimizer.state_audit import StateAuditModel, mode_table

    start = time.perf_counter()
    tables = [mode_table(mission, choices) for choices in mission.modes()]
    model = StateAuditModel(mission, tables)
    sol = model.solve()
    solve_s = time.perf_counter() - start
    gap = sol.solves[0].mip_gap if sol.solves else None

    relaxable = [c for c in mission.constraints
                 if c != "flash" or any(tb.mcu for tb in tables)]

    exhaustive = certify.state_audit(mission, tables)
    if sol.status is not Status.OPTIMAL:
        conflicts = []
        for name in relaxable:
            relaxed = StateAuditModel(mission, [RELAXATIONS[name](tb) for tb in tables]).solve()
            if relaxed.status is Status.OPTIMAL:
                conflicts.append(name)
        agrees = not exhaustive.feasible
        return MissionSolution(mission, sol.status, None, None, None, None, (), {}, solve_s, sol.build_s, None,
                               agrees, certification(exhaustive, agrees), tuple(conflicts))

    table = tables[sol.mode]
    data = mission.config_data(choices=table.choices)
    if mission.select_layers:
        data["training"]["trainable"] = [i for i, on in enumerate(sol.mask) if on]
    config = parse_config(data, f"{mission.id} optimum")
    metrics = evaluate(config)

    binding = []
    for name in relaxable:
        relaxed = StateAuditModel(mission, [RELAXATIONS[name](tb) for tb in tables]).solve()
        better = relaxed.status is Status.OPTIMAL and (
            relaxed.objective > sol.objective if mission.objective.sense == "maximize"
            else relaxed.objective < sol.objective)
        if better:
            binding.append(name)
    def solve_once():
        second = model.solve()
        return None if second.status is not Status.OPTIMAL else (second.mode, tables[second.mode].choices,
                                                                   second.objective)

    extra = alternatives(mission, model, sol.mode, tables[sol.mode].choices, sol.objective, solve_once)
    slack = {"memory": {"value": metrics.memory.total, "limit": metrics.memory.capacity,
                        "slack": metrics.memory.capacity - metrics.memory.total}}
    if table.mcu:
        slack["flash"] = {"value": metrics.memory.flash, "limit": metrics.memory.flash_capacity,
                          "slack": metrics.memory.flash_capacity - metrics.memory.flash}
    agrees = (exhaustive.feasible and exhaustive.mode == sol.mode
              and exhaustive.mask == sol.mask and exhaustive.objective == sol.objective)
    return MissionSolution(mission, Status.OPTIMAL, {"training": dict(data["training"]), "data": dict(data["data"])},
                           metrics, sol.objective, sol.memory_fraction, tuple(binding), slack, solve_s, sol.build_s,
                           gap, agrees and metrics.feasible, certification(exhaustive, agrees), (), extra)


def _solve_pipeline_race(mission) -> MissionSolution:
    from trainwall.core.config import parse_config
    from trainwall.optimizer import certify
    from trainwall.optimizer.costmodel import evaluate
    from trainwall.optimizer.pipeline_race import MODE_WALLS, PipelineRaceModel, pipeline_mode

    start = time.perf_counter()
    modes = [pipeline_mode(mission, choices) for choices in mission.modes()]
    model = PipelineRaceModel(mission, modes)
    sol = model.solve()
    solve_s = time.perf_counter() - start
    exhaustive = certify.pipeline_race(mission, modes)
    field, _ = mission.integer_decision
    walls = [w for w in mission.constraints if w in MODE_WALLS]
    if sol.status is not Status.OPTIMAL:
        conflicts = []
        if PipelineRaceModel(mission, modes, require_balance=False).solve().status is Status.OPTIMAL:
            conflicts.append("starvation")
        if walls and PipelineRaceModel(mission, modes, allow_walls=True).solve().status is Status.OPTIMAL:
            conflicts.extend(w for w in walls if any(w in p.walls for p in modes))
        agrees = not exhaustive.feasible
        return MissionSolution(mission, sol.status, None, None, None, None, (), {}, solve_s, sol.build_s, None,
                               agrees, certification(exhaustive, agrees), tuple(conflicts))
    choices = {**modes[sol.mode].choices, field: sol.value}
    data = mission.config_data(choices=choices)
    metrics = evaluate(parse_config(data, f"{mission.id} optimum"))
    # Binding: without the balance requirement the least n would do.
    relaxed = PipelineRaceModel(mission, modes, require_balance=False).solve()
    binding = ["starvation"] if relaxed.status is Status.OPTIMAL and relaxed.value < sol.value else []
    if walls:
        lifted = PipelineRaceModel(mission, modes, allow_walls=True).solve()
        if lifted.status is Status.OPTIMAL and (lifted.value, lifted.mode) < (sol.value, sol.mode):
            binding.extend(w for w in walls if any(w in p.walls for p in modes))
    flow = metrics.pipeline
    poles = {s: u for s, u in metrics.pipeline_utilization.items() if s != "compute"}
    longest = max(poles, key=poles.get)
    slack = {"starvation": {"value": flow.rate, "limit": flow.capacities["compute"],
                            "slack": flow.rate - flow.capacities["compute"]},
             "memory": {"value": metrics.memory.total, "limit": metrics.memory.capacity,
                        "slack": metrics.memory.capacity - metrics.memory.total}}
    agrees = exhaustive.feasible and exhaustive.mode == sol.mode and exhaustive.mask == (sol.value,)
    def solve_once():
        second = model.solve()
        return None if second.status is not Status.OPTIMAL else (second.mode, modes[second.mode].choices,
                                                                   float(second.value))

    extra = {"longest_pole": {"stage": longest, "utilization": poles[longest]},
             "balance_point": {field: sol.value},
             **alternatives(mission, model, sol.mode, modes[sol.mode].choices, float(sol.value), solve_once)}
    return MissionSolution(mission, Status.OPTIMAL, {"training": dict(data["training"]), "data": dict(data["data"])},
                           metrics, float(sol.value), None, tuple(binding), slack, solve_s, sol.build_s, sol.mip_gap,
                           agrees and not mission.violations(metrics), certification(exhaustive, agrees), (), extra)
