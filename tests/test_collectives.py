"""Collective costs on the topology, checked by hand with the alpha-beta formulas."""

import pytest

from trainwall.hardware import collectives as C, topology as T


def test_ring_all_reduce_inside_a_node_uses_nvlink():
    topo = T.cluster(8, 8, "nvlink4", "ib-ndr")
    plan = C.all_reduce(topo, (tuple(range(8)),))
    assert plan.bottleneck_link == "nvlink4"
    assert plan.seconds_per_byte == pytest.approx(2 * 7 / 8 / 450e9)


def test_data_parallel_rings_each_use_their_own_nic():
    topo = T.cluster(64, 8, "nvlink4", "ib-ndr")
    groups = tuple(tuple(t + 8 * d for d in range(8)) for t in range(8))  # one member per node
    plan = C.all_reduce(topo, groups)
    assert plan.bottleneck_link == "ib-ndr"
    assert plan.seconds_per_byte == pytest.approx(2 * 7 / 8 / 50e9)


def test_hierarchical_beats_flat_ring_across_nodes():
    topo = T.cluster(32, 8, "nvlink4", "ib-ndr")
    plan = C.all_reduce(topo, (tuple(range(32)),))
    assert plan.algorithm == "hierarchical all-reduce"
    expected = 2 * (7 / 8) / 450e9 + 2 * (3 / 4) / 50e9 / 8
    assert plan.seconds_per_byte == pytest.approx(expected)


def test_background_load_leaves_only_the_headroom():
    topo = T.cluster(64, 8, "nvlink4", "ib-ndr")
    groups = tuple(tuple(t + 8 * d for d in range(8)) for t in range(8))
    assert C.all_reduce(topo, groups, 0.95).seconds_per_byte == pytest.approx(
        C.all_reduce(topo, groups, 0.0).seconds_per_byte / 0.05)


def test_oversubscribed_spine_becomes_the_bottleneck():
    # 4 leaves of 16 NICs; 16 concurrent cross-leaf rings load each leaf uplink with
    # 16 x 2(n-1)/n bytes per byte against 16 x 50 GB/s / 4 of capacity.
    topo = T.cluster(64, 4, "nvlink4", "ib-ndr", oversubscription=4.0, nics_per_leaf=16)
    groups = tuple(tuple(r + 16 * k for k in range(4)) for r in range(16))
    plan = C.all_reduce(topo, groups)
    assert plan.bottleneck[0] in (("spine",), ) or plan.bottleneck[1] == ("spine",)
    assert plan.seconds_per_byte == pytest.approx(16 * 2 * 3 / 4 / (16 * 50e9 / 4))


def test_shared_radio_is_one_channel():
    plan = C.all_reduce(T.star(16, "wifi"), (tuple(range(16)),))
    assert plan.bottleneck_link == "wifi"
    assert plan.seconds_per_byte == pytest.approx(min(16 * 2 * 15 / 16, 2 * 16) / 25e6)


def test_weighted_groups_scale_their_own_links():
    """Concurrent groups moving different buffers (a pipeline stage's gradients): each group's
    messages, and so the links only it crosses, scale by its weight; the time is the busiest link's."""
    topo = T.cluster(32, 8, "nvlink4", "ib-ndr")
    groups = ((0, 8, 16, 24), (1, 9, 17, 25))          # two inter-node rings, disjoint NICs
    even = C.all_reduce(topo, groups)
    half = C.all_reduce(topo, groups, weights=(1.0, 0.5))
    assert half.algorithm == even.algorithm
    full, scaled = dict(even.network_shares), dict(half.network_shares)
    assert full.keys() == scaled.keys()
    first = {e for grp in groups[:1] for e in full if any(topo.devices[r] in e for r in grp)}
    second = {e for e in full if any(topo.devices[r] in e for r in groups[1])}
    assert first and second and not first & second
    assert all(scaled[e] == full[e] for e in first) and all(scaled[e] == full[e] / 2 for e in second)
    assert half.seconds_per_byte == even.seconds_per_byte       # the heavier group sets the time
