"""Context parallelism (training.context_parallel = cp), checked by hand.

Each sequence of s tokens is split over cp ranks (Megatron-LM / Transformer Engine; Liu et al.
2023, "Ring Attention"): a rank holds s / cp tokens of every sample, so its FLOPs and
activations are 1 / cp of the sample's (the attention too: its queries meet the whole
sequence's keys, and the load-balanced split gives every rank an equal share of the causal
work), its weights are whole, and every attention layer all-gathers the sequence's K and V
(forward, backward, and again where the attention is recomputed) and reduce-scatters their
gradients. Llama-3-70B: 80 blocks, 8 KV heads of 128, so at s = 32,768 tokens and tp = 8 one
tensor-parallel rank's K and V are 2 x 32,768 x 128 values of 2 bytes = 16 MiB per layer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwall.core.config import parse_config
from trainwall.core.errors import InputError
from trainwall.optimizer.costmodel import evaluate
from trainwall.optimizer.costmodel.communication import kv_exchange_bytes
from trainwall.optimizer.costmodel.resolve import resolve
from trainwall.optimizer.costmodel.structure import structure_of

CLOUD = tomllib.loads(Path("examples/cloud.toml").read_text())     # Llama-3-70B, TP 8 x PP 4 x DP 32
SEQ = 32_768


def _raw(cp: int, **training) -> dict:
    raw = {section: dict(values) for section, values in CLOUD.items()}
    raw["workload"]["seq_len"] = SEQ
    raw["system"]["devices"] = 1024 * cp
    raw["training"].update({"context_parallel": cp, **training})
    return raw


def _plan(cp: int, **training):
    return resolve(parse_config(_raw(cp, **training), f"cloud at cp = {cp}"))


def test_the_kv_buffer_of_one_layer_by_hand():
    assert kv_exchange_bytes(_plan(2)) == 2 * SEQ * (8 * 128 // 8) * 1 * 2 == 16 * 2**20
    assert kv_exchange_bytes(_plan(2, micro_batch=2, global_batch=2048)) == 32 * 2**20


def test_a_rank_does_half_the_work_and_holds_half_the_activations_at_cp_2():
    one, two = structure_of(_plan(1)), structure_of(_plan(2))
    assert two.t_stage == pytest.approx(one.t_stage / 2, rel=0.02)           # GEMMs at the ceiling: half the tokens
    assert two.stage_kept == pytest.approx([k / 2 for k in one.stage_kept], rel=1e-12)
    assert two.model_flops_per_micro_batch == pytest.approx(one.model_flops_per_micro_batch, rel=1e-12)  # same samples
    assert two.devices == 2 * one.devices


def test_the_step_counts_the_whole_models_flops_once():
    """MFU's numerator is the samples' FLOPs (6N + attention per token, whole sequences), not
    cp times it: at cp = 2 on twice the devices the step's model FLOPs are cp = 1's."""
    one, two = (evaluate(parse_config(_raw(cp), "cp")) for cp in (1, 2))
    assert two.model_flops_per_step == pytest.approx(one.model_flops_per_step, rel=1e-12)
    assert two.time.step_s < 0.55 * one.time.step_s


def test_zero_shards_the_optimizer_state_over_data_and_context_ranks():
    one, two = structure_of(_plan(1)), structure_of(_plan(2))
    for a, b in zip(one.stage_states, two.stage_states):
        assert b.states.optimizer_state == pytest.approx(a.states.optimizer_state / 2, rel=1e-5)   # shards padded
        assert b.weights == a.weights and b.states.gradients == a.states.gradients


def test_the_kv_exchange_by_hand_across_nodes():
    """tp = 8 fills a node, so the 2 ranks sharing a sequence sit on two nodes and exchange over
    their NICs (48 GB/s, NCCL's share of NDR's 50; the fabric free): an all-gather sends (2 - 1)/2 of the buffer, 4 times
    per layer (forward, backward, the gradients, the selective recompute), 20 blocks on the
    slowest stage. The attention matmuls of those blocks take longer, so none of it is exposed."""
    st = structure_of(_plan(2))
    per_gather = 0.5 * 16 * 2**20 / 48e9 + 5e-6          # bytes / NIC bus bandwidth + one step's latency
    blocks = [20, 21]                                      # the slowest stage holds 20 or 21 of the 80 blocks
    assert any(st.cp_per_micro_batch_s == pytest.approx(n * 4 * per_gather, rel=1e-9) for n in blocks)
    assert st.cp_exposed_per_micro_batch_s == 0.0
    assert ("context_parallel", "ring") in st.algorithms


def test_an_exchange_the_attention_cannot_hide_is_exposed():
    """On 10 Gb/s Ethernet between nodes the exchange outlasts the attention: the excess is exposed
    and counted in the step."""
    raw = _raw(2)
    raw["system"]["inter_node_link"] = "10gbe"
    st = structure_of(resolve(parse_config(raw, "slow fabric")))
    assert 0.0 < st.cp_exposed_per_micro_batch_s < st.cp_per_micro_batch_s
    assert st.exposed_per_micro_batch_s >= st.cp_exposed_per_micro_batch_s


def test_llama_3s_all_gather_exchange_is_all_exposed():
    """Llama 3's context parallelism (Dubey et al. 2024, section 3.3.2) all-gathers K and V before
    the attention: the same bytes as the ring (the 20 or 21 blocks' 4 transfers of the test above),
    none hidden, on the fast fabric where the ring hides all of it; the step grows by exactly that."""
    ring = structure_of(_plan(2))
    gathered = structure_of(_plan(2, context_parallel_exchange="all_gather"))
    assert gathered.cp_per_micro_batch_s == ring.cp_per_micro_batch_s
    assert ring.cp_exposed_per_micro_batch_s == 0.0
    assert gathered.cp_exposed_per_micro_batch_s == gathered.cp_per_micro_batch_s > 0.0
    assert gathered.per_micro_batch_s == pytest.approx(ring.per_micro_batch_s + gathered.cp_per_micro_batch_s,
                                                       rel=1e-12)


@pytest.mark.parametrize("change, says", [
    ({"workload": {"model": "resnet-50"}, "training": {"tensor_parallel": 1, "data_parallel": 256}},
     "transformer"),
    ({"workload": {"seq_len": 8190}}, "2 x context_parallel"),
])
def test_context_parallelism_needs_a_transformer_and_a_sequence_that_splits(change, says):
    raw = _raw(2)
    for section, values in change.items():
        raw[section] = {**raw[section], **values}
        if section == "workload" and "model" in values:
            raw["workload"].pop("seq_len", None)
    with pytest.raises(InputError, match="training.context_parallel") as caught:
        evaluate(parse_config(raw, "bad context parallelism"))
    assert says in str(caught.value)


def test_the_devices_must_be_the_product_of_the_four_degrees():
    raw = _raw(2)
    raw["system"]["devices"] = 1024
    with pytest.raises(InputError, match="context_parallel") as caught:
        parse_config(raw, "too few devices")
    assert "8 x 4 x 32 x 2 must equal system.devices = 1024" in str(caught.value)


def test_part_3_searches_context_parallelism_and_the_devices_are_the_four_degrees_product():
    """cloud/3 at 32K-token sequences with context_parallel opened: one sequence's activations
    do not fit a 4-stage pipeline's GPU, split over 2 ranks they do, so the certified optimum
    (the exhaustive certifier agrees with the MILP) splits the context, on tp x pp x dp x cp
    devices, and memory binds."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.solve import solve

    raw = tomllib.loads(Path("challenges/cloud/3.toml").read_text())
    raw["scenario"]["workload"]["seq_len"] = SEQ
    raw["scenario"]["system"]["background_network_load"] = 0.0
    raw["limits"]["days"] = 1000
    raw["decisions"] = {"training.tensor_parallel": [8], "training.pipeline_parallel": [4, 8],
                        "training.data_parallel": [8, 16], "training.context_parallel": [1, 2, 4],
                        "training.micro_batch": [1], "training.recompute": ["selective"], "training.zero_stage": [1],
                        "training.micro_batches": {"min": 1, "max": 64}}
    result = solve(parse_mission(raw, "cloud/3 at 32K tokens"))
    assert result.certified and "memory" in result.binding
    t = result.configuration["training"]
    assert t["context_parallel"] > 1
    assert result.metrics.devices == t["tensor_parallel"] * t["pipeline_parallel"] * t["data_parallel"] * t["context_parallel"]
    assert result.metrics.memory.total <= result.metrics.memory.capacity


def test_the_scaling_figure_grows_data_parallelism_around_the_context_split():
    """The weak-scaling figure keeps tensor, pipeline and context degrees and doubles the data-
    parallel replicas: every point's devices are a multiple of tp x pp x cp, and the plan's own
    device count is one of them (the figure once left the context split out of the count)."""
    from trainwall.figures import scaling

    series = scaling(parse_config(_raw(2), "cp = 2"), max_devices=4096)
    assert series.devices and all(n % (8 * 4 * 2) == 0 for n in series.devices)
    assert 2048 in series.devices


def test_the_math_peeks_gradient_ring_spans_data_and_context_ranks():
    """The gradient all-reduce runs over every rank holding the same weights: 32 data x 2 context
    = 64 (the Math Peek once said n = 32 beside the cost model's ring of 64)."""
    from trainwall.explain import as_text, math_peek

    text = as_text(math_peek(parse_config(_raw(2), "cp = 2")))
    assert "all-reduce (ring, n = 64)" in text and "2*63/64" in text
