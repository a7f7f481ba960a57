"""The pipeline schedules' in-flight activations against PyTorch's own schedules, measured.

Each pipeline rank runs ``torch.distributed.pipelining``'s ``Schedule1F1B`` or
``ScheduleInterleaved1F1B`` (CPU, gloo) over model chunks that each keep exactly one known
tensor set per micro-batch (a copy of their input, then linear layers, which keep their
inputs), and counts the bytes autograd holds for the backward at their peak
(``saved_tensors_hooks``: a tensor counts until the graph lets it go). That peak, in chunk
forwards, is what :mod:`trainwall.optimizer.costmodel.schedule` says a rank holds: 1F1B's
min(p - i, m) micro-batches, and the interleaved schedule's min(W_i + 1, m v) chunk forwards
(W_i = 2 (p - i - 1) + (v - 1) p, Megatron-LM's warm-up, which PyTorch's schedule follows).
"""

from __future__ import annotations

import json

import pytest

from trainwall.optimizer.costmodel.schedule import Interleaved, OneFOneB

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.pipelining")

from torch_truth import join_gloo, on_ranks, peak_saved_bytes  # noqa: E402

H, B, K = 64, 4, 3                        # width, rows per micro-batch, linear layers per chunk
CHUNK_BYTES = K * B * H * 4               # what one chunk keeps per micro-batch (fp32)
RUNS = {2: [(1, 4), (1, 8), (2, 4), (2, 8)], 4: [(1, 4), (1, 8), (2, 8), (2, 12)]}   # per p: (v, m), m >= p


class _Copy(torch.nn.Module):
    """A fresh tensor from the input (a product by a constant keeps nothing for the backward),
    so the first linear layer keeps a tensor of its own, not a view of the whole batch."""

    def forward(self, x):
        return x * 1.0


def _worker(rank: int, p: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleInterleaved1F1B

    join_gloo(rank, p, port)
    peaks = []
    for v, m in RUNS[p]:
        torch.manual_seed(0)
        chunks = [torch.nn.Sequential(_Copy(), *(torch.nn.Linear(H, H, bias=False) for _ in range(K)))
                  for _ in range(v)]
        stages = [PipelineStage(chunk, rank + p * j, p * v, torch.device("cpu")) for j, chunk in enumerate(chunks)]
        loss = lambda out, target: out.sum()          # noqa: E731  (keeps nothing for the backward)
        schedule = (Schedule1F1B(stages[0], m, loss_fn=loss) if v == 1
                    else ScheduleInterleaved1F1B(stages, m, loss_fn=loss))
        x = torch.randn(B * m, H)

        def step():
            if rank == 0:
                schedule.step(x)
            elif rank == p - 1:
                schedule.step(target=torch.zeros(B * m, H), losses=[])
            else:
                schedule.step()
        step()                                        # the first step also infers shapes
        peaks.append(peak_saved_bytes([q for stage in stages for q in stage.submod.parameters()], step))
    gathered = [None] * p
    dist.all_gather_object(gathered, peaks)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(gathered, f)
    dist.destroy_process_group()


@pytest.mark.parametrize("p", sorted(RUNS))
def test_each_rank_holds_what_the_schedule_says(p, tmp_path):
    out = tmp_path / "peaks.json"
    on_ranks(_worker, p, str(out))
    measured = json.loads(out.read_text())            # [rank][run] bytes
    for run, (v, m) in enumerate(RUNS[p]):
        schedule = OneFOneB(p) if v == 1 else Interleaved(p, v)
        for rank in range(p):
            chunk_forwards = measured[rank][run] / CHUNK_BYTES
            assert chunk_forwards == pytest.approx(float(schedule.in_flight(rank, m) * v), abs=1e-9), (v, m, rank)
