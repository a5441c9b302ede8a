"""How good are the researcher's predictions? Scored over decided ideas (adopted or rejected).

A broken idea (its variant failed the check ladder before its A/B test) is not scored: a broken
implementation says nothing about whether the idea works. It is counted apart (``broken``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tuneloop.ideas._ledger import Idea


@dataclass(frozen=True)
class Calibration:
    """Brier score, base rate, and predicted against realized gain and hours."""

    decided: int
    base_rate: float | None  # the fraction of decided ideas that were adopted
    brier: float | None  # mean (p - outcome)^2: 0 is perfect, 0.25 is always saying 50%
    brier_base_rate: float | None  # what always predicting the base rate would score
    gain_predicted: float | None  # mean predicted gain of ideas with a measured effect
    gain_realized: float | None
    hours_ratio: float | None  # actual / estimated hours, over ideas with both
    broken: int = 0  # ideas whose variant failed the check ladder: not scored, listed apart

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration(ideas: Sequence[Idea], effects: dict[int, float]) -> Calibration:
    """``effects``: the measured effect of each tested idea (its last A/B test), by idea id."""
    decided = [i for i in ideas if i.state in ("adopted", "rejected")]
    broken = sum(i.state == "broken" for i in ideas)
    if not decided:
        return Calibration(0, None, None, None, None, None, None, broken)
    outcomes = [1.0 if i.state == "adopted" else 0.0 for i in decided]
    rate = sum(outcomes) / len(outcomes)
    brier = sum((i.p - o) ** 2 for i, o in zip(decided, outcomes, strict=True)) / len(decided)
    brier_rate = sum((rate - o) ** 2 for o in outcomes) / len(outcomes)
    measured = [i for i in decided if i.id in effects]
    timed = [i for i in decided if i.actual_hours]
    return Calibration(
        decided=len(decided), base_rate=rate, brier=brier, brier_base_rate=brier_rate,
        gain_predicted=sum(i.gain for i in measured) / len(measured) if measured else None,
        gain_realized=sum(effects[i.id] for i in measured) / len(measured) if measured else None,
        hours_ratio=sum(i.actual_hours or 0 for i in timed) / sum(i.hours for i in timed) if timed else None,
        broken=broken,
    )
