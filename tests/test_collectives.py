"""Collective costs on the topology, checked by hand with the alpha-beta formulas.

A collective moves bytes at the bus bandwidth NCCL reaches, not the line rate: NVLink 4 at
370 of 450 GB/s, an NDR NIC at 48 of 50 GB/s (hardware/data/links.toml, with the NCCL team's
statements as sources). NV and IB below are those rates.
"""

import pytest

from trainwall.hardware import collectives as C, topology as T
from trainwall.hardware.catalog import link

NV = 450e9 * link("nvlink4").achievable
IB = 50e9 * link("ib-ndr").achievable


def exactly(expected: float):
    """To the last few bits: seconds per byte are of order 1e-11, and pytest.approx's default
    absolute tolerance of 1e-12 would let them be several per cent off."""
    return pytest.approx(expected, rel=1e-9, abs=0)


def test_the_achievable_shares_are_the_nccl_teams_figures():
    assert NV == pytest.approx(370e9, rel=0.01) and IB == pytest.approx(48e9, rel=1e-9)
    assert 300e9 * link("nvlink3").achievable == pytest.approx(230e9, rel=0.01)
    assert 25e9 * link("ib-hdr").achievable == pytest.approx(24e9, rel=1e-9)
    assert link("10gbe").achievable == 1.0                     # no figure: the line rate


def test_ring_all_reduce_inside_a_node_uses_nvlink():
    topo = T.cluster(8, 8, "nvlink4", "ib-ndr")
    plan = C.all_reduce(topo, (tuple(range(8)),))
    assert plan.bottleneck_link == "nvlink4"
    assert plan.seconds_per_byte == exactly(2 * 7 / 8 / NV)


def test_data_parallel_rings_each_use_their_own_nic():
    topo = T.cluster(64, 8, "nvlink4", "ib-ndr")
    groups = tuple(tuple(t + 8 * d for d in range(8)) for t in range(8))  # one member per node
    plan = C.all_reduce(topo, groups)
    assert plan.bottleneck_link == "ib-ndr"
    assert plan.seconds_per_byte == exactly(2 * 7 / 8 / IB)


def test_a_ring_across_nodes_runs_one_ring_per_nic_and_beats_the_hierarchical_all_reduce():
    """4 nodes x 8 GPUs, one group of 32: NCCL's 8 flat rings, one per NIC, each on S/8. A
    GPU sends 2 x 31/32 x S/8 per ring: 7 of its 8 rings over NVLink, 1 through its NIC, at
    the same time, so the NIC (2 x 31/32 / 8 / 50 GB/s) sets the time. The hierarchical
    all-reduce runs its phases one after the other: 2 x 7/8 / NV + 2 x 3/4 / 8 / IB."""
    topo = T.cluster(32, 8, "nvlink4", "ib-ndr")
    plan = C.all_reduce(topo, (tuple(range(32)),))
    assert plan.algorithm == "ring all-reduce"
    assert plan.seconds_per_byte == exactly(2 * 31 / 32 / 8 / IB)
    hierarchical = 2 * (7 / 8) / NV + 2 * (3 / 4) / IB / 8
    assert plan.seconds_per_byte < hierarchical


def test_an_all_gather_across_two_8_nic_nodes_spreads_over_all_16_nics():
    """ZeRO-3's all-gather over 16 GPUs on 2 nodes, by hand: one ring through one NIC per node
    would send (15/16) S out of that NIC; 8 rings send (15/16) S / 8 out of each of the 8, and
    as much in. The bandwidth term is the NIC's, 8 x faster than one ring's."""
    topo = T.cluster(16, 8, "nvlink4", "ib-ndr")
    group = tuple(range(16))
    assert C.rings(topo, group)[1] == (1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11, 12, 13, 14, 15, 8)
    plan = C.all_gather(topo, (group,))
    assert plan.bottleneck_link == "ib-ndr"
    assert plan.seconds_per_byte == exactly(15 / 16 / 8 / IB)
    nic_up = {edge: share for edge, share in plan.network_shares if edge[0] in topo.devices}
    assert len(nic_up) == 16                                  # every GPU's NIC sends
    assert all(share == exactly(15 / 16 / 8 / 50e9) for share in nic_up.values())   # link-seconds: line rate
    assert sum(nic_up.values()) * 50e9 == pytest.approx(2 * 15 / 16)   # each node's S x 15/16 out, both nodes


def test_a_group_with_one_member_per_node_or_uneven_nodes_keeps_one_ring():
    topo = T.cluster(32, 8, "nvlink4", "ib-ndr")
    assert C.rings(topo, (0, 8, 16, 24)) == ((0, 8, 16, 24),)
    assert C.rings(topo, (0, 1, 2, 8)) == ((0, 1, 2, 8),)
    assert C.rings(topo, (0, 1, 2, 3)) == ((0, 1, 2, 3),)     # one node: NVSwitch, no NIC


def test_background_load_leaves_only_the_headroom():
    topo = T.cluster(64, 8, "nvlink4", "ib-ndr")
    groups = tuple(tuple(t + 8 * d for d in range(8)) for t in range(8))
    assert C.all_reduce(topo, groups, 0.95).seconds_per_byte == exactly(
        C.all_reduce(topo, groups, 0.0).seconds_per_byte / 0.05)


def test_oversubscribed_spine_becomes_the_bottleneck():
    # 4 leaves of 16 NICs; 16 concurrent cross-leaf rings load each leaf uplink with
    # 16 x 2(n-1)/n bytes per byte against 16 x 50 GB/s / 4 of capacity.
    topo = T.cluster(64, 4, "nvlink4", "ib-ndr", oversubscription=4.0, nics_per_leaf=16)
    groups = tuple(tuple(r + 16 * k for k in range(4)) for r in range(16))
    plan = C.all_reduce(topo, groups)
    assert plan.bottleneck[0] in (("spine",), ) or plan.bottleneck[1] == ("spine",)
    assert plan.seconds_per_byte == exactly(16 * 2 * 3 / 4 / (16 * IB / 4))


def test_shared_radio_is_one_channel():
    plan = C.all_reduce(T.star(16, "wifi"), (tuple(range(16)),))
    assert plan.bottleneck_link == "wifi"
    assert plan.seconds_per_byte == exactly(min(16 * 2 * 15 / 16, 2 * 16) / 25e6)


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
