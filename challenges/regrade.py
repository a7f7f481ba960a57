"""``trainwall regrade SUBMISSIONS --results RESULTS --mission NEW``: whose score changes, and why,
when a mission or its answer keys are fixed.

The class folder is graded again against ``NEW`` (a mission id or file, or an answer-key
folder), in memory, and each file is compared with its row of ``RESULTS/summary.csv``
(the earlier ``trainwall grade SUBMISSIONS --output RESULTS``). A row is listed when its
score, its gradability, its feasibility or any Lock or wall verdict changed; ``why`` says
what changed, in the summary's own terms: gradability, feasibility, each Lock
(right/wrong) and wall (held/broken), and the certified optimum where it moved. Nothing
is written over RESULTS.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from pathlib import Path

from trainwall.core.errors import InputError

#: Scores closer than this are the same score (the summary writes 6 significant digits).
SCORE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Change:
    """One row of the output (its columns, in order)."""

    file: str
    student: str
    mission: str
    old_score: str
    new_score: str
    why: str


COLUMNS = tuple(f.name for f in fields(Change))


def read_summary(results: Path) -> dict[str, dict]:
    """The earlier ``summary.csv``, by file name."""
    from trainwall.core.fileformats import read_text
    from trainwall.core.outputs import csv_text

    path = results / "summary.csv"
    text = read_text(path, what="summary.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "file" not in rows[0] or "score" not in rows[0]:
        raise InputError("--results", str(results), "its summary.csv is not one trainwall grade wrote "
                         "(columns file, score, ...)")
    return {csv_text(r["file"]): r for r in rows}


def regrade(folder: Path, source, results: Path, jobs: int = 0) -> list[Change]:
    """Every file of ``folder`` whose verdict changes under ``source`` (a MissionSource)."""
    from trainwall.challenges.classroom import SUMMARY_COLUMNS, class_entries, graded_in_order
    from trainwall.challenges.ledger import grading_fingerprint

    old = read_summary(results)
    entries = [e for e in class_entries(folder) if e.skipped is None]
    graded = graded_in_order([e.path for e in entries], source, "json", grading_fingerprint(source, "json"), jobs,
                             progress=False)
    changes = []
    for entry, (_, rec) in zip(entries, graded):
        row = dict(zip(SUMMARY_COLUMNS[1:-1], rec["cells"]))       # the summary's cells, student to error
        before = old.get(entry.name)
        now = {field: row[field] for field in ("score", "gradable", "feasible", "optimum")} | rec["verdicts"]
        why = _why(before, now)
        if why:
            changes.append(Change(entry.name, rec["student"] or "", rec["mission"] or "",
                                  "" if before is None else before["score"], now["score"], why))
    return changes


def _why(before: dict | None, now: dict) -> str:
    """What differs between the earlier row and the new verdict; '' when neither the score,
    the gradability, feasibility nor any Lock or wall verdict changed (a moved optimum alone
    is then no change for this student)."""
    if before is None:
        return "not in the earlier results"
    verdicts = [f"{label} {before.get(field) or '-'} -> {now[field] or '-'}"
                for field, label in (("gradable", "gradable"), ("feasible", "feasible"))
                if before.get(field, "") != now[field]]
    verdicts += [f"{column} {before.get(column) or '-'} -> {now.get(column) or '-'}"
                 for column in sorted(k for k in {*before, *now} if k.startswith(("lock:", "wall:")))
                 if before.get(column, "") != now.get(column, "")]
    old_score, new_score = float(before["score"] or 0), float(now["score"])
    if not verdicts and abs(old_score - new_score) <= SCORE_TOLERANCE * max(1.0, abs(old_score)):
        return ""
    optimum = ([f"certified optimum {before.get('optimum') or '-'} -> {now['optimum'] or '-'}"]
               if before.get("optimum", "") != now["optimum"] else [])
    return "; ".join(verdicts + optimum) or "the objective's credit (the grading policy changed)"


def changes_csv(changes: list[Change]) -> str:
    from trainwall.core.outputs import csv_cell

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in changes:
        writer.writerow([csv_cell(getattr(c, name), 2000) for name in COLUMNS])
    return buf.getvalue()
