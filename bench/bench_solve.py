"""Benchmark: each shipped mission's solve (build + first solve, warm re-solve) beside the
exhaustive evaluator on the same mission, and `trainwall solve` wall time from a cold start.

Targets (issue 3): every mission solves to proven optimality in under 1 s warm on the
2-core machine; the part-3 cloud mission covers at least 10^5 configurations; layer
selection covers at least 2^40 (cloud/1: 2^82 per mode); `trainwall solve cloud/3`
under 3 s wall. Part 1 beyond 2^12 selections per mode is certified by the Pareto DP.
Run: python bench/bench_solve.py
"""

import subprocess
import sys
import time

from trainwall.challenges.mission import mission, shipped_ids
from trainwall.optimizer import certify
from trainwall.optimizer.pipeline_race import PipelineRaceModel, pipeline_mode
from trainwall.optimizer.scaling_wall import ScalingWallModel, modes_space, scaling_modes
from trainwall.optimizer.state_audit import StateAuditModel, mode_table


def part1(m):
    tables = [mode_table(m, c) for c in m.modes()]
    free = sum(p > 0 for p in tables[0].params)
    space = len(tables) * 2 ** free if m.select_layers else len(tables)
    return StateAuditModel(m, tables), lambda: certify.state_audit(m, tables), f"{space:,} ({len(tables)} modes x 2^{free})"


def part2(m):
    modes = [pipeline_mode(m, c) for c in m.modes()]
    _, span = m.integer_decision
    return PipelineRaceModel(m, modes), lambda: certify.pipeline_race(m, modes), \
        f"{len(modes) * (span.max - span.min + 1):,}"


def part3(m):
    modes, invalid = scaling_modes(m)
    valid = sum(md.m_hi - md.m_lo + 1 for md in modes)
    return ScalingWallModel(m, modes), lambda: certify.scaling_wall(m, modes), \
        f"{modes_space(m):,} listed, {valid:,} valid ({len(modes)} modes, {invalid} invalid)"


for mid in shipped_ids():
    m = mission(mid)
    t0 = time.perf_counter()
    model, exhaustive, space = {1: part1, 2: part2, 3: part3}[m.part](m)
    model.solve()
    cold = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.solve()
    warm = time.perf_counter() - t1
    t2 = time.perf_counter()
    ex = exhaustive()
    ex_s = time.perf_counter() - t2
    print(f"{mid}: {space} configurations; build + first solve {cold:.3f} s, warm re-solve {warm:.3f} s "
          f"(target < 1 s); certifier ({ex.method}): {ex.configurations:.4g} configurations in {ex_s:.3f} s")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainwall.cli", "solve", mid], capture_output=True, check=False)
    print(f"  trainwall solve {mid}: {time.perf_counter() - t:.2f} s wall (includes certification and binding checks)")
