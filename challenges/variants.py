"""Per-student variants of a mission: ``trainwall generate``.

A variant draws one value for each path of the mission's ``[variants.perturb]`` table
(the stated ranges: model size, budgets, bandwidth headroom, CPU cores, ...), from a
random stream seeded by (mission, seed, student, attempt). It is solved and kept only
if it stays a good exercise (:func:`assess`):

1. the optimum is proven (status optimal, certified by the exhaustive evaluator);
2. the naive plan still breaks a wall;
3. the mission's intended wall binds at the optimum;
4. the next best plan (the best plan whose objective is strictly worse, found by excluding
   the optimum's mode and every mode that ties it: :func:`~trainwall.challenges.solution.alternatives`)
   is at least ``min_margin`` behind, relative. Plans that tie the optimum differ only in
   choices the objective does not see and earn the same grade: the solution is unique up
   to the tie-break.

A rejected draw is redrawn (attempt + 1) up to :data:`MAX_ATTEMPTS` times. Identical
draws are solved once; draws are solved in parallel and in a fixed order, so the same
seed and roster give byte-identical files on any machine and any core count.

Output: ``handouts/<student>/mission.toml`` and ``submission.toml`` (what a student
gets: the variant, nothing of its solution) and ``keys/<student>.json`` plus
``keys/index.csv`` (the answer keys: the optimum, its binding walls, the Lock answers),
in separate folders.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainwall.core.errors import InputError

MAX_ATTEMPTS = 8
MAX_STUDENTS = 10_000


@dataclass(frozen=True)
class Variant:
    student: str
    attempt: int
    mission: dict          # the variant's mission file, as data
    optimum: dict          # Optimum.to_dict()
    rejected: tuple[str, ...]


def read_roster(path: str | Path) -> list[str]:
    """Student ids from a CSV roster: the ``student`` (or ``id``) column, else the first column."""
    return [sid for sid, _ in read_roster_table(path)[1]]


def read_roster_table(path: str | Path) -> tuple[list[str] | None, list[tuple[str, list[str]]]]:
    """(the roster's header, or None when it has none; (student id, its whole row) per student)."""
    from trainwall.core.fileformats import read_text

    text = read_text(path, what="roster file")     # the hardened reader: regular files only, capped
    path = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:   # e.g. a field over csv's 131,072-character limit
        raise InputError("", str(path), f"not a CSV roster: {exc}", source=str(path)) from None
    if not rows:
        raise InputError("", "<empty>", "the roster has no rows", source=str(path))
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(n) for n in ("student", "id", "student_id") if n in header), None)
    body = rows[1:] if column is not None else rows
    students, seen = [], {}
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        if not any(cell.strip() for cell in row):
            continue
        sid = row[column or 0].strip() if (column or 0) < len(row) else ""
        if not sid:
            raise InputError(f"row {number}", row, "a student id is empty", source=str(path))
        if sid in seen:
            raise InputError(f"row {number}", sid, f"duplicate of row {seen[sid]}", source=str(path))
        seen[sid] = number
        students.append((sid, row))
    if len(students) > MAX_STUDENTS:
        raise InputError("", f"{len(students)} students", f"at most {MAX_STUDENTS} per roster", source=str(path))
    return (rows[0] if column is not None else None), students


def numbered_students(count: int) -> list[str]:
    if not 1 <= count <= MAX_STUDENTS:
        raise InputError("--count", count, f"must be 1 to {MAX_STUDENTS}")
    width = len(str(count))
    return [f"variant-{i:0{width}d}" for i in range(1, count + 1)]


def _stream(mission_id: str, seed: int, student: str, attempt: int) -> random.Random:
    digest = hashlib.sha256(f"{mission_id}\n{seed}\n{student}\n{attempt}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def draw(mission, seed: int, student: str, attempt: int) -> dict:
    """The variant's mission data for one draw (paths in sorted order, one value each)."""
    from trainwall.challenges.mission import lookup
    from trainwall.challenges.prose import ProseError, render_mission_data

    rng = _stream(mission.id, seed, student, attempt)
    data = _strip_none(mission.model_dump())
    data.pop("variants", None)
    for path in sorted(mission.variants.perturb):
        value = rng.choice(mission.variants.perturb[path])
        *parents, leaf = path.split(".")
        (lookup(data, ".".join(parents)) if parents else data)[leaf] = value
    key = hashlib.sha256(f"{seed}\n{student}\n{attempt}".encode("utf-8", "surrogatepass")).hexdigest()[:10]
    data["variant"] = key
    try:
        return render_mission_data(data)      # one story, told with the variant's own numbers
    except ProseError as exc:
        raise InputError(f"variants.perturb ({exc.field})", "{" + exc.placeholder + "}",
                         f"the drawn values must render the mission's prose: {exc.reason}") from None


def _strip_none(value):
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def assess(mission, solution, min_margin: float) -> str | None:
    """Why a solved variant is not a good exercise, or None when it is (the module's rules 1-4)."""
    from trainwall.challenges import plans
    from trainwall.challenges.mission import gap
    from trainwall.optimizer.costmodel import evaluate
    from trainwall.optimizer.highs import Status

    if solution.status is not Status.OPTIMAL:
        return f"no feasible plan ({solution.status.value})"
    if not solution.certified:
        return "the optimum is not certified"
    naive = evaluate(plans.written(mission, mission.naive))     # valid: parse_mission checked it
    if not mission.violations(naive):
        return "the naive plan breaks no wall"
    if mission.wall not in solution.binding:
        return f"the {mission.wall} wall does not bind (binding: {', '.join(solution.binding) or 'none'})"
    extra = solution.extra or {}
    nearest = extra.get("next_best")
    if nearest is not None:
        if nearest["objective"] is None:
            return f"more than {nearest['tied_modes']} modes tie at the optimum"
        margin = gap(mission.objective.sense, nearest["objective"], solution.objective)
        if margin < min_margin:
            return f"the next best plan is within {margin:.2%} of the optimum (need {min_margin:.0%})"
    return None


def solve_draw(data: dict) -> tuple[str | None, dict | None]:
    """Solve one drawn variant: (rejection reason, optimum) - run in a worker."""
    from trainwall.challenges.answers import Optimum
    from trainwall.challenges.mission import parse_mission
    from trainwall.challenges.solve import solve

    try:
        mission = parse_mission(data, f"variant {data.get('variant')}")
    except InputError as exc:
        return f"the drawn scenario is not valid ({exc})", None
    solution = solve(mission)
    reason = assess(mission, solution, _MARGIN)
    return reason, None if reason else Optimum.of(mission, solution).to_dict()


_MARGIN = 0.0


def _init(margin: float) -> None:
    global _MARGIN
    _MARGIN = margin


class DrawSolver:
    """A worker of ``--backend ray``: one actor solving a variant family's draws, warm across them."""

    def __init__(self, args: tuple) -> None:
        (margin,) = args
        _init(margin)

    def solve(self, data: dict) -> tuple[str | None, dict | None]:
        return solve_draw(data)


@contextmanager
def _solver(margin: float, jobs: int, backend: str, address: str | None):
    """A function mapping a list of draws to their (reason, optimum) in order: this process
    (one job), a process pool, or a Ray cluster's actors (:mod:`~trainwall.challenges.ray_backend`)."""
    _init(margin)
    if backend == "ray":
        from trainwall.challenges.ray_backend import RayPool

        with RayPool(DrawSolver, (margin,), address, jobs) as pool:
            yield lambda draws: pool.map("solve", draws)
        return
    workers = max(1, jobs or os.cpu_count() or 1)
    if workers == 1:
        yield lambda draws: map(solve_draw, draws)
        return
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(margin,)) as pool:
        yield lambda draws: pool.map(solve_draw, draws)


def generate(mission, seed: int, students: list[str], jobs: int = 0, progress: bool | None = None,
             backend: str = "local", address: str | None = None) -> list[Variant]:
    """One good variant per student (InputError when a student's draws all fail); ``backend``
    "ray" solves the draws on a Ray cluster (``address``, else a local one): the same variants."""
    from tqdm import tqdm

    if mission.variants is None:
        raise InputError("variants", None, f"{mission.id} has no [variants.perturb] table: nothing to vary")
    attempt = {s: 0 for s in students}
    reasons: dict[str, list[str]] = {s: [] for s in students}
    done: dict[str, Variant] = {}
    solved: dict[str, tuple] = {}         # draw content (without its id) -> (reason, optimum)
    bar = tqdm(total=len(students), desc="variants", unit="variant", disable=progress is False or None)
    with bar, _solver(mission.variants.min_margin, jobs, backend, address) as solve_all:
        pending = list(students)
        while pending:
            draws = {s: draw(mission, seed, s, attempt[s]) for s in pending}
            keys = {s: _content_key(d) for s, d in draws.items()}
            new = sorted({k: d for s, d in draws.items() if (k := keys[s]) not in solved}.items())
            for (key, _), result in zip(new, solve_all([d for _, d in new])):
                solved[key] = result
            retry = []
            for s in pending:
                reason, best = solved[keys[s]]
                if reason is None:
                    best = {**best, "reference": f"{mission.id}@{draws[s]['variant']}"}  # a shared draw's own id
                    done[s] = Variant(s, attempt[s], draws[s], best, tuple(reasons[s]))
                    bar.update()
                    continue
                reasons[s].append(reason)
                attempt[s] += 1
                if attempt[s] >= MAX_ATTEMPTS:
                    raise InputError("variants.perturb", s, f"no good variant in {MAX_ATTEMPTS} draws; the last "
                                     f"was rejected because {reason}: widen or shift the perturbation ranges")
                retry.append(s)
            pending = retry
    return [done[s] for s in students]


def distinct_optima(variants: list[Variant]) -> int:
    """How many different optimal configurations the roster got: the students who share
    one could share the answer (their Lock answers and binding still differ)."""
    return len({json.dumps(v.optimum.get("configuration"), sort_keys=True) for v in variants})


def _content_key(data: dict) -> str:
    body = {k: v for k, v in data.items() if k != "variant"}
    return json.dumps(body, sort_keys=True)


def held(out: Path) -> str:
    """What ``out`` already holds of a ``generate`` output, in words ("" when nothing)."""
    found = []
    for name, what in (("keys", "answer keys"), ("handouts", "handouts")):
        folder = out / name
        if not os.path.lexists(folder):
            continue
        if not folder.is_dir():
            found.append(f"a file {name} where the {what} go")
            continue
        entries = os.listdir(folder)
        if name == "keys" and entries:
            count = sum(1 for e in entries if e.endswith(".json"))
            extra = " and index.csv" if "index.csv" in entries else ""
            others = len(entries) - count - bool(extra)
            extra += f" and {others} other file{'s' * (others != 1)}" if others else ""
            found.append(f"{count} answer key{'s' * (count != 1)}{extra} in {name}/")
        elif entries:
            found.append(f"{len(entries)} handout{'s' * (len(entries) != 1)} in {name}/")
    return " and ".join(found)


def check_out(out: str | Path, force: bool = False, inputs=()) -> Path:
    """``--out`` before any work: a folder (or a path to make one), that holds no earlier set of
    handouts or answer keys unless ``force`` (which replaces them), and whose ``handouts/`` and
    ``keys/`` hold none of the ``inputs`` (the mission file, the roster): those are never replaced."""
    from trainwall.core.outputs import check_target

    out = check_target(out, "--out", folder=True)
    for name in ("handouts", "keys"):
        inside = (out / name).resolve()
        for given in inputs:
            if given is not None and Path(os.path.realpath(given)).is_relative_to(inside):
                raise InputError("--out", str(out), f"{name}/ holds the input {given}, which a new set would "
                                 "replace: choose another folder")
    found = held(out)
    if found and not force:
        raise InputError("--out", str(out), f"already holds {found} of an earlier run: choose another folder, "
                         "or give --force to replace them")
    return out


def write(variants: list[Variant], mission, seed: int, out: str | Path, force: bool = False, inputs=(),
          roster: list[str] | None = None) -> Path:
    """Handouts and answer keys in separate folders under ``out`` (deterministic bytes).

    ``roster``: the whole class, when ``variants`` are one shard of it (``generate --shard``):
    folder names and each key's position come from the whole roster, so shards merged
    (:func:`merge_shards`) are the bytes of one unsharded run. Refused as :func:`check_out`
    says. The set is written aside (a hidden folder in ``out``), then put in place of any
    earlier ``handouts/`` and ``keys/`` (``force``): a crash leaves the earlier set whole, and
    two runs never mix."""
    out = check_out(out, force, inputs)
    roster = roster if roster is not None else [v.student for v in variants]
    _replace_set(out, lambda stage: _write_set(variants, mission, seed, stage, roster))
    return out


def _replace_set(out: Path, fill) -> None:
    """``fill(stage)`` writes a set aside; its ``handouts/`` and ``keys/`` then replace ``out``'s."""
    from trainwall.core.outputs import remove_staging, replace_folder, staging_folder

    out.mkdir(parents=True, exist_ok=True)
    stage = staging_folder(out, "generate")
    try:
        fill(stage)
        for name in ("handouts", "keys"):
            replace_folder(stage / name, out / name, stage / f"replaced-{name}")
    finally:
        remove_staging(stage)


def _write_set(variants: list[Variant], mission, seed: int, out: Path, roster: list[str]) -> None:
    """``out/handouts/<student>/`` and ``out/keys/`` (with ``index.csv``), every file atomically."""
    from trainwall.challenges.mission import Mission
    from trainwall.core import VERSION
    from trainwall.core.outputs import atomic_write, unique_names

    handouts, keys = out / "handouts", out / "keys"
    handouts.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    names, position = dict(zip(roster, unique_names(roster))), {s: i for i, s in enumerate(roster)}
    solved_by = f"trainwall {VERSION}"          # which cost model and solver made these keys
    written = []
    for v in variants:
        name = names[v.student]
        folder = handouts / name
        if folder.resolve().parent != handouts.resolve():   # belt and braces: never outside DIR
            raise InputError("student", v.student, "a student id must not name a path outside the output folder")
        folder.mkdir(exist_ok=True)
        atomic_write(folder / "mission.toml", handout_text(v.mission, v.student))
        atomic_write(folder / "submission.toml",
                     submission_template(Mission.model_validate(v.mission), v.optimum["reference"], v.student))
        key = {"student": v.student, "seed": seed, "attempt": v.attempt, "rejected_draws": list(v.rejected),
               "mission": v.mission, "optimum": v.optimum, "solved_by": solved_by,
               "mission_sha256": hashlib.sha256(json.dumps(v.mission, sort_keys=True).encode()).hexdigest(),
               "position": position[v.student], "roster_size": len(roster)}
        atomic_write(keys / f"{name}.json", json.dumps(key, indent=2, sort_keys=True, ensure_ascii=True) + "\n")
        written.append((name, key))
    atomic_write(keys / "index.csv", index_text(written))


def index_text(keys: list[tuple[str, dict]]) -> str:
    """``keys/index.csv`` of (folder name, answer key) pairs, in roster order."""
    from trainwall.core.outputs import csv_cell

    index = io.StringIO()
    rows = csv.writer(index, lineterminator="\n")
    rows.writerow(("student", "folder", "mission", "objective", "binding", "attempts"))
    for name, key in sorted(keys, key=lambda item: item[1]["position"]):
        best = key["optimum"]
        rows.writerow((csv_cell(key["student"]), csv_cell(name), csv_cell(best["reference"]), repr(best["objective"]),
                       csv_cell(" ".join(best["binding"])), key["attempt"] + 1))
    return index.getvalue()


def merge_shards(shards: list[Path], out: str | Path) -> Path:
    """One ``generate`` output in ``out`` from shard outputs (``generate --shard K/N``): every
    handout and key copied, ``index.csv`` rebuilt in roster order: the bytes of one unsharded
    run. Refused (InputError) when a shard is missing (some roster position has no key), when
    two shards hold one student, or as :func:`check_out` refuses ``out``."""
    out = check_out(out, False, shards)
    found: dict[int, tuple[Path, str, dict]] = {}
    sizes = set()
    for shard in shards:
        for path in sorted((Path(shard) / "keys").glob("*.json")):
            key = json.loads(path.read_text())
            if not isinstance(key, dict) or "position" not in key:
                raise InputError("SHARD", str(path), "not an answer key of trainwall generate (no roster position)")
            if key["position"] in found:
                raise InputError("SHARD", str(path), f"a second key for student {key['student']!r}: the shards overlap")
            found[key["position"]] = (Path(shard), path.stem, key)
            sizes.add(key["roster_size"])
    missing = sorted(set(range(max(sizes, default=0))) - set(found))
    if len(sizes) != 1 or missing:
        raise InputError("SHARD", str(shards[0]), f"the shards hold {len(found)} of {max(sizes, default=0)} students' "
                         f"keys (roster positions {missing[:5]} missing): merge every shard of one roster")
    _replace_set(out, lambda stage: _copy_set(found.values(), stage))
    return out


def _copy_set(entries, stage: Path) -> None:
    """Each (shard, folder name, key)'s handout files and key into ``stage``, then the index."""
    from trainwall.core.outputs import atomic_write

    (stage / "keys").mkdir(parents=True, exist_ok=True)
    for shard, name, _ in entries:
        (stage / "handouts" / name).mkdir(parents=True, exist_ok=True)
        for file in ("mission.toml", "submission.toml"):
            atomic_write(stage / "handouts" / name / file, (shard / "handouts" / name / file).read_bytes())
        atomic_write(stage / "keys" / f"{name}.json", (shard / "keys" / f"{name}.json").read_bytes())
    atomic_write(stage / "keys" / "index.csv", index_text([(name, key) for _, name, key in entries]))


def handout_text(mission_data: dict, student: str) -> str:
    """A variant's handout ``mission.toml``: its mission, marked a handout (which ``solve``,
    ``plot`` and ``explain`` refuse without ``--instructor``), every table's keys in sorted
    order, so the handout written by ``generate`` and the one rebuilt from its answer key
    (a PrairieLearn bundle) are the same bytes."""
    import tomli_w

    header = f"# {mission_data['id']} variant for {_comment(student)}, made by trainwall generate\n"
    ordered = json.loads(json.dumps({**mission_data, "handout": True}, sort_keys=True))
    return header + tomli_w.dumps(ordered, multiline_strings=True)


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:80]


def submission_template(mission, reference: str, student: str | None, current: bool = False) -> str:
    """A submission for ``mission`` (a variant itself, so its limits and its rendered texts):
    the reference and student filled in, the decisions listed; with ``current`` the
    configuration holds the mission's current (naive) plan, a valid plan to explore from
    (``trainwall start``); the Lock questions and reflection prompts as comments."""
    import tomli_w

    m = mission.rendered()
    head = {"mission": reference, **({"student": student} if student else {})}
    lines = ["# Fill in [configuration] with your plan, [predictions] with your Lock answers and",
             "# [reflection] with your answers to the prompts; then: trainwall evaluate / grade this file",
             tomli_w.dumps(head).rstrip(), "", "# Decisions this mission opens:"]
    for name, values in m.decisions.items():
        if name == "training.micro_batches":   # not a config field: the global batch sets it
            lines.append(f"#   training.global_batch: micro-batches x data_parallel x micro_batch, with "
                         f"{values.min} to {values.max} micro-batches and at most {m.limits.global_batch}")
        else:
            lines.append(f"#   {name}: {_comment(str(values if isinstance(values, list) else values.model_dump()))}")
    if m.select_layers:
        lines.append("#   training.trainable: the indices of the layers that train")
    plan = _current_plan(m) if current else {"training": {}, "data": {}}
    lines += [tomli_w.dumps({"configuration": plan}).rstrip() if current else
              "[configuration.training]\n\n[configuration.data]", "", "[predictions]"]
    lines += [f"# {q.id} = ...   # {_comment(q.text)}" for q in m.lock]
    lines += ["", "[reflection]"] + [f"# {i} = \"...\"   # {_comment(p)}" for i, p in enumerate(m.reflection, 1)]
    return "\n".join(lines) + "\n"


def _current_plan(mission) -> dict:
    """The naive plan's value of each field a submission decides (part 3: the global batch)."""
    from trainwall.challenges import plans

    config = plans.written(mission, mission.naive, f"{mission.reference} current plan")
    out: dict = {"training": {}, "data": {}}
    for dotted in plans.stated_fields(mission):
        section, _, name = dotted.partition(".")
        value = plans.field_value(config, dotted)
        out[section][name] = list(value) if isinstance(value, tuple) else value
    return out
