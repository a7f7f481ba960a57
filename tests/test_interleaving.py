"""Megatron-LM's interleaved 1F1B (training.virtual_stages = v): the bubble over v, the
point-to-point sends times v, the activations held by Megatron's warm-up rule, and
Megatron's constraints as clear errors.

The stage-0 activations are checked against Korthikanti et al. 2022 ("Reducing Activation
Recomputation in Large Transformer Models", section 4.2.3): the interleaved schedule holds
p (1 + (p - 1)/(p v)) micro-batches' activations on the first stage; the bubble against
Narayanan et al. 2021, section 2.2.2: (p - 1)(t_f + t_b) / v.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwall.core.config import parse_config
from trainwall.core.errors import InputError
from trainwall.optimizer.costmodel import evaluate
from trainwall.optimizer.costmodel.resolve import resolve
from trainwall.optimizer.costmodel.structure import structure_of

CLOUD = tomllib.loads(Path("examples/cloud.toml").read_text())     # Llama-3-70B, TP 8 x PP 4 x DP 32


def _config(**training):
    raw = {section: dict(values) for section, values in CLOUD.items()}
    raw["training"].update(training)
    return parse_config(raw, f"cloud with {training}")


@pytest.mark.parametrize("v", [2, 4, 5])
def test_the_bubble_shrinks_by_v_and_the_sends_grow_by_v(v):
    one, inter = evaluate(_config()), evaluate(_config(virtual_stages=v))
    assert inter.time.bubble_s == pytest.approx(one.time.bubble_s / v, rel=1e-12)
    assert inter.time.pipeline_p2p_s == pytest.approx(one.time.pipeline_p2p_s * v, rel=1e-12)
    assert inter.time.compute_s == pytest.approx(one.time.compute_s, rel=1e-12)   # the same layers per rank


@pytest.mark.parametrize("v", [2, 4, 5])
def test_the_first_stage_holds_korthikantis_interleaved_activations(v):
    """Stage 0's kept activations are 1F1B's p micro-batches times (1 + (p - 1)/(p v))."""
    p, m = 4, 32
    one = structure_of(resolve(_config()))
    inter = structure_of(resolve(_config(virtual_stages=v)))
    assert one.schedule.in_flight(0, m) == p
    assert inter.schedule.in_flight(0, m) == pytest.approx(p * (1 + (p - 1) / (p * v)), rel=1e-12)
    kept = one.stage_kept[0]
    assert inter.stage_memory(m)[0] - one.stage_memory(m)[0] == pytest.approx(
        kept * (inter.schedule.in_flight(0, m) - p), rel=1e-9)


def test_the_last_stage_and_short_steps_follow_megatrons_warm_up():
    """Megatron-LM's warm-up on rank i is 2 (p - i - 1) + (v - 1) p chunk forwards, at most all
    m v of them; each chunk holds 1/v of the stage's activations."""
    sched = structure_of(resolve(_config(virtual_stages=2))).schedule
    p, v = 4, 2
    assert sched.in_flight(p - 1, 32) == pytest.approx(((v - 1) * p + 1) / v)
    assert sched.in_flight(0, p) == p                   # m = p: every chunk forward is warm-up


@pytest.mark.parametrize("change, field, says", [
    ({"virtual_stages": 2, "pipeline_parallel": 1, "data_parallel": 128}, "training.virtual_stages",
     "pipeline_parallel >= 2"),
    ({"virtual_stages": 3}, "training.virtual_stages", "80 blocks must split evenly"),
    ({"virtual_stages": 2, "global_batch": 32 * 6}, "training.global_batch", "multiple of the 4 pipeline stages"),
])
def test_megatrons_constraints_are_clear_errors(change, field, says):
    with pytest.raises(InputError) as caught:
        evaluate(_config(**change))
    assert caught.value.field == field and says in str(caught.value)


def test_interleaving_splits_transformer_blocks_only():
    raw = {"workload": {"model": "resnet-50"}, "system": {"accelerator": "h100-sxm", "devices": 2},
           "training": {"pipeline_parallel": 2, "virtual_stages": 2, "global_batch": 8}}
    with pytest.raises(InputError, match="interleaving splits transformer blocks"):
        evaluate(parse_config(raw, "a CNN"))


def test_part_3_searches_interleaving_with_m_a_multiple_of_p():
    """cloud/3 for the fewest dollars with virtual_stages opened: every plan the search and the
    certifier consider interleaves only at a multiple of its pipeline stages. On a free fabric
    the halved bubble pays for the doubled sends: the certified optimum interleaves."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.problems import scaling_problem
    from trainwall.challenges.solve import solve

    raw = tomllib.loads(Path("challenges/cloud/3.toml").read_text())
    raw["scenario"]["system"]["background_network_load"] = 0.0
    raw["decisions"] = {"training.tensor_parallel": [8], "training.pipeline_parallel": [8, 4],
                        "training.data_parallel": [16, 32], "training.virtual_stages": [1, 2],
                        "training.micro_batch": [1], "training.recompute": ["selective"], "training.zero_stage": [1],
                        "training.micro_batches": {"min": 1, "max": 64}}
    mission = parse_mission(raw, "cloud/3 with interleaving")
    problem, _ = scaling_problem(mission)
    for mode in problem.modes:
        p = mode.structure.pipeline_parallel
        assert mode.m_step == (p if mode.choices["training.virtual_stages"] == 2 else 1)
        assert all(m % mode.m_step == 0 for m in mode.counts())
    result = solve(mission)
    assert result.certified
    t = result.configuration["training"]
    assert t["virtual_stages"] == 2
    assert (t["global_batch"] // (t["data_parallel"] * t["micro_batch"])) % t["pipeline_parallel"] == 0


@pytest.mark.parametrize("v", [1, 2, 5])
def test_memory_grows_up_to_the_schedules_saturation_and_is_flat_beyond(v):
    """The part-3 search reads a mode's memory at the schedule's saturation to decide whether
    any m can overflow it (under 1F1B stage 0 holds min(p, m); interleaved, min(W_0 + 1, m v) / v
    chunks, which keeps growing past m = p). Checked on the arithmetic for every m to 64."""
    st = structure_of(resolve(_config(pipeline_parallel=8, data_parallel=16, virtual_stages=v)))
    sat = st.schedule.saturation()
    assert sat == (8 if v == 1 else -(-(2 * 7 + (v - 1) * 8 + 1) // v))
    memory = [st.memory_total(m) for m in range(1, 65)]
    assert all(a <= b for a, b in zip(memory, memory[1:]))
    assert memory[sat - 2] < memory[sat - 1] == memory[-1]


def test_part_3_memory_limit_is_the_largest_m_that_fits_by_brute_force():
    """The bug this catches: the search once judged an interleaved mode's memory at m = p, where
    1F1B stops growing, and certified-looking plans overflowed (cloud/3 with virtual_stages
    opened chose a 92 GiB plan on 80 GiB GPUs). Every mode's m_memory is the largest m of its
    range whose memory fits, found here by evaluating every m."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.problems import scaling_problem
    from trainwall.optimizer.walls import WALLS

    raw = tomllib.loads(Path("challenges/cloud/3.toml").read_text())
    raw["decisions"] = {"training.tensor_parallel": [4, 8], "training.pipeline_parallel": [8, 4],
                        "training.data_parallel": [32, 16], "training.virtual_stages": [1, 2, 5],
                        "training.micro_batch": [1, 2], "training.recompute": ["selective"], "training.zero_stage": [1],
                        "training.micro_batches": {"min": 1, "max": 96}}
    problem, _ = scaling_problem(parse_mission(raw, "cloud/3 with interleaving"))
    checked = 0
    for mode in problem.modes:
        fitting = [m for m in range(1, mode.m_hi + 1)
                   if WALLS["memory"].holds(float(mode.structure.memory_total(m)), mode.capacity)]
        assert min(mode.m_memory, mode.m_hi) == (max(fitting) if fitting else 0), mode.choices
        checked += mode.choices["training.virtual_stages"] > 1 and 0 < len(fitting) < mode.m_hi
    assert checked, "no interleaved mode where memory binds inside the range"


def test_pipeline_sends_without_sequence_parallelism_scatter_and_gather():
    """Megatron-LM's scatter/gather optimization (Narayanan et al. 2021, section 4.1): without
    sequence parallelism each tensor-parallel rank sends 1/t of the layer's output to the next
    stage, and the receiving group all-gathers it over NVLink; by hand, on the cloud example
    (Llama-3-70B, micro-batch 1 x 8,192 tokens x 8,192 wide in bf16, t = 8, one NIC per GPU):

        sends    (S / t) / NDR's achievable 48 GB/s (+ latency), forward and back, as with SP
        gathers  2 x ((t - 1)/t x S / NVLink 4's achievable 0.82 x 450 GB/s + 7 ring steps x 3 us),
                 per micro-batch: 32 a step (global batch 1,024 / data parallel 32)."""
    from trainwall.hardware import collectives
    from trainwall.optimizer.costmodel.layout import parallel_groups

    on, off = evaluate(_config()), evaluate(_config(sequence_parallel=False))
    plan = resolve(_config(sequence_parallel=False))
    tp_groups, _, _, _ = parallel_groups(8, 32, 4)
    S = 8192 * 8192 * 2
    gather = collectives.all_gather(plan.topology, tp_groups)
    assert gather.seconds_per_byte == pytest.approx(7 / 8 / (0.82 * 450e9), rel=1e-12, abs=0)
    added = 32 * 2 * gather.time(S)
    assert off.time.pipeline_p2p_s == pytest.approx(on.time.pipeline_p2p_s + added, rel=1e-12)
    assert added == pytest.approx(32 * 2 * (7 / 8 * S / (0.82 * 450e9) + 7 * 3e-6), rel=1e-9)


def test_the_report_names_the_schedule():
    """``trainwall evaluate``'s header says when the pipeline is interleaved, and into how many chunks."""
    from trainwall.report import text_report

    for v, shown in ((1, False), (4, True)):
        config = _config(virtual_stages=v)
        header = text_report(config, evaluate(config)).splitlines()[1]
        assert ("PP 4 (interleaved, 4 chunks per rank) x DP 32" in header) == shown, header
