"""trainwall: the Model Training lab of mlsysbook.ai as missions a solver can answer.

The public API is re-exported lazily so that ``import trainwall`` (and the CLI's
start-up) stays cheap: Pyomo, matplotlib and the model builders load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainwall.core import VERSION as __version__

_LAZY = {
    "evaluate": "trainwall.api",
    "evaluate_file": "trainwall.api",
    "grade": "trainwall.api",
    "load_config": "trainwall.core.config",
    "Config": "trainwall.core.config",
    "Metrics": "trainwall.optimizer.costmodel",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from trainwall.api import evaluate, evaluate_file, grade
    from trainwall.core.config import Config, load_config
    from trainwall.optimizer.costmodel import Metrics


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainwall' has no attribute {name!r}")
