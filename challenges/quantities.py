"""Named quantities of an evaluated configuration: what Lock questions ask and
objectives measure. Each is read off the one cost model's :class:`Metrics`.
"""

from __future__ import annotations

from typing import Callable


def _states(m) -> float:
    return m.memory.weights + m.memory.gradients + m.memory.optimizer_state


QUANTITIES: dict[str, tuple[str, Callable]] = {
    "trainable_params": ("parameters that train, per device", lambda m: m.memory.trainable_params),
    "state_bytes_per_param": ("bytes of weights + gradients + optimizer state per trained parameter",
                              lambda m: _states(m) / m.memory.trainable_params),
    "hidden_state_over_weights": ("(gradients + optimizer state) / weights",
                                  lambda m: (m.memory.gradients + m.memory.optimizer_state) / m.memory.weights),
    "activation_fraction": ("saved activations / device memory capacity",
                            lambda m: m.memory.activations / m.memory.capacity),
    "memory_fraction": ("memory used / capacity", lambda m: m.memory.total / m.memory.capacity),
    "memory_total": ("bytes per device", lambda m: m.memory.total),
    "mfu": ("model FLOPs utilisation", lambda m: m.mfu),
    "step_s": ("seconds per optimizer step", lambda m: m.time.step_s),
}


def quantity(name: str, metrics) -> float:
    """The value of ``name`` for ``metrics``; KeyError names what exists."""
    try:
        return float(QUANTITIES[name][1](metrics))
    except KeyError:
        raise KeyError(f"unknown quantity {name!r}; known: {', '.join(QUANTITIES)}") from None
