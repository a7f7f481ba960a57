"""Refactors change structure, not answers: every shipped mission's ``solve --json`` and
every example's ``evaluate --json`` must equal the committed snapshot, byte for byte
(wall-clock timings aside).

A change that is meant to move an answer (a fixed formula, a corrected mission)
regenerates the snapshots on purpose, and the diff shows every number it moved::

    python tests/test_snapshots.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainwall.challenges.mission import mission, shipped_ids

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
#: Wall-clock seconds: the only keys that may differ between two runs.
TIMINGS = ("time_s", "build_s")


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=float) + "\n"


def solved(mission_id: str) -> str:
    from trainwall.challenges.solve import solve

    data = solve(mission(mission_id)).to_dict()
    for key in TIMINGS:
        data["solver"].pop(key)
    return _dump(data)


def evaluated(path: Path) -> str:
    from trainwall.api import evaluate_file

    return _dump(evaluate_file(path)[1].to_dict())


def _snapshot(name: str) -> str:
    return (SNAPSHOTS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("mission_id", shipped_ids())
def test_solve_matches_snapshot(mission_id):
    assert solved(mission_id) == _snapshot(f"solve-{mission_id.replace('/', '-')}.json")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_evaluate_matches_snapshot(path):
    assert evaluated(path) == _snapshot(f"evaluate-{path.stem}.json")


def test_every_mission_and_example_has_a_snapshot():
    expected = {f"solve-{m.replace('/', '-')}.json" for m in shipped_ids()} | {
        f"evaluate-{p.stem}.json" for p in EXAMPLES}
    assert {p.name for p in SNAPSHOTS.glob("*.json")} == expected


if __name__ == "__main__":
    SNAPSHOTS.mkdir(exist_ok=True)
    for mid in shipped_ids():
        (SNAPSHOTS / f"solve-{mid.replace('/', '-')}.json").write_text(solved(mid), encoding="utf-8")
    for example in EXAMPLES:
        (SNAPSHOTS / f"evaluate-{example.stem}.json").write_text(evaluated(example), encoding="utf-8")
    print(f"wrote {len(list(SNAPSHOTS.glob('*.json')))} snapshots to {SNAPSHOTS}")
