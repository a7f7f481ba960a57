"""Convolutional networks (ResNet, MobileNetV2, keyword-spotting nets) as per-sample ops.

A convolution with C_in -> C_out channels, k x k kernel, ``groups`` groups and an
H_out x W_out output costs 2 * C_out * (C_in / groups) * k^2 * H_out * W_out forward
FLOPs; its backward costs the same again for the weight gradient and again for the
input gradient (none for the first layer, whose input needs no gradient).

Saved tensors follow PyTorch's autograd formulas (tools/autograd/derivatives.yaml):
a convolution keeps its input, batch norm its input (plus per-channel statistics,
per batch and negligible), ReLU its *output*, ReLU6 (hardtanh) its *input*, max
pooling its input and int64 indices, a linear layer its input, dropout a 1-byte
mask, cross-entropy its fp32 log-probabilities. A tensor saved twice (a ReLU output
that is the next convolution's input) counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainwall.core.caches import bounded
from trainwall.models.ir import FP32, INDEX, INPUT, MASK, Builder, Layer, Network, Op, Tensor


@dataclass
class _Trace:
    """Tracks the current activation while a network is written down op by op."""

    b: Builder
    c: int
    h: int
    w: int
    x: Tensor
    ops: list[Op] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    layer_input: Tensor | None = None

    def _new(self, c: int, h: int, w: int) -> Tensor:
        self.c, self.h, self.w = c, h, w
        self.x = self.b.tensor(c * h * w)
        return self.x

    def conv(self, c_out: int, k: int | tuple[int, int], stride: int = 1, groups: int = 1,
             bias: bool = False, padding: int | None = None, same: bool = False) -> None:
        """A k x k (or kh x kw) convolution; ``same`` gives TensorFlow's "SAME" output size ceil(H / stride)."""
        kh, kw = (k, k) if isinstance(k, int) else k
        if same:
            h, w = -(-self.h // stride), -(-self.w // stride)
        else:
            pad = kh // 2 if padding is None else padding
            h = (self.h + 2 * pad - kh) // stride + 1
            w = (self.w + 2 * pad - kw) // stride + 1
        c_in, x = self.c, self.x
        macs = c_out * (c_in // groups) * kh * kw * h * w
        params = c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)
        self.ops.append(Op(f"conv {kh}x{kw} {c_in}->{c_out}" + (f" /{stride}" if stride > 1 else ""),
                           "gemm", flops=2.0 * macs, params=params, param_tensors=2 if bias else 1,
                           reads=c_in * self.h * self.w, writes=c_out * h * w, saves=((x, "w"),)))
        self._new(c_out, h, w)

    def batchnorm(self) -> None:
        x = self.x
        self.ops.append(Op("batch norm", "elementwise", params=2 * self.c, param_tensors=2,
                           reads=self.c * self.h * self.w, writes=self.c * self.h * self.w,
                           saves=((x, "x"),)))
        self._new(self.c, self.h, self.w)

    def act(self, kind: str) -> None:
        x = self.x
        out = self._new(self.c, self.h, self.w)
        saved = out if kind == "relu" else x  # ReLU keeps its output; ReLU6/SiLU/GELU their input
        n = self.c * self.h * self.w
        self.ops.append(Op(kind, "elementwise", reads=n, writes=n, saves=((saved, "x"),)))

    def conv_bn_act(self, c_out: int, k: int, stride: int = 1, groups: int = 1, act: str | None = "relu") -> None:
        self.conv(c_out, k, stride, groups)
        self.batchnorm()
        if act:
            self.act(act)

    def add(self) -> None:
        n = self.c * self.h * self.w
        self.ops.append(Op("residual add", "elementwise", reads=2 * n, writes=n))
        self._new(self.c, self.h, self.w)

    def maxpool(self, k: int, stride: int, padding: int) -> None:
        x, n_in = self.x, self.c * self.h * self.w
        h = (self.h + 2 * padding - k) // stride + 1
        w = (self.w + 2 * padding - k) // stride + 1
        idx = self.b.tensor(self.c * h * w, INDEX)
        self.ops.append(Op(f"max pool {k}x{k}", "elementwise", reads=n_in, writes=self.c * h * w,
                           saves=((x, "x"), (idx, "x"))))
        self._new(self.c, h, w)

    def global_avgpool(self) -> None:
        n = self.c * self.h * self.w
        self.ops.append(Op("global average pool", "elementwise", reads=n, writes=self.c))
        self._new(self.c, 1, 1)

    def dropout(self) -> None:
        n = self.c * self.h * self.w
        self.ops.append(Op("dropout", "elementwise", reads=n, writes=n,
                           saves=((self.b.tensor(n, MASK), "x"),)))
        self._new(self.c, self.h, self.w)

    def linear(self, n_out: int) -> None:
        n_in, x = self.c * self.h * self.w, self.x
        self.ops.append(Op(f"linear {n_in}->{n_out}", "gemm", flops=2.0 * n_in * n_out,
                           params=n_in * n_out + n_out, param_tensors=2, reads=n_in, writes=n_out,
                           saves=((x, "w"),)))
        self._new(n_out, 1, 1)

    def loss(self) -> None:
        n = self.c
        self.ops.append(Op("cross-entropy loss", "loss", reads=n, writes=n,
                           saves=((self.b.tensor(n, FP32), "x"),)))

    def begin(self) -> Tensor:
        self.layer_input = self.x
        return self.x

    def end(self, name: str) -> None:
        def saved(ops) -> set[int]:
            return {tensor.id for op in ops for tensor, _ in op.saves}

        previous = saved(self.layers[-1].ops) if self.layers else set()
        inherited = frozenset(saved(self.ops) & previous)
        self.layers.append(Layer(name, tuple(self.ops), input=self.layer_input, inherited=inherited))
        self.ops = []


def _start(channels: int, height: int, width: int) -> _Trace:
    b = Builder()
    return _Trace(b, channels, height, width, b.tensor(channels * height * width, INPUT))


def _network(name: str, t: _Trace, channels: int, height: int, width: int) -> Network:
    return Network(name, tuple(t.layers), sample_elements=channels * height * width)


#: Networks kept per builder: a CNN is tens to about a hundred kB (ResNet-50 and
#: MobileNetV2 at 224 px: about 90 kB), so 64 architectures x input sizes take at most
#: about 6 MB per builder.
NETWORKS_MAXSIZE = 64


@bounded(NETWORKS_MAXSIZE)
def resnet(blocks: tuple[int, ...], bottleneck: bool, image_size: int, classes: int,
           channels: int = 3, width: int | None = None, name: str = "resnet") -> Network:
    """ResNet v1.5 (He et al. 2016; stride on the 3x3 convolution), as in torchvision / HF."""
    width = width or image_size
    t = _start(channels, image_size, width)
    t.begin()
    t.conv_bn_act(64, 7, stride=2)
    t.maxpool(3, 2, 1)
    t.end("stem")
    expansion = 4 if bottleneck else 1
    for stage, n in enumerate(blocks):
        mid = 64 * 2**stage
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            x_in, c_in, h_in, w_in = t.begin(), t.c, t.h, t.w
            if bottleneck:
                t.conv_bn_act(mid, 1)
                t.conv_bn_act(mid, 3, stride)
                t.conv_bn_act(mid * expansion, 1, act=None)
            else:
                t.conv_bn_act(mid, 3, stride)
                t.conv_bn_act(mid, 3, act=None)
            main = (t.x, t.c, t.h, t.w)
            if stride != 1 or c_in != mid * expansion:  # projection shortcut
                t.x, t.c, t.h, t.w = x_in, c_in, h_in, w_in
                t.conv(mid * expansion, 1, stride, padding=0)
                t.batchnorm()
            t.x, t.c, t.h, t.w = main
            t.add()
            t.act("relu")
            t.end(f"stage {stage + 1} block {i + 1}")
    t.begin()
    t.global_avgpool()
    t.linear(classes)
    t.loss()
    t.end("head")
    return _network(name, t, channels, image_size, width)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Channel rounding of the MobileNet reference code (Sandler et al. 2018)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


# (expansion t, output channels c, repeats n, first stride s): Sandler et al. 2018, Table 2.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@bounded(NETWORKS_MAXSIZE)
def mobilenet_v2(width_multiplier: float, image_size: int, classes: int, dropout: bool = True,
                 name: str = "mobilenet-v2") -> Network:
    """MobileNetV2 (Sandler et al. 2018): inverted residuals, ReLU6, linear bottlenecks."""
    t = _start(3, image_size, image_size)
    t.begin()
    t.conv_bn_act(_make_divisible(32 * width_multiplier), 3, stride=2, act="relu6")
    t.end("stem")
    for stage, (expand, c, n, s) in enumerate(MOBILENET_V2_SETTINGS):
        out = _make_divisible(c * width_multiplier)
        for i in range(n):
            stride = s if i == 0 else 1
            c_in = t.c
            t.begin()
            if expand != 1:
                t.conv_bn_act(c_in * expand, 1, act="relu6")
            t.conv_bn_act(t.c, 3, stride, groups=t.c, act="relu6")
            t.conv_bn_act(out, 1, act=None)
            if stride == 1 and c_in == out:
                t.add()
            t.end(f"block {stage + 1}.{i + 1}")
    t.begin()
    t.conv_bn_act(_make_divisible(1280 * max(1.0, width_multiplier)), 1, act="relu6")
    t.end("last conv")          # torchvision's features[18]: checkpointing recomputes it, not the classifier
    t.begin()
    t.global_avgpool()
    if dropout:
        t.dropout()
    t.linear(classes)
    t.loss()
    t.end("head")
    return _network(name, t, 3, image_size, image_size)


@bounded(NETWORKS_MAXSIZE)
def ds_cnn(frames: int, features: int, channels: int, blocks: int, classes: int,
           name: str = "ds-cnn") -> Network:
    """Depthwise-separable CNN for keyword spotting (Zhang et al. 2017, "Hello Edge", DS-CNN).

    Input: ``frames`` x ``features`` MFCCs; a 10x4 stride-2 convolution with "SAME"
    padding, then ``blocks`` depthwise 3x3 + pointwise 1x1 pairs, global average
    pooling, a classifier.
    """
    t = _start(1, frames, features)
    t.begin()
    t.conv(channels, (10, 4), stride=2, bias=True, same=True)
    t.batchnorm()
    t.act("relu")
    t.end("stem")
    for i in range(blocks):
        t.begin()
        t.conv_bn_act(channels, 3, groups=channels)
        t.conv_bn_act(channels, 1)
        t.end(f"ds block {i + 1}")
    t.begin()
    t.global_avgpool()
    t.linear(classes)
    t.loss()
    t.end("head")
    return _network(name, t, 1, frames, features)


@bounded(16)  # a two-layer net (about 3 kB); its four sizes rarely vary
def micro_speech(frames: int = 49, features: int = 40, filters: int = 8, classes: int = 4,
                 name: str = "micro-speech") -> Network:
    """TensorFlow Lite Micro's micro_speech "tiny_conv": one 10x8 stride-2 conv and a classifier."""
    t = _start(1, frames, features)
    t.begin()
    t.conv(filters, (10, 8), stride=2, bias=True, same=True)
    t.act("relu")
    t.end("conv")
    t.begin()
    t.linear(classes)
    t.loss()
    t.end("head")
    return _network(name, t, 1, frames, features)
