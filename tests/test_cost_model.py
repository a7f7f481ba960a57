"""The cost model's pieces checked by hand: data pipeline, stability rules, ZeRO-3 traffic.

Each expected value is arithmetic on catalog figures a reader can redo with the data
files open (hardware/data/*.toml, models/data/modalities.toml).
"""

import pytest

from trainwall.core.config import parse_config
from trainwall.hardware.catalog import device, link
from trainwall.models.catalog import workload
from trainwall.optimizer import stability
from trainwall.optimizer.costmodel import evaluate
from trainwall.optimizer.datapipe import solve_flow


def resnet_on_dgx(workers, augmentation="standard", devices=8):
    return parse_config({
        "workload": {"model": "resnet-50"},
        "system": {"accelerator": "h100-sxm", "devices": devices},
        "training": {"optimizer": "momentum", "precision": "bf16-mixed", "micro_batch": 256,
                     "global_batch": 256 * devices, "data_parallel": devices},
        "data": {"workers": workers, "augmentation": augmentation}}, "test")


def test_flow_is_the_smallest_capacity_and_the_cut_names_it():
    flow = solve_flow(100.0, 50.0, 200.0, 80.0)
    assert (flow.rate, flow.bottleneck) == (50.0, "cpu")
    assert solve_flow(100.0, 500.0, 200.0, 80.0).bottleneck == "compute"
    assert solve_flow(10.0, 500.0, 200.0, 80.0).bottleneck == "storage"


def test_one_worker_starves_eight_h100s():
    m = evaluate(resnet_on_dgx(workers=1))
    # one Xeon core at 5.3 ms per standard-augmented ImageNet sample
    assert m.pipeline.capacities["cpu"] == pytest.approx(1 / 5.3e-3)
    assert m.pipeline.bottleneck == "cpu"
    assert m.time.data_stall_s > 0
    # the step is then the CPU's time for the node's 2048 samples
    assert m.time.step_s == pytest.approx(2048 * 5.3e-3)


def test_workers_are_capped_by_cores():
    capped = evaluate(resnet_on_dgx(workers=500)).pipeline.capacities["cpu"]
    assert capped == pytest.approx(112 / 5.3e-3)  # DGX H100 host: 112 cores


def test_enough_workers_leave_compute_the_longest_pole():
    m = evaluate(resnet_on_dgx(workers=112, augmentation="none"))
    assert m.pipeline.bottleneck == "compute"
    assert m.time.data_stall_s == 0


@pytest.mark.parametrize("precision,scaling,batch,clip,stable", [
    ("fp16-mixed", "none", 256, True, False),     # image gradients down to 3e-10 < 2^-24
    ("fp16-mixed", "dynamic", 256, True, True),
    ("bf16-mixed", "none", 256, True, True),      # fp32's exponent range
    ("bf16-mixed", "none", 16384, False, False),  # beyond the critical batch 8192, no clipping
    ("bf16-mixed", "none", 16384, True, True),
])
def test_stability_rules(precision, scaling, batch, clip, stable):
    report = stability.check(precision, scaling, 1.0, clip, batch, 3e-10, 1e1, 1e3, 8192)
    assert report.stable is stable


def test_static_loss_scale_must_lift_gradients_into_fp16():
    low = stability.check("fp16-mixed", "static", 2.0 ** 4, True, 1, 3e-10, 1e1, 1e3, 8192)
    assert not low.stable and "raise the scale" in low.reasons[0]
    ok = stability.check("fp16-mixed", "static", 2.0 ** 10, True, 1, 3e-10, 1e1, 1e3, 8192)
    assert ok.stable and ok.scaled_gradient_range == pytest.approx((3e-10 * 1024, 1e1 * 1024))


def test_zero3_gathers_weights_three_times_per_micro_batch():
    """8 H100s on one NVSwitch: ring all-gather moves (n-1)/n of the bf16 weights per
    rank over NVLink 4 at NCCL's bus bandwidth, three times (forward, backward gathers;
    gradient reduce-scatter) per micro-batch."""
    config = parse_config({
        "workload": {"model": "llama-3-8b", "seq_len": 2048},
        "system": {"accelerator": "h100-sxm", "devices": 8},
        "training": {"optimizer": "adam", "precision": "bf16-mixed", "micro_batch": 2, "global_batch": 32,
                     "data_parallel": 8, "zero_stage": 3, "recompute": "full"},
        "data": {"workers": 8}}, "test")
    m = evaluate(config)
    params = m.memory.params
    nvlink = link("nvlink4")
    per_gather = 7 / 8 * params * 2 / (nvlink.bandwidth * nvlink.achievable) + 7 * nvlink.latency
    assert m.time.data_parallel_s == pytest.approx(2 * 3 * per_gather)  # 32 / (8 x 2) = 2 micro-batches
    # sharded 1/8, plus the working set at the head's backward: the head's and the last block's
    # bf16 weights (the block prefetched), the head's bf16 gradients twice (the reduce-scatter's
    # input beside them) and the scattered 1/8
    layers = workload("llama-3-8b").network(2048).layers
    head, block = layers[-1].params, layers[-2].params
    assert m.memory.weights == pytest.approx(params * 2 / 8 + (head + block) * 2, rel=1e-12)
    assert m.memory.gradients == pytest.approx(params * 2 / 8 + (2 + 1 / 8) * head * 2, rel=1e-12)


def test_zero3_gathers_nothing_without_data_parallelism_and_zero2_never():
    base = {"workload": {"model": "llama-3-8b", "seq_len": 2048}, "system": {"accelerator": "h100-sxm", "devices": 8},
            "training": {"optimizer": "adam", "precision": "bf16-mixed", "micro_batch": 1, "global_batch": 8,
                         "tensor_parallel": 8, "zero_stage": 3}, "data": {"workers": 8}}
    alone = evaluate(parse_config(base, "tp only")).memory
    assert alone.weights == pytest.approx(alone.params * 2, rel=1e-12)
    base["training"] |= {"tensor_parallel": 1, "data_parallel": 8, "zero_stage": 2}
    zero2 = evaluate(parse_config(base, "zero 2")).memory
    assert zero2.weights == pytest.approx(zero2.params * 2, rel=1e-12)
    assert zero2.gradients == pytest.approx(zero2.params * 2 / 8, rel=1e-12)


def test_reserved_compute_slows_the_edge_step():
    base = {"workload": {"model": "orin-perception"},
            "system": {"accelerator": "jetson-agx-orin-64gb", "devices": 1},
            "training": {"optimizer": "adam", "precision": "fp16-mixed", "loss_scaling": "dynamic",
                         "micro_batch": 32, "global_batch": 32}, "data": {"workers": 12, "augmentation": "none"}}
    free = evaluate(parse_config(base, "t"))
    base["system"]["reserved_compute_fraction"] = 0.3
    loop = evaluate(parse_config(base, "t"))
    assert loop.time.compute_s == pytest.approx(free.time.compute_s / 0.7)
    assert device("jetson-agx-orin-64gb").peak("fp16") == 42.5e12
