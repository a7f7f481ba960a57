"""Time to train: the steps a workload needs to reach its goal at a global batch, and what
those steps cost in time and device-hours.

**The critical-batch law** (McCandlish, Kaplan, Amodei and the OpenAI Dota team 2018, "An
Empirical Model of Large-Batch Training", arXiv:1812.06162, section 2): to reach a given
loss with batch B takes

    S(B) = S_min (1 + B_noise / B) optimizer steps and E(B) = E_min (1 + B / B_noise) samples,

so (S / S_min - 1)(E / E_min - 1) = 1 and S(B) B = E(B). Below the noise scale B_noise a
larger batch saves steps almost one for one; above it, it buys little and costs samples.
Here B_noise is the workload's critical batch (``stability.critical_batch`` in
models/data/catalog.toml, the batch the published recipe used, the same number the stability
rules read, :meth:`trainwall.models.catalog.Workload.critical_batch_samples`), and E_min
comes from the workload's budget: the samples (or tokens) its published run trained on at
its published batch B_run, E(B_run) = E_min (1 + B_run / B_noise), so S_min = E_min /
B_noise. **Assumed:** that the published run reached the goal, so its budget is the goal's
E at its batch. A sequence model's budget and batches are counted in tokens, so the goal
does not change with the sequence length.

**Time to train** = S(B) x the step time, with S(B) the law's expected number of steps, not
rounded (a fraction of a step in a million is below the law's own precision, and a cost to
train stays convex in the micro-batch count, which the part-3 search relies on:
:mod:`trainwall.optimizer.scaling_wall`); device-hours = that time x the devices; idle
device-hours = S(B) x (bubble + exposed communication + data stall) x the devices: the
device time spent waiting, not computing (the Cloud Titan's "idle GPUs").

**Dollars** = device-hours x the price per device-hour (hardware/data/prices.toml's on-demand
price, or the configuration's ``system.price_per_device_hour``); the idle dollars per hour =
devices x price x the idle share: what each hour of the run pays for waiting devices.

**Energy** = the run's seconds x the system's power while it learns (devices x each one's
energy per step / step + hosts x the host's power: :mod:`trainwall.optimizer.costmodel.power`,
devices busy at their power limit and idle while they wait) x the data centre's PUE
(``system.pue``), and **CO2** = energy x the grid's intensity (``system.grid_kg_co2_per_kwh``).
The published reports count every device-hour at the power limit instead (Llama 2 and 3:
"peak power capacity per GPU device"; BLOOM's dynamic energy: GPU-hours x TDP), without
the hosts: ``energy_at_power_limit_kwh`` is that method, to compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600.0              # seconds
DAY = 86400.0              # seconds
JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Goal:
    """What a workload trains to, in units of samples or tokens (``unit``)."""

    budget: float          # E(B_run): the published run's samples (or tokens)
    run_batch: float       # B_run, the published run's batch, in the same unit
    noise_batch: float     # B_noise, in the same unit
    unit: str              # "samples" | "tokens"
    source: str

    @property
    def min_samples(self) -> float:
        """E_min = E(B_run) / (1 + B_run / B_noise): what an infinitesimally small batch would need."""
        return self.budget / (1.0 + self.run_batch / self.noise_batch)

    @property
    def min_steps(self) -> float:
        """S_min = E_min / B_noise: the steps an infinitely large batch would need."""
        return self.min_samples / self.noise_batch

    def steps(self, batch: float) -> float:
        """S(B) = S_min (1 + B_noise / B)."""
        return self.min_steps * (1.0 + self.noise_batch / batch)

    def samples(self, batch: float) -> float:
        """E(B) = E_min (1 + B / B_noise)."""
        return self.min_samples * (1.0 + batch / self.noise_batch)


@dataclass(frozen=True)
class RunRate:
    """A part-3 mode's run to the goal as a function of m, its micro-batches per step: the
    global batch is g m in the goal's unit (g = data_parallel x micro_batch x the goal's
    units per sample), the run takes S(g m) steps of step(m) seconds, each of its seconds
    costs ``dollars_per_second`` (devices x the price per device-hour / 3600; None without a
    price), and its energy is counted at the data centre's ``pue``. Every method takes a
    number or a numpy array of m."""

    goal: Goal
    per_micro_batch: float
    dollars_per_second: float | None
    pue: float = 1.0

    def steps(self, m):
        return self.goal.steps(self.per_micro_batch * m)

    def seconds(self, structure, m):
        """S(g m) x step(m): the wall-clock seconds to the goal (``structure``: the mode's StepStructure)."""
        return self.steps(m) * structure.step_s(m)

    def days(self, structure, m):
        return self.seconds(structure, m) / DAY

    def dollars(self, structure, m):
        return self.seconds(structure, m) * self.dollars_per_second

    def energy_kwh(self, structure, m):
        """S(g m) x the system's joules per step x PUE, in kWh (TimeToTrain.energy_kwh's sum)."""
        return self.steps(m) * structure.system_energy_j(m) * self.pue / JOULES_PER_KWH

    def objective(self, name: str, structure, m):
        """A cost objective's value: "dollars" or "energy_kwh"."""
        return self.dollars(structure, m) if name == "dollars" else self.energy_kwh(structure, m)


@dataclass(frozen=True)
class Costs:
    """What a device-hour costs: dollars (and where the price comes from), the board's power
    limit in watts (0: none sourced), the system's watts while it learns (devices and hosts;
    0: none sourced), the data centre's PUE and the grid's kg CO2 per kWh."""

    price: float | None = None
    price_source: str = ""
    power_w: float = 0.0
    system_power_w: float = 0.0
    pue: float = 1.0
    grid_kg_co2_per_kwh: float | None = None


@dataclass(frozen=True)
class TimeToTrain:
    """The run to the goal at one configuration."""

    steps: float               # S(B), the law's expected count
    samples: float             # steps x the global batch, in samples
    budget: float              # E(B) in the goal's unit (samples or tokens)
    unit: str
    noise_batch: float         # B_noise in the goal's unit
    seconds: float             # wall-clock
    idle_seconds: float        # of which the devices wait: bubble, exposed communication, data stall
    devices: int
    source: str
    costs: Costs = Costs()

    @property
    def device_hours(self) -> float:
        return self.seconds * self.devices / HOUR

    @property
    def idle_device_hours(self) -> float:
        return self.idle_seconds * self.devices / HOUR

    @property
    def price_per_device_hour(self) -> float | None:
        return self.costs.price

    @property
    def price_source(self) -> str:
        return self.costs.price_source

    @property
    def energy_kwh(self) -> float | None:
        """seconds x the system's power x PUE (None without a sourced power)."""
        if not self.costs.system_power_w:
            return None
        return self.seconds / HOUR * self.costs.system_power_w / 1000.0 * self.costs.pue

    @property
    def energy_at_power_limit_kwh(self) -> float | None:
        """device-hours x the board's power limit x PUE: the published reports' method (None
        without a sourced power)."""
        if not self.costs.power_w:
            return None
        return self.device_hours * self.costs.power_w / 1000.0 * self.costs.pue

    @property
    def co2_tonnes(self) -> float | None:
        """energy x the grid's carbon intensity (None without either)."""
        energy, grid = self.energy_kwh, self.costs.grid_kg_co2_per_kwh
        return None if energy is None or grid is None else energy * grid / 1000.0

    @property
    def dollars(self) -> float | None:
        """device-hours x the price per device-hour."""
        return None if self.price_per_device_hour is None else self.device_hours * self.price_per_device_hour

    @property
    def idle_dollars_per_hour(self) -> float | None:
        """Dollars each wall-clock hour of the run pays for devices that wait: the price of all
        devices x the idle share."""
        if self.price_per_device_hour is None:
            return None
        return self.devices * self.price_per_device_hour * self.idle_share

    @property
    def days(self) -> float:
        return self.seconds / DAY

    @property
    def idle_share(self) -> float:
        """The share of device time spent waiting."""
        return self.idle_seconds / self.seconds if self.seconds else 0.0


def time_to_train(goal: Goal, batch: float, samples_per_step: int, step_s: float, idle_s: float,
                  devices: int, costs: Costs = Costs()) -> TimeToTrain:
    """The run to ``goal`` with ``batch`` per step in the goal's unit (``samples_per_step``
    samples), each step taking ``step_s`` seconds of which ``idle_s`` wait, on ``devices``
    whose device-hours cost ``costs``."""
    steps = goal.steps(batch)
    return TimeToTrain(steps, steps * samples_per_step, goal.samples(batch), goal.unit, goal.noise_batch,
                       steps * step_s, steps * idle_s, devices, goal.source, costs)
