"""The public Python API: the same calls the CLI makes."""

from __future__ import annotations

from pathlib import Path

from trainwall.core.config import Config, load_config
from trainwall.optimizer.costmodel import Metrics, evaluate as _evaluate


def evaluate(config: Config) -> Metrics:
    """Evaluate a validated configuration with the cost model."""
    return _evaluate(config)


def evaluate_file(path: str | Path, mission: str | None = None) -> tuple[Config, Metrics]:
    """Load, validate and evaluate a TOML / JSON / YAML configuration file, or the plan a
    submission file describes (its mission's scenario with its [configuration]; ``mission``
    names the mission file of a variant), so a student keeps one file."""
    config = submitted_plan(path, mission) or load_config(path)
    try:
        return config, _evaluate(config)
    except Exception as exc:  # noqa: BLE001 - a user-caused error gains the file name
        from trainwall.core.errors import InputError

        if isinstance(exc, InputError) and not exc.source:
            raise exc.with_source(str(path)) from None
        raise


def submitted_plan(path: str | Path, mission: str | None) -> Config | None:
    """The plan of a submission file (None when the file is a configuration)."""
    from trainwall.core.errors import InputError
    from trainwall.core.fileformats import read_document

    data = read_document(path)
    if not (isinstance(data, dict) and "mission" in data and "configuration" in data):
        if mission is not None:
            raise InputError("--mission", mission, "only a submission file is evaluated against a mission")
        return None
    from trainwall.challenges.mission import resolve
    from trainwall.challenges.submission import parse_submission, plan

    submission = parse_submission(data, str(path))
    if mission is None and "@" in submission.mission:
        raise InputError("mission", submission.mission, "a variant's plan is evaluated with --mission naming its "
                         "mission file (the handout's mission.toml)", source=str(path))
    found = resolve(mission or submission.mission)
    if found.reference != submission.mission:
        raise InputError("mission", submission.mission, f"--mission is {found.reference!r}", source=str(path))
    return plan(found, submission.configuration.dotted(), str(path))


def grade(submission: str | Path, mission: str | None = None):
    """Grade a submission file (never raises for a bad submission: see ``Grade.format_errors``).

    ``mission`` is what ``trainwall grade --mission`` takes: an id, a mission / variant
    file or an answer-key folder; by default the submission's own mission id."""
    from trainwall.challenges.grading import MissionSource, grade_file

    return grade_file(submission, MissionSource.open(mission))
