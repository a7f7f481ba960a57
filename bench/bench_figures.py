"""Benchmark: how long each figure and the Math Peek take, in-process (data + drawing) and via
the CLI (start-up included), for every track's example configuration.

Run: python bench/bench_figures.py
"""

import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainwall.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"waterfall": ["plot", "waterfall"], "compare": ["plot", "waterfall", "--compare"],
            "scaling": ["plot", "scaling"], "pipeline": ["plot", "pipeline"], "explain": ["explain"]}

with tempfile.TemporaryDirectory() as tmp:
    out = str(Path(tmp) / "figure.png")
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        main(["plot", "waterfall", str(ROOT / "examples" / "mobile.toml"), "-o", out])   # warm matplotlib
    print(f"{'track':<8}" + "".join(f"{name:>12}" for name in COMMANDS) + "   (seconds, in-process)")
    for track in ("cloud", "edge", "mobile", "tiny"):
        config = str(ROOT / "examples" / f"{track}.toml")
        row = []
        for args in COMMANDS.values():
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                main([*args[:2], config, *args[2:], "-o", out] if args[0] == "plot" else [*args, config, "-o", out])
            row.append(time.perf_counter() - start)
        print(f"{track:<8}" + "".join(f"{t:>12.2f}" for t in row))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainwall.cli", "plot", "scaling", "cloud/3", "-o", out],
                   capture_output=True, check=True)
    print(f"trainwall plot scaling cloud/3 (a mission: solves its optimum first): "
          f"{time.perf_counter() - start:.2f} s wall")
