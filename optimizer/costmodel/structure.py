"""The step structure: one configuration's costs as functions of m, built once per plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from trainwall.core.caches import bounded
from trainwall.hardware import catalog as hw
from trainwall.hardware.collectives import CollectivePlan
from trainwall.optimizer.costmodel.communication import communication
from trainwall.optimizer.costmodel.elementwise import max_over_rows, positive_part
from trainwall.optimizer.costmodel.inputs import accelerator_augmentation_s, input_rates
from trainwall.optimizer.costmodel.power import PowerDraw
from trainwall.optimizer.costmodel.resolve import ResolvedPlan, resolve
from trainwall.optimizer.costmodel.schedule import PipelineSchedule
from trainwall.optimizer.costmodel.stages import Stages, StageStates, gradient_flows, layer_costs, stages
from trainwall.optimizer.memory import model_state_bytes
from trainwall.optimizer.training_run import HOUR   # the duty cycle's period

if TYPE_CHECKING:
    from trainwall.core.config import Config


@dataclass(frozen=True)
class StepStructure:
    """One configuration's costs as functions of m, the micro-batches per pipeline per step.

    Everything the global batch B = m x data_parallel x micro_batch changes is linear in
    m (for memory: piecewise, the schedule's in-flight micro-batches, min(p - i, m) for
    1F1B, saturate at m = p), so :func:`evaluate` and the part-3 optimiser read the same
    coefficients, and the exhaustive certifier evaluates every m at once: each method
    takes a number or a numpy array of m. With ``A`` the per-micro-batch and ``B`` the
    fixed seconds:

        busy(m)  = A m + B,   A = t_stage + t_tp + t_pp + e_dp,   B = bubble + t_opt + E_dp
        stall(m) = max(0, L m - busy(m))  (loading overlaps compute)  or  L m  (it does not)
        step(m)  = busy(m) + stall(m)
        network(m) = max_l (a_l m + b_l) / step(m) + background   (a_l, b_l: link l's link-seconds)
        MFU(m)   = F m / (step(m) x N x peak)                (F: model FLOPs per micro-batch round)

    with the bubble (p - 1) t_stage for 1F1B (:mod:`~trainwall.optimizer.costmodel.schedule`).
    """

    micro_batch: int
    data_parallel: int
    schedule: PipelineSchedule
    devices: int
    reference_peak: float
    t_stage: float                      # slowest stage, forward + backward (+ recompute) of one micro-batch
    recompute_per_micro_batch_s: float  # recompute time of the first stage, per micro-batch
    optimizer_s: float
    tp_per_micro_batch_s: float         # tensor-parallel collectives compute does not hide
    tp_all_per_micro_batch_s: float     # all of them
    pp_per_micro_batch_s: float
    cp_per_micro_batch_s: float         # context parallelism's K/V exchange
    cp_exposed_per_micro_batch_s: float  # of which the attention does not hide
    dp_fixed_s: float                   # gradient all-reduce (ZeRO 0-2)
    dp_per_micro_batch_s: float         # ZeRO-3 gathers and reduce-scatters
    dp_exposed_fixed_s: float
    dp_exposed_per_micro_batch_s: float
    network_links: tuple[tuple[float, float], ...]   # per network link (a, b): link-seconds a m + b per step
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
    data_parallel_plan: CollectivePlan | None = None  # its plan (None without data parallelism)
    stage_states: tuple[StageStates, ...] = ()        # per stage: the model states behind stage_static
    input_rates: tuple[float, float, float] = (0.0, 0.0, 0.0)  # one host's (storage, cpu, host link), samples/s
    algorithms: tuple[tuple[str, str], ...] = ()      # (parallelism, collective algorithm)
    bottleneck_link: str = ""
    power: PowerDraw = PowerDraw()                    # watts per state, the budget and the stream (power.py)
    echo: int = 1                                     # each fresh sample is trained on echo times

    @property
    def pipeline_parallel(self) -> int:
        return self.schedule.stages

    @property
    def exposed_per_micro_batch_s(self) -> float:
        """Seconds of communication each micro-batch adds that compute cannot hide."""
        return (self.tp_per_micro_batch_s + self.pp_per_micro_batch_s + self.cp_exposed_per_micro_batch_s
                + self.dp_exposed_per_micro_batch_s)

    @property
    def per_micro_batch_s(self) -> float:
        """A: seconds each micro-batch adds to a step."""
        return self.t_stage + self.exposed_per_micro_batch_s

    @property
    def fixed_s(self) -> float:
        """B: seconds per step whatever the number of micro-batches."""
        return self.schedule.bubble_s(self.t_stage) + self.optimizer_s + self.dp_exposed_fixed_s

    @property
    def fed_per_micro_batch_s(self) -> float:
        """Seconds per micro-batch of the step once the input pipeline keeps up: A, plus the
        loading L where it cannot overlap compute (an MCU computing its own features)."""
        return self.per_micro_batch_s + (0.0 if self.loading_overlaps else self.load_per_micro_batch_s)

    def fed_step_s(self, m):
        """The step once the input pipeline keeps up (part 3's starvation wall): linear in m."""
        return self.fed_per_micro_batch_s * m + self.fixed_s

    def busy_s(self, m):
        return self.per_micro_batch_s * m + self.fixed_s

    def stall_s(self, m):
        load = self.load_per_micro_batch_s * m
        return positive_part(load - self.busy_s(m)) if self.loading_overlaps else load

    def step_s(self, m):
        return self.busy_s(m) + self.stall_s(m)

    def network_traffic(self, m):
        """Link-seconds of traffic on the busiest network link per step (at full link capacity):
        max over links of a_l m + b_l (0 without network traffic)."""
        if not self.network_links:
            return 0.0 * m
        return max_over_rows([a * m + b for a, b in self.network_links])

    def network_utilization(self, m):
        return self.network_traffic(m) / self.step_s(m) + self.background_network_load

    def mfu(self, m):
        return self.model_flops_per_micro_batch * m / (self.step_s(m) * self.devices * self.reference_peak)

    def compute_s(self, m):
        """Seconds the device computes: m t_stage (recompute included) + the optimizer update."""
        return self.t_stage * m + self.optimizer_s

    def exposed_s(self, m):
        """Seconds the step waits on communication it cannot hide."""
        return self.exposed_per_micro_batch_s * m + self.dp_exposed_fixed_s

    def device_energy_j(self, m):
        """One device's joules per step (:mod:`~trainwall.optimizer.costmodel.power`):
        P_idle step + (P_busy - P_idle) compute + P_radio exposed."""
        p = self.power
        return p.idle_w * self.step_s(m) + (p.busy_w - p.idle_w) * self.compute_s(m) + p.radio_w * self.exposed_s(m)

    def fed_energy_coefficients(self) -> tuple[float, float]:
        """(e_q, e_u): one device's joules per step once the input pipeline keeps up, e_q m + e_u
        (device_energy_j with the fed step: part 3's linear forms)."""
        p = self.power
        e_q = (p.idle_w * self.fed_per_micro_batch_s + (p.busy_w - p.idle_w) * self.t_stage
               + p.radio_w * self.exposed_per_micro_batch_s)
        e_u = p.idle_w * self.fixed_s + (p.busy_w - p.idle_w) * self.optimizer_s + p.radio_w * self.dp_exposed_fixed_s
        return e_q, e_u

    def system_energy_j(self, m):
        """The whole system's joules per step: devices x E(m) + hosts x P_host x step(m)."""
        return self.devices * self.device_energy_j(m) + self.hosts * self.power.host_w * self.step_s(m)

    def fresh_samples(self, m):
        """The fresh samples one step learns from, the group's: data_parallel x micro_batch x m / echo."""
        return self.data_parallel * self.micro_batch * m / self.echo

    def duty_cycle(self, m):
        """The share of the time the devices learn: R step / (3600 fresh) for a stream of R
        fresh samples an hour, 1 without one (above 1: they cannot keep up)."""
        rate = self.power.samples_per_hour
        return 1.0 + 0.0 * m if rate is None else rate * self.step_s(m) / (HOUR * self.fresh_samples(m))

    def average_power_w(self, m):
        """Each device's average power over its duty cycle: P_sleep + f (E / step - P_sleep),
        that is P_sleep + R (E - P_sleep step) / (3600 fresh); E / step without a stream."""
        p, energy, step = self.power, self.device_energy_j(m), self.step_s(m)
        if p.samples_per_hour is None:
            return energy / step
        return p.sleep_w + p.samples_per_hour * (energy - p.sleep_w * step) / (HOUR * self.fresh_samples(m))

    def system_power_w(self, m):
        """Watts the whole system draws while it learns: devices x E / step + hosts x P_host."""
        return self.system_energy_j(m) / self.step_s(m)

    def stage_memory(self, m):
        """Bytes per device on each stage (rows): static + kept x in-flight micro-batches + transient;
        a list for one m, a (stages x len(m)) array for an array of m (every stage at once: the
        certifier's and the memory wall's every m)."""
        if isinstance(m, (int, float)):
            return [static + kept * self.schedule.in_flight(i, m) + transient
                    for i, (static, kept, transient) in enumerate(zip(self.stage_static, self.stage_kept,
                                                                       self.stage_transient))]
        import numpy as np

        column = lambda values: np.asarray(values, dtype=float)[:, None]   # noqa: E731
        stage = np.arange(len(self.stage_static))[:, None]
        return (column(self.stage_static) + column(self.stage_kept) * self.schedule.in_flight(stage, np.asarray(m))
                + column(self.stage_transient))

    def memory_total(self, m):
        return max_over_rows(self.stage_memory(m))


def step_structure(config: Config, device: hw.Device | None = None) -> StepStructure:
    """The configuration's :class:`StepStructure`, cached by its resolved plan (the global
    batch, gradient clipping and loss scaling are not read)."""
    return structure_of(resolve(config, device))


@dataclass(frozen=True)
class _Computation:
    """What a plan's devices compute and hold: its stages, split and unsplit layer costs and
    accelerator augmentation. The fabric's background load does not enter it."""

    costs: tuple
    single: tuple
    stages: Stages
    augment: float


@bounded(4096, key=lambda plan: replace(plan, background=0.0))
def _computation(plan: ResolvedPlan) -> _Computation:
    """The plan's :class:`_Computation`, cached without its background load: a mission whose
    variants draw the fabric's load (cloud/3) computes each mode's stages once, not once per load."""
    flows = gradient_flows(plan)
    augment = accelerator_augmentation_s(plan.inputs, plan.rates, plan.micro_batch)
    costs = layer_costs(plan, flows)
    return _Computation(tuple(costs), tuple(layer_costs(plan, flows, split=False)),
                        stages(plan, costs, flows, augment), augment)


@bounded(4096)
def structure_of(plan: ResolvedPlan) -> StepStructure:
    """Build the step structure of a resolved plan (module docstrings of
    :mod:`~trainwall.optimizer.costmodel.stages`, :mod:`~trainwall.optimizer.costmodel.communication`
    and :mod:`~trainwall.optimizer.costmodel.inputs` give the terms)."""
    done = _computation(plan)
    costs, single, st, augment = done.costs, done.single, done.stages, done.augment
    t_stage = max(st.time)
    comm = communication(plan, st, t_stage)
    # Optimizer update: a memory-bound pass over each stage's states; the slowest stage sets it.
    opt_bytes = max(2 * (s.states.optimizer_state + s.states.weights) + s.states.gradients for s in st.states)
    trains = max(s.trainable for s in st.states)
    # Input pipeline, per host: seconds of loading per micro-batch round.
    inputs, dp = plan.inputs, plan.data_parallel
    samples_mb_host = dp * plan.micro_batch / inputs.hosts
    rates = input_rates(inputs)
    supply = min(rates) * inputs.echo   # training samples/s: each fresh sample is used `echo` times
    first_a, first_b = plan.bounds[0]
    return StepStructure(
        micro_batch=plan.micro_batch, data_parallel=dp, schedule=plan.schedule, devices=plan.devices,
        reference_peak=plan.reference_peak, t_stage=t_stage,
        recompute_per_micro_batch_s=sum(c.recompute_s for c in costs[first_a:first_b]),
        optimizer_s=opt_bytes / plan.rates.bandwidth if trains else 0.0,
        tp_per_micro_batch_s=comm.tp_per_micro_batch_s, tp_all_per_micro_batch_s=comm.tp_all_per_micro_batch_s,
        pp_per_micro_batch_s=comm.pp_per_micro_batch_s,
        cp_per_micro_batch_s=comm.cp_per_micro_batch_s, cp_exposed_per_micro_batch_s=comm.cp_exposed_per_micro_batch_s,
        dp_fixed_s=comm.dp_fixed_s, dp_per_micro_batch_s=comm.dp_per_micro_batch_s,
        dp_exposed_fixed_s=comm.dp_exposed_fixed_s, dp_exposed_per_micro_batch_s=comm.dp_exposed_per_micro_batch_s,
        network_links=comm.network_links,
        background_network_load=plan.background, load_per_micro_batch_s=samples_mb_host / supply,
        loading_overlaps=inputs.overlaps,
        stage_static=tuple(s.static for s in st.states), stage_kept=st.kept, stage_transient=st.transient,
        model_flops_per_micro_batch=sum(c.model_flops for c in single) * dp,
        hardware_flops_per_micro_batch=sum(c.hardware_flops for c in single) * dp,
        single_device_per_micro_batch_s=(sum(c.forward_s + c.backward_s + c.recompute_s for c in single)
                                         + augment) * dp,
        single_device_fixed_s=_single_device_optimizer_s(plan),
        hosts=inputs.hosts, samples_per_micro_batch_per_host=samples_mb_host,
        data_parallel_bytes=comm.data_parallel_bytes, data_parallel_plan=comm.data_parallel_plan,
        stage_states=st.states, input_rates=rates, algorithms=comm.algorithms, bottleneck_link=comm.bottleneck_link,
        power=plan.power, echo=inputs.echo,
    )


def _single_device_optimizer_s(plan: ResolvedPlan) -> float:
    """The optimizer update on one device holding every state: (2 (optimizer + weights) +
    gradients) bytes / bandwidth (T_1's fixed part, for the scaling efficiency)."""
    trainable = sum(layer.params for layer, tr in zip(plan.network.layers, plan.trainable) if tr)
    full = model_state_bytes(plan.network.params, trainable, 0, plan.optimizer, plan.policy)
    return (2 * (full.optimizer_state + full.weights) + full.gradients) / plan.rates.bandwidth
