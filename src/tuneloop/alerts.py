"""Expected ranges: declarative rules on any logged quantity, checked by the driver.

    rules = [*tl.default_rules(), tl.Rule("val_loss", max=5.0, action="stop")]
    study = tl.Study(..., rules=rules)

A rule matches quantity names with a glob (``"grad_norm"``, ``"act/*"``, ``"*"``). On a scalar
it checks the value; on a histogram it checks one statistic (``stat``: mean, std, min, max,
abs_max, zero_fraction), the non-finite count (``finite=True``) or the fraction of values in a
range (``in_range`` with ``at_least``). A rule fires once per trial and quantity; an alert is
stored with its step and message, and a ``stop`` rule ends the trial: ``diverged`` for a
finiteness rule, ``pruned`` otherwise.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

from tuneloop._validation import check_one_of

STATS = ("abs_max", "max", "mean", "min", "std", "value", "zero_fraction")


@dataclass(frozen=True)
class Rule:
    """One expected range. ``min``/``max`` bound the checked value; ``finite`` fires on NaN/inf;
    ``in_range=(lo, hi)`` with ``at_least=f`` fires when under a fraction f of a histogram's
    values lie in [lo, hi]."""

    pattern: str
    min: float | None = None
    max: float | None = None
    finite: bool = False
    in_range: tuple[float, float] | None = None
    at_least: float | None = None
    stat: str = "value"
    action: str = "warn"
    name: str | None = None
    hint: str = ""

    def __post_init__(self) -> None:
        check_one_of(self.action, ["warn", "stop"], "action", "Rule")
        check_one_of(self.stat, STATS, "stat", "Rule")
        if (self.in_range is None) != (self.at_least is None):
            from tuneloop.errors import ConfigError

            raise ConfigError("A Rule's 'in_range' and 'at_least' go together, e.g. in_range=(0, 1), at_least=0.9.")

    @property
    def label(self) -> str:
        return self.name or self.pattern

    def matches(self, quantity: str) -> bool:
        return fnmatch.fnmatchcase(quantity, self.pattern)

    def check_scalar(self, value: float) -> str | None:
        """Why ``value`` breaks this rule, or None."""
        if not math.isfinite(value):
            return "is not finite" if self.finite else None
        if self.stat != "value":
            return None
        return self._bounds(value)

    def check_histogram(self, summary: dict[str, Any]) -> tuple[float | None, str] | None:
        """(checked value, why) when a histogram summary breaks this rule, or None."""
        if summary.get("nonfinite"):
            return (None, f"holds {summary['nonfinite']} non-finite of {summary['n']} values") if self.finite else None
        if self.in_range is not None and self.at_least is not None:
            fraction = _fraction_in(summary, *self.in_range)
            if fraction is not None and fraction < self.at_least:
                return fraction, f"has {fraction:.0%} of its values in {list(self.in_range)} (expected >= {self.at_least:.0%})"
        if self.stat == "value" or self.stat not in summary.get("stats", {}):
            return None
        value = summary["stats"][self.stat]
        why = self._bounds(value)
        return (value, f"{self.stat} {why}") if why else None

    def _bounds(self, value: float) -> str | None:
        if self.min is not None and value < self.min:
            return f"= {value:.4g} is below {self.min:g}"
        if self.max is not None and value > self.max:
            return f"= {value:.4g} is above {self.max:g}"
        return None


def _fraction_in(summary: dict[str, Any], lo: float, hi: float) -> float | None:
    """Fraction of a histogram's values whose bin centre lies in [lo, hi] (bins are the evidence)."""
    import numpy as np

    if summary.get("low") is None or not summary.get("n"):
        return None
    counts = np.frombuffer(summary["counts"], dtype="<u4")
    edges = np.linspace(summary["low"], summary["high"], len(counts) + 1)
    centres = (edges[:-1] + edges[1:]) / 2 if summary["high"] > summary["low"] else np.full(len(counts), summary["low"])
    return float(counts[(centres >= lo) & (centres <= hi)].sum() / summary["n"])


def default_rules() -> list[Rule]:
    """The built-in expectations every study gets unless told otherwise."""
    return [
        Rule("*", finite=True, action="stop", name="non-finite",
             hint="lower the learning rate, clip gradients (clip=1.0) or look for NaN in the data"),
        Rule("act/*", stat="std", max=100.0, name="exploding activations",
             hint="check the initialization scale; normalization layers keep activations in range"),
        Rule("grad_norm", max=1e3, name="exploding gradient norm",
             hint="clip gradients (clip=1.0) or lower the learning rate"),
        Rule("dead_relu/*", max=0.5, name="dead ReLUs",
             hint="lower the learning rate, or try LeakyReLU/GELU or another initialization"),
        Rule("update_ratio/*", min=1e-4, max=1e-2, name="update-to-weight ratio",
             hint="about 1e-3 is healthy: above, lower the learning rate; below, raise it"),
        Rule("init_loss_ratio", min=0.5, max=2.0, name="loss at initialization",
             hint="it should be near ln(classes) for cross-entropy: check the last layer's scale and the labels"),
    ]


@dataclass(frozen=True)
class Fired:
    """A rule that fired on one quantity."""

    rule: Rule
    quantity: str
    value: float | None
    message: str


_REMEMBERED = 4096  # quantity names whose matching rules a RuleBook keeps


class RuleBook:
    """The rules of one run, with the memory of what already fired (once per trial and quantity)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = list(rules)
        self._fired: set[tuple[int, str, str]] = set()
        self._matching: dict[str, list[Rule]] = {}  # by quantity: a run logs few names, many times each

    def _rules_for(self, quantity: str) -> list[Rule]:
        rules = self._matching.get(quantity)
        if rules is None:
            rules = [rule for rule in self.rules if rule.matches(quantity)]
            if len(self._matching) < _REMEMBERED:  # names made up per step would grow it without end
                self._matching[quantity] = rules
        return rules

    def scalar(self, trial_id: int, quantity: str, value: float) -> list[Fired]:
        out = []
        for rule in self._rules_for(quantity):
            why = rule.check_scalar(value)
            if why:
                out.extend(self._fire(trial_id, rule, quantity, value, f"{quantity} {why}"))
        return out

    def histogram(self, trial_id: int, quantity: str, summary: dict[str, Any]) -> list[Fired]:
        out = []
        for rule in self._rules_for(quantity):
            hit = rule.check_histogram(summary)
            if hit:
                out.extend(self._fire(trial_id, rule, quantity, hit[0], f"{quantity} {hit[1]}"))
        return out

    def _fire(self, trial_id: int, rule: Rule, quantity: str, value: float | None,
              what: str) -> list[Fired]:
        key = (trial_id, rule.label, quantity)
        if key in self._fired:
            return []
        self._fired.add(key)
        message = f"{rule.label}: {what}" + (f"; {rule.hint}" if rule.hint else "")
        return [Fired(rule, quantity, value if value is None or math.isfinite(value) else None, message)]
