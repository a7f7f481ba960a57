"""Class grading's ledger: what each graded submission gives the class outputs, on disk.

Grading a class streams: a submission's results file is written as its grade arrives,
then its *record* (``<out>/.trainwall/records/<results name>.json``, written atomically
after the results file, so a record always stands beside a complete results file). A
record holds the few fields ``summary.csv``, the gradebook and the class charts read - the
summary row's cells, the per-Lock and per-wall verdicts, the student, the mission, the
score - so the grading process never holds a class's grades: its memory stays flat with
the class size, and the class outputs are built by reading the records back in order.

A record also holds its *key*: the SHA-256 of the submission's bytes and the grading's
fingerprint (:func:`grading_fingerprint`: the results format, the platform's identities,
the mission, variants or answer keys graded against, and the trainwall code itself). A
re-run (after an interruption, or after adding late submissions) grades only the
entries whose record is missing or whose key differs, and leaves every current results
file untouched.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trainwall.core.caches import bounded
from trainwall.core.outputs import atomic_write, csv_cell

FOLDER = ".trainwall"
#: Bumped when a record's fields change: older records are then not current.
RECORD_VERSION = 1


def records_folder(out: Path) -> Path:
    return Path(out) / FOLDER / "records"


#: trainwall's packages (pyproject.toml's ``packages``: one import package mapped from several folders).
PACKAGES = ("trainwall", "trainwall.lab", "trainwall.hardware", "trainwall.models", "trainwall.optimizer",
            "trainwall.optimizer.costmodel", "trainwall.challenges", "trainwall.core")


@bounded(1)   # one 64-character digest
def code_digest() -> str:
    """SHA-256 of trainwall's own modules and data files, wherever the packages are installed
    from: a grade depends on the code that computed it, so any change to it makes every
    record stale."""
    import importlib

    digest = hashlib.sha256()
    for name in PACKAGES:
        folder = Path(importlib.import_module(name).__file__).parent
        for path in sorted(folder.glob("*.py")):
            digest.update(f"{name}/{path.name}".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        for path in sorted(folder.glob("*/*.toml")):       # data/*.toml and the missions
            digest.update(f"{name}/{path.parent.name}/{path.name}".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def grading_fingerprint(source, fmt: str) -> str:
    """What every grade of this run depends on besides the submission: the results format,
    the identities the platform gave, the fixed mission or the answer keys (each key's
    mission and optimum), and :func:`code_digest`."""
    parts = {"format": fmt, "code": code_digest(),
             "identities": sorted(source.identities) if source.identities is not None else None,
             "fixed": source.fixed.model_dump(mode="json") if source.fixed is not None else None,
             "keys": {ref: [key.mission.model_dump(mode="json"), key.optimum, key.student]
                      for ref, key in sorted(source.keys.items())}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def submission_key(path: Path, fingerprint: str, raw: bytes | None = None) -> str:
    """The key of one submission under one grading: its bytes' SHA-256 (``raw``: the bytes as
    already read) and the fingerprint."""
    return f"{hashlib.sha256(Path(path).read_bytes() if raw is None else raw).hexdigest()}:{fingerprint}"


def _number(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def verdicts(g) -> dict[str, str]:
    """Per Lock: right | wrong; per wall: held | broken (nothing for a submission not gradable)."""
    if not g.gradable:
        return {}
    cells = {f"lock:{c.lock}": "right" if c.passed else "wrong" for c in g.checks if c.lock is not None}
    cells.update({f"wall:{w.wall}": "held" if w.satisfied else "broken" for w in g.walls})
    return cells


def _class_view(g) -> list[str]:
    """(Lock predictions right of asked, the walls the plan breaks, why it is not gradable: malformed | grader)."""
    if not g.gradable:
        return ["", "", "grader" if g.internal_error else "malformed"]
    locks = [c for c in g.checks if c.lock is not None]
    right = f"{sum(c.passed for c in locks)}/{len(locks)}" if locks else ""
    return [right, " ".join(w.wall for w in g.walls if not w.satisfied), ""]


def record(g, key: str) -> dict:
    """What the class outputs read of grade ``g`` (summary.csv's cells from the student to the
    error, as text), under ``key``."""
    error = g.internal_error or "; ".join(g.format_errors)
    cells = [csv_cell(g.student), csv_cell(g.mission), str(g.gradable), "" if g.feasible is None else str(g.feasible),
             f"{g.score:.6g}", f"{g.max_score:g}", _number(g.objective, ".6g"), _number(g.optimum, ".6g"),
             _number(g.gap, ".6g"), "" if g.moves_to_balance is None else str(g.moves_to_balance),
             *_class_view(g), csv_cell(error)]
    return {"version": RECORD_VERSION, "key": key, "student": g.student, "mission": g.mission,
            "gradable": g.gradable, "internal_error": bool(g.internal_error), "score": g.score,
            "max_score": g.max_score, "cells": cells, "verdicts": verdicts(g)}


def record_path(out: Path, results_name: str) -> Path:
    return records_folder(out) / f"{results_name}.json"


def store(out: Path, results_name: str, entry: dict) -> None:
    records_folder(out).mkdir(parents=True, exist_ok=True)
    atomic_write(record_path(out, results_name), json.dumps(entry, sort_keys=True))


def load(out: Path, results_name: str) -> dict | None:
    """The record of ``results_name``, or None (missing, unreadable, or of another version)."""
    try:
        found = json.loads(record_path(out, results_name).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("version") == RECORD_VERSION else None


def current(out: Path, results_name: str, submission: Path, fingerprint: str) -> bool:
    """Is the results file there, with a record of this very submission and grading? The
    submission is read and hashed only where a record stands: a first run hashes each file
    once, in the worker that grades it."""
    found = load(out, results_name)
    return (found is not None and (Path(out) / results_name).is_file()
            and found.get("key") == submission_key(submission, fingerprint))
