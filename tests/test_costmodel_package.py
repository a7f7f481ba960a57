"""The cost-model package's contracts: resolution at the boundary, the 1F1B schedule, the
cached step structure and its key, the wall verdicts, the direct max-flow, bounded caches."""

from __future__ import annotations

import ast
import dataclasses
import math
import random
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from trainwall.core.config import parse_config
from trainwall.core.errors import InputError
from trainwall.optimizer.compute import layer_cost
from trainwall.optimizer.costmodel import (Memory, OneFOneB, evaluate, resolve, step_structure, structure_of,
                                           violations)
from trainwall.optimizer.datapipe import STAGES, flow_graph, solve_flow
from trainwall.optimizer.stability import check

PACKAGE = Path(__file__).resolve().parent.parent / "optimizer" / "costmodel"


def llama(**training) -> dict:
    return {"workload": {"model": "llama-3-8b", "seq_len": 2048},
            "system": {"accelerator": "h100-sxm", "devices": 16},
            "training": {"micro_batch": 1, "tensor_parallel": 2, "pipeline_parallel": 2, "data_parallel": 4,
                         "global_batch": 32, **training}}


def test_direct_max_flow_equals_networkx_minimum_cut():
    """Random capacities, many tied or unbounded: the same rate and the same cut edge
    (networkx's: the last of the smallest capacity) as networkx's max-flow on the graph."""
    rng = random.Random(2024)
    pool = [1.0, 2.0, 5.0, 5.0, math.inf, 1e299, 1e301]
    for _ in range(1000):
        caps = [rng.choice(pool) if rng.random() < 0.6 else rng.uniform(0.1, 100.0) for _ in STAGES]
        g = flow_graph(dict(zip(STAGES, caps)))
        rate, (reachable, _) = nx.minimum_cut(g, "source", "sink")
        cut = next((d["stage"] for u, v, d in g.edges(data=True)
                    if d["stage"] and u in reachable and v not in reachable), "compute")
        flow = solve_flow(*caps)
        assert (flow.rate, flow.bottleneck) == (rate, cut), caps


def test_every_stage_unbounded_leaves_compute_the_longest_pole():
    flow = solve_flow(*[math.inf] * 4)
    assert flow.bottleneck == "compute" and flow.rate == 1e300


@pytest.mark.parametrize("training,field", [
    ({"tensor_parallel": 3, "data_parallel": 4, "pipeline_parallel": 1}, "training.tensor_parallel"),
    ({"precision": "fp8-mixed"}, None),
    ({"trainable": "last:0"}, "training.trainable"),
    ({"trainable": [0, 0]}, "training.trainable"),
])
def test_resolve_checks_the_training_section(training, field):
    data = llama(**training)
    data["system"]["devices"] = 3 * 4 if training.get("tensor_parallel") == 3 else 16
    if training.get("precision") == "fp8-mixed":
        data["system"]["accelerator"], field = "a100-sxm-80gb", "training.precision"
    config = parse_config(data, "t")
    with pytest.raises(InputError) as err:
        resolve(config)
    assert err.value.field == field


def test_resolve_checks_the_workload_and_the_system():
    cnn = {"workload": {"model": "resnet-18"}, "system": {"accelerator": "h100-sxm", "devices": 2},
           "training": {"tensor_parallel": 2}}
    deep = {"workload": {"model": "resnet-18"}, "system": {"accelerator": "h100-sxm", "devices": 64},
            "training": {"pipeline_parallel": 64}}
    single = llama()
    single["system"]["topology"] = "single"
    cases = [(cnn, "applies to transformers"), ({**cnn, "workload": {"model": "resnet-18", "seq_len": 128}},
             "sequence models only"), (deep, "must be at most the"), (single, "holds one device")]
    for data, message in cases:
        config = parse_config(data, "t")
        with pytest.raises(InputError, match=message):
            resolve(config)


def test_the_structure_is_cached_by_what_it_reads():
    base = step_structure(parse_config(llama(), "t"))
    same = llama(global_batch=64, gradient_clipping=True, loss_scaling="dynamic", loss_scale=1024.0)
    assert step_structure(parse_config(same, "t")) is base
    assert step_structure(parse_config(llama(micro_batch=2, global_batch=64), "t")) is not base
    other_link = llama()
    other_link["system"]["background_network_load"] = 0.5
    assert step_structure(parse_config(other_link, "t")) is not base


def test_a_what_if_device_is_part_of_the_key():
    config = parse_config(llama(), "t")
    plan = resolve(config)
    slower = dataclasses.replace(plan.device, gemm_efficiency=plan.device.gemm_efficiency / 2)
    assert structure_of(resolve(config, slower)).t_stage > structure_of(plan).t_stage


def test_one_f_one_b_bubble_and_in_flight():
    s = OneFOneB(4)
    assert [s.in_flight(i, 2) for i in range(4)] == [2, 2, 2, 1]
    assert list(s.in_flight(0, np.arange(1, 6))) == [1, 2, 3, 4, 4]
    assert s.bubble_s(0.5) == 1.5 and s.bubble_fraction(8) == pytest.approx(3 / 11)
    config = parse_config(llama(pipeline_parallel=2, global_batch=32), "t")
    st, m = step_structure(config), evaluate(config)
    assert m.time.bubble_s == st.t_stage == st.fixed_s - st.optimizer_s - st.dp_exposed_fixed_s


def test_structure_methods_agree_on_numbers_and_arrays():
    """The certifier evaluates every m as one array; evaluate one m as a number."""
    data = llama(zero_stage=3)
    data["data"] = {"workers": 1, "augmentation": "none"}
    st = step_structure(parse_config(data, "t"))
    ms = np.arange(1, 9)
    for method in (st.busy_s, st.stall_s, st.step_s, st.network_utilization, st.mfu, st.memory_total):
        assert list(method(ms)) == [method(int(m)) for m in ms]


def test_verdicts_keep_their_order_and_messages():
    memory = Memory(1.0, 1.0, 1.0, 1.0, 0.0, 5e9, 4e9, flash=3.0, flash_capacity=2.0)
    stab = check("fp16-mixed", "none", 1.0, False, 16384, 3e-10, 1e1, 1e3, 8192)
    walls = violations(memory, 1.5, 0.25, stab, mcu=True)
    assert [w.constraint for w in walls] == ["memory", "flash", "network", "stability", "stability"]
    assert walls[0].message == "needs 5e+09 B per device, has 4e+09 B"
    assert walls[2].message == "traffic plus the 25% background load needs 150% of the busiest link"
    assert violations(memory, 1.0, 0.0, check("bf16-mixed", "none", 1.0, True, 1, 3e-10, 1e1, 1e3, 8192),
                      mcu=False) == walls[:1]


def test_layer_costs_are_keyed_on_contents_not_identity():
    plan = resolve(parse_config(llama(), "t"))
    block = plan.network.layers[1]
    twin = dataclasses.replace(block, name="a copy")
    args = (True, True, 1, plan.rates, "none", 2, True)
    assert layer_cost(twin, *args) is layer_cost(block, *args)


def test_no_function_in_the_package_is_over_60_lines():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 60, f"{path.name}:{node.name}"


def test_the_package_caches_are_bounded_and_registered():
    from trainwall.core import caches

    names = {c.name: c.maxsize for c in caches.info()}
    for name in ("trainwall.optimizer.costmodel.structure.structure_of",
                 "trainwall.optimizer.compute._ops_cost", "trainwall.optimizer.memory._saved_bytes"):
        assert 0 < names[name] < 100_000


# --- network traffic, link by link ------------------------------------------------------------------

def test_envelope_keeps_the_links_that_can_be_busiest():
    from trainwall.optimizer.costmodel.communication import envelope

    links = [(1.0, 0.0), (0.5, 2.0), (0.5, 1.0), (0.2, 2.0), (1.0, 0.0), (0.0, 3.0), (0.9, -1.0)]
    assert envelope(links) == ((1.0, 0.0), (0.5, 2.0), (0.0, 3.0))
    m = np.arange(0, 20)
    assert np.array_equal(np.max([a * m + b for a, b in envelope(links)], axis=0),
                          np.max([a * m + b for a, b in links], axis=0))


@pytest.mark.parametrize("tp, pp, dp, zero", [(8, 4, 32, 1), (4, 8, 16, 1), (2, 16, 8, 3), (8, 1, 64, 1),
                                               (1, 8, 64, 1)])
def test_network_traffic_is_the_busiest_single_link(tp, pp, dp, zero):
    """Traffic is summed link by link over the step's collectives and the busiest link read:
    at least any one collective's busiest link, at most the sum of every collective's busiest
    link (what the model once reported, adding two different NICs together)."""
    from trainwall.hardware import collectives
    from trainwall.optimizer.costmodel.layout import parallel_groups

    config = parse_config({"workload": {"model": "llama-3-70b", "seq_len": 8192},
                           "system": {"accelerator": "h100-sxm", "devices": tp * pp * dp},
                           "training": {"precision": "bf16-mixed", "tensor_parallel": tp, "pipeline_parallel": pp,
                                        "data_parallel": dp, "zero_stage": zero, "micro_batch": 1,
                                        "global_batch": 4 * dp, "recompute": "full"}})
    plan = resolve(config)
    st = structure_of(plan)
    tp_groups, dp_groups, pp_pairs, _ = parallel_groups(tp, dp, pp)
    plans = [collectives.all_reduce(plan.topology, tp_groups), collectives.point_to_point(plan.topology, pp_pairs),
             (collectives.all_gather if zero >= 3 else collectives.all_reduce)(plan.topology, dp_groups)]
    crossing = [p for p in plans if p.network_shares]
    m = np.arange(1, 9)
    traffic = st.network_traffic(m)
    assert traffic.shape == m.shape and np.all(traffic >= 0)
    if not crossing:
        assert not st.network_links and np.all(traffic == 0)
        return
    per_link = [a * m + b for a, b in st.network_links]
    assert np.array_equal(traffic, np.max(per_link, axis=0))
    assert len(st.network_links) <= sum(len(p.network_shares) for p in crossing)
