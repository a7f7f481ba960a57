"""Part 3, the scaling wall: maximise MFU, a ratio, exactly (Dinkelbach) over a MILP - or
minimise the dollars (or kWh) to train to the workload's budget over the same MILP (Kelley's
cutting planes: :mod:`~trainwall.optimizer.cost_to_train`).

Decisions: one *mode* k - a combination of the mission's listed choices (tensor,
pipeline and data-parallel degrees, hence the device count N_k = t p d; micro-batch;
recompute; ZeRO stage; precision; gradient clipping) - and m, the micro-batches per
pipeline per step (the global batch is B = m d_k b_k).

Per mode the cost model gives the :class:`trainwall.optimizer.costmodel.StepStructure`,
in which every cost is linear in m (memory piecewise, monotone): step(m) = S_k m + B_k
when the input pipeline keeps up (part 3 requires it: its ``starvation`` wall), with
S_k = A_k, the busy seconds per micro-batch, or A_k + L_k where loading cannot overlap
compute (an MCU that computes its own features; busy(m) = A_k m + B_k), model
FLOPs F_k m, link traffic a_k m + b_k link-seconds, input loading L_k m seconds. With
the disaggregated variables

    u_k in {0, 1}, sum_k u_k = 1;    q_k in {0 .. M} integer, q_k = m u_k,

MFU is the ratio of two linear forms:

    MFU = N(q) / D(q, u),  N = sum_k F_k q_k,  D = sum_k N_k R (S_k q_k + B_k u_k)

(R the track's one reference peak). Walls, one row per mode (c_q q_k + c_u u_k <= 0); to ask
whether a wall binds, the question with it lifted is a MILP without its rows
(:mod:`~trainwall.optimizer.scaling_milp`):
    range          m_lo u_k <= q_k <= m_hi u_k,  d_k b_k q_k <= B_max u_k;  q_k = p_k z_k (z_k integer)
                   where the mode interleaves (its m a multiple of its p pipeline stages)
    memory         q_k <= m_mem,k u_k   (m_mem,k: the most micro-batches in flight that fit;
                                         memory stops growing at the schedule's saturation:
                                         p for 1F1B, above it when interleaved)
    stability      d_k b_k q_k <= B_crit u_k without clipping; modes whose number format
                   breaks (range, loss scaling) or whose local steps exceed the workload's
                   staleness limit fixed u_k = 0
    starvation     L_k q_k <= A_k q_k + B_k u_k          (loading overlapping compute hides behind it), or
                   L_k (1 - w) q_k <= w (A_k q_k + B_k u_k)   (serial loading waits at most a share w of
                   the step: :func:`trainwall.optimizer.walls.starvation`)
    network        a_kl q_k + b_kl u_k <= (1 - bg) (S_k q_k + B_k u_k)   for each network link l
                   of mode k that can be its busiest (the upper envelope of its links' traffic)
    power          R e (E_k(q) - P_s T_k(q)) <= 3600 (P_b - P_s) d_k b_k q_k  and  R e T_k(q) <= 3600 d_k b_k q_k
                   for a stream of R fresh samples an hour (each trained e times), else E_k(q) <= P_b T_k(q):
                   each device's average power over its duty cycle within the budget P_b
                   (:mod:`trainwall.optimizer.costmodel.power`), with E_k(q) = e_q q_k + e_u u_k a device's
                   joules per step and T_k(q) = S_k q_k + B_k u_k its seconds
    deadline       lo_k u_k <= q_k <= hi_k u_k: the micro-batch counts whose run to the goal takes at
                   most limits.days (convex in q: an interval, found on the cost model:
                   :func:`~trainwall.optimizer.coefficients.deadline_range`)
    mfu_target     F_k q_k >= target N_k R (S_k q_k + B_k u_k)

Dinkelbach (1967): from lambda_0 = 0, solve max N - lambda_i D; lambda_(i+1) = N / D at that
solution; stop when the optimum of N - lambda D is 0 (to 1e-12 relative). The last
solution is the exact maximiser of the ratio. The fixed tie-break then holds
MFU >= lambda* (1 - 1e-9) and minimises (M + 1) sum_k k u_k + sum_k q_k: the earliest mode
in the mission file, then the fewest micro-batches. Both forms are scaled to O(1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from trainwall.optimizer.coefficients import ScalingMode
from trainwall.optimizer.cost_to_train import CostObjective, cost_terms
from trainwall.optimizer.highs import Status
from trainwall.optimizer.scaling_milp import ScalingMILP
from trainwall.optimizer.training_run import HOUR
from trainwall.optimizer.walls import starvation_terms

#: Relative window within which two MFUs are a tie (then the fixed order decides).
TIE = 1e-9
WALLS = ("memory", "stability", "starvation", "network", "power", "deadline", "mfu_target")


@dataclass(frozen=True)
class ScalingProblem:
    """Everything part 3 needs, as numbers: the valid modes and what the mission asks."""

    modes: tuple[ScalingMode, ...]
    walls: tuple[str, ...]           # the imposed walls (of :data:`WALLS`)
    target: float = 0.0              # the MFU target (with the mfu_target wall)
    max_data_wait: float = 0.0       # the share of a step serial loading may take (the starvation wall)
    objective: str = "mfu"           # maximise MFU, or minimise the "dollars" or "energy_kwh" to train to the goal
    deadline_days: float | None = None   # the most days the run to the goal may take (the deadline wall)


@dataclass(frozen=True)
class ScalingSolution:
    status: Status
    mode: int | None
    micro_batches: int | None
    value: float | None              # the objective's: MFU, or dollars or kWh to train
    iterations: int
    solves: int
    seconds: float
    build_s: float
    mip_gap: float | None = None   # of the last MILP solved


class ScalingWallModel:
    """The MILP of the module docstring and its loops: Dinkelbach's for MFU, Kelley's cutting
    planes for the dollars or kWh to train (:mod:`~trainwall.optimizer.cost_to_train`).

    The walls' rows are computed once per problem (:attr:`wall_rows`, and each as a bound on q
    per mode: :attr:`bounds`); each question - every imposed wall held, or one lifted to ask
    whether it binds - is a :class:`~trainwall.optimizer.scaling_milp.ScalingMILP` of its own,
    built when first asked."""

    def __init__(self, problem: ScalingProblem):
        start = time.perf_counter()
        self.problem = problem
        self.modes = modes = problem.modes
        self.most_micro_batches = max(md.m_hi for md in modes)
        # O(1) scaling: MFU's forms in units of the largest per-micro-batch denominator.
        den = [md.structure.devices * md.structure.reference_peak for md in modes]
        unit = max(d * md.structure.fed_per_micro_batch_s for d, md in zip(den, modes))
        self._num = [md.structure.model_flops_per_micro_batch / unit for md in modes]
        self._den_q = [d * md.structure.fed_per_micro_batch_s / unit for d, md in zip(den, modes)]
        self._den_u = [d * md.structure.fixed_s / unit for d, md in zip(den, modes)]
        # The tie-break's hold row in units of the level times the least denominator any
        # configuration has: a violation then bounds the relative MFU shortfall (<= the
        # solver's 1e-9), so the tolerance cannot admit a configuration outside the TIE window.
        self._least_den = min(self._den_q[k] * md.m_lo + self._den_u[k] for k, md in enumerate(modes))
        self._ranges: dict[tuple[int, str | None], tuple[float, float]] = {}   # _allowed's, per (mode, lifted)
        self.wall_rows = self._wall_coefficients()
        self.forbidden: set[int] = set()
        self._questions: dict[str | None, ScalingMILP] = {}
        self._cost_terms: list[tuple[float, float, float]] | None = None
        self.held = self.question(None)
        self.build_s = time.perf_counter() - start

    def question(self, lifted: str | None) -> ScalingMILP:
        """The MILP with every imposed wall held but ``lifted``, built on first use."""
        if lifted not in self._questions:
            milp = ScalingMILP(self, lifted)
            if self.problem.objective == "mfu":
                milp.add_ratio(self._num, self._den_q, self._den_u)
            else:
                if self._cost_terms is None:
                    self._cost_terms = [cost_terms(md, self.problem.objective) for md in self.modes]
                milp.cost = CostObjective(milp, TIE, self.problem.objective, self._cost_terms)
            self._questions[lifted] = milp
        return self._questions[lifted]

    def _wall_coefficients(self) -> list[tuple[str, int, float, float]]:
        """Each wall's rows as (wall, mode k, c_q, c_u): c_q q_k + c_u u_k <= 0 (the network: one
        per mode and link), left out where the mode's range implies them; and each mode's
        imposed walls as bounds on q (``self.bounds``)."""
        target = self.problem.target
        rows = {wall: [] for wall in WALLS}
        self.bounds = [[] for _ in self.modes]   # per mode: (wall, q >= x or q <= x, x) of its imposed walls
        for k, md in enumerate(self.modes):
            st = md.structure
            A, B, S = st.per_micro_batch_s, st.fixed_s, st.fed_per_micro_batch_s
            free = 1.0 - st.background_network_load
            rows["memory"].append((k, 1.0, -float(md.m_memory)))
            rows["stability"].append((k, 1.0, -float(md.m_stable if md.mode_stable else 0)))
            rows["starvation"].append(_starvation_row(k, st, self.problem.max_data_wait))
            rows["network"] += [(k, a / A - free * S / A, b / A - free * B / A) for a, b in st.network_links]
            rows["power"] += [(k, cq, cu) for cq, cu in _power_rows(st)]
            rows["deadline"] += _deadline_rows(k, md)
            rows["mfu_target"].append((k, target * self._den_q[k] - self._num[k], target * self._den_u[k]))
        out = []
        for wall in WALLS:
            for k, cq, cu in rows[wall]:
                if not _implied_by_range(self.modes[k], cq, cu):
                    out.append((wall, k, cq, cu))
                    if cq and wall in self.problem.walls:
                        self.bounds[k].append((wall, cq < 0, -cu / cq))
        return out

    def _allowed(self, k: int, lifted: str | None = None) -> tuple[float, float]:
        """Mode k's range of q (continuous) under its imposed walls, ``lifted`` left out: every
        part-3 wall is a bound on q per mode."""
        found = self._ranges.get((k, lifted))
        if found is None:
            md = self.modes[k]
            held = [(above, x) for wall, above, x in self.bounds[k] if wall != lifted]
            found = self._ranges[k, lifted] = (max([md.m_lo] + [x for above, x in held if above]),
                                               min([md.m_hi] + [x for above, x in held if not above]))
        return found

    def integer_range(self, k: int, lifted: str | None = None) -> tuple[int, int] | None:
        """Mode k's micro-batch counts its walls (``lifted`` left out) allow, as (lo, hi), or None."""
        lo, hi = self._allowed(k, lifted)
        lo, hi = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
        return (lo, hi) if lo <= hi else None

    def can_be_feasible(self, k: int, lifted: str | None = None) -> bool:
        """Do mode k's walls (``lifted`` left out) leave it a micro-batch count? Loose by a
        millionth, so a mode on a wall's edge stays in its question's MILP and the rows decide it."""
        lo, hi = self._allowed(k, lifted)
        margin = 1e-6 * max(1.0, abs(lo), abs(hi))
        return math.ceil(lo - margin) <= math.floor(hi + margin)

    def _cuts_a_range(self, wall: str) -> bool:
        """Could ``wall`` narrow some mode's range of micro-batch counts beyond what the other
        imposed walls allow? A wall whose bounds all lie outside the others' range (by a margin
        far above the rows' tolerance) leaves the feasible plans, hence the optimum, unchanged
        when lifted."""
        for k in range(len(self.modes)):
            lo, hi = self._allowed(k, wall)
            mine = [(above, x) for w, above, x in self.bounds[k] if w == wall]
            if lo <= hi and any((x > lo - 1e-6) if above else (x < hi + 1e-6) for above, x in mine):
                return True
        return False

    def allow(self, mode: int, allowed: bool = True) -> None:
        """Forbid (or allow again) one mode in every question: for the runner-up."""
        (self.forbidden.discard if allowed else self.forbidden.add)(mode)
        for milp in self._questions.values():
            milp.allow(mode, allowed)

    def lifting_improves(self, wall: str, value: float | None) -> bool:
        """Does lifting ``wall`` admit a configuration - any at all when ``value`` is None (an
        infeasible mission), else one whose objective beats ``value`` by more than TIE? A wall
        that cuts no mode's range cannot: nothing to solve. For a cost,
        the exact optimum with the wall lifted answers it; for MFU,
        :meth:`_ratio_lifting_improves`."""
        if not self._cuts_a_range(wall):
            return False
        milp = self.question(wall)
        if self.problem.objective == "mfu":
            return self._ratio_lifting_improves(milp, value)
        _, found, _ = milp.cost.minimise()
        return found is not None and (value is None or milp.cost.value(*found) < value * (1 - TIE))

    def _ratio_lifting_improves(self, milp: ScalingMILP, mfu: float | None) -> bool:
        """One MILP solve: max N - lambda D at lambda = mfu (1 + TIE) is positive exactly when
        such a configuration exists, and the point it returns is checked with the cost model."""
        milp.maximise_ratio_at(0.0 if mfu is None else mfu * (1 + TIE))
        res = milp.lp.solve()
        if res.status is not Status.OPTIMAL:
            return False
        if mfu is None:
            return True
        k, q = milp.current()
        return float(self.modes[k].structure.mfu(q)) > mfu * (1 + TIE)

    def solve(self, max_iterations: int = 50) -> ScalingSolution:
        """The optimum of the problem's objective with every wall held, then the fixed tie-break
        among plans within TIE of it."""
        if self.problem.objective == "mfu":
            return self._solve_ratio(self.held, max_iterations)
        start = time.perf_counter()
        res, found, solves = self.held.cost.solve()
        if found is None:
            return ScalingSolution(res.status, None, None, None, solves, solves, time.perf_counter() - start,
                                   self.build_s)
        return ScalingSolution(Status.OPTIMAL, *found, self.held.cost.value(*found), solves, solves,
                               time.perf_counter() - start, self.build_s, res.mip_gap)

    def _solve_ratio(self, milp: ScalingMILP, max_iterations: int) -> ScalingSolution:
        start, solves = time.perf_counter(), 0
        lam, best = 0.0, None
        for iteration in range(1, max_iterations + 1):
            milp.maximise_ratio_at(lam)
            res = milp.lp.solve()
            solves += 1
            if res.status is not Status.OPTIMAL:
                return ScalingSolution(res.status, None, None, None, iteration, solves,
                                       time.perf_counter() - start, self.build_s)
            k, q = milp.current()
            ratio = float(self.modes[k].structure.mfu(q))  # the cost model's own MFU at this point
            best, gap = (k, q, ratio), res.mip_gap
            if res.objective <= 1e-12 * max(1.0, abs(lam)) or ratio <= lam * (1 + 1e-15):
                break
            lam = ratio
        else:
            return ScalingSolution(Status.LIMIT, best[0], best[1], best[2], max_iterations, solves,
                                   time.perf_counter() - start, self.build_s)
        # the fixed tie-break among configurations within TIE of the best MFU
        k, q, ratio = best
        milp.hold_at(ratio * (1 - TIE), 1.0 / (ratio * self._least_den) if ratio > 0 else 1.0)
        milp.lp.set_objective(milp.tie_break)
        res = milp.lp.solve()
        solves += 1
        milp.hold_at(0.0, 1.0)
        if res.status is Status.OPTIMAL:
            k, q = milp.current()
            ratio, gap = float(self.modes[k].structure.mfu(q)), res.mip_gap
        return ScalingSolution(Status.OPTIMAL, k, q, ratio, iteration, solves, time.perf_counter() - start,
                               self.build_s, gap)


def _implied_by_range(mode: ScalingMode, cq: float, cu: float) -> bool:
    """Does c_q q_k + c_u u_k <= 0 hold at every point of mode k's range (q_k = 0 when u_k = 0;
    m_lo <= q_k <= m_hi when u_k = 1)? Then the row cuts nothing off, holding or lifted, and is
    left out (exactly: no tolerance): the memory row of a mode where every m fits, say."""
    return cq * (mode.m_hi if cq > 0 else mode.m_lo) + cu <= 0.0


def _deadline_rows(k: int, md: ScalingMode) -> list[tuple[int, float, float]]:
    """The deadline wall of mode k: q_k <= hi u_k and lo u_k <= q_k, its micro-batch counts
    whose run meets the deadline (:func:`~trainwall.optimizer.coefficients.deadline_range`)."""
    if md.m_deadline is None:
        return []
    lo, hi = md.m_deadline
    return [(k, 1.0, -float(hi)), (k, -1.0, float(lo))]


def _power_rows(st) -> list[tuple[float, float]]:
    """The power wall of a mode as rows c_q q + c_u u <= 0, each scaled to a largest
    coefficient of 1 (the module docstring; none without a budget). The step is S q + B u:
    part 3's starvation wall keeps an overlapping pipeline from stalling."""
    p = st.power
    if p.budget_w is None:
        return []
    S, B = st.fed_per_micro_batch_s, st.fixed_s
    e_q, e_u = st.fed_energy_coefficients()
    if p.samples_per_hour is None:
        rows = [(e_q - p.budget_w * S, e_u - p.budget_w * B)]
    else:
        rate, fresh = p.samples_per_hour, HOUR * st.data_parallel * st.micro_batch / st.echo
        rows = [(rate * (e_q - p.sleep_w * S) - (p.budget_w - p.sleep_w) * fresh, rate * (e_u - p.sleep_w * B)),
                (rate * S - fresh, rate * B)]
    return [(cq / scale, cu / scale) for cq, cu in rows if (scale := max(abs(cq), abs(cu))) > 0]


def _starvation_row(k: int, st, max_wait: float) -> tuple[int, float, float]:
    """The starvation wall of mode k as c_q q_k + c_u u_k <= 0, scaled by A_k: loading L m must hide
    behind the busy A m + B when it overlaps compute, else take at most a share w of the step."""
    A, B, L = st.per_micro_batch_s, st.fixed_s, st.load_per_micro_batch_s
    need, room = starvation_terms(st.loading_overlaps, max_wait)
    return k, (need * L - room * A) / A, -room * B / A
