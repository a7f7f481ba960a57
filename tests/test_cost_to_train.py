"""The dollars to train under a deadline: part 3's cost objective (optimizer/cost_to_train.py).

The optimum is checked three ways that share nothing with the MILP's cuts: a brute force
that evaluates every plan of a small mission with the cost model and the mission's own
walls, one configuration at a time; the dollars worked by hand from the question's words
(steps by McCandlish et al.'s law x the step x the devices x AWS's price); and the
exhaustive certifier's agreement on the whole cloud mission.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from pathlib import Path

import pytest

from trainwall.challenges import plans
from trainwall.challenges.mission import parse_mission
from trainwall.challenges.solve import solve
from trainwall.core.errors import InputError
from trainwall.optimizer.costmodel import evaluate

CLOUD3 = tomllib.loads(Path("challenges/cloud/3.toml").read_text())
SMALL = {"training.tensor_parallel": [8], "training.pipeline_parallel": [8, 4], "training.data_parallel": [16, 32],
         "training.micro_batch": [1, 2], "training.recompute": ["selective"], "training.gradient_clipping": [False],
         "training.zero_stage": [1], "training.micro_batches": {"min": 1, "max": 96}}


def _cost_mission(days: float | None = 300.0, decisions: dict | None = None, **limits):
    """cloud/3's scenario asking for the fewest dollars to train within ``days``."""
    raw = {k: v for k, v in CLOUD3.items() if k != "variants"}
    raw["story"] = "Train Llama-3-70B to its goal for the fewest dollars within {limits.days:g} days."
    raw["reflection"] = ["Why is the cheapest plan not the one with the most MFU?"]
    raw["objective"] = {"quantity": "dollars", "sense": "minimize"}
    raw["constraints"] = ["memory", "network", "stability", "starvation", "deadline"]
    raw["limits"] = {**CLOUD3["limits"], "days": days, **limits}
    if decisions is not None:
        raw["decisions"] = decisions
    return parse_mission(raw, "cloud/3 for the fewest dollars")


def _brute_force(mission) -> tuple[float, dict]:
    """Every plan of the mission's decisions through evaluate and the mission's walls."""
    listed = {k: v for k, v in mission.decisions.items() if isinstance(v, list)}
    span = mission.decisions["training.micro_batches"]
    best = (math.inf, None)
    for combo in itertools.product(*listed.values()):
        choices = dict(zip(listed, combo))
        for m in range(span.min, span.max + 1):
            try:
                config = plans.decided(mission, choices, m)
            except InputError:
                continue
            if not mission.limits.min_devices <= config.system.devices <= mission.limits.devices:
                continue
            if config.global_batch > mission.limits.global_batch:
                continue
            metrics = evaluate(config)
            if not mission.violations(metrics) and metrics.training.dollars < best[0]:
                best = (metrics.training.dollars, {**choices, "m": m})
    return best


def test_the_cheapest_plan_is_the_brute_forces():
    mission = _cost_mission(decisions=SMALL)
    result = solve(mission)
    dollars, plan = _brute_force(mission)
    assert result.certified
    assert result.objective == pytest.approx(dollars, rel=1e-12)
    t = result.configuration["training"]
    assert (t["pipeline_parallel"], t["data_parallel"], t["micro_batch"]) == (
        plan["training.pipeline_parallel"], plan["training.data_parallel"], plan["training.micro_batch"])
    assert t["global_batch"] == plan["m"] * t["data_parallel"] * t["micro_batch"]


def test_the_optimums_dollars_worked_by_hand():
    """15T tokens trained at the critical batch of 2048 x 8192 tokens (the budget's own batch):
    E_min = 15e12 / 2, S_min = E_min / 2^24; at the optimum's B tokens a step, S(B) = S_min
    (1 + 2^24 / B) steps of the evaluated step, on N H100s at $55.04 per 8-GPU hour."""
    result = solve(_cost_mission(decisions=SMALL))
    m, t = result.metrics, result.configuration["training"]
    tokens = t["global_batch"] * 8192
    s_min = 15e12 / 2 / 2 ** 24
    steps = s_min * (1 + 2 ** 24 / tokens)
    assert result.objective == pytest.approx(steps * m.time.step_s * m.devices * 55.04 / 8 / 3600, rel=1e-9)
    assert m.training.days <= 300


def test_the_deadline_binds_and_lifting_it_buys_a_cheaper_slower_run():
    held, free = solve(_cost_mission(decisions=SMALL)), solve(_cost_mission(1e5, decisions=SMALL))
    assert "deadline" in held.binding and "deadline" not in free.binding
    assert free.objective < held.objective and free.metrics.training.days > 300
    assert held.slack["deadline"]["slack"] >= 0


def test_the_most_mfu_is_not_the_fewest_dollars():
    """Above the critical batch each token buys less: the cheapest plan trains a smaller global
    batch, at less MFU, than the plan with the most MFU under the same walls."""
    mission = _cost_mission(decisions=SMALL)
    cheapest = solve(mission)
    raw = mission.model_dump(exclude_none=True)
    raw["objective"] = {"quantity": "mfu", "sense": "maximize"}
    most_mfu = solve(parse_mission(raw, "the same, for MFU"))
    assert most_mfu.metrics.mfu > cheapest.metrics.mfu
    assert most_mfu.metrics.training.dollars > cheapest.objective


def test_the_whole_cloud_mission_for_dollars_is_certified():
    result = solve(_cost_mission(min_devices=256))
    assert result.certified and "agrees" in result.certification
    assert result.metrics.training.days <= 300


@pytest.mark.parametrize("change, field", [
    ({"objective": {"quantity": "dollars", "sense": "maximize"}}, "objective.sense"),
    ({"constraints": ["memory", "network", "stability", "starvation"], "wall": "memory"}, "limits.days"),
])
def test_a_cost_mission_states_its_sense_and_its_deadline(change, field):
    raw = _cost_mission(decisions=SMALL).model_dump(exclude_none=True)
    raw.update(change)
    with pytest.raises(InputError) as caught:
        parse_mission(raw, "a broken cost mission")
    assert field in str(caught.value)


def test_the_readme_states_the_cloud_missions_optimum_as_solve_computes_it():
    from trainwall.challenges.mission import mission

    result = solve(mission("cloud/3"))
    m = result.metrics
    stated = (f"its optimum trains {result.configuration['training']['global_batch']:,} sequences a step at "
              f"{m.mfu:.0%} MFU for ${result.objective / 1e6:.1f}M in {m.training.days:.0f}\n  days")
    assert stated in Path("README.md").read_text(), stated
    runner_up = result.extra["runner_up"]
    assert runner_up["changes"]["training.virtual_stages"] == 2 and result.binding == ("deadline",)
    stated = f"interleaved plan, 2 model chunks per pipeline rank, costs ${runner_up['objective'] / 1e6:.1f}M"
    assert stated in " ".join(Path("README.md").read_text().split()), stated
    raw = mission("cloud/3").model_dump(exclude_none=True)
    raw["objective"] = {"quantity": "mfu", "sense": "maximize"}
    most_mfu = solve(parse_mission(raw, "cloud/3 for MFU"))
    assert most_mfu.metrics.mfu > m.mfu and most_mfu.metrics.training.dollars > result.objective
    assert most_mfu.configuration["training"]["global_batch"] > result.configuration["training"]["global_batch"]


def test_the_fewest_kwh_is_the_brute_forces():
    """The energy objective: kWh to the goal (the devices busy at their power limit, idle while
    they wait, the hosts' measured share, PUE), the same brute force through evaluate."""
    raw = _cost_mission(decisions=SMALL).model_dump(exclude_none=True)
    raw["objective"] = {"quantity": "energy_kwh", "sense": "minimize"}
    mission = parse_mission(raw, "cloud/3 for the fewest kWh")
    result = solve(mission)
    best = math.inf
    listed = {k: v for k, v in mission.decisions.items() if isinstance(v, list)}
    for combo in itertools.product(*listed.values()):
        for m in range(1, 97):
            try:
                config = plans.decided(mission, dict(zip(listed, combo)), m)
            except InputError:
                continue
            if config.global_batch <= mission.limits.global_batch:
                metrics = evaluate(config)
                if not mission.violations(metrics):
                    best = min(best, metrics.training.energy_kwh)
    assert result.certified and result.objective == pytest.approx(best, rel=1e-12)
    assert result.metrics.training.energy_kwh == pytest.approx(result.objective, rel=1e-12)


def test_a_cost_objective_the_scenario_cannot_price_is_the_missions_error():
    from trainwall.core.errors import MissionError

    raw = _cost_mission(decisions=SMALL).model_dump(exclude_none=True)
    raw["scenario"]["system"]["accelerator"] = "a100-sxm-80gb"       # no catalog price
    with pytest.raises(MissionError, match="objective.quantity"):
        parse_mission(raw, "an unpriced cost mission")
