"""The input pipeline as a flow network: storage -> CPU workers -> host link
-> accelerators, per host, in samples per second.

Capacities (one host feeding ``accelerators`` devices):

* storage: storage_bandwidth / sample_bytes;
* cpu: min(workers, cores) x core_speed / cpu_seconds[augmentation] (a worker is a
  process on one core; more workers than cores add nothing);
* host link: accelerators x link_bandwidth / device_bytes (one link per device);
* compute: the samples per second the accelerators consume at the step's compute
  time - the demand the pipeline must meet.

With data echoing (``data.echo = e``, Choi et al. 2019) the flow is in fresh samples:
the accelerators ask for 1/e of the samples they train on.

The maximum flow is the sustainable rate; the minimum cut names the longest pole
(``compute`` means the accelerators are the bottleneck: nothing starves them); each
stage's utilisation is the achieved rate over its capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STAGES = ("storage", "cpu", "host_link", "compute")


@dataclass(frozen=True)
class PipelineFlow:
    """Max-flow of the input pipeline, per host, in samples/s."""

    rate: float
    bottleneck: str
    capacities: dict = field(default_factory=dict)


#: An infinite capacity on the graph (networkx's flow algorithms need finite ones).
UNBOUNDED = 1e300


def flow_graph(capacities: dict | None = None):
    """The pipeline as a networkx DiGraph: source -> storage -> cpu -> host_link -> compute
    -> sink; the edge leaving node ``s`` carries ``stage = s`` and ``capacity`` (missing
    or infinite: :data:`UNBOUNDED`). The part-2 MILP builds its flow variables on these edges."""
    import networkx as nx

    g = nx.DiGraph()
    nodes = ["source", *STAGES, "sink"]
    for u, v in zip(nodes[:-1], nodes[1:]):
        cap = (capacities or {}).get(u, float("inf"))
        g.add_edge(u, v, stage=u if u in STAGES else None, capacity=cap if math.isfinite(cap) else UNBOUNDED)
    return g


def solve_flow(storage: float, cpu: float, host_link: float, compute: float) -> PipelineFlow:
    """Max-flow / min-cut of the chain source -> storage -> cpu -> host_link -> compute -> sink.

    Computed directly, without building :func:`flow_graph`: on a chain every unit of flow
    crosses every edge, so the maximum flow is the smallest capacity, the unbounded source
    edge included (max-flow = min-cut, Ford & Fulkerson 1956). Among minimum cuts this
    names the one networkx's ``minimum_cut`` returns: its sink side is the nodes that can
    still reach the sink in the residual network, on a chain every node after the last
    saturated edge, so the cut is the LAST edge of the smallest capacity (the one nearest
    the accelerators); when that is the source edge (no stage below :data:`UNBOUNDED`)
    the longest pole is ``compute``. ``tests/test_costmodel_package.py`` checks both
    against networkx on random capacities, ties included.
    """
    caps = dict(zip(STAGES, (storage, cpu, host_link, compute)))
    edges = [(None, UNBOUNDED)] + [(s, c if math.isfinite(c) else UNBOUNDED) for s, c in caps.items()]
    rate = min(c for _, c in edges)
    bottleneck = next(s for s, c in reversed(edges) if c == rate) or "compute"
    return PipelineFlow(rate, bottleneck, caps)
