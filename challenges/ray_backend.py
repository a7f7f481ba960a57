"""``--backend ray``: `generate` and `grade` on a Ray cluster (the optional extra ``trainwall[ray]``).

A course that outgrows one machine runs the same work on Ray's actors instead of this
machine's process pool. :class:`RayPool` starts one actor per CPU the cluster offers (or
``--jobs``), each an instance of the worker class the caller names - a variant family's
solver (:class:`~trainwall.challenges.variants.DrawSolver`) or a class's grader
(:class:`~trainwall.challenges.classroom.ChunkGrader`) - built once with the family's or the
class's state (the margin; the missions, their optima and the answer keys), so each stays
warm across its tasks: its cost model's caches and its missions' optima are computed once
per actor, not once per task. Tasks carry file contents, not paths (a remote node has no
access to the instructor's disk), go to the actors in turn, at most :data:`WINDOW` per actor
in flight, and come back in the order they were given: the caller writes exactly what the
local backend writes, byte for byte.

Where: ``--ray-address`` or ``RAY_ADDRESS`` (Ray's own variable) names a running cluster,
whose nodes have this trainwall installed; without either, a local Ray instance is started
for the run and stopped after it. Ray is imported here only, and only when asked.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator

from trainwall.core.errors import InputError

#: Tasks in flight per actor: enough to keep each busy while results are collected in order.
WINDOW = 4


def _ray():
    """The ray module, or a clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise InputError("--backend", "ray", "needs Ray, which this installation lacks: "
                                             "pip install 'trainwall[ray]'") from None
    return ray


#: Seconds to wait for a named cluster's head to answer before saying it does not (Ray itself
#: retries an unreachable head for minutes).
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """An address of the form ``host:port`` or ``ray://host:port`` must answer a TCP connection
    within :data:`CONNECT_TIMEOUT_S` (``auto`` and other forms are left to Ray)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InputError("--ray-address", address, f"a Ray cluster's head that answers (here: {exc.strerror or exc}); "
                                                   "start one with 'ray start --head', or leave --ray-address and "
                                                   "RAY_ADDRESS out for a local instance") from None


class RayPool:
    """Actors of one worker class on a Ray cluster, each built with the same ``args``."""

    def __init__(self, worker: type, args: tuple, address: str | None = None, jobs: int = 0):
        import logging

        ray = self._ray = _ray()
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            _check_reachable(address)
        try:
            if address is None:
                ray.init(num_cpus=jobs or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR)
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the user gets one line
            if address is None:
                raise InputError("--backend", "ray", f"a local Ray instance that starts here (it did not: "
                                                     f"{type(exc).__name__}: {exc})") from None
            raise InputError("--ray-address", address, f"a Ray cluster to connect to ({type(exc).__name__}: "
                                                       f"{exc})") from None
        count = jobs or max(1, int(ray.available_resources().get("CPU", 1)))
        shared = ray.put(args)            # shipped once, resolved in each actor's constructor
        remote = ray.remote(num_cpus=1)(worker)
        self.actors = [remote.remote(shared) for _ in range(count)]

    def map(self, method: str, items: Iterable) -> Iterator:
        """``method`` of the actors on each item, in turn; the results in the items' order."""
        ray, pending = self._ray, deque()
        for n, item in enumerate(items):
            pending.append(getattr(self.actors[n % len(self.actors)], method).remote(item))
            if len(pending) >= WINDOW * len(self.actors):
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())

    def close(self) -> None:
        """Let the actors go and leave the cluster (a local instance started here stops)."""
        self._ray.shutdown()

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
