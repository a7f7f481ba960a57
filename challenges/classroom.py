"""Grading a class: every file in a folder, in parallel, one results file per student
and a summary CSV (the CLI draws the histogram of the scores: :func:`trainwall.plotting.draw_score_histogram`).

Each distinct mission is solved once, in this process, before the workers start; the
workers receive the optima (no worker re-solves). Files are graded in sorted order and
written by this process, so the outputs do not depend on the number of workers.

Only regular files are graded, and only those inside the folder: an entry that is
hidden, a folder, a FIFO, a device, a socket, a dangling link, a link that leaves the
folder or an unreadable file is skipped after a ``stat`` (never opened), and listed in
``summary.csv`` with the reason. Results files are named injectively (two entries never
share one), written atomically (:func:`trainwall.core.outputs.atomic_write`), and never
inside, over or around the submissions.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trainwall.challenges import answers, grading
from trainwall.challenges.results import SUFFIX, render
from trainwall.core.errors import InputError
from trainwall.core.outputs import atomic_write, check_target, csv_cell, unique_names

SUMMARY_COLUMNS = ("file", "student", "mission", "gradable", "feasible", "score", "max_score", "objective",
                   "optimum", "gap", "moves_to_balance", "locks_right", "walls_broken", "not_gradable", "error",
                   "results")
#: Names the class outputs take besides the results files.
RESERVED = ("summary.csv", "scores.png", "checks.png", "gradebook.csv")


@dataclass(frozen=True)
class Entry:
    """One entry of the class folder: graded (``skipped`` None) or skipped, and why."""

    path: Path
    skipped: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


def _kind(mode: int) -> str | None:
    """Why an entry of this ``stat`` mode is not graded, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder (folders are not searched)"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"


def skip_reason(path: Path, root: Path) -> str | None:
    """Why ``path`` (an entry of the folder ``root``, resolved) is not graded, or None.
    Decided by ``lstat`` / ``stat`` only: nothing is opened."""
    if path.name.startswith("."):
        return "a hidden file"
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            try:
                target = path.resolve(strict=True)
            except FileNotFoundError:
                return "a dangling symbolic link"
            except (OSError, RuntimeError):
                return "a symbolic link that cannot be followed (a loop?)"
            if not target.is_relative_to(root):
                return "a symbolic link to a file outside the folder"
            mode = target.stat().st_mode
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    reason = _kind(mode)
    if reason is None and not os.access(path, os.R_OK):
        return "not readable (permission denied)"
    return reason


def class_entries(folder: Path) -> list[Entry]:
    """Every entry directly in ``folder``, sorted by name, each graded or skipped with its reason."""
    root = folder.resolve()
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise InputError("", str(folder), f"cannot list the folder ({exc.strerror})") from None
    return [Entry(folder / name, skip_reason(folder / name, root)) for name in names]


def submission_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that are graded (see :func:`class_entries`), sorted."""
    return [e.path for e in class_entries(Path(folder)) if e.skipped is None]


def results_names(names: list[str], suffix: str) -> list[str]:
    """One results file name per entry name, all distinct and none of :data:`RESERVED`."""
    return unique_names(names, suffix, RESERVED)


@dataclass(frozen=True)
class ClassResult:
    grades: tuple
    results_dir: Path
    summary_csv: Path
    skipped: tuple = ()            # (name, reason) per entry not graded

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


def check_output(folder: Path, out: Path, inputs=()) -> Path:
    """Refuse (InputError, before any grading) an output folder that is a file, or that is,
    is inside or holds the submissions folder or an input folder (``inputs``: the --mission
    file or answer-key folder)."""
    folders = [folder, *(p for p in inputs if p is not None and Path(p).is_dir())]
    files = [p for p in inputs if p is not None and not Path(p).is_dir()]
    return check_target(out, "--output", folder=True, files=files, folders=folders)


def _optima(source: grading.MissionSource, files: list[Path]) -> list:
    optima = []
    if source.fixed is not None:
        optima.append((source.fixed, answers.optimum(source.fixed)))
    if not source.keys and source.fixed is None:
        from trainwall.challenges.mission import mission

        for ref in sorted(_referenced_missions(files)):
            optima.append((mission(ref), answers.optimum(mission(ref))))
    return optima


def grade_all(files: list[Path], source: grading.MissionSource, jobs: int, progress: bool | None) -> list:
    from tqdm import tqdm

    optima = _optima(source, files)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(files) or 1))
    bar = tqdm(total=len(files), desc="grading", unit="submission", disable=progress is False or None)
    grades = []
    if workers == 1:
        _init_worker(source, optima)
        for path in files:
            grades.append(_grade_one(path))
            bar.update()
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(source, optima)) as pool:
            for g in pool.map(_grade_one, files, chunksize=max(1, len(files) // (8 * workers))):
                grades.append(g)
                bar.update()
    bar.close()
    return grades


def grade_folder(folder: str | Path, source: grading.MissionSource, fmt: str, out: str | Path,
                 jobs: int = 0, progress: bool | None = None, inputs=(), roster=None) -> ClassResult:
    """Grade every regular file in ``folder`` into ``out``; ``jobs = 0`` uses every core;
    ``roster`` (:func:`trainwall.challenges.variants.read_roster_table`) adds its columns to
    ``summary.csv``.

    The output folder is checked first (:func:`check_output`; ``inputs`` are the other
    input paths, such as the --mission file or folder): nothing is graded when it is refused."""
    folder, out = Path(folder), Path(out)
    check_output(folder, out, inputs)
    entries = class_entries(folder)
    names = dict(zip((e.name for e in entries), results_names([e.name for e in entries], SUFFIX[fmt])))
    protected = {Path(p).resolve() for p in inputs if p is not None}
    clash = [n for n in names.values() if (out / n).resolve() in protected]
    if clash:
        raise InputError("--output", str(out), f"a results file would overwrite an input ({clash[0]})")
    graded = [e for e in entries if e.skipped is None]
    grades = grade_all([e.path for e in graded], source, jobs, progress)
    out.mkdir(parents=True, exist_ok=True)
    for entry, g in zip(graded, grades):
        atomic_write(out / names[entry.name], render(g, fmt))
    by_name = {e.name: g for e, g in zip(graded, grades)}
    rows = [(e, by_name.get(e.name), names[e.name] if e.skipped is None else "") for e in entries]
    summary = atomic_write(out / "summary.csv", summary_csv(rows, source.max_score, roster))
    skipped = tuple((e.name, e.skipped) for e in entries if e.skipped is not None)
    return ClassResult(tuple(grades), out, summary, skipped)


def _number(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _class_view(g) -> tuple[str, str, str]:
    """(Lock predictions right of asked, the walls the plan breaks, why it is not gradable: malformed | grader)."""
    if not g.gradable:
        return "", "", "grader" if g.internal_error else "malformed"
    locks = [c for c in g.checks if c.lock is not None]
    right = f"{sum(c.passed for c in locks)}/{len(locks)}" if locks else ""
    return right, " ".join(w.wall for w in g.walls if not w.satisfied), ""


def detail_columns(grades) -> list[str]:
    """One column per Lock and per wall any graded submission of the class has, sorted."""
    locks = {c.lock for g in grades if g is not None and g.gradable for c in g.checks if c.lock is not None}
    walls = {w.wall for g in grades if g is not None and g.gradable for w in g.walls}
    return [f"lock:{x}" for x in sorted(locks)] + [f"wall:{x}" for x in sorted(walls)]


def detail_cells(g, columns: list[str]) -> list[str]:
    """Per Lock: right | wrong; per wall: held | broken; empty where the submission has no such check."""
    if g is None or not g.gradable:
        return [""] * len(columns)
    cells = {f"lock:{c.lock}": "right" if c.passed else "wrong" for c in g.checks if c.lock is not None}
    cells.update({f"wall:{w.wall}": "held" if w.satisfied else "broken" for w in g.walls})
    return [cells.get(column, "") for column in columns]


def summary_csv(rows, max_score: float = 1.0, roster=None) -> str:
    """``summary.csv``: one row per entry of the folder, ``(entry, grade or None, results name)``;
    a skipped entry is a row with gradable False and the reason. After the fixed columns, one
    per Lock and per wall of the class (:func:`detail_columns`), then, with a ``roster``,
    its columns (``roster:<name>``; ``roster:<n>`` for a roster without a header), filled
    where the submission's student is a roster id."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    details = detail_columns([g for _, g, _ in rows])
    names, by_student = roster_columns(roster)
    writer.writerow([*SUMMARY_COLUMNS, *(csv_cell(c) for c in details), *(csv_cell(n) for n in names)])
    for entry, g, results in rows:
        extra = [*detail_cells(g, details), *(csv_cell(c) for c in by_student.get(getattr(g, "student", None),
                                                                               [""] * len(names)))]
        if g is None:
            writer.writerow([csv_cell(entry.name), "", "", False, "", "0", f"{max_score:g}", "", "", "", "",
                             "", "", "skipped", csv_cell(f"skipped: {entry.skipped}"), "", *extra])
            continue
        error = g.internal_error or "; ".join(g.format_errors)
        writer.writerow([csv_cell(entry.name), csv_cell(g.student), csv_cell(g.mission), g.gradable,
                         "" if g.feasible is None else g.feasible, f"{g.score:.6g}", f"{g.max_score:g}",
                         _number(g.objective, ".6g"), _number(g.optimum, ".6g"), _number(g.gap, ".6g"),
                         "" if g.moves_to_balance is None else g.moves_to_balance, *_class_view(g),
                         csv_cell(error), csv_cell(results), *extra])
    return buf.getvalue()


def roster_columns(roster) -> tuple[list[str], dict[str, list[str]]]:
    """(``roster:<name>`` column names, each student id's cells padded to them) of a roster
    table; nothing without one."""
    if roster is None:
        return [], {}
    header, rows = _padded(*roster)
    names = [f"roster:{name.strip() or i + 1}" for i, name in enumerate(header)] if roster[0] else \
        [f"roster:{i + 1}" for i in range(len(header))]
    return names, dict(rows)


def _padded(header: list[str] | None, roster: list[tuple[str, list[str]]]):
    """(the header, every row) padded to the widest row; a roster without a header gets ``student``."""
    width = max([len(header or [])] + [len(row) for _, row in roster])
    columns = list(header or ["student"])
    return columns + [""] * (width - len(columns)), [(sid, list(row) + [""] * (width - len(row))) for sid, row in roster]


def check_rates(grades) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Over the gradable submissions, per Lock (right, asked) and per wall (broken, judged):
    :func:`detail_cells`' verdicts, counted for the class chart."""
    columns = detail_columns(grades)
    rows = [detail_cells(g, columns) for g in grades]
    locks: dict[str, tuple[int, int]] = {}
    walls: dict[str, tuple[int, int]] = {}
    for i, column in enumerate(columns):
        kind, _, name = column.partition(":")
        marks = [row[i] for row in rows]
        hit, miss = ("right", "wrong") if kind == "lock" else ("broken", "held")
        (locks if kind == "lock" else walls)[name] = (marks.count(hit), marks.count(hit) + marks.count(miss))
    return locks, walls


def gradebook_csv(header: list[str] | None, roster: list[tuple[str, list[str]]], grades, assignment: str) -> str:
    """``gradebook.csv``, for an LMS's grade import (Canvas, Moodle: match the students by the
    roster's own id column, email or SIS id, and map the one grade column): the roster's rows
    as given, in its order, plus one column, ``assignment``, of points. A student's points are
    the sum over missions of their best file's score for that mission; a student who
    submitted nothing has an empty cell (no grade, for the instructor to decide), one whose
    files were not gradable 0. A roster without a header gets the column ``student``."""
    from trainwall.challenges.mission import mission_id

    best: dict[str, dict[str, float]] = {}
    for g in grades:
        if g.student is not None:
            per_mission = best.setdefault(g.student, {})
            mission = mission_id(g.mission or "")
            per_mission[mission] = max(per_mission.get(mission, 0.0), g.score)
    columns, rows = _padded(header, roster)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns] + [csv_cell(assignment)])
    for sid, cells in rows:
        points = best.get(sid)
        writer.writerow([csv_cell(c) for c in cells] + ["" if points is None else f"{sum(points.values()):.6g}"])
    return buf.getvalue()
