"""Topologies as networkx graphs: who is wired to whom, at what bandwidth.

Three shapes cover the lab's four tracks:

* :func:`cluster` - GPU nodes: every GPU on the node's NVSwitch (intra-node link),
  one NIC per GPU up to a leaf switch, leaves to a spine layer with a configurable
  oversubscription (downlink : uplink capacity). The spine layer is one node per
  fabric: with ECMP spreading flows evenly over the spines, a leaf's uplinks act as
  one edge of their summed capacity (the perfect-ECMP assumption, stated here).
* :func:`single` - one device: no network.
* :func:`star` - a fleet of devices around an aggregator (federated / local SGD).
  A radio link (``shared_medium``) is one channel: every transmission, device to
  device or device to aggregator, crosses the single ``air-tx -> air-rx`` edge of
  the link's capacity, so N devices share it. A point-to-point link (a cellular
  uplink per vehicle) gives each device its own edges to the aggregator.

The graphs are directed (a full-duplex link is two edges, one per direction), so
loads add up per direction. Edges carry ``capacity`` (bytes/s per direction), ``latency`` (s), ``link`` (catalog
key) and ``network`` (True for edges other jobs also use: NICs and fabric, radio),
which is where a mission's background load applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property

import networkx as nx

from trainwall.hardware.catalog import Link, link as catalog_link

#: Switch ports assumed per leaf when a cluster config does not say (a 64-port
#: NDR switch with half its ports down to NICs); stated as an assumption.
DEFAULT_NICS_PER_LEAF = 32

@dataclass(frozen=True, eq=False)
class Topology:
    """A topology: the graph, the devices in rank order, and routing over it."""

    kind: str
    graph: nx.DiGraph
    devices: tuple
    devices_per_node: int
    key: tuple
    aggregator: tuple | None = None
    _routes: dict = field(default_factory=dict, repr=False)
    _switch_trees: dict = field(default_factory=dict, repr=False)
    _latencies: dict = field(default_factory=dict, repr=False)

    def route(self, src, dst) -> tuple:
        """The directed edges (u, v) a message from graph node ``src`` to ``dst`` crosses.

        The cheapest path by transfer cost (sum of 1 / capacity over its edges), found
        on the graph: NVLink inside a node, NIC - leaf - spine - leaf - NIC across nodes.
        Devices are endpoints, never forwarders (true of switched GPU fabrics and of the
        star), so the search runs over the switches alone: shortest paths between
        switches are computed once per source switch (Dijkstra) and a route joins the
        source's links into the switches, a switch-to-switch path and the links out to
        the destination. Equal-cost routes are broken by the smaller node sequence, so
        every machine picks the same one. Cached per (src, dst).
        """
        key = (src, dst)
        path = self._routes.get(key)
        if path is None:
            nodes = self._cheapest_nodes(src, dst)
            path = tuple(zip(nodes[:-1], nodes[1:]))
            self._routes[key] = path
        return path

    def _cheapest_nodes(self, src, dst) -> tuple:
        g, devices = self.graph, self._device_set
        if src == dst:
            return (src,)
        best = (g.edges[src, dst]["cost"], (src, dst)) if g.has_edge(src, dst) else None
        starts = [(0.0, (src,))] if src not in devices else \
            [(data["cost"], (src, hub)) for hub, data in g.succ[src].items() if hub not in devices]
        ends = [(0.0, dst)] if dst not in devices else \
            [(data["cost"], hub) for hub, data in g.pred[dst].items() if hub not in devices]
        for c_in, prefix in starts:
            dist, paths = self._switch_paths(prefix[-1])
            for c_out, hub in ends:
                if hub not in dist:
                    continue
                nodes = prefix[:-1] + tuple(paths[hub]) + ((dst,) if hub != dst else ())
                candidate = (c_in + dist[hub] + c_out, nodes)
                if best is None or candidate < best:
                    best = candidate
        if best is None:
            raise nx.NetworkXNoPath(f"no route from {src} to {dst}")
        return best[1]

    @cached_property
    def edge_data(self) -> dict:
        """Each directed edge's attributes, by (u, v): a plain dict, cheaper to read than
        networkx's edge views in the collectives' inner loop."""
        return {(u, v): data for u, v, data in self.graph.edges(data=True)}

    def path_latency(self, path: tuple) -> float:
        """The largest per-hop latency along a route (the alpha term of one step), cached."""
        found = self._latencies.get(path)
        if found is None:
            edges = self.edge_data
            found = self._latencies[path] = max((edges[e]["latency"] for e in path), default=0.0)
        return found

    @cached_property
    def _device_set(self) -> frozenset:
        return frozenset(self.devices)

    @cached_property
    def _switches(self) -> nx.DiGraph:
        """The graph without its devices: where routes may pass through."""
        return self.graph.subgraph([n for n in self.graph if n not in self._device_set])

    def _switch_paths(self, hub) -> tuple[dict, dict]:
        """Dijkstra from switch ``hub`` over the switches only (distances, node paths), cached."""
        found = self._switch_trees.get(hub)
        if found is None:
            found = self._switch_trees[hub] = nx.single_source_dijkstra(self._switches, hub, weight="cost")
        return found

    def node_of(self, rank: int) -> int:
        """The node (server / vehicle / device) that hosts device ``rank``."""
        return rank // self.devices_per_node

    @property
    def nodes(self) -> int:
        return len(self.devices) // self.devices_per_node


def _add(g: nx.DiGraph, u, v, lk: Link, capacity: float, network: bool,
         both_ways: bool = True) -> None:
    """A link from u to v (and back, unless ``both_ways`` is False) of ``capacity`` each way."""
    attrs = dict(capacity=capacity, latency=lk.latency, link=lk.key, network=network,
                 cost=1.0 / capacity)
    g.add_edge(u, v, **attrs)
    if both_ways:
        g.add_edge(v, u, **attrs)


@cache
def cluster(devices: int, devices_per_node: int, intra_node_link: str, inter_node_link: str,
            oversubscription: float = 1.0, nics_per_leaf: int = DEFAULT_NICS_PER_LEAF) -> Topology:
    """A multi-node cluster: NVSwitch inside each node, one NIC per device, leaf/spine.

    ``oversubscription`` = leaf downlink capacity / leaf uplink capacity (1.0 is a
    non-blocking fat tree). Devices are numbered node-major: rank r sits on node
    r // devices_per_node.
    """
    if devices % devices_per_node:
        raise ValueError("devices must be a multiple of devices_per_node")
    intra = catalog_link(intra_node_link, "system.intra_node_link")
    inter = catalog_link(inter_node_link, "system.inter_node_link")
    g = nx.DiGraph()
    nodes = devices // devices_per_node
    ranks = tuple(("dev", r) for r in range(devices))
    leaves = max(1, -(-devices // nics_per_leaf))
    for n in range(nodes):
        switch = ("nvswitch", n)
        for r in range(n * devices_per_node, (n + 1) * devices_per_node):
            if devices_per_node > 1:
                _add(g, ranks[r], switch, intra, intra.bandwidth, network=False)
            if nodes > 1:
                _add(g, ranks[r], ("leaf", r // nics_per_leaf), inter, inter.bandwidth, network=True)
    if nodes > 1 and leaves > 1:
        for leaf in range(leaves):
            down = min(nics_per_leaf, devices - leaf * nics_per_leaf)
            _add(g, ("leaf", leaf), ("spine",), inter, down * inter.bandwidth / oversubscription,
                 network=True)
    g.add_nodes_from(ranks)
    key = ("cluster", devices, devices_per_node, intra_node_link, inter_node_link,
           oversubscription, nics_per_leaf)
    return Topology("cluster", g, ranks, devices_per_node, key)


@cache
def single() -> Topology:
    """One device: no links, no communication."""
    g = nx.DiGraph()
    g.add_node(("dev", 0))
    return Topology("single", g, (("dev", 0),), 1, ("single",))


@cache
def star(devices: int, link_name: str) -> Topology:
    """A fleet around an aggregator: each device on ``link_name``.

    Shared radio (Wi-Fi, BLE): each device transmits into ``air-tx`` and receives
    from ``air-rx``; the one ``air-tx -> air-rx`` edge of the link's capacity is the
    channel every message shares, and the aggregator (the access point's server)
    sits on both sides of it. Otherwise (a cellular uplink per vehicle): each device
    has its own edges to the aggregator, whose backhaul is assumed 10 GbE.
    """
    lk = catalog_link(link_name, "system.inter_node_link")
    g = nx.DiGraph()
    ranks = tuple(("dev", r) for r in range(devices))
    aggregator = ("aggregator",)
    if lk.shared_medium:
        tx, rx = ("air-tx",), ("air-rx",)
        _add(g, tx, rx, lk, lk.bandwidth, network=True, both_ways=False)
        for r in ranks + (aggregator,):
            _add(g, r, tx, lk, lk.bandwidth, network=False, both_ways=False)
            _add(g, rx, r, lk, lk.bandwidth, network=False, both_ways=False)
    else:
        for r in ranks:
            _add(g, r, aggregator, lk, lk.bandwidth, network=True)
    g.add_nodes_from(ranks)
    return Topology("star", g, ranks, 1, ("star", devices, link_name), aggregator=aggregator)
