"""The tracker contract: a callback that mirrors each trial of a study to an outside tracker.

A tracker is a :class:`~tuneloop.Callback`; the driver calls its hooks on the driver's own thread,
where every millisecond delays the trials waiting for a verdict. So the base class does only
this there: it copies the event onto a queue. One thread per tracker takes them off in order and
calls the seven methods a tracker implements (:meth:`Tracker.start_study` to
:meth:`Tracker.end_study`), so a slow library call (``wandb.init``, an MLflow server across the
network) never holds up training. A failure to start (a missing package, a bad URI) stops the run
before any trial starts; a failure while mirroring warns once and turns that mirror off, and the
study goes on (tuneloop's store stays the record).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import queue
import re
import threading
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tuneloop._registry import Registry
from tuneloop.callbacks import Callback
from tuneloop.errors import ConfigError

if TYPE_CHECKING:
    from tuneloop.run.driver import RunSummary
    from tuneloop.store import StudyRecord, TrialRecord

_QUEUE = 100_000  # events waiting for a tracker that fell behind; past this the driver waits for it


class Tracker(Callback):
    """Mirror every trial of a run to an outside tracker (TensorBoard, MLflow, W&B...).

    Pass instances to ``study.run(callbacks=[...])``; from the command line, ``tuneloop run exp.py
    --mirror NAME=TARGET``. A subclass declares its registry ``name``, the pip ``extra`` it needs
    and the constructor option ``target`` that ``--mirror NAME=TARGET`` sets, and implements
    :meth:`start_study` to :meth:`end_study`; all but :meth:`start_study` run on the tracker's own
    thread, one at a time, in the order the driver saw the events."""

    name: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    target: ClassVar[str] = ""  # the constructor option that `--mirror NAME=TARGET` sets
    flush_secs: float = 1.0  # flush() runs when no event came for this long

    def __init__(self) -> None:
        self._study: StudyRecord | None = None
        self._failed = False
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def study(self) -> StudyRecord:
        """The study being mirrored (set when a run starts)."""
        if self._study is None:
            raise ConfigError(f"The {self.name} tracker has no study yet: pass it to study.run(callbacks=[...]).")
        return self._study

    # -- what a tracker implements ----------------------------------------------------------
    def start_study(self, study: StudyRecord) -> None:
        """A run of ``study`` begins (on the driver's thread, before any trial): connect, create
        folders or a parent run. Raise :class:`ConfigError` for what the user must fix."""

    def start_trial(self, number: int, params: dict[str, Any]) -> None:
        """Open a run for trial ``number``. A run still open for that number (an attempt whose
        worker died) is ended as interrupted first."""

    def scalars(self, number: int, step: int, values: dict[str, float]) -> None:
        """Record ``values`` (reported or logged) of trial ``number`` at ``step``."""

    def attrs(self, number: int, attrs: dict[str, Any]) -> None:
        """Record attributes of trial ``number`` (device, host, ``Trial.set_attr``)."""

    def end_trial(self, record: TrialRecord) -> None:
        """Close trial ``record.number``'s run with its final state and objective value."""

    def flush(self) -> None:
        """Send what is buffered; called when no event came for ``flush_secs``."""

    def end_study(self) -> None:
        """End every run still open (as interrupted) and release files and connections."""

    # -- the Callback hooks, as the driver calls them ---------------------------------------
    def on_run_start(self, study: StudyRecord, n_trials: int | None, finished: int) -> None:
        self.close()  # runs left open by an interrupted run (Ctrl-C skips on_run_end)
        self._study, self._failed = study, False
        self.start_study(study)
        self._queue = queue.Queue(_QUEUE)
        self._thread = threading.Thread(target=self._work, args=(self._queue,), daemon=True,
                                        name=f"tuneloop-{self.name}-mirror")
        self._thread.start()
        _closed_at_exit(self)

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        self._put(self.start_trial, number, dict(params))

    def on_report(self, number: int, step: int, metrics: dict[str, float]) -> None:
        self._put(self.scalars, number, step, dict(metrics))

    def on_log(self, number: int, step: int, values: dict[str, float]) -> None:
        self._put(self.scalars, number, step, dict(values))

    def on_attrs(self, number: int, attrs: dict[str, Any]) -> None:
        self._put(self.attrs, number, dict(attrs))

    def on_trial_end(self, trial: TrialRecord) -> None:
        self._put(self.end_trial, trial)

    def on_run_end(self, summary: RunSummary) -> None:
        self.close()

    def close(self, timeout: float = 60.0) -> None:
        """Wait (up to ``timeout`` s) until every event is mirrored, end the runs still open and
        release the tracker's files and connections. Called when a run ends, when the next one
        starts, and at interpreter exit; closing twice does nothing."""
        q, thread, self._queue, self._thread = self._queue, self._thread, None, None
        if q is None or thread is None:
            return
        q.put((self.end_study, ()))
        q.put(None)
        thread.join(timeout)
        if thread.is_alive():
            warnings.warn(f"The {self.name} mirror was still sending after {timeout:g} s; it was left to finish "
                          f"in the background (tuneloop's store has every result).", RuntimeWarning, stacklevel=2)

    def _put(self, method: Callable[..., None], *args: Any) -> None:
        q = self._queue
        if q is not None and not self._failed:
            q.put((method, args))

    def _work(self, q: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None]) -> None:
        while True:
            try:
                item = q.get(timeout=self.flush_secs)
            except queue.Empty:
                self._call(self.flush)
                continue
            if item is None:
                return
            self._call(item[0], *item[1])

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        if self._failed:
            return
        try:
            method(*args)
        except Exception as e:  # noqa: BLE001 - a mirror must never be what stops a study
            self._failed = True
            warnings.warn(f"The {self.name} mirror failed and is off for the rest of this run "
                          f"({type(e).__name__}: {str(e).strip()[:300]}); the study goes on and tuneloop's store "
                          f"has every result.", RuntimeWarning, stacklevel=2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


trackers: Registry[Tracker] = Registry("tracker", Tracker)


def from_option(text: str) -> Tracker:
    """A tracker from a ``--mirror`` value: ``NAME=TARGET`` (``tensorboard=runs``,
    ``mlflow=sqlite:///mlflow.db``, ``wandb=my-project``) or ``NAME`` for its defaults."""
    name, sep, value = str(text).partition("=")
    name, value = name.strip(), value.strip()
    target = trackers.declared(name, "target")
    if sep and target and not value:
        raise ConfigError(f"--mirror {name}= needs a value after '=', e.g. --mirror {name}={_EXAMPLES.get(name, 'X')}.")
    return trackers.create({"name": name, target: value} if sep and target else name)


_EXAMPLES = {"tensorboard": "runs", "mlflow": "sqlite:///mlflow.db", "wandb": "my-project"}


def need(module: str, tracker: str, extra: str) -> Any:
    """Import ``module`` for ``tracker``, or raise ConfigError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"The {tracker} tracker needs {module.split('.')[0]} ({e}): "
                          f"pip install 'tuneloop[{extra}]'") from None


# -- untrusted names ---------------------------------------------------------------------------
_UNSAFE_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_segment(text: str, limit: int = 80) -> str:
    """One path segment from untrusted text (a study name): letters, digits, ``._-`` only, no
    leading dot or dash, at most ``limit`` characters. A name that had to change gets a short hash
    of the original, so two names that differ only in unsafe characters keep apart folders."""
    clean = _UNSAFE_SEGMENT.sub("_", text).lstrip(".-")[:limit]
    if clean == text and clean:
        return clean
    return f"{clean}-{_digest(text)}" if clean else f"study-{_digest(text)}"


def inside(root: Path, *segments: str) -> Path:
    """``root/segments...``, checked to resolve inside ``root`` (a last line of defence behind
    :func:`safe_segment`)."""
    base = root.resolve()
    path = base.joinpath(*segments).resolve()
    if not path.is_relative_to(base) or path == base:
        raise ConfigError(f"Refused a tracker folder outside {base}: {path}.")
    return path


def flat_value(value: Any, limit: int = 500) -> str | int | float | bool:
    """A parameter value as a tracker's scalar column: numbers, strings and bools kept, anything
    else (None, a list chosen by a Choice) as JSON text, at most ``limit`` characters."""
    if isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:limit]


def state_of(record: TrialRecord) -> str:
    """The trial's final state as a plain word (completed, pruned, failed, diverged)."""
    return str(getattr(record.state, "value", record.state))


# -- closed at interpreter exit ------------------------------------------------------------------
_OPEN: weakref.WeakSet[Tracker] = weakref.WeakSet()
_LOCK = threading.Lock()


def _closed_at_exit(tracker: Tracker) -> None:
    """Close ``tracker`` at interpreter exit if its run never ended (Ctrl-C, an error). Registered
    again at every run start, after the tracker imported its library, so that it runs before the
    library's own exit hooks (atexit runs the last registered first; wandb's ends its service)."""
    with _LOCK:
        _OPEN.add(tracker)
        atexit.unregister(_close_all)
        atexit.register(_close_all)


def _close_all() -> None:
    for tracker in list(_OPEN):
        try:
            tracker.close(timeout=10.0)
        except Exception:  # noqa: BLE001 - the interpreter is exiting: nothing left to tell
            pass
