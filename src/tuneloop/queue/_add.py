"""Queueing a job from code: what ``tuneloop queue add`` does once the arguments are parsed.

    job, seconds = enqueue(store, "idea-test", ["3", "exp.py", "--seeds", "3"])

The arguments are prepared (files made absolute and checked), the job is signed with this user's key,
added at the end of the queue and given its estimate from the store's history. Parsing the arguments as
the job's own command will (a misspelt option) is the caller's part: ``queue add`` does it with the
command line's parser; ``idea plan --queue`` builds arguments it knows to be right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.queue._estimate import estimate
from tuneloop.queue._kinds import kind_of, prepare, sign_job
from tuneloop.queue._kinds import title as default_title


def enqueue(store: Any, kind: str, args: Sequence[str], title: str | None = None) -> tuple[Any, float | None]:
    """Queue a signed job of ``kind`` with ``args`` in ``store`` (opened for writing); returns the job
    (a ``JobRecord``) and its estimate in seconds (None: unknown)."""
    kind_of(kind)
    stored = prepare(kind, list(args))
    files, signature = sign_job(kind, stored)
    if signature is None:
        raise ConfigError("Cannot read or make this user's trust key ($XDG_CONFIG_HOME/tuneloop/trust.key), so the job "
                          "could not be signed and no runner would run it; make that folder writable.")
    job = store.add_job(kind, stored, title or default_title(kind, stored), files=files, signature=signature)
    expected = estimate(store, job)
    if expected is not None:
        store.note_job(job.id, None, expected)
    return job, expected
