"""Errors a user can cause, each carrying what the CLI needs to print one clear line.

Every layer (catalogs, models, cost model, config loading) raises these for a user's
mistake; the CLI turns them into ``FILE: field.path = value: what is allowed`` on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

#: The characters no echoed text may carry (the one definition; :func:`trainwall.core.outputs.clean`
#: replaces them, :func:`printable` escapes them): control characters (C0 with tab, newline and
#: CR; DEL; C1), surrogates, the non-characters XML 1.0 refuses, bidi controls (ALM, LRM, RLM,
#: LRE..RLO, LRI..PDI) and the line / paragraph separators.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u061c\u200e\u200f\u202a-\u202e"
                    r"\u2066-\u2069\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every :data:`UNSAFE` character (newline, ESC, bidi controls, ...) written as
    its Python escape (``\\n``, ``\\x1b``, ``\\u202e``); other text is unchanged."""
    return UNSAFE.sub(lambda m: repr(m.group())[1:-1], text)


#: The longest value shown in an error line (a 300-digit number or a 1 MB string is cut).
MAX_SHOWN = 200


def shown(value: object) -> str:
    """``value`` as Python writes it (``'h100'``), cut to about :data:`MAX_SHOWN` characters;
    an integer too long for ``repr`` (over 4,300 digits) is described instead."""
    try:
        text = repr(value)
    except ValueError:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"  # type: ignore[attr-defined]
    return cut(text)


def cut(text: str) -> str:
    """``text`` cut to about :data:`MAX_SHOWN` characters, keeping its start and end."""
    if len(text) <= MAX_SHOWN:
        return text
    return f"{text[:MAX_SHOWN - 40]}...{text[-20:]} ({len(text)} characters)"


class TrainwallError(Exception):
    """Base class of every error caused by user input."""


class InputError(TrainwallError):
    """A value in the user's input is not allowed.

    ``field`` is the dotted path of the offending value (``training.micro_batch``),
    ``value`` the value as given, ``allowed`` what would have been accepted.
    """

    def __init__(self, field: str, value: object, allowed: str, *, source: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source
        super().__init__(self.line())

    def line(self) -> str:
        """One line: control, bidi and other unprintable characters of a file name or a
        field (a student's key) are escaped, so nothing splits the line or reaches a terminal."""
        where = f"{cut(self.source)}: " if self.source else ""
        field = f"{self.field} = " if self.field else ""
        return printable(f"{where}{field}{shown(self.value)}: {self.allowed}")

    def with_source(self, source: str) -> "InputError":
        return InputError(self.field, self.value, self.allowed, source=source)


class UnknownNameError(InputError):
    """A catalog name that does not exist; suggests the closest known names."""

    def __init__(self, field: str, value: str, known: Iterable[str], what: str) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(str(value), known, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        super().__init__(field, value, f"unknown {what}; {hint}known: {', '.join(known)}")
        self.known = known
        self.suggestions = close


class MissionError(InputError):
    """A mission, variant or answer key is wrong: its author's mistake, never a student's.

    Raised when a mission file is loaded (every part is checked then: the scenario, the
    naive plan, each Lock's ``at``, each decision value, each ``[variants.perturb]``
    value) or when one that loaded cannot be solved. The CLI reports it as bad input to
    whoever gave the mission (``solve``, ``generate``: exit 2); while grading a student's
    file it is the grader's failure (exit 1), and the results file says so.
    """

    @classmethod
    def of(cls, reference: str, exc: InputError, where: str, context: str = "") -> "MissionError":
        """``exc``, found in the part of the mission ``where`` names (a dotted field such as
        ``lock.2.at``), re-blamed on the mission ``reference`` (its file or its id)."""
        field = f"{where}.{exc.field}" if exc.field else where
        allowed = f"{exc.allowed} ({context})" if context else exc.allowed
        return cls(field, exc.value, allowed, source=reference)

    def with_source(self, source: str) -> "MissionError":
        return MissionError(self.field, self.value, self.allowed, source=source)
