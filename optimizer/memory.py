"""Training memory per device: the waterfall of weights, gradients, optimizer state,
activations and other.

Model states (Rajbhandari et al. 2020, ZeRO, Table 1 and section 5): with Psi
parameters on a device, of which Psi_t train, and data-parallel degree N_d,

    weights   = Psi   * w_bytes              / (N_d if stage >= 3)
    gradients = Psi_t * g_bytes              / (N_d if stage >= 2)
    optimizer = Psi_t * (master + K_moments) / (N_d if stage >= 1)

Frozen parameters keep weights only; on a microcontroller they stay in flash.
Mixed-precision Adam: 2 + 2 + 12 = 16 bytes per parameter; fp32 Adam 4 + 4 + 8 = 16,
i.e. 4x the weights.

Activations come from the tensors each layer's ops save for backward
(:mod:`trainwall.models.ir`), counted once per tensor, in the precision's activation
format, divided across tensor-parallel ranks where partitioned (and everywhere
inside a block under sequence parallelism, Korthikanti et al. 2022):

* ``none``: every saved tensor;
* ``selective``: the attention core's own tensors are recomputed, its inputs Q, K, V
  kept (Korthikanti et al. 2022, section 4.2);
* ``full``: each layer keeps its input only, and during its backward one layer's
  whole set is live again (Chen et al. 2016).

A frozen layer through which gradients still flow saves only what its input gradient
needs; a layer before the first trainable one saves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwall.core.caches import bounded
from trainwall.models.ir import FP32, INDEX, MASK, Layer, Op, Tensor
from trainwall.optimizer.precision import MOMENT_BYTES, OPTIMIZER_MOMENTS, STEP_COUNTER_BYTES, PrecisionPolicy

_FIXED_BYTES = {FP32: 4, MASK: 1, INDEX: 8}


@dataclass(frozen=True)
class ModelStates:
    """Per-device bytes of weights, gradients and optimizer state (with master copy)."""

    weights: float
    gradients: float
    optimizer_state: float
    frozen_weights: float = 0.0


def model_state_bytes(params: float, trainable_params: float, param_tensors: int, optimizer: str,
                      policy: PrecisionPolicy, zero_stage: int = 0, data_parallel: int = 1,
                      optimizer_state: str = "fp32") -> ModelStates:
    """ZeRO's model-state accounting (see the module docstring).

    ``param_tensors`` counts trainable parameter tensors (for Adam's step counters).
    """
    nd = max(1, data_parallel)
    frozen = params - trainable_params
    moments = OPTIMIZER_MOMENTS[optimizer] * MOMENT_BYTES[optimizer_state]
    k = policy.master_bytes + moments
    weights = trainable_params * policy.weight_bytes / (nd if zero_stage >= 3 else 1)
    grads = trainable_params * policy.grad_bytes / (nd if zero_stage >= 2 else 1)
    opt = trainable_params * k / (nd if zero_stage >= 1 else 1)
    opt += param_tensors * STEP_COUNTER_BYTES[optimizer]
    frozen_w = frozen * policy.weight_bytes / (nd if zero_stage >= 3 else 1)
    return ModelStates(weights, grads, opt, frozen_w)


def zero3_working_set(weights: list[float], gradients: list[float], shards: int) -> tuple[float, float]:
    """ZeRO-3's working set beyond the shards, as (weights, gradients) bytes, over units l in
    forward order with ``weights[l]`` their whole weights in the compute format and
    ``gradients[l]`` their whole gradients in the format they are reduced in (0: not trained):

        backward:  w_l + w_(l-1)  +  2 g_l + g_l / n
        forward:   w_l + w_(l+1)

    the largest over l. A unit is gathered whole to be computed while the next is gathered
    (the backward prefetches it explicitly, the forward as the unit computes: PyTorch's FSDP
    notes), and its gradients, whole, are copied into the reduce-scatter's input, which with
    the scattered output (1/n of it) lives beside them (Rajbhandari et al. 2020, section 5.3,
    for the gathering; the buffers as PyTorch's FSDP2 allocates them, measured with its
    MemTracker on 2 and 4 ranks in fp32 and in bf16 reduced in fp32: exact for equal units,
    an upper bound by at most half a unit's fp32 gradients otherwise,
    tests/test_zero3_against_fsdp2.py)."""
    if not weights:
        return 0.0, 0.0
    backward = max(((w + (weights[i - 1] if i else 0.0), (2 + 1 / shards) * g)
                    for i, (w, g) in enumerate(zip(weights, gradients))), key=sum)
    forward = max(w + (weights[i + 1] if i + 1 < len(weights) else 0.0) for i, w in enumerate(weights))
    return backward if sum(backward) >= forward else (forward, 0.0)


def tensor_bytes(elements: float, dtype: str, activation_bytes: int) -> float:
    return elements * _FIXED_BYTES.get(dtype, activation_bytes)


def layer_activation_bytes(layer: Layer, trainable: bool, grad_flows: bool, recompute: str,
                           activation_bytes: int, tp: int = 1, sequence_parallel: bool = False
                           ) -> tuple[float, float]:
    """(bytes kept per sample until backward, bytes live while this layer's backward runs).

    ``trainable``: this layer's parameters train. ``grad_flows``: an earlier layer
    trains, so the input gradient must be computed through this one. Cached on what the
    bytes depend on: the layer's ops and tensors (not the layer object), and the
    tensor-parallel split only where the layer has split ops.
    """
    if not trainable and not grad_flows:
        return 0.0, 0.0
    sharded = tp > 1 and layer.tensor_parallel
    return _saved_bytes(layer.ops, layer.input, layer.core_inputs, layer.inherited, trainable, grad_flows,
                        layer.checkpointed(recompute), activation_bytes, tp if sharded else 1,
                        sequence_parallel and sharded)


@bounded(8192)
def _saved_bytes(ops: tuple[Op, ...], x: Tensor | None, core_inputs: tuple[Tensor, ...], inherited: frozenset[int],
                 trainable: bool, grad_flows: bool, recompute: str, activation_bytes: int, tp: int,
                 sequence_parallel: bool) -> tuple[float, float]:
    """:func:`layer_activation_bytes` of a layer's parts (``tp`` > 1 only for a layer with split ops)."""
    sharded = tp > 1
    seq_split = sharded and sequence_parallel
    saved: dict[int, float] = {}
    core_tensors: set[int] = set()
    for op in ops:
        for tensor, purpose in op.saves:
            if purpose == "w" and not trainable:
                continue
            if grad_flows and tensor.id in inherited:  # the previous layer stores it
                continue
            split = tp if (tensor.tp and sharded) or seq_split else 1
            saved[tensor.id] = tensor_bytes(tensor.elements, tensor.dtype, activation_bytes) / split
            if tensor.core:
                core_tensors.add(tensor.id)
    full = sum(saved.values())
    if recompute == "none" or not saved:
        return full, full
    if recompute == "selective":
        for t in core_inputs:
            split = tp if (t.tp and sharded) or seq_split else 1
            saved[t.id] = tensor_bytes(t.elements, t.dtype, activation_bytes) / split
        kept = sum(b for tid, b in saved.items() if tid not in core_tensors)
        return kept, full
    if recompute == "full":
        if x is None:
            return full, full
        split = tp if seq_split else 1
        return tensor_bytes(x.elements, x.dtype, activation_bytes) / split, full
    raise ValueError(f"recompute must be none, selective or full, not {recompute!r}")
