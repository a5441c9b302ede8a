"""How long a job will take, from what the store already holds (None: unknown).

- ``run FILE --trials N``: the study's mean duration of finished trials x the trials still to run / workers;
- ``idea-test ID FILE``: the baseline study's mean trial duration x seeds x 2 arms / workers, plus the
  variant's check ladder (unless ``--no-checks``): the idea's last ladder's seconds, else the study's last
  stored checks', when known;
- ``finalize STUDY``: (top x seeds + rerank x rerank-seeds) x the study's mean trial duration / workers;
- otherwise (probes, checks, a study with no finished trial yet): the last time the same job ran to the end.

A study is found by the experiment file it was run from (the path every study records), or by
``--study``; the one created first when several were run from that file. Workers not given count
as one, so an estimate errs long. Reading only: nothing is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import select

from tuneloop.errors import ConfigError
from tuneloop.queue._kinds import _option, check_args, kind_of
from tuneloop.store import schema
from tuneloop.store.records import JobState, TrialState


class _Job(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def args(self) -> list[str]: ...


def estimate(store: Any, job: _Job) -> float | None:
    """The expected seconds ``job`` runs for, from ``store``'s history; None when it is unknown. The
    job may be an unsigned row from someone else's database (it is refused later, not here) and the
    history may be corrupt: any error while estimating means unknown, never a crash."""
    try:
        guess = _estimate(store, job)
    except Exception:  # noqa: BLE001 - untrusted rows: an estimate is a hint, unknown is always safe
        return None
    return guess if guess is not None and math.isfinite(guess) and guess >= 0 else None


def _estimate(store: Any, job: _Job) -> float | None:
    try:
        check_args(job.kind, job.args)
    except ConfigError:
        return None
    n = len(kind_of(job.kind).positionals)
    first, options = job.args[:n], job.args[n:]
    guess = None
    if job.kind == "run":
        guess = _run(store, first[0], options)
    elif job.kind == "idea-test":
        study = _study_of(store, first[1], None)
        mean = _mean_trial(store, study)
        guess = None if mean is None else mean * _int(options, 3, "--seeds") * 2 / _int(options, 1, "--workers")
        if guess is not None and "--no-checks" not in options:
            guess += _ladder(store, _whole(first[0], 0), study) or 0.0
    elif job.kind == "finalize":
        mean = _mean_trial(store, store.get_study(first[0]))
        runs = _int(options, 3, "--top") * _int(options, 5, "--seeds")
        runs += _int(options, 0, "--rerank") * _int(options, 3, "--rerank-seeds")
        guess = None if mean is None else mean * runs / _int(options, 1, "--workers")
    return guess if guess is not None else _last_run(store, job)


def _run(store: Any, path: str, options: Sequence[str]) -> float | None:
    study = _study_of(store, path, _option(options, "--study"))
    mean = _mean_trial(store, study)
    if study is None or mean is None:
        return None
    budget = study.config.get("n_trials")
    target = _int(options, 0, "--trials", "-n") or _whole(budget if isinstance(budget, (str, int)) else None, 0)
    if not target:
        return None  # the study's own budget decides: unknown
    left = max(target - store.count_finished(study.id), 0)
    return mean * left / _int(options, 1, "--workers")


def _study_of(store: Any, path: str, name: str | None) -> Any:
    """The stored study an experiment file runs (``name`` when given), or None."""
    if name is not None:
        return store.get_study(name)
    found = [store.get_study(n) for n, config in store.study_configs().items() if config.get("experiment") == path]
    found = [s for s in found if s is not None]
    return min(found, key=lambda s: s.created_at) if found else None


def _mean_trial(store: Any, study: Any) -> float | None:
    """The mean seconds of the study's completed and pruned trials, or None without any."""
    if study is None:
        return None
    durations = [t.duration for t in store.trials(study.id, states=[TrialState.COMPLETED.value,
                                                                    TrialState.PRUNED.value])]
    known = [d for d in durations if d is not None and d >= 0]
    return sum(known) / len(known) if known else None


def _ladder(store: Any, idea_id: int, study: Any) -> float | None:
    """The seconds a variant's check ladder takes: the idea's last one (its ``checks`` link, which
    ``idea test`` writes), else the study's last stored ``tuneloop check``; None when neither is known."""
    try:
        with store._read() as conn:
            raw = conn.execute(select(schema.ideas.c.links).where(schema.ideas.c.id == idea_id)).scalar()
        links = json.loads(raw) if isinstance(raw, str) and len(raw) < 1_000_000 else []
        own = [link["checks"].get("seconds") for link in links if isinstance(link, dict)
               and isinstance(link.get("checks"), dict)] if isinstance(links, list) else []
        if own and _seconds(own[-1]):
            return float(own[-1])
        checks = store.latest_checks(study.id)["checks"] if study is not None else []
        total = sum(float(c["seconds"]) for c in checks if isinstance(c, dict) and _seconds(c.get("seconds")))
    except Exception:  # noqa: BLE001 - a hint from possibly corrupt history: unknown is safe
        return None
    return total if checks and math.isfinite(total) else None


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _last_run(store: Any, job: _Job) -> float | None:
    """How long the same job (kind and arguments) took the last time it ran to the end in one attempt."""
    same = [j for j in store.jobs([JobState.DONE.value]) if j.kind == job.kind and j.args == job.args
            and j.attempts == 1 and j.started_at is not None and j.finished_at is not None]
    if not same:
        return None
    last = max(same, key=lambda j: j.finished_at)
    return float(last.finished_at - last.started_at)


def _int(options: Sequence[str], default: int, *names: str) -> int:
    """A whole-number option's value (``default`` when absent or not a positive whole number)."""
    return _whole(_option(options, *names), default)


_DIGITS = frozenset("0123456789")


def _whole(value: str | int | None, default: int) -> int:
    """``value`` as a positive whole number of at most 9 digits (ASCII only: ``"²".isdigit()`` is true
    but ``int("²")`` fails; a bool is not a number); ``default`` otherwise."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value if 0 < value < 10**9 else default
    if value is None or not 0 < len(value) <= 9 or not set(value) <= _DIGITS:
        return default
    return int(value) or default
