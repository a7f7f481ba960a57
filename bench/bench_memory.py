"""Benchmark: memory of a long-running process that evaluates many device counts.

A server (the web workbench: one process, many students, a devices slider) must not
grow without bound. This evaluates ``examples/cloud.toml`` (Llama-3-70B, tensor 8 x
pipeline 4) at 128 device counts, 32 to 4,096 GPUs (data parallelism derived, the
global batch kept at the example's 32 micro-batches per pipeline), and prints the peak
resident set size before and after (goal: under 300 MB), then empties every registered
cache (:func:`trainwall.core.caches.clear_all`) and prints what is left.

Run: python bench/bench_memory.py   (exit status 1 when the goal is missed)
"""

from __future__ import annotations

import gc
import resource
import sys
import time
from pathlib import Path

from trainwall.core.caches import CacheInfo, clear_all, info
from trainwall.core.config import Config, load_config, parse_config
from trainwall.optimizer.costmodel import evaluate

ROOT = Path(__file__).resolve().parents[1]
COUNTS = 128
GOAL_MB = 300.0


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def rss_mb() -> float | None:
    """The resident set size now (Linux's /proc; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 2**20


def at_devices(base: Config, data: dict, multiple: int) -> Config:
    """``base`` on ``multiple`` x (tensor x pipeline) devices: data parallelism derived, the
    same number of micro-batches per pipeline per step."""
    t = base.training
    new = {section: dict(values) for section, values in data.items()}
    new["system"]["devices"] = t.tensor_parallel * t.pipeline_parallel * multiple
    new["training"].pop("data_parallel", None)
    new["training"]["global_batch"] = t.micro_batch * multiple * base.micro_batches
    return parse_config(new, f"examples/cloud.toml at {new['system']['devices']} devices")


def summary(caches: list[CacheInfo]) -> str:
    """How many caches, how many entries in all, how many are full."""
    full = sum(c.size >= c.maxsize for c in caches)
    return f"{len(caches)} registered caches, {sum(c.size for c in caches):,} entries, {full} at their bound"


def main() -> int:
    base = load_config(ROOT / "examples" / "cloud.toml")
    data = base.model_dump(exclude_none=True)
    before = peak_rss_mb()
    start = time.perf_counter()
    for multiple in range(1, COUNTS + 1):
        evaluate(at_devices(base, data, multiple))
    seconds = time.perf_counter() - start
    after = peak_rss_mb()
    first, last = (at_devices(base, data, k).system.devices for k in (1, COUNTS))
    print(f"evaluate(examples/cloud.toml) at {COUNTS} device counts ({first:,} .. {last:,} GPUs): {seconds:.1f} s")
    verdict = "met" if after < GOAL_MB else "MISSED"
    print(f"peak RSS: {before:.1f} MB before, {after:.1f} MB after (goal: under {GOAL_MB:.0f} MB: {verdict})")
    caches = info()
    print(summary(caches) + ":")
    for c in caches:
        print(f"  {c.name:<60} {c.size:>7,} / {c.maxsize:,}")
    held = rss_mb()
    clear_all()
    gc.collect()  # networkx graphs refer to themselves (their views): freed by the collector
    freed = rss_mb()
    if held is not None and freed is not None:
        print(f"clear_all(): RSS {held:.1f} MB -> {freed:.1f} MB (the peak stays {peak_rss_mb():.1f} MB)")
    print(f"after clear_all(): {summary(info())}")
    return 0 if after < GOAL_MB else 1


if __name__ == "__main__":
    sys.exit(main())
