"""Parts 2 and 3: the MILPs against independent enumerations, on seeded random instances.

Part 2 (pipeline race): the MILP over the networkx flow graph against evaluating every
(mode, workers or echo) with :func:`evaluate` itself. Part 3 (scaling wall): Dinkelbach
over the MILP against the numpy enumeration of every (mode, micro-batch count); and the
decomposition it rests on - every global-batch-dependent cost linear in m - against
:func:`evaluate` at random points.
"""

import random

import pytest

from trainwall.challenges import plans
from trainwall.challenges.mission import parse_mission
from trainwall.challenges.problems import pipeline_race_problem, scaling_problem
from trainwall.core.config import parse_config
from trainwall.optimizer import certify
from trainwall.optimizer.costmodel import evaluate, step_structure
from trainwall.optimizer.highs import Status
from trainwall.optimizer.pipeline_race import PipelineRaceModel
from trainwall.optimizer.scaling_wall import ScalingWallModel

PART2_SYSTEMS = [("resnet-50", "h100-sxm", 8, 256), ("orin-perception", "jetson-agx-orin-64gb", 1, 32),
                 ("glasses-filter", "ar-glasses-soc", 1, 64), ("resnet-18", "a100-sxm-80gb", 8, 128),
                 ("ds-cnn-s", "nrf52840", 1, 1)]
PRECISION = {"h100-sxm": "bf16-mixed", "a100-sxm-80gb": "bf16-mixed", "jetson-agx-orin-64gb": "fp16-mixed",
             "ar-glasses-soc": "fp16-mixed", "nrf52840": "fp32"}


def random_part2(seed: int):
    rng = random.Random(seed)
    model, device, devices, mb = rng.choice(PART2_SYSTEMS)
    field = rng.choice(["data.workers", "data.echo"])
    decisions = {field: {"min": rng.randint(1, 3), "max": rng.randint(4, 24)}}
    if rng.random() < 0.6:
        decisions["data.augmentation_on"] = rng.sample(["cpu", "accelerator"], 2)
    if rng.random() < 0.5:
        decisions["data.augmentation"] = rng.sample(["none", "light", "standard", "heavy"], rng.randint(1, 3))
    data = {
        "id": "cloud/2", "track": "cloud", "part": 2, "title": f"random {seed}", "story": "",
        "constraints": ["starvation"], "wall": "starvation",
        "scenario": {"workload": {"model": model},
                     "system": {"accelerator": device, "devices": devices,
                                "cpu_cores_per_node": rng.choice([2, 4, 8, 16, 64])},
                     "training": {"optimizer": "momentum", "precision": PRECISION[device],
                                  "loss_scaling": "dynamic", "micro_batch": mb, "global_batch": mb * devices},
                     "data": {"workers": 1, "echo": rng.choice([1, 2]),
                              "augmentation": rng.choice(["light", "standard", "heavy"])}},
        "decisions": decisions,
        "objective": {"quantity": field.split(".")[1], "sense": "minimize"},
        "naive": {"data": {field.split(".")[1]: 1}},
    }
    return parse_mission(data, f"random part 2 {seed}")


@pytest.mark.parametrize("seed", range(60))
def test_part2_milp_equals_evaluating_every_point(seed):
    m = random_part2(seed)
    problem = pipeline_race_problem(m)
    sol = PipelineRaceModel(problem).solve()
    exhaustive = certify.pipeline_race(problem)
    assert (sol.status is Status.OPTIMAL) == exhaustive.feasible
    if exhaustive.feasible:
        assert (sol.value, sol.mode) == (exhaustive.mask[0], exhaustive.mode)


def test_part2_random_instances_include_both_outcomes():
    outcomes = {certify.pipeline_race(pipeline_race_problem(m)).feasible
                for m in map(random_part2, range(60))}
    assert outcomes == {True, False}


def random_part3(seed: int):
    rng = random.Random(seed)
    target = rng.choice([None, None, 0.2, 0.35])
    constraints = ["memory", "network", "stability", "starvation"] + (["mfu_target"] if target else [])
    data = {
        "id": "cloud/3", "track": "cloud", "part": 3, "title": f"random {seed}", "story": "",
        "constraints": constraints, "wall": "memory",
        "limits": {"devices": rng.choice([8, 16, 32]), "min_devices": rng.choice([1, 4]),
                   "global_batch": rng.choice([64, 256, 1024])},
        "scenario": {"workload": {"model": rng.choice(["gpt-2", "llama-3-8b"]), "seq_len": 2048},
                     "system": {"accelerator": "h100-sxm", "devices": 8,
                                "background_network_load": rng.choice([0.0, 0.9, 0.99]),
                                "memory_budget": rng.choice([20e9, 40e9, 80e9])},
                     "training": {"optimizer": "adam", "precision": "bf16-mixed", "micro_batch": 1,
                                  "global_batch": 8, "tensor_parallel": 1, "pipeline_parallel": 1,
                                  "data_parallel": 8, "zero_stage": 1},
                     "data": {"workers": 8, "augmentation": "none"}},
        "decisions": {"training.tensor_parallel": rng.sample([1, 2, 4], 2),
                      "training.pipeline_parallel": rng.sample([1, 2, 4], 2),
                      "training.data_parallel": rng.sample([1, 2, 4, 8], 3),
                      "training.micro_batch": rng.sample([1, 2, 4], 2),
                      "training.recompute": rng.sample(["none", "selective", "full"], 2),
                      "training.gradient_clipping": rng.sample([False, True], rng.randint(1, 2)),
                      "training.micro_batches": {"min": 1, "max": rng.choice([8, 32, 64])}},
        "objective": {"quantity": "mfu", "sense": "maximize", **({"target": target} if target else {})},
        "naive": {"training": {}},
    }
    return parse_mission(data, f"random part 3 {seed}")


def assert_dinkelbach_equals_enumeration(m):
    """Same status, mode and micro-batch count; the cost model confirms the MFU and the walls."""
    problem, _ = scaling_problem(m)
    modes = problem.modes
    sol = ScalingWallModel(problem).solve()
    exhaustive = certify.scaling_wall(problem)
    assert (sol.status is Status.OPTIMAL) == exhaustive.feasible
    if exhaustive.feasible:
        assert (sol.mode, sol.micro_batches) == (exhaustive.mode, exhaustive.mask[0])
        metrics = evaluate(plans.decided(m, modes[sol.mode].choices, sol.micro_batches))
        assert metrics.mfu == pytest.approx(sol.value, rel=1e-12)
        assert not m.violations(metrics)


@pytest.mark.parametrize("seed", range(40))
def test_part3_dinkelbach_equals_enumeration(seed):
    assert_dinkelbach_equals_enumeration(random_part3(seed))


FLEETS = [("orin-perception", "jetson-agx-orin-64gb", ["fp32", "fp16-mixed"], 4),
          ("glasses-filter", "ar-glasses-soc", ["fp32", "fp16-mixed"], 2),
          ("ds-cnn-s", "nrf52840", ["fp32"], 0),            # an MCU: loading does not overlap compute
          ("micro-speech", "stm32f746", ["fp32"], 0)]


def random_fleet_part3(seed: int):
    """Part 3 on a star: devices around an aggregator (cellular, Wi-Fi, BLE), local SGD."""
    rng = random.Random(5000 + seed)
    model, device, precisions, workers = rng.choice(FLEETS)
    target = rng.choice([None, None, 0.01, 0.1])
    constraints = ["memory", "network", "stability", "starvation"] + (["mfu_target"] if target else [])
    data = {
        "id": "edge/3", "track": "edge", "part": 3, "title": f"fleet {seed}", "story": "",
        "constraints": constraints, "wall": "memory",
        "limits": {"devices": 16, "min_devices": rng.choice([1, 4]), "global_batch": rng.choice([64, 512, 4096])},
        "scenario": {"workload": {"model": model},
                     "system": {"accelerator": device, "devices": 4, "topology": "star",
                                "background_network_load": rng.choice([0.0, 0.5, 0.9])},
                     "training": {"optimizer": "sgd" if workers == 0 else rng.choice(["sgd", "adam"]),
                                  "precision": "fp32", "loss_scaling": "dynamic", "micro_batch": 1,
                                  "global_batch": 4, "data_parallel": 4, "gradient_clipping": rng.random() < 0.5,
                                  "trainable": "last:2" if workers == 0 else "all"},
                     "data": {"workers": workers, "augmentation": rng.choice(["none", "standard"]),
                              "echo": rng.choice([1, 2])}},
        "decisions": {"training.data_parallel": rng.sample([1, 2, 4, 8, 16], 3),
                      "training.micro_batch": [1, *rng.sample([2, 4, 8, 16, 32], 2)],
                      "training.local_steps": rng.sample([1, 2, 4, 8, 16, 32], 3),
                      "training.precision": rng.sample(precisions, len(precisions)),
                      "training.recompute": rng.sample(["none", "full"], 2),
                      "training.micro_batches": {"min": 1, "max": rng.choice([16, 64, 256])}},
        "objective": {"quantity": "mfu", "sense": "maximize", **({"target": target} if target else {})},
        "naive": {"training": {}},
    }
    if workers == 0:     # serial loading: the share of a step it may take (0: none at all)
        data["max_data_wait"] = rng.choice([0.0, 0.3, 0.5, 0.7])
    return parse_mission(data, f"random fleet {seed}")


@pytest.mark.parametrize("seed", range(30))
def test_part3_on_fleets_dinkelbach_equals_enumeration(seed):
    """Stars, local steps, loading that cannot overlap compute on an MCU, the staleness rule."""
    assert_dinkelbach_equals_enumeration(random_fleet_part3(seed))


def test_fleet_instances_cover_mcus_staleness_and_infeasibility():
    missions = [random_fleet_part3(s) for s in range(30)]
    outcomes = [certify.scaling_wall(scaling_problem(m)[0]) for m in missions]
    assert 0 < sum(o.feasible for o in outcomes) < len(outcomes)
    mcu = [o for m, o in zip(missions, outcomes) if m.scenario["data"]["workers"] == 0 and o.feasible]
    assert len(mcu) >= 3
    # serial loading with no wait allowed starves every plan
    assert not any(o.feasible for m, o in zip(missions, outcomes) if m.scenario["data"]["workers"] == 0
                   and m.max_data_wait == 0.0 and "starvation" in m.constraints)
    # some optimum stops at the staleness limit with more local steps on offer
    stale = sum(1 for m, o in zip(missions, outcomes) if o.feasible
                and scaling_problem(m)[0].modes[o.mode].choices["training.local_steps"] == 16
                and 32 in m.decisions["training.local_steps"])
    assert stale >= 1


def test_part3_random_instances_include_infeasible_ones():
    feasible = [certify.scaling_wall(scaling_problem(m)[0]).feasible for m in map(random_part3, range(40))]
    assert 0 < sum(feasible) < len(feasible)


@pytest.mark.parametrize("seed", range(25))
def test_step_structure_is_what_evaluate_computes(seed):
    """The decomposition behind part 3: at every m, the structure's step, MFU, memory and
    network equal evaluate()'s for the configuration with that global batch."""
    rng = random.Random(1000 + seed)
    tp, pp, dp = rng.choice([1, 2, 4]), rng.choice([1, 2, 4]), rng.choice([1, 2, 4])
    mb = rng.choice([1, 2])
    data = {"workload": {"model": rng.choice(["gpt-2", "llama-3-8b"]), "seq_len": 1024},
            "system": {"accelerator": "h100-sxm", "devices": tp * pp * dp,
                       "background_network_load": rng.choice([0.0, 0.5])},
            "training": {"micro_batch": mb, "tensor_parallel": tp, "pipeline_parallel": pp, "data_parallel": dp,
                         "zero_stage": rng.choice([0, 1, 3]), "recompute": rng.choice(["none", "selective", "full"]),
                         "global_batch": mb * dp},
            "data": {"workers": rng.choice([0, 4]), "augmentation": "none"}}
    st = step_structure(parse_config(data))
    for m in (1, 2, pp, pp + 3, 17):
        data["training"]["global_batch"] = m * mb * dp
        metrics = evaluate(parse_config(data))
        assert float(st.step_s(m)) == pytest.approx(metrics.time.step_s, rel=1e-12)
        assert float(st.mfu(m)) == pytest.approx(metrics.mfu, rel=1e-12)
        assert float(st.memory_total(m)) == pytest.approx(metrics.memory.total, rel=1e-12)
        assert float(st.network_utilization(m)) == pytest.approx(metrics.network_utilization, rel=1e-12)
