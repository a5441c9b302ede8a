"""Choosing on a Pareto front: ``"max val_acc where latency_ms <= 2"``, or a function of the front.

    picked = pick_all(study.front, "max val_acc where latency_ms <= 2 and params_m < 1", study.name)
    picked[0]                     # the front member with the best val_acc among those fast and small enough

A rule reads ``max|min METRIC [where METRIC OP NUMBER [and METRIC OP NUMBER ...]]`` with OP one of
``<= < >= > ==``; METRIC is any final metric the trials hold (an objective or not). A callable takes
the front (a list of trials) and returns one of them, or a list of them best first. Nothing a rule
names is ever evaluated as code: it is parsed word by word.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tuneloop.direction import Direction
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.objectives import Scored, finite, short

S = TypeVar("S", bound=Scored)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_CONDITION = re.compile(r"^\s*(\S+?)\s*(<=|>=|==|<|>)\s*(\S+)\s*$")
_EXAMPLE = "'max val_acc where latency_ms <= 2' (or 'min latency_ms where val_acc >= 0.9 and params_m < 1')"


@dataclass(frozen=True)
class Rule:
    """A parsed pick rule: the metric to optimize, its direction, and the conditions to keep."""

    metric: str
    direction: Direction
    conditions: tuple[tuple[str, str, float], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``text`` as a Rule; a one-line ConfigError showing the form when it is not one."""
        if not isinstance(text, str) or len(text) > 1000:
            raise ConfigError(f"A pick rule is a short string like {_EXAMPLE}; got {str(text)[:80]!r}.")
        head, *rest = re.split(r"\s+where\s+", text.strip(), maxsplit=1)
        tail = rest[0] if rest else ""
        words = head.split()
        if len(words) != 2 or words[0] not in ("max", "min"):
            raise ConfigError(f"The pick rule {text[:80]!r} must start with 'max METRIC' or 'min METRIC', e.g. {_EXAMPLE}.")
        conditions = []
        if tail.strip():
            for part in re.split(r"\s+and\s+", tail.strip()):
                m = _CONDITION.match(part)
                number = _number(m.group(3)) if m else None
                if m is None or number is None:
                    raise ConfigError(f"The condition {part[:80]!r} of the pick rule must read METRIC OP NUMBER with OP "
                                      f"one of <=, <, >=, >, ==, e.g. {_EXAMPLE}.")
                conditions.append((m.group(1), m.group(2), number))
        return cls(words[1], Direction(words[0]), tuple(conditions))

    def keeps(self, values: dict[str, Any]) -> bool:
        """Whether ``values`` meet every condition (a metric they lack meets none)."""
        for metric, op, bound in self.conditions:
            value = finite(values.get(metric))
            if value is None or not _OPS[op](value, bound):
                return False
        return True

    def __str__(self) -> str:
        where = " and ".join(f"{m} {op} {b:g}" for m, op, b in self.conditions)
        return f"{self.direction.value} {self.metric}" + (f" where {where}" if where else "")


def pick_all(front: Sequence[S], rule: str | Callable[[list[S]], Any], name: str = "") -> list[S]:
    """The front members ``rule`` keeps, best first by it (a callable's choice as it returned it).
    A TuneloopError saying why when it keeps none."""
    members = list(front)
    if not members:
        raise TuneloopError(f"Study {short(name)} has no feasible completed trial, so no front to pick from; run it "
                            f"first.")
    if callable(rule):
        chosen = rule(list(members))
        chosen = list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]
        ids = {id(m) for m in members}
        if not chosen or any(id(c) not in ids for c in chosen):
            raise ConfigError("A pick function takes the front (a list of trials) and returns one of them, or a list "
                              "of them best first.")
        return chosen
    parsed = Rule.parse(rule)
    known = {k for m in members for k in m.values}
    for metric in [parsed.metric, *(c[0] for c in parsed.conditions)]:
        if metric not in known:
            raise ConfigError(f"The pick rule names {short(metric)}, which no front member reported; its metrics are "
                              f"{', '.join(short(k) for k in sorted(known)[:12])}.")
    kept = [m for m in members if parsed.keeps(m.values) and finite(m.values.get(parsed.metric)) is not None]
    if not kept:
        raise TuneloopError(f"No member of the front of {short(name)} meets {parsed}; {len(members)} front members, "
                            f"none within those bounds: loosen them (tuneloop best STUDY lists the front).")
    return parsed.direction.sorted(kept, key=lambda m: float(m.values[parsed.metric]))


def pick(front: Sequence[S], rule: str | Callable[[list[S]], Any], name: str = "") -> S:
    """The one front member ``rule`` chooses first."""
    return pick_all(front, rule, name)[0]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


