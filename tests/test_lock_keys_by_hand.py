"""A grade is a promise: every shipped Lock's answer key, derived a second way, by hand.

The keys come from the cost model (``Mission.lock_answers``); here each is re-derived from the
question's words, the raw data (``models/data``, ``hardware/data``, the mission TOML) and plain
arithmetic, never through ``trainwall.optimizer``, ``trainwall.challenges.quantities`` or
``evaluate``. Step times use docs/DESIGN.md's roofline (per kernel max(FLOPs / (peak x GEMM
ceiling), bytes / (bandwidth x efficiency)), ring 2(n-1)/n, the background load's share of network
links) on networks written down here from their papers' tables. Per Lock: the key is within a
quarter of its tolerance of the hand value; the wrong answers the question invites fall outside
its tolerance; the hand formula holds on the variants ``[variants.perturb]`` draws.
"""

from __future__ import annotations

import copy
import functools
import itertools
import tomllib
from collections import namedtuple
from pathlib import Path

import pytest
from trainwall.challenges.grading import prediction_correct
from trainwall.challenges.mission import parse_mission

ROOT = Path(__file__).resolve().parents[1]


def _toml(rel: str) -> dict:
    with open(ROOT / rel, "rb") as f:
        return tomllib.load(f)


DEVICES, HOSTS, LINKS = (_toml(f"hardware/data/{n}.toml") for n in ("devices", "hosts", "links"))
MODELS, MODALITIES = _toml("models/data/catalog.toml"), _toml("models/data/modalities.toml")
MISSIONS = [f"{t}/{p}" for t in ("cloud", "edge", "mobile", "tiny") for p in (1, 2, 3)]
# docs/INTERFACE.md "Configuration file": the defaults of the fields a scenario leaves out.
DEFAULTS = {"system": {"devices": 1, "background_network_load": 0.0, "reserved_compute_fraction": 0.0,
                       "reserved_memory": 0},
            "training": {"optimizer": "adam", "precision": "bf16-mixed", "recompute": "none", "micro_batch": 1,
                         "tensor_parallel": 1, "pipeline_parallel": 1, "trainable": "all", "local_steps": 1},
            "data": {"workers": 8, "augmentation": "standard", "augmentation_on": "cpu", "echo": 1}}
# docs/DESIGN.md "The cost model": bytes of (weight, gradient, fp32 master copy, activation) per
# element; moments per trained parameter (SGD 0, Momentum 1, Adam 2), 4 bytes each in fp32.
PRECISION = {"fp32": (4, 4, 0, 4, "fp32"), "fp16-mixed": (2, 2, 4, 2, "fp16"), "bf16-mixed": (2, 2, 4, 2, "bf16")}
MOMENTS = {"sgd": 0, "momentum": 1, "adam": 2}
# docs/DESIGN.md: the gradient collective hides behind backward "up to an overlap efficiency";
# the value is OVERLAP_EFFICIENCY in optimizer/costmodel/communication.py.
OVERLAP = 0.8


class Scenario:
    """A mission's scenario with a Lock's ``at`` overrides and the documented defaults."""

    def __init__(self, data: dict, at: dict | None = None):
        sec = {k: {**DEFAULTS.get(k, {}), **data["scenario"].get(k, {}), **(at or {}).get(k, {})}
               for k in ("workload", "system", "training", "data")}
        self.sys, self.t, self.d = sec["system"], sec["training"], sec["data"]
        self.model = MODELS[sec["workload"]["model"]]
        self.seq = sec["workload"].get("seq_len", self.model.get("seq_len", 0))
        self.dev = DEVICES[self.sys["accelerator"]]
        self.host, self.io = HOSTS[self.dev["host"]], MODALITIES[self.model["modality"]]["data"]
        self.n, t = self.sys["devices"], self.t
        self.dp = t.get("data_parallel", self.n // (t["tensor_parallel"] * t["pipeline_parallel"]))
        self.mb = t["micro_batch"]
        self.m = t.get("global_batch", self.mb * self.dp) // (self.mb * self.dp)   # micro-batches per step
        self.wb, self.gb, self.master, self.ab, gemm = PRECISION[t["precision"]]
        self.state = self.master + 4 * MOMENTS[t["optimizer"]]          # optimizer bytes per trained param
        keep = 1 - self.sys["reserved_compute_fraction"]                # "70 % of it": peak and bandwidth
        self.flops = self.dev["peak_flops"][gemm] * self.dev["gemm_efficiency"] * keep
        self.bw = self.dev["memory_bandwidth"] * self.dev["memory_bandwidth_efficiency"] * keep
        self.ref_peak = self.dev["peak_flops"][self.dev["reference_precision"]]
        self.capacity = min(self.dev["memory_bytes"] - self.sys["reserved_memory"],
                            self.sys.get("memory_budget", float("inf")))


# --- CNNs, kernel by kernel, per sample ----------------------------------------------------------

# A forward kernel: a GEMM or not, FLOPs (2 per multiply-add), parameters, activation elements read
# and written, and what autograd keeps for backward as (id, elements, format, needed for).
Kernel = namedtuple("Kernel", "gemm flops params reads writes saves")


class CNN:
    """Writes a CNN down. Saved tensors follow PyTorch's autograd (docs/DESIGN.md "Ground truth
    from PyTorch"): a convolution or linear layer keeps its input for the weight gradient ("w");
    batch norm its input, ReLU its output, ReLU6 its input, max pooling its input and int64
    indices, dropout a 1-byte mask, the loss fp32 log-probabilities (all "x": to pass a gradient)."""

    _ids = itertools.count()

    def __init__(self, c: int, h: int, w: int):
        self.shape, self.x, self.layers, self.ops = (c, h, w), self._new(c * h * w), [], []

    def _new(self, n, fmt="act", need="x"):
        return (next(self._ids), n, fmt, need)

    def op(self, c, h, w, saves=(), reads=None, gemm=False, flops=0.0, params=0):
        x_in, n_in = self.x, self.shape[0] * self.shape[1] * self.shape[2]
        self.shape, self.x = (c, h, w), self._new(c * h * w)
        saves = tuple({"in": x_in, "out": self.x, "w": (*x_in[:3], "w")}.get(s, s) for s in saves)
        self.ops.append(Kernel(gemm, flops, params, n_in if reads is None else reads, c * h * w, saves))
        return self

    def conv(self, c_out, k, stride=1, groups=1, bias=False, same=False, kw=None):
        """Padding k // 2 (odd k), or TensorFlow's "SAME" (output ceil(size / stride))."""
        (c, h, w), kw = self.shape, kw or k
        h, w = (-(-h // stride), -(-w // stride)) if same else ((h - 1) // stride + 1, (w - 1) // stride + 1)
        per = c // groups * k * kw
        return self.op(c_out, h, w, ("w",), gemm=True, flops=2.0 * c_out * h * w * per,
                       params=c_out * per + c_out * bias)

    def bn(self, act=None):
        self.op(*self.shape, ("in",), params=2 * self.shape[0])
        return self.op(*self.shape, ("out" if act == "relu" else "in",)) if act else self

    def head(self, classes, dropout=False):
        """Global average pool, [dropout], a linear classifier with bias, the cross-entropy loss."""
        c = self.shape[0]
        self.op(c, 1, 1)
        if dropout:
            self.op(c, 1, 1, (self._new(c, "mask"),))
        self.op(classes, 1, 1, ("w",), gemm=True, flops=2.0 * c * classes, params=(c + 1) * classes)
        self.op(classes, 1, 1, (self._new(classes, "fp32"),)).end()

    def end(self):
        self.layers.append(tuple(self.ops))
        self.ops = []


def resnet(a: dict) -> list:
    """ResNet v1.5 (He et al. 2016, Table 1; stride on the 3x3): stem (7x7/2 conv, BN, ReLU,
    3x3/2 max pool), one layer per residual block, the head."""
    net = CNN(3, a["image_size"], a.get("width", a["image_size"]))
    net.conv(64, 7, 2).bn("relu")
    c, h, w = net.shape
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1                       # 3x3/2 max pool, padding 1
    net.op(c, h, w, ("in", net._new(c * h * w, "index"))).end()
    grow = 4 if a["bottleneck"] else 1
    for stage, blocks in enumerate(a["blocks"]):
        mid = 64 * 2 ** stage
        for i in range(blocks):
            stride, x_in, shape_in = (2 if stage and not i else 1), net.x, net.shape
            convs = [(mid, 1, 1), (mid, 3, stride), (4 * mid, 1, 1)] if a["bottleneck"] else \
                [(mid, 3, stride), (mid, 3, 1)]
            for j, (c, k, s) in enumerate(convs):
                net.conv(c, k, s).bn("relu" if j < len(convs) - 1 else None)
            x_main, shape_main = net.x, net.shape
            if stride != 1 or shape_in[0] != mid * grow:       # projection shortcut
                net.x, net.shape = x_in, shape_in
                net.conv(mid * grow, 1, stride).bn()
            net.x, net.shape = x_main, shape_main
            net.op(*net.shape, reads=2 * x_main[1]).op(*net.shape, ("out",)).end()   # add, ReLU
    net.head(a["classes"])
    return net.layers


def _divisible(v: float) -> int:
    """MobileNet's channel rounding to a multiple of 8 (Sandler et al.'s reference code)."""
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


def mobilenet_v2(a: dict) -> list:
    """MobileNetV2 (Sandler et al. 2018, Table 2): the stem conv, one layer per inverted residual
    (1x1 expand, 3x3 depthwise, 1x1 project; ReLU6), the head (1x1 conv to 1280, pool, dropout, FC)."""
    wm = a["width_multiplier"]
    net = CNN(3, a["image_size"], a["image_size"])
    net.conv(_divisible(32 * wm), 3, 2).bn("relu6").end()
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            c_in, out, stride = net.shape[0], _divisible(c * wm), (s if i == 0 else 1)
            if t != 1:
                net.conv(c_in * t, 1).bn("relu6")
            net.conv(net.shape[0], 3, stride, groups=net.shape[0]).bn("relu6").conv(out, 1).bn()
            if stride == 1 and c_in == out:
                net.op(*net.shape, reads=2 * net.x[1])                      # residual add
            net.end()
    net.conv(_divisible(1280 * max(1.0, wm)), 1).bn("relu6").head(a["classes"], dropout=True)
    return net.layers


def ds_cnn(a: dict) -> list:
    """DS-CNN (Zhang et al. 2017): a 10x4/2 "SAME" conv with bias, BN, ReLU; per block a 3x3
    depthwise and a 1x1 pointwise conv, each with BN and ReLU; the head."""
    net = CNN(1, a["frames"], a["features"])
    net.conv(a["channels"], 10, 2, bias=True, same=True, kw=4).bn("relu").end()
    for _ in range(a["blocks"]):
        net.conv(a["channels"], 3, groups=a["channels"]).bn("relu").conv(a["channels"], 1).bn("relu").end()
    net.head(a["classes"])
    return net.layers


def layers_of(sc: Scenario) -> list[tuple[tuple[Kernel, ...], bool]]:
    """Each layer with whether it trains (docs/INTERFACE.md training.trainable)."""
    layers = {"resnet": resnet, "mobilenet-v2": mobilenet_v2, "ds-cnn": ds_cnn}[sc.model["family"]](sc.model["arch"])
    spec, n = sc.t["trainable"], len(layers)
    if isinstance(spec, list) or spec in ("all", "none"):
        mask = [i in spec for i in range(n)] if isinstance(spec, list) else [spec == "all"] * n
    else:
        side, k = spec.split(":")
        mask = [(i >= n - int(k)) if side == "last" else (i < int(k)) for i in range(n)]
    return list(zip(layers, mask))


def params(sc: Scenario) -> tuple[int, int]:
    """(parameters, trained parameters)."""
    per = [(sum(k.params for k in layer), tr) for layer, tr in layers_of(sc)]
    return sum(p for p, _ in per), sum(p for p, tr in per if tr)


# --- a CNN's step ----------------------------------------------------------------------------------

def cnn_step(sc: Scenario) -> tuple[float, float, float]:
    """One micro-batch on one device: (seconds, of which backward and recompute, model FLOPs =
    forward + backward, what MFU counts), by the roofline per kernel. Forward bytes: activations
    read + written, plus the weights. Backward where a weight trains (its gradient: the forward
    FLOPs again) or a gradient must pass (an earlier parameter trains; a GEMM's input gradient: the
    FLOPs again); it reads the saved input and the output gradient, writes the input gradient
    (2 reads + writes), reads the weights, writes their gradients. Full recompute re-runs the
    forward of each layer with a backward but the last, the classifier holding the loss (the
    checkpoint wraps the features); augmentation on the accelerator makes fp32 read + write
    passes over each sample (models/data/modalities.toml accelerator_passes)."""
    seconds = backward = flops = 0.0
    flows, act = False, sc.ab * sc.mb
    layers = list(layers_of(sc))
    for index, (layer, trains) in enumerate(layers):
        fwd = bwd = 0.0
        for k in layer:
            fwd += max(k.flops * sc.mb / sc.flops, ((k.reads + k.writes) * act + k.params * sc.wb) / sc.bw)
            w_grad = trains and k.gemm
            f = k.flops * sc.mb * (1 + w_grad + (flows and k.gemm))
            if w_grad or flows:
                b = (2 * k.reads + k.writes) * act + k.params * (sc.wb + w_grad * sc.gb)
                bwd += max((f - k.flops * sc.mb) / sc.flops, b / sc.bw)
            flows, flops = flows or (trains and k.params > 0), flops + f
        bwd += fwd if sc.t["recompute"] == "full" and bwd and index < len(layers) - 1 else 0.0
        seconds, backward = seconds + fwd + bwd, backward + bwd
    if sc.d["augmentation_on"] != "cpu":
        seconds += sc.io["accelerator_passes"][sc.d["augmentation"]] * sc.io["device_bytes"] * 8 * sc.mb / sc.bw
    return seconds, backward, flops


def memory(sc: Scenario) -> dict[str, float]:
    """Bytes per device without recompute. States (docs/DESIGN.md, ZeRO's accounting): weights
    (a microcontroller keeps frozen ones in flash), gradients and optimizer state of the trained
    parameters (Adam's 4-byte step counters, < 0.01 %, left out). Saved: each tensor autograd keeps,
    once, in layers that train (all) or that a gradient passes (the "x" ones). Working set: the
    widest kernel's input + output (docs/INTERFACE.md memory.activations: "saved activations ...
    and the largest transient"). Other: the runtime's reserve (devices.toml)."""
    size, kept, flows = {"act": sc.ab, "fp32": 4, "mask": 1, "index": 8}, {}, False
    for layer, trains in layers_of(sc):
        kept.update({tid: n * size[fmt] for k in layer for tid, n, fmt, need in k.saves
                     if trains or (flows and need == "x")})
        flows = flows or (trains and any(k.params for k in layer))
    total, trained = params(sc)
    return {"states": (trained if sc.dev["kind"] == "mcu" else total) * sc.wb + trained * (sc.gb + sc.state),
            "saved": sum(kept.values()) * sc.mb, "other": sc.dev["runtime_reserve_bytes"],
            "working": max((k.reads + k.writes) * sc.ab for layer, _ in layers_of(sc) for k in layer) * sc.mb}


def update_s(sc: Scenario, trained: float, shards: int = 1) -> float:
    """The optimizer update, a memory-bound pass (the "optimizer update" of docs/DESIGN.md's step):
    it reads and writes the weights and optimizer state (ZeRO-1: a 1/d shard), reads the gradients."""
    return (2 * trained * (sc.wb + sc.state / shards) + trained * sc.gb) / sc.bw


def input_rates(sc: Scenario) -> dict[str, float]:
    """One host's stages, samples/s (docs/DESIGN.md "Data pipeline"): storage bandwidth / sample
    bytes; workers (at least one, at most one per core) x core speed / CPU seconds per sample at the
    augmentation level (decoding only when the accelerator augments); host link / device bytes."""
    cores = sc.sys.get("cpu_cores_per_node", sc.host["cores"])
    level = sc.d["augmentation"] if sc.d["augmentation_on"] == "cpu" else "none"
    return {"storage": sc.host["storage_bandwidth"] / sc.io["sample_bytes"],
            "cpu": max(1, min(sc.d["workers"], cores)) * sc.host["core_speed"] / sc.io["cpu_seconds"][level],
            "host_link": min(sc.host["accelerators"], sc.n) * LINKS[sc.dev["host_link"]]["bandwidth"]
            / sc.io["device_bytes"]}


def bus(link: dict) -> float:
    """The bytes/s a collective moves over a link: NCCL's achievable share of its line rate
    (hardware/data/links.toml's ``achievable``: NVLink 4 370 of 450 GB/s, NDR 48 of 50 GB/s,
    per the NCCL team; the line rate where no figure is given)."""
    return link["bandwidth"] * link.get("achievable", 1.0)


def ring_s(n: int, size: float, bandwidth: float, latency: float) -> float:
    """Ring all-reduce (docs/DESIGN.md): 2(n-1)/n x bytes / bandwidth + 2(n-1) latency steps."""
    return 2 * (n - 1) / n * size / bandwidth + 2 * (n - 1) * latency


def sync_s(sc: Scenario, trained: float, shape: str = "best") -> float:
    """The gradient average (trained x g_bytes), per optimizer step (local SGD: once per local_steps).
    GPUs of one node: a ring over NVLink. A star: a ring (each sends 2(n-1)/n S to a neighbour) or an
    aggregator (each sends S and gets S back, 2 latency steps), the faster; on a radio (shared
    medium) every send crosses the one channel (ring 2(n-1) S, aggregator 2n S), the link's capacity
    less the background load."""
    size, n = trained * sc.gb, sc.dp
    if sc.dev["kind"] == "gpu":
        nv = LINKS[sc.dev["intra_node_link"]]
        return ring_s(n, size, bus(nv), nv["latency"]) / sc.t["local_steps"]
    link = LINKS[sc.dev["inter_node_link"]]
    free, shared = bus(link) * (1 - sc.sys["background_network_load"]), link["shared_medium"]
    ring = ((n if shared else 1) * 2 * (n - 1) / n * size / free, 2 * (n - 1) * link["latency"])
    agg = ((2 * n if shared else 1) * size / free, 2 * link["latency"])
    pick = {"ring": ring, "aggregator": agg, "best": min(ring, agg)}[shape]
    return sum(pick) / sc.t["local_steps"]


def cnn_run(sc: Scenario, shape: str = "best") -> dict[str, float]:
    """A data-parallel step: m micro-batches and the update; the gradient average hidden behind a
    micro-batch's backward up to the overlap efficiency; the data stall (loading overlaps compute,
    except on a microcontroller's one core). MFU (docs/DESIGN.md) = model FLOPs / (step x devices x
    the ONE reference peak). Demand: samples/s one host's accelerators consume when nothing waits."""
    (seconds, backward, model_flops), (_, trained) = cnn_step(sc), params(sc)
    compute = sc.m * seconds + update_s(sc, trained)
    sync = sync_s(sc, trained, shape) if sc.dp > 1 else 0.0
    busy = compute + max(0.0, sync - OVERLAP * backward)
    per_host = sc.mb * sc.m * min(sc.host["accelerators"], sc.n)
    load = per_host / (min(input_rates(sc).values()) * sc.d["echo"])
    stall = max(0.0, load - busy) if sc.d["workers"] > 0 and sc.dev["kind"] != "mcu" else load
    return {"compute": compute, "sync": sync, "busy": busy, "step": busy + stall, "demand": per_host / busy,
            "mfu": model_flops * sc.m * sc.dp / ((busy + stall) * sc.n * sc.ref_peak),
            "flops_per_sample": model_flops / sc.mb}


# --- Llama-3-70B by its catalog shape -------------------------------------------------------------

class Llama(namedtuple("Llama", "h L H KV f V")):
    """A Llama decoder from the catalog: hidden h, layers L, query width H and key/value width KV
    (heads and kv_heads x h / heads), FFN f, vocab V; untied embedding and head, RMSNorm, SwiGLU."""

    @classmethod
    def of(cls, a: dict) -> Llama:
        hd = a["hidden"] // a["heads"]
        return cls(a["hidden"], a["layers"], a["heads"] * hd, a["kv_heads"] * hd, a["ffn"], a["vocab"])

    @property
    def block(self) -> int:
        """A block's matrices: Q, K, V, O and SwiGLU's three."""
        return self.h * (self.H + 2 * self.KV) + self.H * self.h + 3 * self.h * self.f

    def per_gpu(self, tp: int) -> float:
        """Parameters per tensor-parallel rank: every matrix split (vocab-parallel embedding and
        head), the 2L + 1 RMSNorm weights replicated."""
        norms = (2 * self.L + 1) * self.h
        return (self.L * self.block + 2 * self.V * self.h) / tp + norms

    def memory_bound(self) -> tuple[int, int]:
        """Elements per token a block's memory-bound kernels move, forward (reads + writes) and
        backward (2 reads + writes): two RMSNorms, RoPE on Q and K, two residual adds, SiLU, gate x up."""
        kernels = [(self.h, self.h)] * 2 + [(self.H + self.KV,) * 2] + [(2 * self.h, self.h)] * 2 + \
            [(self.f, self.f), (2 * self.f, self.f)]
        return sum(r + w for r, w in kernels), sum(2 * r + w for r, w in kernels)


def llama_3d(sc: Scenario) -> dict[str, float]:
    """Llama-3-70B on t x p x d GPUs, 1F1B with m micro-batches of s tokens.

    A block per micro-batch on one GPU: GEMMs 3 x 2 s N_block / t at the GEMM ceiling;
    FlashAttention 4 s^2 H / t forward, backward 8 s^2 H / t plus 2 s^2 H / t for re-done QK^T
    (Dao et al. 2022: no s^2 tensor is kept, so selective recompute has nothing left to redo);
    memory-bound kernels at bandwidth, split by t (sequence parallelism). Stages balance FLOPs:
    80 blocks and a head worth 1.06 blocks leave 21 blocks on the slowest (the first, with the
    embedding), 17 and the head on the last. Exposed per micro-batch: 4 tensor-parallel all-reduces
    of s h bytes per block (Megatron-LM) over NVLink, of which the 2 backward ones hide behind the
    block's weight-gradient GEMMs (Megatron-LM's default overlap); a stage's boundary activation (s h / t bytes)
    sent forward and its gradient back over InfiniBand; every transfer at the link's bus bandwidth
    (:func:`bus`), the headroom in link-seconds at its line rate. Per step: the bubble (p - 1) t_stage; the
    gradient ring over the d GPUs (one per node) hidden behind the last stage's backward up to the
    overlap efficiency; the update (ZeRO-1 shards the optimizer state by d)."""
    net, t, p, s = Llama.of(sc.model["arch"]), sc.t["tensor_parallel"], sc.t["pipeline_parallel"], sc.seq
    ib, nv = LINKS[sc.dev["inter_node_link"]], LINKS[sc.dev["intra_node_link"]]
    free = ib["bandwidth"] * (1 - sc.sys["background_network_load"])      # link-seconds: the line rate
    moving = bus(ib) * (1 - sc.sys["background_network_load"])            # time: NCCL's bus bandwidth
    gemm, attn = 2 * s * net.block / t / sc.flops, 4 * s * s * net.H / t / sc.flops
    fwd_mem, bwd_mem = (n * s * sc.ab / t / sc.bw for n in net.memory_bound())
    t_stage = 21 * (3 * gemm + 3.5 * attn + fwd_mem + bwd_mem)
    last_backward = 17 * (2 * gemm + 2.5 * attn + bwd_mem) + 2 * (2 * s * net.h * net.V / t) / sc.flops
    pair = 2 * ring_s(t, s * net.h * sc.ab, bus(nv), nv["latency"])
    assert gemm > pair              # a block's weight gradients (one GEMM pass) outlast its 2 backward all-reduces
    tp = 21 * pair                  # exposed: the 2 forward all-reduces; the backward ones hide behind the weight gradients
    msg = s * net.h * sc.ab / t
    pp = 2 * (msg / moving + ib["latency"])
    first, middle = (21 * net.block + net.V * net.h) / t, 21 * net.block / t   # trained params per GPU
    sync = ring_s(sc.dp, first * sc.gb, moving, ib["latency"])
    step = (sc.m + p - 1) * t_stage + sc.m * (tp + pp) + max(0.0, sync - OVERLAP * last_backward) + \
        update_s(sc, first, sc.dp)
    flops = sc.t["global_batch"] * s * (6 * (net.L * net.block + net.V * net.h) + 12 * net.L * s * net.H)
    share = 2 * (sc.dp - 1) / sc.dp * sc.gb        # a ring member's sends per byte of gradient
    nic = {"middle stage": 2 * sc.m * msg + share * middle, "first stage": sc.m * msg + share * first}
    return {"step": step, "mfu": flops / (step * sc.n * sc.ref_peak), "t_stage": t_stage, "bubble_s": (p - 1) * t_stage,
            "headroom": max(nic.values()) / (step * free), "pp_load": 2 * sc.m * msg, "dp_load": share * first,
            "no_comm_mfu": flops / (((sc.m + p - 1) * t_stage) * sc.n * sc.ref_peak), "free": free}


# --- each Lock by hand: (value, {wrong answer the question invites: its value}) ------------------

def bytes_per_param(s: Scenario) -> float:
    """Weights + gradients + master copy + moments (docs/DESIGN.md: fp32 Adam 4 + 4 + 8)."""
    return s.wb + s.gb + s.state


def _cloud_1(at):
    s, mixed, frozen = at("adam_fp32_state_per_gpu"), at("adam_mixed_bytes_per_param"), at("frozen_model_share")
    tp = s.t["tensor_parallel"]
    per = Llama.of(s.model["arch"]).per_gpu(tp)
    state, share = per * bytes_per_param(s), per * frozen.wb / frozen.capacity
    return {"adam_fp32_state_per_gpu": (state, {"not split by tensor parallelism": state * tp, "weights and "
                                                "gradients only": per * 8, "one moment": per * 12, "plus a master copy": per * 20}),
            "adam_mixed_bytes_per_param": (bytes_per_param(mixed), {"no master copy": 12, "8-bit moments": 10,
                                                                    "fp32 weights and gradients": 20, "two bytes each": 8}),
            "frozen_model_share": (share, {"fp32 weights": 2 * share, "not split by tensor parallelism": share * tp,
                                           "Adam's 16 bytes": 8 * share, "over the node's memory": share / tp})}


def _cpu_wrongs(s: Scenario) -> dict:
    """Another augmentation level's CPU seconds, a server core's speed, one core or every core."""
    cpu, seconds, level = input_rates(s)["cpu"], s.io["cpu_seconds"], s.d["augmentation"]
    cores = s.sys.get("cpu_cores_per_node", s.host["cores"])
    workers = max(1, min(s.d["workers"], cores))
    out = {f"{other} augmentation": cpu * seconds[level] / seconds[other] for other in seconds if other != level}
    if s.host["core_speed"] != 1:
        out["a server core's speed"] = cpu / s.host["core_speed"]
    out.update({"one core": cpu / workers} if workers > 1 else {"every core": cpu * cores})
    return out


def _cloud_2(at):
    s, c, n = at("gpu_demand_images_per_s"), at("cpu_images_per_s_all_cores"), at("naive_stall_fraction")
    run, gpus = cnn_run(s), min(s.host["accelerators"], s.n)
    one, demand = input_rates(n)["cpu"] * n.d["echo"], cnn_run(n)["demand"]
    return {"gpu_demand_images_per_s": (run["demand"], {
                "one GPU's": run["demand"] / gpus, "FLOPs at the GEMM ceiling": gpus * s.flops / run["flops_per_sample"],
                "FLOPs at the dense peak": gpus * s.dev["peak_flops"]["bf16"] / run["flops_per_sample"]}),
            "cpu_images_per_s_all_cores": (input_rates(c)["cpu"], _cpu_wrongs(c)),
            "naive_stall_fraction": (1 - one / demand, {"the share not waiting": one / demand, "stall over compute":
                                                        demand / one - 1, "one GPU's demand": 1 - one * gpus / demand})}


def _cloud_3(at):
    s, h, b = at("naive_mfu"), at("naive_headroom_used"), at("naive_bubble_fraction")
    r, rh, p, bg = llama_3d(s), llama_3d(h), b.t["pipeline_parallel"], h.sys["background_network_load"]
    link_s = rh["step"] * rh["free"]
    return {"naive_mfu": (r["mfu"], {"the plan's 40 %": 0.40, "no exposed communication": r["no_comm_mfu"],
                                     "GEMM ceiling x m / (m + p - 1)": s.dev["gemm_efficiency"] * s.m / (s.m + p - 1)}),
            "naive_headroom_used": (rh["headroom"], {"the background load": bg, "the link's whole load":
                                                     bg + (1 - bg) * rh["headroom"], "over the full link": (1 - bg) * rh["headroom"],
                                                     "pipeline sends only": rh["pp_load"] / link_s, "gradient ring only": rh["dp_load"] / link_s}),
            "naive_bubble_fraction": ((p - 1) / (b.m + p - 1), {
                "over the whole step": llama_3d(b)["bubble_s"] / llama_3d(b)["step"],
                "m = the global batch": (p - 1) / (b.t["global_batch"] + p - 1), "(p - 1) / m": (p - 1) / b.m}),
            "interleaved_bubble_fraction": _interleaved_bubble(at("interleaved_bubble_fraction"))}


def _interleaved_bubble(i):
    """Narayanan et al. 2021, section 2.2.2: the interleaved bubble is (p - 1) / v stage times,
    the pipeline's time m + (p - 1) / v."""
    p, v = i.t["pipeline_parallel"], i.t["virtual_stages"]
    one_f_one_b = (p - 1) / (i.m + p - 1)
    return ((p - 1) / v / (i.m + (p - 1) / v), {"not interleaved": one_f_one_b, "1F1B's share halved": one_f_one_b / v,
                                                "(p - 1) / (v m)": (p - 1) / (v * i.m)})


def _edge_1(at):
    s = at("naive_activation_share")
    v = memory(s)["saved"] / s.capacity            # the question: "the saved activations"
    return {"naive_activation_share": (v, {"fp32 activations": 2 * v, "of all 64 GiB": v * s.capacity / s.dev["memory_bytes"],
                                           "one frame": v / s.mb})}


def _edge_2(at):
    s, c = at("frames_per_s_demand"), at("one_worker_frames_per_s")
    run = cnn_run(s)
    return {"frames_per_s_demand": (run["demand"], {"the whole GPU": run["demand"] / (1 - s.sys["reserved_compute_fraction"]),
                                                    "FLOPs at the GEMM ceiling": s.flops / run["flops_per_sample"]}),
            "one_worker_frames_per_s": (input_rates(c)["cpu"], _cpu_wrongs(c))}


def _edge_3(at):
    c, m, k = (at(q) for q in ("naive_comm_to_compute", "naive_mfu", "sixteen_local_steps_mfu"))
    rc, rm, rk, bg = cnn_run(c), cnn_run(m), cnn_run(k), c.sys["background_network_load"]
    quiet = cnn_run(at("naive_mfu", system={"background_network_load": 0.0}))["mfu"]
    return {"naive_comm_to_compute": (rc["sync"] / rc["compute"], {
                "no background load": (1 - bg) * rc["sync"] / rc["compute"], "10 Mb/s read as 10 MB/s":
                rc["sync"] / rc["compute"] / 8, "fp32 gradients": 2 * rc["sync"] / rc["compute"],
                "a ring": cnn_run(c, "ring")["sync"] / rc["compute"]}),
            "naive_mfu": (rm["mfu"], {"no averaging": rm["mfu"] * rm["step"] / rm["compute"], "no background load": quiet}),
            "sixteen_local_steps_mfu": (rk["mfu"], {"the first run's": rm["mfu"], "no averaging":
                                                    rk["mfu"] * rk["step"] / rk["compute"]})}


def _mobile_1(at):
    s, h, a = at("adam_fp32_bytes_per_param"), at("adam_fp32_hidden_over_weights"), at("naive_activation_share")
    total, trained = params(h)
    hidden = trained * (h.gb + h.state) / (total * h.wb)
    v = memory(a)["saved"] / a.capacity            # the question: "the saved activations"
    return {"adam_fp32_bytes_per_param": (bytes_per_param(s), {"weights and gradients": 8, "one moment": 12,
                                                               "plus a master copy": 20, "the weights": 4}),
            "adam_fp32_hidden_over_weights": (hidden, {"everything over the weights": hidden + 1, "the moments": 2,
                                                       "the gradients": 1}),
            "naive_activation_share": (v, {"fp16 activations": v / 2, "one image": v / a.mb})}


def _mobile_2(at):
    s, c = at("naive_stall_fraction"), at("cpu_images_per_s")
    supply = input_rates(s)["cpu"] * s.d["echo"]
    stall = 1 - supply / cnn_run(s)["demand"]
    forgot = 1 - supply / cnn_run(at("naive_stall_fraction", training={"recompute": "none"}))["demand"]
    return {"naive_stall_fraction": (stall, {"the share not waiting": 1 - stall, "no stall": 0.0,
                                             "ignoring the recompute": forgot}),
            "cpu_images_per_s": (input_rates(c)["cpu"], _cpu_wrongs(c))}


def _mobile_3(at):
    s, f, c = at("naive_memory_fraction"), at("fitting_mfu"), at("fitting_comm_to_compute")
    mem, rf, rc = memory(s), cnn_run(f), cnn_run(c)
    used, ratio = sum(mem.values()) / s.capacity, rc["sync"] / rc["compute"]
    quiet = cnn_run(at("fitting_mfu", system={"background_network_load": 0.0}))["mfu"]
    return {"naive_memory_fraction": (used, {"activations alone": (mem["saved"] + mem["working"]) / s.capacity,
                                             "no working set": used - mem["working"] / s.capacity,
                                             "no runtime reserve": used - mem["other"] / s.capacity}),
            "fitting_mfu": (rf["mfu"], {"no averaging": rf["mfu"] * rf["step"] / rf["compute"], "no background load": quiet,
                                        "against the fp32 peak": rf["mfu"] * f.ref_peak / f.dev["peak_flops"]["fp32"]}),
            "fitting_comm_to_compute": (ratio, {"an aggregator": cnn_run(c, "aggregator")["sync"] / rc["compute"],
                                                "no background load": ratio * (1 - c.sys["background_network_load"])})}


def _tiny_1(at):
    return {"sgd_fp32_bytes_per_param": (bytes_per_param(at("sgd_fp32_bytes_per_param")),
                                         {"the weights": 4, "with a momentum buffer": 12, "Adam's": 16})}


def _tiny_2(at):
    m, d = at("microphone_samples_per_s"), at("core_demand_samples_per_s")
    mic, run = input_rates(m)["storage"], cnn_run(d)
    flat = cnn_run(at("core_demand_samples_per_s", training={"recompute": "none"}))["demand"]
    return {"microphone_samples_per_s": (mic, {"16-bit samples per second": mic * m.io["sample_bytes"] / 2,
                                               "kB per second": mic * m.io["sample_bytes"] / 1000, "half": mic / 2}),
            "core_demand_samples_per_s": (run["demand"], {"FLOPs at the GEMM ceiling": d.flops / run["flops_per_sample"],
                                                          "no recompute": flat, "at the fp32 peak":
                                                          d.dev["peak_flops"]["fp32"] / run["flops_per_sample"]})}


def _tiny_3(at):
    m, c, n = at("naive_mfu"), at("naive_comm_to_compute"), at("no_recompute_memory")
    rm, rc, mem = cnn_run(m), cnn_run(c), memory(n)
    used, ratio, (total, trained) = sum(mem.values()) / n.capacity, rc["sync"] / rc["compute"], params(n)
    return {"naive_mfu": (rm["mfu"], {"no data stall": rm["mfu"] * rm["step"] / rm["busy"],
                                      "compute alone": rm["mfu"] * rm["step"] / rm["compute"]}),
            "naive_comm_to_compute": (ratio, {"an aggregator": cnn_run(c, "aggregator")["sync"] / rc["compute"],
                                              "no background load": ratio * (1 - c.sys["background_network_load"]),
                                              "the exposed part": rc["busy"] / rc["compute"] - 1}),
            "no_recompute_memory": (used, {"frozen weights in SRAM too": used + (total - trained) * n.wb / n.capacity,
                                           "no working set": used - mem["working"] / n.capacity,
                                           "no runtime reserve": used - mem["other"] / n.capacity}),
            **_tiny_3_power(at("naive_learning_power"), at("naive_duty_cycle"))}


def _tiny_3_power(p: Scenario, d: Scenario) -> dict:
    """A board computing at its run power, waiting (the microphone, the channel) at its idle
    power, its radio on while the average is exposed (devices.toml); the group learns R fresh
    keywords an hour, each trained echo times, B = micro_batch x m x boards a step."""
    run, dev = cnn_run(p), p.dev
    exposed = run["busy"] - run["compute"]
    energy = dev["power_w"] * run["compute"] + dev["idle_power_w"] * (run["step"] - run["compute"]) \
        + dev["radio_power_w"] * exposed
    learning = energy / run["step"]
    steps_per_hour = d.d["samples_per_hour"] * d.d["echo"] / (d.mb * d.m * d.dp)
    duty = steps_per_hour * cnn_run(d)["step"] / 3600
    return {"naive_learning_power": (learning, {"the run power": dev["power_w"],
                                                "without the radio": learning - dev["radio_power_w"] * exposed
                                                / run["step"]}),
            "naive_duty_cycle": (duty, {"each keyword once": duty / d.d["echo"], "per board": duty / d.dp})}


HAND = {"cloud/1": _cloud_1, "cloud/2": _cloud_2, "cloud/3": _cloud_3, "edge/1": _edge_1, "edge/2": _edge_2,
        "edge/3": _edge_3, "mobile/1": _mobile_1, "mobile/2": _mobile_2, "mobile/3": _mobile_3, "tiny/1": _tiny_1,
        "tiny/2": _tiny_2, "tiny/3": _tiny_3}


# --- the checks ------------------------------------------------------------------------------------

DISAGREE: dict = {}   # (mission, lock) -> why its key disagrees with its question; none today
# (mission, lock, wrong answer) -> why that wrong answer lands inside the tolerance
WEAK: dict = {("cloud/3", "naive_headroom_used", "gradient ring only"):
              "at 4 micro-batches a step the pipeline sends are under 1 % of the link's traffic: the gradient "
              "ring alone is the answer within the tolerance, not a mistake"}


def hands(data: dict) -> dict:
    """Every Lock's (hand value, wrong answers) for mission-file ``data``."""
    def at(lid: str, **more) -> Scenario:
        over = copy.deepcopy(next(q for q in data["lock"] if q["id"] == lid).get("at", {}))
        for section, fields in more.items():
            over.setdefault(section, {}).update(fields)
        return Scenario(data, over)
    return HAND[data["id"]](at)


def checked(data: dict, name: str) -> list[tuple[str, float, float, float]]:
    """(lock id, key, hand value, tolerance) for every Lock of ``data``."""
    keys, by_hand = parse_mission(copy.deepcopy(data), name).lock_answers(), hands(data)
    return [(q["id"], keys[q["id"]], by_hand[q["id"]][0], q["tolerance"]) for q in data["lock"]]


SHIPPED = {mid: _toml(f"challenges/{mid}.toml") for mid in MISSIONS}
KEYED = {mid: {lid: rest for lid, *rest in checked(data, mid)} for mid, data in SHIPPED.items()}


def _mark(case: tuple, reason: str | None, *values) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*case, *values, marks=marks, id="-".join(map(str, case)))


LOCKS = [_mark((mid, lid), DISAGREE.get((mid, lid))) for mid in MISSIONS for lid in KEYED[mid]]
WRONGS = [_mark((mid, lid, wrong), WEAK.get((mid, lid, wrong)), value) for mid in MISSIONS
          for lid, (_, wrongs) in hands(SHIPPED[mid]).items() for wrong, value in wrongs.items()]
VARIANTS = [_mark((mid, lid, path, value), DISAGREE.get((mid, lid))) for mid in MISSIONS for lid in KEYED[mid]
            for path, values in SHIPPED[mid].get("variants", {}).get("perturb", {}).items()
            if path.startswith("scenario.") for value in values]   # a Lock reads only the scenario


@functools.cache
def variant(mission_id: str, path: str, value) -> dict:
    """{lock id: (key, hand value, tolerance)} of the mission with ``path`` set to ``value``."""
    data = copy.deepcopy(SHIPPED[mission_id])
    *parents, leaf = path.split(".")
    functools.reduce(lambda node, part: node.setdefault(part, {}), parents, data)[leaf] = value
    return {lid: rest for lid, *rest in checked(data, f"{mission_id} variant")}


def agrees(key: float, by_hand: float, tolerance: float) -> bool:
    """A quarter of the Lock's tolerance: a student who follows the question passes with margin."""
    return abs(key - by_hand) <= tolerance / 4 * abs(by_hand)


@pytest.mark.parametrize("mission_id, lock_id", LOCKS)
def test_key_agrees_with_the_hand_derivation(mission_id, lock_id):
    key, by_hand, tolerance = KEYED[mission_id][lock_id]
    assert agrees(key, by_hand, tolerance), f"key {key:.6g}, by hand {by_hand:.6g} ({key / by_hand - 1:+.2%})"


@pytest.mark.parametrize("mission_id, lock_id, wrong, value", WRONGS)
def test_wrong_answers_fall_outside_the_tolerance(mission_id, lock_id, wrong, value):
    key, _, tolerance = KEYED[mission_id][lock_id]
    assert not prediction_correct(value, key, tolerance), f"{wrong} = {value:.6g} passes against {key:.6g}"


@pytest.mark.parametrize("mission_id, lock_id, path, value", VARIANTS)
def test_variant_keys_agree_with_the_hand_derivation(mission_id, lock_id, path, value):
    key, by_hand, tolerance = variant(mission_id, path, value)[lock_id]
    assert agrees(key, by_hand, tolerance), f"key {key:.6g}, by hand {by_hand:.6g} ({key / by_hand - 1:+.2%})"


def test_headroom_key_is_the_busiest_single_nic():
    """cloud/3's headroom key is the busiest single NIC: pipeline sends (a middle stage's NIC
    sends forward and back, a first stage's only forward) plus its own stage's gradient ring -
    not the busiest pipeline NIC's load added to another NIC's gradient load (as it once was)."""
    key, _, tolerance = KEYED["cloud/3"]["naive_headroom_used"]
    data = SHIPPED["cloud/3"]
    r = llama_3d(Scenario(data, next(q for q in data["lock"] if q["id"] == "naive_headroom_used").get("at")))
    assert not agrees(key, (r["pp_load"] + r["dp_load"]) / (r["step"] * r["free"]), tolerance / 8)


def test_activation_keys_are_saved_plus_working_set_where_asked():
    """The two activation Locks ask for the saved activations (saved_activation_fraction); the
    waterfall's activations add the widest kernel's working set (activation_fraction)."""
    for mission_id in ("edge/1", "mobile/1"):
        data = SHIPPED[mission_id]
        question = next(q for q in data["lock"] if q["id"] == "naive_activation_share")
        assert question["quantity"] == "saved_activation_fraction"
        mem, s = memory(Scenario(data, question.get("at"))), Scenario(data, question.get("at"))
        metrics = _evaluated(mission_id, question)
        assert metrics.memory.activations / metrics.memory.capacity == pytest.approx(
            (mem["saved"] + mem["working"]) / s.capacity, rel=1e-6)


def _evaluated(mission_id: str, question: dict):
    from trainwall.challenges import plans
    from trainwall.challenges.mission import mission
    from trainwall.optimizer.costmodel import evaluate

    return evaluate(plans.written(mission(mission_id), question.get("at")))


def test_networks_have_their_published_parameter_counts():
    """The enumerations above against the catalog's cited counts (torchvision; Llama 3's 70.6B)."""
    for name in ("resnet-50", "resnet-18", "mobilenet-v2"):
        cited = int(MODELS[name]["source"].split("(")[-1].split(" ")[0].replace(",", ""))
        assert params(Scenario({"scenario": {"workload": {"model": name}, "system": {"accelerator": "h100-sxm"}}}))[0] == cited
    net = Llama.of(MODELS["llama-3-70b"]["arch"])
    assert net.per_gpu(1) == pytest.approx(70.6e9, rel=0.001)


@pytest.mark.parametrize("model, config", [
    ("orin-perception", {"num_labels": 10, "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512],
                         "layer_type": "basic"}),
    ("glasses-filter", {"num_labels": 10, "depth_multiplier": 0.35, "image_size": 128, "tf_padding": False})])
def test_saved_activations_are_what_autograd_saves(model, config):
    """The hand count of the two disagreeing Locks' "saved activations" is PyTorch's own (fp32,
    one sample; transformers' ResNet / MobileNetV2, saved_tensors_hooks): the question's words."""
    torch, tf = pytest.importorskip("torch"), pytest.importorskip("transformers")
    from torch_truth import saved_activation_bytes

    a = MODELS[model]["arch"]
    net = (tf.ResNetForImageClassification(tf.ResNetConfig(**config)) if MODELS[model]["family"] == "resnet" else
           tf.MobileNetV2ForImageClassification(tf.MobileNetV2Config(**config)))
    pixels = torch.randn(1, 3, a["image_size"], a.get("width", a["image_size"]))
    s = Scenario({"scenario": {"workload": {"model": model}, "system": {"accelerator": "h100-sxm"},
                               "training": {"precision": "fp32"}}})
    assert memory(s)["saved"] == pytest.approx(saved_activation_bytes(net, {"pixel_values": pixels}), rel=0.01)


@pytest.mark.parametrize("mission_id", [mid for mid in MISSIONS if SHIPPED[mid].get("variants")])
def test_drawn_variants_keys_agree_with_the_hand_derivation(mission_id):
    """Variants as trainwall generate draws them (every perturbed path at once), three students."""
    from trainwall.challenges import variants
    from trainwall.challenges.mission import mission

    for student in ("a", "b", "c"):
        data = variants.draw(mission(mission_id), 7, student, 0)
        for lid, key, by_hand, tolerance in checked(data, f"{mission_id} drawn for {student}"):
            assert agrees(key, by_hand, tolerance), (student, lid, key, by_hand)
