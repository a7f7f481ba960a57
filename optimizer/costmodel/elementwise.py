"""A number or a numpy array of them: the two things a step-structure method takes.

:class:`~trainwall.optimizer.costmodel.structure.StepStructure` answers for one m (an
evaluation) or for every m at once (the exhaustive certifier). For a number these
helpers use plain float arithmetic, so an evaluation never imports numpy; for an array
they use numpy's elementwise functions. Both give numpy's answers: the same IEEE
operations, and NaN propagating as ``np.maximum`` / ``np.max`` propagate it.
"""

from __future__ import annotations


def _is_number(x) -> bool:
    return isinstance(x, (int, float))


def minimum(a, b):
    """min(a, b) elementwise."""
    if _is_number(a) and _is_number(b):
        return b if b < a or b != b else a
    import numpy as np

    return np.minimum(a, b)


def positive_part(x):
    """max(0, x) elementwise."""
    if _is_number(x):
        return x if x > 0.0 or x != x else 0.0
    import numpy as np

    return np.maximum(0.0, x)


def max_over_rows(rows: list):
    """The largest of ``rows`` (numbers, or arrays of one length: their elementwise maximum)."""
    if all(_is_number(r) for r in rows):
        return max(rows, key=lambda r: (r != r, r))
    import numpy as np

    return np.max(np.array(rows), axis=0)
