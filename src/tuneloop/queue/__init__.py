"""The night shift's queue: tuneloop commands queued in the store and run one after another.

``_kinds`` says what a job may run (the allowlist) and vouches for it (its signature); ``_estimate``
says how long it will take from history; ``_runner`` runs the queue (``tuneloop queue run``). The
queue itself lives in the store (``store/_jobs.py``)."""

from tuneloop.queue._add import enqueue
from tuneloop.queue._estimate import estimate
from tuneloop.queue._kinds import KINDS, check_args, command, kind_of, prepare, refusal, sign_job, title
from tuneloop.queue._runner import Runner, Summary, duration, window_end

__all__ = ["KINDS", "Runner", "Summary", "check_args", "command", "duration", "enqueue", "estimate", "kind_of", "prepare",
           "refusal", "sign_job", "title", "window_end"]
