"""Benchmark: cost-model evaluations per second (Llama-3-70B on 1,024 H100) and a cold CLI evaluate.

Goals: >= 10,000 in-process ``evaluate(config)`` per second on examples/cloud.toml (the
step structure is cached per resolved plan; only what the global batch and the stability
settings change is recomputed), and a cold ``trainwall evaluate examples/cloud.toml`` (a
new process: imports, parsing, one evaluation) <= 0.3 s wall. Measured on the 2-core
development machine before the cost model became a package (commit 8f29351): 3,846
evaluations/s and 0.335 s.
Run: python bench/bench_evaluate.py
"""

import subprocess
import sys
import time
from pathlib import Path

from trainwall.core.config import load_config
from trainwall.optimizer.costmodel import evaluate

ROOT = Path(__file__).resolve().parents[1]
RATE_GOAL, COLD_GOAL = 10_000, 0.3

config = load_config(ROOT / "examples" / "cloud.toml")
evaluate(config)  # warm the caches (network, routes, collective plans, the step structure)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < 2.0:
    evaluate(config)
    n += 1
rate = n / (time.perf_counter() - start)
print(f"evaluate(llama-3-70b on 1024 x h100): {rate:,.0f} evaluations/s "
      f"(goal >= {RATE_GOAL:,}: {'met' if rate >= RATE_GOAL else 'NOT met'})")
walls = []
for _ in range(5):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainwall.cli", "evaluate", str(ROOT / "examples" / "cloud.toml")],
                   capture_output=True, check=False)
    walls.append(time.perf_counter() - t)
cold = min(walls)
print(f"trainwall evaluate examples/cloud.toml: {cold:.3f} s wall, best of 5 "
      f"(goal <= {COLD_GOAL} s: {'met' if cold <= COLD_GOAL else 'NOT met'})")
