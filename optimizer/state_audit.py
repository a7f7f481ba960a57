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
    r_w in [0, 1]    wall w lifted (pinned 0 or 1 by its bounds; see below)

The four cases of a layer, e_l^(trains, flows), are linear in (x, y, z):
    e^00 = 1 - x - y + z,  e^10 = x - z,  e^01 = y - z,  e^11 = z.

Memory of mode c, per device, in units of its capacity K_c (the cost model's
waterfall, coefficients from :func:`trainwall.optimizer.coefficients.mode_table`):
    m_c = [ sum_l S_lc x_l + W_lc (1 - x_l)                 (states; W to flash on an MCU)
          + b_c sum_l sum_k A_lck e_l^k                     (kept activations, b_c micro-batch)
          + T + O_c ] / K_c                                 (largest transient, runtime reserve)
    memory     m_c <= 1 + M_c (1 - u_c) + M_c r_memory      (only the chosen mode's memory binds)
    T   >= b_c sum_k R_lck e_l^k - M'_c (1 - u_c)  for every l
    flash      sum_l W_lc (1 - x_l) <= Flash + M''_c (1 - u_c) + M''_c r_flash   (MCU)
    stability  u_c <= r_stability for a mode that breaks a stability rule

The big-M constants are the largest value each left-hand side can take, so no
feasible point is cut off. A wall the mission does not impose is pinned lifted
(r_w = 1); to ask whether an imposed wall *binds*, :meth:`StateAuditModel.lifted_optimum`
moves only its bounds and re-solves the one persistent model. Objective,
lexicographic, re-solved three times: (1) maximise trainable parameters
sum_l P_l x_l (or the micro-batch sum_c b_c u_c); (2) holding that, minimise
F >= m_c - M_c (1 - u_c); (3) holding both, the fixed tie-break: the earliest mode in
the mission file, then the latest layers (minimise (L^2 + 1) sum_c c u_c +
sum_l (L - 1 - l) x_l: the mode term dominates).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from trainwall.optimizer.coefficients import ModeTable
from trainwall.optimizer.highs import PinnedByBounds, SolveResult, Solver, Status, presolve_rules_off

#: The least difference between two plans' objectives: one parameter, or one sample of micro-batch.
OBJECTIVE_UNIT = 1.0
#: HiGHS's presolve without probing (and the rules no solve runs): probing each of the
#: ~160 binaries took 0.05 s of cloud/1's 0.1 s solve and removed nothing the root LP does not
#: (bench/bench_solve.py measures it); the optimum is proven the same way, by branch and bound.
PRESOLVE = {"presolve_rule_off": presolve_rules_off("probing")}
#: The walls a part-1 formulation can impose.
WALLS = ("memory", "flash", "stability")


@dataclass(frozen=True)
class StateAuditProblem:
    """Everything part 1 needs, as numbers: the modes' tables and what the mission asks."""

    tables: tuple[ModeTable, ...]
    walls: tuple[str, ...]           # the imposed walls (of :data:`WALLS`)
    select_layers: bool              # the solver chooses which layers train (else each mode's own)
    objective: str                   # "trainable_params" or "micro_batch"
    maximize: bool

    @property
    def fixed_mask(self) -> tuple[bool, ...] | None:
        """The layers that train when the solver does not select them."""
        return None if self.select_layers else self.tables[0].configured

    def primary(self, table: ModeTable, mask: tuple[bool, ...]) -> float:
        """The objective of a plan, exactly: trained parameters or the micro-batch."""
        if self.objective == "trainable_params":
            return float(sum(p for p, on in zip(table.params, mask) if on))
        return float(table.micro_batch)


@dataclass(frozen=True)
class StateAuditSolution:
    status: Status
    mode: int | None
    mask: tuple[bool, ...] | None
    objective: float | None
    memory_fraction: float | None
    solves: tuple[SolveResult, ...]
    build_s: float


class StateAuditModel(PinnedByBounds):
    """The MILP of the module docstring, built once per problem, re-solved in stages."""

    def __init__(self, problem: StateAuditProblem):
        import pyomo.environ as pyo

        start = time.perf_counter()
        self.problem, self.tables = problem, problem.tables
        L, C = len(self.tables[0].params), range(len(self.tables))
        m = self.model = pyo.ConcreteModel()
        m.u = pyo.Var(C, domain=pyo.Binary)
        m.x = pyo.Var(range(L), domain=pyo.Binary)
        m.y = pyo.Var(range(L), domain=pyo.Binary)
        m.z = pyo.Var(range(L), bounds=(0, 1))
        # Bytes are measured in units of the largest capacity and parameters in units of
        # the largest layer, so every coefficient is O(1): HiGHS's tolerances are
        # absolute, and a byte-sized reduced cost (1e-9) would pass for zero.
        self.unit = max(tb.capacity for tb in self.tables)
        m.T = pyo.Var(bounds=(0, max(tb.micro_batch * max(max(r) for r in tb.transient)
                                     for tb in self.tables) / self.unit))
        m.F = pyo.Var(bounds=(0, None))
        m.relax = pyo.Var(WALLS, bounds=(0, 1))
        for wall in WALLS:
            self.lift(wall, False)
        m.one_mode = pyo.Constraint(expr=sum(m.u[c] for c in C) == 1)
        self._fix_layers()
        self._gradient_flow(L)
        self._order_identical_layers(L)
        m.memory, m.used, m.peak, m.flash, m.stability = (pyo.ConstraintList() for _ in range(5))
        for c, tb in enumerate(self.tables):
            self._mode_rows(c, tb)
        self._objectives()
        self.solver = Solver(m, options=PRESOLVE)
        self.build_s = time.perf_counter() - start

    def _fix_layers(self) -> None:
        """Pin x_l by its bounds (0 for a layer without parameters; the configuration's own
        layers when the solver does not select): a bound keeps every row's coefficients
        constant, where a Pyomo-fixed variable would make each row it touches a mutable
        expression the persistent interface re-evaluates on every solve."""
        m, base, fixed = self.model, self.tables[0], self.problem.fixed_mask
        for l, p in enumerate(base.params):
            if p == 0 or fixed is not None:
                on = 0 if p == 0 else int(fixed[l])
                m.x[l].setlb(on)
                m.x[l].setub(on)

    def _gradient_flow(self, L: int) -> None:
        import pyomo.environ as pyo

        m = self.model
        m.flow = pyo.ConstraintList()
        m.flow.add(m.y[0] == 0)
        for l in range(1, L):
            m.flow.add(m.y[l] >= m.y[l - 1])
            m.flow.add(m.y[l] >= m.x[l - 1])
            m.flow.add(m.y[l] <= m.y[l - 1] + m.x[l - 1])
        for l in range(L):
            m.flow.add(m.z[l] <= m.x[l])
            m.flow.add(m.z[l] <= m.y[l])
            m.flow.add(m.z[l] >= m.x[l] + m.y[l] - 1)
        # e^00 = 1 - x - y + z, e^10 = x - z, e^01 = y - z, e^11 = z, as (constant, ((variable, coefficient), ...))
        self.cases = [((1.0, ((m.x[l], -1.0), (m.y[l], -1.0), (m.z[l], 1.0))), (0.0, ((m.x[l], 1.0), (m.z[l], -1.0))),
                       (0.0, ((m.y[l], 1.0), (m.z[l], -1.0))), (0.0, ((m.z[l], 1.0),))) for l in range(L)]

    def _order_identical_layers(self, L: int) -> None:
        """Symmetry breaking: in a run of identical layers (equal coefficients in every mode,
        Llama's 80 blocks), the later ones train first, x_l <= x_(l+1).

        No optimum is lost. Moving a trained layer i to an untrained identical j > i keeps the
        parameters and the states; the layers between may lose the gradient flow (case 01 -> 00),
        the rest keep their cases. So memory does not grow where flowing costs no less than not
        flowing (A^01 >= A^00 and R^01 >= R^00 in every mode, checked here; otherwise no row is
        added), and the tie-break (the latest layers) prefers the moved plan anyway."""
        import pyomo.environ as pyo

        m, tables = self.model, self.tables
        if self.problem.fixed_mask is not None or not all(
                row[2] >= row[0] for tb in tables for rows in (tb.kept, tb.transient) for row in rows):
            return
        m.symmetry = pyo.ConstraintList()
        for l in range(L - 1):
            if tables[0].params[l] > 0 and all(_layer(tb, l) == _layer(tb, l + 1) for tb in tables):
                m.symmetry.add(m.x[l] <= m.x[l + 1])

    def _mode_rows(self, c: int, tb: ModeTable) -> None:
        """Mode c's memory, transient, flash and stability rows (each built as one linear
        expression from its coefficients: Pyomo then reads it without expanding a tree)."""
        m, e, unit, Ls = self.model, self.cases, self.unit, range(len(tb.params))
        b, K, u = tb.micro_batch, tb.capacity / unit, m.u[c]
        t_max, other = m.T.ub, tb.other / unit
        trained = [v / unit for v in tb.trained]
        frozen = [0.0 if tb.mcu else v / unit for v in tb.frozen]
        big = (sum(max(trained[l], frozen[l]) for l in Ls) + b * sum(max(a) for a in tb.kept) / unit
               + t_max + other) / K
        # fraction = (states + kept activations + T + other) / K
        fraction = _affine([(1.0 / K, (frozen[l], ((m.x[l], trained[l] - frozen[l]),))) for l in Ls]
                           + [(b * tb.kept[l][k] / unit / K, e[l][k]) for l in Ls for k in range(4)]
                           + [(1.0 / K, (other, ((m.T, 1.0),)))])
        # fraction <= 1 + big (1 - u_c) + big r_memory;  F >= fraction - big (1 - u_c)
        m.memory.add(_linear(fraction, ((u, big), (m.relax["memory"], -big))) <= 1 + big)
        m.used.add(_linear(fraction, ((u, big), (m.F, -1.0))) <= big)
        for l in Ls:   # T >= b sum_k R_lk e_l^k - t_max (1 - u_c)
            peak = _affine([(b * tb.transient[l][k] / unit, e[l][k]) for k in range(4)])
            m.peak.add(_linear(peak, ((u, t_max), (m.T, -1.0))) <= t_max)
        if tb.mcu:
            flash_unit = max(tb.flash_capacity, sum(tb.frozen), 1.0)
            spare = sum(tb.frozen) / flash_unit
            flash = _affine([(tb.frozen[l] / flash_unit, (1.0, ((m.x[l], -1.0),))) for l in Ls])
            m.flash.add(_linear(flash, ((u, spare), (m.relax["flash"], -spare)))
                        <= tb.flash_capacity / flash_unit + spare)
        if not tb.stable:
            m.stability.add(u <= m.relax["stability"])

    def _objectives(self) -> None:
        import pyomo.environ as pyo

        m, tables, Ls = self.model, self.tables, range(len(self.tables[0].params))
        base = tables[0]
        if self.problem.objective == "trainable_params":
            scale = max(base.params) or 1.0
            primary = sum(base.params[l] / scale * m.x[l] for l in Ls)
        else:
            scale = max(tb.micro_batch for tb in tables)
            primary = sum(tb.micro_batch / scale * m.u[c] for c, tb in enumerate(tables))
        # Two plans' objectives differ by at least one unit (a parameter, a sample): the later
        # stages hold the optimum to within half of one, never more (two layers' sizes can
        # differ by a few thousand parameters: the embedding and the head).
        self._step = OBJECTIVE_UNIT / scale
        self._primary_expr = primary
        self._maximize = self.problem.maximize
        m.objective = pyo.Objective(expr=primary, sense=pyo.maximize if self._maximize else pyo.minimize)
        # The lexicographic stages hold earlier optima through mutable right-hand sides.
        m.primary_level = pyo.Param(mutable=True, initialize=0.0)
        m.memory_level = pyo.Param(mutable=True, initialize=0.0)
        m.hold_primary = pyo.Constraint(expr=(primary >= m.primary_level) if self._maximize
                                        else (primary <= m.primary_level))
        m.hold_memory = pyo.Constraint(expr=m.F <= m.memory_level)
        m.hold_primary.deactivate()
        m.hold_memory.deactivate()

    def _decode(self) -> tuple[int, tuple[bool, ...]]:
        import pyomo.environ as pyo

        m = self.model
        mode = next(c for c in range(len(self.tables)) if pyo.value(m.u[c]) > 0.5)
        return mode, tuple(pyo.value(m.x[l]) > 0.5 for l in range(len(self.tables[0].params)))

    def _solve_primary(self) -> SolveResult:
        import pyomo.environ as pyo

        m = self.model
        m.hold_primary.deactivate()
        m.hold_memory.deactivate()
        m.objective.set_value(self._primary_expr)
        m.objective.sense = pyo.maximize if self._maximize else pyo.minimize
        return self.solver.solve()

    def lifted_optimum(self, wall: str) -> float | None:
        """The objective with ``wall`` lifted (None when even then no plan is feasible): the
        bounds of r_w move, the model is re-solved, the bounds are restored."""
        self.lift(wall)
        try:
            res = self._solve_primary()
            if res.status is not Status.OPTIMAL:
                return None
            mode, mask = self._decode()
            return self.problem.primary(self.tables[mode], mask)
        finally:
            self.lift(wall, False)

    def solve(self) -> StateAuditSolution:
        import pyomo.environ as pyo

        m, solves = self.model, []
        first = self._solve_primary()
        solves.append(first)
        if first.status is not Status.OPTIMAL:
            return StateAuditSolution(first.status, None, None, None, None, tuple(solves), self.build_s)
        # (2) memory, holding the primary at its optimum (to half an objective unit)
        primary = first.objective
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
        mode, mask = self._decode()
        table = self.tables[mode]
        fraction = table.memory(mask)[0] / table.capacity
        return StateAuditSolution(Status.OPTIMAL, mode, mask, self.problem.primary(table, mask), fraction,
                                  tuple(solves), self.build_s)


def _layer(tb: ModeTable, l: int) -> tuple:
    """Everything mode ``tb`` knows of layer l."""
    return tb.params[l], tb.trained[l], tb.frozen[l], tb.kept[l], tb.transient[l]


def _affine(parts) -> tuple[float, dict]:
    """sum_i w_i (c_i + sum_v a_iv v) from (w_i, (c_i, ((v, a_iv), ...))), as (constant,
    {id(v): [v, coefficient]}) in the order the variables first appear (Pyomo's variables
    hash by identity only through their ids)."""
    constant, terms = 0.0, {}
    for weight, (c, coefficients) in parts:
        if weight == 0.0:
            continue
        constant += weight * c
        for var, a in coefficients:
            terms.setdefault(id(var), [var, 0.0])[1] += weight * a
    return constant, terms


def _linear(affine: tuple[float, dict], extra):
    """The Pyomo linear expression of ``affine`` plus the terms ``extra`` ((variable, coefficient), ...)."""
    from pyomo.core.expr.numeric_expr import LinearExpression

    constant, terms = affine
    terms = {k: list(v) for k, v in terms.items()}
    for var, a in extra:
        terms.setdefault(id(var), [var, 0.0])[1] += a
    return LinearExpression(constant=constant, linear_coefs=[a for _, a in terms.values()],
                            linear_vars=[v for v, _ in terms.values()])
