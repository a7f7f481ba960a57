"""Named quantities of an evaluated configuration: what Lock questions ask and
objectives measure. Each is read off the one cost model's :class:`Metrics`.
"""

from __future__ import annotations

from typing import Callable


def _states(m) -> float:
    return m.memory.weights + m.memory.gradients + m.memory.optimizer_state


def _bubble_fraction(m) -> float:
    """bubble / (bubble + m t_stage): the 1F1B schedule's (p - 1) / (m + p - 1), the share of
    the pipeline's own time (Narayanan et al. 2021, section 2.2.1), not of the whole step."""
    pipeline_s = m.time.bubble_s + m.time.compute_s - m.time.optimizer_s
    return m.time.bubble_s / pipeline_s if pipeline_s else 0.0


def _headroom_used(m) -> float:
    """(utilisation - background) / (1 - background)."""
    return (m.network_utilization - m.background_network_load) / (1.0 - m.background_network_load)


def _trained(m):
    """The run to the workload's goal; ArithmeticError (undefined) for a workload without a budget."""
    if m.training is None:
        raise ArithmeticError("the workload has no training budget: no time to train")
    return m.training


def _priced(m):
    """The run, which must have a price per device-hour."""
    run = _trained(m)
    if run.dollars is None:
        raise ArithmeticError("no price per device-hour: set system.price_per_device_hour")
    return run


def _powered(m):
    """The run, which must have a sourced power."""
    run = _trained(m)
    if run.energy_kwh is None:
        raise ArithmeticError("no sourced power for this device: no energy to train")
    return run


QUANTITIES: dict[str, tuple[str, Callable]] = {
    "trainable_params": ("parameters that train, per device", lambda m: m.memory.trainable_params),
    "model_state_bytes": ("bytes of weights + gradients + optimizer state per device", _states),
    "state_bytes_per_param": ("bytes of weights + gradients + optimizer state per trained parameter",
                              lambda m: _states(m) / m.memory.trainable_params),
    "hidden_state_over_weights": ("(gradients + optimizer state) / weights",
                                  lambda m: (m.memory.gradients + m.memory.optimizer_state) / m.memory.weights),
    "weight_fraction": ("weights alone / device memory capacity", lambda m: m.memory.weights / m.memory.capacity),
    "saved_activation_fraction": (("activations saved for the backward pass (without the widest kernel's "
                                  "transient working set) / device memory capacity"),
                                  lambda m: m.memory.saved_activations / m.memory.capacity),
    "activation_fraction": (("activation memory (saved, plus the widest kernel's transient working set) / "
                            "device memory capacity"),
                            lambda m: m.memory.activations / m.memory.capacity),
    "memory_fraction": ("memory used / capacity", lambda m: m.memory.total / m.memory.capacity),
    "memory_total": ("bytes per device", lambda m: m.memory.total),
    "mfu": ("model FLOPs utilisation", lambda m: m.mfu),
    "step_s": ("seconds per optimizer step", lambda m: m.time.step_s),
    "samples_per_s": ("training samples per second, all devices", lambda m: m.samples_per_s),
    "data_stall_fraction": ("share of the step spent waiting for data", lambda m: m.time.data_stall_s / m.time.step_s),
    "cpu_utilization": ("busy share of the data-loading CPU stage", lambda m: m.pipeline_utilization["cpu"]),
    "cpu_capacity": ("samples/s the data-loading CPUs of one host can prepare", lambda m: m.pipeline.capacities["cpu"]),
    "storage_capacity": ("samples/s one host's storage (or sensor) delivers",
                         lambda m: m.pipeline.capacities["storage"]),
    "compute_demand": ("samples/s one host's accelerators ask the input pipeline for",
                       lambda m: m.pipeline.capacities["compute"]),
    "bubble_fraction": (("pipeline bubble / pipeline time (fill, drain and the m micro-batches' compute): "
                        "(p - 1) / (m + p - 1) for 1F1B"), _bubble_fraction),
    "comm_to_compute": ("communication / compute time per step", lambda m: m.comm_to_compute),
    "network_utilization": ("busiest link's load, background included", lambda m: m.network_utilization),
    "learning_power_w": ("watts one device draws while it learns: its joules per step / the step",
                         lambda m: m.power.learning_w),
    "duty_cycle": ("share of the time the devices learn to keep up with their stream", lambda m: m.power.duty_cycle),
    "average_power_w": ("one device's average watts over its duty cycle", lambda m: m.power.average_w),
    "dollars": ("dollars to train to the workload's goal", lambda m: _priced(m).dollars),
    "days": ("days to train to the workload's goal", lambda m: _trained(m).days),
    "energy_kwh": ("kWh to train to the workload's goal, PUE included", lambda m: _powered(m).energy_kwh),
    "network_headroom_used": (("share of the busiest link's headroom (what the background load leaves) "
                              "this run's traffic takes"), _headroom_used),
}


def quantity(name: str, metrics) -> float:
    """The value of ``name`` for ``metrics``; KeyError names what exists."""
    try:
        return float(QUANTITIES[name][1](metrics))
    except KeyError:
        raise KeyError(f"unknown quantity {name!r}; known: {', '.join(QUANTITIES)}") from None


#: Objectives that are a decision's own value rather than a measured quantity.
DECISION_OBJECTIVES = {"micro_batch": ("training", "micro_batch"), "workers": ("data", "workers"),
                       "echo": ("data", "echo")}


def objective_value(name: str, config, metrics) -> float:
    """A mission objective for an evaluated configuration: a quantity, or the decision's value."""
    if name in DECISION_OBJECTIVES:
        section, field = DECISION_OBJECTIVES[name]
        return float(getattr(getattr(config, section), field))
    return quantity(name, metrics)
