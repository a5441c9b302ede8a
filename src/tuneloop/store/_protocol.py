"""``StoreProtocol``: the part of the store a driver runs a study through.

The driver is typed against this, not against :class:`~tuneloop.store.Store`, so what a run
needs from a database is written in one place: claiming trial numbers and leases, replaying what
finished, writing rows and files, finishing trials. ``Store`` (SQLite or PostgreSQL) is the one
implementation; tests/contracts/test_stores.py runs the same suite on both back ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tuneloop.store.records import TrialRecord
    from tuneloop.store.store import Lease

Rows = Mapping[str, Sequence[dict[str, Any]]]  # rows by table, as LogBatch.take() gives them


@runtime_checkable
class StoreProtocol(Protocol):
    """What the driver reads and writes while it runs one study."""

    # -- trials and their leases ---------------------------------------------------------------
    def claim_trial(self, study_id: int, params: dict[str, Any], seed_of: Callable[[int], int], lease: Lease,
                    limit: int | None = None, number: int | None = None) -> tuple[int, int, int] | None:
        """A new running trial with the next free number, leased: (id, number, seed); None past ``limit``."""
        ...

    def take_over(self, study_id: int, lease: Lease, stale_after: float) -> list[int]:
        """Lease the unfinished trials no live driver holds (running ones become interrupted); their ids."""
        ...

    def claim_queued(self, trial_id: int, params: Mapping[str, Any], lease: Lease) -> bool:
        """An enqueued trial running with its complete ``params``, leased; False when another driver got it."""
        ...

    def restart_trial(self, trial_id: int) -> int:
        """An interrupted trial running again as its next attempt; returns the attempt."""
        ...

    def finished_numbers(self, study_id: int) -> dict[int, int]:
        """{trial id: number} of the study's finished trials (one narrow query)."""
        ...

    def repropose(self, trial_id: int, owner: str, params: dict[str, Any]) -> bool:
        """A trial just claimed by ``owner`` (not started yet) with other ``params``; False when it is not that."""
        ...

    def renew_leases(self, owner: str) -> int: ...

    def release_leases(self, owner: str, trial_ids: Iterable[int] | None = None, *,
                       interrupt: bool = False) -> None: ...

    def finish_leased_trial(self, trial_id: int, owner: str, state: str, value: float | None,
                            values: dict[str, float], error: str | None = None, batch: Rows | None = None) -> bool:
        """Record a trial's end with ``batch`` in one transaction; False when another driver took it."""
        ...

    # -- what a run replays --------------------------------------------------------------------
    def trials(self, study_id: int, states: Iterable[str] | None = None,
               numbers: Iterable[int] | None = None) -> list[TrialRecord]: ...

    def trial(self, study_id: int, number: int) -> TrialRecord: ...

    def count_finished(self, study_id: int) -> int: ...


    def series(self, trial_ids: Sequence[int],
               names: Sequence[str] | None = None) -> dict[int, dict[str, list[tuple[int, float]]]]: ...

    def lineage(self, study_id: int) -> dict[int, dict[str, Any]]: ...

    def latest_checkpoint(self, trial_id: int) -> tuple[int, Path] | None: ...

    # -- what a run writes ---------------------------------------------------------------------
    def write_batch(self, batch: Rows, conn: Any = None) -> None: ...

    def add_lineage(self, trial_id: int, member: int, generation: int, parent: int | None, event: str,
                    info: dict[str, Any]) -> None: ...

    def save_artifact(self, study_id: int, study: str, number: int, name: str, step: int, data: bytes,
                      ext: str) -> str: ...
