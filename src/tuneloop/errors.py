"""Exceptions raised by tuneloop.

The hierarchy, in one place::

    TuneloopError                 every error tuneloop raises on purpose
    ├── ConfigError               a bad argument, space, experiment file or plug-in name (HTTP 400)
    ├── NotFound                  no such study, trial, idea or artifact (HTTP 404)
    ├── StorageError              the store cannot be opened, written or read (HTTP 503)
    │   ├── SchemaVersionError    the database was written by a newer tuneloop
    │   └── NotTuneloopDatabase   the database exists but is not tuneloop's (refused, never changed)
    └── TrialFailed               every trial a result needs failed (finalize found only failed and
                                  diverged trials); ``traceback`` holds the last one's traceback text

``TrialPruned`` is not an error: a trial function may raise it to stop itself early,
exactly like returning after ``trial.should_stop()`` said so.
"""

from __future__ import annotations


class TuneloopError(Exception):
    """Base class of every error tuneloop raises on purpose."""


class ConfigError(TuneloopError, ValueError):
    """A bad argument, search space, experiment file or plug-in name."""


class NotFound(TuneloopError, LookupError):  # noqa: N818 - reads as what it is, like httpx's
    """No study, trial, idea or artifact of that name or number."""


class StorageError(TuneloopError):
    """The store cannot be opened, written or read."""


class SchemaVersionError(StorageError):
    """The database was written by a newer version of tuneloop."""


class NotTuneloopDatabase(StorageError):  # noqa: N818 - public since the first release: kept
    """The database exists but holds another program's tables; tuneloop refuses to change it."""


class TrialFailed(TuneloopError):  # noqa: N818 - the field's name for it, beside TrialPruned
    """The trials a result needs all failed, so there is no result; ``traceback`` holds the last
    trial's formatted traceback (a single failed trial is stored as ``failed``, never raised)."""

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback


class TrialPruned(Exception):  # noqa: N818 - the field's name for it (as in Optuna)
    """Raise inside a trial function to stop it early; the trial ends as ``pruned``."""
