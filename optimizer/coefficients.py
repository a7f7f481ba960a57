"""The cost model's numbers for the search: one configuration (a mode) in, the coefficients
of its formulation out.

The formulations (:mod:`~trainwall.optimizer.state_audit`, :mod:`~trainwall.optimizer.pipeline_race`,
:mod:`~trainwall.optimizer.scaling_wall`) and the certifiers receive these numbers and
nothing else: no mission, no configuration. Each comes from the same functions
:func:`~trainwall.optimizer.costmodel.evaluate` calls, so the search and the cost model
cannot disagree on a formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainwall.core.errors import InputError
from trainwall.optimizer.training_run import DAY, HOUR, RunRate
from trainwall.optimizer.walls import WALLS

#: A layer's four cases (trains, gradient flows in), in the order of :func:`case_index`.
CASES = ((False, False), (True, False), (False, True), (True, True))


def case_index(trains: bool, flows: bool) -> int:
    """Index into CASES: 00, 10, 01, 11 as 0, 1, 2, 3."""
    return int(trains) + 2 * int(flows)


@dataclass(frozen=True)
class ModeTable:
    """Part 1: one mode's per-layer memory coefficients (bytes per device; activations per sample)."""

    params: tuple[float, ...]         # P_l per device
    trained: tuple[float, ...]        # S_l: weights + gradients + optimizer state if it trains
    frozen: tuple[float, ...]         # W_l: its weights if frozen
    kept: tuple[tuple[float, ...], ...]       # A_l per case (bytes per sample)
    transient: tuple[tuple[float, ...], ...]  # R_l per case (bytes per sample)
    micro_batch: float       # samples per device: micro_batch / context_parallel (a rank holds s / cp tokens)
    other: float
    capacity: float
    flash_capacity: float
    mcu: bool
    stable: bool                      # the mode keeps every stability rule
    configured: tuple[bool, ...]      # the layers the configuration itself trains
    choices: dict = field(default_factory=dict)   # the mode's label (its decision values)

    def memory(self, mask: tuple[bool, ...]) -> tuple[float, float]:
        """(device memory, flash) of a layer selection: the same sums as the MILP."""
        flows, total, flash, transient = False, self.other, 0.0, 0.0
        for l, trains in enumerate(mask):
            k = case_index(trains, flows)
            if trains:
                total += self.trained[l]
            elif self.mcu:
                flash += self.frozen[l]
            else:
                total += self.frozen[l]
            total += self.micro_batch * self.kept[l][k]
            transient = max(transient, self.transient[l][k])
            flows = flows or (trains and self.params[l] > 0)
        return total + self.micro_batch * transient, flash


def mode_table(config, all_layers, choices: dict) -> ModeTable:
    """Part 1: the coefficients of ``all_layers`` (the configuration with every layer
    trainable) and which layers ``config`` itself trains, labelled ``choices``."""
    from trainwall.hardware import catalog as hw
    from trainwall.optimizer.costmodel import (_device_params, activation_case, check_stability, device_capacity,
                                                resolve_network, resolve_workload, trainable_mask)
    from trainwall.optimizer.memory import model_state_bytes
    from trainwall.optimizer.precision import training_policy

    s, t = all_layers.system, all_layers.training
    if t.pipeline_parallel != 1:
        raise InputError("training.pipeline_parallel", t.pipeline_parallel, "must be 1 in a part-1 mission")
    if t.zero_stage >= 3 and all_layers.data_parallel * t.context_parallel > 1:
        raise InputError("training.zero_stage", t.zero_stage, "at most 2 in a part-1 mission with data parallelism "
                         "(ZeRO-3's gathered layer is not one of the layer-selection model's per-layer terms)")
    device = hw.device(s.accelerator)
    work = resolve_workload(all_layers)
    network = resolve_network(all_layers, work)
    policy = training_policy(t.precision, t.gradient_dtype)
    tp, dp = t.tensor_parallel, all_layers.data_parallel * t.context_parallel   # ZeRO shards over data x context
    sp = t.sequence_parallel and tp > 1
    def coefficients(layer) -> tuple:
        p = _device_params(layer, tp)
        on = model_state_bytes(p, p, layer.param_tensors, t.optimizer, policy, t.zero_stage, dp, t.optimizer_state)
        off = model_state_bytes(p, 0.0, 0, t.optimizer, policy, t.zero_stage, dp, t.optimizer_state)
        cases = [activation_case(layer, tr, fl, t.recompute, policy.activation_bytes, tp, sp) for tr, fl in CASES]
        return (p, on.weights + on.gradients + on.optimizer_state, off.frozen_weights,
                tuple(c[0] for c in cases), tuple(c[1] for c in cases))

    by_layer: dict = {}   # layers hash by identity: a stack of identical blocks is costed once
    for layer in network.layers:
        if layer not in by_layer:
            by_layer[layer] = coefficients(layer)
    params, trained, frozen, kept, transient = zip(*(by_layer[layer] for layer in network.layers))
    mcu = device.kind == "mcu"
    return ModeTable(
        params=params, trained=trained, frozen=frozen, kept=kept,
        transient=transient, micro_batch=t.micro_batch / t.context_parallel, other=device.runtime_reserve_bytes,
        capacity=device_capacity(all_layers, device), flash_capacity=device.flash_bytes if mcu else 0.0, mcu=mcu,
        stable=check_stability(all_layers, work).stable,
        configured=trainable_mask(config.training.trainable, network), choices=dict(choices))


@dataclass(frozen=True)
class PipelineRates:
    """Part 2: one mode's demand and capacities (training samples/s and fresh samples/s, per host)."""

    demand: float
    storage: float
    cpu_per_worker: float
    host_link: float
    cores: int
    workers: int        # the mode's workers when the range decision is the echo
    echo: int           # the mode's echo when the range decision is the workers


def pipeline_rates(config, metrics) -> PipelineRates:
    """Part 2: the input pipeline's numbers of an evaluated configuration."""
    from trainwall.hardware import catalog as hw

    caps = metrics.pipeline.capacities
    cores = config.system.cpu_cores_per_node or hw.device(config.system.accelerator).host.cores
    used = min(max(1, config.data.workers), cores)
    return PipelineRates(caps["compute"] * config.data.echo, caps["storage"], caps["cpu"] / used,
                         caps["host_link"], cores, config.data.workers, config.data.echo)


@dataclass(frozen=True)
class ScalingMode:
    """Part 3: one mode's step structure and the micro-batch counts its walls allow."""

    choices: dict
    structure: object        # StepStructure
    m_lo: int
    m_hi: int                # range and global-batch limit
    m_memory: int            # most micro-batches that fit (m_hi when memory never binds)
    m_stable: int            # most micro-batches the critical batch allows without clipping
    mode_stable: bool        # number formats and local-SGD staleness hold
    capacity: float          # bytes per device (costmodel.device_capacity)
    run: RunRate | None = None           # the run to the workload's goal (None without a budget)
    m_deadline: tuple[int, int] | None = None   # the m whose run meets the deadline, (1, 0) when none does
    m_step: int = 1                      # m must be a multiple of it (the interleaved schedule: p)

    def counts(self):
        """Every micro-batch count of the mode's range: m_lo, m_lo + step, .. m_hi."""
        return np.arange(self.m_lo, self.m_hi + 1, self.m_step)


def scaling_mode(config, choices: dict, m_lo: int, m_max: int, global_batch_limit: int,
                 deadline_days: float | None = None) -> ScalingMode | None:
    """Part 3: the mode of ``config`` (any micro-batch count), or None when not even ``m_lo``
    micro-batches fit under the global-batch limit."""
    from trainwall.hardware import catalog as hw
    from trainwall.optimizer import stability
    from trainwall.optimizer.costmodel import device_capacity, resolve_workload
    from trainwall.optimizer.costmodel.resolve import resolve
    from trainwall.optimizer.costmodel.structure import structure_of

    plan = resolve(config)
    st = structure_of(plan)
    per_step = st.data_parallel * st.micro_batch
    step = st.schedule.stages if st.schedule.chunks > 1 else 1     # interleaving: m a multiple of p
    m_lo = -(-m_lo // step) * step
    m_hi = min(m_max, global_batch_limit // per_step) // step * step
    if m_hi < m_lo:
        return None
    capacity = device_capacity(config, hw.device(config.system.accelerator))
    fits = WALLS["memory"].holds
    saturation = st.schedule.saturation()      # memory grows with m up to it, flat beyond
    if fits(float(st.memory_total(saturation)), capacity):
        m_memory = m_hi
    else:
        counts = np.arange(1, saturation)
        fitting = counts[fits(st.memory_total(counts), capacity)]   # the same arithmetic, every m at once
        m_memory = int(fitting.max()) if fitting.size else 0
    t, work = config.training, resolve_workload(config)
    profile, critical = work.stability, work.critical_batch_samples(config.workload.seq_len)
    fmt = stability.check(t.precision, t.loss_scaling, t.loss_scale, True, 0, profile.gradient_min,
                          profile.gradient_max, profile.activation_max, critical,
                          t.local_steps, profile.max_local_steps)
    m_stable = m_hi if t.gradient_clipping else int(critical // per_step)
    run = run_rate(config, plan, st)
    return ScalingMode(dict(choices), st, m_lo, m_hi, m_memory, m_stable, fmt.stable, capacity, run,
                       None if deadline_days is None else deadline_range(run, st, np.arange(m_lo, m_hi + 1, step),
                                                                         deadline_days), step)


def run_rate(config, plan, st) -> RunRate | None:
    """The mode's run to the workload's goal (None for a workload without a budget)."""
    from trainwall.optimizer.costmodel.evaluation import device_hour_price, training_goal

    found = training_goal(config, plan.workload, plan.network.tokens_per_sample)
    if found is None:
        return None
    goal, per_sample = found
    price, _ = device_hour_price(config, plan.device)
    return RunRate(goal, st.data_parallel * st.micro_batch * per_sample,
                   None if price is None else plan.devices * price / HOUR, config.system.pue)


def deadline_range(run: RunRate | None, st, m: np.ndarray, deadline_days: float) -> tuple[int, int]:
    """The micro-batch counts of ``m`` (the mode's) whose run to the goal takes at most ``deadline_days``,
    (lo, hi), or (1, 0) when none does. The run's seconds S(g m)(S m + B) are convex in m, so
    they form one interval; the step is part 3's linear one (its walls keep the pipeline fed)."""
    if run is None:
        raise InputError("limits.days", deadline_days, "a deadline needs a workload with a training budget")
    inside = m[WALLS["deadline"].holds(run.steps(m) * st.fed_step_s(m) / DAY, deadline_days)]
    return (int(inside.min()), int(inside.max())) if inside.size else (1, 0)
