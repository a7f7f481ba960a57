"""A mission as a search problem: its modes built into plans (:mod:`~trainwall.challenges.plans`),
costed by the cost model (:mod:`~trainwall.optimizer.coefficients`) and handed to the
formulations as numbers.

A mode the mission lists but the cost model refuses (a decision value that breaks a
configuration rule) is the mission's mistake in parts 1 and 2 - every listed combination
must be a plan - and raises :class:`~trainwall.core.errors.MissionError`. In part 3 the
degrees combine freely and a combination that does not divide the model, leaves the
device limits or exceeds the global-batch limit is simply not a plan: it is counted
(``invalid``), not raised.
"""

from __future__ import annotations

import dataclasses

from trainwall.challenges import plans
from trainwall.core.config import parse_config
from trainwall.core.errors import InputError, MissionError
from trainwall.optimizer.coefficients import mode_table, pipeline_rates, scaling_mode
from trainwall.optimizer.pipeline_race import MODE_WALLS, PipelineMode, PipelineRaceProblem
from trainwall.optimizer.scaling_wall import ScalingProblem
from trainwall.optimizer.state_audit import StateAuditProblem
from trainwall.optimizer.walls import demand_factor


def _refused_mode(mission, exc: InputError, choices: dict) -> MissionError:
    """A mode the cost model refuses, blamed on the mission: on its decisions where the refused
    field is one, else on its scenario."""
    where = "decisions" if exc.field in choices else "scenario"
    return MissionError.of(mission.reference, exc, where, f"the mode {choices}")


def _mode_plan(mission, choices: dict, micro_batches: int | None = None, **extra):
    """The plan of one listed mode; a refusal is the mission's mistake."""
    try:
        return plans.decided(mission, {**choices, **extra}, micro_batches)
    except InputError as exc:
        raise _refused_mode(mission, exc, choices) from None


def state_audit_problem(mission) -> StateAuditProblem:
    """Part 1: one table of layer coefficients per mode."""
    tables = []
    for choices in mission.modes():
        config = _mode_plan(mission, choices)
        every_layer = _mode_plan(mission, choices, **{"training.trainable": "all"}) if mission.select_layers else config
        try:
            tables.append(mode_table(config, every_layer, choices))
        except InputError as exc:
            raise _refused_mode(mission, exc, choices) from None
    return StateAuditProblem(tuple(tables), tuple(mission.constraints), mission.select_layers,
                             mission.objective.quantity, mission.objective.sense == "maximize")


def pipeline_race_problem(mission) -> PipelineRaceProblem:
    """Part 2: each mode's input-pipeline rates (at the range's least value) and the walls it breaks."""
    from trainwall.optimizer.costmodel import evaluate

    field, span = mission.integer_decision
    modes = []
    for choices in mission.modes():
        config = _mode_plan(mission, choices, **{field: span.min})
        metrics = evaluate(config)
        broken = tuple(c.wall for c in mission.checks(metrics) if not c.satisfied and c.wall in MODE_WALLS)
        rates = pipeline_rates(config, metrics)
        factor = demand_factor(metrics.loading_overlaps, mission.max_data_wait)
        if factor is None:
            broken += ("starvation",)         # serial loading, and the mission allows no wait at all
        else:
            rates = dataclasses.replace(rates, demand=rates.demand * factor)
        modes.append(PipelineMode(dict(choices), rates, broken))
    workers = field == "data.workers"
    hi = max(span.min, min(span.max, max(p.rates.cores for p in modes))) if workers else span.max

    def point_feasible(c: int, n: int) -> bool:
        plan = _mode_plan(mission, modes[c].choices, **{field: n})
        return all(check.satisfied for check in mission.checks(evaluate(plan)))

    return PipelineRaceProblem(tuple(modes), span.min, hi, span.max, workers, tuple(mission.constraints),
                               point_feasible)


def scaling_problem(mission) -> tuple[ScalingProblem, int]:
    """Part 3: every valid mode with its step structure, and how many combinations were not valid."""
    _, span = mission.integer_decision
    limits = mission.limits
    modes, invalid = [], 0
    for choices in mission.modes():
        data = plans.decided_data(mission, choices)
        mode = None
        if limits.min_devices <= plans.layout_devices(data) <= limits.devices:
            # the mode at the least micro-batch count its schedule takes, validated
            plans.set_micro_batches(data, max(span.min, data["training"]["pipeline_parallel"]))
            try:
                config = parse_config(data, f"{mission.reference} with {choices}")
                mode = scaling_mode(config, choices, span.min, span.max, limits.global_batch, limits.days)
            except InputError:
                mode = None
        if mode is None:
            invalid += 1
        else:
            modes.append(mode)
    return ScalingProblem(tuple(modes), tuple(mission.constraints), mission.objective.target or 0.0,
                          mission.max_data_wait, mission.objective.quantity, limits.days), invalid


def modes_space(mission) -> int:
    """Configurations the mission's decisions span: listed combinations x the range decision."""
    _, span = mission.integer_decision
    return len(mission.modes()) * (span.max - span.min + 1)
