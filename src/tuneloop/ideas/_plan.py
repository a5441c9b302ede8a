"""``idea plan``: fill a window of machine hours with the ideas worth testing tonight.

    plan = plan_night(ledger, store, "exp.py", study_name="mlp", hours=8, seeds=3)
    [e.idea.id for e in plan.planned]

Candidates are the ledger's ``proposed`` ideas and the ``testing`` ones never A/B tested. Only an idea
with a config (its overrides) can be tested without a person; the others are listed as such. Each
candidate's machine time is what the queue estimates for its ``idea-test`` job (:func:`tuneloop.queue.estimate`:
the baseline study's mean trial duration x seeds x 2 arms / workers, plus the check ladder's time when the
store knows it: the idea's last ladder, else the study's stored checks). The
idea's own ``hours`` is the researcher's estimate of the work and is not machine time: it is shown,
never used here.

Order: expected gain per machine hour, ``p x gain / machine hours``, highest first; then a greedy fill:
an idea that does not fit the time left stays out with the reason and the next one is tried. An idea
whose time is unknown (no history) is planned after the known ones, and said to be unknown. An idea
whose ``idea-test`` job on the same file is still queued or running is left out ("already queued"), so
planning again does not test it twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from tuneloop._validation import fail
from tuneloop.errors import ConfigError
from tuneloop.ideas._ledger import Idea, IdeaState, Ledger, finite

NOTE_CHARS = 200  # a broken idea's note (the failed check's message) in the plan's reasons


@dataclass(frozen=True)
class Entry:
    """One candidate: its machine seconds (None: unknown), gain per machine hour, and why it is out."""

    idea: Idea
    seconds: float | None
    per_hour: float | None
    reason: str | None = None

    @property
    def hours(self) -> float | None:
        return None if self.seconds is None else self.seconds / 3600


@dataclass(frozen=True)
class Plan:
    """The night's plan: what runs in order, what was left out and why, and what needs a person."""

    hours: float
    seeds: int
    workers: int
    planned: list[Entry] = field(default_factory=list)
    left_out: list[Entry] = field(default_factory=list)
    untestable: list[tuple[Idea, str]] = field(default_factory=list)

    @property
    def planned_hours(self) -> float:
        """The known machine hours of the planned ideas (unknown estimates count as nothing)."""
        return sum(e.hours or 0.0 for e in self.planned)

    @property
    def unknown(self) -> int:
        return sum(e.seconds is None for e in self.planned)


def job_args(idea_id: int, file: str, seeds: int, workers: int, adopt_if: str | None = None) -> list[str]:
    """The ``idea-test`` job's arguments for one planned idea (what ``--queue`` queues)."""
    args = [str(idea_id), str(file), "--seeds", str(seeds), "--workers", str(workers)]
    return [*args, "--adopt-if", adopt_if] if adopt_if is not None else args


def plan_night(ledger: Ledger, store: Any, file: str, *, study_name: str, hours: float, seeds: int = 3,
               workers: int = 1) -> Plan:
    """Plan ``hours`` of machine time for the ideas of ``ledger`` tested on the study ``study_name`` run
    from the experiment ``file`` (an absolute path, as a queued job names it); ``store`` is read only."""
    if not (finite(hours) and hours > 0):
        raise fail("hours", "idea plan", "a positive number of machine hours", hours)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise fail("seeds", "idea plan", "an integer of 2 or more (3-5 is usual)", seeds)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise fail("workers", "idea plan", "a positive integer", workers)
    ideas = ledger.ideas()
    if not ideas:
        raise ConfigError(f"The ideas ledger in {ledger.store.url} is empty: add ideas first (tuneloop idea add TITLE "
                          f"--config NAME=VALUE, or tuneloop idea seed-catalog).")
    record = store.get_study(study_name)
    if record is None:
        raise ConfigError(f"No study {study_name!r} in {store.url} yet: run it first (tuneloop run {file}), so the "
                          f"A/B tests have a baseline to start from.")
    plan = Plan(hours=float(hours), seeds=seeds, workers=workers)
    queued = _queued_tests(store, file)
    candidates = []
    for idea in ideas:
        if idea.state == IdeaState.BROKEN:
            note = idea.note or "a failed check"  # a check's message can be long (or forged): cut like a title
            note = note if len(note) <= NOTE_CHARS else note[:NOTE_CHARS - 1] + "…"
            plan.untestable.append((idea, f"broken ({note}): fix it, then tuneloop idea test {idea.id} FILE"))
        elif idea.state == IdeaState.PROPOSED or (idea.state == IdeaState.TESTING and not ledger.tests(idea.id)):
            if not idea.config:
                plan.untestable.append((idea, (f"no config; set one with tuneloop idea edit {idea.id} --config "
                                              f"NAME=VALUE,...")))
            elif idea.id in queued:  # planned (and queued) before: testing it twice would waste the night
                plan.left_out.append(Entry(idea, None, None, f"already queued as job {queued[idea.id]}"))
            else:
                candidates.append(_entry(store, idea, file, seeds, workers))
    known = sorted((e for e in candidates if e.seconds is not None),  # ties (0 s: all infinite) by p x gain
                   key=lambda e: (-(e.per_hour or 0.0), -(e.idea.p * e.idea.gain), e.seconds, e.idea.id))
    unknown = [e for e in candidates if e.seconds is None]  # ledger order: priority first
    left = plan.hours * 3600
    for e in known:
        if e.seconds is not None and e.seconds <= left:
            plan.planned.append(e)
            left -= e.seconds
        else:
            plan.left_out.append(Entry(e.idea, e.seconds, e.per_hour,
                                       f"needs {_h(e.seconds)}, {_h(left)} left in the window"))
    plan.planned.extend(Entry(e.idea, None, None, "estimate unknown (no history yet): planned anyway")
                        for e in unknown)
    return plan


def _queued_tests(store: Any, file: str) -> dict[int, int]:
    """Idea id -> the id of its idea-test job on ``file`` still queued or running (the first in queue order)."""
    from tuneloop.errors import StorageError
    from tuneloop.store import JobState

    try:
        jobs = store.jobs([JobState.QUEUED.value, JobState.RUNNING.value])
    except StorageError:  # a corrupt job row: the queue cannot tell, so nothing counts as queued
        return {}
    found: dict[int, int] = {}
    for job in jobs:
        if (job.kind == "idea-test" and len(job.args) >= 2 and job.args[0].isdecimal() and len(job.args[0]) <= 9
                and job.args[1] == file):
            found.setdefault(int(job.args[0]), job.id)
    return found


def _entry(store: Any, idea: Idea, file: str, seeds: int, workers: int) -> Entry:
    from tuneloop.queue import estimate

    seconds = estimate(store, SimpleNamespace(kind="idea-test", args=job_args(idea.id, file, seeds, workers)))
    if seconds is None:
        return Entry(idea, None, None)
    expected = idea.p * idea.gain
    return Entry(idea, seconds, expected / (seconds / 3600) if seconds > 0 else math.inf if expected > 0 else 0.0)


def _h(seconds: float | None) -> str:
    return "an unknown time" if seconds is None else machine_time(seconds)


def machine_time(seconds: float) -> str:
    """Seconds in the runner's own words for a window's time (``12 min``, ``3.0 h``), short even for a
    forged ladder time of 1e300 s (``:.1f`` would print every digit)."""
    from tuneloop.queue import duration

    seconds = max(seconds, 0.0)
    return duration(seconds) if seconds < 3600 * 1e6 else f"{seconds / 3600:.3g} h"
