"""Writing outputs safely: every file trainwall writes, and every string it echoes.

* :func:`atomic_write` is the one writer of files (results files, ``summary.csv``,
  figures, handouts, answer keys, ``index.csv``, the autograder bundle): the bytes go
  to a temporary file in the same folder, are flushed and fsynced, then renamed over
  the final name, so a crash mid-write leaves the previous complete file (or none),
  never a truncated one.
* :func:`replace_folder` swaps a folder written aside into place (a set of answer keys
  never mixes two runs).
* :func:`check_target` refuses, before any work, an output path that cannot be one
  (an existing file where a folder is needed, or the reverse; a path through a file)
  or that would overwrite or overlap an input.
* :func:`clean` is the one cleaner of text that came from outside (file names,
  student values, messages quoting them) before it reaches a terminal or a results
  file: control characters, ANSI escape sequences, Unicode bidi controls and line
  separators are replaced by U+FFFD, so a one-line message stays one line and reads
  in its logical order; with ``markup=True`` (the results files a platform renders:
  gradescope, prairielearn, junit) a ``<`` that would open an HTML tag becomes the
  full-width ``＜`` (U+FF1C), which no HTML or Markdown renderer reads as a tag and
  which reads the same as plain text.
* :func:`unique_names` names one output per input name, never two the same (even on a
  case-insensitive file system).
* :func:`csv_cell` is the one writer of a CSV text cell: cleaned, and a cell a
  spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) is
  prefixed with ``'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from trainwall.core.errors import UNSAFE, InputError
from trainwall.core.fileformats import safe_name

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"
#: ANSI escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and any other ESC + one character.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
#: ``<`` followed by what makes an HTML tag, comment or declaration: a letter, ``/``, ``!`` or ``?``.
_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def clean(text: object, limit: int = 4000, *, markup: bool = False) -> str:
    """Printable one-line text of at most ``limit`` characters (see the module's docstring)."""
    text = UNSAFE.sub(REPLACEMENT, _ANSI.sub(REPLACEMENT, str(text)))
    if markup:
        text = _TAG.sub("\uff1c", text)
    return text if len(text) <= limit else text[:limit] + "..."


def csv_cell(value: object, limit: int = 256) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = clean(value, limit)
    return "'" + text if text[:1] in _FORMULA else text


def csv_text(cell: str) -> str:
    """The text a :func:`csv_cell` cell holds: the ``'`` that defused a formula removed."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _FORMULA else cell


# --- atomic files ----------------------------------------------------------------------------------

def _write(handle, chunks: Iterable[bytes]) -> None:
    """Write every byte of one file, chunk by chunk (a test replaces this to inject a crash half-way)."""
    for chunk in chunks:
        handle.write(chunk)


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, data: str | bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically: a temporary file in the same
    folder, flushed and fsynced, renamed over ``path``. ``mode`` defaults to the mode of the
    file replaced, else what the umask gives a new file."""
    return atomic_write_chunks(path, (data,), mode=mode)


def atomic_write_chunks(path: str | Path, chunks: Iterable[str | bytes], *, mode: int | None = None) -> Path:
    """:func:`atomic_write` of the concatenation of ``chunks``, written as they come (a large
    file, such as a class's ``summary.csv``, is never held whole)."""
    path = Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = _default_mode()
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            _write(handle, (chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk) for chunk in chunks))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)
    return path


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (best effort: not every system can fsync a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def staging_folder(parent: str | Path, label: str) -> Path:
    """A fresh hidden folder inside ``parent`` to write a set of files aside (then :func:`replace_folder`)."""
    return Path(tempfile.mkdtemp(prefix=f".trainwall-{label}-", dir=parent))


def replace_folder(new: Path, final: Path, trash: Path) -> None:
    """Put the folder ``new`` at ``final``; whatever was at ``final`` is moved to ``trash``
    (inside the staging folder, removed with it)."""
    if os.path.lexists(final):
        os.replace(final, trash)
    os.replace(new, final)


def remove_staging(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# --- refusing a bad output before any work ---------------------------------------------------------

def _resolved(path: str | Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):     # a link loop: compare the absolute spelling
        return Path(os.path.abspath(path))


def _kind_problem(path: Path, folder: bool) -> str | None:
    """Why ``path`` cannot be written as a folder (``folder``) or as a file, or None."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):   # to be made; its nearest existing parent decides
        mode = None
    except OSError as exc:            # a link loop, a path through a file, a name too long
        return f"cannot be used as an output ({exc.strerror})"
    if mode is None:
        for parent in path.absolute().parents:
            try:
                parent_mode = parent.stat().st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                return f"cannot be used as an output ({exc.strerror})"
            return None if stat.S_ISDIR(parent_mode) else f"{parent} is a file, not a folder"
        return None
    if folder and not stat.S_ISDIR(mode):
        return "is an existing file, not a folder"
    if not folder and stat.S_ISDIR(mode):
        return "is a folder; name the file to write"
    if not folder and not stat.S_ISREG(mode):
        return "is not a regular file (outputs are written to a temporary file, then renamed)"
    return None


def check_target(path: str | Path, option: str, *, folder: bool, files: Iterable = (),
                 folders: Iterable = ()) -> Path:
    """``path`` as an output (a folder when ``folder``, else a file), refused with InputError
    when it cannot be one, when it is one of the input ``files``, or when it overlaps an
    input folder (is it, is inside it, or, for an output folder, holds it)."""
    if not str(path).strip():
        raise InputError(option, str(path), "must name a path, not an empty string")
    path = Path(path)
    problem = _kind_problem(path, folder)
    if problem:
        raise InputError(option, str(path), problem)
    target = _resolved(path)
    for given in files:
        if given is not None and _resolved(given) == target:
            raise InputError(option, str(path), f"is an input ({given}); it is never overwritten")
    for given in folders:
        if given is None:
            continue
        inside = _resolved(given)
        if target == inside or target.is_relative_to(inside) or (folder and inside.is_relative_to(target)):
            raise InputError(option, str(path), f"overlaps the input folder {given}; write the outputs elsewhere")
    return path


def unique_names(names: Iterable[str], suffix: str = "", reserved: Iterable[str] = ()) -> list[str]:
    """One file name per name, all distinct even ignoring case and none of ``reserved``:
    :func:`~trainwall.core.fileformats.safe_name` plus ``suffix``, or, when that is taken,
    with a hash of the whole name (and a counter, should even that be taken). The same
    names in the same order give the same result."""
    taken = {r.casefold() for r in reserved}
    out = []
    for name in names:
        base = safe_name(name)
        candidate = f"{base}{suffix}"
        if candidate.casefold() in taken:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
            candidate, number = f"{base}-{digest}{suffix}", 1
            while candidate.casefold() in taken:
                number += 1
                candidate = f"{base}-{digest}-{number}{suffix}"
        taken.add(candidate.casefold())
        out.append(candidate)
    return out
