"""Solve a part-3 mission (the scaling wall): Dinkelbach over the MILP of
:mod:`trainwall.optimizer.scaling_wall`, certified by the numpy enumeration of every
(mode, micro-batch count), with each wall lifted in turn to see which binds."""

from __future__ import annotations

import time

from trainwall.challenges import plans
from trainwall.challenges.quantities import objective_value
from trainwall.challenges.solution import MissionSolution, alternatives, certification, wall_slack
from trainwall.optimizer.highs import Status


def solve_scaling_wall(mission) -> MissionSolution:
    from trainwall.challenges.problems import modes_space, scaling_problem
    from trainwall.optimizer import certify
    from trainwall.optimizer.costmodel import evaluate
    from trainwall.optimizer.scaling_wall import ScalingWallModel

    start = time.perf_counter()
    problem, invalid = scaling_problem(mission)
    modes = problem.modes
    model = ScalingWallModel(problem)
    sol = model.solve()
    solve_s = time.perf_counter() - start
    exhaustive = certify.scaling_wall(problem)
    walls = list(mission.constraints)

    extra = {"search": {"configurations": modes_space(mission), "modes": len(modes), "invalid_modes": invalid,
                        "dinkelbach_iterations": sol.iterations, "milp_solves": sol.solves}}
    if sol.status is not Status.OPTIMAL:
        conflicts = tuple(w for w in walls if model.lifting_improves(w, None))
        agrees = not exhaustive.feasible
        return MissionSolution(mission, sol.status, None, None, None, None, (), {}, solve_s, model.build_s, None,
                               agrees, certification(exhaustive, agrees), conflicts, extra)
    choices = modes[sol.mode].choices
    config = plans.decided(mission, choices, sol.micro_batches, label=f"{mission.reference} optimum")
    metrics = evaluate(config)
    binding = [wall for wall in walls if model.lifting_improves(wall, sol.value)]
    def solve_once():
        second = model.solve()
        return None if second.status is not Status.OPTIMAL else (
            second.mode, {**modes[second.mode].choices, "training.micro_batches": second.micro_batches}, second.value)

    extra.update(alternatives(mission, model, sol.mode, {**choices, "training.micro_batches": sol.micro_batches},
                              sol.value, solve_once))
    mem = metrics.memory
    slack = {"memory": wall_slack("memory", mem.total, mem.capacity),
             "network": wall_slack("network", metrics.network_utilization, 1.0)}
    if "deadline" in walls:
        slack["deadline"] = wall_slack("deadline", metrics.training.days, mission.limits.days)
    if "power" in walls:
        slack["power"] = wall_slack("power", metrics.power.average_w, metrics.power.budget_w)
    if mission.objective.target is not None:
        slack["mfu_target"] = wall_slack("mfu_target", metrics.mfu, mission.objective.target)
    value = objective_value(mission.objective.quantity, config, metrics)    # the cost model's own, at the optimum
    agrees = (exhaustive.feasible and exhaustive.mode == sol.mode and exhaustive.mask == (sol.micro_batches,)
              and abs(exhaustive.objective - value) <= 1e-12 * value)
    data = config.model_dump(exclude_none=True)
    # a submission's [configuration] as it stands: the degrees set the device count (metrics.devices)
    configuration_out = {"training": data["training"], "data": data["data"]}
    return MissionSolution(mission, Status.OPTIMAL, configuration_out, metrics, value, None, tuple(binding),
                           slack, solve_s, model.build_s, sol.mip_gap, agrees and not mission.violations(metrics),
                           certification(exhaustive, agrees), (), extra)
