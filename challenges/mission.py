"""A mission: the lab's scenario, the decisions a part unlocks, the objective, the
constraints, the Lock questions and the reflection prompts - as data.

One TOML file per mission under ``challenges/<track>/<part>.toml``; the schema below
validates it (unknown fields are errors, as in a config). A mission's scenario is a
full configuration (docs/INTERFACE.md); a decision names a dotted config field and the
values it may take; ``select_layers`` lets the solver choose which layers train
(``training.trainable`` as a list of layer indices: the 2^L knapsack).
"""

from __future__ import annotations

import itertools
import math
import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from trainwall.core.caches import bounded
from trainwall.core.config import MAX_BATCH, MAX_DEVICES
from trainwall.core.errors import InputError, MissionError, UnknownNameError
from trainwall.optimizer.walls import WallCheck, check

TRACKS = ("cloud", "edge", "mobile", "tiny")
PARTS = {1: "state audit", 2: "pipeline race", 3: "scaling wall"}
#: What each part's objective may be (a quantity of :mod:`trainwall.challenges.quantities`).
OBJECTIVES = {1: ("trainable_params", "micro_batch"), 2: ("workers", "echo"), 3: ("mfu", "dollars", "energy_kwh")}
#: The sense each objective must have (the others' is the mission's to choose).
SENSES = {"mfu": "maximize", "dollars": "minimize", "energy_kwh": "minimize"}
#: The walls each part may impose.
CONSTRAINTS = {1: ("memory", "flash", "stability"),
               2: ("starvation", "memory", "flash", "stability"),
               3: ("memory", "network", "stability", "starvation", "power", "deadline", "mfu_target")}
#: The decisions each part may open (dotted config fields; ``training.micro_batches`` is
#: the number of micro-batches per step, so global_batch = micro_batches x dp x micro_batch).
DECISION_FIELDS = {
    1: ("training.optimizer", "training.precision", "training.recompute", "training.micro_batch",
        "training.zero_stage", "training.optimizer_state", "training.loss_scaling"),
    2: ("data.workers", "data.echo", "data.augmentation", "data.augmentation_on"),
    3: ("training.tensor_parallel", "training.pipeline_parallel", "training.data_parallel", "training.virtual_stages",
        "training.context_parallel", "training.micro_batch", "training.micro_batches", "training.recompute", "training.zero_stage",
        "training.precision", "training.loss_scaling", "training.gradient_clipping", "training.local_steps"),
}
#: Decisions that take an integer range ``{ min = .., max = .. }``: the MILP's integer variable.
RANGE_FIELDS = {2: ("data.workers", "data.echo"), 3: ("training.micro_batches",)}

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Objective(_Strict):
    quantity: str
    sense: Literal["maximize", "minimize"]
    target: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # part 3: the MFU the plan promised


class IntRange(_Strict):
    """An integer decision taken by the solver as one variable, not enumerated as modes."""

    min: Annotated[int, Field(ge=0, le=MAX_BATCH)]      # 0 to 2^40 (each range is a config field's, or
    max: Annotated[int, Field(ge=0, le=MAX_BATCH)]      # micro-batches per step: at most the batch bound)


class Limits(_Strict):
    """Part 3: what the scaling decisions may not exceed."""

    devices: Annotated[int, Field(ge=1, le=MAX_DEVICES)]                # 1 to 2^14, as system.devices
    min_devices: Annotated[int, Field(ge=1, le=MAX_DEVICES)] = 1   # e.g. the deadline needs at least this many
    global_batch: Annotated[int, Field(ge=1, le=MAX_BATCH)]             # 1 to 2^40, as training.global_batch
    days: Annotated[float, Field(gt=0.0, le=1e5)] | None = None       # the deadline: days to the workload's goal


class LockQuestion(_Strict):
    """A prediction asked before the student explores; the answer is computed, never typed."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    text: str
    quantity: str                       # a name from trainwall.challenges.quantities
    at: dict[str, dict[str, Any]] = {}  # overrides of the scenario the question is about
    tolerance: Annotated[float, Field(ge=0.0, le=0.5)]  # relative; 0 asks for the exact value


def gap(sense: str, value: float, best: float) -> float:
    """Relative shortfall from the optimum: 0 at it, positive when worse (the one definition:
    the relative grading scale and the variants' runner-up margin both read it)."""
    scale = abs(best) or 1.0
    return (best - value) / scale if sense == "maximize" else (value - best) / scale


class GradingPolicy(_Strict):
    """How ``trainwall grade`` turns a checked submission into a score (a mission's ``[grading]``).

    The objective earns credit by its shortfall from the certified optimum, measured on the
    policy's ``scale`` (:meth:`shortfall`):

    * ``relative`` (the default; quantities such as MFU, parameters, workers, echoes): the
      relative gap, ``(optimum - value) / optimum`` when maximising and ``(value - optimum)
      / optimum`` when minimising;
    * ``doublings`` (batch-like objectives on a power-of-two grid, e.g. edge/1's micro-batch):
      how many halvings short, ``log2(optimum / value)`` when maximising and ``log2(value /
      optimum)`` when minimising, so half the optimum is one doubling short, not 50 % short.

    Full credit for a shortfall ``<= full_credit_gap``, none from ``zero_credit_gap``,
    linear in between; an infeasible plan earns no objective credit. The weights split
    ``max_score`` between the objective, the Lock predictions (equally per question) and,
    in part 2, the 5-move rule; a component the mission does not have drops out and the
    others are renormalised.
    """

    # Every number bounded (1e6: far past any course's use) so sums and scores stay finite.
    max_score: Annotated[float, Field(gt=0.0, le=1e6)] = 1.0
    scale: Literal["relative", "doublings"] = "relative"
    full_credit_gap: Annotated[float, Field(ge=0.0, le=1e6)] = 0.01
    zero_credit_gap: Annotated[float, Field(gt=0.0, le=1e6)] = 0.25
    objective: Annotated[float, Field(ge=0.0, le=1e6)] = 0.7
    predictions: Annotated[float, Field(ge=0.0, le=1e6)] = 0.2
    moves: Annotated[float, Field(ge=0.0, le=1e6)] = 0.1
    move_limit: Annotated[int, Field(ge=1, le=10_000)] = 5    # the lab's 5-move rule (part 2)

    def shortfall(self, sense: str, value: float, best: float) -> float:
        """How far ``value`` falls short of the optimum ``best`` on this policy's scale (0 at it)."""
        if self.scale == "relative":
            return gap(sense, value, best)
        if value <= 0 or best <= 0:
            return float("inf")
        return math.log2(best / value) if sense == "maximize" else math.log2(value / best)

    def describe(self, shortfall: float) -> str:
        """A shortfall (or a gap bound) as a student reads it: 2.50 % or 1 doubling."""
        if self.scale == "relative":
            return f"{shortfall:.2%}"
        return f"{shortfall:g} doubling{'' if shortfall == 1 else 's'}"


class VariantSpace(_Strict):
    """What ``trainwall generate`` may change: dotted paths into this mission file
    (``scenario.system.background_network_load``, ``limits.global_batch``) and the values
    each may take. A variant draws one value per path; it is kept only if it stays a
    good exercise (see :mod:`trainwall.challenges.variants`)."""

    perturb: Annotated[dict[str, Annotated[list[Scalar], Field(min_length=2)]], Field(min_length=1)]
    min_margin: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01   # optimum vs runner-up, relative


class Mission(_Strict):
    id: Annotated[str, Field(pattern=r"^(cloud|edge|mobile|tiny)/[123]$")]
    variant: Annotated[str, Field(pattern=r"^[a-z0-9]{1,32}$")] | None = None   # set by trainwall generate
    handout: bool = False       # a student's copy (trainwall generate): solve, plot and explain need --instructor
    track: Literal[TRACKS]  # type: ignore[valid-type]
    part: Literal[1, 2, 3]
    title: str
    story: str
    scenario: dict[str, dict[str, Any]]
    decisions: dict[str, Annotated[list[Scalar], Field(min_length=1)] | IntRange] = {}
    select_layers: bool = False
    objective: Objective
    constraints: Annotated[list[str], Field(min_length=1)]
    wall: str                            # the constraint the track is about: it must bind at the optimum
    # the share of each step the accelerators may wait for loading that cannot overlap compute
    # (workers = 0, a microcontroller): the starvation wall (trainwall.optimizer.walls.starvation)
    max_data_wait: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    limits: Limits | None = None
    naive: dict[str, dict[str, Any]]
    lock: list[LockQuestion] = []
    reflection: list[str] = []
    grading: GradingPolicy = GradingPolicy()
    variants: VariantSpace | None = None

    @property
    def reference(self) -> str:
        """What a submission names: the id, or ``id@variant`` for a generated variant."""
        return self.id if self.variant is None else f"{self.id}@{self.variant}"

    def rendered(self) -> Mission:
        """This mission with its prose rendered from its data (:mod:`trainwall.challenges.prose`):
        what a student reads. Rendering rendered prose changes nothing."""
        return self.model_copy(update=_rendered_prose(self, "mission"))

    def lock_answers(self) -> dict[str, float]:
        """Each Lock question's answer, computed by the cost model at the question's settings."""
        return {q.id: lock_answer(self, q) for q in self.lock}

    def modes(self) -> list[dict[str, Scalar]]:
        """Every combination of the listed decisions' values, in file order (the tie-break order).

        Range decisions are not enumerated: they are the formulation's integer variable."""
        names = [n for n, v in self.decisions.items() if isinstance(v, list)]
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.decisions[n] for n in names))]

    def checks(self, metrics) -> list[WallCheck]:
        """Each of the mission's walls for an evaluated configuration: value, limit, verdict
        (:func:`trainwall.optimizer.walls.check`, the one definition of each wall)."""
        days = self.limits.days if self.limits else None
        found = (check(wall, metrics, self.objective.target, self.max_data_wait, days) for wall in self.constraints)
        return [c for c in found if c is not None]

    def violations(self, metrics) -> list[tuple[str, float, float, str]]:
        """The mission's walls this evaluated configuration breaks: (wall, value, limit, message)."""
        return [(c.wall, c.value, c.limit, c.message) for c in self.checks(metrics) if not c.satisfied]

    @property
    def integer_decision(self) -> tuple[str, IntRange] | None:
        """The one range decision, if any: (dotted field, range)."""
        return next(((n, v) for n, v in self.decisions.items() if isinstance(v, IntRange)), None)


def lock_answer(mission: Mission, question: LockQuestion) -> float:
    """The cost model's answer to one Lock question, at the scenario with the question's ``at``."""
    from trainwall.challenges import plans
    from trainwall.challenges.quantities import quantity
    from trainwall.optimizer.costmodel import evaluate

    return quantity(question.quantity, evaluate(plans.written(mission, question.at, f"{mission.reference} lock "
                                                                                      f"{question.id}")))


def _rendered_prose(mission: Mission, source: str) -> dict:
    """The prose fields rendered: MissionError names the field and the placeholder that fails."""
    from trainwall.challenges.prose import ProseError, rendered_fields

    try:
        out = rendered_fields(mission.model_dump())
    except ProseError as exc:
        raise MissionError(exc.field, "{" + exc.placeholder + "}", f"a placeholder must render from the "
                           f"mission's own data: {exc.reason}", source=source) from None
    lock = [q.model_copy(update={"text": t}) for q, t in zip(mission.lock, out["lock_texts"])]
    return {"story": out["story"], "title": out["title"], "lock": lock, "reflection": out["reflection"]}


def _check(mission: Mission, source: str) -> Mission:
    """Every rule a mission file must keep, checked at load (a broken mission never reaches a student)."""
    _rendered_prose(mission, source)
    _check_decisions(mission, source)
    _check_part_rules(mission, source)
    policy = mission.grading
    if policy.zero_credit_gap <= policy.full_credit_gap:
        raise InputError("grading.zero_credit_gap", policy.zero_credit_gap,
                         f"must exceed grading.full_credit_gap = {policy.full_credit_gap}", source=source)
    if policy.scale == "relative" and policy.zero_credit_gap > 1.0:
        raise InputError("grading.zero_credit_gap", policy.zero_credit_gap, "a relative gap is at most 1 (100 %); "
                         "for a count of doublings set grading.scale = \"doublings\"", source=source)
    if mission.id != f"{mission.track}/{mission.part}":
        raise InputError("id", mission.id, f"must be \"{mission.track}/{mission.part}\" (track/part)",
                         source=source)
    from trainwall.challenges.quantities import QUANTITIES

    for i, question in enumerate(mission.lock):
        if question.quantity not in QUANTITIES:
            raise InputError(f"lock.{i}.quantity", question.quantity, f"must be one of {', '.join(QUANTITIES)}",
                             source=source)
    _check_plans(mission, source)
    if mission.variants is not None:
        _check_variants(mission, source)
    return mission


def _check_decisions(mission: Mission, source: str) -> None:
    part = mission.part
    for name, values in mission.decisions.items():
        if name not in DECISION_FIELDS[part]:
            raise UnknownNameError(f"decisions.{name}", name, DECISION_FIELDS[part],
                                   f"part-{part} decision").with_source(source)
        if isinstance(values, IntRange) != (name in RANGE_FIELDS.get(part, ())):
            allowed = "a range { min = .., max = .. }" if name in RANGE_FIELDS.get(part, ()) else "a list of values"
            raise InputError(f"decisions.{name}", values if isinstance(values, list) else values.model_dump(),
                             f"must be {allowed}", source=source)
        if isinstance(values, IntRange) and not 1 <= values.min <= values.max:
            raise InputError(f"decisions.{name}", values.model_dump(), "must have 1 <= min <= max", source=source)
    ranges = [n for n, v in mission.decisions.items() if isinstance(v, IntRange)]
    if len(ranges) > 1:
        raise InputError("decisions", ranges, "at most one range decision per mission", source=source)
    if mission.objective.quantity not in OBJECTIVES[part]:
        raise InputError("objective.quantity", mission.objective.quantity,
                         f"part {part} optimises {', '.join(OBJECTIVES[part])}", source=source)
    sense = SENSES.get(mission.objective.quantity, mission.objective.sense)
    if mission.objective.sense != sense:
        raise InputError("objective.sense", mission.objective.sense,
                         f"{mission.objective.quantity} is to {sense}", source=source)
    for i, name in enumerate(mission.constraints):
        if name not in CONSTRAINTS[part]:
            raise UnknownNameError(f"constraints.{i}", name, CONSTRAINTS[part], f"part-{part} wall").with_source(source)
    if mission.wall not in mission.constraints:
        raise InputError("wall", mission.wall, f"must be one of the constraints ({', '.join(mission.constraints)})",
                         source=source)


def _check_part_rules(mission: Mission, source: str) -> None:
    ranges = [n for n, v in mission.decisions.items() if isinstance(v, IntRange)]
    if mission.part == 2 and (not ranges or ranges[0] != f"data.{mission.objective.quantity}"):
        raise InputError("decisions", ranges, f"a part-2 mission minimises a range decision: give "
                         f"data.{mission.objective.quantity} = {{ min = .., max = .. }}", source=source)
    if mission.part != 3:
        return
    if mission.limits is None:
        raise InputError("limits", None, "a part-3 mission needs [limits] devices and global_batch", source=source)
    if "starvation" not in mission.constraints:
        raise InputError("constraints", mission.constraints, "a part-3 mission keeps the input pipeline "
                         "fed (part 2's lesson): include \"starvation\"", source=source)
    if ranges != ["training.micro_batches"]:
        raise InputError("decisions", ranges, "a part-3 mission gives training.micro_batches as a range",
                         source=source)
    if ("power" in mission.constraints) != (mission.scenario.get("system", {}).get("power_budget_w") is not None):
        raise InputError("scenario.system.power_budget_w", mission.scenario.get("system", {}).get("power_budget_w"),
                         "give a budget exactly when \"power\" is among the constraints", source=source)
    if ("deadline" in mission.constraints) != (mission.limits.days is not None):
        raise InputError("limits.days", mission.limits.days,
                         "give a deadline exactly when \"deadline\" is among the constraints", source=source)
    if ("mfu_target" in mission.constraints) != (mission.objective.target is not None):
        raise InputError("objective.target", mission.objective.target,
                         "give a target exactly when \"mfu_target\" is among the constraints", source=source)


def _check_plans(mission: Mission, source: str) -> None:
    """The scenario, the naive plan and every Lock's settings are configurations the cost model
    evaluates (each Lock's answer is computed here, once, so a question that cannot be answered
    fails now), and every listed decision value is a valid configuration field."""
    from trainwall.challenges import plans
    from trainwall.optimizer.costmodel import evaluate

    from trainwall.challenges.quantities import QUANTITIES, quantity

    for where, sections in (("scenario", None), ("naive", mission.naive)):
        try:
            metrics = evaluate(plans.written(mission, sections))
        except InputError as exc:
            raise MissionError.of(source, exc, where) from None
        if where == "scenario" and mission.objective.quantity in QUANTITIES:   # a measured objective, not a decision
            try:
                quantity(mission.objective.quantity, metrics)
            except ArithmeticError as exc:
                raise MissionError("objective.quantity", mission.objective.quantity,
                                   f"undefined for this scenario: {exc}", source=source) from None
    for i, question in enumerate(mission.lock):
        try:
            lock_answer(mission, question)
        except InputError as exc:
            raise MissionError.of(source, exc, f"lock.{i}.at", f"Lock {question.id}") from None
        except ArithmeticError as exc:
            raise MissionError(f"lock.{i}.quantity", question.quantity, f"undefined at the Lock's settings "
                               f"({type(exc).__name__}: {exc}): change its at table", source=source) from None
    rounds = mission.integer_decision[1].min if mission.part == 3 else None   # part 3: the global batch follows
    for name, values in mission.decisions.items():
        for value in values if isinstance(values, list) else (values.min, values.max):
            if name == "training.micro_batches":
                continue            # not a configuration field: the global batch it sets is checked per mode
            try:
                plans.decided(mission, {name: value}, rounds)
            except InputError as exc:
                raise MissionError.of(source, exc, f"decisions.{name}", f"the value {value!r}") from None


def _check_variants(mission: Mission, source: str) -> None:
    from trainwall.challenges import plans

    dumped = mission.model_dump()
    for path, values in mission.variants.perturb.items():
        parent, _, leaf = path.rpartition(".")
        sets = isinstance(lookup(dumped, path), Scalar)
        if not sets and not (parent.startswith("scenario.") and isinstance(lookup(dumped, parent), dict)):
            raise InputError(f"variants.perturb.{path}", path, "must name a value this mission file sets, or a "
                             "field of a scenario section (e.g. scenario.system.background_network_load, "
                             "limits.global_batch)", source=source)
        if parent.startswith("scenario."):
            for value in values:
                try:
                    plans.written(mission, {parent.removeprefix("scenario."): {leaf: value}})
                except InputError as exc:
                    raise MissionError.of(source, exc, f"variants.perturb.{path}", f"the value {value!r}") from None


def lookup(data: dict, dotted: str) -> object:
    """The value at a dotted path of nested tables, or None where the path leads nowhere."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def parse_mission(data: dict, source: str) -> Mission:
    """Validate a mission file's data completely; every error is a :class:`MissionError`
    naming the file (``source``), the dotted field, the value and what is allowed."""
    try:
        return _check(Mission.model_validate(data), source)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(file)"
        raise MissionError(field, err.get("input"), err["msg"].removeprefix("Value error, "),
                           source=source) from None
    except MissionError:
        raise
    except InputError as exc:
        raise MissionError(exc.field, exc.value, exc.allowed, source=exc.source or source) from None


def load_mission(path: str | Path) -> Mission:
    from trainwall.core.fileformats import read_document

    return parse_mission(read_document(Path(path)), str(path))


def _shipped_path(mission_id: str):
    track, _, part = mission_id.partition("/")
    return resources.files("trainwall.challenges").joinpath(track, f"{part}.toml")


@bounded(1)
def shipped_ids() -> tuple[str, ...]:
    """The ids of the missions shipped with trainwall, in track then part order."""
    root = resources.files("trainwall.challenges")
    return tuple(f"{t}/{p}" for t in TRACKS for p in PARTS if root.joinpath(t, f"{p}.toml").is_file())


@bounded(64)       # the shipped missions (12), each parsed once
def mission(mission_id: str) -> Mission:
    """A shipped mission by id (``mobile/1``); an unknown id names the closest ones."""
    if mission_id not in shipped_ids():
        raise UnknownNameError("mission", mission_id, shipped_ids(), "mission")
    import tomllib

    path = _shipped_path(mission_id)
    return parse_mission(tomllib.loads(path.read_text()), f"challenges/{mission_id}.toml")


def mission_id(reference: str) -> str:
    """The shipped mission a reference names: cloud/3 for the variant cloud/3@7f3a2c1e."""
    return reference.split("@", 1)[0]


def resolve(reference: str) -> Mission:
    """A mission id, or the path of a mission / variant file."""
    from trainwall.core.fileformats import SUFFIXES

    looks_like_a_file = Path(reference).suffix.lower() in SUFFIXES   # never an id: read it, or say why not
    if reference in shipped_ids() or "/" in reference and not looks_like_a_file and not os.path.exists(reference):
        return mission(reference)
    return load_mission(reference)
