"""A mission: the lab's scenario, the decisions a part unlocks, the objective, the
constraints, the Lock questions and the reflection prompts - as data.

One TOML file per mission under ``challenges/<track>/<part>.toml``; the schema below
validates it (unknown fields are errors, as in a config). A mission's scenario is a
full configuration (INTERFACE.md); a decision names a dotted config field and the
values it may take; ``select_layers`` lets the solver choose which layers train
(``training.trainable`` as a list of layer indices: the 2^L knapsack).
"""

from __future__ import annotations

import copy
import itertools
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainwall.errors import InputError, UnknownNameError

TRACKS = ("cloud", "edge", "mobile", "tiny")
PARTS = {1: "state audit", 2: "pipeline race", 3: "scaling wall"}
#: What a part-1 objective may be: trainable parameters, or the micro-batch.
OBJECTIVES = ("trainable_params", "micro_batch")
CONSTRAINTS = ("memory", "flash", "stability")
#: The decisions a part-1 mission may open (dotted config fields).
DECISION_FIELDS = ("training.optimizer", "training.precision", "training.recompute", "training.micro_batch",
                   "training.zero_stage", "training.optimizer_state", "training.loss_scaling")

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Objective(_Strict):
    quantity: Literal[OBJECTIVES]  # type: ignore[valid-type]
    sense: Literal["maximize", "minimize"]


class LockQuestion(_Strict):
    """A prediction asked before the student explores; the answer is computed, never typed."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    text: str
    quantity: str                       # a name from trainwall.challenges.quantities
    at: dict[str, dict[str, Any]] = {}  # overrides of the scenario the question is about
    tolerance: Annotated[float, Field(ge=0.0)] = 0.0  # relative


class Mission(_Strict):
    id: Annotated[str, Field(pattern=r"^(cloud|edge|mobile|tiny)/[123]$")]
    track: Literal[TRACKS]  # type: ignore[valid-type]
    part: Literal[1, 2, 3]
    title: str
    story: str
    scenario: dict[str, dict[str, Any]]
    decisions: dict[str, Annotated[list[Scalar], Field(min_length=1)]] = {}
    select_layers: bool = False
    objective: Objective
    constraints: Annotated[list[Literal[CONSTRAINTS]], Field(min_length=1)]  # type: ignore[valid-type]
    naive: dict[str, dict[str, Any]]
    lock: list[LockQuestion] = []
    reflection: list[str] = []

    def config_data(self, overrides: dict[str, dict[str, Any]] | None = None,
                    choices: dict[str, Any] | None = None) -> dict:
        """The scenario with section ``overrides`` and dotted-field ``choices`` applied."""
        data = copy.deepcopy(self.scenario)
        for section, values in (overrides or {}).items():
            data.setdefault(section, {}).update(copy.deepcopy(values))
        for dotted, value in (choices or {}).items():
            section, name = dotted.split(".", 1)
            data.setdefault(section, {})[name] = value
        return data

    def lock_answers(self) -> dict[str, float]:
        """Each Lock question's answer, computed by the cost model at the question's settings."""
        from trainwall.challenges.quantities import quantity
        from trainwall.config import parse_config
        from trainwall.optimizer.costmodel import evaluate

        return {q.id: quantity(q.quantity, evaluate(parse_config(self.config_data(q.at), f"{self.id} lock {q.id}")))
                for q in self.lock}

    def modes(self) -> list[dict[str, Scalar]]:
        """Every combination of the decisions' values, in file order (the tie-break order)."""
        names = list(self.decisions)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.decisions[n] for n in names))]


def _check(mission: Mission, source: str) -> Mission:
    from trainwall.config import parse_config

    for name in mission.decisions:
        if name not in DECISION_FIELDS:
            raise InputError(f"decisions.{name}", name, f"must be one of {', '.join(DECISION_FIELDS)}",
                             source=source)
    if mission.part != 1:
        raise InputError("part", mission.part, "only part-1 missions (the state audit) are supported so far",
                         source=source)
    if mission.id != f"{mission.track}/{mission.part}":
        raise InputError("id", mission.id, f"must be \"{mission.track}/{mission.part}\" (track/part)",
                         source=source)
    from trainwall.challenges.quantities import QUANTITIES

    for i, question in enumerate(mission.lock):
        if question.quantity not in QUANTITIES:
            raise InputError(f"lock.{i}.quantity", question.quantity, f"must be one of {', '.join(QUANTITIES)}",
                             source=source)
    parse_config(mission.config_data(), f"{source}: scenario")
    parse_config(mission.config_data(mission.naive), f"{source}: naive")
    return mission


def parse_mission(data: dict, source: str) -> Mission:
    try:
        mission = Mission.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise InputError(field, err.get("input"), err["msg"].removeprefix("Value error, "),
                         source=source) from None
    return _check(mission, source)


def load_mission(path: str | Path) -> Mission:
    from trainwall.fileformats import read_document

    return parse_mission(read_document(Path(path)), str(path))


def _shipped_path(mission_id: str):
    track, _, part = mission_id.partition("/")
    return resources.files("trainwall.challenges").joinpath(track, f"{part}.toml")


@cache
def shipped_ids() -> tuple[str, ...]:
    """The ids of the missions shipped with trainwall, in track then part order."""
    root = resources.files("trainwall.challenges")
    return tuple(f"{t}/{p}" for t in TRACKS for p in PARTS if root.joinpath(t, f"{p}.toml").is_file())


@cache
def mission(mission_id: str) -> Mission:
    """A shipped mission by id (``mobile/1``); an unknown id names the closest ones."""
    if mission_id not in shipped_ids():
        raise UnknownNameError("mission", mission_id, shipped_ids(), "mission")
    import tomllib

    path = _shipped_path(mission_id)
    return parse_mission(tomllib.loads(path.read_text()), f"challenges/{mission_id}.toml")


def resolve(reference: str) -> Mission:
    """A mission id, or the path of a mission / variant file."""
    if reference in shipped_ids() or "/" in reference and not Path(reference).exists():
        return mission(reference)
    return load_mission(reference)
