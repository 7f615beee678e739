"""The one exception type of archstat, and the CLI's exit codes.

Every error a user can cause (a malformed spec, an unknown field, a shape that
does not fit) is raised as :class:`ArchstatError`. Its ``str()`` is one line that
names the spec file, the layer and the field, says what was expected and, where
one exists, suggests a fix::

    vgg.yaml: layer 'conv3_1', field 'kernal_size': unknown field; did you mean 'kernel_size'?
"""
from __future__ import annotations

import difflib
import enum
from typing import Iterable


class ExitCode(enum.IntEnum):
    """Exit codes of the ``archstat`` command."""

    OK = 0
    #: a bad spec, a bad argument value, or a run the library refused
    USER_ERROR = 2
    #: interrupted with Ctrl-C (128 + SIGINT, as shells report it)
    INTERRUPTED = 130


class ArchstatError(Exception):
    """A problem the user can fix, with where it is and how to fix it.

    Parameters
    ----------
    message : str
        What is wrong and what was expected.
    file : str, optional
        The spec file (or ``<dict>`` for a spec given as a Python mapping).
    layer : str, optional
        The layer's name in the spec.
    field : str, optional
        The field of that layer (or the top-level key).
    hint : str, optional
        How to fix it, e.g. ``did you mean 'kernel_size'?``.
    """

    def __init__(self, message: str, *, file: str | None = None, layer: str | None = None,
                 field: str | None = None, hint: str | None = None):
        self.message = message
        self.file = file
        self.layer = layer
        self.field = field
        self.hint = hint
        super().__init__(str(self))

    def with_context(self, *, file: str | None = None, layer: str | None = None,
                     field: str | None = None) -> "ArchstatError":
        """Fill in the location fields that are still empty (outermost caller wins last)."""
        self.file = self.file or file
        self.layer = self.layer or layer
        self.field = self.field or field
        self.args = (str(self),)
        return self

    def __str__(self) -> str:
        where = []
        if self.layer is not None:
            where.append(f"layer '{printable(self.layer)}'")
        if self.field is not None:
            where.append(f"field '{printable(self.field)}'")
        prefix = ""
        if self.file:
            prefix = f"{printable(self.file)}: "
        if where:
            prefix += ", ".join(where) + ": "
        text = prefix + printable(self.message)
        if self.hint:   # hints may list what archstat supports: longer than a quoted value
            text += f"; {printable(self.hint, 500)}"
        return text


def printable(text: object, limit: int = 300) -> str:
    """One line, control characters escaped, at most ``limit`` characters (messages quote
    user values, which may be huge or contain newlines)."""
    text = str(text)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def short_repr(value: object, limit: int = 80) -> str:
    """repr() of a user value, truncated for messages (reprlib caps nested containers too)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxdict = 6
    r.maxlevel = 3
    return printable(r.repr(value), limit)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` for the closest choice, or None (difflib)."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def one_of(choices: Iterable[str]) -> str:
    """Format a short list of allowed values for a message."""
    items = sorted(choices)
    return ", ".join(f"'{c}'" for c in items)
