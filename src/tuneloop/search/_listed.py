"""Exactly these configurations, in order: finalize's retraining runs, or a user's own list.

On resume the driver replays stored trials into ``tell`` (without a token); each replayed
configuration is struck off the list once, so a rerun asks only for what is still missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tuneloop.search._base import Outcome, Proposal, Searcher
from tuneloop.store import TrialState


class Listed(Searcher):
    """Proposes each configuration of ``configs`` once, then is exhausted."""

    ends_by_itself = True

    def __init__(self, configs: Sequence[Mapping[str, Any]], *, retry_failed: bool = False) -> None:
        """``retry_failed``: a replayed run that failed or was pruned does not strike its configuration off
        (it is run again); by default every replayed run does."""
        self._queue = [dict(c) for c in configs]
        self._retry_failed = retry_failed

    def ask(self, n: int = 1) -> list[Proposal]:
        out, self._queue = self._queue[:n], self._queue[n:]
        return [Proposal(p, token="listed") for p in out]

    def tell(self, outcome: Outcome) -> None:
        if outcome.token is not None:
            return  # one this searcher proposed: already off the list
        if self._retry_failed and outcome.state in (TrialState.FAILED, TrialState.PRUNED):
            return
        key = _key(outcome.params)
        for i, params in enumerate(self._queue):
            if _key(params) == key:
                del self._queue[i]
                return


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
