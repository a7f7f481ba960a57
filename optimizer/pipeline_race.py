"""Part 2, the pipeline race, as a mixed-integer linear program over the input pipeline's
flow network (Pyomo, solved by HiGHS).

Decisions: one *mode* c (a combination of the mission's listed choices: augmentation
level, where augmentation runs, ...) and one integer n in [n_lo, n_hi], the mission's
range decision: data-loader workers per host (``data.workers``) or the data-echoing
factor (``data.echo``, Choi et al. 2019). The balance point is the least n at which no
accelerator is starved.

Per mode, from the cost model (:func:`trainwall.optimizer.costmodel.step_structure` and
the pipeline's capacities): D_c the training samples/s one host's accelerators consume
(their demand), and each stage's capacity in fresh samples/s - storage S_c, CPU r_c per
worker (times min(workers, cores); more workers than cores add nothing, so
n_hi = max(n_lo, cores) and the CPU edge is also capped at e_c r_c cores u_c), host link K_c - and the echo factor e_c. Echoing multiplies every
stage's capacity in *training* samples by e.

Variables
    u_c in {0, 1}                mode c;            sum_c u_c = 1
    n   in {n_lo .. n_hi}        the range decision
    v_c = n u_c                  linearised: v_c <= n_hi u_c,  v_c >= n_lo u_c,
                                 v_c <= n - n_lo (1 - u_c),  v_c >= n - n_hi (1 - u_c)
    f_e >= 0                     training samples/s on each edge e of the networkx graph
                                 :func:`trainwall.optimizer.datapipe.flow_graph`

Constraints (capacities are linear in u and v; for workers: cpu = e_c r_c v_c,
storage = e_c S_c u_c, link = e_c K_c u_c; for echo: storage = S_c v_c, cpu =
r_c w_c v_c, link = K_c v_c)
    flow conservation at every node but the source and the sink;
    f_e <= capacity_e(u, v)              for the storage, cpu and host-link edges;
    starvation  f_(compute -> sink) >= sum_c D_c u_c - r_starvation   the max-flow meets the demand;
    walls       u_c <= r_w for each imposed wall w (memory, stability, flash) mode c breaks
                whatever n (they do not depend on the workers or the echo).

r_w in [0, 1] lifts wall w: its bounds pin it to 0 (held) or 1 (lifted; the demand is at
most 1 in the units below), so asking whether a wall binds moves two bounds of the one
persistent model (:meth:`PipelineRaceModel.lifted_optimum`).

Objective, lexicographic in one solve (all terms are integers): minimise
(C + 1) n + sum_c c u_c - the fewest workers (or echoes), then the earliest mode in the
mission file. Capacities are measured in units of the largest demand, so every
coefficient is O(1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from trainwall.optimizer.coefficients import PipelineRates
from trainwall.optimizer.highs import PinnedByBounds, Solver, Status

#: The walls a part-2 mode either meets or breaks whatever the workers or echoes.
MODE_WALLS = ("memory", "stability", "flash")
#: Every wall a part-2 formulation can impose.
WALLS = ("starvation",) + MODE_WALLS


@dataclass(frozen=True)
class PipelineMode:
    """One mode: its label, the input pipeline's numbers, and the imposed walls it breaks."""

    choices: dict
    rates: PipelineRates
    walls: tuple[str, ...]


@dataclass(frozen=True)
class PipelineRaceProblem:
    """Everything part 2 needs: the modes, the range decision and, for the certifier, the
    cost model's own verdict at each point (an independent check of the linearisation)."""

    modes: tuple[PipelineMode, ...]
    lo: int                          # the range decision's least value
    hi: int                          # its greatest useful value (workers beyond the cores add nothing)
    span_max: int                    # its greatest allowed value (the certifier enumerates to it)
    workers_vary: bool               # the range decision is data.workers (else data.echo)
    walls: tuple[str, ...]           # the imposed walls (of :data:`WALLS`)
    point_feasible: Callable[[int, int], bool]   # (mode, n) -> every imposed wall holds


@dataclass(frozen=True)
class PipelineRaceSolution:
    status: Status
    mode: int | None
    value: int | None
    seconds: float
    build_s: float
    mip_gap: float | None


class PipelineRaceModel(PinnedByBounds):
    """The MILP of the module docstring, built once per problem."""

    def __init__(self, problem: PipelineRaceProblem):
        import pyomo.environ as pyo

        start = time.perf_counter()
        self.problem, self.modes = problem, problem.modes
        lo, hi, C = problem.lo, max(problem.lo, problem.hi), range(len(problem.modes))
        self.unit = max(p.rates.demand for p in problem.modes)
        m = self.model = pyo.ConcreteModel()
        m.u = pyo.Var(C, domain=pyo.Binary)
        m.n = pyo.Var(domain=pyo.Integers, bounds=(lo, hi))
        m.v = pyo.Var(C, bounds=(0, hi))
        m.relax = pyo.Var(WALLS, bounds=(0, 1))
        for wall in WALLS:
            self.lift(wall, False)
        m.rows = pyo.ConstraintList()
        m.rows.add(sum(m.u[c] for c in C) == 1)
        for c, mode in enumerate(problem.modes):
            m.rows.add(m.v[c] <= hi * m.u[c])
            m.rows.add(m.v[c] >= lo * m.u[c])
            m.rows.add(m.v[c] <= m.n - lo * (1 - m.u[c]))
            m.rows.add(m.v[c] >= m.n - hi * (1 - m.u[c]))
            for wall in mode.walls:
                m.rows.add(m.u[c] <= m.relax[wall])
        self._flow_rows()
        m.objective = pyo.Objective(expr=(len(C) + 1) * m.n + sum(c * m.u[c] for c in C), sense=pyo.minimize)
        self.solver = Solver(m)
        self.build_s = time.perf_counter() - start

    def _coefficient(self, rate: float) -> float:
        """Fresh samples/s in units of the largest demand (capped: beyond twice the demand a
        capacity never binds)."""
        return min(rate, 2 * self.unit) / self.unit

    def _capacity(self, stage: str):
        m, terms = self.model, []
        for c, p in enumerate(self.modes):
            r = p.rates
            if stage == "cpu":
                per = r.cpu_per_worker * (r.echo if self.problem.workers_vary else min(max(1, r.workers), r.cores))
                terms.append(self._coefficient(per) * m.v[c])
            else:
                rate = r.storage if stage == "storage" else r.host_link
                terms.append(self._coefficient(r.echo * rate) * m.u[c] if self.problem.workers_vary
                             else self._coefficient(rate) * m.v[c])
        return sum(terms)

    def _flow_rows(self) -> None:
        """Flow variables on the networkx graph of the input pipeline, capped by each stage."""
        import pyomo.environ as pyo

        from trainwall.optimizer.datapipe import flow_graph

        m, graph = self.model, flow_graph()
        m.f = pyo.Var(list(graph.edges), bounds=(0, None))
        for node in graph.nodes:
            if node not in ("source", "sink"):
                m.rows.add(sum(m.f[e] for e in graph.in_edges(node)) == sum(m.f[e] for e in graph.out_edges(node)))
        for e in graph.edges:
            stage = graph.edges[e]["stage"]
            if stage in ("storage", "cpu", "host_link"):
                m.rows.add(m.f[e] <= self._capacity(stage))
            if stage == "cpu" and self.problem.workers_vary:  # min(workers, cores): the cores cap the workers
                m.rows.add(m.f[e] <= sum(self._coefficient(p.rates.cpu_per_worker * p.rates.echo * p.rates.cores)
                                         * m.u[c] for c, p in enumerate(self.modes)))
            elif stage == "compute":
                demand = sum(p.rates.demand / self.unit * m.u[c] for c, p in enumerate(self.modes))
                m.rows.add(m.f[e] <= demand)
                m.rows.add(m.f[e] >= demand - m.relax["starvation"])

    def lifted_optimum(self, wall: str) -> int | None:
        """The least n with ``wall`` lifted (None when even then no plan is feasible)."""
        self.lift(wall)
        try:
            return self.solve().value
        finally:
            self.lift(wall, False)

    def solve(self) -> PipelineRaceSolution:
        import pyomo.environ as pyo

        res = self.solver.solve()
        if res.status is not Status.OPTIMAL:
            return PipelineRaceSolution(res.status, None, None, res.seconds, self.build_s, None)
        mode = next(c for c in range(len(self.modes)) if pyo.value(self.model.u[c]) > 0.5)
        return PipelineRaceSolution(Status.OPTIMAL, mode, round(pyo.value(self.model.n)), res.seconds, self.build_s,
                                    res.mip_gap)
