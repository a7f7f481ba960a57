"""Reading user files (TOML, JSON, YAML, CSV text) safely, with errors that name the file.

Every file trainwall reads from a user (configurations, submissions, missions, answer
keys, rosters) goes through :func:`read_text` (and, for documents, :func:`read_document`),
so each is refused the same way, as an :class:`InputError` (exit 2) that names the path,
before it costs anything:

* anything but a regular file: a FIFO, a socket or a device (``/dev/zero`` behind a
  link) is refused from :func:`os.stat`, before it is opened, and the file is then
  opened with ``O_NONBLOCK`` and checked again (it cannot be swapped for a FIFO in
  between and block the reader);
* every path error: missing, a directory, permission denied, a symlink loop, a path
  through a regular file, a name too long, the empty path;
* files over :data:`MAX_BYTES` (checked from the size, and never read past the limit),
  binary (NUL bytes) or non-UTF-8 content; a leading UTF-8 byte-order mark is dropped;
* for documents: YAML aliases (the "billion laughs" bomb needs them) and explicit tags
  (``!!timestamp``: PyYAML's constructors crash on some), which no trainwall file needs, nesting deeper than :data:`MAX_DEPTH`, an integer outside
  +-:data:`MAX_INT` (TOML's 64-bit range; Python itself refuses more than 4,300 digits),
  and a key given twice in one table (TOML refuses it; JSON and YAML would keep the last).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from trainwall.core.errors import InputError

#: The largest file read, in bytes (1 MB: a class roster of 10,000 students fits ten times over).
MAX_BYTES = 1_000_000
#: The deepest nesting of tables and lists in a document.
MAX_DEPTH = 32
#: The largest integer magnitude in a document: TOML's 64-bit signed range (every size in the
#: schemas is far smaller, see trainwall.core.config).
MAX_INT = 2**63 - 1
SUFFIXES = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_PATH_ERRORS = {
    errno.ENOENT: "no such file",
    errno.EISDIR: "is a directory, not a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the file name is too long",
}


def _path_error(exc: OSError, source: str, what: str) -> InputError:
    reason = _PATH_ERRORS.get(exc.errno or 0) or f"cannot be read ({exc.strerror or type(exc).__name__})"
    if exc.errno == errno.ENOENT and what != "file":
        reason = f"no such {what}"
    return InputError("", source, reason, source=source)


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a plain file")
    return f"is not a regular file ({kind}); give a regular file"


def _too_big(source: str) -> InputError:
    return InputError("", f"over {MAX_BYTES} bytes", f"file larger than {MAX_BYTES} bytes", source=source)


def _open_regular(source: str, what: str) -> int:
    """A descriptor of the regular file ``source``; anything else is an InputError naming it."""
    try:
        info = os.stat(source)                 # follows links, opens nothing: a FIFO is never opened
        if not stat.S_ISREG(info.st_mode):
            raise InputError("", source, _not_regular(info.st_mode), source=source)
        if info.st_size > MAX_BYTES:
            raise _too_big(source)
        return os.open(source, _OPEN_FLAGS)    # non-blocking: a file swapped for a FIFO cannot hang here
    except OSError as exc:
        raise _path_error(exc, source, what) from None
    except ValueError:                         # a NUL byte in the path
        raise InputError("", source, "not a valid path (it holds a NUL byte)", source=source) from None


def _read_bytes(source: str, what: str) -> bytes:
    """At most MAX_BYTES of a regular file, checked again once it is open."""
    fd = _open_regular(source, what)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError("", source, _not_regular(mode), source=source)
        chunks, total = [], 0
        while total <= MAX_BYTES:              # read at most the limit, whatever stat said
            chunk = os.read(fd, MAX_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise _path_error(exc, source, what) from None
    finally:
        os.close(fd)
    if total > MAX_BYTES:
        raise _too_big(source)
    return b"".join(chunks)


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of a user's file, read with the module docstring's refusals of the path (a
    regular file of at most :data:`MAX_BYTES` bytes). ``what`` names the kind of file in the
    message for a missing one (``no such roster``)."""
    source = str(path)
    if source == "":
        raise InputError("", "", f"an empty path names no {what}")
    return _read_bytes(source, what)


@dataclass(frozen=True)
class Contents:
    """A file as read on one machine, to be parsed on another (the Ray backend ships submissions
    this way): its bytes, or the InputError reading them raised, as its parts (an exception does
    not travel between processes); :meth:`bytes` gives the one or raises the other."""

    raw: bytes | None                                  # None exactly when reading failed
    error: tuple[str, object, str, str] | None = None

    @classmethod
    def of(cls, path: str | Path) -> "Contents":
        try:
            return cls(read_bytes(path))
        except InputError as exc:
            return cls(None, (exc.field, exc.value, exc.allowed, exc.source))

    def bytes(self) -> bytes:
        if self.error is not None:
            field, value, allowed, source = self.error
            raise InputError(field, value, allowed, source=source)
        return self.raw


def read_text(path: str | Path, what: str = "file", contents: Contents | None = None) -> str:
    """The text of a user's file (a roster, a key, a document), read with every refusal of
    the module docstring: a regular UTF-8 text file of at most :data:`MAX_BYTES` bytes,
    without NUL bytes; a leading byte-order mark is dropped. ``what`` names the kind of
    file in the message for a missing one (``no such roster``). The text may be empty.
    ``contents``: the file as already read (elsewhere) instead of reading ``path``."""
    source = str(path)
    raw = contents.bytes() if contents is not None else read_bytes(source, what)
    if b"\x00" in raw:
        raise InputError("", "<binary>", "the file is binary, not text", source=source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("", f"byte {exc.start}", "the file is not UTF-8 text", source=source) from None
    return text.removeprefix("\ufeff")


def _yaml(text: str, source: str) -> object:
    """YAML with libyaml when it is there (ten times faster), the same checks either way."""
    import yaml

    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class _StrictLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            if isinstance(node, yaml.MappingNode):
                _unique_yaml_keys(self, node, source)
            return super().construct_mapping(node, deep)

    try:
        _yaml_events(yaml, text, base, source)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:  # PyYAML's own slips
        raise InputError("", "?", f"not valid YAML: {type(exc).__name__}", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in problem:      # libyaml's own limit, met while it scans ahead
            raise InputError("", where, f"nested deeper than {MAX_DEPTH} levels", source=source) from None
        raise InputError("", where, f"not valid YAML: {problem}", source=source) from None


def _yaml_events(yaml, text: str, loader: type, source: str) -> None:
    """Aliases, nesting and repeated keys, refused from the event stream before any node is
    built: building recurses per level (in libyaml's composer, without Python's recursion
    limit) and reads the whole file first. A key is caught here when it is written the same
    way twice; :func:`_unique_yaml_keys` catches the rest (``1`` and ``0x1``)."""
    stack: list[list | None] = []     # per open collection: [keys seen, next is a key] for a mapping
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise InputError("", f"*{event.anchor}", "YAML aliases are not allowed in trainwall files "
                             f"(line {event.start_mark.line + 1})", source=source)
        if getattr(event, "tag", None) not in (None, "!"):      # !!int, !!timestamp, !custom: no file needs one
            raise InputError("", event.tag, "YAML tags are not allowed in trainwall files "
                             f"(line {event.start_mark.line + 1})", source=source)
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)) and stack and stack[-1] is not None:
            keys, is_key = stack[-1]
            if is_key and isinstance(event, yaml.ScalarEvent) and (event.style, event.value) != (None, "<<"):
                written = (event.tag, event.value, event.style is None)
                if written in keys:
                    raise _duplicate(event.value, event.start_mark.line + 1, source)
                keys.add(written)
            stack[-1][1] = not is_key
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([set(), True] if isinstance(event, yaml.MappingStartEvent) else None)
            if len(stack) > MAX_DEPTH:
                raise InputError("", f"line {event.start_mark.line + 1}", f"nested deeper than {MAX_DEPTH} levels",
                                 source=source)
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop()


def _duplicate(key: object, line: int, source: str) -> InputError:
    return InputError("", key, f"duplicate key (line {line}): each key may appear once in a table", source=source)


def _unique_yaml_keys(loader, node, source: str) -> None:
    """A key given twice in one YAML mapping is refused (merge keys ``<<`` aside)."""
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            again = key in seen
        except TypeError:           # an unhashable key: the SafeLoader refuses it itself
            continue
        if again:
            raise _duplicate(key, key_node.start_mark.line + 1, source)
        seen.add(key)


def _unique_json_pairs(source: str):
    def pairs(items: list[tuple[str, object]]) -> dict:
        found: dict = {}
        for key, value in items:
            if key in found:
                raise InputError("", key, "duplicate key: each key may appear once in an object", source=source)
            found[key] = value
        return found

    return pairs


def _toml_error(exc: tomllib.TOMLDecodeError, text: str, source: str) -> InputError:
    """TOML's own message, plus the key when it is a duplicate (tomllib names only the line)."""
    message = str(exc)
    line = re.search(r"at line (\d+)", message)
    if line and ("overwrite" in message or "twice" in message):
        number = int(line.group(1))
        lines = text.splitlines()
        key = lines[number - 1].split("=", 1)[0].strip() if 0 < number <= len(lines) else "?"
        return InputError("", key[:80], f"duplicate key or table (line {number}): each may appear once",
                          source=source)
    return InputError("", "", f"not valid TOML: {message}", source=source)


#: A TOML dotted key (``a.b.c``, bare or quoted parts, in a key or a ``[table]`` header) of more
#: than MAX_DEPTH parts. tomllib's time and memory grow with the square of a key's parts (300,000
#: parts exhaust the memory), so such keys are refused before parsing. Possessive quantifiers and
#: the look-behind keep the scan linear.
_SEGMENT = r"""(?:[A-Za-z0-9_-]++|"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+')"""
_DEEP_KEY = re.compile(rf"(?<![A-Za-z0-9_-]){_SEGMENT}(?:[ \t]*+\.[ \t]*+{_SEGMENT}){{{MAX_DEPTH},}}")


def _parse(text: str, fmt: str, source: str) -> object:
    if fmt == "toml":
        deep = _DEEP_KEY.search(text)
        if deep:
            raise InputError("", deep.group()[:40] + "...", f"a dotted key of more than {MAX_DEPTH} parts: "
                             f"nested deeper than {MAX_DEPTH} levels", source=source)
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(exc, text, source) from None
    if fmt == "json":
        try:
            return json.loads(text, parse_constant=float, object_pairs_hook=_unique_json_pairs(source))
        except json.JSONDecodeError as exc:
            raise InputError("", f"line {exc.lineno}", f"not valid JSON: {exc.msg}", source=source) from None
    return _yaml(text, source)


def _check_tree(data: object, source: str) -> None:
    """Nesting at most MAX_DEPTH deep and integers within +-MAX_INT (iteratively: no recursion)."""
    stack: list[tuple[object, tuple, int]] = [(data, (), 0)]
    while stack:
        obj, path, level = stack.pop()
        if level > MAX_DEPTH:
            raise InputError(".".join(map(str, path[:4])) + "...", "...", f"nested deeper than {MAX_DEPTH} levels",
                             source=source)
        if isinstance(obj, (dict, list)):
            items = obj.items() if isinstance(obj, dict) else enumerate(obj)
            stack.extend((value, path + (key,), level + 1) for key, value in items)
        elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > MAX_INT:
            digits = int(obj.bit_length() * 0.30103) + 1      # str() itself refuses over 4300 digits
            raise InputError(".".join(map(str, path)), f"<an integer of about {digits} digits>",
                             f"integers must lie within +-{MAX_INT} (2^63 - 1)", source=source)


def parse_document(text: str, fmt: str, source: str) -> object:
    """Parse text in ``fmt`` (toml | json | yaml): depth, integer size and duplicate keys checked."""
    try:
        data = _parse(text.removeprefix("\ufeff"), fmt, source)
    except RecursionError:   # the parsers recurse per nesting level: thousands of "[" exhaust the stack
        raise InputError("", "", f"nested deeper than {MAX_DEPTH} levels", source=source) from None
    except ValueError as exc:
        if "digits" in str(exc):     # int(): "Exceeds the limit (4300 digits) for integer string conversion"
            raise InputError("", "<a huge integer>", f"an integer of more than 4300 digits; integers must lie "
                             f"within +-{MAX_INT} (2^63 - 1)", source=source) from None
        raise InputError("", "", f"not valid {fmt.upper()}: {exc}", source=source) from None
    _check_tree(data, source)
    return data


def read_document(path: str | Path, contents: Contents | None = None) -> object:
    """Read a TOML / JSON / YAML file chosen by its suffix (see the module docstring);
    ``contents``: the file as already read elsewhere (:class:`Contents`), checked and parsed
    here as if read here."""
    source = str(path)
    if source == "":
        raise InputError("", "", "an empty path names no file")
    fmt = SUFFIXES.get(Path(source).suffix.lower())
    if fmt is None:
        raise InputError("", Path(source).suffix or source, "file type must be .toml, .json, .yaml or .yml",
                         source=source)
    text = read_text(source, contents=contents)
    if not text.strip():
        raise InputError("", "<empty>", "the file is empty", source=source)
    return parse_document(text, fmt, source)


#: The characters a name keeps; anything else is replaced by ``_`` (and the name marked as changed).
_KEPT = re.compile(r"[^A-Za-z0-9._-]")
#: The mark of a changed name: every changed name holds it, no unchanged name does.
CHANGED_MARK = "--"


def safe_name(name: str, limit: int = 80) -> str:
    """A file name that stays inside its folder, the same for the same ``name`` and different
    for different ones.

    The rule: ``name`` is kept as it is when it is at most ``limit`` characters of letters,
    digits, ``.``, ``_`` and ``-``, does not start with ``.`` or ``-`` and does not contain
    ``--`` (:data:`CHANGED_MARK`). Any other name becomes its first ``limit`` characters with
    every other character replaced by ``_`` (leading dots and dashes dropped), then ``--``
    and 16 hex digits of the SHA-256 of the whole original name (64 bits: no one can craft
    a name that collides with another's).

    So an unchanged name never equals a changed one (it has no ``--``), two unchanged names
    differ because they are the names, and two changed names differ by their hashes: no two
    names share an output. An output can equal another *raw* name only when that raw name
    holds ``--``, and then that name is itself changed (its own output is elsewhere).
    """
    if (len(name) <= limit and not _KEPT.search(name) and CHANGED_MARK not in name
            and name[:1] not in ("", ".", "-")):
        return name
    kept = _KEPT.sub("_", name[:limit]).lstrip(".-") or "_"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{kept}{CHANGED_MARK}{digest}"
