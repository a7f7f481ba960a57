"""The walls: one definition of each, read by the cost model, the missions, the search,
the certifiers, the grader's feedback and the figures.

A wall is a value that must stay at or under a limit (memory, flash, network, the
stability rules) or reach it (starvation: what the input pipeline delivers against
what the accelerators ask; the MFU target). Whether a wall is *broken* has one test,
:meth:`Wall.holds`, with one tolerance, :data:`TOLERANCE`, relative to the limit:

    at most:   value <= limit + TOLERANCE |limit|
    at least:  value >= limit - TOLERANCE |limit|

The tolerance absorbs the rounding between algebraically equal sums computed in another
order (the MILP's scaled rows, numpy's vectorised sums, the cost model's per-stage
sums), and equals the feasibility tolerance of every reference solve
(:data:`trainwall.optimizer.highs.TOLERANCES`), so the MILP, the certifiers and the
grader draw the same line. It is never a physical margin: 1e-9 of an H100's 80 GiB is
86 bytes.

Each wall also says how the search lifts it to ask whether it *binds* (``relaxation``)
and which decisions move a plan away from it (``levers``, for feedback).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A wall's tolerance, relative to its limit (see the module docstring).
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Wall:
    name: str
    unit: str                           # of the value and the limit: bytes, fraction, samples/s, broken rules
    at_least: bool                      # the value must reach the limit (else stay at or under it)
    meaning: str
    relaxation: str                     # how the search lifts the wall to ask whether it binds
    levers: tuple[tuple[str, str], ...]  # (the decision that opens it, what to do), for feedback

    def holds(self, value, limit):
        """The one test: does ``value`` respect ``limit``? Works on numbers and numpy arrays alike."""
        if self.at_least:
            return value >= limit - TOLERANCE * abs(limit)
        return value <= limit + TOLERANCE * abs(limit)

    def slack(self, value: float, limit: float) -> float:
        """How far the value is from the limit, positive on the allowed side."""
        return value - limit if self.at_least else limit - value


WALLS: dict[str, Wall] = {wall.name: wall for wall in (
    Wall("memory", "bytes", False, "bytes per device (the most loaded stage) against the device's capacity",
         "the capacity raised above what any plan needs",
         (("training.micro_batch", "a smaller micro-batch"), ("training.recompute", "more recompute"),
          ("training.zero_stage", "a higher ZeRO stage"), ("training.optimizer", "an optimizer with less state"),
          ("training.optimizer_state", "a smaller optimizer-state format"), ("training.precision", "a narrower precision"),
          ("training.tensor_parallel", "more tensor parallelism"),
          ("training.pipeline_parallel", "more pipeline stages"), ("select_layers", "fewer trained layers"))),
    Wall("flash", "bytes", False, "frozen weights kept in a microcontroller's flash against its size",
         "the flash raised above the weights of every layer",
         (("select_layers", "training more layers (a trained layer's weights leave flash)"),)),
    Wall("network", "fraction", False, "the busiest link's load, the background included, against its capacity",
         "the link's capacity raised above any plan's traffic",
         (("training.tensor_parallel", "keeping tensor parallelism inside a node"),
          ("training.micro_batches", "more micro-batches per step"),
          ("training.local_steps", "more local steps between averages"))),
    Wall("stability", "broken rules", False, "the stability rules a plan breaks (number formats, the critical "
         "batch, local-SGD staleness)", "every stability rule lifted",
         (("training.precision", "a number format with more range"),
          ("training.loss_scaling", "loss scaling"), ("training.gradient_clipping", "gradient clipping"),
          ("training.micro_batches", "a smaller global batch"), ("training.local_steps", "fewer local steps"))),
    Wall("starvation", "seconds", False, "seconds of loading a step needs per host against the seconds the step "
         "can hide them in: its compute when loading overlaps it, the mission's allowed wait when it cannot",
         "loading made free",
         (("data.workers", "more data-loader workers"), ("data.echo", "data echoing"),
          ("data.augmentation", "lighter augmentation"),
          ("data.augmentation_on", "augmentation on the accelerator"))),
    Wall("power", "W", False, "each device's average power over its duty cycle against its budget (and the "
         "duty cycle against 1: a stream it cannot keep up with breaks it too)",
         "the budget raised above any plan's draw",
         (("training.data_parallel", "more devices sharing the stream"),
          ("training.local_steps", "more local steps between averages (fewer radio rounds)"),
          ("training.micro_batches", "more samples per averaging round"),
          ("training.recompute", "less recompute"))),
    Wall("deadline", "days", False, "the days the run takes to the workload's goal against the deadline",
         "the deadline dropped",
         (("training.data_parallel", "more data-parallel devices"),
          ("training.micro_batches", "another global batch (more steps, or slower ones)"),
          ("training.pipeline_parallel", "another parallel layout"), ("training.recompute", "less recompute"))),
    Wall("mfu_target", "fraction", True, "model FLOPs utilisation against the target the plan promised",
         "the target dropped",
         (("training.micro_batches", "more micro-batches per step"),
          ("training.pipeline_parallel", "another parallel layout"), ("training.recompute", "less recompute"))),
)}

@dataclass(frozen=True)
class Violation:
    """A wall a configuration breaks, as the cost model reports it."""

    constraint: str
    value: float
    limit: float
    message: str


@dataclass(frozen=True)
class WallCheck:
    """One wall for one configuration: value, limit and the verdict of :meth:`Wall.holds`."""

    wall: str
    value: float
    limit: float
    unit: str
    satisfied: bool
    message: str          # why it is broken ("" when satisfied)

    @property
    def at_least(self) -> bool:
        return WALLS[self.wall].at_least

    @property
    def slack(self) -> float:
        """How far the value is from the limit, positive on the allowed side."""
        return WALLS[self.wall].slack(self.value, self.limit)


def judge(wall: str, value: float, limit: float, message: str) -> WallCheck:
    """The verdict on one wall; ``message`` says why it is broken and is kept only when it is."""
    satisfied = bool(WALLS[wall].holds(value, limit))
    return WallCheck(wall, float(value), float(limit), WALLS[wall].unit, satisfied, "" if satisfied else message)


def intrinsic_violations(memory, network_utilization: float, background: float, stability,
                         mcu: bool, power=None) -> tuple[Violation, ...]:
    """The cost model's verdicts: memory, flash (microcontrollers), network, power (where the
    configuration sets a budget) and each broken stability rule."""
    checks = [judge("memory", memory.total, memory.capacity,
                    f"needs {memory.total:.4g} B per device, has {memory.capacity:.4g} B")]
    if mcu:
        checks.append(judge("flash", memory.flash, memory.flash_capacity,
                            f"frozen weights need {memory.flash:.4g} B of flash, the part has "
                            f"{memory.flash_capacity:.4g} B"))
    checks.append(judge("network", network_utilization, 1.0,
                        f"traffic plus the {background:.0%} background load needs {network_utilization:.0%} of "
                        f"the busiest link"))
    if power is not None and power.budget_w is not None:
        checks.append(power_check(power))
    found = [Violation(c.wall, c.value, c.limit, c.message) for c in checks if not c.satisfied]
    return tuple(found) + tuple(Violation("stability", 1.0, 0.0, reason) for reason in stability.reasons)


def keeps_up(duty_cycle):
    """The power wall's second rule: a duty cycle of at most 1 (the devices keep up with their
    stream), with the walls' tolerance. Works on numbers and numpy arrays alike."""
    return duty_cycle <= 1.0 + TOLERANCE


def power_check(power) -> WallCheck:
    """Each device's average power over its duty cycle within the budget, and a duty cycle of
    at most 1 (:mod:`trainwall.optimizer.costmodel.power`)."""
    value, budget = power.average_w, power.budget_w
    if not keeps_up(power.duty_cycle):
        return WallCheck("power", value, budget, "W", False,
                         f"learning from {power.samples_per_hour:g} samples an hour needs "
                         f"{power.duty_cycle:.0%} of the time: it cannot keep up")
    from trainwall.core.units import watts

    return judge("power", value, budget,
                 f"each device averages {watts(value)} (learning {power.duty_cycle:.1%} of the time at "
                 f"{watts(power.learning_w)}), over its {watts(budget)} budget")


def starvation(metrics, max_wait: float = 0.0) -> WallCheck:
    """The accelerators wait for data no longer than allowed, by the step time's own overlap rule.

    Loading that overlaps compute (data-loader workers on other cores) must hide behind the
    busy part of the step, ``loading_s <= busy_s``: in the max-flow view, the slowest
    loading stage delivers what the accelerators ask. Loading that cannot overlap compute
    (``workers = 0``; a microcontroller, whose one core records, extracts features and
    trains in turn) is all wait: the step is ``busy_s + loading_s``, and a mission may allow
    a share w of it (``max_data_wait``): ``loading_s <= w (busy_s + loading_s)``, judged as
    ``loading_s (1 - w) <= w busy_s``; with w = 0 any loading breaks the wall.
    """
    t, flow = metrics.time, metrics.pipeline
    busy = t.step_s - t.data_stall_s
    loaders = {s: c for s, c in flow.capacities.items() if s != "compute"}
    pole = min(loaders, key=loaders.get)
    need, room = starvation_terms(metrics.loading_overlaps, max_wait)
    if metrics.loading_overlaps:
        message = f"loading takes {t.loading_s:.4g} s per step and host, compute hides {busy:.4g} s"
    else:
        share = t.loading_s / t.step_s if t.step_s else 0.0
        message = (f"loading cannot overlap compute here and takes {share:.0%} of each step, more than the "
                   f"{max_wait:.0%} allowed")
    return judge("starvation", need * t.loading_s, room * busy, f"{message}: {pole} is the longest pole")


def starvation_terms(loading_overlaps: bool, max_wait: float) -> tuple[float, float]:
    """The starvation wall's one rule as multipliers (need, room): ``need x loading_s <= room x
    busy_s``. (1, 1) when loading overlaps compute; (1 - w, w) when it cannot. Every reader of
    the wall (the check, the part-2 rate, the part-3 rows, the certifier) takes them from here."""
    return (1.0, 1.0) if loading_overlaps else (1.0 - max_wait, max_wait)


def demand_factor(loading_overlaps: bool, max_wait: float) -> float | None:
    """The starvation wall as a rate: the loading stages must deliver need / room times what
    the accelerators consume while busy (:func:`starvation_terms`): 1 when loading overlaps
    compute, (1 - w) / w when it cannot; None when the room is 0: no rate suffices, any
    loading is a wait."""
    need, room = starvation_terms(loading_overlaps, max_wait)
    return need / room if room > 0.0 else None


def check(wall: str, metrics, target: float | None = None, max_wait: float = 0.0,
          deadline_days: float | None = None) -> WallCheck | None:
    """One wall for an evaluated configuration (None where it does not apply: flash off a
    microcontroller). The intrinsic walls repeat the cost model's own verdicts and messages;
    ``target`` is the MFU target, ``max_wait`` the share of a step serial loading may take,
    ``deadline_days`` the days the run to the workload's goal may take."""
    mem = metrics.memory
    broken = [v.message for v in metrics.violations if v.constraint == wall]
    if wall == "memory":
        return WallCheck(wall, mem.total, mem.capacity, "bytes", not broken, "; ".join(broken))
    if wall == "flash":
        return (WallCheck(wall, mem.flash, mem.flash_capacity, "bytes", not broken, "; ".join(broken))
                if mem.flash_capacity else None)
    if wall == "network":
        return WallCheck(wall, metrics.network_utilization, 1.0, "fraction", not broken, "; ".join(broken))
    if wall == "stability":
        return WallCheck(wall, float(len(broken)), 0.0, "broken rules", not broken, "; ".join(broken))
    if wall == "starvation":
        return starvation(metrics, max_wait)
    if wall == "power":
        return (WallCheck(wall, metrics.power.average_w, metrics.power.budget_w, "W", not broken, "; ".join(broken))
                if metrics.power is not None and metrics.power.budget_w is not None else None)
    if wall == "deadline":
        days = metrics.training.days
        return judge(wall, days, deadline_days, f"the run to the goal takes {days:,.1f} days, past the "
                                                f"{deadline_days:,.4g}-day deadline")
    if wall == "mfu_target":
        return judge(wall, metrics.mfu, target, f"MFU {metrics.mfu:.1%} is below the {target:.0%} target")
    raise KeyError(f"unknown wall {wall!r}; known: {', '.join(WALLS)}")
