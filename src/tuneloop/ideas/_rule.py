"""Adopt-if rules: when an A/B test's verdict adopts the idea by itself (``--adopt-if``).

    rule = AdoptRule.parse("better and p < 0.01")
    rule.holds(comparison)          # True or False; never evaluated as Python

Grammar (read word by word, like ``picking.py``'s rules)::

    rule  := all ("or" all)*
    all   := term ("and" term)*
    term  := "(" rule ")" | VERDICT | FIELD OP NUMBER
    VERDICT := better | worse | inconclusive | same    (same: inconclusive)
    FIELD := p | effect | low | high | seeds           (p_value, effect, ci_low, ci_high, seeds)
    OP    := < | <= | > | >=

A comparison with NaN (too few finite seeds) satisfies no numeric term.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tuneloop.errors import ConfigError

GRAMMAR = ("terms joined by 'and'/'or' (parentheses allowed): better, worse, inconclusive (or same), or "
           "FIELD OP NUMBER with FIELD one of p, effect, low, high, seeds and OP one of <, <=, >, >=; "
           "e.g. 'better and p < 0.01' or 'better and low > 0.002'")
VERDICTS = {"better": "better", "worse": "worse", "inconclusive": "inconclusive", "same": "inconclusive"}
FIELDS = {"p": "p_value", "effect": "effect", "low": "ci_low", "high": "ci_high", "seeds": "seeds"}
OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_TOKEN = re.compile(r"\s*(<=|>=|<|>|\(|\)|[A-Za-z_]+|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
MAX_LENGTH = 500


@dataclass(frozen=True)
class AdoptRule:
    """A parsed adopt-if rule: ``text`` as given, ``tree`` the terms (tuples) it holds."""

    text: str
    tree: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> AdoptRule:
        """Parse ``text``; a rule outside the grammar is a one-line :class:`ConfigError` naming it."""
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_LENGTH:
            raise _bad(text, "it is empty" if isinstance(text, str) and not text.strip() else "not a short text")
        tokens = _tokens(text)
        parser = _Parser(text, tokens)
        tree = parser.rule()
        if parser.at < len(tokens):
            raise _bad(text, f"unexpected {tokens[parser.at]!r}")
        return cls(text.strip(), tree)

    def holds(self, comparison: Any) -> bool:
        """Whether the rule holds for ``comparison`` (a :class:`~tuneloop.ideas.Comparison` or its dict)."""
        values = comparison if isinstance(comparison, dict) else comparison.to_dict()
        return _holds(self.tree, values)

    def __str__(self) -> str:
        return self.text


def _bad(text: Any, why: str) -> ConfigError:
    shown = text[:80] if isinstance(text, str) else text
    return ConfigError(f"The --adopt-if rule {shown!r} cannot be read ({why}); a rule is {GRAMMAR}.")


def _tokens(text: str) -> list[str]:
    out, at, end = [], 0, len(text.rstrip())
    while at < end:
        m = _TOKEN.match(text, at)
        if m is None:
            raise _bad(text, f"unexpected {text[at:].strip()[:20]!r}")
        out.append(m.group(1).lower() if m.group(1)[0].isalpha() else m.group(1))
        at = m.end()
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[str]) -> None:
        self.text, self.tokens, self.at, self.depth = text, tokens, 0, 0

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise _bad(self.text, "it ends too early")
        self.at += 1
        return token

    def rule(self) -> tuple[Any, ...]:
        parts = [self._all()]
        while self._peek() == "or":
            self.at += 1
            parts.append(self._all())
        return parts[0] if len(parts) == 1 else ("or", *parts)

    def _all(self) -> tuple[Any, ...]:
        parts = [self._term()]
        while self._peek() == "and":
            self.at += 1
            parts.append(self._term())
        return parts[0] if len(parts) == 1 else ("and", *parts)

    def _term(self) -> tuple[Any, ...]:
        token = self._take()
        if token == "(":
            self.depth += 1
            if self.depth > 20:
                raise _bad(self.text, "too deeply nested")
            inner = self.rule()
            if self._take() != ")":
                raise _bad(self.text, "a '(' is not closed")
            self.depth -= 1
            return inner
        if token in VERDICTS:
            return ("verdict", VERDICTS[token])
        if token in FIELDS:
            op, number = self._take(), self._take()
            if op not in OPS:
                raise _bad(self.text, f"{token!r} must be followed by <, <=, > or >=, not {op!r}")
            try:
                value = float(number)
            except ValueError:
                raise _bad(self.text, f"{token} {op} needs a number, not {number!r}") from None
            if not math.isfinite(value):
                raise _bad(self.text, f"{number!r} is not a finite number")
            return ("compare", FIELDS[token], op, value)
        raise _bad(self.text, f"unexpected {token!r}")


def _holds(tree: tuple[Any, ...], values: dict[str, Any]) -> bool:
    head = tree[0]
    if head == "or":
        return any(_holds(t, values) for t in tree[1:])
    if head == "and":
        return all(_holds(t, values) for t in tree[1:])
    if head == "verdict":
        return values.get("verdict") == tree[1]
    _, field, op, bound = tree
    value = values.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return bool(OPS[op](value, bound))
