"""Writers of a :class:`~trainwall.challenges.grading.Grade`: text, json, gradescope,
prairielearn and junit. Each returns the file's text; every string from the
submission is cleaned first (control characters removed, length capped) so hostile
input cannot break a JSON, XML or terminal reader.

Platform formats, as their documentation gives them:

* Gradescope (gradescope-autograders.readthedocs.io, "Autograder Specifications"):
  ``/autograder/results/results.json`` with ``score``, ``output``, ``visibility``,
  ``stdout_visibility`` and ``tests[]`` of ``name``, ``score``, ``max_score``,
  ``status`` (passed | failed), ``output``, ``visibility``.
* PrairieLearn (docs.prairielearn.com, "External Grading", "Grading results"):
  ``/grade/results/results.json`` with ``gradable``, ``score`` in [0, 1], ``message``,
  ``output``, ``tests[]`` of ``name``, ``points``, ``max_points``, ``message``,
  ``output``; ``gradable: false`` with ``format_errors`` for a malformed submission.
* JUnit XML (the Ant/Surefire schema CI systems render): one ``<testsuite>`` per
  submission, a ``<failure>`` per failed check, an ``<error>`` for a malformed or
  unreadable submission.
"""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree as ET

FORMATS = ("text", "json", "gradescope", "prairielearn", "junit")
#: Where each platform expects its results file.
PLATFORM_PATHS = {"gradescope": "/autograder/results/results.json", "prairielearn": "/grade/results/results.json"}
SUFFIX = {"text": ".txt", "json": ".json", "gradescope": ".json", "prairielearn": ".json", "junit": ".xml"}

_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(text: object, limit: int = 4000) -> str:
    """Printable, XML-safe text of at most ``limit`` characters."""
    text = _UNSAFE.sub("\N{REPLACEMENT CHARACTER}", str(text))
    return text if len(text) <= limit else text[:limit] + "..."


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=True) + "\n"


def _status_line(grade) -> str:
    if grade.internal_error:
        return "the grader failed"
    if not grade.gradable:
        return "not gradable"
    return f"{'feasible' if grade.feasible else 'INFEASIBLE'}; score {grade.score:.4g} / {grade.max_score:g}"


def _feedback_text(grade) -> str:
    lines = [clean(x) for x in (*grade.format_errors, *grade.feedback)]
    return "\n".join(lines)


def render(grade, fmt: str) -> str:
    """The results file for ``grade`` in ``fmt`` (one of :data:`FORMATS`)."""
    return {"text": text, "json": as_json, "gradescope": gradescope, "prairielearn": prairielearn,
            "junit": junit}[fmt](grade)


def as_json(grade) -> str:
    data = grade.to_dict()
    for key in ("mission", "student", "source", "internal_error"):
        if data[key] is not None:
            data[key] = clean(data[key], 256 if key != "internal_error" else 4000)
    data["feedback"] = [clean(x) for x in data["feedback"]]
    data["format_errors"] = [clean(x) for x in data["format_errors"]]
    for t in data["tests"]:
        t["output"], t["name"] = clean(t["output"]), clean(t["name"])
    return _dump(data)


def text(grade) -> str:
    who = f" ({clean(grade.student, 128)})" if grade.student else ""
    lines = [f"trainwall grade {clean(grade.source, 256)}{who}: {clean(grade.mission or '?', 64)}: {_status_line(grade)}"]
    if grade.internal_error:
        lines.append(f"  internal error: {clean(grade.internal_error)}")
    for err in grade.format_errors:
        lines.append(f"  error: {clean(err)}")
    for c in grade.checks:
        mark = "ok  " if c.passed else "FAIL"
        points = f"{c.score:.3g}/{c.max_score:.3g}" if c.max_score else "gate"
        lines.append(f"  [{mark}] {clean(c.name):<40} {points:>11}  {clean(c.output)}")
    lines += [f"  - {clean(f)}" for f in grade.feedback]
    return "\n".join(lines) + "\n"


def gradescope(grade) -> str:
    tests = [{"name": clean(c.name, 256), "score": c.score, "max_score": c.max_score,
              "status": "passed" if c.passed else "failed", "output": clean(c.output), "visibility": "visible"}
             for c in grade.checks]
    if not grade.gradable:
        tests = [{"name": "submission is gradable", "score": 0.0, "max_score": grade.max_score, "status": "failed",
                  "output": _feedback_text(grade) or clean(grade.internal_error or ""), "visibility": "visible"}]
    data = {"score": grade.score, "output": f"{_status_line(grade)}\n{_feedback_text(grade)}".strip(),
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"mission": clean(grade.mission or "", 64), "gradable": grade.gradable,
                           "feasible": grade.feasible, "objective": grade.objective, "optimum": grade.optimum}}
    return _dump(data)


def prairielearn(grade) -> str:
    data = {"gradable": grade.gradable and grade.internal_error is None,
            "score": round(grade.fraction, 12) if grade.gradable else 0.0,
            "message": _status_line(grade), "output": _feedback_text(grade),
            "tests": [{"name": clean(c.name, 256), "description": clean(c.name, 256), "points": c.score,
                       "max_points": c.max_score, "message": "passed" if c.passed else "failed",
                       "output": clean(c.output)} for c in grade.checks]}
    if not data["gradable"]:
        data["format_errors"] = [clean(e) for e in grade.format_errors] or [clean(grade.internal_error or "")]
    return _dump(data)


def junit(grade) -> str:
    name = f"trainwall grade {clean(grade.mission or '?', 64)}"
    suite = ET.Element("testsuite", name=name)
    failures = errors = 0
    cases = grade.checks if grade.gradable else ()
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=name, name=clean(c.name, 256))
        if not c.passed:
            failures += 1
            ET.SubElement(case, "failure", message=clean(c.output, 512)).text = clean(c.output)
    if not grade.gradable:
        errors = 1
        case = ET.SubElement(suite, "testcase", classname=name, name="submission is gradable")
        message = _feedback_text(grade) or clean(grade.internal_error or "")
        ET.SubElement(case, "error", message=clean(message, 512),
                      type="internal" if grade.internal_error else "malformed").text = message
    suite.set("tests", str(len(cases) + (0 if grade.gradable else 1)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.SubElement(suite, "system-out").text = f"{_status_line(grade)}\n{_feedback_text(grade)}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
