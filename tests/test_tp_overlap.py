"""Tensor-parallel communication overlap, by hand.

Llama-3-70B at 8,192 tokens on one DGX H100 (tensor parallel 8, one micro-batch, selective
recompute). Each of its 81 tensor-parallel layers (80 blocks and the LM head) runs 2
all-reduces of the hidden state (s h = 8192 x 8192 bf16 values) forward and 2 backward
(Megatron-LM; Shoeybi et al. 2019); one all-reduce on the node's NVSwitch ring costs
c = 2 (7/8) S / (450 GB/s x NCCL's 0.82) + 14 x 3 us.

* Without any overlap (Megatron-LM before Sep 2021) all 4 per layer are exposed.
* Megatron-LM's default hides the 2 backward ones behind the layer's weight-gradient GEMMs:
  a block's are 2 s N_block / t FLOPs = 1.75 TFLOP, 3.5 ms at the H100's 0.505 x 989 TFLOP/s,
  well above 2c (1.4 ms), so only the 2 forward ones are exposed.
* Transformer Engine's overlap also hides the forward ones behind the forward GEMMs, all but
  one reduce-scatter chunk in four: 2 x c / 4 per layer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwall.core.config import parse_config
from trainwall.core.errors import InputError
from trainwall.hardware.catalog import link
from trainwall.optimizer.costmodel import evaluate
from trainwall.optimizer.costmodel.resolve import resolve
from trainwall.optimizer.costmodel.structure import structure_of

NV = link("nvlink4")
C = 2 * 7 / 8 * (8192 * 8192 * 2) / (NV.bandwidth * NV.achievable) + 14 * NV.latency
LAYERS = 81


def _structure(**training):
    raw = {"workload": {"model": "llama-3-70b", "seq_len": 8192},
           "system": {"accelerator": "h100-sxm", "devices": 8},
           "training": {"precision": "bf16-mixed", "recompute": "selective", "tensor_parallel": 8,
                        "micro_batch": 1, "global_batch": 4, **training}}
    return structure_of(resolve(parse_config(raw, f"tp overlap {training}")))


def test_the_layers_and_the_collective_by_hand():
    plan = resolve(parse_config({"workload": {"model": "llama-3-70b", "seq_len": 8192},
                                 "system": {"accelerator": "h100-sxm", "devices": 8},
                                 "training": {"tensor_parallel": 8}}, "tp 8"))
    assert sum(1 for layer in plan.network.layers if layer.tensor_parallel) == LAYERS
    st = _structure(tp_backward_overlap=False)
    assert st.tp_all_per_micro_batch_s == pytest.approx(LAYERS * 4 * C, rel=1e-9)


def test_without_overlap_every_collective_is_exposed():
    st = _structure(tp_backward_overlap=False)
    assert st.tp_per_micro_batch_s == pytest.approx(st.tp_all_per_micro_batch_s, rel=1e-12)


def test_megatrons_default_hides_the_backward_collectives_behind_the_weight_gradients():
    wgrad_block = 2 * 8192 * 0.856e9 / 8 / (989.4e12 * 0.505)       # about 3.5 ms
    assert wgrad_block > 2 * C
    st = _structure()
    assert st.tp_per_micro_batch_s == pytest.approx(LAYERS * 2 * C, rel=1e-9)
    assert st.tp_all_per_micro_batch_s == pytest.approx(LAYERS * 4 * C, rel=1e-9)


def test_transformer_engines_overlap_leaves_one_reduce_scatter_chunk_in_four():
    st = _structure(tp_comm_overlap=True)
    assert st.tp_per_micro_batch_s == pytest.approx(LAYERS * 2 * C / 4, rel=1e-9)
    faster = evaluate(parse_config({**_raw_cloud(), "training": {**_raw_cloud()["training"], "tp_comm_overlap": True}},
                                   "cloud with TE overlap"))
    plain = evaluate(parse_config(_raw_cloud(), "cloud"))
    assert faster.time.step_s < plain.time.step_s and faster.mfu > plain.mfu
    assert faster.time.tensor_parallel_s == pytest.approx(plain.time.tensor_parallel_s, rel=1e-12)   # same traffic
    assert faster.time.tensor_parallel_exposed_s < plain.time.tensor_parallel_exposed_s


def test_transformer_engines_overlap_needs_sequence_parallelism():
    with pytest.raises(InputError, match="training.tp_comm_overlap") as caught:
        _structure(tp_comm_overlap=True, sequence_parallel=False)
    assert "sequence_parallel" in str(caught.value)


def _raw_cloud() -> dict:
    return tomllib.loads(Path("examples/cloud.toml").read_text())


def test_the_text_report_says_how_much_of_the_tensor_parallel_traffic_is_exposed():
    from trainwall.report import fmt_seconds, text_report

    config = parse_config(_raw_cloud(), "cloud")
    m = evaluate(config)
    assert 0 < m.time.tensor_parallel_exposed_s < m.time.tensor_parallel_s
    assert (f"TP {fmt_seconds(m.time.tensor_parallel_s)} of which {fmt_seconds(m.time.tensor_parallel_exposed_s)} "
            f"exposed") in text_report(config, m)
