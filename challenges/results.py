"""Writers of a :class:`~trainwall.challenges.grading.Grade`: text, json, gradescope,
prairielearn and junit. Each returns the file's text; every string from the
submission is cleaned first (:func:`trainwall.core.outputs.clean`: control characters,
ANSI escapes and bidi controls replaced, a ``<`` that would open an HTML tag made
inert, length capped) so hostile input cannot break a JSON, XML or terminal reader,
nor run as markup where a platform renders it.

Platform formats, as their documentation gives them:

* Gradescope (gradescope-autograders.readthedocs.io, "Autograder Specifications"):
  ``/autograder/results/results.json`` with ``score``, ``output``, ``visibility``,
  ``stdout_visibility`` and ``tests[]`` of ``name``, ``score``, ``max_score``,
  ``status`` (passed | failed), ``output``, ``visibility``. Gradescope renders the
  top-level ``output`` and each test's ``output`` and ``name`` by their
  ``output_format`` / ``name_format`` (``text``, ``html``, ``simple_format``, ``md``,
  ``ansi``; ``simple_format`` keeps some HTML): trainwall sets ``text`` everywhere
  (``output_format``, ``test_output_format``, ``test_name_format``, and per test), so
  nothing a student wrote is rendered as markup.
* PrairieLearn (docs.prairielearn.com, "External Grading", "Grading results"):
  ``/grade/results/results.json`` with ``gradable``, ``score`` in [0, 1], ``message``,
  ``output``, ``tests[]`` of ``name``, ``points``, ``max_points``, ``message``,
  ``output``; ``gradable: false`` with ``format_errors`` for a malformed submission.
* JUnit XML (the Ant/Surefire schema CI systems render): one ``<testsuite>`` per
  submission, a ``<failure>`` per failed check, an ``<error>`` for a malformed or
  unreadable submission. ElementTree escapes ``<``, ``&`` and quotes; :func:`clean`
  removes what XML 1.0 cannot hold at all (control characters, surrogates, U+FFFE/FFFF).
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from trainwall.core.outputs import clean

FORMATS = ("text", "json", "gradescope", "prairielearn", "junit")
#: Where each platform expects its results file.
PLATFORM_PATHS = {"gradescope": "/autograder/results/results.json", "prairielearn": "/grade/results/results.json"}
SUFFIX = {"text": ".txt", "json": ".json", "gradescope": ".json", "prairielearn": ".json", "junit": ".xml"}
#: Gradescope's output format for every string it shows: plain text, never rendered as markup.
GRADESCOPE_FORMAT = "text"
__all__ = ["FORMATS", "PLATFORM_PATHS", "SUFFIX", "clean", "render"]


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=True) + "\n"


def _status_line(grade) -> str:
    if grade.internal_error:
        return "the grader failed"
    if not grade.gradable:
        return "not gradable"
    return f"{'feasible' if grade.feasible else 'INFEASIBLE'}; score {grade.score:.4g} / {grade.max_score:g}"


def shown(text: object, limit: int = 4000) -> str:
    """:func:`clean` for a file a platform renders (gradescope, prairielearn, junit): no ``<`` opens a tag."""
    return clean(text, limit, markup=True)


def _feedback_lines(grade, markup: bool = False) -> list[str]:
    """The format errors and the feedback, each cleaned to one line."""
    return [clean(x, markup=markup) for x in (*grade.format_errors, *grade.feedback)]


def _feedback_text(grade, markup: bool = False) -> str:
    return "\n".join(_feedback_lines(grade, markup))


def _prose(text: str, markup: bool = False) -> str:
    """A reflection answer: several lines kept, each line cleaned (:func:`clean`)."""
    return "\n".join(clean(line, 8000, markup=markup) for line in text.splitlines())


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
    data["reflections"] = [{"prompt": clean(r["prompt"]), "answer": _prose(r["answer"])} for r in data["reflections"]]
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
    for i, (prompt, answer) in enumerate(grade.reflections, start=1):
        lines += [f"  reflection {i} (ungraded, for your TA): {clean(prompt)}"]
        lines += [f"    {line}" for line in _prose(answer).splitlines()]
    return "\n".join(lines) + "\n"


def gradescope_tests(grade, prefix: str = "", scale: float = 1.0, visibility: str = "visible") -> list[dict]:
    """Gradescope's ``tests[]`` of one grade: one per check (points times ``scale``), one saying why
    a submission is not gradable, one per reflection (no score: graded by hand). ``prefix`` names
    the mission where one results file holds several."""
    text_only = {"output_format": GRADESCOPE_FORMAT, "name_format": GRADESCOPE_FORMAT, "visibility": visibility}
    tests = [{"name": shown(prefix + c.name, 256), "score": c.score * scale, "max_score": c.max_score * scale,
              "status": "passed" if c.passed else "failed", "output": shown(c.output), **text_only}
             for c in grade.checks]
    if not grade.gradable:
        tests = [{"name": shown(prefix + "submission is gradable", 256), "score": 0.0,
                  "max_score": grade.max_score * scale, "status": "failed",
                  "output": _feedback_text(grade, True) or shown(grade.internal_error or ""), **text_only}]
    tests += [{"name": shown(f"{prefix}reflection: {prompt}", 256), "output": _prose(answer, markup=True), **text_only}
              for prompt, answer in grade.reflections]
    return tests


def gradescope_summary(grade) -> str:
    """The status line and the feedback of one grade, as Gradescope's top-level ``output`` shows them."""
    return f"{_status_line(grade)}\n{_feedback_text(grade, True)}".strip()


def gradescope_extra(grade) -> dict:
    """What ``extra_data`` records of one grade (never a hidden answer)."""
    return {"mission": shown(grade.mission or "", 64), "gradable": grade.gradable, "feasible": grade.feasible,
            "objective": grade.objective, "optimum": None if grade.answer_hidden else grade.optimum}


def gradescope_file(score: float, output: str, tests: list[dict], extra: dict, visibility: str = "visible") -> str:
    """Gradescope's ``results.json``: plain text everywhere, the autograder's own stdout hidden."""
    return _dump({"score": score, "output": output, "output_format": GRADESCOPE_FORMAT,
                  "test_output_format": GRADESCOPE_FORMAT, "test_name_format": GRADESCOPE_FORMAT,
                  "visibility": visibility, "stdout_visibility": "hidden", "tests": tests, "extra_data": extra})


def gradescope(grade) -> str:
    return gradescope_file(grade.score, gradescope_summary(grade), gradescope_tests(grade), gradescope_extra(grade))


def prairielearn(grade) -> str:
    data = {"gradable": grade.gradable and grade.internal_error is None,
            "score": round(grade.fraction, 12) if grade.gradable else 0.0,
            "message": _status_line(grade), "output": _feedback_text(grade, True),
            "tests": [{"name": shown(c.name, 256), "description": shown(c.name, 256), "points": c.score,
                       "max_points": c.max_score, "message": "passed" if c.passed else "failed",
                       "output": shown(c.output)} for c in grade.checks]}
    data["tests"] += [{"name": shown(f"reflection: {p}", 256), "description": "ungraded: read by your TA",
                       "points": 0.0, "max_points": 0.0, "message": "ungraded", "output": _prose(a, markup=True)}
                      for p, a in grade.reflections]
    if not data["gradable"]:
        data["format_errors"] = [shown(e) for e in grade.format_errors] or [shown(grade.internal_error or "")]
    return _dump(data)


def junit(grade) -> str:
    name = f"trainwall grade {shown(grade.mission or '?', 64)}"
    suite = ET.Element("testsuite", name=name)
    failures = errors = 0
    cases = grade.checks if grade.gradable else ()
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=name, name=shown(c.name, 256))
        if not c.passed:
            failures += 1
            ET.SubElement(case, "failure", message=shown(c.output, 512)).text = shown(c.output)
    if not grade.gradable:
        errors = 1
        case = ET.SubElement(suite, "testcase", classname=name, name="submission is gradable")
        lines = _feedback_lines(grade, True) or [shown(grade.internal_error or "")]
        ET.SubElement(case, "error", message=shown("; ".join(lines), 512),
                      type="internal" if grade.internal_error else "malformed").text = "\n".join(lines)
    suite.set("tests", str(len(cases) + (0 if grade.gradable else 1)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    reflections = "".join(f"\nreflection (ungraded): {shown(p)}\n{_prose(a, markup=True)}" for p, a in grade.reflections)
    ET.SubElement(suite, "system-out").text = f"{_status_line(grade)}\n{_feedback_text(grade, True)}{reflections}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
