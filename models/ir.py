"""A small intermediate representation of a network, per sample.

A :class:`Network` is an ordered tuple of :class:`Layer` (the units that can be
frozen or trained: an embedding, a transformer block, a bottleneck, a head). A layer
is an ordered tuple of :class:`Op`. Every figure is per sample (one sequence of
``seq_len`` tokens, or one image), so the cost model scales by the micro-batch.

An op records what the cost model needs and nothing else:

* ``flops``: forward FLOPs of its matrix multiplications / convolutions, 2 per
  multiply-add (the convention of PaLM appendix B and of PyTorch's
  ``FlopCounterMode``); element-wise work is not counted as FLOPs but as bytes;
* ``params`` and ``param_tensors`` (``torch.optim`` keeps per-tensor state);
* ``reads`` / ``writes``: activation elements moved per sample in the forward pass
  (the memory side of the roofline);
* ``saves``: the activation tensors autograd keeps for the backward pass, each with
  the gradient that needs it: ``"w"`` for the weight gradient only (a linear
  layer's input), ``"x"`` for the input gradient (an activation function's input,
  a softmax's output, a dropout mask, a norm's input). Tensors are identified so a
  tensor saved by two ops (a norm's output that is the next linear's input) counts
  once, as autograd stores it once.

Tensor ``dtype`` classes: ``act`` (the training's activation format: 4 bytes in
fp32, 2 in mixed precision), ``fp32`` (norm statistics, the loss's log-probabilities),
``mask`` (1-byte dropout masks), ``index`` (8-byte int64 indices), ``input`` (the
data sample as the model receives it, in the activation format).

``tp`` marks ops and tensors partitioned across tensor-parallel ranks (attention
heads, the FFN's inner dimension; Shoeybi et al. 2019); ``core`` marks the attention
core (QK^T, softmax, dropout, AV), which selective recompute recomputes instead of
storing (Korthikanti et al. 2022, section 4.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from itertools import count

ACT, FP32, MASK, INDEX, INPUT = "act", "fp32", "mask", "index", "input"
#: ``loss``: the cross-entropy, an element-wise op computed in fp32 whatever the activations
#: (the logits upcast; PyTorch's log-softmax and NLL run on it).
KINDS = ("gemm", "attention", "elementwise", "embedding", "loss")


@dataclass(frozen=True)
class Tensor:
    """An activation tensor: ``elements`` per sample, a dtype class, TP-sharded or not."""

    id: int
    elements: float
    dtype: str = ACT
    tp: bool = False
    core: bool = False


@dataclass(frozen=True)
class Op:
    """One kernel of the forward pass (see the module docstring for each field)."""

    name: str
    kind: str
    flops: float = 0.0
    params: int = 0
    param_tensors: int = 0
    reads: float = 0.0
    writes: float = 0.0
    saves: tuple[tuple[Tensor, str], ...] = ()
    tp: bool = False
    core: bool = False
    weight_grad_flops: float | None = None  # set for a tied head: no params of its own, a weight gradient all the same
    recompute_flops: float = 0.0            # forward work its own backward redoes (FlashAttention's QK^T)

    @property
    def wgrad_flops(self) -> float:
        """Backward FLOPs of the weight gradient (= forward FLOPs for a linear/conv)."""
        if self.weight_grad_flops is not None:
            return self.weight_grad_flops
        return self.flops if self.params and self.kind == "gemm" else 0.0

    @property
    def igrad_flops(self) -> float:
        """Backward FLOPs of the input gradient(s).

        A linear/conv's input gradient costs its forward FLOPs again; the attention
        core's two batched matmuls each have two operands, hence twice the forward.
        """
        if self.kind == "attention":
            return 2.0 * self.flops
        return self.flops if self.kind == "gemm" else 0.0


@dataclass(frozen=True, eq=False)
class Layer:
    """A unit that trains or freezes as a whole.

    Compared and hashed by identity: the cost model caches per-layer results keyed on
    the layer object, and a stack of identical blocks is one object repeated.

    ``input`` is what full recompute keeps of it; ``core_inputs`` are the tensors
    selective recompute keeps so it can redo the attention core (Q, K, V);
    ``inherited`` the ids of tensors it saves that the previous layer saves too (a
    ReLU output that is the next block's input), stored once, by the previous layer.
    """

    name: str
    ops: tuple[Op, ...]
    input: Tensor | None = None
    core_inputs: tuple[Tensor, ...] = ()
    inherited: frozenset[int] = frozenset()  # saved tensors the previous layer already saves

    @cached_property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    def checkpointed(self, recompute: str) -> str:
        """The recompute this layer gets under the training's ``recompute``: all of it, but for
        the layer that holds the loss, which activation checkpointing never recomputes. It wraps
        the feature layers: Megatron-LM's ``--recompute-granularity full`` checkpoints the
        transformer layers (its HFU formula counts the logits' 6BsVh once: Narayanan et al.
        2021, eq. 3); Hugging Face's ``gradient_checkpointing_enable`` and torchtitan wrap each
        decoder block; torchvision models are checkpointed over ``features``, not the classifier.
        The head then keeps its saved tensors, the loss's fp32 log-probabilities among them
        (measured with PyTorch's MemTracker: a checkpointed GPT-2 keeps them)."""
        return "none" if any(op.kind == "loss" for op in self.ops) else recompute

    @cached_property
    def param_tensors(self) -> int:
        return sum(op.param_tensors for op in self.ops)

    @cached_property
    def flops(self) -> float:
        return sum(op.flops for op in self.ops)

    @cached_property
    def tensor_parallel(self) -> bool:
        """Some op is split across tensor-parallel ranks (Megatron's column/row-parallel GEMMs)."""
        return any(op.tp for op in self.ops)


@dataclass(frozen=True)
class Network:
    """An architecture at one input size: its layers in forward order, per sample."""

    name: str
    layers: tuple[Layer, ...]
    tokens_per_sample: int = 0
    sample_elements: int = 0
    description: str = ""

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def param_tensors(self) -> int:
        return sum(layer.param_tensors for layer in self.layers)

    @property
    def forward_flops(self) -> float:
        """Forward matmul/conv FLOPs per sample."""
        return sum(layer.flops for layer in self.layers)


@dataclass
class Builder:
    """Helps architecture modules emit ops and tensors with unique identities."""

    _ids: count = field(default_factory=lambda: count(1))

    def tensor(self, elements: float, dtype: str = ACT, tp: bool = False, core: bool = False) -> Tensor:
        return Tensor(next(self._ids), float(elements), dtype, tp, core)
