"""Evaluation: a configuration in, :class:`~trainwall.optimizer.costmodel.metrics.Metrics` out.

:func:`evaluate` resolves the configuration (:mod:`~trainwall.optimizer.costmodel.resolve`),
takes its step structure (:mod:`~trainwall.optimizer.costmodel.structure`, cached per
resolved plan) and reads every metric off it at this configuration's m, the
micro-batches per pipeline per step. Only what depends on the global batch or the
stability settings is computed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainwall.core.errors import InputError
from trainwall.hardware import catalog as hw
from trainwall.models.catalog import Workload
from trainwall.optimizer import datapipe, stability
from trainwall.optimizer.costmodel.metrics import Memory, Metrics, Power, StepTime
from trainwall.optimizer.costmodel.resolve import ResolvedPlan, device_capacity, resolve
from trainwall.optimizer.costmodel.structure import StepStructure, structure_of
from trainwall.optimizer.training_run import Costs, Goal, TimeToTrain, time_to_train
from trainwall.optimizer.walls import intrinsic_violations as violations

if TYPE_CHECKING:
    from trainwall.core.config import Config


def evaluate(config: Config, device: hw.Device | None = None) -> Metrics:
    """Evaluate a validated :class:`trainwall.core.config.Config`.

    ``device`` stands in for the catalog entry named by ``system.accelerator`` (what-if
    studies and the calibration fit of :mod:`trainwall.calibration`).
    """
    plan = resolve(config, device)
    st = structure_of(plan)
    m, gb, N = config.micro_batches, config.global_batch, plan.devices
    _check_interleaving(plan.schedule, m, gb)
    memory = _memory(st, m, plan, device_capacity(config, plan.device))
    time, busy = _step_time(st, m)
    step, compute_s, exposed = time.step_s, time.compute_s, time.exposed_communication_s
    flow, achieved, utilization = _input_pipeline(st, m, plan.inputs.echo, busy, step)
    hw_flops = st.hardware_flops_per_micro_batch * m
    traffic = st.network_traffic(m)
    bg = st.background_network_load
    network_util = min(1e9, traffic / step) + bg if traffic else bg
    stab = check_stability(config, plan.workload)
    power = _power(st, m)
    walls = violations(memory, network_util, bg, stab, plan.mcu, power)
    return Metrics(
        feasible=not walls, violations=walls, memory=memory, time=time,
        model_flops_per_step=st.model_flops_per_micro_batch * m, hardware_flops_per_step=hw_flops,
        mfu=float(st.mfu(m)), hfu=hw_flops / (step * N * st.reference_peak),
        samples_per_s=gb / step, tokens_per_s=gb * plan.network.tokens_per_sample / step,
        comm_to_compute=time.communication_s / compute_s if compute_s else 0.0,
        exposed_comm_to_compute=exposed / compute_s if compute_s else 0.0,
        scaling_efficiency=(st.single_device_per_micro_batch_s * m + st.single_device_fixed_s) / (N * step),
        network_utilization=network_util, background_network_load=bg,
        pipeline=flow, pipeline_throughput=achieved * st.hosts, pipeline_utilization=utilization,
        stability=stab, devices=N, reference_peak=st.reference_peak, bottleneck_link=st.bottleneck_link,
        algorithms=dict(st.algorithms), loading_overlaps=st.loading_overlaps,
        training=_training(plan, config, time, power), power=power,
    )


def _check_interleaving(schedule, m: int, global_batch: int) -> None:
    """Megatron-LM's interleaved schedule runs the micro-batches in groups of p: m must be a
    multiple of the pipeline stages."""
    if schedule.chunks > 1 and m % schedule.stages:
        raise InputError("training.global_batch", global_batch,
                         f"gives {m} micro-batches per pipeline (global batch / (data parallel x micro-batch)); "
                         f"the interleaved schedule (training.virtual_stages > 1) needs a multiple of the "
                         f"{schedule.stages} pipeline stages")


def _power(st: StepStructure, m: int) -> Power | None:
    """What the devices draw at m (None for a device without a sourced power)."""
    p = st.power
    if not p.known:
        return None
    energy, step = float(st.device_energy_j(m)), float(st.step_s(m))
    return Power(p.busy_w, p.idle_w, p.sleep_w, p.radio_w, p.host_w, energy, energy / step,
                 float(st.duty_cycle(m)), float(st.average_power_w(m)), float(st.system_power_w(m)),
                 p.budget_w, p.samples_per_hour)


def _training(plan: ResolvedPlan, config: Config, time: StepTime, power: Power | None) -> TimeToTrain | None:
    """Time to train to the workload's budget (:mod:`trainwall.optimizer.training_run`), or
    None for a workload without one. A budget in tokens counts the batch in tokens."""
    found = training_goal(config, plan.workload, plan.network.tokens_per_sample)
    if found is None:
        return None
    goal, per_sample = found
    idle = time.bubble_s + time.exposed_communication_s + time.data_stall_s
    price, said = device_hour_price(config, plan.device)
    costs = Costs(price, said, float(plan.device.power_w), power.system_w if power else 0.0, config.system.pue,
                  config.system.grid_kg_co2_per_kwh)
    return time_to_train(goal, config.global_batch * per_sample, config.global_batch, time.step_s, idle,
                         plan.devices, costs)


def training_goal(config: Config, work: Workload, tokens_per_sample: float) -> tuple[Goal, float] | None:
    """The workload's goal, and the goal's units per sample (tokens for a budget in tokens,
    else 1); None for a workload without a budget."""
    if work.budget is None:
        return None
    per_sample = tokens_per_sample if work.budget.unit == "tokens" else 1
    noise = work.critical_batch_samples(config.workload.seq_len) * per_sample     # B_noise in the budget's unit
    return Goal(work.budget.amount, work.budget.batch, noise, work.budget.unit, work.budget.source), per_sample


def device_hour_price(config: Config, device: hw.Device) -> tuple[float | None, str]:
    """A device-hour's price and its source: the configuration's, else the catalog's on-demand
    or reserved price (``system.pricing``), else none."""
    s = config.system
    found = hw.prices().get(device.key)
    if s.price_per_device_hour is not None:
        return s.price_per_device_hour, "the configuration's system.price_per_device_hour"
    if found is None:
        return None, ""
    if s.pricing == "on-demand":
        return found.on_demand, found.on_demand_source
    if found.reserved is None:
        raise InputError("system.pricing", s.pricing, f"hardware/data/prices.toml has no reserved price for "
                         f"{device.key}: use on-demand or give system.price_per_device_hour")
    return found.reserved, found.reserved_source


def _memory(st: StepStructure, m: int, plan: ResolvedPlan, capacity: float) -> Memory:
    """The waterfall of the most loaded stage's devices."""
    per_stage = [float(x) for x in st.stage_memory(m)]
    worst = max(range(len(per_stage)), key=lambda i: per_stage[i])
    s = st.stage_states[worst]
    return Memory(s.weights, s.gradients, s.states.optimizer_state, per_stage[worst] - st.stage_static[worst],
                  s.other, per_stage[worst], capacity,
                  flash=s.states.frozen_weights if plan.mcu else 0.0,
                  flash_capacity=plan.device.flash_bytes if plan.mcu else 0.0,
                  trainable_params=s.trainable, params=s.params, transient_activations=st.stage_transient[worst])


def _step_time(st: StepStructure, m: int) -> tuple[StepTime, float]:
    """The step's seconds and their parts, and the busy seconds (compute and exposed
    communication, without the data stall)."""
    tp_s, tp_exposed = m * st.tp_all_per_micro_batch_s, m * st.tp_per_micro_batch_s
    pp_s = m * st.pp_per_micro_batch_s
    cp_s, cp_exposed = m * st.cp_per_micro_batch_s, m * st.cp_exposed_per_micro_batch_s
    dp_s = st.dp_fixed_s + m * st.dp_per_micro_batch_s
    exposed = tp_exposed + pp_s + cp_exposed + st.dp_exposed_fixed_s + m * st.dp_exposed_per_micro_batch_s
    busy = float(st.busy_s(m))
    stall = float(st.stall_s(m))
    time = StepTime(busy + stall, m * st.t_stage + st.optimizer_s, tp_s + pp_s + cp_s + dp_s, exposed,
                    st.schedule.bubble_s(st.t_stage), stall, m * st.recompute_per_micro_batch_s, st.optimizer_s,
                    tp_s, pp_s, dp_s, st.load_per_micro_batch_s * m, cp_s, cp_exposed, tp_exposed)
    return time, busy


def _input_pipeline(st: StepStructure, m: int, echo: int, busy: float,
                    step: float) -> tuple[datapipe.PipelineFlow, float, dict[str, float]]:
    """Per host: the flow network at the step's demand (the longest pole), the fresh samples
    per second achieved, and each stage's utilisation (achieved / capacity)."""
    fresh = st.samples_per_micro_batch_per_host * m / echo   # samples the pipeline delivers per step and host
    storage_rate, cpu_rate, link_rate = st.input_rates
    flow = datapipe.solve_flow(storage_rate, cpu_rate, link_rate, fresh / busy if busy > 0 else float("inf"))
    achieved = fresh / step
    utilization = {k: (achieved / c if c and c != float("inf") else 0.0) for k, c in flow.capacities.items()}
    return flow, achieved, utilization


def check_stability(config: Config, work: Workload) -> stability.StabilityReport:
    """The stability rules for this configuration's precision, scaling, clipping and batch."""
    t, profile = config.training, work.stability
    return stability.check(t.precision, t.loss_scaling, t.loss_scale, t.gradient_clipping, config.global_batch,
                           profile.gradient_min, profile.gradient_max, profile.activation_max,
                           work.critical_batch_samples(config.workload.seq_len), t.local_steps,
                           profile.max_local_steps)
