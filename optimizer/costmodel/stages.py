"""Per layer and per pipeline stage: compute time, parameters, model states, activations.

Each layer is costed by :func:`trainwall.optimizer.compute.layer_cost` (roofline per op)
and its activations by :func:`activation_case`; a run of identical layers (a stack of
equal transformer blocks is one layer object repeated) is costed once and its values
repeated, so every sum below still adds one term per layer, in layer order. A stage
i holds its layers' model states (ZeRO, :func:`trainwall.optimizer.memory.model_state_bytes`,
sharded over the data x context-parallel ranks) plus activations

    kept_i x micro-batches in flight + transient_i

with kept_i the bytes its layers keep per micro-batch until the backward and
transient_i the largest transient of any of its layers (see :func:`activation_case`),
both 1 / cp of a micro-batch's under context parallelism (a rank holds s / cp tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby, repeat
from typing import TypeVar

from trainwall.core.caches import bounded
from trainwall.models.ir import FP32, Layer, Op
from trainwall.optimizer.compute import LayerCost, layer_cost
from trainwall.optimizer.costmodel.resolve import ResolvedPlan
from trainwall.optimizer.memory import (ModelStates, layer_activation_bytes, model_state_bytes, tensor_bytes,
                                        zero3_working_set)

T = TypeVar("T")


def device_params(layer: Layer, tp: int) -> float:
    """Parameters of ``layer`` held by one tensor-parallel rank (embeddings are vocab-parallel)."""
    if tp == 1:
        return float(layer.params)
    return _sharded_params(layer.ops, tp)


@bounded(8192)
def _sharded_params(ops: tuple[Op, ...], tp: int) -> float:
    return sum(op.params / (tp if (op.tp or op.kind == "embedding") else 1) for op in ops)


@bounded(8192)
def _working_set(ops: tuple[Op, ...], activation_bytes: int, tp: int) -> float:
    """Bytes per sample one op needs live at once beyond what is kept: its input and output in the
    forward pass; for the loss, the two fp32 gradients its backward holds at once, of the
    log-probabilities and of the logits, 2 x 4 bytes per logit in any precision (measured with
    PyTorch's MemTracker at ``log_softmax_backward``, the step's peak when the vocabulary is
    large; torchtitan PR #996: chunking Llama-3-8B's loss, 8,192 tokens x 128,256 logits, cut
    the peak by 7.3 GiB, about these 7.8 GiB)."""
    def live(op: Op) -> float:
        if op.kind == "loss":
            return 2 * tensor_bytes(op.writes, FP32, activation_bytes)
        return (op.reads + op.writes) * activation_bytes
    return max((live(op) / (tp if op.tp else 1) for op in ops), default=0.0)


def activation_case(layer: Layer, trains: bool, flows: bool, recompute: str, activation_bytes: int,
                    tp: int, sp: bool) -> tuple[float, float]:
    """(bytes per sample kept until the backward, bytes per sample live only transiently).

    Transient: a recomputed layer's full saved set during its own backward, and in any
    case one op's input and output during the forward pass. A stage holds the sum of
    the kept bytes (per micro-batch in flight) plus the largest transient. The
    optimiser's layer-selection model takes its coefficients from here, per case.
    """
    kept, full = layer_activation_bytes(layer, trains, flows, recompute, activation_bytes, tp, sp)
    return kept, max(full - kept, _working_set(layer.ops, activation_bytes, tp))


def gradient_flows(plan: ResolvedPlan) -> tuple[bool, ...]:
    """Per layer: does an earlier layer train (so this one computes its input gradient)?"""
    flows, upstream = [], False
    for layer, trains in zip(plan.network.layers, plan.trainable):
        flows.append(upstream)
        upstream = upstream or (trains and layer.params > 0)
    return tuple(flows)


def per_layer(plan: ResolvedPlan, flows: tuple[bool, ...], fn: Callable[[Layer, bool, bool], T]) -> list[T]:
    """``fn(layer, trains, flows)`` for every layer, computed once per run of identical layers."""
    out: list[T] = []
    for (layer, trains, flow), run in groupby(zip(plan.network.layers, plan.trainable, flows)):
        out.extend(repeat(fn(layer, trains, flow), sum(1 for _ in run)))
    return out


def layer_costs(plan: ResolvedPlan, flows: tuple[bool, ...], split: bool = True) -> list[LayerCost]:
    """Each layer's cost for one micro-batch: tensor- and context-parallel split as planned,
    or (``split`` False) whole on one device."""
    tp, sp, cp = (plan.tensor_parallel, plan.sequence_parallel, plan.context_parallel) if split else (1, False, 1)
    return per_layer(plan, flows, lambda layer, trains, flow: layer_cost(
        layer, trains, flow, plan.micro_batch, plan.rates, plan.recompute, tp, sp, cp))


@dataclass(frozen=True)
class StageStates:
    """One stage's model states on one device: the static part of its memory."""

    states: ModelStates
    weights: float      # in RAM: the trained weights, the frozen ones except on a microcontroller, and ZeRO-3's gathered ones
    gradients: float    # ZeRO's, and ZeRO-3's unsharded gradients of the layer in its backward
    params: float
    trainable: float
    other: float        # the runtime's reserve

    @property
    def static(self) -> float:
        """weights + gradients + optimizer state + other."""
        return self.weights + self.gradients + self.states.optimizer_state + self.other


@dataclass(frozen=True)
class Stages:
    """Per pipeline stage, for one micro-batch on one device."""

    time: tuple[float, ...]       # forward + backward + recompute (+ the first stage's augmentation)
    backward: tuple[float, ...]   # backward + recompute
    states: tuple[StageStates, ...]
    kept: tuple[float, ...]       # activation bytes kept per micro-batch in flight
    transient: tuple[float, ...]  # the largest transient activation
    attention: tuple[float, ...]  # of time, the attention matmuls' (forward + backward)
    gemm: tuple[tuple[float, float, float], ...]   # the GEMMs' forward, backward and weight-gradient seconds


def stages(plan: ResolvedPlan, costs: list[LayerCost], flows: tuple[bool, ...], augment: float) -> Stages:
    """Time, model states and activations of every stage (``augment``: seconds the first
    stage spends augmenting a micro-batch on the accelerator)."""
    total = [c.forward_s + c.backward_s + c.recompute_s for c in costs]
    backward = [c.backward_s + c.recompute_s for c in costs]
    acts = per_layer(plan, flows, lambda layer, trains, flow: activation_case(
        layer, trains, flow, plan.recompute, plan.policy.activation_bytes, plan.tensor_parallel,
        plan.sequence_parallel))
    params = per_layer(plan, flows, lambda layer, trains, flow: device_params(layer, plan.tensor_parallel))
    per_rank, out = plan.micro_batch / plan.context_parallel, []    # a rank holds s / cp of each sample
    for i, (a, b) in enumerate(plan.bounds):
        kept = transient = 0.0
        for k, live in acts[a:b]:
            kept += k
            transient = max(transient, live)
        out.append((sum(total[a:b]) + (augment if i == 0 else 0.0), sum(backward[a:b]),
                    _stage_states(plan, params, a, b), kept * per_rank, transient * per_rank,
                    sum(c.attention_s for c in costs[a:b]),
                    tuple(sum(getattr(c, f) for c in costs[a:b]) for f in ("gemm_forward_s", "gemm_backward_s",
                                                                          "wgrad_s"))))
    return Stages(*(tuple(column) for column in zip(*out)))


def _stage_states(plan: ResolvedPlan, params: list[float], a: int, b: int) -> StageStates:
    """ZeRO's model states of layers [a, b) on one device of the stage."""
    mask, layers = plan.trainable[a:b], plan.network.layers[a:b]
    held = sum(params[a:b])
    trainable = sum(p for p, tr in zip(params[a:b], mask) if tr)
    tensors = sum(layer.param_tensors for layer, tr in zip(layers, mask) if tr)
    # ZeRO shards over every rank holding the same weights: data x context parallel (Megatron-LM's
    # distributed optimizer shards over its data-parallel group with context parallelism)
    shards = plan.data_parallel * plan.context_parallel
    states = model_state_bytes(held, trainable, tensors, plan.optimizer, plan.policy, plan.zero_stage,
                               shards, plan.optimizer_state)
    weights = states.weights + (0.0 if plan.mcu else states.frozen_weights)
    gathered_weights, gathered_gradients = _zero3_gathered(plan, params, a, b, shards)
    return StageStates(states, weights + gathered_weights, states.gradients + gathered_gradients, held, trainable,
                       plan.runtime_reserve)


def _zero3_gathered(plan: ResolvedPlan, params: list[float], a: int, b: int, shards: int) -> tuple[float, float]:
    """ZeRO-3's working set on one device of the stage, (weights, gradients), with each
    trainwall layer one unit (FSDP applied per block; its root unit, the embedding with the
    head, is larger): :func:`trainwall.optimizer.memory.zero3_working_set` over the stage's
    layers, whole on this tensor-parallel rank, the gradients of the trained ones in the
    format they are reduced in. Nothing is gathered when the weights are in one piece
    (``shards``, the ranks sharing them, 1)."""
    if plan.zero_stage < 3 or shards <= 1:
        return 0.0, 0.0
    return zero3_working_set([params[i] * plan.policy.weight_bytes for i in range(a, b)],
                             [params[i] * plan.policy.grad_bytes if plan.trainable[i] else 0.0 for i in range(a, b)],
                             shards)
