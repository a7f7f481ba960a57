"""What the workbench's cells call: marimo widgets typed from a mission's decisions, and
the views of a :class:`~trainwall.lab.model.Lab` (marimo is imported only here and in
the app, so the rest of trainwall never needs it)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from trainwall.lab import charts, sandbox
from trainwall.lab.model import TRAINABLE, Lab, controls, last_layer_shortcuts, selectable_layers

#: The longest reflection the submission format takes (challenges/submission.py).
REFLECTION_CHARS = 4000


def mission_picker(reference: str | None):
    """The mission to explore: the one given to ``trainwall lab``, or a choice of the shipped
    ones; for a configuration, the part whose levers explore it."""
    import marimo as mo

    from trainwall.challenges.mission import shipped_ids

    if sandbox.is_configuration(reference):
        options = sandbox.references(reference)
        return mo.ui.dropdown(options=options, value=next(iter(options)), label="levers")
    ids = list(shipped_ids())
    if reference and reference not in ids:
        ids.insert(0, reference)
    return mo.ui.dropdown(options=ids, value=reference or ids[0], label="mission")


def open_lab(reference: str) -> Lab:
    """A session on a mission (an id or a file) or on a configuration's sandbox reference."""
    from trainwall.challenges.mission import resolve

    found = sandbox.split(reference)
    if found:
        part, path = found
        return Lab.open(sandbox.sandbox(path, part), configuration=path)
    chosen = resolve(reference)
    return Lab.open(chosen, student=handout_student(chosen, reference))


def handout_student(mission, reference: str) -> str | None:
    """Whose handout ``reference`` is: the ``student`` of the ``submission.toml`` that
    ``trainwall generate`` wrote beside it for this variant (None for anything else)."""
    from trainwall.core.errors import TrainwallError
    from trainwall.core.fileformats import read_document

    beside = Path(reference).with_name("submission.toml")
    if not mission.handout or not beside.is_file():
        return None
    try:
        data = read_document(beside)
    except TrainwallError:
        return None
    student = data.get("student") if isinstance(data, dict) and data.get("mission") == mission.reference else None
    return student if isinstance(student, str) else None


def brief(lab: Lab) -> str:
    from trainwall.challenges.brief import mission_brief

    return "```text\n" + mission_brief(lab.mission) + "\n```"


def layer_shortcut(lab: Lab):
    """Part 1's ``last:N`` shortcut (a dropdown that fills the layer picker), or None where the
    mission does not select layers."""
    import marimo as mo

    if not lab.mission.select_layers:
        return None
    return mo.ui.dropdown(options=last_layer_shortcuts(lab.mission), value=None,
                          label="shortcut: train the last N layers")


def decision_widgets(lab: Lab, layers: tuple[int, ...] | None = None) -> dict[str, Any]:
    """One labelled widget per control: a dropdown of the allowed values (numbers stay
    numbers), a slider over a range, a multi-select of the layers that train (``layers``,
    the shortcut's choice, where one was made; else the plan's)."""
    import marimo as mo

    out = {}
    for c in controls(lab.mission):
        value = lab.values[c.field]
        if c.field == TRAINABLE:
            value = layers if layers is not None else value
            names = dict(selectable_layers(lab.mission))
            options = {f"{i}: {names[i]}": i for i in c.options}
            out[c.field] = mo.ui.multiselect(options=options, value=[k for k, i in options.items() if i in value],
                                             label=c.label)
        elif c.options:
            options = {str(v): v for v in c.options}
            out[c.field] = mo.ui.dropdown(options=options, value=str(value), label=c.label)
        else:
            out[c.field] = mo.ui.slider(start=c.low, stop=c.high, step=1, value=value, label=c.label,
                                        show_value=True)
    return out


def lock_widgets(lab: Lab) -> dict[str, Any]:
    """One text field per Lock question, labelled by the question and locked by its own
    button (a locked prediction stays). A text field, not marimo's number field: that one's
    accessible name is its label's HTML source, which a screen reader would read out."""
    import marimo as mo

    return {q.id: mo.ui.text(label=q.text, placeholder="a number").form(submit_button_label="Lock")
            for q in lab.mission.rendered().lock}


def _number(text: str) -> float | None:
    """A prediction typed as text: a finite number (``1e9``, ``0.35``, ``1,024``), else None."""
    import math

    try:
        value = float(text.strip().replace(",", "").replace("_", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def reflection_widgets(lab: Lab) -> dict[str, Any]:
    import marimo as mo

    return {str(i): mo.ui.text_area(label=prompt, max_length=REFLECTION_CHARS)
            for i, prompt in enumerate(lab.mission.rendered().reflection, 1)}


def apply(lab: Lab, decisions: dict[str, Any], predictions: dict[str, Any]) -> bool:
    """The widgets' values into the session: a changed plan is one move; a submitted
    prediction is locked. Returns whether the plan moved."""
    values = {k: tuple(sorted(v)) if k == TRAINABLE else v for k, v in decisions.items()}
    for question, typed in predictions.items():
        if typed is None or not str(typed).strip() or question in lab.predictions:
            continue
        value = _number(str(typed))
        if value is None:
            lab.unreadable[question] = str(typed)[:40]
        else:
            lab.unreadable.pop(question, None)
            lab.lock(question, value)
    return lab.choose(values)


def view(lab: Lab) -> dict[str, Any]:
    """The plan's config and metrics, or why the combination is not a plan."""
    from trainwall.core.errors import TrainwallError

    try:
        config = lab.plan()
    except TrainwallError as exc:
        return {"config": None, "metrics": None, "error": str(exc)}
    from trainwall.optimizer.costmodel import evaluate

    return {"config": config, "metrics": evaluate(config), "error": None}


def instruments(lab: Lab, shown: dict[str, Any]) -> str:
    """The revealed Lock answers, then (once every prediction is locked) the part's instruments."""
    html = [_locks(lab)]
    waiting = [q.id for q in lab.mission.lock if q.id not in lab.predictions]
    if waiting:
        html.append(f"<p><em>Lock your predictions ({escape(', '.join(waiting))}) to see the instruments.</em></p>")
        return "".join(html)
    if shown["error"]:
        return "".join(html) + f"<p><strong>Not a plan:</strong> {escape(shown['error'])}</p>"
    m = shown["metrics"]
    checks = lab.mission.checks(m)
    html.append(_part_instruments(lab, shown))
    html.append(charts.time_to_train(m.training, all(c.satisfied for c in checks)))
    html.append(charts.walls(checks))
    if lab.mission.part == 2:
        html.append(_balance(lab, checks))
    return "".join(html)


def _part_instruments(lab: Lab, shown: dict[str, Any]) -> str:
    """Part 1's waterfall, part 2's gauge, part 3's scaling bars and Scaling Efficiency Plot."""
    m = shown["metrics"]
    if lab.mission.part == 1:
        return charts.waterfall(m)
    if lab.mission.part == 2:
        return charts.gauge(m) + _lever_curve(lab, shown["config"])
    from trainwall.figures import scaling

    limits, target = lab.mission.limits, lab.mission.objective.target
    return (charts.scaling(m, target)
            + charts.scaling_plot(scaling(shown["config"], max_devices=limits.devices), limits, target))


def _lever_curve(lab: Lab, config) -> str:
    """Part 2's throughput at each setting of its lever the student has tried, the other
    choices as they stand (:func:`trainwall.figures.lever_point`, the figure's own numbers)."""
    from trainwall.figures import lever_point

    field, _ = lab.mission.integer_decision
    lever, wait = field.split(".")[1], lab.mission.max_data_wait
    tried = {v: lever_point(config, lever, v, wait) for v in lab.visited(field)}   # the current setting among them
    current = lab.values[field]
    return charts.lever_curve(lever, [(v, fed) for v, (fed, _, _) in tried.items()], current, tried[current][1])


def _locks(lab: Lab) -> str:
    """Each locked prediction beside its answer, judged by the grader's own rule."""
    from trainwall.challenges.grading import prediction_correct

    rows = []
    for q in lab.mission.lock:
        if q.id in lab.predictions:
            guess, key = lab.predictions[q.id], lab.answer(q.id)
            verdict = "within" if prediction_correct(guess, key, q.tolerance) else "outside"
            off = f"{abs(guess - key) / abs(key):.0%} off, " if key else ""
            rows.append(f"<li>{escape(q.id)}: you said {guess:.4g}; the answer is {key:.4g} "
                        f"({off}{verdict} the {q.tolerance:.0%} tolerance)</li>")
    rows += [f"<li>{escape(q)}: {escape(repr(typed))} is not a number; type one (e.g. 0.35 or 1.2e9) and "
             f"Lock again</li>" for q, typed in lab.unreadable.items()]
    return f"<ul>{''.join(rows)}</ul>" if rows else ""


def _balance(lab: Lab, checks) -> str:
    """Part 2's move count, and the balance point for the other choices as they stand, once
    the plan stands on it: every wall holds here and one breaks a step lower (whether other
    choices need less is the student's to find; the session holds no optimum)."""
    field, _ = lab.mission.integer_decision
    text = f"<p>{lab.move_count} move{'s' * (lab.move_count != 1)} so far.</p>"
    if not all(c.satisfied for c in checks) or lab.values[field] <= lab.mission.decisions[field].min:
        return text
    lower = Lab(lab.mission, {**lab.values, field: lab.values[field] - 1})
    if all(c.satisfied for c in lab.mission.checks(lower.metrics())):
        return text
    return text + (f"<p><strong>Balance point reached</strong> for these other choices: every wall holds at "
                   f"{escape(field)} = {lab.values[field]} and one breaks at {lab.values[field] - 1}.</p>")


def math_peek(shown: dict[str, Any]) -> str:
    """The Iron Law and MFU with this plan's numbers (the ``explain`` terms)."""
    from trainwall.explain import as_text, math_peek as peek

    if shown["config"] is None:
        return ""
    return "```text\n" + as_text(peek(shown["config"])) + "\n```"


def submit(lab: Lab, reflections: dict[str, str], out: str, shown: dict[str, Any], keys: str | None = None) -> str:
    """Write the submission (atomically, never over an input) and say how the plan stands; in
    instructor mode (``keys``: what ``trainwall grade --mission`` takes) also grade it there."""
    from trainwall.core.outputs import atomic_write

    if lab.configuration:
        path = atomic_write(out, lab.configuration_toml())
        if shown["metrics"] is None:
            return (f"Wrote {escape(str(path))}, the configuration your controls describe; it is not a plan "
                    f"yet, and evaluate will say so: {escape(shown['error'])}")
        return (f"Wrote {escape(str(path))}, the configuration your controls describe (a sandbox: nothing "
                f"graded). Evaluate it with `trainwall evaluate {escape(str(path))}`.")
    lab.reflections = {k: v for k, v in reflections.items() if v and v.strip()}
    path = atomic_write(out, lab.submission())
    if shown["metrics"] is None:
        said = f"Wrote {escape(str(path))}. It is not a plan yet: {escape(shown['error'])}"
    else:
        broken = [c.wall for c in lab.mission.checks(shown["metrics"]) if not c.satisfied]
        state = f"it breaks the {', '.join(broken)} wall" if broken else "every wall holds"
        said = f"Wrote {escape(str(path))}: {state}. Grade it with `trainwall grade {escape(str(path))}`."
    if lab.mission.handout and not lab.student:
        said += (" It names no student: add `student = \"<your id>\"` at its top, as your handout's "
                 "submission.toml does, or your instructor's grader cannot tell it is yours.")
    return said + (_graded(path, keys) if keys else "")


def _graded(path, keys: str) -> str:
    """Instructor mode: the grader's own text results for the file just written."""
    from trainwall.challenges.grading import MissionSource, grade_file
    from trainwall.challenges.results import render

    grade = grade_file(path, MissionSource.open(keys))
    return f"\n\nInstructor mode, graded against `{escape(keys)}`:\n\n```text\n{render(grade, 'text')}\n```"
