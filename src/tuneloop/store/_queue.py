"""Enqueued trials and the leases of ask/tell clients (a part of ``Store``).

An enqueued configuration (``study.enqueue``, ``tuneloop enqueue``) is a ``queued`` trial: it takes
its number when it is enqueued, holds the parameters it was given (possibly only some of them) and
no lease. Whoever runs the study next (a driver, a worker, ``study.ask``) claims it with
:meth:`QueueMixin.claim_queued`, which writes the complete parameters, the lease and the running
state in one transaction, so a queued trial is never half-claimed and never claimed twice.
Take-overs leave queued trials alone: they wait for a claim, not for a dead driver.

An ask/tell client that exits at once (``tuneloop ask`` in a shell loop) cannot renew a lease; its
lease is held until a time in the future (:class:`HeldLease`), so drivers see it as live until
then plus their own staleness, and take the trial over after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, update

from tuneloop.errors import StorageError
from tuneloop.store import schema
from tuneloop.store._leases import _LAST_NUMBER, Lease, _insert_new
from tuneloop.store._retry import retrying
from tuneloop.store._rows import dumps
from tuneloop.store.records import TrialState


@dataclass(frozen=True)
class HeldLease(Lease):
    """A lease that stays live for ``hold`` seconds after each claim or renewal without a heartbeat
    thread: what a client that exits between ask and tell holds."""

    hold: float = 3600.0

    def row(self, now: float) -> dict[str, Any]:
        return {**super().row(now), "heartbeat_at": now + self.hold}


class QueueMixin:
    """Enqueuing trials, claiming queued ones, holding a client's leases."""

    url: str

    if TYPE_CHECKING:  # provided by Store
        def _write(self) -> Any: ...

    @retrying
    def enqueue_trial(self, study_id: int, params: dict[str, Any], seed_of: Callable[[int], int]) -> tuple[int, int]:
        """A queued trial with the study's next free number and ``params`` (possibly partial): (id, number)."""
        for _ in range(1000):  # each turn lost to another driver's insert means a new trial exists
            with self._write() as conn:
                top = conn.execute(_LAST_NUMBER, {"study_id": study_id}).scalar()
                number = 0 if top is None else int(top) + 1
                trial = {"study_id": study_id, "number": number, "state": TrialState.QUEUED.value,
                         "params": dumps(params), "seed": seed_of(number), "attempt": 0, "created_at": time.time(),
                         "started_at": None}
                trial_id = _insert_new(conn, schema.trials, trial, ("study_id", "number"))
                if trial_id is not None:
                    return int(trial_id), number
        raise StorageError(f"Cannot enqueue a trial in {self.url}: other drivers kept taking the numbers.")

    @retrying
    def claim_queued(self, trial_id: int, params: Mapping[str, Any], lease: Lease) -> bool:
        """The queued trial ``trial_id`` running with its complete ``params``, leased to ``lease``, in one
        transaction; False when another driver claimed it first (or it is no longer queued)."""
        t, lt = schema.trials, schema.leases
        now = time.time()
        with self._write() as conn:
            if _insert_new(conn, lt, {"trial_id": trial_id, **lease.row(now)}, ("trial_id",)) is None:
                return False
            started = conn.execute(update(t).where(t.c.id == trial_id, t.c.state == TrialState.QUEUED.value)
                                   .values(state=TrialState.RUNNING.value, params=dumps(dict(params)),
                                           started_at=now)).rowcount
            if started != 1:
                conn.execute(delete(lt).where(lt.c.trial_id == trial_id, lt.c.owner == lease.owner))
        return started == 1

    @retrying
    def hold_leases(self, lease: HeldLease, trial_ids: Sequence[int] | None = None) -> int:
        """Renew a held lease: live again for ``lease.hold`` seconds (a client's report); how many it holds."""
        lt = schema.leases
        stmt = update(lt).where(lt.c.owner == bindparam("holder"))
        if trial_ids is not None:
            stmt = stmt.where(lt.c.trial_id.in_(list(trial_ids)))
        with self._write() as conn:
            return int(conn.execute(stmt.values(heartbeat_at=time.time() + lease.hold),
                                    {"holder": lease.owner}).rowcount)
