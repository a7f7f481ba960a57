"""ZeRO-3's working set against PyTorch's FSDP2, measured.

A stack of linear layers, each its own FSDP2 unit, is trained for one step on 2 and on 4 CPU
ranks (gloo) under PyTorch's MemTracker. At the step's peak, what the tracker files as
temporary (neither the sharded parameters and gradients nor activations) is FSDP2's working
set: the gathered weights and the gradient buffers. It is compared with
:func:`trainwall.optimizer.memory.zero3_working_set` on the units' sizes, in fp32 and with
bf16 weights reduced in fp32 (``MixedPrecisionPolicy``, as torchtitan trains).
"""

from __future__ import annotations

import json

import pytest

from trainwall.optimizer.memory import zero3_working_set

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed._tools.mem_tracker")

from torch_truth import join_gloo, on_ranks  # noqa: E402

#: Each case: the layers' widths (unit l maps widths[l] to widths[l + 1]) and whether the
#: weights are bf16 (reduced in fp32).
CASES = [((256, 256, 256, 256, 256), False), ((256, 256, 256, 256, 256), True),
         ((256, 512, 256, 256, 256), False), ((256, 512, 256, 256, 256), True),
         ((512, 256, 256, 256, 256), False), ((256, 256, 256, 256, 512), True),
         ((256, 256, 256, 512, 256), True)]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed._tools.mem_tracker import MemTracker
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    join_gloo(rank, world, port)
    mesh, peaks = init_device_mesh("cpu", (world,)), []
    for widths, bf16 in CASES:
        torch.manual_seed(0)
        units = [torch.nn.Linear(a, b, bias=False) for a, b in zip(widths, widths[1:])]
        model = torch.nn.Sequential(*units)
        policy = {"mp_policy": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)} \
            if bf16 else {}
        for unit in units:
            fully_shard(unit, mesh=mesh, **policy)
        fully_shard(model, mesh=mesh, **policy)
        tracker = MemTracker()
        tracker.track_external(model)
        with tracker:
            model(torch.randn(2, widths[0])).sum().backward()
        snapshot = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
        peaks.append(next(v for k, v in snapshot.items() if getattr(k, "name", "") == "TEMP"))
    if rank == 0:
        with open(out, "w") as f:
            json.dump(peaks, f)
    dist.destroy_process_group()


def _measured(world: int, tmp_path) -> list[int]:
    out = str(tmp_path / f"peaks-{world}.json")
    on_ranks(_worker, world, out)
    with open(out) as f:
        return json.load(f)


@pytest.mark.parametrize("world", [2, 4])
def test_the_working_set_is_fsdp2s(world, tmp_path):
    """Equal units: exact (to the tracker's few small buffers, under 1 %); unequal units: never
    below the measurement, and above it by at most half the largest unit's fp32 gradients."""
    for (widths, bf16), measured in zip(CASES, _measured(world, tmp_path)):
        params = [a * b for a, b in zip(widths, widths[1:])]
        weights = [p * (2 if bf16 else 4) for p in params]
        gradients = [p * 4 for p in params]                  # reduced in fp32
        model = sum(zero3_working_set(weights, gradients, world))
        if len(set(params)) == 1:
            assert model == pytest.approx(measured, rel=0.01), (widths, bf16)
        else:
            assert measured * 0.99 <= model <= measured + max(gradients) / 2, (widths, bf16, model, measured)
