"""A student's submission (docs/INTERFACE.md, "Submission file") and the plan it describes.

A submission names its mission (``cloud/3``, or a generated variant ``cloud/3@7f3a2c1e``),
optionally the student, the chosen ``[configuration]`` (the keys of a config's
``[training]`` and ``[data]``), the Lock ``[predictions]``, for part 2 the ``[[moves]]``
the student made from the naive configuration (the lab's 5-move rule), and the
``[reflection]``: free text per prompt number, never scored, carried to every results
format for a TA.

The schema is strict (unknown keys are errors) and shares the config's section
definitions, so ``trainwall schema submission`` publishes the same rules. A submission
may only set what its mission decides: a decision's value must be one the mission
lists (or inside its range), and any other field must be left out or equal the
scenario's. Every error names the field (``configuration.training.micro_batch``),
the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainwall.core.config import DataSection, TrainingSection, first_error, parse_config
from trainwall.core.errors import InputError

#: A submission's ``mission``: a mission id, or a variant's ``id@variant``.
REFERENCE_PATTERN = r"^(cloud|edge|mobile|tiny)/[123](@[a-z0-9]{1,32})?$"
MAX_MOVES = 64
#: More predictions than any mission has Lock questions (each is checked against them).
MAX_PREDICTIONS = 64
#: A reflection answer: about two pages of prose; more prompts than any mission has.
MAX_REFLECTION_CHARS = 8000
MAX_REFLECTIONS = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Choices(_Strict):
    """The fields a student sets: a config's ``[training]`` and ``[data]`` keys (any subset)."""

    training: TrainingSection = TrainingSection()
    data: DataSection = DataSection()

    def dotted(self) -> dict[str, object]:
        """Only what the student wrote, as dotted fields (``training.micro_batch``)."""
        return {f"{section}.{name}": value for section in ("training", "data")
                for name, value in getattr(self, section).model_dump(exclude_unset=True).items()}


class Submission(_Strict):
    """One student's answer to one mission."""

    mission: Annotated[str, Field(pattern=REFERENCE_PATTERN)]
    student: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    configuration: Choices
    predictions: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)], float],
                           Field(max_length=MAX_PREDICTIONS)] = {}
    moves: Annotated[list[Choices], Field(max_length=MAX_MOVES)] = []
    # free text per reflection prompt, keyed by its number ("1", "2", ...): ungraded, carried to a TA
    reflection: Annotated[dict[Annotated[str, Field(pattern=r"^[1-9][0-9]?$")],
                               Annotated[str, Field(max_length=MAX_REFLECTION_CHARS)]],
                          Field(max_length=MAX_REFLECTIONS)] = {}


def parse_submission(data: object, source: str) -> Submission:
    """Validate parsed data into a :class:`Submission` (schema only: the mission is not read)."""
    if not isinstance(data, dict):
        raise InputError("", type(data).__name__, "a submission must be a table (mission, configuration, ...)",
                         source=source)
    try:
        return Submission.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, Submission).with_source(source) from None


def load_submission(path: str | Path, contents=None) -> Submission:
    """The submission at ``path`` (``contents``: its file as read elsewhere, a
    :class:`~trainwall.core.fileformats.Contents`)."""
    from trainwall.core.fileformats import read_document

    return parse_submission(read_document(path, contents), str(path))


def check_against(mission, submission: Submission, source: str) -> None:
    """The submission's mission, predictions and moves must fit ``mission``."""
    if submission.mission != mission.reference:
        raise InputError("mission", submission.mission, f"this grader grades {mission.reference!r}", source=source)
    known = [q.id for q in mission.lock]
    for name in submission.predictions:
        if name not in known:
            raise InputError(f"predictions.{name}", submission.predictions[name],
                             f"not a Lock question of {mission.reference}; its questions: "
                             f"{', '.join(known) or 'none'}", source=source)
    for key, answer in submission.reflection.items():
        if not 1 <= int(key) <= len(mission.reflection):
            raise InputError(f"reflection.{key}", answer[:40], f"{mission.reference} has reflection prompts 1 to "
                             f"{len(mission.reflection)}" if mission.reflection else "this mission asks no "
                             "reflection", source=source)
    if submission.moves and mission.part != 2:
        raise InputError("moves", f"{len(submission.moves)} moves", "a move log belongs to a part-2 mission "
                         f"(the pipeline race); {mission.reference} is part {mission.part}", source=source)


def _free_fields(mission) -> set[str]:
    """Fields a submission may set besides the listed decisions."""
    free = set()
    if mission.select_layers:
        free.add("training.trainable")
    if mission.part == 3:   # the global batch sets the micro-batch count, the degrees set the device count
        free.add("training.global_batch")
    return free


def _check_choice(mission, scenario, dotted: str, value: object, field: str, source: str) -> None:
    from trainwall.challenges.mission import IntRange

    allowed = mission.decisions.get(dotted)
    if isinstance(allowed, IntRange):
        if isinstance(value, bool) or not isinstance(value, int) or not allowed.min <= value <= allowed.max:
            raise InputError(field, value, f"{mission.reference} allows {allowed.min} to {allowed.max}", source=source)
    elif allowed is not None:
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise InputError(field, value, f"{mission.reference} allows {', '.join(repr(a) for a in allowed)}",
                             source=source)
    elif dotted not in _free_fields(mission):
        section, name = dotted.split(".", 1)
        fixed = getattr(getattr(scenario, section), name)
        if value != fixed:
            opened = ", ".join(list(mission.decisions) + sorted(_free_fields(mission)))
            raise InputError(field, value, f"not a decision of {mission.reference} (it decides {opened}); "
                             f"leave it out or give the scenario's {fixed!r}", source=source)


def plan(mission, chosen: dict[str, object], source: str, where: str = "configuration", base: dict | None = None):
    """The validated :class:`Config` of ``mission`` with the dotted ``chosen`` fields set
    (built by :func:`trainwall.challenges.plans.decided`).

    ``base`` (section overrides, e.g. the naive plan a move log starts from) is applied
    first and not checked; every field in ``chosen`` is checked against the mission."""
    from trainwall.challenges import plans

    scenario = plans.written(mission)
    for dotted, value in chosen.items():
        _check_choice(mission, scenario, dotted, value, f"{where}.{dotted}", source)
    data = plans.decided_data(mission, chosen, base=base)
    if mission.part == 3:
        _check_scale(mission, data, where, source)
    try:
        return parse_config(data)
    except InputError as exc:
        raise InputError(f"{where}.{exc.field}" if exc.field else where, exc.value, exc.allowed,
                         source=source) from None


def _check_scale(mission, data: dict, where: str, source: str) -> None:
    """Part 3: the degrees set the device count, the global batch the micro-batch count; both in range."""
    from trainwall.challenges import plans

    t = data["training"]
    tp, pp, dp, cp = plans.degrees(data)
    devices = plans.layout_devices(data)
    limits = mission.limits
    if not limits.min_devices <= devices <= limits.devices:
        product = f"{tp} x {pp} x {dp}" + (f" x {cp}" if cp > 1 else "")
        raise InputError(f"{where}.training.data_parallel", dp,
                         f"tensor x pipeline x data{' x context' if cp > 1 else ''} = {product} = {devices} devices; "
                         f"{mission.reference} uses {limits.min_devices} to {limits.devices}", source=source)
    mb = t.get("micro_batch", 1)
    gb = t.get("global_batch") or mb * dp      # null (JSON, YAML) means the config's default
    if gb > limits.global_batch:
        raise InputError(f"{where}.training.global_batch", gb,
                         f"{mission.reference} allows at most {limits.global_batch}", source=source)
    field, span = mission.integer_decision
    if gb % (mb * dp) == 0 and not span.min <= gb // (mb * dp) <= span.max:
        raise InputError(f"{where}.training.global_batch", gb,
                         f"global_batch / (micro_batch x data_parallel) = {gb // (mb * dp)} micro-batches; "
                         f"{mission.reference} allows {span.min} to {span.max}", source=source)
