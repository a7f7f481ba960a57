"""One student's workbench session on one mission, without marimo: the controls the
mission opens, the plan they describe, the move log the tool records, the locked
predictions and the reflections, and the submission they make.

The app (:mod:`trainwall.lab.app`) only draws widgets from :func:`controls` and passes
their values to :meth:`Lab.choose`; every number it shows comes from :meth:`Lab.metrics`,
which is the cost model's :func:`~trainwall.optimizer.costmodel.evaluate` of the plan
:func:`trainwall.challenges.submission.plan` builds, the grader's own plan builder. A
session holds no optimum and no answer key: a Lock's answer is computed (from the
mission's own numbers, as the grader does) only after its prediction is locked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Part 3's batch control: the micro-batches per step (the global batch follows from them).
MICRO_BATCHES = "training.micro_batches"
TRAINABLE = "training.trainable"
#: Where a plan's error says it came from.
SOURCE = "the workbench"


@dataclass(frozen=True)
class Control:
    """One widget: a dotted decision, its label, and its allowed values (``options``) or range."""

    field: str
    label: str
    options: tuple[Any, ...] = ()
    low: int | None = None
    high: int | None = None


@dataclass
class Move:
    """One change the student made: the fields that changed, as the submission's ``[[moves]]`` holds."""

    changes: dict[str, Any]


def _network(config):
    from trainwall.optimizer.costmodel import resolve_network, resolve_workload

    return resolve_network(config, resolve_workload(config))


def selectable_layers(mission) -> list[tuple[int, str]]:
    """(index, name) of every layer with parameters (the ones ``training.trainable`` may name)."""
    from trainwall.challenges import plans

    return [(i, layer.name) for i, layer in enumerate(_network(plans.written(mission)).layers) if layer.params > 0]


def last_layer_shortcuts(mission) -> dict[str, tuple[int, ...]]:
    """The ``last:N`` shortcut: for each distinct non-empty selection the configuration's
    ``last:N`` makes (the cost model's own :func:`trainable_mask`), the smallest N, labelled
    "last:N (k layers with weights)", mapped to the selectable layers it trains."""
    from trainwall.challenges import plans
    from trainwall.optimizer.costmodel.resolve import trainable_mask

    network = _network(plans.written(mission))
    selectable = [i for i, _ in selectable_layers(mission)]
    out: dict[str, tuple[int, ...]] = {}
    for n in range(1, len(network.layers) + 1):
        mask = trainable_mask(f"last:{n}", network)
        chosen = tuple(i for i in selectable if mask[i])
        if chosen and chosen not in out.values():
            out[f"last:{n} ({len(chosen)} layer{'s' * (len(chosen) != 1)} with weights)"] = chosen
    return out


def controls(mission) -> list[Control]:
    """The mission's decisions as widgets, in the mission's order (part 3's global batch as
    its micro-batches per step; part 1's layer selection last)."""
    from trainwall.challenges.mission import IntRange

    out = []
    for name, allowed in mission.decisions.items():
        label = name.split(".", 1)[1].replace("_", " ")
        if name == MICRO_BATCHES:
            label = "micro-batches per step (global batch = micro-batches x data parallel x micro batch)"
        if isinstance(allowed, IntRange):
            out.append(Control(name, label, low=allowed.min, high=allowed.max))
        else:
            out.append(Control(name, label, options=tuple(allowed)))
    if mission.select_layers:
        out.append(Control(TRAINABLE, "layers that train", options=tuple(i for i, _ in selectable_layers(mission))))
    return out


def initial_values(mission) -> dict[str, Any]:
    """Each control's value in the mission's current (naive) plan."""
    from trainwall.challenges import plans
    from trainwall.optimizer.costmodel.resolve import trainable_mask

    config = plans.written(mission, mission.naive)
    values = {}
    for c in controls(mission):
        if c.field == MICRO_BATCHES:
            values[c.field] = config.micro_batches
        elif c.field == TRAINABLE:
            mask = trainable_mask(config.training.trainable, _network(config))
            values[c.field] = tuple(i for i in c.options if mask[i])
        else:
            values[c.field] = plans.field_value(config, c.field)
    return values


def _kept_moves() -> int:
    """Moves kept one by one: a submission holds at most MAX_MOVES, and the last is kept for
    the net change of every move after these (see :meth:`Lab.move_log`)."""
    from trainwall.challenges.submission import MAX_MOVES

    return MAX_MOVES - 1


@dataclass
class Lab:
    """The session: current values, the move log (part 2), locked predictions, reflections.
    Its memory is bounded however long the session: the first moves are kept one by one
    (:func:`_kept_moves`), later ones only counted, and each control's tried values are a set
    of its allowed values."""

    mission: Any
    values: dict[str, Any] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)
    move_count: int = 0
    tried: dict[str, set] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)      # question -> what was typed, not a number
    reflections: dict[str, str] = field(default_factory=dict)
    configuration: str | None = None     # a sandbox's configuration file (trainwall.lab.sandbox)
    student: str | None = None           # whose handout this is: the submission names them

    @classmethod
    def open(cls, mission, configuration: str | None = None, student: str | None = None) -> "Lab":
        values = initial_values(mission)
        return cls(mission, values, tried={k: {v} for k, v in values.items()}, configuration=configuration,
                   student=student)

    def choose(self, values: dict[str, Any]) -> bool:
        """Set the controls; a change is one move in the log (part 2's balance point is
        counted in moves). Returns whether anything changed."""
        changes = {k: v for k, v in values.items() if k in self.values and self.values[k] != v}
        if not changes:
            return False
        self.values.update(changes)
        self.move_count += 1
        if len(self.moves) < _kept_moves():
            self.moves.append(Move(changes))
        for name, value in changes.items():
            self.tried.setdefault(name, set()).add(value)
        return True

    def move_log(self) -> list[Move]:
        """The log a submission carries: every move while they fit the format; past that, the
        kept moves and one last move, the net change from where they end to the plan. The
        grader reads the first move that reaches the balance point and the log's end, and
        both survive: a balance first reached after the kept moves could not be shown by any
        submission, which holds MAX_MOVES at most."""
        if self.move_count <= len(self.moves):
            return list(self.moves)
        reached = initial_values(self.mission)
        for move in self.moves:
            reached.update(move.changes)
        net = {k: v for k, v in self.values.items() if reached.get(k) != v}
        return list(self.moves) + ([Move(net)] if net else [])

    def chosen(self) -> dict[str, Any]:
        """The plan as the dotted fields a submission states (part 3: the global batch its
        micro-batches give, by the plan builder's own rule)."""
        from trainwall.challenges import plans

        out = {k: v for k, v in self.values.items() if k not in (MICRO_BATCHES, TRAINABLE)}
        if TRAINABLE in self.values:
            out[TRAINABLE] = list(self.values[TRAINABLE])
        if MICRO_BATCHES in self.values:
            data = plans.decided_data(self.mission, out, micro_batches=self.values[MICRO_BATCHES])
            out["training.global_batch"] = data["training"]["global_batch"]
        return out

    def visited(self, name: str) -> list[Any]:
        """The values control ``name`` has taken this session (the opening plan's and every
        move's), sorted: what the student has tried, and nothing more."""
        return sorted(self.tried.get(name, set()) | {self.values[name]})

    def plan(self):
        """The plan's validated Config, built and checked as the grader builds and checks a
        submission's (raises InputError naming the field when a combination is not allowed)."""
        from trainwall.challenges.submission import plan

        return plan(self.mission, self.chosen(), SOURCE)

    def metrics(self):
        from trainwall.optimizer.costmodel import evaluate

        return evaluate(self.plan())

    def lock(self, question: str, value: float) -> float:
        """Lock a prediction (once: a locked prediction stays); returns the answer it reveals."""
        if question not in {q.id for q in self.mission.lock}:
            raise KeyError(question)
        self.predictions.setdefault(question, float(value))
        return self.answer(question)

    def answer(self, question: str) -> float | None:
        """A Lock's answer, only once its prediction is locked."""
        from trainwall.challenges.mission import lock_answer

        if question not in self.predictions:
            return None
        return lock_answer(self.mission, next(q for q in self.mission.lock if q.id == question))

    def configuration_toml(self) -> str:
        """A sandbox's plan as the configuration file ``trainwall evaluate`` reads (its file's
        sections with the controls' choices written in)."""
        import tomli_w

        from trainwall.challenges import plans

        return tomli_w.dumps(plans.decided_data(self.mission, self.chosen()))

    def submission(self) -> str:
        """The ``submission.toml`` ``trainwall grade`` reads: whose it is (a handout's student),
        the plan, the locked predictions, the recorded moves (part 2) and the reflections."""
        import tomli_w

        def sections(dotted: dict[str, Any]) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {"training": {}, "data": {}}
            for name, value in dotted.items():
                section, _, key = name.partition(".")
                out[section][key] = list(value) if isinstance(value, tuple) else value
            return out

        data: dict[str, Any] = {"mission": self.mission.reference}
        if self.student:
            data["student"] = self.student
        data["configuration"] = sections(self.chosen())
        if self.predictions:
            data["predictions"] = dict(self.predictions)
        if self.mission.part == 2 and self.moves:
            data["moves"] = [sections(m.changes) for m in self.move_log()]
        answered = {k: v for k, v in self.reflections.items() if v.strip()}
        if answered:
            data["reflection"] = answered
        return tomli_w.dumps(data)
