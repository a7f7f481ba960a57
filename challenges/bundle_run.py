"""What a Gradescope bundle's ``run_autograder`` runs for each submission:
``python -m trainwall.challenges.bundle_run ROOT``.

ROOT is Gradescope's ``/autograder`` (gradescope-autograders.readthedocs.io,
"Autograder Specifications"; any folder of that shape in a test):

* ``source/bundle.json`` (written by ``trainwall autograder``): the missions the
  assignment holds, each one's points, the results' visibility, the trainwall version
  and each answer key's sha256;
* ``source/keys/*.json``: the answer keys (checked against those hashes first);
* ``submission/``: the student's files. Every regular file in it (never a link or a
  folder) with a submission suffix (.toml, .json, .yaml, .yml, any case) is graded against the
  key its ``mission`` field names. A second file for a mission already graded is not
  graded, and a test says so;
* ``submission_metadata.json``: who submitted. A variant drawn for one student is
  graded only for that account (email, student id or Gradescope id), whatever the
  file's own ``student`` field says.

It always writes ``results/results.json``: one test per check, named after its mission;
a mission with no file scores 0 in a test that says so; the score is the sum over the
missions of the mission's points times the share of its grade. A problem with the bundle
or the platform's files is the grader's failure, said as such, never the student's.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from trainwall.core.errors import TrainwallError

SUFFIXES = (".toml", ".json", ".yaml", ".yml")
#: More files than this in one submission are not graded (a student uploads a few).
MAX_FILES = 32
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class BundleError(Exception):
    """The bundle or the platform's files are wrong: the grader's failure, not the student's."""


def read_bundle(source: Path) -> dict:
    """``bundle.json``, with every answer key's hash checked."""
    try:
        config = json.loads((source / "bundle.json").read_text(encoding="utf-8"))
        for name, digest in config["keys"].items():
            if hashlib.sha256((source / "keys" / name).read_bytes()).hexdigest() != digest:
                raise BundleError(f"the answer key {name} differs from the one the bundle was built with")
        return config
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"the bundle's bundle.json is missing or broken ({type(exc).__name__}: {exc})") from None


def submitted_files(folder: Path) -> list[Path]:
    """The submission folder's regular files with a submission suffix, in name order: never a
    folder (answer.toml/), never a link (it could point at the answer keys or anywhere else)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and not p.is_symlink() and p.is_file())


def grade_submission_folder(root: Path) -> str:
    """The ``results.json`` text for ``root`` (the module docstring)."""
    from trainwall.challenges.grading import MissionSource, grade_file, platform_identities
    from trainwall.challenges.mission import mission_id

    config = read_bundle(root / "source")
    metadata = root / "submission_metadata.json"
    try:
        identities = platform_identities(metadata) if metadata.exists() else None
        source = MissionSource.open(str(root / "source" / "keys"), identities)
    except TrainwallError as exc:
        raise BundleError(str(exc)) from None
    graded: dict[str, object] = {}
    extra_tests, visibility = [], config["visibility"]
    files = submitted_files(root / "submission")
    for path in files[:MAX_FILES]:
        grade = grade_file(path, source)
        mission = mission_id(grade.mission or "")
        if mission in graded:
            extra_tests.append(_note(f"{path.name}: not graded", f"a file for {mission} was graded already "
                                     f"({graded[mission].source.rsplit('/', 1)[-1]}): submit one file per mission",
                                     visibility=visibility))
        else:
            graded[mission if mission in config["missions"] else f"?{path.name}"] = grade
    if len(files) > MAX_FILES:
        extra_tests.append(_note("too many files", f"{len(files)} files: only the first {MAX_FILES} were read",
                                 visibility=visibility))
    return _results(config, graded, extra_tests)


def _results(config: dict, graded: dict, extra_tests: list[dict]) -> str:
    from trainwall.challenges.results import gradescope_extra, gradescope_file, gradescope_summary, gradescope_tests

    visibility = config["visibility"]
    tests, lines, score, extra = [], [], 0.0, {}
    for mission in config["missions"]:
        points = float(config["points"][mission])
        grade = graded.get(mission)
        if grade is None:
            wanted = (f"No submission file for {mission} found: upload one .toml, .json, .yaml or .yml file "
                      f"whose mission field names it (a file, not a folder).")
            tests.append(_note(f"[{mission}] submitted", wanted, points, visibility=visibility))
            lines.append(wanted)
            continue
        scale = points / grade.max_score if grade.max_score else 0.0
        tests += gradescope_tests(grade, f"[{mission}] ", scale, visibility)
        score += grade.score * scale
        lines.append(f"{mission}: {gradescope_summary(grade)}")
        extra[mission] = gradescope_extra(grade)
    for name, grade in graded.items():
        if name.startswith("?"):      # a file naming no mission of this assignment: what it says
            tests += gradescope_tests(grade, f"[{name[1:]}] ", 0.0, visibility)
            lines.append(f"{name[1:]}: {gradescope_summary(grade)}")
    return gradescope_file(score, "\n".join(lines), tests + extra_tests, extra, visibility)


def _note(name: str, output: str, points: float = 0.0, *, visibility: str) -> dict:
    from trainwall.challenges.results import GRADESCOPE_FORMAT, shown

    return {"name": shown(name, 256), "score": 0.0, "max_score": points, "status": "failed",
            "output": shown(output), "output_format": GRADESCOPE_FORMAT, "name_format": GRADESCOPE_FORMAT,
            "visibility": visibility}


def run(root: Path) -> int:
    """Grade and write ``results/results.json`` (always: a failure writes one that says so)."""
    from trainwall.challenges.results import gradescope_file
    from trainwall.core.outputs import atomic_write

    try:
        text = grade_submission_folder(root)
    except BundleError as exc:
        text = gradescope_file(0.0, f"The autograder itself failed; this is not your mistake. Tell your "
                               f"instructor: {exc}", [], {})
    except Exception as exc:  # noqa: BLE001 - the grader's own failure still writes a results file
        text = gradescope_file(0.0, f"The autograder itself failed; this is not your mistake. Tell your "
                               f"instructor: {type(exc).__name__}: {exc}", [], {})
    (root / "results").mkdir(parents=True, exist_ok=True)
    atomic_write(root / "results" / "results.json", text)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1] if len(sys.argv) > 1 else "/autograder")))
