"""Grading a class: every file in a folder, in parallel, one results file per student
and a summary CSV (the CLI draws the histogram of the scores: :func:`trainwall.plotting.draw_score_histogram`).

Each distinct mission is solved once, in this process, before the workers start; the
workers receive the optima (no worker re-solves). Files are graded in sorted order and
written by this process, so the outputs do not depend on the number of workers.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trainwall.challenges import answers, grading
from trainwall.challenges.results import SUFFIX, clean, render
from trainwall.core.fileformats import safe_name

SUMMARY_COLUMNS = ("file", "student", "mission", "gradable", "feasible", "score", "max_score", "objective",
                   "optimum", "gap", "moves_to_balance", "error")


def submission_files(folder: Path) -> list[Path]:
    """Every visible regular file directly in ``folder``, sorted (an odd file is graded as malformed)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class ClassResult:
    grades: tuple
    results_dir: Path
    summary_csv: Path

    @property
    def internal_failures(self) -> int:
        return sum(1 for g in self.grades if g.internal_error)


def _referenced_missions(files: list[Path]) -> set[str]:
    """The shipped mission ids the submissions name (read cheaply; bad files are skipped here)."""
    from trainwall.challenges.mission import shipped_ids
    from trainwall.core.errors import TrainwallError
    from trainwall.core.fileformats import read_document

    found = set()
    for path in files:
        try:
            data = read_document(path)
        except TrainwallError:
            continue
        if isinstance(data, dict) and data.get("mission") in shipped_ids():
            found.add(data["mission"])
    return found


_SOURCE: grading.MissionSource | None = None


def _init_worker(source: grading.MissionSource, optima: list) -> None:
    global _SOURCE
    _SOURCE = source
    for mission, best in optima:
        answers.remember(mission, best)


def _grade_one(path: Path):
    return grading.grade_file(path, _SOURCE)


def grade_folder(folder: str | Path, source: grading.MissionSource, fmt: str, out: str | Path,
                 jobs: int = 0, progress: bool | None = None) -> ClassResult:
    """Grade every file in ``folder`` into ``out``; ``jobs = 0`` uses every core."""
    import os

    from tqdm import tqdm

    folder, out = Path(folder), Path(out)
    files = submission_files(folder)
    optima = []
    if source.fixed is not None:
        optima.append((source.fixed, answers.optimum(source.fixed)))
    if not source.keys and source.fixed is None:
        from trainwall.challenges.mission import mission

        for ref in sorted(_referenced_missions(files)):
            optima.append((mission(ref), answers.optimum(mission(ref))))
    workers = max(1, min(jobs or os.cpu_count() or 1, len(files) or 1))
    bar = tqdm(total=len(files), desc="grading", unit="submission", disable=progress is False or None)
    if workers == 1:
        _init_worker(source, optima)
        grades = []
        for path in files:
            grades.append(_grade_one(path))
            bar.update()
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(source, optima)) as pool:
            grades = []
            for g in pool.map(_grade_one, files, chunksize=max(1, len(files) // (8 * workers))):
                grades.append(g)
                bar.update()
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    for path, g in zip(files, grades):
        (out / f"{safe_name(path.name)}{SUFFIX[fmt]}").write_text(render(g, fmt), encoding="utf-8")
    summary = out / "summary.csv"
    summary.write_text(summary_csv(files, grades), encoding="utf-8")
    return ClassResult(tuple(grades), out, summary)


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = clean(value, 256)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def summary_csv(files: list[Path], grades) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for path, g in zip(files, grades):
        error = g.internal_error or "; ".join(g.format_errors)
        writer.writerow([_cell(path.name), _cell(g.student), _cell(g.mission), g.gradable,
                         "" if g.feasible is None else g.feasible, f"{g.score:.6g}", f"{g.max_score:g}",
                         "" if g.objective is None else f"{g.objective:.6g}",
                         "" if g.optimum is None else f"{g.optimum:.6g}",
                         "" if g.gap is None else f"{g.gap:.6g}",
                         "" if g.moves_to_balance is None else g.moves_to_balance, _cell(error)])
    return buf.getvalue()
