"""What :func:`~trainwall.optimizer.costmodel.evaluate` returns: memory, step time,
throughput, the input pipeline, stability and the walls hit, in SI units."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from trainwall.optimizer import datapipe, stability
from trainwall.optimizer.training_run import TimeToTrain
from trainwall.optimizer.walls import Violation


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
    transient_activations: float = 0.0   # the widest kernel's working set, included in ``activations``

    @property
    def saved_activations(self) -> float:
        """Activations kept for the backward pass: ``activations`` less the transient working set."""
        return self.activations - self.transient_activations

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
    """Seconds of one optimizer step and its parts (see the package docstring's formula)."""

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
    loading_s: float = 0.0     # seconds of loading the step needs per host (hidden behind compute when it overlaps)
    context_parallel_s: float = 0.0    # context parallelism's K/V exchange, all of it
    context_parallel_exposed_s: float = 0.0   # of which the attention does not hide
    tensor_parallel_exposed_s: float = 0.0    # of tensor_parallel_s, what the GEMMs do not hide


@dataclass(frozen=True)
class Power:
    """What the devices draw (:mod:`~trainwall.optimizer.costmodel.power`): watts per state,
    one device's joules per step, its duty cycle and average power, the whole system's draw."""

    busy_w: float
    idle_w: float
    sleep_w: float
    radio_w: float
    host_w: float
    device_energy_per_step_j: float
    learning_w: float          # one device's average while it learns: energy / step
    duty_cycle: float          # the share of the time it learns (1 without a stream)
    average_w: float           # over the duty cycle
    system_w: float            # devices x learning_w + hosts x host_w
    budget_w: float | None
    samples_per_hour: float | None


@dataclass(frozen=True)
class Metrics:
    """Everything :func:`evaluate` computes; ``to_dict`` gives docs/INTERFACE.md's keys."""

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
    loading_overlaps: bool = True   # loading runs beside compute (workers on other cores), or before it
    training: TimeToTrain | None = None   # to the workload's budget (None without one)
    power: Power | None = None            # None for a device without a sourced power

    def to_dict(self) -> dict:
        """docs/INTERFACE.md's JSON object of ``trainwall evaluate --json``."""
        m = self.memory
        return {
            "feasible": self.feasible,
            "violations": [asdict(v) for v in self.violations],
            "memory": {"weights": m.weights, "gradients": m.gradients, "optimizer_state": m.optimizer_state,
                       "activations": m.activations, "other": m.other, "total": m.total,
                       "capacity": m.capacity, "flash": m.flash, "flash_capacity": m.flash_capacity,
                       "params": m.params, "trainable_params": m.trainable_params,
                       "transient_activations": m.transient_activations},
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
                "overlaps_compute": self.loading_overlaps,
                "throughput": self.pipeline_throughput,
                "stages": {s: {"capacity": c, "utilization": self.pipeline_utilization[s]}
                           for s, c in self.pipeline.capacities.items()},
            },
            "stable": self.stability.stable,
            "stability": {"reasons": list(self.stability.reasons),
                          "gradient_format": self.stability.grad_format,
                          "scaled_gradient_range": list(self.stability.scaled_gradient_range)},
            "devices": self.devices,
            "training": _training_dict(self.training),
            "power": asdict(self.power) if self.power else None,
        }


def _training_dict(run: TimeToTrain | None) -> dict | None:
    """docs/INTERFACE.md's ``training`` object (null for a workload without a budget)."""
    if run is None:
        return None
    return {"steps": run.steps, "samples": run.samples, "budget": run.budget, "unit": run.unit,
            "noise_batch": run.noise_batch, "seconds": run.seconds, "days": run.days,
            "device_hours": run.device_hours, "idle_device_hours": run.idle_device_hours,
            "idle_share": run.idle_share, "source": run.source,
            "price_per_device_hour": run.price_per_device_hour, "price_source": run.price_source,
            "dollars": run.dollars, "idle_dollars_per_hour": run.idle_dollars_per_hour,
            "power_w_per_device": run.costs.power_w or None, "pue": run.costs.pue,
            "system_power_w": run.costs.system_power_w or None, "energy_kwh": run.energy_kwh,
            "energy_at_power_limit_kwh": run.energy_at_power_limit_kwh, "grid_kg_co2_per_kwh": run.costs.grid_kg_co2_per_kwh,
            "co2_tonnes": run.co2_tonnes}
