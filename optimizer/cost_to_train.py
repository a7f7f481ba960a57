"""Part 3's cost objectives: the fewest dollars (or kWh) to train to the workload's goal,
exactly, by cutting planes over the MILP of :mod:`~trainwall.optimizer.scaling_wall`.

For mode k the goal takes S(B) = S_min (1 + B_noise / (g_k q)) steps (McCandlish et al. 2018:
:mod:`~trainwall.optimizer.training_run`; g_k the goal's units per micro-batch round), and a
step costs alpha_k q + beta_k, linear in q once part 3's walls keep the input pipeline fed:
dollars R_k (S_k q + B_k) (R_k = N_k x price / 3600 per second of the run, step(q) = S_k q + B_k),
or joules N_k (e_q q + e_u) + H_k P_host (S_k q + B_k) (the devices' energy per step and the
hosts', :mod:`~trainwall.optimizer.costmodel.power`, x PUE / 3.6e6 for kWh). With k_c the
constant factor (S_min, or S_min PUE / 3.6e6):

    cost_k(q) = k_c (1 + c_k / q)(alpha_k q + beta_k) = a_k q + b_k + h_k / q,    c_k = B_noise / g_k,
    a_k = k_c alpha_k,   b_k = k_c (beta_k + alpha_k c_k),   h_k = k_c beta_k c_k,

convex in q > 0: a larger global batch buys MFU and costs samples. The MILP carries
w_k >= 1 / q_k through tangent cuts w_k >= 2 u_k / j - q_k / j^2 (exact at q_k = j, below 1/q
elsewhere, 0 when u_k = 0), so sum_k a_k q_k + b_k u_k + h_k w_k bounds every plan's cost from
below. Kelley (1960): solve; while the incumbent's w_k is below 1 / q_k, add the tangent at
q_k and solve again. The loop ends (q is an integer in a finite range, and a cut makes its
point exact), and when the incumbent is exact its cost equals the bound: it is the optimum.
The first cuts sit where each mode's optimum can lie under the question's walls (every wall
held, or one lifted: each question is its own MILP, :mod:`~trainwall.optimizer.scaling_milp`):
the integers around its unconstrained minimiser sqrt(h_k / a_k) clipped into the range those
walls allow, so the loop rarely needs a second solve. The fixed tie-break then holds the cost within TIE of the best
and minimises (M + 1) sum_k k u_k + sum_k q_k (the earliest mode, the fewest micro-batches),
cutting again wherever the held point's bound was below its cost.
"""

from __future__ import annotations

import math

from trainwall.optimizer.highs import Status
from trainwall.optimizer.training_run import JOULES_PER_KWH

#: Kelley iterations at most per question (each adds one cut; a mode's range bounds them).
MAX_CUTS = 2000
#: An incumbent is exact when w_k q_k reaches 1 within this (the solver's feasibility tolerance scale).
EXACT = 1e-12


class CostObjective:
    """A cost-to-train objective ("dollars" or "energy_kwh") attached to one question's MILP
    (:class:`~trainwall.optimizer.scaling_milp.ScalingMILP`, its ``owner``)."""

    def __init__(self, owner, tie: float, objective: str, terms: list[tuple[float, float, float]]):
        """``terms``: every mode's (a, b, h) (:func:`cost_terms`), shared by the questions' MILPs."""
        self.owner, self.tie, self.objective, modes, lp = owner, tie, objective, owner.modes, owner.lp
        self.unit = min(a * md.m_lo + b + h / md.m_lo for (a, b, h), md in zip(terms, modes))
        self.terms = [(a / self.unit, b / self.unit, h / self.unit) for a, b, h in terms]
        kept = owner.kept
        self.w = dict(zip(kept, (int(c) for c in lp.add_columns(len(kept), 0, 1))))   # 1 / q_k for q_k >= 1
        self.cost = int(lp.add_columns(1, 0, float("inf"))[0])
        self.cut_at: set[tuple[int, int]] = set()
        self._cut([(k, j) for k in kept for j in sorted(_first_cuts(owner.integer_range(k), *terms[k]))])
        columns = [self.cost, *(owner.q[k] for k in kept), *(owner.u[k] for k in kept), *(self.w[k] for k in kept)]
        lp.add_rows([(0.0, 0.0, columns, [1.0, *(-self.terms[k][0] for k in kept), *(-self.terms[k][1] for k in kept),
                                          *(-self.terms[k][2] for k in kept)])])     # cost = sum a q + b u + h w
        self.hold = int(lp.add_rows([(-float("inf"), float("inf"), (self.cost,), (1.0,))])[0])   # cost <= level
        self._minimise_cost()

    def _minimise_cost(self) -> None:
        """The objective: the cost, with no hold on it."""
        self.owner.lp.set_row_bounds(self.hold, -float("inf"), float("inf"))
        self.owner.lp.set_objective({self.cost: 1.0})

    def _cut(self, points: list[tuple[int, int]]) -> None:
        """The tangent of 1/q at q = j for each mode k and j of ``points``: w_k >= 2 u_k / j - q_k / j^2."""
        owner = self.owner
        self.cut_at.update(points)
        owner.lp.add_rows([(0.0, float("inf"), (self.w[k], owner.u[k], owner.q[k]),
                            (1.0, -2.0 / j, 1.0 / j ** 2)) for k, j in points])

    def add_cut(self, k: int, j: int) -> None:
        """A cut between solves (none where one stands)."""
        if (k, j) not in self.cut_at:
            self._cut([(k, j)])

    def value(self, k: int, q: int) -> float:
        """The cost model's own cost to train (dollars or kWh) at mode k and q micro-batches."""
        md = self.owner.modes[k]
        return float(md.run.objective(self.objective, md.structure, q))

    def _exact(self) -> tuple[int, int] | None:
        """The loaded incumbent when its bound is its cost; else cut there and return None."""
        k, q = self.owner.current()
        if self.owner.lp.values[self.w[k]] * q >= 1.0 - EXACT or (k, q) in self.cut_at:
            return k, q
        self.add_cut(k, q)
        return None

    def minimise(self) -> tuple[object, tuple[int, int] | None, int]:
        """Kelley's loop under the current objective and walls: (the last solve, the exact
        optimum's (mode, q) or None, the solves it took)."""
        for solves in range(1, MAX_CUTS + 1):
            res = self.owner.lp.solve()
            if res.status is not Status.OPTIMAL:
                return res, None, solves
            found = self._exact()
            if found is not None:
                return res, found, solves
        raise RuntimeError(f"no exact optimum after {MAX_CUTS} cuts")

    def solve(self) -> tuple[object, tuple[int, int] | None, int]:
        """The cheapest plan, then the fixed tie-break among plans within the tie window of its
        cost: (the last solve, its (mode, q) or None, the solves it took)."""
        owner = self.owner
        res, found, solves = self.minimise()
        if found is None:
            return res, None, solves
        best = self.value(*found)
        owner.lp.set_row_bounds(self.hold, -float("inf"), best * (1 + self.tie) / self.unit)
        owner.lp.set_objective(owner.tie_break)
        try:
            while True:                         # a held point whose bound was below its cost is cut off
                tie = owner.lp.solve()
                solves += 1
                if tie.status is not Status.OPTIMAL:
                    break
                k, q = owner.current()
                if self.value(k, q) <= best * (1 + self.tie) or (k, q) in self.cut_at:
                    found, res = (k, q), tie    # inside the window (an exact point: within the row's tolerance)
                    break
                self.add_cut(k, q)
        finally:
            self._minimise_cost()
        return res, found, solves

def cost_terms(md, objective: str) -> tuple[float, float, float]:
    """(a, b, h) of the module docstring: cost(q) = a q + b + h / q."""
    run, st = md.run, md.structure
    S, B = st.fed_per_micro_batch_s, st.fixed_s
    if run is None:
        raise ValueError("a cost objective needs a workload with a training budget")
    if objective == "dollars":
        if run.dollars_per_second is None:
            raise ValueError("the dollars to train need a price per device-hour")
        k_c, alpha, beta = run.goal.min_steps, run.dollars_per_second * S, run.dollars_per_second * B
    else:
        if not st.power.known:
            raise ValueError("the energy to train needs the device's power")
        e_q, e_u = st.fed_energy_coefficients()
        host = st.hosts * st.power.host_w
        k_c = run.goal.min_steps * run.pue / JOULES_PER_KWH
        alpha, beta = st.devices * e_q + host * S, st.devices * e_u + host * B
    c = run.goal.noise_batch / run.per_micro_batch
    return k_c * alpha, k_c * (beta + alpha * c), k_c * beta * c


def _first_cuts(span: tuple[int, int] | None, a: float, b: float, h: float) -> set[int]:
    """Where a mode's optimum can lie: over its allowed range [lo, hi] (None: nowhere), the
    integer minimum of a q + b + h / q (convex) is next to its unconstrained minimiser
    sqrt(h / a) clipped into the range (the range's end when the minimiser lies outside it)."""
    if span is None:
        return set()
    lo, hi = span
    inside = min(hi, max(lo, math.sqrt(h / a) if a > 0 else math.inf))    # lo, hi integers: so are its floor, ceil
    return {math.floor(inside), math.ceil(inside)}
