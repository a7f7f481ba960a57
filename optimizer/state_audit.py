"""Part 1, the state audit, as a mixed-integer linear program (Pyomo, solved by HiGHS).

Decisions: one *mode* c (a combination of the mission's open choices: optimizer,
precision, recompute, micro-batch, ZeRO stage, ...) and which layers train.

Variables
    u_c in {0, 1}    mode c is chosen;                    sum_c u_c = 1
    x_l in {0, 1}    layer l trains (fixed 0 for a layer without parameters)
    y_l in {0, 1}    a gradient flows into layer l:       y_0 = 0,
                     y_l >= y_(l-1),  y_l >= x_(l-1),  y_l <= y_(l-1) + x_(l-1)
    z_l in [0, 1]    x_l AND y_l:  z_l <= x_l,  z_l <= y_l,  z_l >= x_l + y_l - 1
    T >= 0           the largest transient activation (epigraph of a max)
    F >= 0           memory used, as a fraction of the capacity (tie-break stage)

The four cases of a layer, e_l^(trains, flows), are linear in (x, y, z):
    e^00 = 1 - x - y + z,  e^10 = x - z,  e^01 = y - z,  e^11 = z.

Memory of mode c, per device, in units of its capacity K_c (the cost model's
waterfall, coefficients from :func:`trainwall.optimizer.costmodel.activation_case` and
:func:`trainwall.optimizer.memory.model_state_bytes`):
    m_c = [ sum_l S_lc x_l + W_lc (1 - x_l)                 (states; W to flash on an MCU)
          + b_c sum_l sum_k A_lck e_l^k                     (kept activations, b_c micro-batch)
          + T + O_c ] / K_c                                 (largest transient, runtime reserve)
    m_c <= 1 + M_c (1 - u_c)                                (only the chosen mode's memory binds)
    T   >= b_c sum_k R_lck e_l^k - M'_c (1 - u_c)  for every l
    flash (MCU): sum_l W_lc (1 - x_l) <= Flash + M''_c (1 - u_c)
    a mode that breaks a stability rule (precision range, clipping) is fixed u_c = 0.

The big-M constants are the largest value each left-hand side can take, so no
feasible point is cut off. Objective, lexicographic, one persistent model re-solved
three times: (1) maximise trainable parameters sum_l P_l x_l (or the micro-batch
sum_c b_c u_c); (2) holding that, minimise F >= m_c - M_c (1 - u_c); (3) holding both,
the fixed tie-break: the earliest mode in the mission file, then the latest layers
(minimise (L^2 + 1) sum_c c u_c + sum_l (L - 1 - l) x_l: the mode term dominates).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwall.core.errors import InputError
from trainwall.optimizer.highs import SolveResult, Solver, Status

#: A layer's four cases (trains, gradient flows in), in the order of :func:`case_index`.
CASES = ((False, False), (True, False), (False, True), (True, True))


def case_index(trains: bool, flows: bool) -> int:
    """Index into CASES: 00, 10, 01, 11 as 0, 1, 2, 3."""
    return int(trains) + 2 * int(flows)


@dataclass(frozen=True)
class ModeTable:
    """Everything the formulation and the exhaustive certifier need about one mode."""

    choices: dict
    config: object                    # the validated Config (trainable = "all")
    params: tuple[float, ...]         # P_l per device
    trained: tuple[float, ...]        # S_l: weights + gradients + optimizer state if it trains
    frozen: tuple[float, ...]         # W_l: its weights if frozen
    kept: tuple[tuple[float, ...], ...]       # A_l per case (bytes per sample)
    transient: tuple[tuple[float, ...], ...]  # R_l per case (bytes per sample)
    micro_batch: int
    other: float
    capacity: float
    flash_capacity: float
    mcu: bool
    stable: bool

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


def mode_table(mission, choices: dict) -> ModeTable:
    """The cost model's coefficients for one mode of a part-1 mission."""
    from trainwall.core.config import parse_config
    from trainwall.hardware import catalog as hw
    from trainwall.optimizer.costmodel import (_device_params, activation_case, check_stability, device_capacity,
                                                resolve_workload)
    from trainwall.optimizer.memory import model_state_bytes
    from trainwall.optimizer.precision import POLICIES

    data = mission.config_data(choices=choices)
    if mission.select_layers:
        data["training"]["trainable"] = "all"
    config = parse_config(data, f"{mission.id} with {choices}")
    s, t = config.system, config.training
    if t.pipeline_parallel != 1:
        raise InputError("scenario.training.pipeline_parallel", t.pipeline_parallel, "must be 1 in a part-1 mission")
    device = hw.device(s.accelerator)
    work = resolve_workload(config)
    network = work.network(config.workload.seq_len, t.attention)
    policy = POLICIES[t.precision]
    tp, dp = t.tensor_parallel, config.data_parallel
    sp = t.sequence_parallel and tp > 1
    params, trained, frozen, kept, transient = [], [], [], [], []
    for layer in network.layers:
        p = _device_params(layer, tp)
        on = model_state_bytes(p, p, layer.param_tensors, t.optimizer, policy, t.zero_stage, dp, t.optimizer_state)
        off = model_state_bytes(p, 0.0, 0, t.optimizer, policy, t.zero_stage, dp, t.optimizer_state)
        params.append(p)
        trained.append(on.weights + on.gradients + on.optimizer_state)
        frozen.append(off.frozen_weights)
        cases = [activation_case(layer, tr, fl, t.recompute, policy.activation_bytes, tp, sp) for tr, fl in CASES]
        kept.append(tuple(c[0] for c in cases))
        transient.append(tuple(c[1] for c in cases))
    stab = check_stability(config, work)
    mcu = device.kind == "mcu"
    return ModeTable(
        choices=dict(choices), config=config, params=tuple(params), trained=tuple(trained), frozen=tuple(frozen),
        kept=tuple(kept), transient=tuple(transient), micro_batch=t.micro_batch, other=device.runtime_reserve_bytes,
        capacity=device_capacity(config, device),
        flash_capacity=device.flash_bytes if mcu else 0.0, mcu=mcu,
        stable=stab.stable or "stability" not in mission.constraints)


@dataclass(frozen=True)
class StateAuditSolution:
    status: Status
    mode: int | None
    mask: tuple[bool, ...] | None
    objective: float | None
    memory_fraction: float | None
    solves: tuple[SolveResult, ...]
    build_s: float


class StateAuditModel:
    """The MILP of the module docstring, built once per mission, re-solved in stages."""

    def __init__(self, mission, tables: list[ModeTable]):
        import time

        import pyomo.environ as pyo

        start = time.perf_counter()
        self.mission, self.tables = mission, tables
        L = len(tables[0].params)
        C = range(len(tables))
        Ls = range(L)
        m = self.model = pyo.ConcreteModel()
        m.u = pyo.Var(C, domain=pyo.Binary)
        m.x = pyo.Var(Ls, domain=pyo.Binary)
        m.y = pyo.Var(Ls, domain=pyo.Binary)
        m.z = pyo.Var(Ls, bounds=(0, 1))
        # Bytes are measured in units of the largest capacity and parameters in units of
        # the largest layer, so every coefficient is O(1): HiGHS's tolerances (1e-7) are
        # absolute, and a byte-sized reduced cost (1e-9) would pass for zero.
        unit = max(tb.capacity for tb in tables)
        t_max = max(tb.micro_batch * max(max(r) for r in tb.transient) for tb in tables) / unit
        m.T = pyo.Var(bounds=(0, t_max))
        m.F = pyo.Var(bounds=(0, None))
        m.one_mode = pyo.Constraint(expr=sum(m.u[c] for c in C) == 1)
        for c, tb in enumerate(tables):
            if not tb.stable:
                m.u[c].fix(0)
        base = tables[0]
        fixed_mask = None if mission.select_layers else scenario_mask(base)
        for l in Ls:
            if base.params[l] == 0:
                m.x[l].fix(0)
            elif fixed_mask is not None:
                m.x[l].fix(int(fixed_mask[l]))
        m.flow = pyo.ConstraintList()
        m.flow.add(m.y[0] == 0)
        for l in range(1, L):
            m.flow.add(m.y[l] >= m.y[l - 1])
            m.flow.add(m.y[l] >= m.x[l - 1])
            m.flow.add(m.y[l] <= m.y[l - 1] + m.x[l - 1])
        for l in Ls:
            m.flow.add(m.z[l] <= m.x[l])
            m.flow.add(m.z[l] <= m.y[l])
            m.flow.add(m.z[l] >= m.x[l] + m.y[l] - 1)
        e = [(1 - m.x[l] - m.y[l] + m.z[l], m.x[l] - m.z[l], m.y[l] - m.z[l], m.z[l]) for l in Ls]
        m.memory = pyo.ConstraintList()
        m.used = pyo.ConstraintList()
        m.peak = pyo.ConstraintList()
        for c, tb in enumerate(tables):
            b, K = tb.micro_batch, tb.capacity / unit
            trained = [v / unit for v in tb.trained]
            frozen = [v / unit for v in tb.frozen]
            states = sum(trained[l] * m.x[l] + (0.0 if tb.mcu else frozen[l]) * (1 - m.x[l]) for l in Ls)
            acts = b * sum(tb.kept[l][k] / unit * e[l][k] for l in Ls for k in range(4))
            other = tb.other / unit
            big = (sum(max(trained[l], frozen[l]) for l in Ls) + b * sum(max(a) for a in tb.kept) / unit
                   + t_max + other) / K
            fraction = (states + acts + m.T + other) / K
            m.memory.add(fraction <= 1 + big * (1 - m.u[c]))
            m.used.add(m.F >= fraction - big * (1 - m.u[c]))
            for l in Ls:
                m.peak.add(m.T >= b * sum(tb.transient[l][k] / unit * e[l][k] for k in range(4))
                           - t_max * (1 - m.u[c]))
            if tb.mcu and "flash" in mission.constraints:
                flash_unit = max(tb.flash_capacity, sum(tb.frozen), 1.0)
                flash = sum(tb.frozen[l] / flash_unit * (1 - m.x[l]) for l in Ls)
                m.memory.add(flash <= tb.flash_capacity / flash_unit + sum(tb.frozen) / flash_unit * (1 - m.u[c]))
        q = mission.objective.quantity
        if q == "trainable_params":
            scale = max(base.params) or 1.0
            primary = sum(base.params[l] / scale * m.x[l] for l in Ls)
            # the smallest step between two selections' values, for holding the optimum
            self._step = min((p for p in base.params if p > 0), default=scale) / scale
        else:
            scale = max(tb.micro_batch for tb in tables)
            primary = sum(tb.micro_batch / scale * m.u[c] for c, tb in enumerate(tables))
            self._step = 1.0 / scale
        self._primary_expr = primary
        self._maximize = mission.objective.sense == "maximize"
        m.objective = pyo.Objective(expr=primary, sense=pyo.maximize if self._maximize else pyo.minimize)
        # The lexicographic stages hold earlier optima through mutable right-hand sides.
        m.primary_level = pyo.Param(mutable=True, initialize=0.0)
        m.memory_level = pyo.Param(mutable=True, initialize=0.0)
        m.hold_primary = pyo.Constraint(expr=(primary >= m.primary_level) if self._maximize
                                        else (primary <= m.primary_level))
        m.hold_memory = pyo.Constraint(expr=m.F <= m.memory_level)
        m.hold_primary.deactivate()
        m.hold_memory.deactivate()
        self.solver = Solver(m)
        self.build_s = time.perf_counter() - start

    def solve(self) -> StateAuditSolution:
        import pyomo.environ as pyo

        m, solves = self.model, []
        m.hold_primary.deactivate()
        m.hold_memory.deactivate()
        m.objective.set_value(self._primary_expr)
        m.objective.sense = pyo.maximize if self._maximize else pyo.minimize
        first = self.solver.solve()
        solves.append(first)
        if first.status is not Status.OPTIMAL:
            return StateAuditSolution(first.status, None, None, None, None, tuple(solves), self.build_s)
        primary = first.objective
        # (2) memory, holding the primary at its optimum (values are integral: parameters,
        # micro-batches; half the smallest step separates the optimum from the next value)
        m.primary_level = primary - self._step / 2 if self._maximize else primary + self._step / 2
        m.hold_primary.activate()
        m.objective.set_value(m.F)
        m.objective.sense = pyo.minimize
        second = self.solver.solve()
        solves.append(second)
        if second.status is not Status.OPTIMAL:
            return StateAuditSolution(second.status, None, None, None, None, tuple(solves), self.build_s)
        # (3) the fixed tie-break: earliest mode, then the latest layers
        m.memory_level = second.objective + 1e-7
        m.hold_memory.activate()
        L = len(self.tables[0].params)
        m.objective.set_value(sum((L * L + 1) * c * m.u[c] for c in range(len(self.tables)))
                              + sum((L - 1 - l) * m.x[l] for l in range(L)))
        third = self.solver.solve()
        solves.append(third)
        if third.status is not Status.OPTIMAL:
            return StateAuditSolution(third.status, None, None, None, None, tuple(solves), self.build_s)
        mode = next(c for c in range(len(self.tables)) if pyo.value(m.u[c]) > 0.5)
        mask = tuple(pyo.value(m.x[l]) > 0.5 for l in range(L))
        table = self.tables[mode]
        exact_primary = (sum(p for p, on in zip(table.params, mask) if on)
                         if self.mission.objective.quantity == "trainable_params" else float(table.micro_batch))
        fraction = table.memory(mask)[0] / table.capacity
        return StateAuditSolution(Status.OPTIMAL, mode, mask, exact_primary, fraction, tuple(solves), self.build_s)


def scenario_mask(table: ModeTable) -> tuple[bool, ...]:
    """The layers the scenario trains (when the mission does not select layers)."""
    from trainwall.optimizer.costmodel import resolve_workload, trainable_mask

    cfg = table.config
    network = resolve_workload(cfg).network(cfg.workload.seq_len, cfg.training.attention)
    return trainable_mask(cfg.training.trainable, network)
