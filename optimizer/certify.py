"""The exhaustive certifier: every configuration of a mission, evaluated with numpy.

For part 1 the space is (modes) x (2^L layer selections). Each mode's coefficients
come from the cost model (:func:`trainwall.optimizer.state_audit.mode_table`); the
selections are enumerated as a bit matrix and their memory computed in one
vectorised pass, with the MILP's own lexicographic order (objective, then memory
used, then earliest mode, then latest layers) applied to pick the optimum. Beyond
2^12 selections a Pareto dynamic programme (:mod:`trainwall.optimizer.knapsack`)
narrows each mode to the selections that can be optimal, and only those are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def state_audit(mission, tables) -> ExhaustiveOptimum:
    """The part-1 optimum of every (mode, layer selection), in the MILP's order.

    Up to :data:`MAX_ENUMERATED_LAYERS` free layers every selection is evaluated; beyond,
    :func:`trainwall.optimizer.knapsack.pareto_selections` narrows each mode to the
    selections that may be optimal, and those are evaluated the same way. The order is
    the MILP's, tolerances included: the best objective (within half its smallest
    step), then the least memory used (within :data:`MEMORY_TIE` of the capacity), then
    the earliest mode, then the latest layers.
    """
    from trainwall.optimizer.knapsack import pareto_selections
    from trainwall.optimizer.state_audit import scenario_mask

    params = np.asarray(tables[0].params)
    fixed = None if mission.select_layers else scenario_mask(tables[0])
    free = int((params > 0).sum()) if fixed is None else 0
    dynamic = free > MAX_ENUMERATED_LAYERS
    by_params = mission.objective.quantity == "trainable_params"
    maximize = mission.objective.sense == "maximize"
    step = float(params[params > 0].min()) if by_params and (params > 0).any() else 1.0
    L = len(params)
    candidates = []  # (primary, fraction, mode, rank, masks) of the feasible selections, per mode
    for c, tb in enumerate(tables):
        if not tb.stable:
            continue
        flash_limited = tb.mcu and "flash" in mission.constraints
        x = (pareto_selections(tb, params if by_params else np.zeros(L), flash_limited) if dynamic
             else selections(tb.params, fixed))
        total, flash = mode_memory(tb, x)
        fraction = total / tb.capacity
        ok = fraction <= 1.0
        if flash_limited:
            ok &= flash <= tb.flash_capacity
        if not ok.any():
            continue
        x, fraction = x[ok], fraction[ok]
        primary = x @ params if by_params else np.full(len(x), float(tb.micro_batch))
        signed = primary if maximize else -primary
        near = signed >= signed.max() - step / 2   # only this mode's best can be the optimum
        rank = x[near] @ (L - 1 - np.arange(L))
        candidates.append((signed[near], fraction[near], c, rank, x[near]))
    configurations = len(tables) * 2 ** free
    method = "dynamic programming" if dynamic else "enumeration"
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


def pipeline_race(mission, modes) -> ExhaustiveOptimum:
    """The part-2 optimum by evaluating every (mode, n) with the cost model itself.

    The space is small (modes x the range decision), so each point, in the lexicographic
    order, goes through
    :func:`trainwall.optimizer.costmodel.evaluate` and the mission's walls
    (:meth:`Mission.violations`): an independent check of the MILP's linearisation.
    ``mask`` holds n, the range decision's value.
    """
    from trainwall.core.config import parse_config
    from trainwall.optimizer.costmodel import evaluate

    field, span = mission.integer_decision
    count = 0
    for n in range(span.min, span.max + 1):  # the lexicographic order: fewest n, then earliest mode
        for c, mode in enumerate(modes):
            count += 1
            config = parse_config(mission.config_data(choices={**mode.choices, field: n}), mission.id)
            if not mission.violations(evaluate(config)):
                return ExhaustiveOptimum(True, c, (n,), float(n), None, count)
    return ExhaustiveOptimum(False, None, None, None, None, count)


def scaling_wall(mission, modes) -> ExhaustiveOptimum:
    """The part-3 optimum by evaluating every (mode, m) with numpy.

    Each mode's m = m_lo .. m_hi goes through the same :class:`StepStructure` methods
    :func:`evaluate` uses (MFU, memory, network, loading) as one array; the walls are the
    mission's. Order: the highest MFU, then within a relative 1e-9 the earliest mode and
    the fewest micro-batches - the MILP's tie-break. ``mask`` holds m.
    """
    from trainwall.optimizer.scaling_wall import TIE

    target = mission.objective.target or 0.0
    walls = set(mission.constraints)
    count, candidates = 0, []
    for k, mode in enumerate(modes):
        st = mode.structure
        m = np.arange(mode.m_lo, mode.m_hi + 1)
        count += len(m)
        ok = np.ones(len(m), dtype=bool)
        if "memory" in walls:
            ok &= st.memory_total(m) <= mode.capacity
        if "stability" in walls:
            ok &= mode.mode_stable & (m <= mode.m_stable)
        if "starvation" in walls:
            ok &= st.load_per_micro_batch_s * m <= st.busy_s(m) * (1 + 1e-12)
        if "network" in walls:
            ok &= st.network_utilization(m) <= 1.0 + 1e-12
        mfu = st.mfu(m)
        if "mfu_target" in walls:
            ok &= mfu >= target
        if ok.any():
            i = int(np.argmax(np.where(ok, mfu, -1.0)))
            candidates.append((float(mfu[i]), k, m[ok], mfu[ok]))
    if not candidates:
        return ExhaustiveOptimum(False, None, None, None, None, count)
    best = max(c[0] for c in candidates)
    for value, k, ms, mfus in sorted(candidates, key=lambda c: c[1]):
        inside = ms[mfus >= best * (1 - TIE)]
        if len(inside):
            m_star = int(inside.min())
            return ExhaustiveOptimum(True, k, (m_star,), float(modes[k].structure.mfu(m_star)), None, count)
    raise AssertionError("unreachable: the best candidate lies inside its own window")
