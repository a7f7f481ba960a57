"""The exhaustive certifier: every configuration of a mission, evaluated with numpy.

For part 1 the space is (modes) x (2^L layer selections). Each mode's coefficients
come from the cost model (:func:`trainwall.optimizer.coefficients.mode_table`); the
selections are enumerated as a bit matrix and their memory computed in one
vectorised pass, with the MILP's own lexicographic order (objective, then memory
used, then earliest mode, then latest layers) applied to pick the optimum. Beyond
2^12 selections a Pareto dynamic programme (:mod:`trainwall.optimizer.knapsack`)
narrows each mode to the selections that can be optimal, and only those are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainwall.optimizer.state_audit import OBJECTIVE_UNIT
from trainwall.optimizer.walls import WALLS, keeps_up, starvation_terms

#: Free layers up to which part-1 selections are enumerated (2^12 x modes); beyond, the Pareto DP.
MAX_ENUMERATED_LAYERS = 12


@dataclass(frozen=True)
class ExhaustiveOptimum:
    feasible: bool
    mode: int | None
    mask: tuple[bool, ...] | None
    objective: float | None
    memory_fraction: float | None
    configurations: int
    method: str = "enumeration"      # or "dynamic programming" (part 1 beyond 2^12 selections)


#: The MILP's memory tie tolerance (the lexicographic stage holds F <= F* + 1e-7).
MEMORY_TIE = 1e-7


def selections(params: tuple[float, ...], fixed: tuple[bool, ...] | None) -> np.ndarray:
    """Every layer selection (rows) over the layers that have parameters."""
    L = len(params)
    if fixed is not None:
        return np.array([fixed], dtype=bool)
    free = [l for l in range(L) if params[l] > 0]
    n = len(free)
    bits = ((np.arange(2 ** n, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(bool)
    out = np.zeros((2 ** n, L), dtype=bool)
    out[:, free] = bits
    return out


def mode_memory(table, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(device memory, flash) in bytes of each selection row under one mode."""
    L = x.shape[1]
    params = np.asarray(table.params)
    trains_with_params = x & (params > 0)
    flows = np.zeros_like(x)
    flows[:, 1:] = np.logical_or.accumulate(trains_with_params, axis=1)[:, :-1]
    case = x.astype(np.int64) + 2 * flows.astype(np.int64)
    cols = np.arange(L)
    kept = np.asarray(table.kept)[cols, case]
    transient = np.asarray(table.transient)[cols, case]
    trained, frozen = np.asarray(table.trained), np.asarray(table.frozen)
    states = np.where(x, trained, 0.0 if table.mcu else frozen).sum(axis=1)
    flash = np.where(x, 0.0, frozen).sum(axis=1) if table.mcu else np.zeros(len(x))
    total = states + table.micro_batch * kept.sum(axis=1) + table.micro_batch * transient.max(axis=1) + table.other
    return total, flash


def state_audit(problem) -> ExhaustiveOptimum:
    """The part-1 optimum of every (mode, layer selection), in the MILP's order.

    Up to :data:`MAX_ENUMERATED_LAYERS` free layers every selection is evaluated; beyond,
    :func:`trainwall.optimizer.knapsack.pareto_selections` narrows each mode to the
    selections that may be optimal, and those are evaluated the same way. The walls are
    judged by :meth:`trainwall.optimizer.walls.Wall.holds`; the order is the MILP's: the
    best objective (within half an objective unit: one parameter, one sample), then the least memory used (within
    :data:`MEMORY_TIE` of the capacity), then the earliest mode, then the latest layers.
    """
    tables = problem.tables
    params = np.asarray(tables[0].params)
    fixed = problem.fixed_mask
    free = int((params > 0).sum()) if fixed is None else 0
    step = OBJECTIVE_UNIT
    candidates = [found for c, tb in enumerate(tables)
                  if (found := _best_of_mode(problem, c, tb, free > MAX_ENUMERATED_LAYERS, step)) is not None]
    configurations = len(tables) * 2 ** free
    method = "dynamic programming" if free > MAX_ENUMERATED_LAYERS else "enumeration"
    maximize = problem.maximize
    if not candidates:
        return ExhaustiveOptimum(False, None, None, None, None, configurations, method)
    best = max(float(s.max()) for s, *_ in candidates)
    kept = [(s >= best - step / 2, s, f, c, r, x) for s, f, c, r, x in candidates]
    least = min(float(f[near].min()) for near, _, f, *_ in kept if near.any())
    picks = []
    for near, signed, fraction, c, rank, x in kept:
        inside = near & (fraction <= least + MEMORY_TIE)
        if inside.any():
            idx = np.flatnonzero(inside)
            # the latest layers: least rank, then (ties of the rank) the later mask
            i = idx[np.lexsort((*(~x[idx]).T, rank[idx]))[0]]
            picks.append((c, int(rank[i]), float(signed[i]), float(fraction[i]), tuple(bool(v) for v in x[i])))
    c, _, signed_value, fraction, mask = min(picks, key=lambda p: (p[0], p[1]))
    return ExhaustiveOptimum(True, c, mask, signed_value if maximize else -signed_value, fraction,
                             configurations, method)


def _best_of_mode(problem, c: int, tb, dynamic: bool, step: float):
    """(signed primary, memory fraction, mode, rank, masks) of mode c's feasible selections
    that may be optimal, or None when the mode has none."""
    from trainwall.optimizer.knapsack import pareto_selections

    walls = problem.walls
    if "stability" in walls and not tb.stable:
        return None
    params, L = np.asarray(tb.params), len(tb.params)
    by_params = problem.objective == "trainable_params"
    flash_limited = tb.mcu and "flash" in walls
    x = (pareto_selections(tb, params if by_params else np.zeros(L), flash_limited) if dynamic
         else selections(tb.params, problem.fixed_mask))
    total, flash = mode_memory(tb, x)
    ok = WALLS["memory"].holds(total, tb.capacity) if "memory" in walls else np.ones(len(x), dtype=bool)
    if flash_limited:
        ok &= WALLS["flash"].holds(flash, tb.flash_capacity)
    if not ok.any():
        return None
    x, fraction = x[ok], total[ok] / tb.capacity
    primary = x @ params if by_params else np.full(len(x), float(tb.micro_batch))
    signed = primary if problem.maximize else -primary
    near = signed >= signed.max() - step / 2   # only this mode's best can be the optimum
    return signed[near], fraction[near], c, x[near] @ (L - 1 - np.arange(L)), x[near]


def pipeline_race(problem) -> ExhaustiveOptimum:
    """The part-2 optimum by evaluating every (mode, n) with the cost model itself.

    The space is small (modes x the range decision), so each point, in the lexicographic
    order (fewest n, then the earliest mode), goes through the problem's
    ``point_feasible``: the cost model's :func:`~trainwall.optimizer.costmodel.evaluate`
    and the walls' one test, an independent check of the MILP's linearisation. ``mask``
    holds n, the range decision's value.
    """
    count = 0
    for n in range(problem.lo, problem.span_max + 1):
        for c in range(len(problem.modes)):
            count += 1
            if problem.point_feasible(c, n):
                return ExhaustiveOptimum(True, c, (n,), float(n), None, count)
    return ExhaustiveOptimum(False, None, None, None, None, count)


def scaling_wall(problem) -> ExhaustiveOptimum:
    """The part-3 optimum by evaluating every (mode, m) with numpy.

    Each mode's m = m_lo .. m_hi goes through the same :class:`StepStructure` methods
    :func:`evaluate` uses (MFU, memory, network, loading, power; the run to the goal for
    the deadline, the dollars and the energy) as one array, judged by the walls' one test. Order: the
    best objective (the highest MFU, or the fewest dollars or kWh), then within a relative TIE the
    earliest mode and the fewest micro-batches - the MILP's tie-break. ``mask`` holds m.
    """
    from trainwall.optimizer.scaling_wall import TIE

    count, candidates = 0, []
    sign = 1.0 if problem.objective == "mfu" else -1.0      # compared as "higher is better"
    for k, mode in enumerate(problem.modes):
        m = mode.counts()
        count += len(m)
        ok, value = _scaling_points(problem, mode, m)
        if ok.any():
            signed = sign * value
            candidates.append((float(signed[ok].max()), k, m[ok], signed[ok]))
    if not candidates:
        return ExhaustiveOptimum(False, None, None, None, None, count)
    best = max(c[0] for c in candidates)
    window = best - TIE * abs(best)
    for _, k, ms, signed in sorted(candidates, key=lambda c: c[1]):
        inside = ms[signed >= window]
        if len(inside):
            m_star = int(inside.min())
            _, value = _scaling_points(problem, problem.modes[k], np.array([m_star]))
            return ExhaustiveOptimum(True, k, (m_star,), float(value[0]), None, count)
    raise AssertionError("unreachable: the best candidate lies inside its own window")


def _scaling_points(problem, mode, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(every imposed wall holds, the objective: MFU, dollars or kWh) at each micro-batch count ``m`` of one mode."""
    st, walls = mode.structure, problem.walls
    ok = np.ones(len(m), dtype=bool)
    if "memory" in walls:
        ok &= WALLS["memory"].holds(st.memory_total(m), mode.capacity)
    if "stability" in walls:
        ok &= mode.mode_stable & (m <= mode.m_stable)
    if "starvation" in walls:   # seconds of loading per step against what the step can hide (walls.starvation)
        need, room = starvation_terms(st.loading_overlaps, problem.max_data_wait)
        ok &= WALLS["starvation"].holds(need * (st.load_per_micro_batch_s * m), room * st.busy_s(m))
    if "network" in walls:
        ok &= WALLS["network"].holds(st.network_utilization(m), 1.0)
    if "power" in walls:   # the average power over the duty cycle, and a duty cycle of at most 1
        ok &= WALLS["power"].holds(st.average_power_w(m), st.power.budget_w) & keeps_up(st.duty_cycle(m))
    if "deadline" in walls:
        ok &= WALLS["deadline"].holds(mode.run.days(st, m), problem.deadline_days)
    mfu = st.mfu(m)
    if "mfu_target" in walls:
        ok &= WALLS["mfu_target"].holds(mfu, problem.target)
    return ok, (mfu if problem.objective == "mfu" else mode.run.objective(problem.objective, st, m))
