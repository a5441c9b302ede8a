"""``Direction``: whether an objective is minimized or maximized, as a type instead of a string.

    Direction("max").best([0.7, 0.9])      # 0.9
    Direction.MIN.better(0.1, 0.3)         # True
    Direction.MAX.sign                     # -1: multiply to minimize

It is a ``str`` enum, so ``Direction.MAX == "max"`` holds and it is stored and sent as JSON as the
plain words ``"min"`` and ``"max"`` (the ``mode=`` the API has always taken).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class Direction(str, enum.Enum):
    """Which way an objective improves: ``MIN`` (losses, errors, time) or ``MAX`` (accuracy)."""

    MIN = "min"
    MAX = "max"

    @classmethod
    def of(cls, value: Any, owner: str = "Study", argument: str = "mode") -> Direction:
        """``value`` as a Direction; a ConfigError in the house shape when it is neither word."""
        if isinstance(value, Direction):
            return value
        try:
            return cls(value)
        except ValueError:
            from tuneloop._validation import fail

            raise fail(argument, owner, "'min' or 'max'", value) from None

    def __str__(self) -> str:  # f-strings and messages show "max", not "Direction.MAX"
        return self.value

    @property
    def sign(self) -> float:
        """+1 for MIN, -1 for MAX: ``sign * value`` is a quantity to minimize."""
        return 1.0 if self is Direction.MIN else -1.0

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a < b if self is Direction.MIN else a > b

    def best(self, items: Iterable[T], key: Callable[[T], Any] | None = None) -> T:
        """The best of ``items`` (by ``key``): ``min`` or ``max``; ValueError when empty, like them."""
        pick = min if self is Direction.MIN else max
        # type-var: T is compared itself only without a key, and callers then pass comparable items
        return pick(items, key=key) if key is not None else pick(items)  # type: ignore[type-var]

    def sorted(self, items: Iterable[T], key: Callable[[T], Any]) -> list[T]:
        """``items`` best first."""
        return sorted(items, key=key, reverse=self is Direction.MAX)
