"""Gradescope bundles as shipped: built from this trainwall, set up in a fresh virtual
environment by their own setup.sh (dependencies from the package index, trainwall from the
wheel inside the bundle), then run by their own run_autograder on a Gradescope-shaped tree
(paths parameterised by AUTOGRADER_ROOT, so no root is needed).

One assignment holds several missions and a generate output's variants; a folder of
several files is graded file by file against the key each names; the submitting account
(submission_metadata.json) decides whose variant may be graded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from platform_schemas import GRADESCOPE
from test_grading import optimal_submission, submission_text
from trainwall.challenges import wheel
from trainwall.cli import main


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    out = tmp_path_factory.mktemp("variants")
    roster = out / "roster.csv"
    roster.write_text("student\nada@example.edu\nbo@example.edu\n")
    assert main(["generate", "tiny/2", "--roster", str(roster), "--seed", "7", "--out", str(out / "tiny2")]) == 0
    return out / "tiny2"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, variants):
    out = tmp_path_factory.mktemp("bundle")
    assert main(["autograder", "gradescope", "mobile/1", "tiny/1", str(variants), "--out", str(out),
                 "--points", "tiny/1=4", "--visibility", "after_due_date"]) == 0
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory, bundle):
    """The bundle's setup.sh run as Gradescope runs it, on a copy of the tree: (root, its venv's python)."""
    root = tmp_path_factory.mktemp("autograder")
    shutil.copytree(bundle, root / "source")
    run_setup(root / "source" / "setup.sh", {"AUTOGRADER_ROOT": str(root)})
    return root, root / "venv" / "bin" / "python"


def run_setup(script: Path, variables: dict[str, str]) -> None:
    """A bundle's setup script, run as its platform runs it (without this checkout on the
    path); skipped only where no package index is reachable for the dependencies."""
    env = {**os.environ, **variables}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 and "pip" in done.stderr and ("connection" in done.stderr.lower()
                                                          or "resolve" in done.stderr.lower()):
        pytest.skip(f"no package index reachable for the dependencies: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def run_in(root: Path, files: dict[str, str], users=None) -> dict:
    """Fill submission/ (and submission_metadata.json), run run_autograder, read results.json."""
    submission = root / "submission"
    shutil.rmtree(submission, ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    submission.mkdir()
    for name, text in files.items():
        (submission / name).write_text(text)
    metadata = root / "submission_metadata.json"
    metadata.unlink(missing_ok=True)
    if users is not None:
        metadata.write_text(json.dumps({"id": 1, "users": users, "previous_submissions": []}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRAINWALL_PYTHON")}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env={**env, "AUTOGRADER_ROOT": str(root)},
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, GRADESCOPE)
    return data


def handout_submission(variants: Path, student: str) -> str:
    """A student's own variant, answered with its optimum (from the key, as a solver would)."""
    from trainwall.challenges.answers import load_keys

    key = next(k for k in load_keys(variants).values() if k.student == student)
    best = key.optimum.configuration
    return submission_text(key.mission.reference, best["training"], best["data"], key.optimum.lock_answers)


def test_the_bundle_installs_trainwall_from_its_own_wheel(installed):
    root, python = installed
    where = subprocess.run([str(python), "-c", "import trainwall; print(trainwall.__file__)"],
                           capture_output=True, text=True, cwd=root)
    assert where.returncode == 0 and str(root / "venv") in where.stdout      # not this checkout


def test_one_assignment_grades_every_mission_file_by_file(installed, variants):
    root, _ = installed
    data = run_in(root, {"a.toml": optimal_submission("mobile/1"), "b.toml": optimal_submission("tiny/1"),
                         "c.toml": handout_submission(variants, "ada@example.edu")},
                  users=[{"email": "Ada@Example.edu", "id": 11, "name": "Ada"}])
    # points 1, 4 and tiny/2's own 1, of which its 5-move rule's 0.1 needs a move log (none here)
    assert data["score"] == pytest.approx(1 + 4 + 0.9)
    assert data["visibility"] == "after_due_date"
    assert {t["name"].split("]")[0] for t in data["tests"]} == {"[mobile/1", "[tiny/1", "[tiny/2"}
    twice = run_in(root, {"a.toml": optimal_submission("mobile/1"), "b.toml": optimal_submission("mobile/1")})
    assert any(t["name"] == "b.toml: not graded" for t in twice["tests"])
    assert {t["visibility"] for t in twice["tests"]} == {"after_due_date"}      # the bundle's notes too


def test_a_missing_mission_scores_zero_and_says_so(installed):
    root, _ = installed
    data = run_in(root, {"a.toml": optimal_submission("mobile/1")})
    assert data["score"] == pytest.approx(1.0)
    assert "No submission file for tiny/1" in data["output"] and "No submission file for tiny/2" in data["output"]


def test_a_variant_submitted_from_another_account_grades_zero(installed, variants):
    root, _ = installed
    copied = handout_submission(variants, "ada@example.edu").replace('student = "ab123"', 'student = "ada@example.edu"')
    data = run_in(root, {"c.toml": copied}, users=[{"email": "bo@example.edu", "id": 12, "name": "Bo"}])
    assert data["score"] == 0.0
    assert "belongs to another student" in json.dumps(data)


def test_a_tampered_key_is_the_graders_failure(installed, tmp_path):
    root, _ = installed
    copy = tmp_path / "root"
    shutil.copytree(root / "source", copy / "source")
    os.symlink(root / "venv", copy / "venv")
    key = copy / "source" / "keys" / "mobile-1.json"
    key.write_text(key.read_text().replace('"objective"', '"objective" ', 1))
    data = run_in(copy, {"a.toml": optimal_submission("mobile/1")})
    assert data["score"] == 0.0 and "autograder itself failed" in data["output"] and "mobile-1.json" in data["output"]


def test_the_wheel_is_the_same_built_from_an_install(installed, tmp_path):
    """The wheel rebuilt by the trainwall the bundle installed equals the one built here: the
    source tree and an installed wheel give one archive."""
    root, python = installed
    here = wheel.build(tmp_path / "here")
    done = subprocess.run([str(python), "-c", "import sys; from trainwall.challenges import wheel; "
                           "print(wheel.build(sys.argv[1]))", str(tmp_path / "there")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    there = Path(done.stdout.strip())
    assert sorted(zipfile.ZipFile(here).namelist()) == sorted(zipfile.ZipFile(there).namelist())
    assert hashlib.sha256(here.read_bytes()).digest() == hashlib.sha256(there.read_bytes()).digest()


def test_bundle_json_records_the_version_and_every_keys_hash(bundle):
    config = json.loads((bundle / "bundle.json").read_text())
    from trainwall import __version__

    assert config["trainwall"] == __version__
    assert config["missions"] == ["mobile/1", "tiny/1", "tiny/2"]
    assert config["points"] == {"mobile/1": 1.0, "tiny/1": 4.0, "tiny/2": 1.0}
    for name, digest in config["keys"].items():
        assert hashlib.sha256((bundle / "keys" / name).read_bytes()).hexdigest() == digest
    assert len(config["keys"]) == 4                                   # two missions, two variants


@pytest.mark.parametrize("args, message", [
    (["mobile/1", "mobile/1"], "in the bundle already"),
    (["mobile/1", "--points", "tiny/1=3"], "the bundle holds mobile/1"),
])
def test_a_bundle_that_cannot_be_one_is_refused(tmp_path, capsys, args, message):
    assert main(["autograder", "gradescope", *args, "--out", str(tmp_path / "b")]) == 2
    assert message in capsys.readouterr().err


def test_points_must_be_numbers(tmp_path, capsys):
    assert main(["autograder", "gradescope", "mobile/1", "--points", "mobile/1=lots", "--out", str(tmp_path)]) == 2
    assert "MISSION=P" in capsys.readouterr().err


def test_setup_never_installs_trainwall_by_name(bundle):
    setup = (bundle / "setup.sh").read_text()
    assert "pip install trainwall" not in setup and wheel.wheel_name() in setup
    assert (bundle / wheel.wheel_name()).is_file()
    assert sys.version_info >= (3, 11)


def test_grade_identity_binds_a_variant_to_the_submitting_account(tmp_path, variants):
    submission = tmp_path / "c.toml"
    submission.write_text(handout_submission(variants, "ada@example.edu"))

    def graded(users) -> tuple[int, dict]:
        metadata = tmp_path / "submission_metadata.json"
        metadata.write_text(json.dumps({"id": 1, "users": users}))
        out = tmp_path / "results.json"
        code = main(["grade", str(submission), "--mission", str(variants), "--identity", str(metadata),
                     "--format", "json", "--output", str(out)])
        return code, json.loads(out.read_text())

    code, result = graded([{"email": "bo@example.edu", "id": 12, "name": "Ada"}])   # a name proves nothing
    assert code == 2 and result["score"] == 0 and "belongs to another student" in result["format_errors"][0]
    code, result = graded([{"email": "x@example.edu", "id": 3, "sid": "ADA@example.edu"}])
    assert code == 0 and result["score"] > 0
    code, result = graded([])
    assert code == 2 and "users" in result["internal_error"]
