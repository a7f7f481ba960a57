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
    Wall("starvation", "samples/s", True, "samples/s the loading stages (storage, CPU workers, host link) "
         "deliver per host against what its accelerators ask", "the accelerators' demand dropped",
         (("data.workers", "more data-loader workers"), ("data.echo", "data echoing"),
          ("data.augmentation", "lighter augmentation"),
          ("data.augmentation_on", "augmentation on the accelerator"))),
    Wall("mfu_target", "fraction", True, "model FLOPs utilisation against the target the plan promised",
         "the target dropped",
         (("training.micro_batches", "more micro-batches per step"),
          ("training.pipeline_parallel", "another parallel layout"), ("training.recompute", "less recompute"))),
)}

#: The walls the cost model judges on every configuration (the others need a mission's demand or target).
INTRINSIC = ("memory", "flash", "network", "stability")


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
                         mcu: bool) -> tuple[Violation, ...]:
    """The cost model's verdicts: memory, flash (microcontrollers), network and each broken stability rule."""
    checks = [judge("memory", memory.total, memory.capacity,
                    f"needs {memory.total:.4g} B per device, has {memory.capacity:.4g} B")]
    if mcu:
        checks.append(judge("flash", memory.flash, memory.flash_capacity,
                            f"frozen weights need {memory.flash:.4g} B of flash, the part has "
                            f"{memory.flash_capacity:.4g} B"))
    checks.append(judge("network", network_utilization, 1.0,
                        f"traffic plus the {background:.0%} background load needs {network_utilization:.0%} of "
                        f"the busiest link"))
    found = [Violation(c.wall, c.value, c.limit, c.message) for c in checks if not c.satisfied]
    return tuple(found) + tuple(Violation("stability", 1.0, 0.0, reason) for reason in stability.reasons)


def starvation(flow) -> WallCheck:
    """What the loading stages deliver per host against what the accelerators ask (the max-flow's
    own rate is capped at the demand, so the supply is the least loading capacity)."""
    demand = flow.capacities["compute"]
    supply = min(c for stage, c in flow.capacities.items() if stage != "compute")
    return judge("starvation", supply, demand,
                 f"the input pipeline delivers {min(supply, demand):.4g} samples/s per host, the accelerators "
                 f"ask for {demand:.4g}: {flow.bottleneck} is the longest pole")


def check(wall: str, metrics, target: float | None = None) -> WallCheck | None:
    """One wall for an evaluated configuration (None where it does not apply: flash off a
    microcontroller). The intrinsic walls repeat the cost model's own verdicts and messages."""
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
        return starvation(metrics.pipeline)
    if wall == "mfu_target":
        return judge(wall, metrics.mfu, target, f"MFU {metrics.mfu:.1%} is below the {target:.0%} target")
    raise KeyError(f"unknown wall {wall!r}; known: {', '.join(WALLS)}")
