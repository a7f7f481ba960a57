"""Power: what a device draws in each state of a step, and the budget a duty-cycled device
must learn within.

**The power model** (the figures and their sources: ``hardware/data/devices.toml`` and
``hosts.toml``). A device is in one of four states, each drawing a constant power:

    computing               P_busy   the board's power limit (a GPU's TDP: training runs at its
                                     power cap), or a microcontroller's run current x supply
    waiting                 P_idle   pipeline bubble, exposed communication, data stall: on, not computing
    + its radio             P_radio  added while it communicates over a wireless link (its own radio;
                                     a data-centre NIC is part of the host's power)
    sleeping                P_sleep  between learning bursts (a duty-cycled device)

and each node's host (CPUs, NICs, in-node switches, fans) draws P_host for the whole step.
The energy of one device's step is then (step = compute + exposed + bubble + stall)

    E(m) = P_busy compute(m) + P_idle (step(m) - compute(m)) + P_radio exposed(m),

linear in m wherever the step is (:class:`~trainwall.optimizer.costmodel.structure.StepStructure`).

**The duty cycle** (a device that learns from a stream rather than a dataset): where the
group must learn from R fresh samples an hour (``data.samples_per_hour``), each trained
``echo`` times, and one step learns from B / echo of them (B the global batch), the
devices learn a share f = R echo step / (3600 B) of the time and sleep the rest, so each
device's average power is

    P_avg = P_sleep + f (E / step - P_sleep) = P_sleep + R echo (E - P_sleep step) / (3600 B);

without R a device learns all the time: f = 1 and P_avg = E / step. The **power wall**
(``system.power_budget_w``) holds when P_avg <= the budget and f <= 1 (a plan that cannot
keep up with the stream even learning all the time breaks it too).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PowerDraw:
    """Watts per device in each state, and per host; the budget and the stream, where given."""

    busy_w: float = 0.0
    idle_w: float = 0.0
    sleep_w: float = 0.0
    radio_w: float = 0.0
    host_w: float = 0.0               # per node (host)
    budget_w: float | None = None     # system.power_budget_w: each device's average-power budget
    samples_per_hour: float | None = None   # data.samples_per_hour: the stream the group learns from

    @property
    def known(self) -> bool:
        """Is there a sourced figure for the device's power (0: none, no energy reported)?"""
        return self.busy_w > 0.0


def resolve_power(device, host_w: float, wireless: bool, budget_w: float | None,
                  samples_per_hour: float | None) -> PowerDraw:
    """The device's catalog figures, its radio only on a wireless link. A device without a
    sourced idle figure is counted at its power limit while it waits too (the published
    reports' method), and sleeps as it idles where no sleep figure is sourced."""
    idle = float(device.idle_power_w or device.power_w)
    return PowerDraw(float(device.power_w), idle, float(device.sleep_power_w or idle),
                     float(device.radio_power_w) if wireless else 0.0, float(host_w), budget_w, samples_per_hour)
