"""The input pipeline as a flow network (networkx): storage -> CPU workers -> host link
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
from functools import lru_cache

STAGES = ("storage", "cpu", "host_link", "compute")


@dataclass(frozen=True)
class PipelineFlow:
    """Max-flow of the input pipeline, per host, in samples/s."""

    rate: float
    bottleneck: str
    capacities: dict = field(default_factory=dict)

    @property
    def starved(self) -> bool:
        """The accelerators wait for data: the max-flow falls short of their demand."""
        return self.rate < self.capacities["compute"] * (1 - 1e-9)


def flow_graph(capacities: dict | None = None):
    """The pipeline as a networkx DiGraph: source -> storage -> cpu -> host_link -> compute
    -> sink; the edge leaving node ``s`` carries ``stage = s`` and ``capacity`` (missing
    or infinite: unbounded). The part-2 MILP builds its flow variables on these edges."""
    import networkx as nx

    g = nx.DiGraph()
    nodes = ["source", *STAGES, "sink"]
    for u, v in zip(nodes[:-1], nodes[1:]):
        cap = (capacities or {}).get(u, float("inf"))
        g.add_edge(u, v, stage=u if u in STAGES else None, capacity=cap if math.isfinite(cap) else 1e300)
    return g


@lru_cache(maxsize=8192)
def solve_flow(storage: float, cpu: float, host_link: float, compute: float) -> PipelineFlow:
    """Max-flow / min-cut of the chain source -> storage -> cpu -> host_link -> compute -> sink."""
    import networkx as nx

    caps = dict(zip(STAGES, (storage, cpu, host_link, compute)))
    g = flow_graph(caps)
    rate, (reachable, _) = nx.minimum_cut(g, "source", "sink")
    # The cut edge is the first stage whose tail is reachable from the source and head is not.
    bottleneck = next((data["stage"] for u, v, data in g.edges(data=True)
                       if data["stage"] and u in reachable and v not in reachable), "compute")
    return PipelineFlow(rate, bottleneck, caps)
