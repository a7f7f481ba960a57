"""docs/INTERFACE.md and docs/DESIGN.md stay true: every documented key is in the real
output and every key of the real output is documented, every documented exit code is
produced by a real CLI run here, the documented examples are valid, the input formats'
key lists match the published JSON Schemas, DESIGN.md's layers are the ones
tests/test_architecture.py enforces, and nothing cites a file outside the repository.

The formats of the machine-readable blocks are described at the top of INTERFACE.md
("How to read the key lists"). Runs are in-process (``trainwall.cli.main``), on fast
missions only (mobile/1, mobile/2, tiny/3 and an infeasible copy of mobile/2).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from trainwall import cli

ROOT = Path(__file__).resolve().parents[1]
INTERFACE = ROOT / "docs" / "INTERFACE.md"
DESIGN = ROOT / "docs" / "DESIGN.md"
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
PLACEHOLDER = "<>"
LIST = "[]"


# --- running the CLI -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def run_cli(*argv) -> Run:
    """``trainwall ARGV`` in this process: exit code, stdout, stderr (usage errors and
    --help / --version leave by SystemExit, as from a shell)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Run(code, out.getvalue(), err.getvalue())


# --- the documents' machine-readable blocks --------------------------------------------------------

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def fenced(path: Path, kind: str) -> dict[str, str]:
    """Fenced blocks whose info string is ``KIND NAME``: name -> body."""
    found = {}
    for info, body in _FENCE.findall(path.read_text(encoding="utf-8")):
        words = info.split()
        if len(words) == 2 and words[0] == kind:
            assert words[1] not in found, f"{path.name}: two blocks '{kind} {words[1]}'"
            found[words[1]] = body
    return found


def entries(body: str) -> list[tuple[str, str]]:
    """(first word, rest of the line) for every line that is not blank or a comment."""
    out = []
    for line in body.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word, rest.strip()))
    return out


def segments(path: str) -> tuple[str, ...]:
    """``pipeline.stages.<stage>.capacity`` -> its segments; ``<x>`` -> PLACEHOLDER; ``a[]`` -> a, LIST."""
    out: list[str] = []
    for part in path.split(".") if path else []:
        if part.startswith("<") and part.endswith(">"):
            out.append(PLACEHOLDER)
        elif part.endswith(LIST):
            if part[:-2]:
                out.append(part[:-2])
            out.append(LIST)
        else:
            out.append(part)
    while out and out[-1] == LIST:       # "violations[]" is the list itself: "violations"
        out.pop()
    return tuple(out)


_SPLICE = re.compile(r"^(?:(?P<prefix>.*)\.)?\{(?P<list>[\w-]+)(?::(?P<below>[\w.]+))?\}$")


@dataclass(frozen=True)
class KeyList:
    own: frozenset        # paths written in the list itself
    spliced: frozenset    # paths spliced in from other lists (checked where those are defined)

    @property
    def all(self) -> frozenset:
        return self.own | self.spliced


def key_lists() -> dict[str, KeyList]:
    raw = {name: entries(body) for name, body in fenced(INTERFACE, "keys").items()}
    done: dict[str, KeyList] = {}

    def build(name: str, seen: tuple = ()) -> KeyList:
        if name in done:
            return done[name]
        assert name in raw, f"INTERFACE.md splices key list {name!r}, which is not defined"
        assert name not in seen, f"INTERFACE.md: key lists splice each other in a cycle: {seen + (name,)}"
        own, spliced = set(), set()
        for path, meaning in raw[name]:
            match = _SPLICE.match(path)
            if match:
                prefix = segments(match["prefix"] or "")
                below = segments(match["below"] or "")
                for p in build(match["list"], seen + (name,)).all:
                    if p[:len(below)] == below and len(p) > len(below):
                        spliced.add(prefix + p[len(below):])
                continue
            assert "{" not in path, f"INTERFACE.md, keys {name}: a splice must be the last segment: {path}"
            if segments(path):                       # "[]" alone: the top-level list itself
                own.add(segments(path))
        done[name] = KeyList(frozenset(own), frozenset(spliced))
        return done[name]

    return {name: build(name) for name in raw}


def flatten(value, path: tuple = ()) -> set[tuple]:
    """Every key path of a JSON value; list items that are objects add LIST to the path."""
    out = set()
    if isinstance(value, dict):
        for key, sub in value.items():
            out.add(path + (key,))
            out |= flatten(sub, path + (key,))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                out |= flatten(item, path + (LIST,))
    return out


def matches(pattern: tuple, path: tuple) -> bool:
    return len(pattern) == len(path) and all(p == PLACEHOLDER or p == q for p, q in zip(pattern, path))


def show(path: tuple) -> str:
    return ".".join(path).replace("." + LIST, LIST).replace(PLACEHOLDER, "<...>") or LIST


def assert_documented(name: str, outputs: list) -> None:
    """Both directions: every real key is in key list NAME, every key of the list is in some output."""
    keys = key_lists()
    assert name in keys, f"INTERFACE.md has no key list 'keys {name}'"
    documented = keys[name]
    real = set().union(*(flatten(o) for o in outputs))
    undocumented = sorted(show(p) for p in real if not any(matches(d, p) for d in documented.all))
    unseen = sorted(show(d) for d in documented.own if not any(matches(d, p) for p in real))
    assert not undocumented, f"keys of the real output missing from INTERFACE.md's 'keys {name}': {undocumented}"
    assert not unseen, f"INTERFACE.md's 'keys {name}' lists keys no output here has: {unseen}"


def documented_exit_codes() -> list[tuple[str, int]]:
    if not INTERFACE.is_file():
        return []
    pairs = []
    for command, body in fenced(INTERFACE, "exit-codes").items():
        for code, _ in entries(body):
            pairs.append((command, int(code)))
    return sorted(pairs)


def test_the_contract_documents_are_in_the_repository():
    assert INTERFACE.is_file() and DESIGN.is_file()
    assert key_lists() and documented_exit_codes()


# --- shared inputs ---------------------------------------------------------------------------------

def shipped_mission_data(mission_id: str) -> dict:
    track, part = mission_id.split("/")
    return tomllib.loads((ROOT / "challenges" / track / f"{part}.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs written once: an infeasible mission (mobile/2 with a 1 MB budget), an
    infeasible configuration, a bad configuration."""
    import tomli_w

    folder = tmp_path_factory.mktemp("contract")
    data = shipped_mission_data("mobile/2")
    data["scenario"]["system"]["memory_budget"] = 1_000_000
    data.pop("variants", None)
    infeasible_mission = folder / "no-room.toml"
    infeasible_mission.write_text(tomli_w.dumps(data), encoding="utf-8")
    infeasible_config = folder / "too-big.toml"
    infeasible_config.write_text('[workload]\nmodel = "llama-3-70b"\n[system]\naccelerator = "h100-sxm"\n'
                                 '[training]\nprecision = "fp32"\n', encoding="utf-8")
    bad_config = folder / "negative.toml"
    bad_config.write_text('[workload]\nmodel = "gpt-2"\n[system]\naccelerator = "h100-sxm"\n'
                          '[training]\nmicro_batch = -4\n', encoding="utf-8")
    return {"infeasible_mission": infeasible_mission, "infeasible_config": infeasible_config,
            "bad_config": bad_config, "folder": folder}


@pytest.fixture(scope="module")
def solved():
    """solve --json of one fast mission per part."""
    out = {}
    for mission_id in ("mobile/1", "mobile/2", "tiny/3"):
        run = run_cli("solve", mission_id, "--json")
        assert run.code == 0, run.err
        out[mission_id] = run.json()
    return out


def submission_toml(mission_id: str, data: dict, predictions: dict, moves: list[dict] = ()) -> str:
    import tomli_w

    doc = {"mission": mission_id, "student": "ab123", "configuration": {"data": data},
           "predictions": predictions}
    if moves:
        doc["moves"] = [{"data": m} for m in moves]
    return tomli_w.dumps(doc)


@pytest.fixture(scope="module")
def submissions(solved, files):
    """mobile/2 submissions: the optimum reached in two moves with right predictions, a
    starved plan, a malformed one."""
    best = solved["mobile/2"]
    chosen = {k: best["configuration"]["data"][k] for k in ("echo", "augmentation_on")}
    folder = files["folder"]
    paths = {
        "optimal": submission_toml("mobile/2", chosen, best["lock_answers"],
                                   [{"augmentation_on": chosen["augmentation_on"]}, {"echo": chosen["echo"]}])
        + '[reflection]\n1 = "The CPU stage is the longest pole."\n',
        "starved": submission_toml("mobile/2", {"echo": 1, "augmentation_on": "cpu"}, {}),
        "malformed": submission_toml("mobile/2", {"echo": 0}, {}),
    }
    for name, text in paths.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return {name: folder / f"{name}.toml" for name in paths}


@pytest.fixture(scope="module")
def generated(files):
    out = files["folder"] / "variants"
    run = run_cli("generate", "mobile/2", "--count", 1, "--seed", 7, "--out", out, "--jobs", 1)
    assert run.code == 0, run.err
    return out


# --- JSON outputs: both directions -----------------------------------------------------------------

def test_evaluate_json_keys(files):
    outputs = []
    for config in [*EXAMPLES, files["infeasible_config"]]:
        run = run_cli("evaluate", config, "--json")
        assert run.code in (0, 3), run.err
        outputs.append(run.json())
    assert any(o["violations"] for o in outputs)       # the violations' own keys are seen
    assert_documented("evaluate", outputs)


def test_solve_json_keys(solved, files):
    infeasible = run_cli("solve", files["infeasible_mission"], "--json")
    assert infeasible.code == 3, infeasible.err
    assert_documented("solve", [*solved.values(), infeasible.json()])


def test_missions_json_keys():
    run = run_cli("missions", "--json")
    assert run.code == 0
    assert_documented("missions", [run.json()])


@pytest.mark.parametrize("fmt", ["json", "gradescope", "prairielearn"])
def test_grade_results_keys(fmt, submissions, tmp_path):
    outputs = []
    for name in ("optimal", "malformed"):
        target = tmp_path / f"{name}.{fmt}"
        run = run_cli("grade", submissions[name], "--format", fmt, "--output", target)
        assert run.code == (0 if name == "optimal" else 2), run.err
        outputs.append(json.loads(target.read_text(encoding="utf-8")))
    assert_documented("grade" if fmt == "json" else fmt, outputs)


def test_answer_key_keys(generated):
    from trainwall.challenges.mission import parse_mission

    keys = sorted((generated / "keys").glob("*.json"))
    assert keys
    data = [json.loads(p.read_text(encoding="utf-8")) for p in keys]
    for key, path in zip(data, keys):
        parse_mission(key["mission"], str(path))       # "mission" is a mission file, as data
    pruned = [{k: v if k != "mission" else {} for k, v in key.items()} for key in data]
    assert_documented("answer-key", pruned)


# --- CSV outputs -----------------------------------------------------------------------------------

def documented_columns(name: str) -> list[str]:
    blocks = fenced(INTERFACE, "columns")
    assert name in blocks, f"INTERFACE.md has no block 'columns {name}'"
    return [word for word, _ in entries(blocks[name])]


def csv_header(path: Path) -> list[str]:
    return next(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_index_csv_columns(generated):
    assert csv_header(generated / "keys" / "index.csv") == documented_columns("index.csv")


def test_grading_a_folder_writes_the_documented_summary(submissions, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("optimal", "malformed"):
        (folder / f"{name}.toml").write_bytes(submissions[name].read_bytes())
    out = tmp_path / "results"
    run = run_cli("grade", folder, "--format", "json", "--output", out, "--jobs", 1)
    assert run.code == 0, run.err                       # a malformed file in a folder: still exit 0
    assert (out / "optimal.toml.json").is_file() and (out / "malformed.toml.json").is_file()
    assert (out / "scores.png").is_file()
    header, fixed = csv_header(out / "summary.csv"), documented_columns("summary.csv")
    assert header[:len(fixed)] == fixed
    details = header[len(fixed):]                       # one per Lock, then one per wall, each sorted
    locks, walls = [c for c in details if c.startswith("lock:")], [c for c in details if c.startswith("wall:")]
    assert details == sorted(locks) + sorted(walls) and locks and walls


# --- input formats: key lists against the JSON Schemas, examples that validate ---------------------

def schema_paths(node: dict, root: dict, path: tuple = ()) -> set[tuple]:
    """Every key path a JSON Schema accepts (maps as PLACEHOLDER, lists of objects as LIST)."""
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    out: set[tuple] = set()
    for combinator in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(combinator, []):
            out |= schema_paths(sub, root, path)
    if isinstance(node.get("items"), dict):
        out |= schema_paths(node["items"], root, path + (LIST,))
    for key, sub in node.get("properties", {}).items():
        out.add(path + (key,))
        out |= schema_paths(sub, root, path + (key,))
    maps = list(node.get("patternProperties", {}).values())
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        maps.append(extra)
    elif extra is True:
        maps.append({})
    for sub in maps:
        out.add(path + (PLACEHOLDER,))
        out |= schema_paths(sub, root, path + (PLACEHOLDER,))
    return out


@pytest.mark.parametrize("kind", ["config", "submission", "mission"])
def test_input_key_lists_match_the_published_schema(kind):
    run = run_cli("schema", kind)
    assert run.code == 0, run.err
    schema = run.json()
    accepted = schema_paths(schema, schema)
    documented = key_lists()[kind].all
    assert sorted(map(show, accepted - documented)) == [], f"fields the {kind} schema accepts, not in 'keys {kind}'"
    assert sorted(map(show, documented - accepted)) == [], f"'keys {kind}' lists fields the {kind} schema refuses"


def test_documented_configuration_examples_are_valid():
    from trainwall.core.config import parse_config

    examples = [body for info, body in _FENCE.findall(INTERFACE.read_text(encoding="utf-8"))
                if info.split() == ["toml", "config"]]
    assert examples
    for body in examples:
        parse_config(tomllib.loads(body), "INTERFACE.md example")


def test_documented_submission_example_is_gradable(tmp_path):
    examples = [body for info, body in _FENCE.findall(INTERFACE.read_text(encoding="utf-8"))
                if info.split() == ["toml", "submission"]]
    assert len(examples) == 1
    path = tmp_path / "example.toml"
    path.write_text(examples[0], encoding="utf-8")
    run = run_cli("grade", path, "--format", "json")
    assert run.code == 0, run.out
    assert run.json()["gradable"]


# --- exit codes: every documented one produced by a real run ---------------------------------------

@dataclass
class Context:
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    files: dict
    submissions: dict


SCENARIOS = {}


def produces(command: str, code: int):
    def register(scenario):
        SCENARIOS[(command, code)] = scenario
        return scenario
    return register


def one_line_error(run: Run, *expected: str) -> Run:
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert "Traceback" not in run.err and lines, run.err
    assert lines[-1].startswith("trainwall: "), run.err
    for text in expected:
        assert text in run.err, run.err
    return run


def internal_error(command: str, *argv):
    """Exit 1 for an unexpected exception in COMMAND: one line, no traceback."""
    def scenario(ctx: Context) -> Run:
        def broken(args):
            raise RuntimeError("simulated bug")

        ctx.monkeypatch.setattr(cli, f"_{command}", broken)
        return one_line_error(run_cli(command, *argv), "internal error: RuntimeError: simulated bug",
                              "TRAINWALL_DEBUG")
    return scenario


# evaluate
produces("evaluate", 0)(lambda ctx: run_cli("evaluate", ROOT / "examples" / "mobile.toml"))
produces("evaluate", 1)(internal_error("evaluate", ROOT / "examples" / "mobile.toml"))


@produces("evaluate", 3)
def _(ctx):
    run = run_cli("evaluate", ctx.files["infeasible_config"], "--json")
    assert run.json()["violations"][0]["constraint"] == "memory"
    return run


@produces("evaluate", 2)
def _(ctx):
    return one_line_error(run_cli("evaluate", ctx.files["bad_config"]), "negative.toml",
                          "training.micro_batch = -4")


# missions
produces("missions", 0)(lambda ctx: run_cli("missions"))
produces("missions", 2)(lambda ctx: one_line_error(run_cli("missions", "--bogus"), "--bogus"))
produces("missions", 1)(internal_error("missions"))

# show
produces("show", 0)(lambda ctx: run_cli("show", "cloud/3"))
produces("show", 2)(lambda ctx: one_line_error(run_cli("show", "cloud/9"), "cloud/9"))
produces("show", 1)(internal_error("show", "cloud/3"))


# start
@produces("start", 0)
def _(ctx):
    target = ctx.tmp_path / "start.toml"
    run = run_cli("start", "mobile/2", "-o", target)
    assert "mobile/2" in target.read_text(encoding="utf-8")
    return run


@produces("start", 2)
def _(ctx):
    target = ctx.tmp_path / "taken.toml"
    target.write_text("mine", encoding="utf-8")
    run = one_line_error(run_cli("start", "mobile/2", "-o", target), "already exists")
    assert target.read_text(encoding="utf-8") == "mine"
    return run


produces("start", 1)(internal_error("start", "mobile/2", "-o", "x.toml"))


# solve
@produces("solve", 0)
def _(ctx):
    run = run_cli("solve", "mobile/2", "--json")
    assert run.json()["status"] == "optimal"
    return run


@produces("solve", 3)
def _(ctx):
    run = run_cli("solve", ctx.files["infeasible_mission"], "--json")
    assert run.json()["status"] == "infeasible" and run.json()["conflicts"] == ["memory"]
    return run


produces("solve", 2)(lambda ctx: one_line_error(run_cli("solve", "mobile/9"), "did you mean"))


@produces("solve", 1)
def _(ctx):
    """The solver stops at a limit without a proof."""
    import trainwall.challenges.solve as solving
    from trainwall.optimizer.highs import Status

    real = solving.solve
    ctx.monkeypatch.setattr(solving, "solve", lambda mission: replace(real(mission), status=Status.LIMIT))
    run = run_cli("solve", "mobile/2", "--json")
    assert run.json()["status"] == "limit"
    return run


# grade
def grade(ctx: Context, submission: Path, *args) -> tuple[Run, dict]:
    """One submission graded to a JSON results file, which must exist whatever the exit code."""
    target = ctx.tmp_path / f"{submission.stem}-results.json"
    run = run_cli("grade", submission, "--format", "json", "--output", target, *args)
    return run, json.loads(target.read_text(encoding="utf-8"))


@produces("grade", 0)
def _(ctx):
    run, result = grade(ctx, ctx.submissions["optimal"], "--fail-under", "0.99")
    assert result["gradable"] and result["score"] == pytest.approx(result["max_score"])
    assert result["moves_to_balance"] == 2
    return run


@produces("grade", 3)
def _(ctx):
    run, result = grade(ctx, ctx.submissions["starved"], "--fail-under", "0.5")
    assert result["gradable"] and result["feasible"] is False and result["score"] < 0.5
    return run


@produces("grade", 2)
def _(ctx):
    run, result = grade(ctx, ctx.submissions["malformed"])
    assert result["gradable"] is False and result["score"] == 0
    assert "configuration.data.echo" in result["format_errors"][0]
    return one_line_error(run, "configuration.data.echo")


@produces("grade", 1)
def _(ctx):
    """The mission graded against has no feasible plan: not the student's fault."""
    run, result = grade(ctx, ctx.submissions["starved"], "--mission", ctx.files["infeasible_mission"])
    assert result["gradable"] is False and "no feasible plan" in result["internal_error"]
    return one_line_error(run, "internal error")


# generate
@produces("generate", 0)
def _(ctx):
    run = run_cli("generate", "mobile/2", "--count", 2, "--seed", 1, "--out", ctx.tmp_path / "v", "--jobs", 1)
    assert (ctx.tmp_path / "v" / "keys" / "index.csv").is_file()
    assert (ctx.tmp_path / "v" / "handouts" / "variant-1" / "submission.toml").is_file()
    return run


produces("generate", 2)(lambda ctx: one_line_error(
    run_cli("generate", "mobile/2", "--count", 0, "--seed", 1, "--out", ctx.tmp_path / "v"), "--count"))
produces("generate", 1)(internal_error("generate", "mobile/2", "--count", 1, "--seed", 1, "--out", "unused"))


# regrade
@produces("regrade", 0)
def _(ctx):
    folder, results = ctx.tmp_path / "class", ctx.tmp_path / "results"
    folder.mkdir()
    (folder / "a.toml").write_bytes(ctx.submissions["optimal"].read_bytes())
    assert run_cli("grade", folder, "--format", "json", "--output", results, "--jobs", 1).code == 0
    run = run_cli("regrade", folder, "--results", results, "--mission", "mobile/1", "--jobs", 1)
    assert run.out.splitlines()[0] == ",".join(documented_columns("regrade"))
    return run


produces("regrade", 2)(lambda ctx: one_line_error(
    run_cli("regrade", ctx.tmp_path, "--results", ctx.tmp_path, "--mission", "mobile/1"), "summary.csv"))
produces("regrade", 1)(internal_error("regrade", "unused", "--results", "unused", "--mission", "mobile/1"))


# merge
@produces("merge", 0)
def _(ctx):
    folder, shard, merged = ctx.tmp_path / "class", ctx.tmp_path / "shard", ctx.tmp_path / "merged"
    folder.mkdir()
    (folder / "a.toml").write_bytes(ctx.submissions["optimal"].read_bytes())
    assert run_cli("grade", folder, "--format", "json", "--output", shard, "--jobs", 1, "--shard", "1/1").code == 0
    run = run_cli("merge", shard, "--submissions", folder, "--output", merged, "--format", "json")
    assert (merged / "summary.csv").is_file() and (merged / "scores.png").is_file()
    return run


produces("merge", 2)(lambda ctx: one_line_error(
    run_cli("merge", ctx.tmp_path / "nowhere", "--submissions", ctx.tmp_path, "--output", ctx.tmp_path / "m"),
    "not a folder"))
produces("merge", 1)(internal_error("merge", "unused", "--submissions", "unused", "--output", "unused"))


# autograder
@produces("autograder", 0)
def _(ctx):
    run = run_cli("autograder", "gradescope", "mobile/2", "--out", ctx.tmp_path / "bundle")
    assert {p.name for p in (ctx.tmp_path / "bundle").iterdir()} >= {"setup.sh", "run_autograder", "keys"}
    return run


@produces("autograder", 2)
def _(ctx):
    (ctx.tmp_path / "empty").mkdir()
    return one_line_error(run_cli("autograder", "gradescope", ctx.tmp_path / "empty", "--out", ctx.tmp_path / "b"),
                          "no answer keys")


produces("autograder", 1)(lambda ctx: one_line_error(
    run_cli("autograder", "gradescope", ctx.files["infeasible_mission"], "--out", ctx.tmp_path / "b"),
    "no feasible plan"))


# lab
@produces("lab", 0)
def _(ctx):
    started = []
    ctx.monkeypatch.setattr("os.execv", lambda path, line: started.append(line))
    run = run_cli("lab", "mobile/1", "--no-browser", "--out", ctx.tmp_path / "s.toml")
    assert started and "--headless" in started[0] and started[0][started[0].index("--") + 1:][-1] == "mobile/1"
    return run


produces("lab", 2)(lambda ctx: one_line_error(run_cli("lab", "cloud/9", "--no-browser"), "cloud/9"))
produces("lab", 1)(internal_error("lab", "mobile/1"))


# plot
@produces("plot", 0)
def _(ctx):
    run = run_cli("plot", "waterfall", ROOT / "examples" / "mobile.toml", "-o", ctx.tmp_path / "w.svg")
    assert (ctx.tmp_path / "w.svg").stat().st_size > 0
    return run


produces("plot", 2)(lambda ctx: one_line_error(
    run_cli("plot", "waterfall", ROOT / "examples" / "mobile.toml", "-o", ctx.tmp_path / "w.gif"), ".png"))
produces("plot", 1)(lambda ctx: one_line_error(
    run_cli("plot", "waterfall", ctx.files["infeasible_mission"], "-o", ctx.tmp_path / "w.svg"), "no feasible plan"))

# explain
produces("explain", 0)(lambda ctx: run_cli("explain", ROOT / "examples" / "mobile.toml"))
produces("explain", 2)(lambda ctx: one_line_error(run_cli("explain", ctx.tmp_path / "missing.toml"), "no such file"))
produces("explain", 1)(lambda ctx: one_line_error(run_cli("explain", ctx.files["infeasible_mission"]),
                                                  "no feasible plan"))

# schema
produces("schema", 0)(lambda ctx: run_cli("schema", "config"))
produces("schema", 2)(lambda ctx: one_line_error(run_cli("schema", "bogus"), "invalid choice"))
produces("schema", 1)(internal_error("schema", "config"))


@produces("*", 141)
def _(ctx):
    """A real pipe whose reader is gone before trainwall writes."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "trainwall.cli", "missions"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read().decode()
    process.stderr.close()
    code = process.wait(timeout=60)
    assert "Traceback" not in err and not err.strip(), err
    return Run(code, "", err)


@pytest.fixture
def context(tmp_path, monkeypatch, files, submissions):
    return Context(tmp_path, monkeypatch, files, submissions)


@pytest.mark.parametrize("command,code", documented_exit_codes(), ids=lambda x: str(x))
def test_every_documented_exit_code_is_produced(command, code, context):
    scenario = SCENARIOS.get((command, code))
    assert scenario is not None, (f"docs/INTERFACE.md documents exit {code} for `trainwall {command}`, but no "
                                  f"scenario in tests/test_contract.py produces it")
    run = scenario(context)
    assert run.code == code, f"expected exit {code}, got {run.code}\nstdout: {run.out[-2000:]}\nstderr: {run.err[-2000:]}"


def test_every_exit_code_a_scenario_produces_is_documented():
    undocumented = sorted(set(SCENARIOS) - set(documented_exit_codes()))
    assert not undocumented, f"exit codes the CLI produces but docs/INTERFACE.md does not document: {undocumented}"


def test_every_command_documents_its_exit_codes():
    run = run_cli("--help")
    assert run.code == 0
    commands = set(re.search(r"\{([\w,-]+)\}", run.out).group(1).split(","))
    documented = {command for command, _ in documented_exit_codes()} - {"*"}     # "*": any command
    assert commands == documented, f"commands {sorted(commands)} vs exit-codes blocks {sorted(documented)}"
    text = INTERFACE.read_text(encoding="utf-8")
    for command in commands:
        assert f"### `trainwall {command}" in text, f"INTERFACE.md has no section for `trainwall {command}`"


# --- DESIGN.md: the layers are the ones tests/test_architecture.py enforces ----------------------

def design_layers() -> list[tuple[str, tuple[str, ...]]]:
    bodies = [b for info, b in _FENCE.findall(DESIGN.read_text(encoding="utf-8")) if info.strip() == "layers"]
    assert len(bodies) == 1, "docs/DESIGN.md needs exactly one ```layers block"
    return [(layer, tuple(rest.split())) for layer, rest in entries(bodies[0])]


def test_design_layers_exist_and_are_the_enforced_ones():
    layers = design_layers()
    names = [name for _, held in layers for name in held]
    missing = sorted(n for n in names if importlib.util.find_spec(n.rstrip(".")) is None)
    assert not missing, f"docs/DESIGN.md's layers name modules that do not exist: {missing}"
    architecture = ROOT / "tests" / "test_architecture.py"
    if not architecture.is_file():
        pytest.skip("tests/test_architecture.py is not there to compare with")
    spec = importlib.util.spec_from_file_location("_architecture_for_contract", architecture)
    enforced = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(enforced)
    assert [set(held) for _, held in layers] == [set(held) for _, held in enforced.LAYERS], (
        "docs/DESIGN.md's ```layers block and tests/test_architecture.py's LAYERS differ")


# --- nothing cites a file outside the repository ---------------------------------------------------

SCANNED = {".py", ".md", ".sh", ".toml"}
SKIPPED_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist", ".venv", "venv",
                "node_modules", ".mypy_cache", ".ruff_cache"}
OUTSIDE = re.compile(r"\.\./shared|/work/shared")
CITATION = re.compile(r"[\w./-]*\b(?:INTERFACE|DESIGN)\.md")


def repository_files():
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in relative.parts[:-1]):
            continue
        # this file spells the patterns it looks for
        if path.is_file() and path.suffix in SCANNED and path != Path(__file__).resolve():
            yield path, relative


def test_nothing_cites_a_file_outside_the_repository():
    bad = []
    for path, relative in repository_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if OUTSIDE.search(line):
                bad.append(f"{relative}:{number}: {line.strip()[:120]}")
            for match in CITATION.finditer(line):
                cited = match.group(0)
                if not cited.endswith(("docs/INTERFACE.md", "docs/DESIGN.md")) or "shared" in cited:
                    bad.append(f"{relative}:{number}: cites {cited!r}, not docs/INTERFACE.md or docs/DESIGN.md")
    assert not bad, "citations of files outside the repository:\n" + "\n".join(bad)
