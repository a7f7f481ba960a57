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
    f_(compute -> sink) >= sum_c D_c u_c  no starvation: the max-flow meets the demand;
    a mode that breaks the mission's memory or stability walls is fixed u_c = 0.

Objective, lexicographic in one solve (all terms are integers): minimise
(C + 1) n + sum_c c u_c - the fewest workers (or echoes), then the earliest mode in the
mission file. Capacities are measured in units of the largest demand, so every
coefficient is O(1).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from trainwall.optimizer.highs import Solver, Status


#: The walls a part-2 mode either meets or breaks whatever the workers or echoes.
MODE_WALLS = ("memory", "stability", "flash")


@dataclass(frozen=True)
class PipelineMode:
    """One mode's demand and capacities (training samples/s and fresh samples/s, per host)."""

    choices: dict
    demand: float
    storage: float
    cpu_per_worker: float
    host_link: float
    cores: int
    workers: int        # the mode's workers when the range decision is the echo
    echo: int           # the mode's echo when the range decision is the workers
    allowed: bool       # memory and stability walls hold (they do not depend on n)
    walls: tuple[str, ...]


def pipeline_mode(mission, choices: dict) -> PipelineMode:
    """The cost model's demand and capacities for one mode of a part-2 mission."""
    from trainwall.core.config import parse_config
    from trainwall.hardware import catalog as hw
    from trainwall.optimizer.costmodel import evaluate

    field, span = mission.integer_decision
    config = parse_config(mission.config_data(choices={**choices, field: span.min}),
                          f"{mission.id} with {choices}")
    metrics = evaluate(config)
    device = hw.device(config.system.accelerator)
    caps = metrics.pipeline.capacities
    cores = config.system.cpu_cores_per_node or device.host.cores
    used = min(max(1, config.data.workers), cores)
    walls = tuple(w for w, *_ in mission.violations(metrics) if w in MODE_WALLS)
    return PipelineMode(dict(choices), caps["compute"] * config.data.echo, caps["storage"], caps["cpu"] / used,
                        caps["host_link"], cores, config.data.workers, config.data.echo, not walls, walls)


def upper_bound(mission, modes: list[PipelineMode]) -> int:
    """n_hi: workers beyond the cores add nothing, so the range stops there."""
    field, span = mission.integer_decision
    if field == "data.workers":
        return max(span.min, min(span.max, max(p.cores for p in modes)))
    return span.max


@dataclass(frozen=True)
class PipelineRaceSolution:
    status: Status
    mode: int | None
    value: int | None
    seconds: float
    build_s: float
    mip_gap: float | None


class PipelineRaceModel:
    """The MILP of the module docstring, built once per mission."""

    def __init__(self, mission, modes: list[PipelineMode], require_balance: bool = True,
                 allow_walls: bool = False):
        import pyomo.environ as pyo

        from trainwall.optimizer.datapipe import flow_graph

        start = time.perf_counter()
        self.mission, self.modes = mission, modes
        field, span = mission.integer_decision
        lo, hi = span.min, upper_bound(mission, modes)
        workers_vary = field == "data.workers"
        C = range(len(modes))
        unit = max(p.demand for p in modes)
        m = self.model = pyo.ConcreteModel()
        m.u = pyo.Var(C, domain=pyo.Binary)
        m.n = pyo.Var(domain=pyo.Integers, bounds=(lo, max(lo, hi)))
        m.v = pyo.Var(C, bounds=(0, max(lo, hi)))
        m.rows = pyo.ConstraintList()
        m.rows.add(sum(m.u[c] for c in C) == 1)
        for c in C:
            m.rows.add(m.v[c] <= hi * m.u[c])
            m.rows.add(m.v[c] >= lo * m.u[c])
            m.rows.add(m.v[c] <= m.n - lo * (1 - m.u[c]))
            m.rows.add(m.v[c] >= m.n - hi * (1 - m.u[c]))
            if not (modes[c].allowed or allow_walls):
                m.u[c].fix(0)

        def coefficient(rate: float) -> float:  # fresh samples/s -> units of the largest demand (capped)
            return min(rate, 2 * unit) / unit

        def capacity(stage: str):
            terms = []
            for c, p in enumerate(modes):
                if stage == "cpu":
                    per = p.cpu_per_worker * (p.echo if workers_vary else min(max(1, p.workers), p.cores))
                    terms.append(coefficient(per) * m.v[c])
                else:
                    rate = p.storage if stage == "storage" else p.host_link
                    terms.append(coefficient(p.echo * rate) * m.u[c] if workers_vary else coefficient(rate) * m.v[c])
            return sum(terms)

        graph = flow_graph()
        m.f = pyo.Var(list(graph.edges), bounds=(0, None))
        for node in graph.nodes:
            if node not in ("source", "sink"):
                m.rows.add(sum(m.f[e] for e in graph.in_edges(node)) == sum(m.f[e] for e in graph.out_edges(node)))
        for e in graph.edges:
            stage = graph.edges[e]["stage"]
            if stage in ("storage", "cpu", "host_link"):
                m.rows.add(m.f[e] <= capacity(stage))
            if stage == "cpu" and workers_vary:  # min(workers, cores): the cores cap the workers
                m.rows.add(m.f[e] <= sum(coefficient(p.cpu_per_worker * p.echo * p.cores) * m.u[c]
                                         for c, p in enumerate(modes)))
            elif stage == "compute":
                demand = sum(p.demand / unit * m.u[c] for c, p in enumerate(modes))
                m.rows.add(m.f[e] <= demand)
                if require_balance:
                    m.rows.add(m.f[e] >= demand)
        m.objective = pyo.Objective(expr=(len(modes) + 1) * m.n + sum(c * m.u[c] for c in C), sense=pyo.minimize)
        self.solver = Solver(m)
        self.build_s = time.perf_counter() - start

    def solve(self) -> PipelineRaceSolution:
        import pyomo.environ as pyo

        res = self.solver.solve()
        if res.status is not Status.OPTIMAL:
            return PipelineRaceSolution(res.status, None, None, res.seconds, self.build_s, None)
        mode = next(c for c in range(len(self.modes)) if pyo.value(self.model.u[c]) > 0.5)
        return PipelineRaceSolution(Status.OPTIMAL, mode, round(pyo.value(self.model.n)), res.seconds, self.build_s,
                                    res.mip_gap)
