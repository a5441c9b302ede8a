"""One helper per kind of check, so every argument error reads the same way.

"The 'mode' argument of Study must be 'min' or 'max'. Got 'maximize' instead."
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from tuneloop.errors import ConfigError


def fail(argument: str, owner: str, expected: str, got: Any) -> ConfigError:
    """Build the standard error for a bad argument (the caller raises it)."""
    return ConfigError(f"The {argument!r} argument of {owner} must be {expected}. Got {got!r} instead.")


def check_one_of(value: Any, allowed: Iterable[Any], argument: str, owner: str) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise the standard error."""
    allowed = list(allowed)
    if value not in allowed:
        if len(allowed) == 2:
            expected = f"{allowed[0]!r} or {allowed[1]!r}"
        else:
            expected = "one of " + ", ".join(repr(a) for a in allowed)
        raise fail(argument, owner, expected, value)
    return value


def check_positive_int(value: Any, argument: str, owner: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` if it is an int > 0 (or >= 0), else raise the standard error."""
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise fail(argument, owner, "a non-negative integer" if allow_zero else "a positive integer", value)
    return value


def check_number(value: Any, argument: str, owner: str) -> float:
    """Return ``value`` as a float if it is a real number, else raise the standard error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(argument, owner, "a number", value)
    return float(value)


def finite_float(value: Any) -> float | None:
    """A stored number as a finite float; None for text, bools, NaN, infinities and ints too large
    for a float (10**400 in an edited store raises OverflowError on conversion)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
