"""A mission as a student reads it (``trainwall show``, the PrairieLearn question page):
the rendered story, the decisions, the walls, the objective, the Lock questions (never
their answers) and the reflection prompts."""

from __future__ import annotations


def mission_brief(mission) -> str:
    """What a student reads before exploring: the story, the decisions, the walls, the
    objective, the Lock questions (never their answers) and the reflection prompts, with
    the prose rendered from the mission's data."""
    import textwrap

    m = mission.rendered()
    lines = [f"{m.reference}: {m.title}", "", textwrap.fill(" ".join(m.story.split()), 88), "",
             f"Objective: {m.objective.sense} {m.objective.quantity}"
             + (f" (target {m.objective.target:g})" if m.objective.target is not None else ""),
             f"Walls: {', '.join(m.constraints)} (the track's wall: {m.wall})", "Decisions:"]
    for name, values in m.decisions.items():
        shown = ", ".join(map(str, values)) if isinstance(values, list) else f"{values.min} to {values.max}"
        lines.append(f"  {name}: {shown}")
    if m.select_layers:
        lines.append("  training.trainable: which layers train (a list of layer indices)")
    if m.lock:
        lines += ["", "Lock your predictions (submission.predictions.<id>):"]
        lines += [f"  {q.id}: {q.text}" for q in m.lock]
    if m.reflection:
        lines += ["", "Reflection:"] + [textwrap.fill(p, 88, initial_indent="  - ", subsequent_indent="    ")
                                        for p in m.reflection]
    return "\n".join(lines)


def mission_brief_dict(mission) -> dict:
    """The brief as JSON: the rendered prose and the mission's choices, no answers."""
    m = mission.rendered()
    return {"id": m.reference, "title": m.title, "story": m.story, "track": m.track, "part": m.part,
            "objective": {"name": m.objective.quantity, "sense": m.objective.sense, "target": m.objective.target},
            "constraints": list(m.constraints), "wall": m.wall,
            "decisions": {n: v if isinstance(v, list) else v.model_dump() for n, v in m.decisions.items()},
            "select_layers": m.select_layers,
            "lock": [{"id": q.id, "text": q.text, "tolerance": q.tolerance} for q in m.lock],
            "reflection": list(m.reflection)}
