"""Transformer architectures (GPT, Llama, BERT) as per-sample ops.

One builder covers the family through its switches: learned or rotary positions,
LayerNorm or RMSNorm, GELU or SwiGLU FFN, grouped-query attention (``kv_heads``),
biases, dropout, tied or untied embeddings, pre-LN decoders or post-LN encoders.

Shapes (per sample, s tokens, hidden h, H = heads x head_dim, KV = kv_heads x
head_dim, f = ffn):

* QKV projections: 2 s h (H + 2 KV) FLOPs; attention QK^T and AV: 2 s^2 H each;
  output projection: 2 s H h; FFN: 2 s h f per matrix (2 for GELU, 3 for SwiGLU);
  LM head: 2 s h V. Backward is twice the forward for every matmul whose input and
  weight both need gradients (Narayanan et al. 2021, eq. 3).
* Saved activations follow what the kernels keep for backward. For a GPT block
  with dropout at 16 bits they add up to Korthikanti et al. 2022's
  s b h (34 + 5 a s / h) bytes: LayerNorm inputs 4sbh, QKV input 2sbh, Q and K
  4sbh, softmax output 2as^2b, its dropout mask as^2b and output 2as^2b, V 2sbh,
  output-projection input 2sbh, FFN input 2sbh, GELU input 8sbh, FC2 input 8sbh,
  two dropout masks 2sbh. SwiGLU (gate, up, SiLU output, product: 4 f per token;
  3 f with Megatron-LM's fused kernel, ``swiglu="fused"``), RMSNorm and GQA are derived
  from their own tensors, not forced into that formula.
* ``attention="flash"`` (FlashAttention; Dao et al. 2022) keeps no s^2 tensor: it
  saves Q, K, V, the output and the log-sum-exp per row, and its backward recomputes
  QK^T (2 s^2 H more FLOPs). ``"eager"`` materialises scores, probabilities and
  dropout masks; with grouped-query attention it saves K and V expanded to all heads,
  as ``repeat_kv`` before a batched matmul does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge, Le

from trainwall.core.caches import bounded
from trainwall.models.ir import FP32, INDEX, MASK, Builder, Layer, Network, Op, Tensor


#: Upper bounds of a transformer's sizes, physically generous (the largest published models
#: use about 1/100 of each: Llama-3-405B has 126 blocks, width 16,384, FFN 53,248, vocabulary
#: 128,256), so a typo such as ``layers = 10000000`` is refused before anything is built.
MAX_LAYERS = 10_000
MAX_HIDDEN = 2**20          # model width, head width
MAX_HEADS = 2**16           # attention heads, key/value heads
MAX_FFN = 2**22             # FFN width
MAX_VOCAB = 2**24           # vocabulary, token types, position-table rows

#: The sizes, each with its bounds (annotated_types constraints: the config schema, which is
#: derived from TransformerSpec, enforces them; see trainwall.core.config).
Layers = Annotated[int, Ge(1), Le(MAX_LAYERS)]
Width = Annotated[int, Ge(1), Le(MAX_HIDDEN)]
Heads = Annotated[int, Ge(1), Le(MAX_HEADS)]
FFNWidth = Annotated[int, Ge(1), Le(MAX_FFN)]
Vocab = Annotated[int, Ge(1), Le(MAX_VOCAB)]
Rows = Annotated[int, Ge(0), Le(MAX_VOCAB)]


@dataclass(frozen=True)
class TransformerSpec:
    """A transformer's shape: the one definition behind the catalog entries and the
    config file's inline ``[workload.architecture]`` table (kind = "transformer").

    ``head_dim`` defaults to hidden / heads; ``kv_heads`` to heads (multi-head attention).
    """

    layers: Layers                      # blocks, 1 to 10,000
    hidden: Width                       # model width, 1 to 2^20
    heads: Heads                        # 1 to 2^16
    ffn: FFNWidth                       # 1 to 2^22
    vocab: Vocab                        # 1 to 2^24
    kv_heads: Heads | None = None       # 1 to 2^16
    head_dim: Width | None = None       # 1 to 2^20
    ffn_kind: Literal["gelu", "swiglu"] = "gelu"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    position: Literal["learned", "rope"] = "learned"
    max_positions: Rows = 0             # learned position table rows, 0 to 2^24
    bias: bool = True
    dropout: bool = True
    tied_embeddings: bool = True
    fused_qkv: bool = True          # one QKV weight tensor (GPT-2, Megatron) or three (Llama, BERT)
    encoder: bool = False           # post-LN encoder with token types and a pooler (BERT)
    type_vocab: Rows = 0                # token types (BERT), 0 to 2^24
    lm_head: bool = True

    def __post_init__(self) -> None:
        if self.hidden % self.heads and self.head_dim is None:
            raise ValueError(f"heads = {self.heads} must divide hidden = {self.hidden} (or give head_dim)")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"kv_heads = {self.kv_heads} must divide heads = {self.heads}")

    @property
    def kv(self) -> int:
        return self.kv_heads or self.heads

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads


def _norm(b: Builder, spec: TransformerSpec, name: str, x: Tensor, s: int) -> tuple[Op, Tensor]:
    """A LayerNorm / RMSNorm: saves its input and per-token statistics (fp32)."""
    h = spec.hidden
    layernorm = spec.norm == "layernorm"
    stats = b.tensor(s * (2 if layernorm else 1), FP32)
    out = b.tensor(s * h)
    op = Op(name, "elementwise", params=h * (2 if layernorm else 1), param_tensors=2 if layernorm else 1,
            reads=s * h, writes=s * h, saves=((x, "x"), (stats, "x")))
    return op, out


def _linear(b: Builder, spec: TransformerSpec, name: str, x: Tensor, s: int, n_in: int, n_out: int,
            tp: bool, tensors: int = 1, out_tp: bool | None = None) -> tuple[Op, Tensor]:
    """A linear layer over s tokens: saves its input for the weight gradient."""
    bias = spec.bias
    op = Op(name, "gemm", flops=2.0 * s * n_in * n_out,
            params=n_in * n_out + (n_out if bias else 0), param_tensors=tensors * (2 if bias else 1),
            reads=s * n_in, writes=s * n_out, saves=((x, "w"),), tp=tp)
    return op, b.tensor(s * n_out, tp=tp if out_tp is None else out_tp)


def _dropout_add(b: Builder, spec: TransformerSpec, name: str, s: int) -> tuple[list[Op], Tensor]:
    """Bias-dropout-residual-add: a 1-byte mask per element when dropout is on."""
    h = spec.hidden
    saves = ((b.tensor(s * h, MASK), "x"),) if spec.dropout else ()
    return [Op(name, "elementwise", reads=2 * s * h, writes=s * h, saves=saves)], b.tensor(s * h)


def _attention(b: Builder, spec: TransformerSpec, s: int, q: Tensor, k: Tensor, v: Tensor,
               attention: str) -> tuple[list[Op], Tensor]:
    a, H, KV = spec.heads, spec.heads * spec.hd, spec.kv * spec.hd
    core = 2.0 * s * s * H
    if attention == "flash":
        out = b.tensor(s * H, tp=True)
        lse = b.tensor(a * s, FP32, tp=True)
        op = Op("attention (flash)", "attention", flops=2 * core, reads=s * (H + 2 * KV), writes=s * H,
                saves=((q, "x"), (k, "x"), (v, "x"), (out, "x"), (lse, "x")), tp=True,
                recompute_flops=core)
        return [op], out
    if attention != "eager":
        raise ValueError(f"attention must be 'flash' or 'eager', not {attention!r}")
    if KV != H:  # repeat_kv: K and V copied to every query head before the batched matmuls
        k_all, v_all = b.tensor(s * H, tp=True, core=True), b.tensor(s * H, tp=True, core=True)
        expand = [Op("repeat kv", "elementwise", reads=2 * s * KV, writes=2 * s * H, tp=True, core=True)]
    else:
        k_all, v_all, expand = k, v, []
    probs = b.tensor(a * s * s, tp=True, core=True)
    ops = expand + [
        Op("attention scores QK^T", "attention", flops=core, reads=s * 2 * H, writes=a * s * s,
           saves=((q, "x"), (k_all, "x")), tp=True, core=True),
        Op("softmax", "elementwise", reads=a * s * s, writes=a * s * s, saves=((probs, "x"),),
           tp=True, core=True),
    ]
    if spec.dropout:
        dropped = b.tensor(a * s * s, tp=True, core=True)
        ops.append(Op("attention dropout", "elementwise", reads=a * s * s, writes=a * s * s,
                      saves=((b.tensor(a * s * s, MASK, tp=True, core=True), "x"),), tp=True, core=True))
        probs = dropped
    out = b.tensor(s * H, tp=True)
    ops.append(Op("attention AV", "attention", flops=core, reads=a * s * s + s * H, writes=s * H,
                  saves=((probs, "x"), (v_all, "x")), tp=True, core=True))
    return ops, out


def _swiglu(b: Builder, n: int, gate: Tensor, up: Tensor, kernel: str) -> list[Op]:
    """SiLU(gate) x up over ``n`` elements, as the kernel keeps it for the backward:

    * ``eager`` (PyTorch autograd, Hugging Face's and torchtitan's Llama): two ops; SiLU keeps
      its input, the product both its inputs, SiLU(gate) and up: 3 tensors of n.
    * ``fused`` (Megatron-LM's ``bias_swiglu_impl``, ``megatron/core/fusions/fused_bias_swiglu.py``:
      ``SwiGLUFunction`` saves only its input, gate and up concatenated, and recomputes SiLU in
      its backward): one op reading 2 n and writing n, keeping 2 tensors of n.

    The down projection keeps the product (its input) either way."""
    if kernel == "fused":
        return [Op("SwiGLU (fused)", "elementwise", reads=2 * n, writes=n, saves=((gate, "x"), (up, "x")), tp=True)]
    if kernel != "eager":
        raise ValueError(f"swiglu must be 'eager' or 'fused', not {kernel!r}")
    silu = b.tensor(n, tp=True)
    return [Op("SiLU", "elementwise", reads=n, writes=n, saves=((gate, "x"),), tp=True),
            Op("gate x up", "elementwise", reads=2 * n, writes=n, saves=((silu, "x"), (up, "x")), tp=True)]


def _block(b: Builder, spec: TransformerSpec, s: int, attention: str, index: int, swiglu: str = "eager") -> Layer:
    h, H, KV, f = spec.hidden, spec.heads * spec.hd, spec.kv * spec.hd, spec.ffn
    x = b.tensor(s * h)
    ops: list[Op] = []
    if not spec.encoder:  # pre-LN decoder
        op, n1 = _norm(b, spec, "norm 1", x, s)
        ops.append(op)
    else:
        n1 = x
    if spec.fused_qkv:
        op, qkv = _linear(b, spec, "QKV projection", n1, s, h, H + 2 * KV, tp=True)
        ops.append(op)
    else:
        for name, width in (("Q projection", H), ("K projection", KV), ("V projection", KV)):
            op, _ = _linear(b, spec, name, n1, s, h, width, tp=True)
            ops.append(op)
    q, k, v = b.tensor(s * H, tp=True), b.tensor(s * KV, tp=True), b.tensor(s * KV, tp=True)
    if spec.position == "rope":
        ops.append(Op("rotary embedding", "elementwise", reads=s * (H + KV), writes=s * (H + KV), tp=True))
    att_ops, o = _attention(b, spec, s, q, k, v, attention)
    ops += att_ops
    op, _ = _linear(b, spec, "output projection", o, s, H, h, tp=True, out_tp=False)
    ops.append(op)
    drop, x1 = _dropout_add(b, spec, "dropout + residual 1", s)
    ops += drop
    if spec.encoder:
        op, n2 = _norm(b, spec, "norm 1 (post)", x1, s)
    else:
        op, n2 = _norm(b, spec, "norm 2", x1, s)
    ops.append(op)
    if spec.ffn_kind == "swiglu":
        gate_op, gate = _linear(b, spec, "FFN gate", n2, s, h, f, tp=True)
        up_op, up = _linear(b, spec, "FFN up", n2, s, h, f, tp=True)
        prod = b.tensor(s * f, tp=True)
        ops += [gate_op, up_op, *_swiglu(b, s * f, gate, up, swiglu)]
        op, _ = _linear(b, spec, "FFN down", prod, s, f, h, tp=True, out_tp=False)
        ops.append(op)
    elif spec.ffn_kind == "gelu":
        op, pre = _linear(b, spec, "FFN up", n2, s, h, f, tp=True)
        act = b.tensor(s * f, tp=True)
        ops += [op, Op("GELU", "elementwise", reads=s * f, writes=s * f, saves=((pre, "x"),), tp=True)]
        op, _ = _linear(b, spec, "FFN down", act, s, f, h, tp=True, out_tp=False)
        ops.append(op)
    else:
        raise ValueError(f"ffn_kind must be 'gelu' or 'swiglu', not {spec.ffn_kind!r}")
    drop, x2 = _dropout_add(b, spec, "dropout + residual 2", s)
    ops += drop
    if spec.encoder:
        op, _ = _norm(b, spec, "norm 2 (post)", x2, s)
        ops.append(op)
    return Layer(f"block {index}", tuple(ops), input=x, core_inputs=(q, k, v))


def _embedding(b: Builder, spec: TransformerSpec, s: int) -> Layer:
    h = spec.hidden
    ids = b.tensor(s, INDEX)
    ops = [Op("token embedding", "embedding", params=spec.vocab * h, param_tensors=1,
              reads=s, writes=s * h, saves=((ids, "w"),))]
    if spec.position == "learned":
        ops.append(Op("position embedding", "embedding", params=spec.max_positions * h, param_tensors=1,
                      reads=s, writes=s * h))
    if spec.type_vocab:
        ops.append(Op("token-type embedding", "embedding", params=spec.type_vocab * h, param_tensors=1,
                      reads=s, writes=s * h, saves=((b.tensor(s, INDEX), "w"),)))
    if spec.encoder:
        summed = b.tensor(s * h)
        op, _ = _norm(b, spec, "embedding norm", summed, s)
        ops.append(op)
    if spec.dropout:
        ops.append(Op("embedding dropout", "elementwise", reads=s * h, writes=s * h,
                      saves=((b.tensor(s * h, MASK), "x"),)))
    return Layer("embedding", tuple(ops), input=ids)


def _head(b: Builder, spec: TransformerSpec, s: int) -> Layer:
    h, V = spec.hidden, spec.vocab
    x = b.tensor(s * h)
    ops: list[Op] = []
    if spec.encoder:  # BERT pooler: dense + tanh on the first token
        pooled = b.tensor(h)
        ops += [Op("pooler dense", "gemm", flops=2.0 * h * h, params=h * h + h, param_tensors=2,
                   reads=h, writes=h, saves=((b.tensor(h), "w"),)),
                Op("pooler tanh", "elementwise", reads=h, writes=h, saves=((pooled, "x"),))]
        return Layer("pooler", tuple(ops), input=x)
    op, n = _norm(b, spec, "final norm", x, s)
    ops.append(op)
    if spec.lm_head:
        tied = spec.tied_embeddings
        ops.append(Op("LM head", "gemm", flops=2.0 * s * h * V, params=0 if tied else V * h,
                      param_tensors=0 if tied else 1, reads=s * h, writes=s * V,
                      saves=((n, "w"),), tp=True, weight_grad_flops=2.0 * s * h * V if tied else None))
        ops.append(Op("cross-entropy loss", "loss", reads=s * V, writes=s * V,
                      saves=((b.tensor(s * V, FP32, tp=True), "x"),), tp=True))
    return Layer("head", tuple(ops), input=x)


# A network is tens of kB (Llama-3-70B: about 70 kB, one block object repeated): 256
# shapes x sequence lengths x attention kinds (a seq_len slider, a class's inline
# architectures) in under 20 MB.
@bounded(256)
def build(spec: TransformerSpec, seq_len: int, attention: str = "flash", name: str = "transformer",
          swiglu: str = "eager") -> Network:
    """The network for sequences of ``seq_len`` tokens, with the attention and SwiGLU kernels named
    (``swiglu`` matters only to a SwiGLU FFN; see :func:`_swiglu`)."""
    b = Builder()
    layers = [_embedding(b, spec, seq_len)]
    block = _block(b, spec, seq_len, attention, 0, swiglu)
    # Every block has the same shape: one Layer object, repeated, keeps caches small.
    layers += [block] * spec.layers
    layers.append(_head(b, spec, seq_len))
    return Network(name, tuple(layers), tokens_per_sample=seq_len, sample_elements=seq_len)
