"""Number formats and mixed-precision policies.

Bytes per parameter follow Rajbhandari et al. 2020 (ZeRO, section 3.1): mixed
precision keeps 16-bit weights and gradients and an fp32 master copy, which is
counted with the optimizer state (K = 12 for Adam: master 4 + momentum 4 +
variance 4). fp32 training keeps 4-byte weights and gradients and no master copy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class NumberFormat:
    """A floating-point format's range (IEEE 754 and the FP8 paper, Micikevicius et al. 2022)."""

    name: str
    bytes: int
    max: float
    min_normal: float
    min_subnormal: float


FORMATS = {
    "fp32": NumberFormat("fp32", 4, 3.4028235e38, 1.1754944e-38, 1.4e-45),
    "bf16": NumberFormat("bf16", 2, 3.3895314e38, 1.1754944e-38, 9.2e-41),
    "fp16": NumberFormat("fp16", 2, 65504.0, 6.1035156e-05, 5.9604645e-08),
    "fp8-e4m3": NumberFormat("fp8-e4m3", 1, 448.0, 2.0**-6, 2.0**-9),
    "fp8-e5m2": NumberFormat("fp8-e5m2", 1, 57344.0, 2.0**-14, 2.0**-16),
}


@dataclass(frozen=True)
class PrecisionPolicy:
    """What a ``training.precision`` setting stores and computes in.

    ``gemm`` / ``attention``: the peak (device ``peak_flops`` key) matrix work runs at;
    ``grad_format``: the format gradients must be representable in (stability);
    ``forward_format``: the format activations must fit.
    """

    name: str
    weight_bytes: int
    grad_bytes: int
    master_bytes: int
    activation_bytes: int
    gemm: str
    attention: str
    grad_format: str
    forward_format: str


POLICIES = {
    "fp32": PrecisionPolicy("fp32", 4, 4, 0, 4, "fp32", "fp32", "fp32", "fp32"),
    "fp16-mixed": PrecisionPolicy("fp16-mixed", 2, 2, 4, 2, "fp16", "fp16", "fp16", "fp16"),
    "bf16-mixed": PrecisionPolicy("bf16-mixed", 2, 2, 4, 2, "bf16", "bf16", "bf16", "bf16"),
    # FP8 (Micikevicius et al. 2022; NVIDIA Transformer Engine): GEMMs in FP8, with bf16
    # weights, gradients and activations kept around them and attention in bf16;
    # forward tensors in E4M3, gradients in E5M2.
    "fp8-mixed": PrecisionPolicy("fp8-mixed", 2, 2, 4, 2, "fp8", "bf16", "fp8-e5m2", "fp8-e4m3"),
}

#: Optimizer moments per trainable parameter (Kingma & Ba 2015; PyTorch torch.optim).
OPTIMIZER_MOMENTS = {"sgd": 0, "momentum": 1, "adam": 2}

#: Bytes per moment: fp32, or 8-bit block-wise quantised (Dettmers et al. 2022, "8-bit
#: Optimizers via Block-wise Quantization": 1 byte per value plus an fp32 absmax per
#: 2048-value block).
MOMENT_BYTES = {"fp32": 4.0, "8bit": 1.0 + 4.0 / 2048}

#: torch.optim.Adam keeps a ``step`` scalar (float32 tensor) per parameter tensor
#: (torch/optim/adam.py); SGD keeps none. Counted so our bytes equal PyTorch's exactly.
STEP_COUNTER_BYTES = {"sgd": 0, "momentum": 0, "adam": 4}


def training_policy(precision: str, gradient_dtype: str = "param") -> PrecisionPolicy:
    """``precision``'s policy, with the gradients kept in fp32 when ``gradient_dtype`` is
    "fp32": Megatron-LM accumulates bf16 and fp16 training's gradients in an fp32 main_grad
    buffer (and reduces them in fp32), and its distributed-optimizer table counts 18 bytes per
    parameter for "bf16 param, fp32 grads" (6 + 12/d distributed) against ZeRO's 16
    (megatron/core/distributed docs, "Distributed Optimizer")."""
    policy = POLICIES[precision]
    return replace(policy, grad_bytes=4) if gradient_dtype == "fp32" else policy
