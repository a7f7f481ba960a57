"""One question's MILP of part 3 (:mod:`~trainwall.optimizer.scaling_wall`), in matrix form.

Part 3 asks its MILP several questions: the optimum with every imposed wall held, then, for
each wall, the optimum with that one wall lifted (does it bind?). Each question is its own
MILP, with the rows of the walls it holds, over the modes those walls leave a micro-batch
count (:meth:`~trainwall.optimizer.scaling_wall.ScalingWallModel.can_be_feasible`): a mode
with none is infeasible in that question, and HiGHS's presolve removed such modes anyway,
which had been most of each solve's time (about 25 of cloud/3's 1,092 modes are feasible
with every wall held, about 800 with the deadline lifted). When no mode is left, every mode
stays, so HiGHS itself proves there is no plan.

Columns: ``u`` and ``q`` per mode kept (a binary and an integer), ``z`` per interleaved mode
kept (q = p z), then the objective's own: N and D for MFU (:meth:`ScalingMILP.add_ratio`), w
and the cost for the dollars or kWh (:class:`~trainwall.optimizer.cost_to_train.CostObjective`).
"""

from __future__ import annotations

from trainwall.optimizer.highs import MatrixModel, presolve_rules_off

INF = float("inf")
#: HiGHS options of part 3's MILPs (speed only). Probing (fixing each binary both ways to
#: learn implications) finds nothing to learn in one-mode-of-K rows over per-mode bounds, and
#: was half the solve: the deadline-lifted question of a cloud/3 variant, 800 modes, took
#: 82 ms with it and 50 ms without (issue 18, HiGHS 1.16).
OPTIONS = {"presolve_rule_off": presolve_rules_off("probing")}


class ScalingMILP:
    """The MILP of one question: every imposed wall held, less ``lifted`` (None: none lifted)."""

    def __init__(self, owner, lifted: str | None):
        self.owner, self.lifted, self.modes = owner, lifted, owner.modes
        M = owner.most_micro_batches
        self.kept = ([k for k in range(len(self.modes)) if owner.can_be_feasible(k, lifted)]
                     or list(range(len(self.modes))))
        lp = self.lp = MatrixModel(options=OPTIONS)
        self.u = dict(zip(self.kept, (int(c) for c in lp.add_columns(len(self.kept), 0, 1, integer=True))))
        self.q = dict(zip(self.kept, (int(c) for c in lp.add_columns(len(self.kept), 0, M, integer=True))))
        rows = [(1.0, 1.0, list(self.u.values()), [1.0] * len(self.u))]                    # one mode
        for k in self.kept:
            md = self.modes[k]
            rows += [(0.0, INF, (self.q[k], self.u[k]), (1.0, -md.m_lo)),
                     (-INF, 0.0, (self.q[k], self.u[k]), (1.0, -md.m_hi))]
        stepped = [k for k in self.kept if self.modes[k].m_step > 1]     # interleaved: q_k = p z_k
        z = lp.add_columns(len(stepped), 0, M, integer=True)
        rows += [(0.0, 0.0, (self.q[k], int(zk)), (1.0, -self.modes[k].m_step)) for k, zk in zip(stepped, z)]
        held = set(owner.problem.walls) - {lifted}
        kept = set(self.kept)
        rows += [(-INF, 0.0, (self.q[k], self.u[k]), (cq, cu)) for wall, k, cq, cu in owner.wall_rows
                 if wall in held and k in kept]
        lp.add_rows(rows)
        self.tie_break = {**{self.u[k]: (M + 1) * k for k in self.kept}, **{self.q[k]: 1.0 for k in self.kept}}
        for mode in owner.forbidden:
            self.allow(mode, False)

    def allow(self, mode: int, allowed: bool = True) -> None:
        """Forbid (or allow again) one mode by its binary's upper bound; a mode not kept is forbidden."""
        if mode in self.u:
            self.lp.set_bounds(self.u[mode], 0, int(allowed))

    def integer_range(self, k: int) -> tuple[int, int] | None:
        """Mode k's micro-batch counts this question's walls allow, as (lo, hi), or None."""
        return self.owner.integer_range(k, self.lifted)

    def current(self) -> tuple[int, int]:
        """The loaded solution's (mode, micro-batch count)."""
        values = self.lp.values
        k = next(k for k, column in self.u.items() if values[column] > 0.5)
        return k, round(values[self.q[k]])

    def add_ratio(self, num: list[float], den_q: list[float], den_u: list[float]) -> None:
        """MFU = N / D: N and D as two columns, so lambda (and the tie-break's level) each multiply
        one column: a re-solve changes two coefficients, not one per mode. The hold row
        s N - s level D >= 0 keeps the MFU at a level during the tie-break."""
        lp, kept = self.lp, self.kept
        self.N, self.D = (int(c) for c in lp.add_columns(2, 0, INF))
        lp.add_rows([(0.0, 0.0, [self.N, *(self.q[k] for k in kept)], [1.0, *(-num[k] for k in kept)]),
                     (0.0, 0.0, [self.D, *(self.q[k] for k in kept), *(self.u[k] for k in kept)],
                      [1.0, *(-den_q[k] for k in kept), *(-den_u[k] for k in kept)])])
        self.hold = int(lp.add_rows([(0.0, INF, (self.N, self.D), (1.0, 0.0))])[0])
        self.hold_at(0.0, 1.0)

    def hold_at(self, level: float, scale: float) -> None:
        """The hold row s N - s level D >= 0 (level 0: it holds everywhere)."""
        self.lp.set_coefficient(self.hold, self.N, scale)
        self.lp.set_coefficient(self.hold, self.D, -scale * level)

    def maximise_ratio_at(self, lam: float) -> None:
        """The Dinkelbach objective: maximise N - lambda D."""
        self.lp.set_objective({self.N: 1.0, self.D: -lam}, maximise=True)
