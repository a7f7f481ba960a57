"""Resolution: a validated configuration and a device in, a :class:`ResolvedPlan` out.

Everything the physics needs is looked up and checked here, at the boundary: the
workload and its network, the topology, the precision's rates, the trainable layers,
the pipeline stages, the parallel degrees and the input pipeline's figures. Every
:class:`~trainwall.core.errors.InputError` a configuration can raise past the schema
(a tensor-parallel degree that does not divide the heads, a peak the device lacks, a
pipeline longer than the network, a topology that cannot be built) is raised by
:func:`resolve`, in this order: sequence length, tensor parallelism, context
parallelism, topology, precision, trainable layers, pipeline stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trainwall.core.errors import InputError
from trainwall.hardware import catalog as hw
from trainwall.hardware import topology as topo
from trainwall.models.catalog import Workload, make_workload, workload as catalog_workload
from trainwall.models.ir import Network
from trainwall.optimizer.compute import Rates
from trainwall.optimizer.costmodel.layout import layer_count_bounds, stage_bounds
from trainwall.optimizer.costmodel.power import PowerDraw, resolve_power
from trainwall.optimizer.costmodel.schedule import Interleaved, OneFOneB, PipelineSchedule
from trainwall.optimizer.precision import PrecisionPolicy, training_policy

if TYPE_CHECKING:
    from trainwall.core.config import Config


@dataclass(frozen=True)
class InputPlan:
    """One host's input pipeline, resolved (:mod:`trainwall.optimizer.datapipe`).

    ``cpu_seconds`` is per sample at the augmentation level the CPU runs (``none``, only
    decoding, when augmentation runs on the accelerator); ``accelerator_passes`` the
    augmentation's memory passes per sample on the accelerator (0 when the CPU augments).
    """

    accelerators_per_host: int   # min(the host's accelerators, the devices)
    hosts: int
    workers: int
    cores: int                   # system.cpu_cores_per_node, else the host's
    core_speed: float
    cpu_seconds: float
    storage_bandwidth: float
    sample_bytes: float
    link_bandwidth: float        # host-to-device link, bytes/s per device
    device_bytes: float
    echo: int
    accelerator_passes: float
    overlaps: bool               # loading overlaps compute: workers > 0 and not a microcontroller


@dataclass(frozen=True)
class ResolvedPlan:
    """A configuration resolved against the catalogs: what the step structure reads.

    Frozen and hashable: equal plans give equal step structures, so the plan is the key
    of :func:`~trainwall.optimizer.costmodel.structure.structure_of`'s cache. It holds no
    global batch, gradient clipping or loss scaling (the structure does not read them).
    ``workload`` and ``device`` ride along for :func:`~trainwall.optimizer.costmodel.evaluate`
    (capacity, stability profile) and take no part in equality: whatever the structure
    reads of them is resolved into the compared fields.
    """

    network: Network
    family: str
    topology: topo.Topology
    schedule: PipelineSchedule
    tensor_parallel: int
    data_parallel: int
    context_parallel: int        # ranks sharing each sequence (1: none)
    cp_exchange: str             # "ring" (hidden behind the attention) or "all_gather" (exposed)
    sequence_parallel: bool      # effective: asked for and tensor_parallel > 1
    tp_overlap: tuple[bool, bool]  # (Transformer Engine's forward and backward overlap, Megatron's backward one)
    devices: int
    micro_batch: int
    policy: PrecisionPolicy
    rates: Rates
    trainable: tuple[bool, ...]
    bounds: tuple[tuple[int, int], ...]
    recompute: str
    optimizer: str
    optimizer_state: str
    zero_stage: int
    local_steps: int
    background: float
    mcu: bool
    runtime_reserve: float
    reference_peak: float
    inputs: InputPlan
    power: PowerDraw
    workload: Workload = field(compare=False)
    device: hw.Device = field(compare=False)

    @property
    def pipeline_parallel(self) -> int:
        return self.schedule.stages


def resolve(config: Config, device: hw.Device | None = None) -> ResolvedPlan:
    """Resolve and check ``config`` on ``device`` (default: the catalog's ``system.accelerator``)."""
    device = device or hw.device(config.system.accelerator)
    s, t = config.system, config.training
    work = resolve_workload(config)
    network = resolve_network(config, work)
    check_tensor_parallel(work, t.tensor_parallel)
    check_context_parallel(work, network, t.context_parallel)
    topology = resolve_topology(config, device)
    policy = training_policy(t.precision, t.gradient_dtype)
    rates = precision_rates(device, policy, s.reserved_compute_fraction)
    mask = trainable_mask(t.trainable, network)
    if t.pipeline_parallel > len(network.layers):
        raise InputError("training.pipeline_parallel", t.pipeline_parallel,
                         f"must be at most the {len(network.layers)} layers of {network.name}")
    return ResolvedPlan(
        network=network, family=work.family, topology=topology, schedule=pipeline_schedule(config, work, network),
        tensor_parallel=t.tensor_parallel, data_parallel=config.data_parallel, context_parallel=t.context_parallel,
        cp_exchange=t.context_parallel_exchange,
        sequence_parallel=t.sequence_parallel and t.tensor_parallel > 1, tp_overlap=tp_overlap(config),
        devices=s.devices,
        micro_batch=t.micro_batch, policy=policy, rates=rates, trainable=mask,
        bounds=pipeline_bounds(config, work, network), recompute=t.recompute, optimizer=t.optimizer,
        optimizer_state=t.optimizer_state, zero_stage=t.zero_stage, local_steps=t.local_steps,
        background=s.background_network_load, mcu=device.kind == "mcu",
        runtime_reserve=device.runtime_reserve_bytes, reference_peak=device.reference_peak,
        inputs=resolve_inputs(config, work, device), power=_power(config, device, topology),
        workload=work, device=device)


def pipeline_bounds(config: Config, work: Workload, network: Network) -> tuple[tuple[int, int], ...]:
    """Each pipeline stage's [start, end) layers: balanced by FLOPs (``training.pipeline_split =
    "balanced"``), or every layer counting as one, the embedding and the head with its loss
    included (``"layers"``: a transformer's, split evenly into pipeline_parallel x virtual_stages)."""
    t = config.training
    if t.pipeline_split == "balanced":
        return stage_bounds(network, t.pipeline_parallel)
    if work.family != "transformer":
        raise InputError("training.pipeline_split", t.pipeline_split, f"counts a transformer's embedding and head "
                         f"as layers; {work.name} is a {work.family}: use \"balanced\"")
    chunks, layers = t.pipeline_parallel * t.virtual_stages, len(network.layers)
    if layers % chunks:
        raise InputError("training.pipeline_split", t.pipeline_split,
                         f"{work.name}'s {layers} layers (its blocks, the embedding and the head) must split evenly "
                         f"into pipeline_parallel x virtual_stages = {t.pipeline_parallel} x {t.virtual_stages} "
                         f"chunks")
    return layer_count_bounds(layers, t.pipeline_parallel)


def pipeline_schedule(config: Config, work: Workload, network: Network) -> PipelineSchedule:
    """1F1B, or Megatron-LM's interleaved 1F1B with ``training.virtual_stages`` = v >= 2 model
    chunks per rank, under Megatron's rules: a transformer (its schedules interleave transformer
    blocks), at least two pipeline stages, and blocks that split evenly into p x v chunks (with
    ``training.pipeline_split = "layers"``, blocks + 2: :func:`pipeline_bounds` checks)."""
    t = config.training
    p, v = t.pipeline_parallel, t.virtual_stages
    if v == 1:
        return OneFOneB(p)
    if work.family != "transformer":
        raise InputError("training.virtual_stages", v, f"interleaving splits transformer blocks; {work.name} is a "
                         f"{work.family}: use 1")
    if p < 2:
        raise InputError("training.virtual_stages", v, "interleaving needs training.pipeline_parallel >= 2")
    blocks = sum(1 for layer in network.layers if layer.name.startswith("block "))   # models/transformer.py
    if t.pipeline_split == "balanced" and blocks % (p * v):
        raise InputError("training.virtual_stages", v, f"{work.name}'s {blocks} blocks must split evenly into "
                         f"pipeline_parallel x virtual_stages = {p} x {v} chunks (or count the embedding and "
                         f"the head as layers: training.pipeline_split = \"layers\")")
    return Interleaved(p, v)


def _power(config: Config, device: hw.Device, topology: topo.Topology) -> PowerDraw:
    """The device's power figures; its radio where a star's link is wireless; each host's."""
    wireless = topology.kind == "star" and hw.link(topology.key[2]).scope == "wireless"
    return resolve_power(device, device.host.power_w, wireless, config.system.power_budget_w,
                         config.data.samples_per_hour)


def resolve_workload(config: Config) -> Workload:
    """The catalog's ``workload.model`` or the inline ``[workload.architecture]``; a
    ``seq_len`` applies to sequence models only."""
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
        raise InputError("workload.seq_len", w.seq_len,
                         f"applies to sequence models only; {base.name} is a {base.family}")
    return base


def check_tensor_parallel(work: Workload, tp: int) -> None:
    """Tensor parallelism splits a transformer's heads and FFN width (Shoeybi et al. 2019):
    ``tp`` must divide both, and applies to transformers only."""
    if work.family == "transformer":
        spec = work.arch
        heads = spec["heads"]
        if heads % tp or spec["ffn"] % tp:
            raise InputError("training.tensor_parallel", tp,
                             f"must divide the heads ({heads}) and FFN width ({spec['ffn']}) of {work.name}")
    elif tp > 1:
        raise InputError("training.tensor_parallel", tp,
                         f"tensor parallelism applies to transformers; {work.name} is a {work.family}")


def tp_overlap(config: Config) -> tuple[bool, bool]:
    """(``tp_comm_overlap``, ``tp_backward_overlap``). Transformer Engine overlaps only all-gathers
    and reduce-scatters with GEMMs, so its overlap needs sequence parallelism (TE issue 746: "we
    currently only support AllGather/ReduceScatter overlapping with GEMM")."""
    t = config.training
    if t.tp_comm_overlap and t.tensor_parallel > 1 and not t.sequence_parallel:
        raise InputError("training.tp_comm_overlap", True, "overlaps the all-gathers and reduce-scatters of "
                         "sequence parallelism: set training.sequence_parallel = true")
    return t.tp_comm_overlap, t.tp_backward_overlap


def resolve_network(config: Config, work: Workload) -> Network:
    """``work``'s network at the configured sequence length, with the configured attention and
    SwiGLU kernels; ``training.swiglu = "fused"`` names a kernel only a SwiGLU FFN has."""
    t = config.training
    if t.swiglu == "fused" and work.arch.get("ffn_kind") != "swiglu":
        raise InputError("training.swiglu", t.swiglu, f"{work.name} has no SwiGLU FFN: use \"eager\" "
                         f"(the default, which has no effect on it)")
    return work.network(config.workload.seq_len, t.attention, t.swiglu)


def check_context_parallel(work: Workload, network: Network, cp: int) -> None:
    """Context parallelism splits each sequence over ``cp`` ranks (Megatron-LM / Transformer
    Engine): a transformer's sequence only, cut into 2 cp chunks so that each rank holds one
    early and one late chunk and the causal attention work is balanced, so the sequence
    length must be a multiple of 2 cp (Megatron-LM's ``get_batch_on_this_cp_rank``)."""
    if cp == 1:
        return
    if work.family != "transformer":
        raise InputError("training.context_parallel", cp,
                         f"context parallelism splits a transformer's sequence; {work.name} is a {work.family}: use 1")
    if network.tokens_per_sample % (2 * cp):
        raise InputError("training.context_parallel", cp,
                         f"the sequence of {network.tokens_per_sample} tokens must split into 2 x context_parallel "
                         f"= {2 * cp} equal chunks")


def resolve_topology(config: Config, device: hw.Device) -> topo.Topology:
    """``system.topology`` (``auto``: one device alone, a star for SoCs and MCUs, else a
    cluster), with node size and links defaulting to the device's catalog entry."""
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


def precision_rates(device: hw.Device, policy: PrecisionPolicy, reserved: float) -> Rates:
    """The device's effective rates under a precision policy: peak x GEMM efficiency and
    bandwidth x bandwidth efficiency, each x (1 - the reserved compute fraction)."""
    for need in {policy.gemm, policy.attention}:
        if need not in device.peak_flops:
            raise InputError("training.precision", policy.name,
                             f"{device.key} has no {need} peak; it supports {', '.join(device.peak_flops)}")
    keep = 1.0 - reserved
    return Rates(device.peak(policy.gemm) * device.gemm_efficiency * keep,
                 device.peak(policy.attention) * device.gemm_efficiency * keep,
                 device.memory_bandwidth * device.memory_bandwidth_efficiency * keep,
                 policy.activation_bytes, policy.weight_bytes, policy.grad_bytes)


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
    if head not in ("last", "first") or not (num.isascii() and num.isdigit()) or not 1 <= int(num) <= n:
        raise InputError("training.trainable", spec, allowed)
    k = int(num)
    return tuple((i >= n - k) if head == "last" else (i < k) for i in range(n))


def resolve_inputs(config: Config, work: Workload, device: hw.Device) -> InputPlan:
    """One host's input pipeline: ``min(host accelerators, devices)`` devices per host, the
    per-sample costs at the chosen augmentation level, where augmentation runs."""
    host, data, d = device.host, work.data, config.data
    per_host = min(host.accelerators, config.system.devices)
    on_cpu = d.augmentation_on == "cpu"
    return InputPlan(
        accelerators_per_host=per_host, hosts=max(1, config.system.devices // per_host), workers=d.workers,
        cores=config.system.cpu_cores_per_node or host.cores, core_speed=host.core_speed,
        cpu_seconds=data.cpu_seconds[d.augmentation if on_cpu else "none"],
        storage_bandwidth=host.storage_bandwidth, sample_bytes=data.sample_bytes,
        link_bandwidth=device.host_link.bandwidth, device_bytes=data.device_bytes, echo=d.echo,
        accelerator_passes=0.0 if on_cpu else data.accelerator_passes[d.augmentation],
        overlaps=d.workers > 0 and device.kind != "mcu")


def device_capacity(config: Config, device: hw.Device) -> float:
    """Bytes a training job may use on one device: its memory less what the scenario
    reserves (e.g. the Orin's safety loop), capped by an explicit budget."""
    s = config.system
    return min(device.memory_bytes - s.reserved_memory, s.memory_budget or float("inf"))
