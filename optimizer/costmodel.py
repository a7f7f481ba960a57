"""The training cost model: one configuration in, every metric out.

This is the only place the model of the world is evaluated; the CLI, the optimiser,
the grader, the plots and the explainer all call :func:`evaluate`. Every output is
in SI units. The pieces, each documented where it lives:

* memory per device - :mod:`trainwall.optimizer.memory` (ZeRO; saved tensors);
* compute per layer - :mod:`trainwall.optimizer.compute` (roofline per op);
* communication - :mod:`trainwall.hardware.collectives` on the topology graph;
* the input pipeline - :mod:`trainwall.optimizer.datapipe` (max-flow / min-cut);
* numerical stability - :mod:`trainwall.optimizer.stability`.

Step time (one optimizer step, Narayanan et al. 2021 for the pipeline terms):

    step = m * t_stage + (p - 1) * t_stage            (compute + pipeline bubble)
         + tensor-parallel all-reduces                (exposed: on the critical path)
         + pipeline point-to-point sends              (exposed)
         + max(0, t_dp - overlap * t_backward)         (gradient sync hidden behind backward)
         + optimizer update + data stall

with m micro-batches per pipeline and t_stage the slowest stage's forward + backward
+ recompute time for one micro-batch. MFU = model FLOPs per step / (step x devices x
the device's ONE reference peak); HFU adds recompute (PaLM, appendix B). Scaling
efficiency = T_1 / (N T_N), T_1 being the same global batch on one device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from trainwall.core.errors import InputError
from trainwall.hardware import catalog as hw
from trainwall.hardware import collectives, topology as topo
from trainwall.models.catalog import Workload, make_workload, workload as catalog_workload
from trainwall.models.ir import Layer, Network
from trainwall.optimizer import datapipe, stability
from trainwall.optimizer.compute import Rates, layer_cost
from trainwall.optimizer.memory import layer_activation_bytes, model_state_bytes
from trainwall.optimizer.precision import POLICIES

#: Calibration constant shared by every run: the fraction of the backward pass that
#: actually hides gradient communication (bucketing leaves the first bucket's
#: all-reduce and the last layers' exposed; PyTorch DDP / Megatron overlap).
OVERLAP_EFFICIENCY = 0.8


@dataclass(frozen=True)
class Violation:
    constraint: str
    value: float
    limit: float
    message: str


@dataclass(frozen=True)
class Memory:
    """Per-device bytes for the most loaded device (the waterfall)."""

    weights: float
    gradients: float
    optimizer_state: float
    activations: float
    other: float
    total: float
    capacity: float
    flash: float = 0.0
    flash_capacity: float = 0.0
    trainable_params: float = 0.0
    params: float = 0.0

    @property
    def held_params(self) -> float:
        """Parameters whose states this device holds in RAM: all of them, or on a
        microcontroller (frozen weights stay in flash) the trained ones."""
        return self.params if not self.flash_capacity else max(self.trainable_params, 1.0)

    def bytes_per_param(self) -> dict[str, float]:
        """Model-state bytes per held parameter: weights, gradients, optimizer state and their sum
        (16 for fp32 Adam: 4 + 4 + 8)."""
        held = self.held_params or 1.0
        parts = {"weights": self.weights / held, "gradients": self.gradients / held,
                 "optimizer_state": self.optimizer_state / held}
        return {**parts, "total": sum(parts.values())}


@dataclass(frozen=True)
class StepTime:
    step_s: float
    compute_s: float
    communication_s: float
    exposed_communication_s: float
    bubble_s: float
    data_stall_s: float
    recompute_s: float
    optimizer_s: float
    tensor_parallel_s: float
    pipeline_p2p_s: float
    data_parallel_s: float


@dataclass(frozen=True)
class Metrics:
    """Everything :func:`evaluate` computes; ``to_dict`` gives INTERFACE.md's keys."""

    feasible: bool
    violations: tuple[Violation, ...]
    memory: Memory
    time: StepTime
    model_flops_per_step: float
    hardware_flops_per_step: float
    mfu: float
    hfu: float
    samples_per_s: float
    tokens_per_s: float
    comm_to_compute: float
    exposed_comm_to_compute: float
    scaling_efficiency: float
    network_utilization: float
    background_network_load: float
    pipeline: datapipe.PipelineFlow
    pipeline_throughput: float
    pipeline_utilization: dict
    stability: stability.StabilityReport
    devices: int
    reference_peak: float
    bottleneck_link: str = ""
    algorithms: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        m = self.memory
        return {
            "feasible": self.feasible,
            "violations": [asdict(v) for v in self.violations],
            "memory": {"weights": m.weights, "gradients": m.gradients, "optimizer_state": m.optimizer_state,
                       "activations": m.activations, "other": m.other, "total": m.total,
                       "capacity": m.capacity, "flash": m.flash, "flash_capacity": m.flash_capacity,
                       "params": m.params, "trainable_params": m.trainable_params},
            "time": asdict(self.time),
            "flops": {"model_per_step": self.model_flops_per_step,
                      "hardware_per_step": self.hardware_flops_per_step,
                      "reference_peak_per_device": self.reference_peak},
            "mfu": self.mfu,
            "hfu": self.hfu,
            "throughput": {"samples_per_s": self.samples_per_s, "tokens_per_s": self.tokens_per_s},
            "comm_to_compute": self.comm_to_compute,
            "exposed_comm_to_compute": self.exposed_comm_to_compute,
            "scaling_efficiency": self.scaling_efficiency,
            "network_utilization": self.network_utilization,
            "background_network_load": self.background_network_load,
            "bottleneck_link": self.bottleneck_link,
            "collectives": dict(self.algorithms),
            "pipeline": {
                "bottleneck": self.pipeline.bottleneck,
                "throughput": self.pipeline_throughput,
                "stages": {s: {"capacity": c, "utilization": self.pipeline_utilization[s]}
                           for s, c in self.pipeline.capacities.items()},
            },
            "stable": self.stability.stable,
            "stability": {"reasons": list(self.stability.reasons),
                          "gradient_format": self.stability.grad_format,
                          "scaled_gradient_range": list(self.stability.scaled_gradient_range)},
            "devices": self.devices,
        }


# ----------------------------------------------------------------------------- resolution

def resolve_workload(config) -> Workload:
    w = config.workload
    if w.model is not None:
        base = catalog_workload(w.model)
    else:
        arch = w.architecture.model_dump(exclude={"kind"}, exclude_none=True)
        entry = {"family": w.architecture.kind, "arch": arch, "seq_len": w.seq_len or 0,
                 "description": f"inline {w.architecture.kind}"}
        if w.modality:
            entry["modality"] = w.modality
        base = make_workload("inline", entry)
    if w.seq_len is not None and not base.is_sequence:
        raise InputError("workload.seq_len", w.seq_len, f"applies to sequence models only; {base.name} is a {base.family}")
    return base


def resolve_topology(config, device: hw.Device) -> topo.Topology:
    s = config.system
    kind = s.topology
    if kind == "auto":
        kind = "single" if s.devices == 1 else ("star" if device.kind in ("soc", "mcu") else "cluster")
    if kind == "single":
        if s.devices != 1:
            raise InputError("system.topology", "single", f"holds one device, not system.devices = {s.devices}")
        return topo.single()
    if kind == "star":
        return topo.star(s.devices, s.inter_node_link or device.inter_node_link)
    dpn = s.devices_per_node or min(device.devices_per_node, s.devices)
    if s.devices % dpn:
        raise InputError("system.devices_per_node", dpn, f"must divide system.devices = {s.devices}")
    intra = s.intra_node_link or device.intra_node_link
    inter = s.inter_node_link or device.inter_node_link
    if dpn > 1 and not intra:
        raise InputError("system.intra_node_link", intra, f"{device.key} has no default intra-node link: name one")
    if s.devices > dpn and not inter:
        raise InputError("system.inter_node_link", inter, f"{device.key} has no default inter-node link: name one")
    return topo.cluster(s.devices, dpn, intra or inter, inter or intra, s.oversubscription)


def trainable_mask(spec, network: Network) -> tuple[bool, ...]:
    """Which layers train: ``all``, ``none``, ``last:N``, ``first:N`` or a list of layer indices."""
    n = len(network.layers)
    if isinstance(spec, (list, tuple)):
        bad = next((i for i in spec if not 0 <= i < n), None)
        if bad is not None or len(set(spec)) != len(spec):
            raise InputError("training.trainable", list(spec),
                             f"must list distinct layer indices 0..{n - 1} of {network.name}")
        chosen = set(spec)
        return tuple(i in chosen for i in range(n))
    allowed = (f"must be \"all\", \"none\", \"last:N\", \"first:N\" with 1 <= N <= {n}, or a list of layer "
               f"indices 0..{n - 1} (layers of {network.name})")
    if spec == "all":
        return (True,) * n
    if spec == "none":
        return (False,) * n
    head, _, num = spec.partition(":")
    if head not in ("last", "first") or not num.isdigit() or not 1 <= int(num) <= n:
        raise InputError("training.trainable", spec, allowed)
    k = int(num)
    return tuple((i >= n - k) if head == "last" else (i < k) for i in range(n))


def stage_bounds(network: Network, pp: int) -> tuple[tuple[int, int], ...]:
    """Contiguous [start, end) layer ranges of the pipeline stages, the slowest as light as possible.

    The linear-partition problem: split the layers' FLOPs into ``pp`` contiguous,
    non-empty runs minimising the largest run. The least feasible bound is found by
    bisection on the greedy test "fits in ``pp`` runs of at most X" (each test O(L));
    runs are then split further, never raising the bound, until there are exactly
    ``pp``. Megatron-LM's layout (equal blocks, embedding on the first stage, the head
    on the last) is the optimum this finds for a uniform stack.
    """
    n = len(network.layers)
    if pp > n:
        raise InputError("training.pipeline_parallel", pp, f"must be at most the {n} layers of {network.name}")
    return _linear_partition(tuple(max(layer.flops, 1.0) for layer in network.layers), pp)


@lru_cache(maxsize=256)
def _linear_partition(costs: tuple[float, ...], parts: int) -> tuple[tuple[int, int], ...]:
    def greedy(bound: float) -> list[tuple[int, int]]:
        runs, start, acc = [], 0, 0.0
        for i, c in enumerate(costs):
            if acc + c > bound and i > start:
                runs.append((start, i))
                start, acc = i, 0.0
            acc += c
        runs.append((start, len(costs)))
        return runs

    lo, hi = max(costs), sum(costs)
    for _ in range(100):
        if hi - lo <= 1e-9 * hi:
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if len(greedy(mid)) <= parts else (mid, hi)
    runs = greedy(hi)
    while len(runs) < parts:  # split the longest run at its last layer: the maximum cannot grow
        k = max(range(len(runs)), key=lambda j: (runs[j][1] - runs[j][0], -j))
        a, b = runs[k]
        runs[k:k + 1] = [(a, b - 1), (b - 1, b)]
    return tuple(runs)


@lru_cache(maxsize=1024)
def parallel_groups(tp: int, dp: int, pp: int):
    """Rank layout t + tp (d + dp p) (Megatron-LM: tensor fastest, then data, then pipeline)."""
    rank = lambda t, d, p: t + tp * (d + dp * p)  # noqa: E731
    tp_groups = tuple(tuple(rank(t, d, p) for t in range(tp)) for p in range(pp) for d in range(dp))
    dp_groups = tuple(tuple(rank(t, d, p) for d in range(dp)) for p in range(pp) for t in range(tp))
    pp_pairs = tuple((rank(t, d, p), rank(t, d, p + 1)) for p in range(pp - 1) for d in range(dp) for t in range(tp))
    return tp_groups, dp_groups, pp_pairs


def _rates(device: hw.Device, precision: str, reserved: float) -> Rates:
    policy = POLICIES[precision]
    for need in {policy.gemm, policy.attention}:
        if need not in device.peak_flops:
            raise InputError("training.precision", precision,
                             f"{device.key} has no {need} peak; it supports {', '.join(device.peak_flops)}")
    keep = 1.0 - reserved
    return Rates(device.peak(policy.gemm) * device.gemm_efficiency * keep,
                 device.peak(policy.attention) * device.gemm_efficiency * keep,
                 device.memory_bandwidth * device.memory_bandwidth_efficiency * keep,
                 policy.activation_bytes, policy.weight_bytes, policy.grad_bytes)


@lru_cache(maxsize=8192)
def _device_params(layer: Layer, tp: int) -> float:
    """Parameters of ``layer`` held by one tensor-parallel rank (embeddings are vocab-parallel)."""
    if tp == 1:
        return float(layer.params)
    return sum(op.params / (tp if (op.tp or op.kind == "embedding") else 1) for op in layer.ops)


@lru_cache(maxsize=8192)
def _working_set(layer: Layer, activation_bytes: int, tp: int) -> float:
    """Bytes per sample one op needs live at once in the forward pass: its input and output."""
    return max(((op.reads + op.writes) * activation_bytes / (tp if op.tp else 1) for op in layer.ops),
               default=0.0)


def device_capacity(config, device: hw.Device) -> float:
    """Bytes a training job may use on one device: its memory less what the scenario
    reserves (e.g. the Orin's safety loop), capped by an explicit budget."""
    s = config.system
    return min(device.memory_bytes - s.reserved_memory, s.memory_budget or float("inf"))


def check_stability(config, work: Workload) -> stability.StabilityReport:
    """The stability rules for this configuration's precision, scaling, clipping and batch."""
    t, profile = config.training, work.stability
    return stability.check(t.precision, t.loss_scaling, t.loss_scale, t.gradient_clipping, config.global_batch,
                           profile.gradient_min, profile.gradient_max, profile.activation_max,
                           profile.critical_batch, t.local_steps, profile.max_local_steps)


def activation_case(layer: Layer, trains: bool, flows: bool, recompute: str, activation_bytes: int,
                    tp: int, sp: bool) -> tuple[float, float]:
    """(bytes per sample kept until the backward, bytes per sample live only transiently).

    Transient: a recomputed layer's full saved set during its own backward, and in any
    case one op's input and output during the forward pass. A stage holds the sum of
    the kept bytes (per micro-batch in flight) plus the largest transient. The
    optimiser's layer-selection model takes its coefficients from here, per case.
    """
    kept, full = layer_activation_bytes(layer, trains, flows, recompute, activation_bytes, tp, sp)
    return kept, max(full - kept, _working_set(layer, activation_bytes, tp))


# ----------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class StepStructure:
    """One configuration's costs as functions of m, the micro-batches per pipeline per step.

    Everything the global batch B = m x data_parallel x micro_batch changes is linear in
    m (for memory: piecewise, in-flight micro-batches min(p - i, m) saturate at m = p),
    so :func:`evaluate` and the part-3 optimiser read the same coefficients, and the
    exhaustive certifier evaluates every m at once: each method takes a number or a numpy
    array of m. With ``A`` the per-micro-batch and ``B`` the fixed seconds:

        busy(m)  = A m + B,   A = t_stage + t_tp + t_pp + e_dp,   B = (p - 1) t_stage + t_opt + E_dp
        stall(m) = max(0, L m - busy(m))  (loading overlaps compute)  or  L m  (it does not)
        step(m)  = busy(m) + stall(m)
        network(m) = (a m + b) / step(m) + background       (a, b: link-seconds of traffic)
        MFU(m)   = F m / (step(m) x N x peak)                (F: model FLOPs per micro-batch round)
    """

    micro_batch: int
    data_parallel: int
    pipeline_parallel: int
    devices: int
    reference_peak: float
    t_stage: float                      # slowest stage, forward + backward (+ recompute) of one micro-batch
    recompute_per_micro_batch_s: float  # recompute time of the first stage, per micro-batch
    optimizer_s: float
    tp_per_micro_batch_s: float
    pp_per_micro_batch_s: float
    dp_fixed_s: float                   # gradient all-reduce (ZeRO 0-2)
    dp_per_micro_batch_s: float         # ZeRO-3 gathers and reduce-scatters
    dp_exposed_fixed_s: float
    dp_exposed_per_micro_batch_s: float
    network_per_micro_batch: float      # link-seconds on the busiest link per micro-batch
    network_fixed: float
    background_network_load: float
    load_per_micro_batch_s: float       # seconds the input pipeline needs per micro-batch round, per host
    loading_overlaps: bool
    stage_static: tuple[float, ...]     # per stage: weights + gradients + optimizer state + other
    stage_kept: tuple[float, ...]       # per stage: activation bytes kept per micro-batch in flight
    stage_transient: tuple[float, ...]  # per stage: the largest transient activation
    model_flops_per_micro_batch: float  # per micro-batch round: all data-parallel replicas
    hardware_flops_per_micro_batch: float
    single_device_per_micro_batch_s: float  # T_1 per micro-batch round (scaling efficiency)
    single_device_fixed_s: float
    hosts: int
    samples_per_micro_batch_per_host: float
    data_parallel_bytes: float = 0.0    # the buffer of one data-parallel collective (gradients; ZeRO-3: weights)
    data_parallel_plan: object = None   # its CollectivePlan (None without data parallelism)

    @property
    def per_micro_batch_s(self) -> float:
        """A: seconds each micro-batch adds to a step."""
        return self.t_stage + self.tp_per_micro_batch_s + self.pp_per_micro_batch_s + self.dp_exposed_per_micro_batch_s

    @property
    def fixed_s(self) -> float:
        """B: seconds per step whatever the number of micro-batches."""
        return (self.pipeline_parallel - 1) * self.t_stage + self.optimizer_s + self.dp_exposed_fixed_s

    def busy_s(self, m):
        return self.per_micro_batch_s * m + self.fixed_s

    def stall_s(self, m):
        load = self.load_per_micro_batch_s * m
        return np.maximum(0.0, load - self.busy_s(m)) if self.loading_overlaps else load

    def step_s(self, m):
        return self.busy_s(m) + self.stall_s(m)

    def network_traffic(self, m):
        """Link-seconds of traffic on the busiest link per step (at full link capacity)."""
        return self.network_per_micro_batch * m + self.network_fixed

    def network_utilization(self, m):
        return self.network_traffic(m) / self.step_s(m) + self.background_network_load

    def mfu(self, m):
        return self.model_flops_per_micro_batch * m / (self.step_s(m) * self.devices * self.reference_peak)

    def stage_memory(self, m):
        """Bytes per device on each stage (rows), 1F1B keeping min(p - i, m) micro-batches in flight."""
        return [static + kept * np.minimum(self.pipeline_parallel - i, m) + transient
                for i, (static, kept, transient) in enumerate(zip(self.stage_static, self.stage_kept,
                                                                   self.stage_transient))]

    def memory_total(self, m):
        return np.max(np.array(self.stage_memory(m)), axis=0)


def evaluate(config, device: hw.Device | None = None) -> Metrics:
    """Evaluate a validated :class:`trainwall.core.config.Config`.

    ``device`` stands in for the catalog entry named by ``system.accelerator`` (what-if
    studies and the calibration fit of :mod:`trainwall.calibration`).
    """
    device = device or hw.device(config.system.accelerator)
    st, parts = _structure(config, device)
    t, s = config.training, config.system
    m, gb, N = config.micro_batches, config.global_batch, s.devices
    work, states_by_stage, flow_rates, algorithms, bottleneck_link = parts

    # Memory: the most loaded stage.
    per_stage = [float(x) for x in st.stage_memory(m)]
    worst = max(range(len(per_stage)), key=lambda i: per_stage[i])
    states, weights, params, trainable, other = states_by_stage[worst]
    act = per_stage[worst] - st.stage_static[worst]
    mcu = device.kind == "mcu"
    capacity = device_capacity(config, device)
    memory = Memory(weights, states.gradients, states.optimizer_state, act, other, per_stage[worst], capacity,
                    flash=states.frozen_weights if mcu else 0.0,
                    flash_capacity=device.flash_bytes if mcu else 0.0,
                    trainable_params=trainable, params=params)

    tp_s = m * st.tp_per_micro_batch_s
    pp_s = m * st.pp_per_micro_batch_s
    dp_s = st.dp_fixed_s + m * st.dp_per_micro_batch_s
    exposed = tp_s + pp_s + st.dp_exposed_fixed_s + m * st.dp_exposed_per_micro_batch_s
    compute_s = m * st.t_stage + st.optimizer_s
    bubble_s = (st.pipeline_parallel - 1) * st.t_stage
    busy = float(st.busy_s(m))
    stall = float(st.stall_s(m))
    step = busy + stall
    comm_s = tp_s + pp_s + dp_s

    # Input pipeline, per host: the flow network names the longest pole.
    samples_host = st.samples_per_micro_batch_per_host * m
    storage_rate, cpu_rate, link_rate = flow_rates
    fresh = samples_host / config.data.echo   # samples the input pipeline delivers per step and host
    flow = datapipe.solve_flow(storage_rate, cpu_rate, link_rate, fresh / busy if busy > 0 else float("inf"))
    achieved = fresh / step
    utilization = {k: (achieved / c if c and c != float("inf") else 0.0) for k, c in flow.capacities.items()}

    model_flops = st.model_flops_per_micro_batch * m
    hw_flops = st.hardware_flops_per_micro_batch * m
    mfu = float(st.mfu(m))
    hfu = hw_flops / (step * N * st.reference_peak)
    scaling = (st.single_device_per_micro_batch_s * m + st.single_device_fixed_s) / (N * step)
    traffic = st.network_traffic(m)
    bg = st.background_network_load
    network_util = min(1e9, traffic / step) + bg if traffic else bg

    stab = check_stability(config, work)
    violations: list[Violation] = []
    if memory.total > memory.capacity:
        violations.append(Violation("memory", memory.total, memory.capacity,
                                    f"needs {memory.total:.4g} B per device, has {memory.capacity:.4g} B"))
    if mcu and memory.flash > memory.flash_capacity:
        violations.append(Violation("flash", memory.flash, memory.flash_capacity,
                                    f"frozen weights need {memory.flash:.4g} B of flash, the part has {memory.flash_capacity:.4g} B"))
    if network_util > 1.0:
        violations.append(Violation("network", network_util, 1.0,
                                    f"traffic plus the {bg:.0%} background load needs {network_util:.0%} of the busiest link"))
    for reason in stab.reasons:
        violations.append(Violation("stability", 1.0, 0.0, reason))

    tokens = work.network(config.workload.seq_len, t.attention).tokens_per_sample
    return Metrics(
        feasible=not violations, violations=tuple(violations), memory=memory,
        time=StepTime(step, compute_s, comm_s, exposed, bubble_s, stall,
                      m * st.recompute_per_micro_batch_s, st.optimizer_s, tp_s, pp_s, dp_s),
        model_flops_per_step=model_flops, hardware_flops_per_step=hw_flops, mfu=mfu, hfu=hfu,
        samples_per_s=gb / step, tokens_per_s=gb * tokens / step,
        comm_to_compute=comm_s / compute_s if compute_s else 0.0,
        exposed_comm_to_compute=exposed / compute_s if compute_s else 0.0,
        scaling_efficiency=scaling, network_utilization=network_util, background_network_load=bg,
        pipeline=flow, pipeline_throughput=achieved * st.hosts, pipeline_utilization=utilization,
        stability=stab, devices=N, reference_peak=st.reference_peak, bottleneck_link=bottleneck_link,
        algorithms=algorithms,
    )


def step_structure(config, device: hw.Device | None = None) -> StepStructure:
    """The configuration's :class:`StepStructure`; ``training.global_batch`` is not read."""
    return _structure(config, device or hw.device(config.system.accelerator))[0]


def _structure(config, device: hw.Device):
    s, t = config.system, config.training
    work = resolve_workload(config)
    network = work.network(config.workload.seq_len, t.attention)
    policy = POLICIES[t.precision]
    tp, pp, dp = t.tensor_parallel, t.pipeline_parallel, config.data_parallel
    mb, N = t.micro_batch, s.devices
    if work.family == "transformer":
        spec = work.arch
        heads = spec["heads"]
        if heads % tp or spec["ffn"] % tp:
            raise InputError("training.tensor_parallel", tp,
                             f"must divide the heads ({heads}) and FFN width ({spec['ffn']}) of {work.name}")
    elif tp > 1:
        raise InputError("training.tensor_parallel", tp, f"tensor parallelism applies to transformers; {work.name} is a {work.family}")
    topology = resolve_topology(config, device)
    rates = _rates(device, t.precision, s.reserved_compute_fraction)
    mask = trainable_mask(t.trainable, network)
    sp = t.sequence_parallel and tp > 1
    bg = s.background_network_load
    augment = _accelerator_augmentation_s(config, work, device, rates)

    # Per-layer costs, walking forward so each layer knows whether gradients flow into it.
    layers = network.layers
    flows, upstream = [], False
    for layer, trains in zip(layers, mask):
        flows.append(upstream)
        upstream = upstream or (trains and layer.params > 0)
    costs = [layer_cost(l, tr, fl, mb, rates, t.recompute, tp, sp) for l, tr, fl in zip(layers, mask, flows)]
    single = [layer_cost(l, tr, fl, mb, rates, t.recompute) for l, tr, fl in zip(layers, mask, flows)]

    # Pipeline stages: time, parameters, activations (1F1B keeps p - i micro-batches in flight).
    mcu = device.kind == "mcu"
    other = device.runtime_reserve_bytes
    bounds = stage_bounds(network, pp)
    stage_time, stage_bwd, static, kept_mb, transient_mb, states_by_stage = [], [], [], [], [], []
    for i, (a, b) in enumerate(bounds):
        cs = costs[a:b]
        stage_time.append(sum(c.forward_s + c.backward_s + c.recompute_s for c in cs) + (augment if i == 0 else 0.0))
        stage_bwd.append(sum(c.backward_s + c.recompute_s for c in cs))
        kept = transient = 0.0
        for layer, tr, fl in zip(layers[a:b], mask[a:b], flows[a:b]):
            k, live = activation_case(layer, tr, fl, t.recompute, policy.activation_bytes, tp, sp)
            kept += k
            transient = max(transient, live)
        params = sum(_device_params(l, tp) for l in layers[a:b])
        trainable = sum(_device_params(l, tp) for l, tr in zip(layers[a:b], mask[a:b]) if tr)
        tensors = sum(l.param_tensors for l, tr in zip(layers[a:b], mask[a:b]) if tr)
        states = model_state_bytes(params, trainable, tensors, t.optimizer, policy, t.zero_stage, dp,
                                   t.optimizer_state)
        weights = states.weights + (0.0 if mcu else states.frozen_weights)
        static.append(weights + states.gradients + states.optimizer_state + other)
        kept_mb.append(kept * mb)
        transient_mb.append(transient * mb)
        states_by_stage.append((states, weights, params, trainable, other))
    t_stage = max(stage_time)

    # Communication on the topology, per micro-batch and per step.
    tp_groups, dp_groups, pp_pairs = parallel_groups(tp, dp, pp)
    algorithms: dict[str, str] = {}
    act_elems = network.layers[1].input.elements if (work.family == "transformer" and len(layers) > 2) else 0.0
    act_msg = act_elems * mb * policy.activation_bytes
    net_mb = net_fixed = 0.0
    tp_mb = pp_mb = 0.0
    bottleneck_link = ""
    if tp > 1:
        plan = collectives.all_reduce(topology, tp_groups, bg)
        algorithms["tensor_parallel"] = plan.algorithm
        per_layer = (2 + 2 + (2 if t.recompute == "full" else 0))
        n_blocks = max(sum(1 for l in layers[a:b] if any(op.tp for op in l.ops)) for a, b in bounds)
        tp_mb = n_blocks * per_layer * plan.time(act_msg)
        if plan.network_capacity:
            net_mb += n_blocks * per_layer * act_msg * plan.network_load_per_byte / plan.network_capacity
        bottleneck_link = plan.bottleneck_link
    if pp > 1:
        msg = act_msg / (tp if sp else 1)
        plan = collectives.point_to_point(topology, pp_pairs, bg)
        algorithms["pipeline"] = plan.algorithm
        pp_mb = 2 * plan.time(msg)
        if plan.network_capacity:
            net_mb += 2 * msg * plan.network_load_per_byte / plan.network_capacity
        bottleneck_link = plan.bottleneck_link or bottleneck_link
    trainable_here = max(x[3] for x in states_by_stage)
    dp_fixed = dp_mb = exposed_fixed = exposed_mb = dp_bytes = 0.0
    dp_plan = None
    if dp > 1 and trainable_here > 0:
        if t.zero_stage >= 3:
            plan = collectives.all_gather(topology, dp_groups, bg)
            wbytes = max(x[2] for x in states_by_stage) * policy.weight_bytes
            # all-gather weights for forward and backward, reduce-scatter gradients: per micro-batch
            dp_mb = 3 * plan.time(wbytes) / t.local_steps
            dp_bytes = wbytes
            exposed_mb = max(0.0, dp_mb - OVERLAP_EFFICIENCY * t_stage)
            if plan.network_capacity:
                net_mb += 3 * wbytes / t.local_steps * plan.network_load_per_byte / plan.network_capacity
        else:
            plan = collectives.all_reduce(topology, dp_groups, bg)
            volume = trainable_here * policy.grad_bytes
            dp_fixed = plan.time(volume) / t.local_steps
            dp_bytes = volume
            exposed_fixed = max(0.0, dp_fixed - OVERLAP_EFFICIENCY * min(stage_bwd))
            if plan.network_capacity:
                net_fixed += volume / t.local_steps * plan.network_load_per_byte / plan.network_capacity
        algorithms["data_parallel"] = plan.algorithm
        dp_plan = plan
        if plan.network_capacity or not bottleneck_link:
            bottleneck_link = plan.bottleneck_link or bottleneck_link

    # Optimizer update: a memory-bound pass over each stage's states; the slowest stage sets it.
    opt_bytes = max(2 * (x[0].optimizer_state + x[0].weights) + x[0].gradients for x in states_by_stage)
    optimizer_s = opt_bytes / rates.bandwidth if trainable_here else 0.0

    # Input pipeline, per host: seconds of loading per micro-batch round.
    host = device.host
    per_host = min(host.accelerators, N)
    hosts = max(1, N // per_host)
    samples_mb_host = dp * mb / hosts
    flow_rates = _input_rates(config, work, device, per_host)
    supply = min(flow_rates) * config.data.echo   # training samples/s: each fresh sample is used `echo` times

    # FLOPs and the single-device time (scaling efficiency) from the single-device pass.
    full_states = model_state_bytes(network.params, sum(l.params for l, tr in zip(layers, mask) if tr),
                                    0, t.optimizer, policy)
    st = StepStructure(
        micro_batch=mb, data_parallel=dp, pipeline_parallel=pp, devices=N, reference_peak=device.reference_peak,
        t_stage=t_stage, recompute_per_micro_batch_s=sum(c.recompute_s for c in costs[bounds[0][0]:bounds[0][1]]),
        optimizer_s=optimizer_s, tp_per_micro_batch_s=tp_mb, pp_per_micro_batch_s=pp_mb,
        dp_fixed_s=dp_fixed, dp_per_micro_batch_s=dp_mb, dp_exposed_fixed_s=exposed_fixed,
        dp_exposed_per_micro_batch_s=exposed_mb, network_per_micro_batch=net_mb, network_fixed=net_fixed,
        background_network_load=bg, load_per_micro_batch_s=samples_mb_host / supply,
        loading_overlaps=config.data.workers > 0 and not mcu,
        stage_static=tuple(static), stage_kept=tuple(kept_mb), stage_transient=tuple(transient_mb),
        model_flops_per_micro_batch=sum(c.model_flops for c in single) * dp,
        hardware_flops_per_micro_batch=sum(c.hardware_flops for c in single) * dp,
        single_device_per_micro_batch_s=(sum(c.forward_s + c.backward_s + c.recompute_s for c in single)
                                         + augment) * dp,
        single_device_fixed_s=(2 * (full_states.optimizer_state + full_states.weights) + full_states.gradients)
        / rates.bandwidth,
        hosts=hosts, samples_per_micro_batch_per_host=samples_mb_host,
        data_parallel_bytes=dp_bytes, data_parallel_plan=dp_plan,
    )
    return st, (work, states_by_stage, flow_rates, algorithms, bottleneck_link)


def _input_rates(config, work: Workload, device: hw.Device, per_host: int) -> tuple[float, float, float]:
    """(storage, cpu, host link) capacities of one host's input pipeline, in samples/s.

    The CPU stage runs min(workers, cores) worker processes (at least the main process
    when ``workers = 0``); with ``augmentation_on = "accelerator"`` the CPU only decodes.
    """
    host, data = device.host, work.data
    cores = config.system.cpu_cores_per_node or host.cores
    level = config.data.augmentation if config.data.augmentation_on == "cpu" else "none"
    cpu_rate = max(1, min(config.data.workers, cores)) * host.core_speed / data.cpu_seconds[level]
    storage_rate = host.storage_bandwidth / data.sample_bytes if data.sample_bytes else float("inf")
    link_rate = per_host * device.host_link.bandwidth / data.device_bytes if data.device_bytes else float("inf")
    return storage_rate, cpu_rate, link_rate


#: Bytes of memory traffic per element and pass of augmentation on the accelerator:
#: read and write the sample as fp32 (see ``models/data/modalities.toml``).
AUGMENT_BYTES_PER_ELEMENT_PASS = 8


def _accelerator_augmentation_s(config, work: Workload, device: hw.Device, rates: Rates) -> float:
    """Seconds per micro-batch the accelerator spends augmenting, when augmentation runs there.

    A memory-bound roofline: passes x device_bytes (uint8 elements) x 8 B / bandwidth.
    """
    if config.data.augmentation_on != "accelerator":
        return 0.0
    passes = work.data.accelerator_passes[config.data.augmentation]
    per_sample = passes * work.data.device_bytes * AUGMENT_BYTES_PER_ELEMENT_PASS / rates.bandwidth
    return per_sample * config.training.micro_batch
