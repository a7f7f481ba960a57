"""Every cache is bounded and registered: a long-running process (the web workbench, a
class being graded) must not grow with the stream of configurations it evaluates, and
:func:`trainwall.core.caches.clear_all` must be able to empty every cache at once.

* A scan of the source (AST, no imports) refuses unbounded and unregistered caches.
* :func:`clear_all` empties what is registered; evaluating at many device counts keeps
  every registered cache within its bound.
* :mod:`trainwall.core.caches` itself: LRU order, refused bounds, keyed memos.
"""

from __future__ import annotations

import ast
import gc
import re
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from trainwall.core import caches
from trainwall.core.caches import BoundedDict, bounded, clear_all, info
from trainwall.core.config import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("core", "hardware", "models", "optimizer", "challenges", "trainwall")
EXAMPLES = ROOT / "examples"

#: Upper-case module-level names (``_CACHE``, ``OPTIMA``; leading underscores allowed).
UPPER_CASE = re.compile(r"^_*[A-Z][A-Z0-9_]*$")
#: Words that make an upper-case module-level container a cache whether or not it is
#: seen mutated (``_CACHE``, ``_OPTIMA``, ``_STRUCTURES``, ``_ROUTES`` ...).
CACHE_WORDS = re.compile(r"CACHE|MEMO|OPTIMA|STRUCTURES|ROUTES|PLANS|TREES|SEEN|KNOWN")
#: Calls that make an empty mutable container (dict, list, set and collections' kin).
CONTAINERS = {"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque"}
#: Methods that add to a container.
GROWERS = {"setdefault", "update", "append", "extend", "insert", "add", "appendleft", "extendleft",
           "__setitem__"}
#: The module that implements the caches: it wraps lru_cache (and registers what it makes).
CACHES_MODULE = "core/caches.py"
#: Module-level containers that grow by design, with why that is bounded.
ALLOWED = {
    # The registry of caches: one entry per cache name in the code, replaced on re-registration.
    ("core/caches.py", "_REGISTRY"),
}
# Not flagged: ``functools.cached_property``. It stores one value in its instance's
# ``__dict__``, freed with the instance; the instances that use it (a Layer of a cached
# Network, for example) live only as long as the bounded cache or the caller that holds them.


def _functools_names(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Local names bound to functools' members (``{"lru_cache": "lru_cache"}``) and the
    names the functools module itself goes by."""
    members, modules = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "functools":
            members.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name for alias in node.names if alias.name == "functools")
    return members, modules


def _functools_member(node: ast.AST, members: dict[str, str], modules: set[str]) -> str | None:
    """Which functools member ``node`` names (``lru_cache``, ``cache``), if any."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return members.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
        return node.attr
    return None


def _lru_cache_offence(call: ast.Call | None) -> str:
    """What is wrong with one use of lru_cache (``call`` is None for a bare ``@lru_cache``)."""
    maxsize = None
    if call is not None:
        maxsize = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "maxsize"), None)
    if maxsize is None:
        return "lru_cache without an explicit maxsize"
    if isinstance(maxsize, ast.Constant) and maxsize.value is None:
        return "lru_cache(maxsize=None): unbounded"
    return "lru_cache: bounded but not registered (clear_all cannot empty it)"


def decorator_offences(tree: ast.Module) -> list[tuple[int, str]]:
    """functools.cache anywhere; lru_cache anywhere (unbounded, or bounded but unregistered):
    trainwall.core.caches.bounded is the one way to cache a function."""
    members, modules = _functools_names(tree)
    calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found = []
    for node in ast.walk(tree):
        member = _functools_member(node, members, modules)
        if member == "cache":
            found.append((node.lineno, "functools.cache: unbounded"))
        elif member == "lru_cache":
            found.append((node.lineno, _lru_cache_offence(calls.get(id(node)))))
    return found


def _is_container(value: ast.AST | None) -> bool:
    if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) in CONTAINERS
    return False


def _grown_in_functions(tree: ast.Module) -> set[str]:
    """Names added to inside a function body: ``NAME[k] = v``, ``NAME[k] += v``, ``NAME.append(...)``..."""
    grown = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        for node in ast.walk(fn):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            grown.update(t.value.id for t in targets
                         if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name))
            grown.update(t.id for t in targets if isinstance(node, ast.AugAssign) and isinstance(t, ast.Name))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in GROWERS and isinstance(node.func.value, ast.Name):
                grown.add(node.func.value.id)
    return grown


def container_offences(tree: ast.Module, relative: str) -> list[tuple[int, str]]:
    """Upper-case module-level dicts, lists and sets that are caches: named like one
    (:data:`CACHE_WORDS`) or added to inside a function. A registered bounded container
    (``BoundedDict(...)``) is a call to no container type, so it passes."""
    grown = _grown_in_functions(tree)
    found = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            name = target.id if isinstance(target, ast.Name) else None
            if name is None or not UPPER_CASE.match(name) or not _is_container(node.value) \
                    or (relative, name) in ALLOWED:
                continue
            if CACHE_WORDS.search(name) or name in grown:
                found.append((node.lineno, f"module-level container {name} grows: use a BoundedDict or @bounded"))
    return found


def offences(path: Path) -> list[str]:
    """Every unbounded or unregistered cache in one source file, as ``file:line what``."""
    relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = container_offences(tree, relative)
    if relative != CACHES_MODULE:
        found += decorator_offences(tree)
    return [f"{relative}:{line} {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_cache_is_bounded_and_registered(folder):
    found = [o for path in sorted((ROOT / folder).rglob("*.py")) for o in offences(path)]
    assert not found, "convert to trainwall.core.caches (bounded / BoundedDict):\n" + "\n".join(found)


def test_the_scan_sees_each_kind_of_cache(tmp_path):
    """The scan can fail: each pattern it refuses is caught, and what it allows is not."""
    path = tmp_path / "bad.py"
    path.write_text(
        "import functools\n"
        "from functools import cache, cached_property, lru_cache as lc\n"
        "from trainwall.core.caches import BoundedDict, bounded\n"
        "_CACHE = {}\n"                       # 4: named like a cache
        "SEEN: set = set()\n"                 # 5: named like a cache
        "TABLE = {}\n"                        # 6: grown below
        "LIMITS = {'a': 1}\n"                 # never grown: a constant
        "_ROUTES = BoundedDict(8, 'routes')\n"
        "@cache\n"                            # 9
        "def a(x): TABLE[x] = x\n"
        "@lc\n"                               # 11
        "def b(x): return x\n"
        "@functools.lru_cache(maxsize=None)\n"  # 13
        "def c(x): return x\n"
        "@lc()\n"                             # 15
        "def d(x): return x\n"
        "@lc(64)\n"                           # 17
        "def e(x): return x\n"
        "@bounded(64)\n"
        "def f(x): return x\n"
        "class K:\n"
        "    @cached_property\n"
        "    def g(self): return 1\n",
        encoding="utf-8")
    lines = [int(o.split(":")[1].split()[0]) for o in offences(path)]
    assert lines == [4, 5, 6, 9, 11, 13, 15, 17]


def _with_devices(path: Path, devices: int) -> object:
    """The example at ``path`` on ``devices`` devices (data parallelism and batch derived)."""
    data = load_config(path).model_dump(exclude_none=True)
    data["system"]["devices"] = devices
    data["training"].pop("data_parallel", None)
    data["training"].pop("global_batch", None)
    return parse_config(data)


def _evaluate_many() -> None:
    """Cloud (tensor 8 x pipeline 4) at 24 cluster sizes, 32 to 768 GPUs; edge at 12 star
    fleets; every example once (the CNN builders and the single-device topology)."""
    from trainwall.optimizer.costmodel import evaluate

    for k in range(1, 25):
        evaluate(_with_devices(EXAMPLES / "cloud.toml", 32 * k))
    for n in range(2, 14):
        evaluate(_with_devices(EXAMPLES / "edge.toml", n))
    for path in sorted(EXAMPLES.glob("*.toml")):
        evaluate(load_config(path))


def test_clear_all_empties_every_registered_cache():
    _evaluate_many()
    assert sum(c.size for c in info()) > 0
    clear_all()
    assert {c.name: c.size for c in info() if c.size} == {}


def test_many_device_counts_stay_within_every_bound():
    from trainwall.hardware import topology

    clear_all()
    _evaluate_many()
    sizes = {c.name: c for c in info()}
    assert all(c.size <= c.maxsize for c in sizes.values()), [c for c in sizes.values() if c.size > c.maxsize]
    # 36 topologies were wired: the edge-table cache evicted down to its bound
    wirings = sizes["trainwall.hardware.topology._wiring"]
    assert wirings.size == wirings.maxsize == topology.WIRINGS_MAXSIZE


def test_bounded_dict_evicts_the_least_recently_used():
    d: BoundedDict[str, int] = BoundedDict(2, "tests.test_caches.lru")
    d["a"], d["b"] = 1, 2
    assert d["a"] == 1           # a is now the most recently used
    assert "b" in d              # a membership test does not count as a use
    d["c"] = 3                   # evicts b
    assert ("a" in d, "b" in d, "c" in d) == (True, False, True)
    assert d.get("b", -1) == -1 and d.get("a") == 1 and len(d) == 2
    assert next(c for c in info() if c.name == "tests.test_caches.lru") == caches.CacheInfo(
        "tests.test_caches.lru", 2, 2)
    d.clear()
    assert len(d) == 0


@pytest.mark.parametrize("maxsize", [None, 0, -1, 1.5, True])
def test_an_unbounded_or_silly_bound_is_refused(maxsize):
    with pytest.raises(ValueError, match="bound"):
        bounded(maxsize)
    with pytest.raises(ValueError, match="bound"):
        BoundedDict(maxsize, "tests.test_caches.refused")


def test_bounded_is_an_lru_cache_registered_by_name():
    calls = []

    @bounded(2)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert [square(2), square(2), square(3), square(4), square(2)] == [4, 4, 9, 16, 4]
    assert calls == [2, 3, 4, 2]  # 2 was evicted by 4
    name = f"{__name__}.test_bounded_is_an_lru_cache_registered_by_name.<locals>.square"
    assert next(c for c in info() if c.name == name).size == 2
    clear_all()
    assert square.cache_info().currsize == 0


def test_a_keyed_memo_keeps_no_argument_alive():
    class Big:
        def __init__(self, label: str) -> None:
            self.label = label

    @bounded(4, key=lambda big, n=1: (big.label, n))
    def describe(big: Big, n: int = 1) -> str:
        return big.label * n

    big = Big("x")
    assert describe(big, 3) == "xxx"
    alive = weakref.ref(big)
    del big
    gc.collect()
    assert alive() is None
    assert describe(Big("x"), 3) == "xxx"  # found by key, not by object


def test_a_single_device_never_imports_networkx():
    """networkx loads only when a route is searched: not on import, not for one device."""
    code = ("import sys\n"
            "from trainwall.hardware import collectives as C, topology as T\n"
            "t = T.single()\n"
            "assert C.all_reduce(t, ((0,),)).algorithm == 'none'\n"
            "assert C.point_to_point(t, ()).algorithm == 'none'\n"
            "T.cluster(64, 8, 'nvlink4', 'ib-ndr')\n"
            "assert 'networkx' not in sys.modules, 'imported too early'\n"
            "C.all_reduce(T.cluster(64, 8, 'nvlink4', 'ib-ndr'), (tuple(range(64)),))\n"
            "assert 'networkx' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
