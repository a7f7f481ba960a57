"""training.gradient_dtype = "fp32": Megatron-LM's fp32 gradients for bf16 and fp16 training.

Megatron-LM's distributed-optimizer documentation ("Distributed Optimizer", the theoretical
bytes per parameter, d the data-parallel size):

    |                        | non-distributed optim | distributed optim |
    | fp16 param, fp16 grads | 20                    | 4 + 16/d          |
    | bf16 param, fp32 grads | 18                    | 6 + 12/d          |
    | fp32 param, fp32 grads | 16                    | 8 + 8/d           |

trainwall's ZeRO stage 0 is the non-distributed optimizer and stage 1 the distributed one
(optimizer states sharded, gradients not). The fp16 row keeps an fp32 copy of the gradients
in the optimizer, which trainwall does not model; the other two rows are checked here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainwall.core.config import parse_config
from trainwall.optimizer.costmodel import evaluate

CLOUD = tomllib.loads(Path("examples/cloud.toml").read_text())     # Llama-3-70B, DP 32


def _bytes_per_param(**training) -> float:
    raw = {section: dict(values) for section, values in CLOUD.items()}
    raw["training"].update(training)
    return evaluate(parse_config(raw, f"cloud with {training}")).memory.bytes_per_param()["total"]


@pytest.mark.parametrize("precision, gradients, zero, megatron", [
    ("bf16-mixed", "fp32", 0, 18.0), ("bf16-mixed", "fp32", 1, 6 + 12 / 32),
    ("fp32", "param", 0, 16.0), ("fp32", "param", 1, 8 + 8 / 32),
])
def test_bytes_per_parameter_are_megatrons_table(precision, gradients, zero, megatron):
    got = _bytes_per_param(precision=precision, gradient_dtype=gradients, zero_stage=zero)
    assert got == pytest.approx(megatron, abs=1e-5)      # Adam's step counters add < 1e-6 byte


def test_fp32_gradients_double_the_gradient_all_reduce():
    raw = {section: dict(values) for section, values in CLOUD.items()}
    param = evaluate(parse_config(raw, "bf16 gradients")).time.data_parallel_s
    raw["training"]["gradient_dtype"] = "fp32"
    fp32 = evaluate(parse_config(raw, "fp32 gradients")).time.data_parallel_s
    assert fp32 > 1.9 * param          # the volume doubles; the latency terms do not
