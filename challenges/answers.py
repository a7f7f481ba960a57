"""Answer keys: a mission's certified optimum, as grading needs it, and where it comes from.

An :class:`Optimum` is solved once per mission (or variant) and kept in a bounded cache
keyed by the mission's content (:func:`optimum`), seeded from answer-key files
(:func:`load_keys`, written by ``trainwall generate``) or by a parent process
(:func:`remember`), so a class is graded with one solve per mission.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from trainwall.core.caches import BoundedDict
from trainwall.core.errors import InputError


class GraderError(Exception):
    """The grader cannot grade (a mission without a feasible plan): not the student's fault."""


@dataclass(frozen=True)
class Optimum:
    """What grading needs of a mission's certified optimum (the answer key's core)."""

    reference: str
    objective: float
    binding: tuple[str, ...]
    certified: bool
    lock_answers: dict[str, float]
    configuration: dict | None = None      # for the answer key; never shown to a student
    runner_up: dict | None = None

    def to_dict(self) -> dict:
        return {"reference": self.reference, "objective": self.objective, "binding": list(self.binding),
                "certified": self.certified, "lock_answers": dict(self.lock_answers),
                "configuration": self.configuration, "runner_up": self.runner_up}

    @classmethod
    def from_dict(cls, data: dict) -> "Optimum":
        return cls(data["reference"], float(data["objective"]), tuple(data["binding"]), bool(data["certified"]),
                   {k: float(v) for k, v in data["lock_answers"].items()}, data.get("configuration"),
                   data.get("runner_up"))

    @classmethod
    def of(cls, mission, solution=None) -> "Optimum":
        """Solve ``mission`` (unless its ``solution`` is given) and keep what grading needs."""
        from trainwall.challenges.solve import solve
        from trainwall.optimizer.highs import Status

        solution = solution or solve(mission)
        if solution.status is not Status.OPTIMAL:
            raise GraderError(f"{mission.reference} has no feasible plan ({solution.status.value}; conflicting walls: "
                              f"{', '.join(solution.conflicts) or 'none found'}): it cannot be graded")
        return cls(mission.reference, float(solution.objective), tuple(solution.binding), solution.certified,
                   mission.lock_answers(), solution.configuration, (solution.extra or {}).get("runner_up"))


#: Optima by mission content: a class graded against one answer-key folder (up to
#: MAX_STUDENTS variants) fits; each entry is a few kilobytes. An evicted optimum is
#: solved again, never wrong.
_OPTIMA: BoundedDict[str, Optimum] = BoundedDict(16_384, "trainwall.challenges.answers.optima")


def fingerprint(mission) -> str:
    """A key for a mission's content: equal missions share one optimum."""
    return hashlib.sha256(mission.model_dump_json().encode()).hexdigest()


def optimum(mission) -> Optimum:
    """The certified optimum of ``mission``, solved once per process (or seeded by :func:`remember`)."""
    key = fingerprint(mission)
    found = _OPTIMA.get(key)
    if found is None:
        found = _OPTIMA[key] = Optimum.of(mission)
    return found


def remember(mission, known: Optimum) -> None:
    """Seed the cache with an optimum solved elsewhere (an answer key, a parent process)."""
    _OPTIMA[fingerprint(mission)] = known


class AnswerKey(NamedTuple):
    """One student's answer key: the variant, its certified optimum and the student it was drawn for."""

    mission: object
    optimum: Optimum
    student: str | None


def load_keys(folder: str | Path) -> dict[str, AnswerKey]:
    """Answer keys of a ``generate`` output (the folder itself or its ``keys/``): reference -> AnswerKey.

    Each ``*.json`` is read by the hardened reader (trainwall.core.fileformats: regular files
    only, size, depth and integer caps, duplicate keys refused): a FIFO, a link to a device,
    a folder named ``x.json`` or a malformed key is an InputError naming the file."""
    from trainwall.challenges.mission import parse_mission
    from trainwall.core.fileformats import read_document

    if not str(folder).strip():         # Path("") is the current folder: never what was meant
        raise InputError("--mission", str(folder), "an empty path names no answer-key folder")
    folder = Path(folder)
    if os.path.isdir(folder / "keys"):      # never raises (Path.is_dir does for a name too long)
        folder = folder / "keys"
    found = {}
    for path in sorted(folder.glob("*.json")):
        data = read_document(path)
        try:
            mission = parse_mission(data["mission"], str(path))
            best = _checked_optimum(Optimum.from_dict(data["optimum"]))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise InputError("", str(path), f"not a trainwall answer key ({type(exc).__name__}: {exc})",
                             source=str(path)) from None
        remember(mission, best)
        student = data.get("student")
        found[mission.reference] = AnswerKey(mission, best, student if isinstance(student, str) else None)
    if not found:
        raise InputError("--mission", str(folder), "no answer keys (*.json from trainwall generate) in this folder")
    return found


def _checked_optimum(best: Optimum) -> Optimum:
    """An answer key's numbers are finite (grading compares with them and writes them out)."""
    import math

    numbers = {"optimum.objective": best.objective, **{f"optimum.lock_answers.{k}": v
                                                       for k, v in best.lock_answers.items()}}
    for field, value in numbers.items():
        if not math.isfinite(value):
            raise ValueError(f"{field} = {value!r} must be a finite number")
    return best
