"""The checker: a submission → schema → feasibility → objective vs the certified optimum → score.

``grade_file`` never raises: a malformed submission (unreadable, not the schema, a
choice the mission does not open) gives a :class:`Grade` with ``gradable = False``
and the one-line error; a failure of the grader itself gives ``internal_error``. A
gradable submission is evaluated by the one cost model; each of the mission's walls
becomes a test with its value, limit and slack, and the score follows the mission's
:class:`~trainwall.challenges.mission.GradingPolicy` (the partial-credit curve and
the weights). Feedback names the walls and the direction to move, never the optimum's
configuration.

Optima come from :mod:`trainwall.challenges.answers`: solved once per mission (or
variant), or read from answer keys.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from trainwall.challenges.answers import GraderError, Optimum, optimum
from trainwall.core.errors import InputError, MissionError, TrainwallError, UnknownNameError


#: A Lock prediction's check is named this, then the Lock's id.
LOCK_CHECK = "prediction: "


@dataclass(frozen=True)
class Check:
    """One line of the verdict; a platform's test case."""

    name: str
    score: float
    max_score: float
    passed: bool
    output: str

    @property
    def lock(self) -> str | None:
        """The Lock's id, for a prediction's check."""
        return self.name[len(LOCK_CHECK):] if self.name.startswith(LOCK_CHECK) else None


@dataclass(frozen=True)
class Grade:
    """The whole verdict on one submission (docs/INTERFACE.md, ``grade --format json``)."""

    source: str
    mission: str | None
    student: str | None
    gradable: bool
    score: float
    max_score: float
    feasible: bool | None = None
    objective_name: str | None = None
    sense: str | None = None
    objective: float | None = None
    optimum: float | None = None
    gap: float | None = None
    checks: tuple[Check, ...] = ()
    walls: tuple = ()                       # WallCheck per mission wall
    feedback: tuple[str, ...] = ()
    format_errors: tuple[str, ...] = ()
    internal_error: str | None = None
    moves_to_balance: int | None = None
    # the objective is a decision's own value (workers, echo, micro-batch): its optimum IS the
    # answer, so what a student reads (every results format) states neither it nor the gap;
    # the instructor's summary.csv keeps both
    answer_hidden: bool = False
    reflections: tuple[tuple[str, str], ...] = ()   # (the prompt, the student's answer): ungraded, for a TA

    @property
    def fraction(self) -> float:
        """The score in [0, 1]."""
        return self.score / self.max_score if self.max_score else 0.0

    def to_dict(self) -> dict:
        return {
            "mission": self.mission, "student": self.student, "source": self.source,
            "gradable": self.gradable, "score": self.score, "max_score": self.max_score,
            "feasible": self.feasible, "objective": self.objective,
            "optimum": None if self.answer_hidden else self.optimum, "gap": None if self.answer_hidden else self.gap,
            "objective_name": self.objective_name, "sense": self.sense,
            "tests": [{"name": c.name, "score": c.score, "max_score": c.max_score,
                       "status": "passed" if c.passed else "failed", "output": c.output} for c in self.checks],
            "walls": [{"constraint": w.wall, "value": w.value, "limit": w.limit, "slack": w.slack, "unit": w.unit,
                       "satisfied": w.satisfied} for w in self.walls],
            "moves_to_balance": self.moves_to_balance,
            "feedback": list(self.feedback), "format_errors": list(self.format_errors),
            "internal_error": self.internal_error,
            "reflections": [{"prompt": p, "answer": a} for p, a in self.reflections],
        }


# --- the credit curve ----------------------------------------------------------------------------

def credit(policy, shortfall: float) -> float:
    """The documented partial-credit curve: 1 up to ``full_credit_gap``, 0 from ``zero_credit_gap``,
    linear in between."""
    if shortfall <= policy.full_credit_gap:
        return 1.0
    if shortfall >= policy.zero_credit_gap:
        return 0.0
    return (policy.zero_credit_gap - shortfall) / (policy.zero_credit_gap - policy.full_credit_gap)


def weights(mission) -> dict[str, float]:
    """Points per component: the policy's weights over the components the mission has, scaled to max_score."""
    p = mission.grading
    parts = {"objective": p.objective}
    if mission.lock:
        parts["predictions"] = p.predictions
    if mission.part == 2:
        parts["moves"] = p.moves
    total = sum(parts.values()) or 1.0
    return {k: p.max_score * v / total for k, v in parts.items()}


def prediction_correct(given: float, answer: float, tolerance: float) -> bool:
    """Within the question's relative tolerance (and always within 1e-9, for exact answers)."""
    return abs(given - answer) <= max(tolerance, 1e-9) * abs(answer) or given == answer


def _objective_check(mission, value: float, best: float, shortfall: float, feasible: bool, points: float,
                     hidden: bool) -> Check:
    """The objective against the certified optimum on the credit curve; a decision-valued
    objective (``hidden``) is compared by direction only: its optimum is the answer."""
    policy, name, sense = mission.grading, mission.objective.quantity, mission.objective.sense
    earned = credit(policy, shortfall) if feasible else 0.0
    against = (_direction(sense, value, best) if hidden else
               f"certified optimum {show_objective(name, best)} (gap {policy.describe(max(shortfall, 0.0))})")
    return Check(f"objective: {sense} {name}", points * earned, points, feasible and earned == 1.0,
                 f"yours {show_objective(name, value)}, {against}; full credit within "
                 f"{policy.describe(policy.full_credit_gap)}, none from {policy.describe(policy.zero_credit_gap)}"
                 + ("" if feasible else "; an infeasible plan earns none"))


def _prediction_checks(shown, submission, best, points: float) -> list[tuple[Check, str | None]]:
    """Each Lock prediction against its key within the stated tolerance, with advice when wrong
    (``shown``: the mission rendered, the texts the student read)."""
    out = []
    for question in shown.lock:
        share = points / len(shown.lock)
        given = submission.predictions.get(question.id)
        if given is None:
            out.append((Check(f"{LOCK_CHECK}{question.id}", 0.0, share, False, "not answered"), None))
            continue
        answer = best.lock_answers[question.id]
        ok = prediction_correct(given, answer, question.tolerance)
        direction = "" if ok else ("too high" if given > answer else "too low")
        check = Check(f"{LOCK_CHECK}{question.id}", share if ok else 0.0, share, ok,
                      f"{given:g}: {_tolerance_phrase(ok, question.tolerance)}" + (f" ({direction})" if direction else ""))
        out.append((check, None if ok else f"Prediction {question.id} = {given:g} is {direction}. {question.text}"))
    return out


def _reflections(shown, submission) -> tuple[tuple[str, str], ...]:
    """The student's reflection answers beside the prompts they answer (``shown``: the mission
    rendered), in prompt order."""
    prompts = shown.reflection
    return tuple((prompts[int(k) - 1], submission.reflection[k])
                 for k in sorted(submission.reflection, key=int))


def _direction(sense: str, value: float, best: float) -> str:
    """Where a decision-valued objective stands against the optimum, without stating it."""
    if value == best:
        return "the certified optimum"
    better = value > best if sense == "maximize" else value < best
    if better:
        return "beyond the certified optimum (the plan breaks a wall)"
    return f"the certified optimum is {'higher' if sense == 'maximize' else 'lower'}"


def _tolerance_phrase(ok: bool, tolerance: float) -> str:
    if tolerance == 0.0:
        return "the exact value" if ok else "not the exact value"
    return f"{'within' if ok else 'outside'} the {tolerance * 100:g} % relative tolerance"


# --- formatting ----------------------------------------------------------------------------------

def show(value: float, unit: str) -> str:
    """A value in the unit a student reads: GiB/MiB/KiB for bytes, % for fractions, mW or kW for watts."""
    if unit == "bytes":
        from trainwall.core.units import unit_for

        scale, name = unit_for(abs(value) or 1.0)
        return f"{value / scale:.3f} {name}"
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "samples/s":
        return f"{value:.4g} samples/s"
    if unit == "W":
        from trainwall.core.units import watts

        return watts(value)
    return f"{value:g} {unit}"


def wall_summary(w) -> str:
    """One wall's verdict: value against limit and the slack, or what breaks it."""
    if w.wall == "stability":
        return "stable: every rule holds" if w.satisfied else f"unstable: {w.message}"
    line = (f"{show(w.value, w.unit)} {'>=' if w.at_least else '<='} {show(w.limit, w.unit)} required; "
            f"slack {show(w.slack, w.unit)}")
    return line if w.satisfied else f"{line}. Broken: {w.message}"


def show_objective(name: str, value: float) -> str:
    """An objective's value as feedback and reports state it: 14.74%, $37,261,738, 1,024."""
    if name == "mfu":
        return f"{value:.2%}"
    if name == "energy_kwh":
        return f"{value:,.0f} kWh"
    return f"${value:,.0f}" if name == "dollars" else f"{value:,.6g}"


# --- grading -------------------------------------------------------------------------------------

def grade_submission(mission, submission, best: Optimum, source: str = "") -> Grade:
    """Grade a schema-valid submission against ``mission`` whose optimum is ``best``.

    Raises InputError where the submission does not fit the mission (a malformed submission)."""
    from trainwall.challenges.quantities import DECISION_OBJECTIVES, objective_value
    from trainwall.challenges.submission import check_against, plan
    from trainwall.optimizer.costmodel import evaluate

    check_against(mission, submission, source)
    config = plan(mission, submission.configuration.dotted(), source)
    try:
        metrics = evaluate(config)
    except InputError as exc:
        raise InputError(f"configuration.{exc.field}" if exc.field else "configuration", exc.value, exc.allowed,
                         source=source) from None
    walls = mission.checks(metrics)
    feasible = all(w.satisfied for w in walls)
    name, sense = mission.objective.quantity, mission.objective.sense
    value = objective_value(name, config, metrics)
    shortfall = mission.grading.shortfall(sense, value, best.objective)
    points = weights(mission)
    policy = mission.grading

    checks = [Check(f"wall: {w.wall}", 0.0, 0.0, w.satisfied, wall_summary(w)) for w in walls]
    hidden = name in DECISION_OBJECTIVES
    checks.append(_objective_check(mission, value, best.objective, shortfall, feasible, points["objective"], hidden))
    feedback = _feedback(mission, best, submission, config, walls, value, shortfall)
    feedback += _time_to_train(metrics) if feasible else []        # a plan that breaks a wall does not train
    shown = mission.rendered()                    # rendered once: the Lock texts and prompts the student read
    for check, advice in _prediction_checks(shown, submission, best, points["predictions"]):
        checks.append(check)
        feedback += [advice] if advice else []

    reached = None
    if mission.part == 2:
        reached, output = _five_move_rule(mission, submission, best, source, config)
        ok = reached is not None and reached <= policy.move_limit
        checks.append(Check(f"{policy.move_limit}-move rule", points["moves"] if ok else 0.0, points["moves"], ok,
                            output))
    score = round(sum(c.score for c in checks), 12)
    return Grade(source, mission.reference, submission.student, True, score, policy.max_score, feasible, name, sense,
                 value, best.objective, shortfall if math.isfinite(shortfall) else None, tuple(checks), tuple(walls),
                 tuple(feedback), answer_hidden=hidden, reflections=_reflections(shown, submission),
                 moves_to_balance=reached)


def _time_to_train(metrics) -> list[str]:
    """What the submitted plan costs to train to the workload's budget (its own numbers, never
    the optimum's): days, device-hours, dollars where the device has a price."""
    run = metrics.training
    if run is None:
        return []
    money = f", ${run.dollars:,.0f}" if run.dollars is not None else ""
    return [f"Your plan trains to the goal in {run.days:,.1f} days: {run.device_hours:,.0f} device-hours{money}, "
            f"{run.idle_share:.0%} of them waiting (bubble, exposed communication, stalls)."]


def _feedback(mission, best: Optimum, submission, config, walls, value: float, shortfall: float) -> list[str]:
    """What to do next (:mod:`trainwall.challenges.feedback`): the broken walls and their levers,
    or the levers that are short and the walls the optimum leans on harder."""
    from trainwall.challenges import feedback

    if not all(w.satisfied for w in walls):
        return feedback.infeasible(mission, walls)
    policy = mission.grading
    if shortfall <= policy.full_credit_gap:
        return [(f"Feasible and within {policy.describe(policy.full_credit_gap)} of the certified optimum: "
                "full credit.")]
    from trainwall.challenges.quantities import DECISION_OBJECTIVES

    better = "higher" if mission.objective.sense == "maximize" else "lower"
    by = "" if mission.objective.quantity in DECISION_OBJECTIVES else f"{policy.describe(shortfall)} "  # the answer
    return ([f"Feasible, but {by}short of the certified optimum: {mission.objective.quantity} can be {better}."]
            + feedback.short_of_optimum(mission, best, submission.configuration.dotted(), config, value, walls))


def _five_move_rule(mission, submission, best: Optimum, source: str, submitted) -> tuple[int | None, str]:
    """Replay the move log from the naive plan: the first move that reaches the balance point,
    provided the log ends at the plan submitted (``submitted``, its Config): a log that ends
    elsewhere describes another search and earns nothing."""
    from trainwall.challenges.plans import field_value
    from trainwall.challenges.quantities import objective_value
    from trainwall.challenges.submission import plan
    from trainwall.optimizer.costmodel import evaluate

    if not submission.moves:
        return None, "no move log submitted ([[moves]], each the fields changed from the previous plan)"
    chosen: dict[str, object] = {}
    reached, configs = None, []
    for i, move in enumerate(submission.moves, start=1):
        chosen.update(move.dotted())
        config = plan(mission, chosen, source, where=f"moves.{i - 1}", base=mission.naive)
        configs.append(config)
        metrics = evaluate(config)
        value = objective_value(mission.objective.quantity, config, metrics)
        if reached is None and (not mission.violations(metrics) and mission.grading.shortfall(
                mission.objective.sense, value, best.objective) <= mission.grading.full_credit_gap):
            reached = i
    differ = [d for d in mission.decisions if field_value(configs[-1], d) != field_value(submitted, d)]
    if differ:
        return None, (f"the move log ends at a plan other than the one submitted (it differs in "
                      f"{', '.join(differ)}): the log must end at your configuration")
    if reached is None:
        return None, f"the balance point was not reached in the {len(submission.moves)} logged moves"
    return reached, f"balance point reached at move {reached} (limit {mission.grading.move_limit})"



def grade_file(path: str | Path, missions: "MissionSource", contents=None) -> Grade:
    """Grade one submission file; never raises (malformed and internal failures are Grades too).
    ``contents``: the file as read on another machine (:class:`~trainwall.core.fileformats.Contents`),
    graded as if read here.

    A mistake in the submission is the student's (``format_errors``: fix and submit again);
    a mission, variant or answer key that cannot be solved or graded, and any failure of
    the grader itself, is the grader's (``internal_error``: not the student's mistake)."""
    from trainwall.challenges.submission import load_submission

    source = str(path)
    submission = None
    try:
        submission = load_submission(path, contents)
        mission, best = missions.find(submission.mission, source)
        missions.check_owner(submission, source)
        return grade_submission(mission, submission, best, source)
    except (GraderError, MissionError) as exc:
        return grader_failed(source, f"the grader failed, not your submission: {exc}", submission,
                             missions.max_score)
    except TrainwallError as exc:
        return malformed(source, str(exc), submission)
    except Exception as exc:  # noqa: BLE001 - the grader's own failure still writes a results file
        return grader_failed(source, f"{type(exc).__name__}: {exc}", submission, missions.max_score)


def grader_failed(source: str, message: str, submission=None, max_score: float = 1.0) -> Grade:
    return Grade(source, getattr(submission, "mission", None), getattr(submission, "student", None), False, 0.0,
                 max_score, internal_error=_clip(message),
                 feedback=(("The grader itself failed on this submission; this is not your mistake. "
                           "Tell your instructor."),))


def malformed(source: str, message: str, submission=None, max_score: float = 1.0) -> Grade:
    return Grade(source, getattr(submission, "mission", None), getattr(submission, "student", None), False, 0.0,
                 max_score, format_errors=(_clip(message),),
                 feedback=("The submission could not be graded: fix the error and submit again.",))


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _graded_optimum(mission) -> Optimum:
    """The optimum a submission is graded against; a mission that cannot be solved is the grader's failure."""
    try:
        return optimum(mission)
    except TrainwallError as exc:
        raise GraderError(f"{mission.reference} cannot be solved: {exc}") from None


class MissionSource:
    """Where a submission's mission comes from: one fixed mission (``--mission``), a folder of
    answer keys (variants), or the shipped missions by id."""

    def __init__(self, fixed=None, keys: dict | None = None, identities: frozenset[str] | None = None) -> None:
        self.fixed = fixed
        self.keys = keys or {}          # reference -> AnswerKey (mission, optimum, student)
        self.identities = identities    # who the platform says submitted (case-folded), when it says

    @property
    def max_score(self) -> float:
        return self.fixed.grading.max_score if self.fixed is not None else 1.0

    def check_owner(self, submission, source: str) -> None:
        """A variant drawn for one student is graded only for that student (the answer key
        records whom ``trainwall generate`` drew it for): a copied file is refused."""
        key = self.keys.get(submission.mission)
        if key is None or key.student is None:
            return
        if self.identities is not None:     # the platform's word, not the file's student field
            if key.student.casefold() not in self.identities:
                raise InputError("mission", submission.mission, "this variant belongs to another student, not to "
                                 "the account that submitted it: submit the mission of your own handout",
                                 source=source)
            return
        if submission.student is None:
            raise InputError("student", None, "this variant was drawn for one student: give student = \"...\" "
                             "as your handout's submission.toml does", source=source)
        if submission.student != key.student:
            raise InputError("mission", submission.mission, f"this variant belongs to another student, not to "
                             f"{submission.student!r}: submit the mission of your own handout", source=source)

    def find(self, reference: str, source: str):
        """(mission, optimum) for a submission's ``mission`` field."""
        if reference in self.keys:
            key = self.keys[reference]
            return key.mission, key.optimum
        if self.keys:
            known = sorted(self.keys)
            shown = ", ".join(known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
            raise InputError("mission", reference, f"this grader holds no answer key for it (it grades {shown})",
                             source=source)
        if self.fixed is not None:
            if reference != self.fixed.reference:
                raise InputError("mission", reference, f"this grader grades {self.fixed.reference!r}", source=source)
            return self.fixed, _graded_optimum(self.fixed)
        if "@" in reference:
            raise InputError("mission", reference, "a variant is graded with --mission naming its answer-key folder "
                             "(or the variant's mission file)", source=source)
        from trainwall.challenges.mission import mission as shipped

        try:
            found = shipped(reference)
        except UnknownNameError:        # the student named no mission: the closest ids
            raise
        except TrainwallError as exc:   # a shipped mission that does not load (a MissionError)
            raise GraderError(f"the shipped mission {reference} is broken: {exc}") from None
        return found, _graded_optimum(found)

    @classmethod
    def open(cls, reference: str | None, identities: frozenset[str] | None = None) -> "MissionSource":
        """From ``--mission``: None, a mission id, a mission / variant file, or an answer-key folder;
        ``identities``: who submitted, as the platform says (:func:`platform_identities`)."""
        if reference is None:
            return cls(identities=identities)
        if not reference.strip():       # Path("") is the current folder: never what was meant
            raise InputError("--mission", reference, "must name a mission id, a mission file or an answer-key "
                             "folder, not an empty string")
        if os.path.isdir(reference):     # os.path: Path.is_dir raises on a name too long (Python 3.11)
            from trainwall.challenges.answers import load_keys

            return cls(keys=load_keys(reference), identities=identities)
        from trainwall.challenges.mission import resolve

        return cls(fixed=resolve(reference), identities=identities)


def platform_identities(path: str | Path) -> frozenset[str]:
    """Who submitted, from Gradescope's ``submission_metadata.json``
    (gradescope-autograders.readthedocs.io, "Submission Metadata": ``users[]`` of ``email``,
    ``id``, ``name``, and ``sid`` where the course has student ids): each user's email, student
    id and Gradescope id, case-folded. Names are left out: two students can share one. A
    roster given to ``generate`` names students by one of these."""
    from trainwall.core.fileformats import read_document

    data = read_document(path)
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list) or not users:
        raise InputError("users", users, "the submission metadata names no submitting user", source=str(path))
    found = {str(user[field]).strip().casefold() for user in users if isinstance(user, dict)
             for field in ("email", "sid", "id") if user.get(field) not in (None, "")}
    return frozenset(found)
