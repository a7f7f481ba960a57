"""Mission -> configuration: the one place a plan is built from a mission.

Every configuration the search, the certifiers, the grader, the Lock answers, the
variants and the figures evaluate comes from here:

* :func:`written` - the scenario with sections the mission's author wrote (the naive plan,
  a Lock question's ``at``), exactly as written;
* :func:`decided` - the scenario (or a base such as the naive plan) with dotted decision
  values applied (a solver's mode, a student's configuration, the optimum) and, in part 3,
  the scaling rules: the parallel degrees set the device count (:func:`set_layout`) and a
  micro-batch count sets the global batch (B = m x data_parallel x micro_batch).

Both return a validated :class:`~trainwall.core.config.Config`, or raise the config's
one-line :class:`~trainwall.core.errors.InputError`; the caller decides whose mistake it
is (the mission's author or the student).
"""

from __future__ import annotations

import math
from typing import Any

from trainwall.core.config import Config, parse_config

Sections = dict[str, dict[str, Any]]


def _copied(value: Any) -> Any:
    """A copy of TOML-shaped data (dicts and lists of scalars): what ``copy.deepcopy`` gives,
    without its memo (part 3's problem builder copies the scenario once per mode)."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def scenario_data(mission, sections: Sections | None = None, choices: dict[str, Any] | None = None) -> dict:
    """The scenario as data, with whole ``sections`` merged in, then dotted ``choices`` set."""
    data = _copied(mission.scenario)
    for section, values in (sections or {}).items():
        data.setdefault(section, {}).update(_copied(values))
    for dotted, value in (choices or {}).items():
        section, name = dotted.split(".", 1)
        data.setdefault(section, {})[name] = value
    return data


def degrees(data: dict) -> tuple[int, int, int, int]:
    """(tensor, pipeline, data, context)-parallel degrees of configuration data; data
    parallelism, when not given, is what the devices leave (the config's own default)."""
    training, system = data.get("training", {}), data.get("system", {})
    tp, pp = training.get("tensor_parallel", 1), training.get("pipeline_parallel", 1)
    cp = training.get("context_parallel", 1)
    dp = training.get("data_parallel") or max(1, system.get("devices", 1) // (tp * pp * cp))
    return tp, pp, dp, cp


def layout_devices(data: dict) -> int:
    """Part 3's rule: the devices are the product of the parallel degrees, tp x pp x dp x cp."""
    return math.prod(degrees(data))


def set_layout(data: dict) -> None:
    """Part 3's rule applied: the degrees written out and the device count set from them."""
    tp, pp, dp, _ = degrees(data)
    data.setdefault("system", {})["devices"] = layout_devices(data)
    data.setdefault("training", {}).update(tensor_parallel=tp, pipeline_parallel=pp, data_parallel=dp)


def written(mission, sections: Sections | None = None, label: str = "") -> Config:
    """The scenario with an author's ``sections`` (the naive plan, a Lock's ``at``), as written."""
    return parse_config(scenario_data(mission, sections), label or f"{mission.reference} scenario")


def decided_data(mission, choices: dict[str, Any], micro_batches: int | None = None,
                 base: Sections | None = None) -> dict:
    """The data of :func:`decided` (for callers that check fields before validating)."""
    data = scenario_data(mission, base, choices)
    if mission.part == 3:
        set_layout(data)
        if micro_batches is not None:
            set_micro_batches(data, micro_batches)
    return data


def set_micro_batches(data: dict, micro_batches: int) -> None:
    """Part 3's global batch for ``micro_batches`` per pipeline per step: m x data parallel x micro-batch
    (of data laid out by :func:`set_layout`)."""
    training = data["training"]
    training["global_batch"] = micro_batches * training["data_parallel"] * training.get("micro_batch", 1)


def decided(mission, choices: dict[str, Any], micro_batches: int | None = None, base: Sections | None = None,
            label: str = "") -> Config:
    """A plan the mission's decisions describe: ``choices`` (dotted fields) over ``base`` (default
    the scenario), with part 3's layout and, given ``micro_batches``, its global batch."""
    return parse_config(decided_data(mission, choices, micro_batches, base),
                        label or f"{mission.reference} with {choices}")


def from_configuration(mission, configuration: Sections, label: str = "") -> Config:
    """The plan a ``configuration`` (training and data sections: a solution's, an answer key's)
    describes, built like a submission's: its fields as dotted choices, part 3's layout applied."""
    return decided(mission, {f"{section}.{name}": value for section in ("training", "data")
                             for name, value in configuration.get(section, {}).items()}, label=label)


def stated_fields(mission) -> list[str]:
    """The dotted fields a submission states for the mission's decisions: part 3's micro-batch
    count as the global batch it sets, and the trained layers where the solver selects them."""
    fields = ["training.global_batch" if d == "training.micro_batches" else d for d in mission.decisions]
    return fields + (["training.trainable"] if mission.select_layers else [])


def field_value(config: Config, dotted: str) -> Any:
    """A configuration's value of a dotted field (``data.workers``)."""
    section, _, name = dotted.partition(".")
    return getattr(getattr(config, section), name)
