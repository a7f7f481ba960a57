"""Benchmark: cost-model evaluations per second (Llama-3-70B cluster) and CLI start-up.

Targets (issue 2): >= 2,000 evaluations/s in-process; `trainwall evaluate` < 1 s wall.
Run: python bench/bench_evaluate.py
"""

import subprocess
import sys
import time
from pathlib import Path

from trainwall.core.config import load_config
from trainwall.optimizer.costmodel import evaluate

ROOT = Path(__file__).resolve().parents[1]
config = load_config(ROOT / "examples" / "cloud.toml")
evaluate(config)  # warm the caches (networks, routes, collective plans)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < 2.0:
    evaluate(config)
    n += 1
rate = n / (time.perf_counter() - start)
print(f"evaluate(llama-3-70b on 1024 x h100): {rate:,.0f} evaluations/s (target >= 2,000)")
walls = []
for _ in range(3):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainwall.cli", "evaluate", str(ROOT / "examples" / "cloud.toml")],
                   capture_output=True, check=False)
    walls.append(time.perf_counter() - t)
print(f"trainwall evaluate examples/cloud.toml: {min(walls):.3f} s wall, best of 3 (target < 1 s)")
