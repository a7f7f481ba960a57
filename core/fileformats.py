"""Reading user files (TOML, JSON, YAML) safely, with errors that name the file.

Hostile input is refused before it costs anything: files over :data:`MAX_BYTES`,
binary content, YAML anchors and aliases (the "billion laughs" bomb needs them and
no configuration does), and nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from trainwall.core.errors import InputError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def _yaml(text: str, source: str) -> object:
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[override]
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise InputError("", f"*{event.anchor}", "YAML aliases are not allowed in trainwall files "
                                 f"(line {event.start_mark.line + 1})", source=source)
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise InputError("", where, f"not valid YAML: {getattr(exc, 'problem', exc)}", source=source) from None


def _depth(obj: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(obj, dict):
        return max((_depth(v, level + 1) for v in obj.values()), default=level)
    if isinstance(obj, list):
        return max((_depth(v, level + 1) for v in obj), default=level)
    return level


def parse_document(text: str, fmt: str, source: str) -> object:
    """Parse text in ``fmt`` (toml | json | yaml)."""
    try:
        return _parse(text, fmt, source)
    except RecursionError:   # the parsers recurse per nesting level: thousands of "[" exhaust the stack
        raise InputError("", "", f"nested deeper than {MAX_DEPTH} levels", source=source) from None


def _parse(text: str, fmt: str, source: str) -> object:
    if fmt == "toml":
        try:
            data: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError("", "", f"not valid TOML: {exc}", source=source) from None
    elif fmt == "json":
        try:
            data = json.loads(text, parse_constant=lambda c: float(c))
        except json.JSONDecodeError as exc:
            raise InputError("", f"line {exc.lineno}", f"not valid JSON: {exc.msg}", source=source) from None
    else:
        data = _yaml(text, source)
    if _depth(data) > MAX_DEPTH:
        raise InputError("", "", f"nested deeper than {MAX_DEPTH} levels", source=source)
    return data


def read_document(path: str | Path) -> object:
    """Read a TOML / JSON / YAML file chosen by its suffix."""
    path = Path(path)
    source = str(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError("", path.suffix or path.name, "file type must be .toml, .json, .yaml or .yml", source=source)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():   # a FIFO or a device never ends
            raise InputError("", source, "is not a regular file", source=source)
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)     # read at most the limit, whatever stat says
        if len(raw) > MAX_BYTES:
            raise InputError("", f"over {MAX_BYTES} bytes", f"file larger than {MAX_BYTES} bytes", source=source)
    except FileNotFoundError:
        raise InputError("", source, "no such file", source=source) from None
    except IsADirectoryError:
        raise InputError("", source, "is a directory, not a file", source=source) from None
    except PermissionError:
        raise InputError("", source, "permission denied", source=source) from None
    if not raw.strip():
        raise InputError("", "<empty>", "the file is empty", source=source)
    if b"\x00" in raw:
        raise InputError("", "<binary>", "the file is binary, not text", source=source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("", f"byte {exc.start}", "the file is not UTF-8 text", source=source) from None
    return parse_document(text, fmt, source)


def safe_name(name: str, limit: int = 80) -> str:
    """A file name that stays inside its folder: letters, digits, ``.``, ``_`` and ``-`` only,
    never starting with a dot; anything changed gets a short hash so two names never collide."""
    kept = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:limit].lstrip(".") or "_"
    if kept == name:
        return kept
    return f"{kept}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
