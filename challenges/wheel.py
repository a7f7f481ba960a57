"""The running trainwall as a wheel file: what an autograder bundle installs, so that no
package index has to hold trainwall (and no one else's package of that name is installed).

A wheel (PEP 427, the binary distribution format) is a zip archive: the package's files,
plus ``<name>-<version>.dist-info/`` with ``METADATA`` (core metadata: name, version,
Python and dependencies), ``WHEEL`` (format version, tag), ``entry_points.txt`` (the
``trainwall`` command) and ``RECORD`` (each file's sha256, urlsafe base64 without
padding, and size). The files come from where this trainwall runs:

* a source tree (an editable install, or a checkout on ``sys.path``): the folders
  ``pyproject.toml`` maps into the package (``[tool.setuptools] package-dir``), their
  ``*.py`` and the declared package data, and the metadata from its ``[project]`` table;
* an installed wheel: every file under the installed ``trainwall/`` folder (byte code
  left out) and the metadata of the installed distribution.

Both give the same archive for the same sources. The archive is deterministic: entries
sorted, every timestamp 1980-01-01, fixed permissions.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from trainwall.core import VERSION
from trainwall.core.errors import InputError

NAME = "trainwall"
TAG = "py3-none-any"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def wheel_name() -> str:
    return f"{NAME}-{VERSION}-{TAG}.whl"


def build(folder: str | Path) -> Path:
    """Write the running trainwall's wheel into ``folder``; returns its path."""
    from trainwall.core.outputs import atomic_write

    files, metadata, entry_points = _from_source_tree() or _from_installed()
    Path(folder).mkdir(parents=True, exist_ok=True)
    return atomic_write(Path(folder) / wheel_name(), _archive(files, metadata, entry_points))


def _package_root() -> Path:
    """The folder of the ``trainwall`` package itself (core/ lies beside it in a source tree)."""
    import importlib.util

    return Path(importlib.util.find_spec(NAME).origin).resolve().parent


def _from_source_tree() -> tuple[dict[str, bytes], str, str] | None:
    """(archive name -> bytes, METADATA, entry_points.txt) from the project's source tree, or
    None when trainwall does not run from one."""
    import tomllib

    pyproject = _package_root().parent / "pyproject.toml"
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    if project.get("project", {}).get("name") != NAME:
        return None
    tools = project["tool"]["setuptools"]
    files = {}
    for package in tools["packages"]:
        source = pyproject.parent / tools["package-dir"][package]
        target = package.replace(".", "/")
        patterns = ["*.py", *tools.get("package-data", {}).get(package, [])]
        for pattern in patterns:
            for path in sorted(source.glob(pattern)):
                if path.is_file():
                    files[f"{target}/{path.relative_to(source).as_posix()}"] = path.read_bytes()
    spec = project["project"]
    scripts = spec.get("scripts", {})
    return files, _metadata(spec["name"], VERSION, spec["description"], spec["requires-python"],
                            spec["dependencies"]), _entry_points(scripts)


def _from_installed() -> tuple[dict[str, bytes], str, str]:
    """The same from an installed wheel: its package folder and its distribution's metadata."""
    from importlib.metadata import PackageNotFoundError, distribution

    root = _package_root()
    try:
        dist = distribution(NAME)
    except PackageNotFoundError:
        raise InputError("--install", None, "this trainwall runs neither from its source tree nor from an installed "
                         "wheel: give --install a requirement (a wheel file, a git URL)") from None
    files = {f"{NAME}/{path.relative_to(root).as_posix()}": path.read_bytes()
             for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}
    meta = dist.metadata
    requires = [r for r in (dist.requires or []) if "extra ==" not in r]
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    return files, _metadata(meta["Name"], VERSION, meta["Summary"], meta["Requires-Python"],
                            requires), _entry_points(scripts)


def _metadata(name: str, version: str, summary: str, python: str, requires: list[str]) -> str:
    """Core metadata 2.1: what pip needs to install trainwall and its dependencies."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {summary}",
             f"Requires-Python: {python}", *(f"Requires-Dist: {_requirement(r)}" for r in requires)]
    return "\n".join(lines) + "\n"


def _requirement(text: str) -> str:
    """One dependency written one way, its version clauses sorted (pyproject says
    'numpy>=1.26,<3', an installed distribution 'numpy<3,>=1.26')."""
    import re

    name, clauses = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*", text).groups()
    return name + ",".join(sorted(c.replace(" ", "") for c in clauses.split(",") if c.strip()))


def _entry_points(scripts: dict[str, str]) -> str:
    return "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(scripts.items()))


def _archive(files: dict[str, bytes], metadata: str, entry_points: str) -> bytes:
    info = f"{NAME}-{VERSION}.dist-info"
    wheel = f"Wheel-Version: 1.0\nGenerator: trainwall\nRoot-Is-Purelib: true\nTag: {TAG}\n"
    entries = {**files, f"{info}/METADATA": metadata.encode(), f"{info}/WHEEL": wheel.encode(),
               f"{info}/entry_points.txt": entry_points.encode()}
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n" for name, data in sorted(entries.items()))
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            item = zipfile.ZipInfo(name, _EPOCH)
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(item, entries[name])
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
