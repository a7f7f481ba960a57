"""Compute time of a layer on one device: a roofline per op.

For every op, forward and backward,

    t = max( FLOPs / (peak_precision x gemm_efficiency),
             bytes / (memory_bandwidth x memory_bandwidth_efficiency) )

(Williams, Waterman & Patterson 2009, "Roofline"), so a big GEMM runs at the
device's measured GEMM ceiling and an element-wise kernel at its bandwidth, and a
small batch is honestly slower per sample. Bytes are the activations read and
written plus, for a GEMM, its weights. Backward:

* FLOPs: the weight gradient (if the layer trains) plus the input gradient (if an
  earlier layer trains) - each the forward FLOPs again for a linear layer, twice for
  the attention core's two-operand matmuls (Narayanan et al. 2021, eq. 3);
* bytes: the backward reads the saved inputs and the output gradient and writes the
  input gradient: 2 x reads + writes (plus weights read and weight gradients written).

Recompute re-runs forward work: the attention core (``selective``) or the whole
layer (``full``). HFU counts it, MFU does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwall.core.caches import bounded
from trainwall.models.ir import Layer, Op


@dataclass(frozen=True)
class Rates:
    """Effective device rates for one precision policy (reservations already applied)."""

    gemm_flops: float
    attention_flops: float
    bandwidth: float
    activation_bytes: int
    weight_bytes: int
    grad_bytes: int


@dataclass(frozen=True)
class LayerCost:
    """One layer, one micro-batch, one device: seconds and FLOPs."""

    forward_s: float
    backward_s: float
    recompute_s: float
    model_flops: float
    hardware_flops: float
    attention_s: float = 0.0   # of forward + backward, the attention matmuls' (what context parallelism's exchange hides behind)
    gemm_forward_s: float = 0.0   # of the forward, the GEMMs' (what Transformer Engine's TP overlap hides behind)
    gemm_backward_s: float = 0.0  # of the backward, the GEMMs' (input and weight gradients)
    wgrad_s: float = 0.0          # of which the weight gradients' (what Megatron's async TP collective hides behind)


def layer_cost(layer: Layer, trainable: bool, grad_flows: bool, micro_batch: int, rates: Rates,
               recompute: str, tp: int = 1, sequence_parallel: bool = False, cp: int = 1) -> LayerCost:
    """The roofline time and FLOPs of ``layer`` for one micro-batch on one device.

    ``grad_flows``: an earlier layer trains, so this layer computes input gradients.
    ``cp``: context parallelism, each sequence split over ``cp`` ranks. A rank holds s / cp
    of every sample's tokens, so every op's FLOPs and activations are 1 / cp of the sample's;
    the attention matmuls too, for each rank's queries meet the whole sequence's keys, and
    the load-balanced split (each rank one early and one late chunk of the causal mask) gives
    every rank 1 / cp of the scores (Megatron-LM / Transformer Engine context parallelism;
    Liu et al. 2023, "Ring Attention"). Weights are whole on every rank.
    Cached on what the cost depends on: the layer's ops (not the layer object), and the
    tensor-parallel split only where the layer has split ops.
    """
    sharded = tp > 1 and layer.tensor_parallel
    return _ops_cost(layer.ops, trainable, grad_flows, micro_batch / cp, rates, layer.checkpointed(recompute),
                     tp if sharded else 1, sequence_parallel and sharded)


@bounded(8192)
def _ops_cost(ops: tuple[Op, ...], trainable: bool, grad_flows: bool, samples: float, rates: Rates,
              recompute: str, tp: int, sequence_parallel: bool) -> LayerCost:
    """:func:`layer_cost` of a layer's ops for ``samples`` samples' worth of tokens (the
    micro-batch / cp); ``tp`` > 1 only for a layer with split ops."""
    sharded = tp > 1
    mb = samples
    fwd = bwd = core_fwd = attention = 0.0
    gemm = [0.0, 0.0, 0.0]                  # forward, backward, weight-gradient seconds of the GEMMs
    model = hardware = core_flops = 0.0
    upstream = grad_flows
    for op in ops:
        split = tp if sharded and (op.tp or sequence_parallel) else 1
        peak = rates.attention_flops if op.kind == "attention" else rates.gemm_flops
        w_bytes = op.params / (tp if sharded and op.tp else 1) * rates.weight_bytes
        act = rates.activation_bytes * mb / split
        f = op.flops * mb / split
        t_f = max(f / peak, ((op.reads + op.writes) * act + w_bytes) / rates.bandwidth)
        fwd += t_f
        attention += t_f if op.kind == "attention" else 0.0
        gemm[0] += t_f if op.kind == "gemm" else 0.0
        model += f
        if op.core:
            core_fwd += t_f
            core_flops += f
        needs_w = trainable and op.wgrad_flops > 0
        needs_x = upstream
        if needs_w or needs_x:
            fb = (op.wgrad_flops * needs_w + op.igrad_flops * needs_x) * mb / split
            extra = op.recompute_flops * mb / split
            b_bytes = (2 * op.reads + op.writes) * act + w_bytes * (1 + needs_w * rates.grad_bytes / max(1, rates.weight_bytes))
            t_b = max((fb + extra) / peak, b_bytes / rates.bandwidth)
            bwd += t_b
            attention += t_b if op.kind == "attention" else 0.0
            if op.kind == "gemm":
                gemm[1] += t_b
                gemm[2] += op.wgrad_flops * needs_w * mb / split / peak
            model += fb
            hardware += extra
        if trainable and op.params:
            upstream = True
    does_backward = trainable or grad_flows
    if not does_backward or recompute == "none":
        rec_s, rec_f = 0.0, 0.0
    elif recompute == "selective":
        rec_s, rec_f = core_fwd, core_flops
    else:
        rec_s, rec_f = fwd, sum(op.flops for op in ops) * mb / (tp if sharded else 1)
    return LayerCost(fwd, bwd, rec_s, model, model + hardware + rec_f, attention, *gemm)
