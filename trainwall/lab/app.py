"""The workbench: a marimo app built from a mission's data (``trainwall lab``).

Run by :mod:`trainwall.lab.launch` as ``marimo run`` with the arguments ``--mission REF``
(a mission id, a handout, a mission file, or a configuration: a sandbox with the levers
of the part the picker names; none: a picker), ``--out FILE`` (where
Submit writes the submission) and, in instructor mode, ``--keys SOURCE`` (Submit also
grades against it; a student's workbench holds no optimum and no key). Each browser session runs these cells on its own
:class:`~trainwall.lab.model.Lab`; the instruments stay hidden until every Lock
prediction is locked, then follow every move of the controls.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="trainwall lab")

with app.setup:
    import marimo as mo

    from trainwall.lab import sandbox, widgets


@app.cell
def picker():
    args = mo.cli_args()
    choice = widgets.mission_picker(args.get("mission"))
    choice
    return args, choice


@app.cell
def session(choice):
    lab = widgets.open_lab(choice.value)
    mo.md(widgets.brief(lab))
    return (lab,)


@app.cell
def shortcut(lab):
    last = widgets.layer_shortcut(lab)
    last
    return (last,)


@app.cell
def controls(lab, last):
    decisions = mo.ui.dictionary(widgets.decision_widgets(lab, last.value if last is not None else None))
    mo.vstack([mo.md("### Your plan"), decisions.vstack()])
    return (decisions,)


@app.cell
def predictions(lab):
    locks = mo.ui.dictionary(widgets.lock_widgets(lab))
    mo.vstack([mo.md("### Lock your predictions"), locks.vstack()])
    return (locks,)


@app.cell
def plan(decisions, lab, locks):
    moved = widgets.apply(lab, decisions.value, locks.value)
    view = widgets.view(lab)
    return moved, view


@app.cell
def instruments(lab, view):
    mo.Html(widgets.instruments(lab, view))
    return


@app.cell
def peek_toggle():
    peek = mo.ui.switch(label="Math Peek")
    peek
    return (peek,)


@app.cell
def math_peek(peek, view):
    mo.md(widgets.math_peek(view) if peek.value else "")
    return


@app.cell
def reflect(lab):
    reflections = mo.ui.dictionary(widgets.reflection_widgets(lab))
    submit = mo.ui.run_button(label="Submit")
    mo.vstack([mo.md("### Reflect"), reflections.vstack(), submit])
    return reflections, submit


@app.cell
def submitted(args, lab, reflections, submit, view):
    mo.stop(not submit.value)
    out = args.get("out") or sandbox.default_out(bool(lab.configuration))
    mo.md(widgets.submit(lab, reflections.value, out, view, args.get("keys")))
    return


if __name__ == "__main__":
    app.run()
