"""The input pipeline as a flow network (networkx): storage -> CPU workers -> host link
-> accelerators, per host, in samples per second.

Capacities (one host feeding ``accelerators`` devices):

* storage: storage_bandwidth / sample_bytes;
* cpu: min(workers, cores) x core_speed / cpu_seconds[augmentation] (a worker is a
  process on one core; more workers than cores add nothing);
* host link: accelerators x link_bandwidth / device_bytes (one link per device);
* compute: the samples per second the accelerators consume at the step's compute
  time - the demand the pipeline must meet.

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


@lru_cache(maxsize=8192)
def solve_flow(storage: float, cpu: float, host_link: float, compute: float) -> PipelineFlow:
    """Max-flow / min-cut of the chain source -> storage -> cpu -> host_link -> compute -> sink."""
    import networkx as nx

    caps = dict(zip(STAGES, (storage, cpu, host_link, compute)))
    g = nx.DiGraph()
    nodes = ["source", *STAGES, "sink"]
    for (u, v), stage in zip(zip(nodes[:-1], nodes[1:]), ("source", *STAGES)):
        if stage != "source":
            g.add_edge(u, v, capacity=caps[stage] if math.isfinite(caps[stage]) else 1e300)
        else:
            g.add_edge(u, v, capacity=1e300)
    rate, (reachable, _) = nx.minimum_cut(g, "source", "sink")
    # The cut edge is the first stage whose head is not reachable from the source.
    bottleneck = next((s for s, (u, v) in zip(STAGES, zip(nodes[1:-1], nodes[2:]))
                       if u in reachable and v not in reachable), "compute")
    return PipelineFlow(rate, bottleneck, caps)
