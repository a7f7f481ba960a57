"""Bounded caches, registered so they can be listed and emptied at once.

Every cache in trainwall is bounded: a long-running process (the web workbench, a
class being graded) evaluates an open-ended stream of configurations, and a cache
without a bound grows with it until the process runs out of memory. This module
gives the two shapes of cache the tree uses, both registered by name:

* :func:`bounded` - a decorator, :func:`functools.lru_cache` with a required bound,
  or, with ``key``, an LRU memo over a key derived from the arguments (to keep a large
  or short-lived argument, such as a layer object, out of the cache's keys);
* :class:`BoundedDict` - a least-recently-used mapping for caches kept as a dict.

:func:`clear_all` empties every registered cache (tests, a server dropping its
working set); :func:`info` lists each one's name, size and bound.

Use both at module level: the registry keeps one entry per name, so it grows with
the code, not with the work. This module is the bottom layer's bottom: it imports
nothing from trainwall.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class CacheInfo:
    """One registered cache: its name, how many entries it holds, at most how many."""

    name: str
    size: int
    maxsize: int


@dataclass(frozen=True)
class _Entry:
    maxsize: int
    size: Callable[[], int]
    clear: Callable[[], None]


#: What :meth:`BoundedDict.get` finds where there is no entry (None may be a cached value).
_ABSENT = object()

#: Every registered cache by name (module-qualified; registering a name again replaces it).
_REGISTRY: dict[str, _Entry] = {}


def _check_bound(maxsize: object) -> int:
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
        raise ValueError(f"a cache needs a bound: maxsize must be an integer >= 1, not {maxsize!r}")
    return maxsize


def register(name: str, maxsize: int, size: Callable[[], int], clear: Callable[[], None]) -> None:
    """Register a cache kept some other way: how to measure it and how to empty it."""
    _REGISTRY[name] = _Entry(_check_bound(maxsize), size, clear)


class BoundedDict(Generic[K, V]):
    """A mapping of at most ``maxsize`` entries that evicts the least recently used.

    Reading an entry (``d[k]``, :meth:`get`) marks it used; ``k in d`` does not.
    Safe to share between threads. Registered under ``name`` when created.
    """

    def __init__(self, maxsize: int, name: str) -> None:
        self.maxsize = _check_bound(maxsize)
        self.name = name
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        register(name, maxsize, self.__len__, self.clear)

    def __getitem__(self, key: K) -> V:
        with self._lock:
            value = self._data[key]
            self._data.move_to_end(key)
            return value

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value at ``key`` (marked used), or ``default``."""
        with self._lock:
            value = self._data.get(key, _ABSENT)
            if value is _ABSENT:
                return default
            self._data.move_to_end(key)
            return value

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._data.clear()

    def __repr__(self) -> str:
        return f"BoundedDict({self.name!r}, {len(self)}/{self.maxsize})"


def bounded(maxsize: int, *, key: Callable[..., Hashable] | None = None) -> Callable[[F], F]:
    """Cache a function's results, at most ``maxsize`` of them, least recently used evicted.

    Without ``key`` this is ``functools.lru_cache(maxsize=maxsize)`` (arguments must be
    hashable; ``cache_info`` and ``cache_clear`` as usual). With ``key``, results are
    stored under ``key(*args, **kwargs)`` instead of the arguments themselves, in a
    :class:`BoundedDict`, so the cache does not keep the arguments alive. Either way
    the cache is registered as ``module.qualname``. An unbounded ``maxsize`` (None) is
    refused.
    """
    _check_bound(maxsize)

    def decorate(fn: F) -> F:
        name = f"{fn.__module__}.{fn.__qualname__}"
        if key is None:
            cached = functools.lru_cache(maxsize=maxsize)(fn)
            register(name, maxsize, lambda: cached.cache_info().currsize, cached.cache_clear)
            return cast(F, cached)
        store: BoundedDict[Hashable, object] = BoundedDict(maxsize, name)

        @functools.wraps(fn)
        def memo(*args: object, **kwargs: object) -> object:
            k = key(*args, **kwargs)
            found = store.get(k, _ABSENT)
            if found is _ABSENT:
                found = store[k] = fn(*args, **kwargs)
            return found

        memo.cache_clear = store.clear  # type: ignore[attr-defined]  # as lru_cache offers
        return cast(F, memo)

    return decorate


def clear_all() -> None:
    """Empty every registered cache."""
    for entry in list(_REGISTRY.values()):
        entry.clear()


def info() -> list[CacheInfo]:
    """Every registered cache, by name: its current size and its bound."""
    return [CacheInfo(name, entry.size(), entry.maxsize) for name, entry in sorted(_REGISTRY.items())]
