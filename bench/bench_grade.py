"""Benchmark: grading throughput and variant generation (issue 4).

Targets, on the project's 2-core machine:
  * a class of 1,000 submissions graded by `trainwall grade DIR` in under 30 s wall, with a
    peak RSS that stays flat with the class size (issue 18: a class of 10^5 with
    --students 100000); a re-run keeps every current result;
  * 100 certified variants of cloud/3 by `trainwall generate` in under 60 s wall, and one
    certified cloud/3 variant in under 0.3 CPU-seconds once a process is warm (issue 18).

The class mixes four missions (cloud/3, cloud/2, mobile/1, tiny/3), random plans drawn
from each mission's decisions (feasible, infeasible and malformed ones) and 5 % garbage.
Run: python bench/bench_grade.py [--students 1000] [--variants 100] [--ray]
"""

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainwall.challenges import grading
from trainwall.challenges.mission import IntRange, mission

MISSIONS = ("cloud/3", "cloud/2", "mobile/1", "tiny/3")
#: Draws that warm a process (cloud/3's variants draw three fabric loads).
WARM_DRAWS = 6
#: bench_variant_cpu's figures at commit e14abc6 (before issue 18's item 2), measured the same
#: way on the project's 2-core machine: Pyomo's persistent interface, one MILP for every question.
BEFORE = "before: 1.62 for the first 6, then 0.882 over 40, at e14abc6"
#: `trainwall grade`, then its process's own peak RSS (Linux's VmHWM, which, unlike ru_maxrss,
#: does not carry the forking parent's peak over exec).
PEAK = ("import sys\nfrom trainwall.cli import main\ncode = main(sys.argv[1:])\n"
        "print('VmHWM', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
        "sys.exit(code)")


def random_submission(rng: random.Random, student: str) -> str:
    if rng.random() < 0.05:
        return rng.choice(["", "{not json", "mission = 3", "\x00\x01garbage"])
    m = mission(rng.choice(MISSIONS))
    chosen: dict[str, dict] = {"training": {}, "data": {}}
    for field, values in m.decisions.items():
        section, name = field.split(".")
        if name == "micro_batches":
            continue
        value = rng.randint(values.min, values.max) if isinstance(values, IntRange) else rng.choice(values)
        chosen[section][name] = value
    if m.part == 3:
        t = chosen["training"]
        t["global_batch"] = rng.choice([1, 2, 4, 8, 16]) * t.get("data_parallel", 1) * t.get("micro_batch", 1)
    answers = m.lock_answers()
    predictions = {k: v * rng.choice([1.0, 1.0, 1.3]) for k, v in answers.items()}
    return json.dumps({"mission": m.id, "student": student, "configuration": chosen, "predictions": predictions})


def bench_grading(students: int) -> None:
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(students):
            (folder / f"s{i:05d}.json").write_text(random_submission(rng, f"s{i:05d}"))
        files = sorted(folder.iterdir())
        source = grading.MissionSource()
        for path in files[:50]:                       # warm: each mission's optimum solved once
            grading.grade_file(path, source)
        start = time.perf_counter()
        grades = [grading.grade_file(path, source) for path in files]
        warm = time.perf_counter() - start
        graded = sum(g.gradable for g in grades)
        print(f"grade_file, warm, one process: {students / warm:,.0f} submissions/s "
              f"({graded} gradable, {sum(bool(g.feasible) for g in grades)} feasible)")
        for run in ("first run", "re-run, every result current"):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", PEAK, "grade", str(folder), "--format", "gradescope",
                                   "--output", str(Path(tmp) / "results")], capture_output=True, text=True)
            wall = time.perf_counter() - start
            assert done.returncode == 0, done.stderr
            peak = int(done.stdout.split("VmHWM")[-1].split()[0]) / 1024
            print(f"trainwall grade DIR, {run} ({students} submissions, every core, solves included): {wall:.1f} s "
                  f"wall = {students / wall:,.0f} submissions/s (target < 30 s for 1,000); peak RSS {peak:.0f} MiB "
                  f"(streaming: flat with the class size; try --students 100000)")


def children_cpu_s() -> float:
    """CPU-seconds (user + system) of every finished child process and its children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_variants(count: int, backend: str = "local") -> float:
    """``trainwall generate cloud/3 --count COUNT`` on ``backend``: its wall seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), children_cpu_s()
        done = subprocess.run([sys.executable, "-m", "trainwall.cli", "generate", "cloud/3", "--count", str(count),
                               "--seed", "1", "--out", str(Path(tmp) / "v"), "--backend", backend],
                              capture_output=True, text=True)
        wall, cpu = time.perf_counter() - start, children_cpu_s() - cpu
        assert done.returncode == 0, done.stderr
        keys = [json.loads(p.read_text()) for p in (Path(tmp) / "v" / "keys").glob("*.json")]
        distinct = len({json.dumps(k["mission"]["scenario"], sort_keys=True) + json.dumps(k["mission"]["limits"])
                        + json.dumps(k["mission"]["objective"]) for k in keys})
        print(f"trainwall generate cloud/3 --count {count} --backend {backend}: {wall:.1f} s wall, "
              f"{count / wall:.2f} variants/s "
              f"({distinct} distinct scenarios solved and certified; {done.stdout.strip()}) (target < 60 s)")
        if backend == "local":         # a Ray instance's workers are not this process's children
            print(f"  CPU: {cpu:.1f} s in all processes = {cpu / count:.2f} CPU-s per variant delivered "
                  f"(start-up, each worker's warm-up and the redrawn variants included)")
    return wall


def bench_variant_cpu(draws: int) -> None:
    """CPU-seconds per certified cloud/3 variant in one process (issue 18's goal: under 0.3): the
    first draws, which compute every mode's structure at each fabric load the variants draw, then
    ``draws`` more (solved, certified, assessed: :func:`~trainwall.challenges.variants.solve_draw`)."""
    from trainwall.challenges import variants

    m = mission("cloud/3")
    start = time.process_time()
    for i in range(WARM_DRAWS):
        variants.solve_draw(variants.draw(m, 1, f"warm-{i}", 0))
    first = (time.process_time() - start) / WARM_DRAWS
    start = time.process_time()
    for i in range(draws):
        variants.solve_draw(variants.draw(m, 2, f"student-{i}", 0))
    steady = (time.process_time() - start) / draws
    print(f"one certified cloud/3 variant: {first:.2f} CPU-s each for a process's first {WARM_DRAWS}, then "
          f"{steady:.3f} CPU-s each over {draws} (target < 0.3; {BEFORE})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--ray", action="store_true",
                        help="also generate the variants with --backend ray on a local Ray instance, and compare")
    args = parser.parse_args()
    if args.students:
        bench_grading(args.students)
    if args.variants:
        bench_variant_cpu(args.variants)
        local = bench_variants(args.variants)
        if args.ray:
            ray = bench_variants(args.variants, "ray")
            print(f"Ray local / process pool: {ray / local:.2f} x the wall time (the same files; a local Ray "
                  f"instance's start, about 3 s, included)")
