"""Topologies as graphs: who is wired to whom, at what bandwidth.

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
loads add up per direction. Edges carry ``capacity`` (bytes/s per direction, the line rate),
``rate`` (what NCCL's collectives achieve of it: the link's ``achievable`` share), ``latency`` (s), ``link`` (catalog
key) and ``network`` (True for edges other jobs also use: NICs and fabric, radio),
which is where a mission's background load applies.

A :class:`Topology` is a small value, compared and hashed by what it was built from
(:attr:`Topology.key`): the heavy parts - the edge table, the adjacency and switch
graph routing reads, routes and switch trees - are derived from the key on demand and
kept in bounded caches (:mod:`trainwall.core.caches`), so a cache or result that holds
a topology holds a few hundred bytes, never a graph. networkx (Dijkstra over the
switches) is imported the first time a route is searched: never for a single device,
nor for plans already cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainwall.core.caches import bounded
from trainwall.hardware.catalog import Link, link as catalog_link

if TYPE_CHECKING:
    import networkx as nx

#: Switch ports assumed per leaf when a cluster config does not say (a 64-port
#: NDR switch with half its ports down to NICs); stated as an assumption.
DEFAULT_NICS_PER_LEAF = 32

# Bounds of the caches below. A 4,096-GPU cluster (512 nodes, 128 leaves) is the largest
# the lab's sliders reach; the figures are for it.
#: Edge tables (with the device list): about 4 MB for 4,096 GPUs. A mission's solve wires
#: at most three topologies; 8 keep those and a devices slider's last few positions.
WIRINGS_MAXSIZE = 8
#: What routing reads (adjacency both ways, the switch graph), only for topologies being
#: routed: about 3 MB for 4,096 GPUs.
ROUTINGS_MAXSIZE = 4
#: A route is about 1.3 kB (its key, its 4-6 edges, the cache's bookkeeping); solving
#: cloud/3 (up to 1,024 GPUs) routes about 16,000 messages and one evaluation on 4,096
#: GPUs about 11,000: 16,384 routes (about 20 MB) hold either. A route not held is
#: searched again (tens of microseconds), only when a collective plan is not cached.
ROUTES_MAXSIZE = 16_384
#: A switch tree (Dijkstra from one switch over the switches) is under 1 kB from an
#: NVSwitch (no switch neighbours) and about 28 kB from a leaf of a 4,096-GPU fabric,
#: which has 512 NVSwitches and 128 leaves: 1,024 trees cover such a cluster, in at most
#: about 28 MB (typically a few MB).
SWITCH_TREES_MAXSIZE = 1_024


@dataclass(frozen=True)
class Topology:
    """A topology: what it was built from, its devices in rank order, and routing over it.

    ``key`` is the builder and its arguments (``("cluster", devices, ...)``): equal keys
    wire equal graphs, and a topology is compared and hashed by its fields, all small.
    """

    kind: str
    key: tuple
    device_count: int
    devices_per_node: int
    aggregator: tuple | None = None

    @property
    def devices(self) -> tuple:
        """The device nodes of the graph, in rank order."""
        return _wiring(self).devices

    @property
    def edge_list(self) -> tuple:
        """Every directed edge (u, v), in wiring order: edge number i is ``edge_list[i]``."""
        return _wiring(self).edge_list

    @property
    def edge_index(self) -> dict:
        """Each directed edge's number (its place in :attr:`edge_list`)."""
        return _wiring(self).edge_index

    @property
    def edge_data(self) -> dict:
        """Each directed edge's attributes by (u, v), in wiring order (read-only: the two
        directions of a link share one dict); cheaper to read than networkx's edge views."""
        return _wiring(self).edges

    @bounded(ROUTES_MAXSIZE)
    def route(self, src, dst) -> tuple:
        """The directed edges (u, v) a message from graph node ``src`` to ``dst`` crosses.

        The cheapest path by transfer cost (sum of 1 / capacity over its edges), found
        on the graph: NVLink inside a node, NIC - leaf - spine - leaf - NIC across nodes.
        Devices are endpoints, never forwarders (true of switched GPU fabrics and of the
        star), so the search runs over the switches alone: shortest paths between
        switches are computed once per source switch (Dijkstra) and a route joins the
        source's links into the switches, a switch-to-switch path and the links out to
        the destination. Equal-cost routes are broken by the smaller node sequence, so
        every machine picks the same one. Cached per (topology, src, dst); networkx is
        imported here, by the first search.
        """
        nodes = self._cheapest_nodes(src, dst)
        return tuple(zip(nodes[:-1], nodes[1:]))

    def _cheapest_nodes(self, src, dst) -> tuple:
        if src == dst:
            return (src,)
        wiring, routing = _wiring(self), _routing(self)
        devices, direct = wiring.device_set, wiring.edges.get((src, dst))
        best = (direct["cost"], (src, dst)) if direct is not None else None
        starts = [(0.0, (src,))] if src not in devices else \
            [(data["cost"], (src, hub)) for hub, data in routing.succ.get(src, {}).items() if hub not in devices]
        ends = [(0.0, dst)] if dst not in devices else \
            [(data["cost"], hub) for hub, data in routing.pred.get(dst, {}).items() if hub not in devices]
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
            import networkx as nx

            raise nx.NetworkXNoPath(f"no route from {src} to {dst}")
        return best[1]

    @bounded(SWITCH_TREES_MAXSIZE)
    def _switch_paths(self, hub) -> tuple[dict, dict]:
        """Dijkstra from switch ``hub`` over the switches only (distances, node paths), cached."""
        import networkx as nx

        return nx.single_source_dijkstra(_routing(self).switches, hub, weight="cost")

    def node_of(self, rank: int) -> int:
        """The node (server / vehicle / device) that hosts device ``rank``."""
        return rank // self.devices_per_node

    @property
    def nodes(self) -> int:
        return self.device_count // self.devices_per_node


@dataclass(frozen=True)
class _Wiring:
    """A topology's devices (as a tuple in rank order and as a set), its edge table, and its
    edges numbered in wiring order (a collective's link shares name edges by number)."""

    devices: tuple
    device_set: frozenset
    edges: dict
    edge_list: tuple
    edge_index: dict


@bounded(WIRINGS_MAXSIZE)
def _wiring(topology: Topology) -> _Wiring:
    """Wire ``topology`` from its key: devices ``("dev", rank)`` and every directed edge."""
    devices = tuple(("dev", r) for r in range(topology.device_count))
    edges: dict = {}
    if topology.kind == "cluster":
        _, _, per_node, intra, inter, oversubscription, nics_per_leaf = topology.key
        _wire_cluster(edges, devices, per_node, intra, inter, oversubscription, nics_per_leaf)
    elif topology.kind == "star":
        _wire_star(edges, devices, topology.aggregator, catalog_link(topology.key[2]))
    edge_list = tuple(edges)
    return _Wiring(devices, frozenset(devices), edges, edge_list, {e: i for i, e in enumerate(edge_list)})


@dataclass(frozen=True)
class _Routing:
    """What route searches read: each node's successors and predecessors (each a dict of
    neighbour -> edge attributes, in wiring order) and the switch graph, the non-device
    nodes and the edges between them, where routes may pass through."""

    succ: dict[Any, dict]
    pred: dict[Any, dict]
    switches: nx.DiGraph


@bounded(ROUTINGS_MAXSIZE)
def _routing(topology: Topology) -> _Routing:
    """``topology``'s routing view. Nodes and edges enter in wiring order (a node when its
    first edge does), as they would enter a networkx graph of the whole topology, so the
    searches visit neighbours, and break ties, in the same order."""
    import networkx as nx

    wiring = _wiring(topology)
    devices = wiring.device_set
    succ: dict[Any, dict] = {}
    pred: dict[Any, dict] = {}
    nodes: dict[Any, None] = {}
    for (u, v), attrs in wiring.edges.items():
        succ.setdefault(u, {})[v] = attrs
        pred.setdefault(v, {})[u] = attrs
        nodes.setdefault(u)
        nodes.setdefault(v)
    switches = nx.DiGraph()
    switches.add_nodes_from(n for n in nodes if n not in devices)
    switches.add_edges_from((u, v, attrs) for (u, v), attrs in wiring.edges.items()
                            if u not in devices and v not in devices)
    return _Routing(succ, pred, switches)


def _add(edges: dict, u, v, lk: Link, capacity: float, network: bool,
         both_ways: bool = True) -> None:
    """A link from u to v (and back, unless ``both_ways`` is False) of ``capacity`` each way
    (the line rate), of which collectives move ``rate`` = capacity x the link's ``achievable``."""
    attrs = dict(capacity=capacity, rate=capacity * lk.achievable, latency=lk.latency, link=lk.key,
                 network=network, cost=1.0 / capacity)
    edges[u, v] = attrs
    if both_ways:
        edges[v, u] = attrs


def cluster(devices: int, devices_per_node: int, intra_node_link: str, inter_node_link: str,
            oversubscription: float = 1.0, nics_per_leaf: int = DEFAULT_NICS_PER_LEAF) -> Topology:
    """A multi-node cluster: NVSwitch inside each node, one NIC per device, leaf/spine.

    ``oversubscription`` = leaf downlink capacity / leaf uplink capacity (1.0 is a
    non-blocking fat tree). Devices are numbered node-major: rank r sits on node
    r // devices_per_node.
    """
    if devices % devices_per_node:
        raise ValueError("devices must be a multiple of devices_per_node")
    catalog_link(intra_node_link, "system.intra_node_link")  # an unknown name fails here
    catalog_link(inter_node_link, "system.inter_node_link")
    key = ("cluster", devices, devices_per_node, intra_node_link, inter_node_link,
           oversubscription, nics_per_leaf)
    return Topology("cluster", key, devices, devices_per_node)


def _wire_cluster(edges: dict, ranks: tuple, devices_per_node: int, intra_node_link: str,
                  inter_node_link: str, oversubscription: float, nics_per_leaf: int) -> None:
    intra, inter = catalog_link(intra_node_link), catalog_link(inter_node_link)
    devices = len(ranks)
    nodes = devices // devices_per_node
    leaves = max(1, -(-devices // nics_per_leaf))
    for n in range(nodes):
        switch = ("nvswitch", n)
        for r in range(n * devices_per_node, (n + 1) * devices_per_node):
            if devices_per_node > 1:
                _add(edges, ranks[r], switch, intra, intra.bandwidth, network=False)
            if nodes > 1:
                _add(edges, ranks[r], ("leaf", r // nics_per_leaf), inter, inter.bandwidth, network=True)
    if nodes > 1 and leaves > 1:
        for leaf in range(leaves):
            down = min(nics_per_leaf, devices - leaf * nics_per_leaf)
            _add(edges, ("leaf", leaf), ("spine",), inter, down * inter.bandwidth / oversubscription,
                 network=True)


def single() -> Topology:
    """One device: no links, no communication."""
    return Topology("single", ("single",), 1, 1)


def star(devices: int, link_name: str) -> Topology:
    """A fleet around an aggregator: each device on ``link_name``.

    Shared radio (Wi-Fi, BLE): each device transmits into ``air-tx`` and receives
    from ``air-rx``; the one ``air-tx -> air-rx`` edge of the link's capacity is the
    channel every message shares, and the aggregator (the access point's server)
    sits on both sides of it. Otherwise (a cellular uplink per vehicle): each device
    has its own edges to the aggregator, whose backhaul is assumed 10 GbE.
    """
    catalog_link(link_name, "system.inter_node_link")  # an unknown name fails here
    return Topology("star", ("star", devices, link_name), devices, 1, aggregator=("aggregator",))


def _wire_star(edges: dict, ranks: tuple, aggregator: tuple, lk: Link) -> None:
    if lk.shared_medium:
        tx, rx = ("air-tx",), ("air-rx",)
        _add(edges, tx, rx, lk, lk.bandwidth, network=True, both_ways=False)
        for r in ranks + (aggregator,):
            _add(edges, r, tx, lk, lk.bandwidth, network=False, both_ways=False)
            _add(edges, rx, r, lk, lk.bandwidth, network=False, both_ways=False)
    else:
        for r in ranks:
            _add(edges, r, aggregator, lk, lk.bandwidth, network=True)
