"""Measurements on real PyTorch models: the independent ground truth for the cost model.

Each function runs the model on the CPU and reports what PyTorch itself counts:
``numel`` of the parameters, the bytes ``torch.optim`` allocates, the FLOPs
``FlopCounterMode`` sees in forward + backward, and the bytes of every distinct
storage autograd saves for backward (``saved_tensors_hooks``), parameters and
buffers excluded (they are counted as weights, not activations), or the most it holds at
once; and runs a function on several CPU ranks in a gloo process group (the distributed
measurements).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def optimizer_state_bytes(model: torch.nn.Module, optimizer: str) -> int:
    """Bytes of every tensor in the optimizer's state after one step."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=1e-3),
           "momentum": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9),
           "adam": lambda: torch.optim.Adam(params, lr=1e-3)}[optimizer]()
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    return sum(t.numel() * t.element_size() for state in opt.state.values()
               for t in state.values() if isinstance(t, torch.Tensor))


def _loss(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    out = model(**inputs)
    logits = out.logits if hasattr(out, "logits") and out.logits is not None else None
    if logits is None:
        return out.last_hidden_state.sum() + out.pooler_output.sum()
    if logits.dim() == 3:  # language model: cross-entropy over every position
        labels = inputs["input_ids"]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    return torch.nn.functional.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))


def train_flops(model: torch.nn.Module, inputs: dict) -> int:
    """Forward + backward FLOPs counted by FlopCounterMode (matmuls and convolutions)."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        _loss(model, inputs).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def saved_activation_bytes(model: torch.nn.Module, inputs: dict) -> int:
    """Bytes of distinct storages autograd saves for backward, parameters and buffers excluded."""
    model.train()
    excluded = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in excluded and t.numel() > 1:  # scalars (a loss scale, a 0-d constant) are not activations
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _loss(model, inputs)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def peak_saved_bytes(parameters, step) -> int:
    """The most bytes of distinct tensors autograd holds at once for the backward while
    ``step()`` runs (``parameters`` left out): a tensor counts from when a graph saves it until
    every graph holding it lets it go."""
    import weakref

    excluded = {p.untyped_storage().data_ptr() for p in parameters}
    live, refs = {"now": 0, "peak": 0}, {}

    def release(ptr: int, n: int) -> None:
        refs[ptr] -= 1
        if not refs[ptr]:
            del refs[ptr]
            live["now"] -= n

    class Held:
        def __init__(self, t):
            self.t, ptr = t, t.untyped_storage().data_ptr()
            if ptr in excluded:
                return
            n = t.untyped_storage().nbytes()
            if ptr not in refs:
                refs[ptr] = 0
                live["now"] += n
                live["peak"] = max(live["peak"], live["now"])
            refs[ptr] += 1
            weakref.finalize(self, release, ptr, n)

    with torch.autograd.graph.saved_tensors_hooks(Held, lambda held: held.t):
        step()
    return live["peak"]


def on_ranks(worker, world: int, *args) -> None:
    """Run ``worker(rank, world, port, *args)`` in ``world`` processes (CPU), ``port`` a free one
    for :func:`join_gloo`."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(world, port, *args), nprocs=world)


def join_gloo(rank: int, world: int, port: int) -> None:
    """This process's place in a CPU process group of ``world`` ranks (gloo) on ``port``."""
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
