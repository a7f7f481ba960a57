"""Collective communication cost, computed on a topology graph.

Every collective is reduced to the messages it sends (who to whom, how many bytes
per byte of the buffer), routed over the graph with :meth:`Topology.route`. Loads
add up per directed edge across all concurrent groups, so the bottleneck link and
its load come from the graph, not from a constant. Time is the alpha-beta model:

    t = max_e (load_e / rate_e) * S  +  steps * alpha

with rate_e the edge's line rate x its link's ``achievable`` share (the bus bandwidth
NCCL's ring collectives reach; hardware/data/links.toml gives each figure's source), and
alpha the slowest link latency on any message's path (the per-message
software and switch latency is paid once per step, not once per switch hop).

Per-algorithm message patterns (buffer of S bytes, group of n):

* ring all-reduce: each member sends 2(n-1)/n * S to its ring successor, in 2(n-1)
  steps (Patarasuk & Yuan 2009; NCCL's ring algorithm);
* ring all-gather / reduce-scatter: (n-1)/n * S to the successor in n-1 steps;
* a group with g >= 2 members on each of several nodes runs g rings, one per NIC, each on
  S/g (:func:`rings`), so its network traffic leaves each node through all g NICs;
* hierarchical all-reduce over k nodes with g members each: reduce-scatter inside
  each node, g concurrent ring all-reduces of S/g across nodes (one per local rank,
  each on its own NIC), all-gather inside each node (as in NCCL/Horovod);
* aggregator all-reduce (parameter server, a star's only sensible choice): every
  member sends S to the aggregator and receives S back;
* point-to-point: S from each source to its destination.

Concurrent groups may move different amounts: ``weights`` gives each group's buffer as a
fraction of S (a pipeline stage's data-parallel ring carries its own stage's gradients:
the first stage's includes the embedding), and every message of a group is scaled by its
weight; without weights every group moves S.

``background`` is the fraction of every network edge's capacity other jobs already
use (a mission's "the fabric is 95 % busy"): those edges have (1 - background) of
their capacity for us.

Plans and routed message sets are kept in bounded caches; their keys hold the
topology as the small value it is (its graph lives in the topology module's caches).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass, field

from trainwall.core.caches import bounded
from trainwall.hardware.topology import Topology

Groups = tuple[tuple[int, ...], ...]

#: Bound of each plan cache (and of each cache of routed messages). An entry is a plan of
#: well under 1 kB (a routed set a few kB), but its key holds the groups, shared with the
#: cost model's layout cache and between these caches: from under 1 kB (one node) to
#: about 400 kB (the pipeline pairs of a 4,096-GPU layout). Solving cloud/3, the largest
#: mission, routes 216 distinct ring sets (its 96 layouts' groups, and their intra- and
#: inter-node halves) and, at each of its variants' three fabric loads, about 75 all-reduce
#: plans: 256 hold a whole variant family, so a variant after the first routes nothing
#: (with 128 the family cycled through the cache and every ring was routed again: a third
#: of a variant's CPU). Typically a few MB per cache; at worst (every key a distinct
#: 4,096-GPU layout) about 100 MB.
PLANS_MAXSIZE = 256


@dataclass(frozen=True, eq=False)
class LinkShares:
    """A collective's load on the network: each network edge it crosses (directed) and its
    link-seconds per byte of S at the edge's line rate. Edges are kept as their numbers in the
    topology's wiring order (:attr:`~trainwall.hardware.topology.Topology.edge_list`), ascending,
    beside the shares: two arrays, 12 bytes an edge. A 4,096-GPU layout's per-NIC rings cross
    thousands of edges and each routed set is cached; as (edge, float) pairs they had held over
    100 MB in ``bench/bench_memory.py``. Iterating gives (edge, share) pairs."""

    topology: Topology | None
    index: array = field(default_factory=lambda: array("i"))
    share: array = field(default_factory=lambda: array("d"))

    @classmethod
    def of(cls, topology: Topology, shares: dict) -> "LinkShares":
        """From {edge: share}."""
        numbered = sorted((topology.edge_index[e], share) for e, share in shares.items())
        return cls(topology, array("i", (i for i, _ in numbered)), array("d", (x for _, x in numbered)))

    def numbered(self):
        """(edge number, share) pairs, in edge order."""
        return zip(self.index, self.share)

    def merged(self, other: "LinkShares", scale: float = 1.0) -> "LinkShares":
        """This load and ``other`` x ``scale`` together (on one topology)."""
        total: dict[int, float] = defaultdict(float)
        for i, x in self.numbered():
            total[i] += x
        for i, x in other.numbered():
            total[i] += x * scale
        keys = sorted(total)
        return LinkShares(self.topology or other.topology, array("i", keys), array("d", (total[i] for i in keys)))

    def __iter__(self):
        edges = self.topology.edge_list if self.topology is not None else ()
        return ((edges[i], x) for i, x in self.numbered())

    def __len__(self) -> int:
        return len(self.index)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LinkShares) and self.topology == other.topology and self.index == other.index
                and self.share == other.share)

    def __hash__(self) -> int:
        return hash((self.topology, self.index.tobytes(), self.share.tobytes()))


NO_SHARES = LinkShares(None)


@dataclass(frozen=True)
class CollectivePlan:
    """The cost of one collective, linear in the buffer size S (bytes).

    ``seconds_per_byte`` is the bandwidth term, ``latency`` the alpha term;
    ``bottleneck`` the directed edge that sets the bandwidth term, ``bottleneck_link``
    its catalog link; ``network_shares`` each network edge (directed) the collective
    crosses, with its link-seconds per byte of S at the edge's full capacity (bytes
    crossing it per byte of S / its capacity): the traffic the network-utilisation wall
    adds up per link, collective by collective.
    """

    algorithm: str
    seconds_per_byte: float
    latency: float
    bottleneck: tuple | None = None
    bottleneck_link: str = ""
    network_shares: LinkShares = NO_SHARES

    def time(self, nbytes: float) -> float:
        """Seconds to run this collective on a buffer of ``nbytes``."""
        return nbytes * self.seconds_per_byte + self.latency if nbytes > 0 else 0.0

    def then(self, other: "CollectivePlan", algorithm: str, scale: float = 1.0) -> "CollectivePlan":
        """This collective followed by ``other`` run on ``scale`` x the buffer."""
        mine = (self.seconds_per_byte, self.bottleneck, self.bottleneck_link)
        theirs = (other.seconds_per_byte * scale, other.bottleneck, other.bottleneck_link)
        slow = max(mine, theirs, key=lambda t: t[0])
        shares = self.network_shares.merged(other.network_shares, scale)
        return CollectivePlan(algorithm, self.seconds_per_byte + other.seconds_per_byte * scale,
                              self.latency + other.latency, slow[1], slow[2], shares)


NO_COMMUNICATION = CollectivePlan("none", 0.0, 0.0)


def _rate(data: dict, background: float) -> float:
    """Bytes/s a collective moves over an edge: NCCL's achievable share of its line rate, less
    the background's share on a network edge."""
    return data["rate"] * ((1.0 - background) if data["network"] else 1.0)


@dataclass(frozen=True)
class _Routed:
    """Messages routed on a topology, before any background load: what does not depend on it.

    ``local`` is the worst (load / rate, edge) over edges outside the network (their
    capacity is all ours), ``network`` the worst (load / capacity, edge, load) over
    network edges, whose capacity the background shrinks by the same factor for all,
    so the worst network edge is the same at every background (the network's edges are
    of one link, hence one achievable share); ``shares`` every network edge's load /
    capacity (link-seconds at the line rate)."""

    hop_latency: float
    local: tuple | None
    network: tuple | None
    shares: LinkShares = NO_SHARES


def _route(topology: Topology, messages: list[tuple[object, object, float]]) -> _Routed | None:
    """Route ``messages`` (src node, dst node, bytes per byte of S) and sum the load per edge."""
    load: dict[tuple, float] = defaultdict(float)
    hop_latency = 0.0
    edges = topology.edge_data
    for src, dst, share in messages:
        path = topology.route(src, dst)
        # the alpha term of one step: the slowest per-hop latency on any message's path
        hop_latency = max(hop_latency, max((edges[e]["latency"] for e in path), default=0.0))
        for edge in path:
            load[edge] += share
    if not load:
        return None
    local = [(ld / edges[e]["rate"], e) for e, ld in load.items() if not edges[e]["network"]]
    network = [(ld / edges[e]["capacity"], e, ld) for e, ld in load.items() if edges[e]["network"]]
    shares = LinkShares.of(topology, {e: share for share, e, _ in network}) if network else NO_SHARES
    return _Routed(hop_latency, max(local) if local else None, max(network) if network else None, shares)


def _cost(topology: Topology, routed: _Routed | None, steps: int, algorithm: str,
          background: float) -> CollectivePlan:
    """The plan of routed messages with ``background`` of every network edge already busy."""
    if routed is None:
        return NO_COMMUNICATION
    edges = topology.edge_data
    candidates = [routed.local] if routed.local else []
    if routed.network:
        _, edge, net_load = routed.network
        candidates.append((net_load / _rate(edges[edge], background), edge))
    seconds, bottleneck = max(candidates)
    return CollectivePlan(algorithm, seconds, steps * routed.hop_latency, bottleneck,
                          edges[bottleneck]["link"], routed.shares)


Weights = tuple[float, ...] | None


def _weights(groups: Groups, weights: Weights) -> tuple[float, ...]:
    return weights if weights is not None else (1.0,) * len(groups)


def _ring_messages(topology: Topology, groups: Groups, share: float, weights: Weights) -> list:
    """Each member's message to its ring successor, ``share`` x its group's weight in all; a
    group spread over nodes runs one ring per NIC (:func:`rings`), each carrying its part."""
    devices = topology.devices
    out = []
    for group, weight in zip(groups, _weights(groups, weights)):
        orders = rings(topology, group)
        for order in orders:
            part = share * weight / len(orders)
            out += [(devices[rank], devices[order[(i + 1) % len(order)]], part) for i, rank in enumerate(order)]
    return out


def rings(topology: Topology, group: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The rings a collective over ``group`` runs, each carrying an equal part of the buffer.

    One ring in the group's order, unless the group has g >= 2 members on each of several
    nodes: then g rings, as NCCL runs them. NCCL builds flat rings through each node's GPUs
    and across nodes (Jeaugey, NVIDIA/nccl issue #471), runs several concurrently as
    channels, each on its part of the buffer (NVIDIA/nccl issue #299; Jeaugey, GTC 2019
    talk S9656), and each channel enters and leaves a node through its own NIC (the ring
    dumps in NVIDIA/nccl issue #601: ``NET/1 GPU/4 ... GPU/7 NET/1``, ``NET/0 GPU/4 ...
    NET/0``). Here ring j visits the nodes in order and, inside each, the members starting
    from the j-th, so the g rings cross the network through all g members' NICs (one NIC
    per device, :func:`~trainwall.hardware.topology.cluster`), not through one.
    """
    by_node: dict[int, list[int]] = defaultdict(list)
    for rank in group:
        by_node[topology.node_of(rank)].append(rank)
    members = [sorted(by_node[k]) for k in sorted(by_node)]
    g = len(members[0])
    if len(members) < 2 or g < 2 or any(len(m) != g for m in members):
        return (group,)
    return tuple(tuple(m[(j + i) % g] for m in members for i in range(g)) for j in range(g))


@bounded(PLANS_MAXSIZE)
def _ring_routed(topology: Topology, groups: Groups, all_reduce: bool, weights: Weights = None) -> _Routed | None:
    n = len(groups[0])
    return _route(topology, _ring_messages(topology, groups, (2.0 if all_reduce else 1.0) * (n - 1) / n, weights))


def _ring(topology: Topology, groups: Groups, background: float, all_reduce: bool,
          weights: Weights = None) -> CollectivePlan:
    n = len(groups[0])
    steps = (2 if all_reduce else 1) * (n - 1)
    name = "ring all-reduce" if all_reduce else "ring"
    return _cost(topology, _ring_routed(topology, groups, all_reduce, weights), steps, name, background)


@bounded(PLANS_MAXSIZE)
def _aggregator_routed(topology: Topology, groups: Groups, weights: Weights = None) -> _Routed | None:
    devices = topology.devices
    pairs = [(r, w) for grp, w in zip(groups, _weights(groups, weights)) for r in grp]
    msgs = [(devices[r], topology.aggregator, w) for r, w in pairs]
    msgs += [(topology.aggregator, devices[r], w) for r, w in pairs]
    return _route(topology, msgs)


@bounded(PLANS_MAXSIZE)
def _p2p_routed(topology: Topology, pairs: tuple[tuple[int, int], ...]) -> _Routed | None:
    devices = topology.devices
    return _route(topology, [(devices[a], devices[b], 1.0) for a, b in pairs if a != b])


def _split_by_node(topology: Topology, groups: Groups, weights: Weights = None):
    """(intra-node subgroups, their weights, inter-node subgroups by local index, their
    weights), if the groups are regular; each subgroup keeps its group's weight."""
    intra, inter, intra_w, inter_w = [], [], [], []
    for group, weight in zip(groups, _weights(groups, weights)):
        by_node: dict[int, list[int]] = defaultdict(list)
        for rank in group:
            by_node[topology.node_of(rank)].append(rank)
        sizes = {len(v) for v in by_node.values()}
        if len(by_node) < 2 or len(sizes) != 1 or sizes == {1}:
            return None
        members = [by_node[k] for k in sorted(by_node)]
        intra.extend(tuple(m) for m in members)
        inter.extend(tuple(m[i] for m in members) for i in range(len(members[0])))
        intra_w += [weight] * len(members)
        inter_w += [weight] * len(members[0])
    return tuple(intra), tuple(intra_w), tuple(inter), tuple(inter_w)


@bounded(PLANS_MAXSIZE)
def all_reduce(topology: Topology, groups: Groups, background: float = 0.0, weights: Weights = None) -> CollectivePlan:
    """The fastest all-reduce the topology offers for these concurrent groups (each moving its
    weight x S; see the module docstring)."""
    if not groups or len(groups[0]) < 2:
        return NO_COMMUNICATION
    candidates = [_ring(topology, groups, background, True, weights)]
    split = _split_by_node(topology, groups, weights)
    if split is not None:
        intra, intra_w, inter, inter_w = split
        g = len(intra[0])
        rs = _ring(topology, intra, background, False, intra_w)
        ar = _ring(topology, inter, background, True, inter_w)
        candidates.append(rs.then(ar, "hierarchical all-reduce", 1.0 / g).then(rs, "hierarchical all-reduce"))
    if topology.aggregator is not None:
        candidates.append(_cost(topology, _aggregator_routed(topology, groups, weights), 2, "aggregator all-reduce",
                                background))
    return min(candidates, key=lambda p: (p.seconds_per_byte, p.latency))


@bounded(PLANS_MAXSIZE)
def all_gather(topology: Topology, groups: Groups, background: float = 0.0, weights: Weights = None) -> CollectivePlan:
    """Ring all-gather (each member ends with all n shards of S); reduce-scatter costs the same."""
    if not groups or len(groups[0]) < 2:
        return NO_COMMUNICATION
    return _ring(topology, groups, background, False, weights)


reduce_scatter = all_gather


@bounded(PLANS_MAXSIZE)
def point_to_point(topology: Topology, pairs: tuple[tuple[int, int], ...],
                   background: float = 0.0) -> CollectivePlan:
    """Concurrent sends of S bytes from each ``src`` rank to its ``dst`` rank."""
    return _cost(topology, _p2p_routed(topology, pairs), 1, "point-to-point", background)
