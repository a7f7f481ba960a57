"""Layer selection by dynamic programming: the part-1 certifier where 2^L is too many.

Which layers train is a knapsack with one twist: a frozen layer *after* a trained one
still keeps activations (the gradient flows through it), so a layer's cost depends on
whether any earlier layer trains. Walking the layers in order with that one bit of
state - the *phase*, 0 before the first trained layer and 1 after - every cost is
additive again. For one mode (:class:`~trainwall.optimizer.state_audit.ModeTable`)
layer l in case k = (trains, flows) adds

    device memory  S_l (trains) or W_l (frozen; 0 on an MCU, whose frozen weights stay
                   in flash) + b A_lk,
    flash          W_l if frozen on an MCU,
    value          P_l if it trains (the parameters; 0 when the objective is the batch),
    rank           L - 1 - l if it trains (the MILP's tie-break: the latest layers),

and the largest transient b R_lk is a criterion of its own: a partial selection's
largest transient so far, T. Whatever the later layers add (memory m', transient T'),
the complete selection needs m + m' + max(T, T') + the reserve, which never falls
as m or T grow; so a selection dominated in all five criteria stays dominated, and
one whose m + T already exceeds the budget is dropped.

Per layer the DP keeps, per phase, the Pareto set of partial selections under
(value max, memory min, flash min, rank min, transient min) (Nemhauser and Ullmann
1969, "Discrete dynamic programming and capital allocation", Management Science
15(9)); the first four are sums over layers and the fifth a running maximum, so a
selection dominated after layer l stays dominated whatever the later layers do.
Identical layers (Llama's 80 blocks) keep the sets small: selections of equal size
differ only in where they start. Memory and flash compare
with a tolerance of 1e-12 of the capacity, so selections equal up to summation order
collapse into one (the MILP's own tie tolerance, 1e-7, is five orders wider).
"""

from __future__ import annotations

import numpy as np

from trainwall.optimizer.coefficients import case_index

#: Relative tolerance under which two memory sums are the same number summed in another order.
SUM_TOLERANCE = 1e-12


def pareto_selections(table, values: np.ndarray, flash_limited: bool) -> np.ndarray:
    """Every layer selection (rows of a bool matrix) that may be optimal under ``table``.

    Feasible under the device memory (and flash, when ``flash_limited``) by the DP's
    sums; the caller re-evaluates them exactly and applies the objective's order."""
    L = len(table.params)
    budget = table.capacity - table.other
    tol = SUM_TOLERANCE * max(table.capacity, 1.0)
    flash_tol = SUM_TOLERANCE * max(table.flash_capacity, 1.0)
    # per phase: value, memory, flash, rank, transient (float arrays) and the masks so far
    phases = {0: (np.zeros((1, 5)), np.zeros((1, 0), dtype=bool)), 1: (None, None)}
    for choices in _steps(table, values):
        nxt: dict[int, list] = {0: [], 1: []}
        for phase, trains, after, transient, add in choices:
            crit, masks = phases[phase]
            if crit is None:
                continue
            new = np.empty_like(crit)
            new[:, :4] = crit[:, :4] + add
            new[:, 4] = np.maximum(crit[:, 4], transient)
            ok = new[:, 1] + new[:, 4] <= budget + tol
            if flash_limited:
                ok &= new[:, 2] <= table.flash_capacity + flash_tol
            if ok.any():
                column = np.full((int(ok.sum()), 1), trains)
                nxt[after].append((new[ok], np.hstack([masks[ok], column])))
        phases = {p: _prune(*_merge(nxt[p]), tol, flash_tol) for p in (0, 1)}
    finals = [masks for _, masks in phases.values() if masks is not None]
    masks = np.concatenate(finals) if finals else np.zeros((0, L), dtype=bool)
    return np.unique(masks, axis=0) if len(masks) else masks


def _steps(table, values) -> list[list[tuple]]:
    """Per layer, its choices: (phase before, trains, phase after, transient, the criteria it adds)."""
    L, b = len(table.params), table.micro_batch
    steps = []
    for l in range(L):
        choices = []
        for phase in (0, 1):
            for trains in ((False, True) if table.params[l] > 0 else (False,)):
                k = case_index(trains, bool(phase))
                state_bytes = table.trained[l] if trains else (0.0 if table.mcu else table.frozen[l])
                add = np.array([values[l] if trains else 0.0, state_bytes + b * table.kept[l][k],
                                table.frozen[l] if table.mcu and not trains else 0.0,
                                (L - 1 - l) if trains else 0.0])
                choices.append((phase, trains, int(phase or trains), b * table.transient[l][k], add))
        steps.append(choices)
    return steps


def _merge(parts):
    if not parts:
        return None, None
    return np.concatenate([c for c, _ in parts]), np.concatenate([m for _, m in parts])


def _prune(crit, masks, tol: float, flash_tol: float):
    """Drop every state another state dominates; of equal ones keep the first in a fixed order."""
    if crit is None:
        return None, None
    # fixed order: value desc, rank asc, memory asc, flash asc, transient asc, then the mask itself
    # (the masks as packed bytes: the same lexicographic order, an eighth of the sort keys)
    packed = np.packbits(masks, axis=1)
    order = np.lexsort((*(packed[:, ::-1].T), crit[:, 4], crit[:, 2], crit[:, 1], crit[:, 3], -crit[:, 0]))
    crit, masks = crit[order], masks[order]
    value, memory, flash, rank, transient = crit.T
    vtol = SUM_TOLERANCE * max(float(np.abs(value).max()), 1.0)
    # dominates[j, i]: state j is at least as good as i in every criterion
    dominates = ((value[:, None] >= value[None, :] - vtol) & (memory[:, None] <= memory[None, :] + tol)
                 & (flash[:, None] <= flash[None, :] + flash_tol) & (rank[:, None] <= rank[None, :])
                 & (transient[:, None] <= transient[None, :] + tol))
    index = np.arange(len(crit))
    earlier = index[:, None] < index[None, :]   # earlier[j, i]: j comes before i
    keep = ~(dominates & earlier).any(axis=0)
    return crit[keep], masks[keep]
