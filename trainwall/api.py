"""The public Python API: the same calls the CLI makes."""

from __future__ import annotations

from pathlib import Path

from trainwall.core.config import Config, load_config
from trainwall.optimizer.costmodel import Metrics, evaluate as _evaluate


def evaluate(config: Config) -> Metrics:
    """Evaluate a validated configuration with the cost model."""
    return _evaluate(config)


def evaluate_file(path: str | Path) -> tuple[Config, Metrics]:
    """Load, validate and evaluate a TOML / JSON / YAML configuration file."""
    config = load_config(path)
    try:
        return config, _evaluate(config)
    except Exception as exc:  # noqa: BLE001 - a user-caused error gains the file name
        from trainwall.core.errors import InputError

        if isinstance(exc, InputError) and not exc.source:
            raise exc.with_source(str(path)) from None
        raise


def grade(submission: str | Path, mission: str | None = None):
    """Grade a submission file (never raises for a bad submission: see ``Grade.format_errors``).

    ``mission`` is what ``trainwall grade --mission`` takes: an id, a mission / variant
    file or an answer-key folder; by default the submission's own mission id."""
    from trainwall.challenges.grading import MissionSource, grade_file

    return grade_file(submission, MissionSource.open(mission))
