"""The numbers behind the lab's figures, every one from the cost model (:func:`evaluate`).

Plots draw these and nothing else, and tests compare them with the cost model: the
figure is tested through its data, not its pixels.

* :func:`waterfall` - weights, gradients, optimizer state, activations, other: the bars
  that stack to the per-device total, against the device's capacity;
* :func:`optimizer_grid` - the same configuration with SGD / Momentum / Adam x fp32 /
  mixed precision (``--compare``);
* :func:`scaling` - MFU, scaling efficiency, communication / compute and network
  utilisation as data parallelism grows (weak scaling: the micro-batches per step stay),
  and MFU against the global batch at the configuration's device count;
* :func:`pipeline` - the input pipeline as Data (storage, CPU workers) -> Bus (host
  link) -> Compute with each stage's utilisation, and throughput against the number of
  data-loader workers with the balance point.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwall.core.config import Config, parse_config
from trainwall.core.errors import InputError
from trainwall.optimizer.walls import demand_factor, starvation

WATERFALL_BARS = ("weights", "gradients", "optimizer_state", "activations", "other")


def _evaluate(config: Config):
    from trainwall.optimizer.costmodel import evaluate

    return evaluate(config)


def _with(config: Config, **sections: dict) -> Config:
    """``config`` with fields replaced, section by section (validated again)."""
    data = config.model_dump(exclude_none=True)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return parse_config(data)


@dataclass(frozen=True)
class Waterfall:
    label: str
    bars: tuple[tuple[str, float], ...]      # (component, bytes per device), in stacking order
    total: float
    capacity: float
    bytes_per_param: dict                    # Memory.bytes_per_param()

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity


def waterfall(config: Config, label: str = "") -> Waterfall:
    mem = _evaluate(config).memory
    return Waterfall(label, tuple((name, getattr(mem, name)) for name in WATERFALL_BARS), mem.total, mem.capacity,
                     mem.bytes_per_param())


def mixed_precision(config: Config) -> str | None:
    """The device's mixed precision: bf16 where it has bf16 arithmetic, else fp16, else none
    (a microcontroller computes in fp32 or int8 only)."""
    from trainwall.hardware import catalog as hw

    peaks = hw.device(config.system.accelerator).peak_flops
    return "bf16-mixed" if "bf16" in peaks else "fp16-mixed" if "fp16" in peaks else None


def optimizer_grid(config: Config) -> list[Waterfall]:
    """SGD, Momentum, Adam x fp32 and the device's mixed precision (if it has one), everything
    else as ``config``."""
    mixed = mixed_precision(config)
    out = []
    for precision in ("fp32",) + ((mixed,) if mixed else ()):
        for optimizer in ("sgd", "momentum", "adam"):
            variant = _with(config, training={"optimizer": optimizer, "precision": precision,
                                              "optimizer_state": "fp32"})
            out.append(waterfall(variant, f"{optimizer} {precision.removesuffix('-mixed')}"
                                          f"{' mixed' if precision != 'fp32' else ''}"))
    return out


@dataclass(frozen=True)
class ScalingSeries:
    label: str
    devices: tuple[int, ...]
    mfu: tuple[float, ...]
    scaling_efficiency: tuple[float, ...]
    comm_to_compute: tuple[float, ...]
    network_utilization: tuple[float, ...]
    global_batch: tuple[int, ...]            # at the configuration's device count
    mfu_by_batch: tuple[float, ...]
    at: tuple[int, int]                      # (devices, global batch) of the configuration itself
    background: float
    # time to train to the workload's budget at each point (empty without a budget; dollars NaN
    # without a price): the device sweep's, then the batch sweep's
    days: tuple[float, ...] = ()
    dollars: tuple[float, ...] = ()
    days_by_batch: tuple[float, ...] = ()
    dollars_by_batch: tuple[float, ...] = ()
    noise_batch: float | None = None         # B_noise in samples at this sequence length


def _run_figures(metrics) -> tuple[float, float] | None:
    """(days, dollars) of a point's time to train (dollars NaN without a price), or None."""
    run = metrics.training
    if run is None:
        return None
    return run.days, run.dollars if run.dollars is not None else float("nan")


def _doublings(low: int, high: int) -> list[int]:
    out, value = [], max(1, low)
    while value <= high:
        out.append(value)
        value *= 2
    return out


def scaling(config: Config, label: str = "", max_devices: int | None = None) -> ScalingSeries:
    """Weak scaling in data parallelism (tensor, pipeline and context degrees and micro-batches per step
    fixed), and the global-batch sweep at this device count; points the configuration rules
    refuse (a node size that does not divide) are left out."""
    t = config.training
    model = t.tensor_parallel * t.pipeline_parallel * t.context_parallel    # devices per data-parallel replica
    dp, mb, m = config.data_parallel, t.micro_batch, config.micro_batches
    top = max_devices or max(config.system.devices * 4, model * 16)
    rows, runs = [], []
    for d in _doublings(1, top // model):
        try:
            variant = _with(config, system={"devices": model * d},
                            training={"data_parallel": d, "global_batch": m * d * mb})
            metrics = _evaluate(variant)
        except InputError:
            continue
        rows.append((model * d, metrics.mfu, metrics.scaling_efficiency, metrics.comm_to_compute,
                     metrics.network_utilization))
        runs.append(_run_figures(metrics))
    batches, batch_runs = [], []
    for count in _doublings(1, max(2 * m, 64)):
        try:
            metrics = _evaluate(_with(config, training={"global_batch": count * dp * mb}))
        except InputError:
            continue
        batches.append((count * dp * mb, metrics.mfu))
        batch_runs.append(_run_figures(metrics))
    columns = list(zip(*rows)) if rows else [()] * 5
    from trainwall.optimizer.costmodel.resolve import resolve_workload

    work = resolve_workload(config)          # time to train applies where the workload has a budget
    timed = work.budget is not None and bool(runs)
    days, dollars = tuple(zip(*runs)) if timed else ((), ())
    days_b, dollars_b = tuple(zip(*batch_runs)) if timed and batch_runs else ((), ())
    noise = work.critical_batch_samples(config.workload.seq_len) if work.budget else None   # in samples
    return ScalingSeries(label, *(tuple(c) for c in columns), tuple(b for b, _ in batches),
                         tuple(v for _, v in batches), (config.system.devices, config.global_batch),
                         config.system.background_network_load, tuple(days), tuple(dollars), tuple(days_b),
                         tuple(dollars_b), noise)


STAGE_GROUPS = {"Data": ("storage", "cpu"), "Bus": ("host_link",), "Compute": ("compute",)}


@dataclass(frozen=True)
class PipelineGauge:
    label: str
    capacities: dict          # box -> training samples/s per host (fresh x echo; Data: the slower of storage, CPU)
    utilization: dict         # box -> evaluate's utilisation of the box's slowest stage (achieved / capacity)
    longest_pole: str         # the box holding the max-flow's bottleneck
    rate: float               # training samples/s per host the step achieves (fresh x echo; with serial
                              # loading, less than the max-flow: the step waits for it)
    demand: float             # training samples/s per host the accelerators ask for
    lever: str                # what the curve varies: "workers" (data-loader processes) or "echo"
    settings: tuple[int, ...]
    throughput: tuple[float, ...]   # training samples/s per host the pipeline feeds (fresh x echo)
    needed: tuple[float, ...]       # training samples/s per host loading must deliver (walls.demand_factor x
                                    # what the accelerators consume; NaN where no rate suffices)
    balance_point: int | None       # the least setting at which the starvation wall holds
    current: int


def slowest_stages(metrics) -> dict[str, str]:
    """Each box's slowest stage (the least capacity): the one its gauge shows."""
    flow = metrics.pipeline
    return {box: min(stages, key=lambda s: flow.capacities[s]) for box, stages in STAGE_GROUPS.items()}


def box_utilization(metrics) -> dict[str, float]:
    """Each box's utilisation: evaluate's utilisation of its slowest stage."""
    return {box: metrics.pipeline_utilization[stage] for box, stage in slowest_stages(metrics).items()}


def longest_pole(metrics) -> str:
    """The box holding the max-flow's bottleneck."""
    return _box_of(metrics.pipeline.bottleneck)


def _box_of(stage: str) -> str:
    return next(box for box, stages in STAGE_GROUPS.items() if stage in stages)


#: Data echoing's range when a device has no data-loader workers (a microcontroller).
ECHO_RANGE = range(1, 9)


def lever_point(config: Config, lever: str, value: int, max_wait: float = 0.0) -> tuple[float, float, bool]:
    """The configuration with ``data.<lever>`` = ``value``: (training samples/s per host the
    pipeline feeds, fresh x echo; the training samples/s loading must deliver,
    :func:`~trainwall.optimizer.walls.demand_factor` x what the accelerators consume, NaN
    where no rate suffices; whether the starvation wall holds)."""
    point = _evaluate(_with(config, data={lever: value}))
    uses = value if lever == "echo" else config.data.echo
    factor = demand_factor(point.loading_overlaps, max_wait)
    needed = point.pipeline.capacities["compute"] * uses * factor if factor else float("nan")
    return point.pipeline.rate * uses, needed, starvation(point, max_wait).satisfied


def pipeline(config: Config, label: str = "", lever: str | None = None, max_wait: float = 0.0) -> PipelineGauge:
    """The gauge, and the curve of the lever that feeds the accelerators: data-loader workers
    (1 to twice the host's cores), or data echoing (1 to 8 uses of each fresh sample). By
    default workers, unless loading has none (a microcontroller); a part-2 mission names its own.
    ``max_wait``: the share of a step loading that cannot overlap compute may take (a mission's
    ``max_data_wait``); the balance point is where :func:`~trainwall.optimizer.walls.starvation` holds."""
    from trainwall.hardware import catalog as hw

    metrics = _evaluate(config)
    flow, echo = metrics.pipeline, config.data.echo
    slowest = slowest_stages(metrics)
    capacities = {box: flow.capacities[stage] * echo for box, stage in slowest.items()}
    utilization = box_utilization(metrics)
    lever = lever or ("workers" if config.data.workers else "echo")
    if lever == "workers":
        current = config.data.workers
        cores = config.system.cpu_cores_per_node or hw.device(config.system.accelerator).host.cores
        settings = sorted(set(range(1, min(2 * cores, 256) + 1)) | {current})
    else:
        current = config.data.echo
        settings = sorted(set(ECHO_RANGE) | {current})
    throughput, needed, fed = zip(*(lever_point(config, lever, value, max_wait) for value in settings))
    balance = next((v for v, ok in zip(settings, fed) if ok), None)
    t = metrics.time
    achieved = flow.capacities["compute"] * echo * (t.step_s - t.data_stall_s) / t.step_s
    return PipelineGauge(label, capacities, utilization, longest_pole(metrics), achieved,
                         flow.capacities["compute"] * echo, lever, tuple(settings), tuple(throughput), tuple(needed),
                         balance, current)


def subjects(reference: str, mission_file: str | None = None) -> tuple[object, list[tuple[str, Config]]]:
    """What a figure shows for ``reference``: (None, a configuration file's one configuration,
    or the plan a submission file describes: ``mission_file`` names a variant's mission), or
    (the mission, [its current (naive) plan, its certified optimum])."""
    from pathlib import Path

    from trainwall.core.errors import InputError

    path = Path(reference)
    if path.suffix.lower() in (".toml", ".json", ".yaml", ".yml"):
        from trainwall.api import submitted_plan
        from trainwall.core.fileformats import read_document

        data = read_document(path)                    # a missing file says so, by name
        if not (isinstance(data, dict) and "scenario" in data):   # a configuration or a submission
            plan = submitted_plan(path, mission_file)
            return None, [(path.stem, plan if plan is not None else parse_config(data, str(path)))]
    if mission_file is not None:
        raise InputError("--mission", mission_file, "names the mission of a submission file; "
                         f"{reference} is a mission, not a submission")
    from trainwall.challenges import plans
    from trainwall.challenges.answers import optimum
    from trainwall.challenges.mission import resolve

    mission = resolve(reference)
    best = optimum(mission)
    naive = plans.written(mission, mission.naive, f"{mission.reference} naive")
    chosen = plans.from_configuration(mission, best.configuration, f"{mission.reference} optimum")
    return mission, [(f"{mission.reference} current plan", naive), (f"{mission.reference} optimum", chosen)]
