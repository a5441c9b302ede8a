"""The ideas ledger as the dashboard's ideas page and ``tuneloop idea calibration`` read it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tuneloop.export import strict_json
from tuneloop.store import Store


def latest_tests(ledger: Any, ideas: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """Idea id -> its latest A/B test (ideas never tested are left out)."""
    found = {}
    for idea in ideas:
        tests = ledger.tests(idea.id)
        if tests:
            found[idea.id] = tests[-1]
    return found


def measured_effects(latest: Mapping[int, Mapping[str, Any]]) -> dict[int, float]:
    """Idea id -> the effect its latest test measured: what calibration holds the predicted gains against."""
    return {idea_id: test["result"]["effect"] for idea_id, test in latest.items()}


def ideas_view(store: Store) -> dict[str, Any]:
    """The ideas ledger: ranked ideas with their last verdict, the baseline chain, calibration."""
    from tuneloop.ideas import PRIORITY_FORMULA, Ledger, calibration

    ledger = Ledger(store)
    ideas = ledger.ideas()
    latest = latest_tests(ledger, ideas)
    return strict_json({
        "formula": PRIORITY_FORMULA,
        "ideas": [{**i.to_dict(), "priority": i.priority,
                   "verdict": latest[i.id]["result"]["message"] if i.id in latest else None} for i in ideas],
        "chain": ledger.baseline_chain(),
        "calibration": calibration(ideas, measured_effects(latest)).to_dict(),
    })
