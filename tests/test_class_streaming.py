"""Class grading streams (issue 18): results are written as grades arrive, memory does not
hold the class's grades, and an interrupted run resumes without losing or rewriting anything.

The runs here are real ``trainwall grade`` runs in a fresh Python process (the memory figure
is that process's own peak RSS, Linux's VmHWM; its grading workers are children and are not
counted), with
fsync turned off in that process: durability is not what these tests measure, and thousands
of fsyncs would only make them slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SUBMISSION = '''mission = "mobile/1"
student = "s{n:06d}"
[configuration.training]
optimizer = "{optimizer}"
recompute = "{recompute}"
trainable = "last:{layers}"
'''

RUNNER = textwrap.dedent('''
    import json, os, sys
    os.fsync = lambda fd: None                      # durability is not under test here
    from trainwall.challenges import ledger
    crash_after = int(os.environ.get("CRASH_AFTER_RECORDS", "0"))
    if crash_after:
        real_store, stored = ledger.store, [0]
        def store(out, name, entry):
            real_store(out, name, entry)
            stored[0] += 1
            if stored[0] == crash_after:             # the job killed, workers and all: no cleanup, no summary
                os.killpg(os.getpgid(0), 9)
        ledger.store = store
    from trainwall.cli import main
    code = main(sys.argv[1:])
    # this process's own peak (VmHWM: its address space's high-water mark, not inherited over exec the way
    # ru_maxrss is from the forking parent)
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"code": code, "max_rss_kb": peak}))
''')


def _class(folder: Path, count: int) -> Path:
    folder.mkdir()
    for n in range(count):
        (folder / f"s{n:06d}.toml").write_text(SUBMISSION.format(
            n=n, optimizer=("sgd", "adam")[n % 2], recompute=("none", "full")[n // 2 % 2], layers=1 + n % 7))
    return folder


def _grade(folder: Path, out: Path, crash_after: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRASH_AFTER_RECORDS": str(crash_after)}
    return subprocess.run([sys.executable, "-c", RUNNER, "grade", str(folder), "--output", str(out), "--format",
                           "json", "--jobs", "2"], capture_output=True, text=True, env=env, timeout=900,
                          start_new_session=True)


def _report(run: subprocess.CompletedProcess) -> dict:
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix in (".json", ".csv")}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc/self/status")
def test_peak_memory_does_not_grow_with_the_class(tmp_path):
    """1,000 and 10,000 submissions: the grading process's peak grows by the file listing alone
    (a path and a results name per submission, well under 1 kB), not by the grades (about
    6.5 kB each when they were all held to the end)."""
    small = _report(_grade(_class(tmp_path / "small", 1_000), tmp_path / "small-out"))
    large = _report(_grade(_class(tmp_path / "large", 10_000), tmp_path / "large-out"))
    growth_per_submission = (large["max_rss_kb"] - small["max_rss_kb"]) * 1024 / 9_000
    assert growth_per_submission < 1024, f"{growth_per_submission:.0f} bytes per submission"
    assert sum(1 for _ in (tmp_path / "large-out" / "summary.csv").open()) == 10_001


def test_a_killed_run_resumes_losing_nothing_and_rewriting_nothing_current(tmp_path):
    folder = _class(tmp_path / "class", 300)
    clean, out = tmp_path / "clean", tmp_path / "out"
    _report(_grade(folder, clean))
    killed = _grade(folder, out, crash_after=137)
    assert killed.returncode == -9 and not (out / "summary.csv").exists()
    records = sorted((out / ".trainwall" / "records").iterdir())
    assert len(records) == 137
    for name in (p.name for p in out.iterdir() if p.suffix == ".json"):
        json.loads((out / name).read_text())                       # every results file there is complete
    before = {r.stem: (out / r.stem).stat() for r in records}
    resumed = _grade(folder, out)
    _report(resumed)
    assert "137 current from an earlier run kept" in resumed.stdout
    after = _outputs(out)
    assert after == _outputs(clean)                                 # the same bytes as a run never interrupted
    for name, st in before.items():                                 # a current results file is not rewritten
        now = (out / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), name


def test_only_a_changed_submission_is_graded_again(tmp_path, capsys):
    from trainwall.cli import main

    folder, out = _class(tmp_path / "class", 12), tmp_path / "out"
    assert main(["grade", str(folder), "--output", str(out), "--format", "json", "--jobs", "1"]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    changed = folder / "s000003.toml"
    changed.write_text(changed.read_text().replace('optimizer = "adam"', 'optimizer = "sgd"'))
    capsys.readouterr()
    assert main(["grade", str(folder), "--output", str(out), "--format", "json", "--jobs", "1"]) == 0
    assert "11 current from an earlier run kept" in capsys.readouterr().out
    rewritten = {p.name for p in out.glob("*.json") if p.stat().st_mtime_ns != stamps[p.name]}
    assert rewritten == {"s000003.toml.json"}
    assert json.loads((out / "s000003.toml.json").read_text())["score"] is not None


@pytest.mark.parametrize("other", [{"fmt": "text"}, {"mission": "mobile/1"}])
def test_a_different_grading_makes_every_record_stale(other):
    """The key of a record holds the grading's fingerprint: another results format or another
    mission source is another grading."""
    from trainwall.challenges import grading
    from trainwall.challenges.ledger import grading_fingerprint

    base = grading_fingerprint(grading.MissionSource.open(None), "json")
    assert grading_fingerprint(grading.MissionSource.open(other.get("mission")), other.get("fmt", "json")) != base
    assert grading_fingerprint(grading.MissionSource.open(None), "json") == base


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shards_merged_are_the_unsharded_bytes(tmp_path, capsys):
    """grade --shard 1/3, 2/3, 3/3 into three folders (three machines of a Slurm array or a CI
    matrix), then merge: every results file, record, summary.csv, chart and the gradebook are
    the bytes one unsharded run writes. A malformed file and a skipped entry are in the class."""
    from trainwall.cli import main

    folder = _class(tmp_path / "class", 31)
    (folder / "broken.toml").write_text("{not toml")
    (folder / "a folder").mkdir()
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email\n" + "".join(f"s{n:06d},s{n}@uni.edu\n" for n in range(0, 40, 3)))
    whole = tmp_path / "whole"
    assert main(["grade", str(folder), "--output", str(whole), "--format", "json", "--jobs", "1",
                 "--roster", str(roster)]) == 0
    shards = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    for k, shard in enumerate(shards, 1):
        assert main(["grade", str(folder), "--output", str(shard), "--format", "json", "--jobs", "1",
                     "--shard", f"{k}/3"]) == 0
        assert not (shard / "summary.csv").exists()
    assert {len(list(s.glob("*.json"))) for s in shards} == {11, 10}            # 32 graded: 11 + 11 + 10
    merged = tmp_path / "merged"
    capsys.readouterr()
    assert main(["merge", *map(str, shards), "--submissions", str(folder), "--output", str(merged), "--format",
                 "json", "--roster", str(roster)]) == 0
    assert _tree(merged) == _tree(whole)
    assert main(["merge", *map(str, shards[:2]), "--submissions", str(folder), "--output",
                 str(tmp_path / "partial"), "--format", "json"]) == 2
    assert "no shard holds a current result for 10 submissions" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_a_shard_is_k_of_n(tmp_path, bad):
    from trainwall.cli import main

    folder = _class(tmp_path / "class", 2)
    with pytest.raises(SystemExit) as exit_:
        main(["grade", str(folder), "--output", str(tmp_path / "out"), "--shard", bad])
    assert exit_.value.code == 2


def test_generated_shards_merged_are_the_unsharded_bytes(tmp_path, capsys):
    """generate --shard 1/3, 2/3, 3/3 (a Slurm array), then merge: the handouts, the keys and
    index.csv are the bytes of one unsharded run; merging without a shard is refused."""
    from trainwall.cli import main

    args = ["generate", "mobile/2", "--count", "7", "--seed", "5", "--jobs", "1"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    shards = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    for k, shard in enumerate(shards, 1):
        assert main([*args, "--out", str(shard), "--shard", f"{k}/3"]) == 0
    assert [len(list((s / "keys").glob("*.json"))) for s in shards] == [3, 2, 2]
    assert main(["merge", *map(str, shards), "--output", str(tmp_path / "merged")]) == 0
    assert _tree(tmp_path / "merged") == _tree(tmp_path / "whole")
    capsys.readouterr()
    assert main(["merge", *map(str, shards[1:]), "--output", str(tmp_path / "partial")]) == 2
    assert "the shards hold 4 of 7 students' keys" in capsys.readouterr().err
