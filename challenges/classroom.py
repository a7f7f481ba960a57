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
from array import array
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from trainwall.challenges import answers, grading, ledger
from trainwall.challenges.results import SUFFIX, render
from trainwall.core.errors import InputError
from trainwall.core.fileformats import Contents
from trainwall.core.outputs import atomic_write, atomic_write_chunks, check_target, csv_cell, unique_names

SUMMARY_COLUMNS = ("file", "student", "mission", "gradable", "feasible", "score", "max_score", "objective",
                   "optimum", "gap", "moves_to_balance", "locks_right", "walls_broken", "not_gradable", "error",
                   "results")
#: Names the class outputs take besides the results files.
RESERVED = ("summary.csv", "scores.png", "checks.png", "gradebook.csv", ledger.FOLDER)


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


@dataclass
class ClassTotals:
    """What the class outputs need of all the grades, gathered record by record: counts, the
    gradable scores (for the histogram), per Lock and wall (hits, asked) and each student's
    best score per mission (for the gradebook)."""

    submissions: int = 0
    internal_failures: int = 0
    score_sum: float = 0.0
    top: float = 0.0
    scores: array = field(default_factory=lambda: array("d"))      # the gradable submissions'
    rates: "CheckRates" = field(default_factory=lambda: CheckRates())
    best: dict = field(default_factory=dict)                        # student -> mission -> best score

    def add(self, rec: dict) -> None:
        from trainwall.challenges.mission import mission_id

        self.submissions += 1
        self.internal_failures += rec["internal_error"]
        self.score_sum += rec["score"]
        self.top = max(self.top, rec["max_score"])
        if rec["gradable"]:
            self.scores.append(rec["score"])
        self.rates.add(rec["verdicts"])
        if rec["student"] is not None:
            per_mission = self.best.setdefault(rec["student"], {})
            mission = mission_id(rec["mission"] or "")
            per_mission[mission] = max(per_mission.get(mission, 0.0), rec["score"])


@dataclass(frozen=True)
class ClassResult:
    totals: ClassTotals
    results_dir: Path
    summary_csv: Path
    skipped: tuple = ()            # (name, reason) per entry not graded
    kept: int = 0                  # results current from an earlier run, not graded again

    @property
    def internal_failures(self) -> int:
        return self.totals.internal_failures


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
_FORMAT = "text"
_FINGERPRINT = ""


def _init_worker(source: grading.MissionSource, optima: list, fmt: str, fingerprint: str) -> None:
    global _SOURCE, _FORMAT, _FINGERPRINT
    _SOURCE, _FORMAT, _FINGERPRINT = source, fmt, fingerprint
    for mission, best in optima:
        answers.remember(mission, best)


def _grade_one(path: Path | str, contents: Contents | None = None, key: str | None = None) -> tuple[str, dict]:
    """One submission's results file and record (the worker renders: no Grade crosses back);
    ``contents`` and ``key``: the file as read, and its record's key, on another machine."""
    g = grading.grade_file(path, _SOURCE, contents)
    return render(g, _FORMAT), ledger.record(g, key or ledger.submission_key(path, _FINGERPRINT))


def _shipped(path: Path, fingerprint: str) -> tuple[str, Contents, str]:
    """What a remote grader needs of one submission: its path as named here, its contents, its
    record's key (the bytes' hash, taken here as :func:`_grade_one` takes it)."""
    contents = Contents.of(path)
    return str(path), contents, ledger.submission_key(path, fingerprint, contents.raw)


class ChunkGrader:
    """A worker of ``--backend ray``: one actor grading chunks of shipped submissions, warm with
    the class's missions and their optima."""

    def __init__(self, args: tuple) -> None:
        _init_worker(*args)

    def grade(self, chunk: list[tuple[str, Contents, str]]) -> list[tuple[str, dict]]:
        return [_grade_one(path, contents, key) for path, contents, key in chunk]


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


def graded_in_order(files: list[Path], source: grading.MissionSource, fmt: str, fingerprint: str, jobs: int,
                    progress: bool | None, backend: str = "local",
                    address: str | None = None) -> Iterator[tuple[str, dict]]:
    """Each file's (results text, record), in the order of ``files``, as they are graded. The
    workers take chunks of files, and at most ``WINDOW`` chunks per worker are in flight, so
    what waits in memory is bounded whatever the class size. ``backend`` "ray": the chunks go,
    as contents, to a Ray cluster's actors (:mod:`~trainwall.challenges.ray_backend`)."""
    from tqdm import tqdm

    optima = _optima(source, files)
    workers = max(1, min(jobs or os.cpu_count() or 1, len(files) or 1))
    with tqdm(total=len(files), desc="grading", unit="submission", disable=progress is False or None) as bar:
        if backend == "ray":
            yield from _graded_on_ray(files, (source, optima, fmt, fingerprint), jobs, address, bar)
            return
        if workers == 1:
            _init_worker(source, optima, fmt, fingerprint)
            for path in files:
                yield _grade_one(path)
                bar.update()
            return
        size = max(1, min(CHUNK, len(files) // (8 * workers)))
        chunks = (files[i:i + size] for i in range(0, len(files), size))
        with ProcessPoolExecutor(workers, initializer=_init_worker,
                                 initargs=(source, optima, fmt, fingerprint)) as pool:
            pending: deque = deque()
            for chunk in chunks:
                pending.append(pool.submit(_grade_chunk, chunk))
                if len(pending) >= WINDOW * workers:
                    yield from _drained(pending.popleft(), bar)
            while pending:
                yield from _drained(pending.popleft(), bar)


#: Files per task sent to a worker, and tasks in flight per worker (bounded memory).
CHUNK, WINDOW = 64, 4


def _graded_on_ray(files: list[Path], state: tuple, jobs: int, address: str | None, bar) -> Iterator[tuple[str, dict]]:
    """:func:`graded_in_order` on Ray: chunks of :data:`CHUNK` shipped submissions, read here as
    the actors ask for them (the pool keeps at most its window in flight)."""
    from trainwall.challenges.ray_backend import RayPool

    fingerprint = state[3]
    chunks = ([_shipped(path, fingerprint) for path in files[i:i + CHUNK]] for i in range(0, len(files), CHUNK))
    with RayPool(ChunkGrader, state, address, jobs) as pool:
        for done in pool.map("grade", chunks):
            yield from done
            bar.update(len(done))


def _grade_chunk(paths: list[Path]) -> list[tuple[str, dict]]:
    return [_grade_one(path) for path in paths]


def _drained(future, bar) -> Iterator[tuple[str, dict]]:
    done = future.result()
    yield from done
    bar.update(len(done))


def grade_folder(folder: str | Path, source: grading.MissionSource, fmt: str, out: str | Path,
                 jobs: int = 0, progress: bool | None = None, inputs=(), roster=None,
                 shard: tuple[int, int] | None = None, backend: str = "local",
                 address: str | None = None) -> ClassResult | None:
    """Grade every regular file in ``folder`` into ``out``; ``jobs = 0`` uses every core;
    ``roster`` (:func:`trainwall.challenges.variants.read_roster_table`) adds its columns to
    ``summary.csv``.

    The output folder is checked first (:func:`check_output`; ``inputs`` are the other
    input paths, such as the --mission file or folder): nothing is graded when it is refused.
    Results are written as they are graded, each with its record (:mod:`~trainwall.challenges.ledger`);
    an entry whose results are current from an earlier run into ``out`` is not graded again.
    ``shard`` (k, n): grade only the entries :func:`in_shard` gives shard k of n, and write no
    class outputs (None is returned: :func:`merge_shards` joins the shards). ``backend`` "ray"
    grades on a Ray cluster (``address``, else a local one): the same files."""
    folder, out = Path(folder), Path(out)
    check_output(folder, out, inputs)
    entries = class_entries(folder)
    names = dict(zip((e.name for e in entries), results_names([e.name for e in entries], SUFFIX[fmt])))
    protected = {Path(p).resolve() for p in inputs if p is not None}
    clash = [n for n in names.values() if (out / n).resolve() in protected]
    if clash:
        raise InputError("--output", str(out), f"a results file would overwrite an input ({clash[0]})")
    fingerprint = ledger.grading_fingerprint(source, fmt)
    graded = [e for e in entries if e.skipped is None]
    mine = graded if shard is None else in_shard(graded, *shard)
    todo = [e for e in mine if not ledger.current(out, names[e.name], e.path, fingerprint)]
    out.mkdir(parents=True, exist_ok=True)
    for entry, (text, rec) in zip(todo, graded_in_order([e.path for e in todo], source, fmt, fingerprint,
                                                        jobs, progress, backend, address)):
        atomic_write(out / names[entry.name], text)
        ledger.store(out, names[entry.name], rec)
    if shard is not None:
        return None
    return class_outputs(out, entries, names, source.max_score, roster, len(graded) - len(todo))


def in_shard(entries: list, k: int, n: int) -> list:
    """Shard k of n (1 <= k <= n) of ``entries`` (a class folder's graded entries, a roster's
    students), in their order: every n-th from the k-th, so the shards are disjoint, cover
    them all, and differ in size by at most one."""
    return entries[k - 1::n]


def class_outputs(out: Path, entries: list, names: dict, max_score: float, roster, kept: int) -> ClassResult:
    """``summary.csv`` and the totals the CLI draws and prints, from the records in ``out``
    (every graded entry must have one)."""
    totals = ClassTotals()
    graded = [e for e in entries if e.skipped is None]
    for entry in graded:
        totals.add(ledger.load(out, names[entry.name]))
    rows = ((e, ledger.load(out, names[e.name]) if e.skipped is None else None,
             names[e.name] if e.skipped is None else "") for e in entries)
    summary = atomic_write_chunks(out / "summary.csv", summary_lines(rows, totals, max_score, roster))
    skipped = tuple((e.name, e.skipped) for e in entries if e.skipped is not None)
    return ClassResult(totals, out, summary, skipped, kept)


def merge_shards(shards: list[Path], folder: str | Path, source: grading.MissionSource, fmt: str, out: str | Path,
                 inputs=(), roster=None) -> ClassResult:
    """The class outputs of ``folder`` in ``out`` from the shard folders ``grade --shard`` wrote:
    each shard's results files and records are copied into ``out`` (a file two shards both hold
    must be the same bytes), then ``summary.csv`` is built as an unsharded run builds it, so the
    merged outputs are the same bytes. Every submission needs a current record in some shard
    (the same --mission and --format as the shards'): else nothing is built (InputError)."""
    folder, out = Path(folder), Path(out)
    check_output(folder, out, [*inputs, *shards])
    entries = class_entries(folder)
    names = dict(zip((e.name for e in entries), results_names([e.name for e in entries], SUFFIX[fmt])))
    fingerprint = ledger.grading_fingerprint(source, fmt)
    missing = []
    for entry in (e for e in entries if e.skipped is None):
        name = names[entry.name]
        found = [s for s in shards if ledger.current(s, name, entry.path, fingerprint)]
        if not found:
            missing.append(entry.name)
            continue
        _copy_result(found, name, out)
    if missing:
        raise InputError("SHARD", str(shards[0]), f"no shard holds a current result for {len(missing)} "
                         f"submission{'s' * (len(missing) != 1)} (the first: {missing[0]}): grade the missing shard, "
                         "with the same --mission and --format")
    return class_outputs(out, entries, names, source.max_score, roster, 0)


def _copy_result(shards: list[Path], name: str, out: Path) -> None:
    """One submission's results file and record from the shards that hold it, into ``out``."""
    for relative in (Path(name), ledger.record_path(Path(), name)):
        copies = {(shard / relative).read_bytes() for shard in shards}
        if len(copies) > 1:
            raise InputError("SHARD", str(shards[0] / relative), "two shards hold different results for this "
                             "submission: they were graded differently")
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out / relative, copies.pop())


def detail_cells(verdicts: dict[str, str], columns: list[str]) -> list[str]:
    """Per Lock: right | wrong; per wall: held | broken; empty where the submission has no such check."""
    return [verdicts.get(column, "") for column in columns]


def summary_lines(rows, totals: ClassTotals, max_score: float = 1.0, roster=None) -> Iterator[str]:
    """``summary.csv``, line by line: one row per entry of the folder, ``(entry, record or None,
    results name)``; a skipped entry is a row with gradable False and the reason. After the
    fixed columns, one per Lock and per wall any graded submission of the class has (sorted),
    then, with a ``roster``, its columns (``roster:<name>``; ``roster:<n>`` for a roster
    without a header), filled where the submission's student is a roster id."""
    details = totals.rates.columns()
    names, by_student = roster_columns(roster)
    yield _csv_line([*SUMMARY_COLUMNS, *(csv_cell(c) for c in details), *(csv_cell(n) for n in names)])
    for entry, rec, results in rows:
        student = rec["student"] if rec is not None else None
        extra = [*detail_cells(rec["verdicts"] if rec is not None else {}, details),
                 *(csv_cell(c) for c in by_student.get(student, [""] * len(names)))]
        if rec is None:
            yield _csv_line([csv_cell(entry.name), "", "", False, "", "0", f"{max_score:g}", "", "", "", "",
                             "", "", "skipped", csv_cell(f"skipped: {entry.skipped}"), "", *extra])
        else:
            yield _csv_line([csv_cell(entry.name), *rec["cells"], csv_cell(results), *extra])


def _csv_line(cells: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
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


class CheckRates:
    """Per Lock (right, asked) and per wall (broken, judged), counted over verdicts
    (:func:`~trainwall.challenges.ledger.verdicts`): the class chart's bars and summary.csv's
    detail columns."""

    def __init__(self) -> None:
        self.counts: dict[str, tuple[int, int]] = {}

    def add(self, verdicts: dict[str, str]) -> None:
        for column, mark in verdicts.items():
            hits, asked = self.counts.get(column, (0, 0))
            self.counts[column] = (hits + (mark in ("right", "broken")), asked + 1)

    def columns(self) -> list[str]:
        """``lock:<id>`` columns, then ``wall:<name>``, each sorted."""
        return sorted(c for c in self.counts if c.startswith("lock:")) + \
            sorted(c for c in self.counts if c.startswith("wall:"))

    def result(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        """(per Lock, per wall), each by name, sorted."""
        split = {"lock": {}, "wall": {}}
        for column in self.columns():
            kind, _, name = column.partition(":")
            split[kind][name] = self.counts[column]
        return split["lock"], split["wall"]


def check_rates(verdicts) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """:class:`CheckRates` over an iterable of verdicts."""
    rates = CheckRates()
    for cells in verdicts:
        rates.add(cells)
    return rates.result()


def gradebook_lines(header: list[str] | None, roster: list[tuple[str, list[str]]], best: dict,
                    assignment: str) -> Iterator[str]:
    """``gradebook.csv``, for an LMS's grade import (Canvas, Moodle: match the students by the
    roster's own id column, email or SIS id, and map the one grade column): the roster's rows
    as given, in its order, plus one column, ``assignment``, of points. A student's points are
    the sum over missions of their best file's score for that mission (``best``:
    :attr:`ClassTotals.best`); a student who submitted nothing has an empty cell (no grade, for
    the instructor to decide), one whose files were not gradable 0. A roster without a header
    gets the column ``student``."""
    columns, rows = _padded(header, roster)
    yield _csv_line([csv_cell(c) for c in columns] + [csv_cell(assignment)])
    for sid, cells in rows:
        points = best.get(sid)
        yield _csv_line([csv_cell(c) for c in cells] + ["" if points is None else f"{sum(points.values()):.6g}"])
