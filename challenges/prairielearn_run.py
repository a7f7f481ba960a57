"""What a PrairieLearn question's ``tests/run.sh`` runs for each grading job:
``python -m trainwall.challenges.prairielearn_run ROOT``.

ROOT is PrairieLearn's ``/grade`` (docs.prairielearn.com, "External Grading"; any folder
of that shape in a test):

* ``tests/bundle.json`` and ``tests/keys/*.json`` (the question's, written by ``trainwall
  autograder prairielearn``): the mission, the trainwall version and each answer key's
  sha256, checked first;
* ``data/data.json``: the variant's ``params``; ``params.variant`` names the trainwall
  variant this PrairieLearn variant was given (empty for a mission without variants). A
  file made for another variant is refused as another student's;
* ``student/``: the uploaded file (one ``submission.toml``; any one file with a submission
  suffix), graded against the question's keys only: a file for another mission is refused.

It always writes ``results/results.json`` in PrairieLearn's format
(:func:`trainwall.challenges.results.prairielearn`). A submission PrairieLearn should not
count (malformed, another variant's or mission's) is ``"gradable": false`` with
its reason, so no attempt is spent; a problem with the bundle or PrairieLearn's files is
the grader's failure, said as such, never the student's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainwall.challenges.bundle_run import BundleError, read_bundle, submitted_files
from trainwall.core.errors import TrainwallError

FAILED = "The autograder itself failed; this is not your mistake. Tell your instructor: "


def variant_of(data_file: Path) -> str | None:
    """``params.variant`` of PrairieLearn's ``data.json`` (None when the question has no variants)."""
    try:
        data = json.loads(data_file.read_text(encoding="utf-8"))
        variant = data["params"].get("variant", "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(f"PrairieLearn's data/data.json is missing or broken ({type(exc).__name__}: {exc})") \
            from None
    if not isinstance(variant, str):
        raise BundleError(f"params.variant in data/data.json is {variant!r}, not a variant id")
    return variant or None


def grade_job(root: Path) -> str:
    """The ``results.json`` text for ``root`` (the module docstring)."""
    from trainwall.challenges.grading import MissionSource, grade_file
    from trainwall.challenges.results import prairielearn

    read_bundle(root / "tests")
    variant = variant_of(root / "data" / "data.json")
    try:
        source = MissionSource.open(str(root / "tests" / "keys"),
                                    None if variant is None else frozenset({variant.casefold()}))
    except TrainwallError as exc:
        raise BundleError(str(exc)) from None
    files = submitted_files(root / "student")
    if len(files) != 1:
        found = ", ".join(p.name for p in files[:5]) or "none"
        return not_gradable(f"upload exactly one submission file (submission.toml); found {found}")
    return prairielearn(grade_file(files[0], source))


def not_gradable(reason: str, message: str = "not gradable") -> str:
    """A result PrairieLearn does not count (no attempt spent), with its reason."""
    from trainwall.challenges.results import shown

    return json.dumps({"gradable": False, "score": 0.0, "message": message, "format_errors": [shown(reason)]},
                      indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def run(root: Path) -> int:
    """Grade and write ``results/results.json`` (always: a failure writes one that says so)."""
    from trainwall.core.outputs import atomic_write

    try:
        text = grade_job(root)
    except BundleError as exc:
        text = not_gradable(FAILED + str(exc), "the grader failed")
    except Exception as exc:  # noqa: BLE001 - the grader's own failure still writes a results file
        text = not_gradable(f"{FAILED}{type(exc).__name__}: {exc}", "the grader failed")
    (root / "results").mkdir(parents=True, exist_ok=True)
    atomic_write(root / "results" / "results.json", text)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1] if len(sys.argv) > 1 else "/grade")))
