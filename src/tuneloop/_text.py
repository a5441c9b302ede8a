"""Stored strings made safe to print: every name, value and message read from a database may come
from someone else, so before Rich sees one its markup is escaped (``[/x]`` would raise a
MarkupError, ``[link=...]`` would make a link) and terminal control characters are removed
(``\\x1b[2J`` clears the screen, ``\\x1b]8;;...`` writes a hyperlink, ``\\r`` overwrites a line)."""

from __future__ import annotations

import re

# C0 (but TAB and LF, kept only where lines are wanted), DEL, C1, and the bidirectional overrides
# and isolates that make text display in another order than it reads ("Trojan Source")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n]")


def plain(value: object, *, lines: bool = False) -> str:
    """``value`` as text without control characters (tabs and newlines kept when ``lines``)."""
    text = _CONTROL.sub("", str(value))
    return text if lines else _LINE_BREAKS.sub(" ", text)


def safe(value: object, *, lines: bool = False) -> str:
    """``value`` as Rich markup that prints exactly as the text reads, control characters removed.

    Use it on every stored string that goes into ``console.print``, a Table cell, title or caption;
    ``lines=True`` keeps newlines and tabs (tracebacks, multi-line messages)."""
    from rich.markup import escape

    return escape(plain(value, lines=lines))
