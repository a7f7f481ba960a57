"""``trainwall lab CONFIG``: a configuration explored with the levers of one part of its track.

A configuration file (what ``trainwall evaluate`` reads) is no mission: it asks nothing
and nothing grades it. The workbench opens it as a *sandbox*: the shipped mission of its
track and the chosen part lends its decisions, walls and instruments, the configuration
is the scenario and the current plan, and there are no Lock questions and no reflections.
Each decision's allowed values are widened to hold the configuration's own value, so the
controls start where the file stands. Submit then writes the configuration the controls
describe (``trainwall evaluate`` reads it), never a submission: a sandbox has no key.

The track is the one whose shipped missions run on the configuration's accelerator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwall.core.errors import InputError

#: How a sandbox is named to the picker and the app: ``config:<part>:<path>``.
PREFIX = "config:"
PARTS = (1, 2, 3)


def is_configuration(reference: str | None) -> bool:
    """Is ``reference`` an existing file holding a configuration (not a mission, not a submission)?"""
    from trainwall.core.fileformats import SUFFIXES, read_document

    if not reference or Path(reference).suffix.lower() not in SUFFIXES or not Path(reference).is_file():
        return False
    data = read_document(reference)
    return isinstance(data, dict) and not {"scenario", "mission", "configuration"} & set(data)


def default_out(configuration: bool) -> str:
    """Where Submit writes without ``--out``: a sandbox saves a configuration, a mission a submission."""
    return "configuration.toml" if configuration else "submission.toml"


def references(path: str) -> dict[str, str]:
    """The picker's entries for a configuration: label -> sandbox reference, one per part
    whose sandbox opens (a configuration with no data-loader workers has no part 2 with a
    workers lever, say); InputError, with each part's reason, when none does."""
    from trainwall.core.errors import TrainwallError

    out, why = {}, []
    for part in PARTS:
        try:
            sandbox(path, part)
        except TrainwallError as exc:
            why.append(f"part {part}: {exc}")
            continue
        out[f"{path} with part {part}'s levers"] = f"{PREFIX}{part}:{path}"
    if not out:
        raise InputError(path, "configuration", "a configuration no part's levers can explore: " + "; ".join(why))
    return out


def split(reference: str) -> tuple[int, str] | None:
    """(part, path) of a sandbox reference, or None for any other reference."""
    if not reference.startswith(PREFIX):
        return None
    part, _, path = reference[len(PREFIX):].partition(":")
    return int(part), path


def _track(accelerator: str, path: str) -> str:
    from trainwall.challenges.mission import mission, shipped_ids

    tracks = {mission(i).scenario["system"]["accelerator"]: mission(i).track for i in shipped_ids()}
    if accelerator not in tracks:
        raise InputError(f"{path}: system.accelerator", accelerator, "the workbench opens configurations on a "
                         f"track's accelerator: one of {', '.join(sorted(tracks))}")
    return tracks[accelerator]


def _valid(raw: dict, part: int, name: str, value: Any) -> bool:
    """Is ``name`` = ``value`` alone a plan here, by the plan builder's own rules (part 3: the
    degrees set the device count), as a mission's decisions are checked?"""
    from types import SimpleNamespace

    from trainwall.challenges import plans

    try:
        plans.decided(SimpleNamespace(scenario=raw, part=part, reference="sandbox"), {name: value},
                      1 if part == 3 else None)
    except InputError:
        return False
    return True


def _widened(decisions: dict[str, Any], raw: dict, config, part: int) -> dict[str, Any]:
    """Each decision's allowed values that make a plan with the configuration (a micro-batch
    must divide its global batch, say), with the configuration's own value added (a list) or
    the range stretched to it."""
    from trainwall.challenges.plans import field_value
    from trainwall.lab.model import MICRO_BATCHES

    out = {}
    for name, allowed in decisions.items():
        value = config.micro_batches if name == MICRO_BATCHES else field_value(config, name)
        if isinstance(allowed, dict):
            out[name] = {"min": min(allowed["min"], value), "max": max(allowed["max"], value)}
        else:
            out[name] = [value, *(v for v in allowed if v != value and _valid(raw, part, name, v))]
    return out


def _layout(raw: dict, config) -> dict:
    """The scenario with its parallel layout written out (part 3's controls start from it)."""
    t = config.training
    layout = {"tensor_parallel": t.tensor_parallel, "pipeline_parallel": t.pipeline_parallel,
              "data_parallel": config.data_parallel, "global_batch": config.global_batch}
    return {**raw, "training": {**raw.get("training", {}), **layout}}


def _walls(base: dict, config) -> list[str]:
    """The part's walls, with the power wall exactly where the configuration sets a budget
    (part 3: the part whose walls include it)."""
    walls = [w for w in base["constraints"] if w != "power"]
    if base["part"] == 3 and config.system.power_budget_w is not None:
        walls.insert(walls.index("starvation") + 1, "power")
    return walls


def sandbox(path: str, part: int):
    """The sandbox mission for configuration ``path`` and ``part``."""
    from trainwall.challenges.mission import mission, parse_mission
    from trainwall.core.config import parse_config
    from trainwall.core.fileformats import read_document

    raw = read_document(path)
    config = parse_config(raw, path)
    track = _track(config.system.accelerator, path)
    base = mission(f"{track}/{part}").model_dump(exclude_none=True)
    if part == 3:
        raw = _layout(raw, config)
        config = parse_config(raw, path)
    data = {**base, "scenario": raw, "naive": {}, "lock": [], "reflection": [],
            "decisions": _widened(base["decisions"], raw, config, part),
            "constraints": _walls(base, config),
            "title": f"Sandbox: {Path(path).name} with the levers of {track} part {part}",
            "story": (f"Your configuration {path}, explored with the levers of the {track} track's part {part} "
                      "(its decisions and walls). Nothing here is graded: Submit saves the configuration "
                      "the controls describe, for trainwall evaluate.")}
    data.pop("variants", None)
    if part == 3:
        limits = base["limits"]
        data["limits"] = {"devices": max(limits["devices"], config.system.devices), "min_devices": 1,
                          "global_batch": max(limits["global_batch"], config.global_batch),
                          **({"days": limits["days"]} if "days" in limits else {})}
    return parse_mission(data, path)
