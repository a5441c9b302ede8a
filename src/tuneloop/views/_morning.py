"""The morning report's data: what the night shift did, read from the store (``tuneloop morning``,
the dashboard's "Last night" panel, the one-file HTML report).

    from tuneloop.store import Store
    from tuneloop.views import morning

    with Store("tuneloop.db", read_only=True) as store:
        m = morning(store)                  # the latest night; or morning(store, since=t0, until=t1)
    m.jobs, m.verdicts, m.decisions, m.queued, m.to_dict()

The night is found from the queue: the latest run of jobs in which no job started
:data:`NIGHT_GAP_S` or more after every earlier job had ended; its first start is the window's
start (no job ever started: the last 24 hours). The database may come from anyone, so
every row is read on its own: a row that cannot be read is left out with a note, numbers that are
not finite read as None, long texts are clipped. Reading never writes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import inspect, select

from tuneloop.errors import StorageError
from tuneloop.export import strict_json
from tuneloop.store import JobRecord, JobState, Store, schema
from tuneloop.store._jobs import STALE_AFTER

NIGHT_GAP_S = 2 * 3600.0  # a longer pause between two jobs separates two nights
DAY_S = 24 * 3600.0  # the window when no job ever ran
TEXT_CHARS = 500  # a stored title, note or message is clipped to this many characters
TAIL_LINES = 12  # the last lines of a failed job's output the report shows
DECIDED = ("adopted", "rejected", "parked", "broken")


@dataclass(frozen=True)
class JobLine:
    """A job of the queue as the morning report shows it (durations in seconds)."""

    id: int
    kind: str
    title: str
    state: str
    attempts: int
    started_at: float | None
    finished_at: float | None
    duration_s: float | None  # its last attempt's, up to ``until`` while it runs
    exit_code: int | None
    reason: str | None
    estimate_s: float | None
    paused: bool
    tail: list[str]  # the last lines of its output: failed jobs only


@dataclass(frozen=True)
class Verdict:
    """One A/B test of an idea made in the window: effect (positive: better) with its 95% CI."""

    idea_id: int
    title: str
    at: float
    verdict: str
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    seeds: int | None
    predicted_gain: float | None  # the idea's estimate, against the realized ``effect``
    message: str


@dataclass(frozen=True)
class Decision:
    """An idea decided in the window: adopted (``by_rule`` or by hand), rejected, parked or broken."""

    idea_id: int
    title: str
    state: str
    at: float
    by_rule: bool
    note: str | None
    check: str | None = None  # broken: the failing check, its message, evidence and next step
    message: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    next_step: str | None = None


@dataclass(frozen=True)
class ChainStep:
    """An adopted idea in the baseline chain, its measured effect, the cumulative gain, and whether the night adopted it."""

    idea_id: int
    title: str
    effect: float | None
    cumulative: float
    decided_at: float | None
    tonight: bool


@dataclass(frozen=True)
class Morning:
    """The night's summary: every list in the order a person reads it."""

    since: float
    until: float
    window: str  # how ``since`` was chosen: "latest night", "last 24 h" or "given"
    jobs: list[JobLine]  # what ran in the window, by start
    queued: list[JobLine]  # what runs next, in queue order
    queue_paused: bool
    verdicts: list[Verdict]  # by time
    decisions: list[Decision]  # by time
    chain: list[ChainStep]
    calibration: dict[str, Any] | None  # ideas.Calibration.to_dict() over every decided idea; None: none decided
    notes: list[str]  # what could not be read (and was left out), what the database lacks

    @property
    def machine_s(self) -> float:
        """Seconds of jobs run in the window."""
        return sum(j.duration_s or 0.0 for j in self.jobs)

    @property
    def failed_jobs(self) -> list[JobLine]:
        return [j for j in self.jobs if j.state == JobState.FAILED.value]

    @property
    def broken(self) -> list[Decision]:
        return [d for d in self.decisions if d.state == "broken"]

    @property
    def gain_total(self) -> float:
        """The baseline chain's cumulative gain: every adopted idea's measured effect."""
        return self.chain[-1].cumulative if self.chain else 0.0

    @property
    def gain_tonight(self) -> float:
        """What the ideas adopted in the window added to it."""
        return sum(s.effect or 0.0 for s in self.chain if s.tonight)

    @property
    def empty(self) -> bool:
        """Nothing ran, was tested or decided in the window, and nothing is queued."""
        return not (self.jobs or self.queued or self.verdicts or self.decisions)

    @property
    def headline(self) -> str:
        """One plain line (no markup) saying what the night did, for a notification or a log:
        ``4 jobs ran (1 failed), 7.5 h; 2 verdicts; adopted 1, rejected 1, broken 1; 3 queued``."""
        failed = len(self.failed_jobs)
        counts = {state: sum(d.state == state for d in self.decisions) for state in DECIDED}
        decided = ", ".join(f"{state} {n}" for state, n in counts.items() if n) or "nothing decided"
        return (f"{len(self.jobs)} jobs ran{f' ({failed} failed)' if failed else ''}, {self.machine_s / 3600:.1f} h; "
                f"{len(self.verdicts)} verdicts; {decided}; {len(self.queued)} queued")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and infinities as null), the derived totals included."""
        return strict_json({**asdict(self), "machine_s": self.machine_s, "gain_total": self.gain_total,
                            "gain_tonight": self.gain_tonight, "empty": self.empty, "headline": self.headline,
                            "failed_jobs": [j.id for j in self.failed_jobs]})


def morning(store: Store, since: float | None = None, until: float | None = None) -> Morning:
    """The night's summary from ``since`` (default: the start of the latest night) to ``until`` (default: now)."""
    notes: list[str] = []
    until = time.time() if until is None else float(until)
    jobs, has_jobs = _jobs(store, notes)
    if not has_jobs:
        notes.append("This database is from before the queue (no jobs table): no jobs to report.")
    window = "given"
    if since is None:
        since, window = _night_start(jobs, until)
    since = float(since)
    ran = sorted((j for j in jobs if _in_window(j, since, until)), key=lambda j: (j.started_at or 0.0, j.id))
    queued = [j for j in jobs if j.state is JobState.QUEUED]
    notes += [f"Job {j.id} reads running, but its runner's last heartbeat was {(until - (j.heartbeat_at or 0)) / 60:.0f} "
              f"min before the end of the window: it stopped then (its duration counts up to that heartbeat); the next "
              f"tuneloop queue run takes it over." for j in ran if _stopped(j, until)]
    ideas, tests = _ideas(store, notes), _tests(store, notes)
    by_id = {i["id"]: i for i in ideas}
    verdicts = [_verdict(t, by_id) for t in tests if since <= t["created_at"] <= until]
    decisions = [_decision(i, notes) for i in sorted(ideas, key=lambda i: i["decided_at"] or 0.0)
                 if i["state"] in DECIDED and i["decided_at"] is not None and since <= i["decided_at"] <= until]
    effects = _effects(tests)
    return Morning(
        since=since, until=until, window=window,
        jobs=[_line(j, until) for j in ran], queued=[_line(j, until) for j in queued],
        queue_paused=_paused(store, notes) if has_jobs else False,
        verdicts=verdicts, decisions=decisions, chain=_chain(ideas, effects, since, until),
        calibration=_calibration(ideas, effects, notes), notes=notes)


# -- the window ------------------------------------------------------------------------------------
def _night_start(jobs: list[JobRecord], until: float) -> tuple[float, str]:
    """The first start of the latest run of jobs with no gap of NIGHT_GAP_S between one's start and the
    end of every job before it (jobs that ran side by side overlap; removed jobs are not counted); the last
    24 h when none started."""
    # a removed job is shown nowhere: it must not open a window (a morning after it would hide the night)
    started = sorted((j for j in jobs if j.started_at is not None and j.started_at <= until
                      and j.state is not JobState.REMOVED), key=lambda j: j.started_at or 0.0)
    if not started:
        return until - DAY_S, "last 24 h"
    night, reach = 0.0, -math.inf  # the current run's first start, and the latest end seen so far
    for job in started:
        start = job.started_at or 0.0
        if start - reach >= NIGHT_GAP_S:
            night = start
        end = job.finished_at if job.finished_at is not None else \
            _running_end(job, until) if job.state is JobState.RUNNING else start
        reach = max(reach, end)
    return night, "latest night"


def _in_window(job: JobRecord, since: float, until: float) -> bool:
    if job.started_at is None or job.state in (JobState.QUEUED, JobState.REMOVED):
        return False  # a queued job that ran before was interrupted: it shows where it is, queued next
    end = job.finished_at if job.finished_at is not None else until
    return job.started_at <= until and end >= since


def _stopped(job: JobRecord, until: float) -> bool:
    """Whether a job that reads ``running`` stopped: its runner's heartbeat is STALE_AFTER or more older than
    ``until`` (the machine lost power, the runner was killed), and no runner took it over yet."""
    return (job.state is JobState.RUNNING and job.finished_at is None and job.heartbeat_at is not None
            and until - job.heartbeat_at >= STALE_AFTER)


def _running_end(job: JobRecord, until: float) -> float:
    """Where a running job's attempt ends so far: ``until``, or its last heartbeat when its runner stopped."""
    return max(job.heartbeat_at or 0.0, job.started_at or 0.0) if _stopped(job, until) else until


def _line(job: JobRecord, until: float) -> JobLine:
    end = job.finished_at if job.finished_at is not None else (
        _running_end(job, until) if job.state is JobState.RUNNING else None)
    duration = None if job.started_at is None or end is None else max(0.0, end - job.started_at)
    tail = []
    if job.state is JobState.FAILED and job.tail:
        tail = [_clip(line) for line in job.tail.splitlines() if line.strip()][-TAIL_LINES:]
    return JobLine(id=job.id, kind=_clip(job.kind), title=_clip(job.title), state=job.state.value,
                   attempts=job.attempts, started_at=job.started_at, finished_at=job.finished_at, duration_s=duration,
                   exit_code=job.exit_code, reason=None if job.reason is None else _clip(job.reason),
                   estimate_s=job.estimate_s, paused=job.paused, tail=tail)


# -- reading, row by row ------------------------------------------------------------------------------
def _jobs(store: Store, notes: list[str]) -> tuple[list[JobRecord], bool]:
    """Every job that can be read (a corrupt row is left out with a note), and whether there is a jobs table."""
    with store._read() as conn:
        if not inspect(conn).has_table(schema.jobs.name):
            return [], False
    try:
        return store.jobs(), True
    except StorageError:  # a corrupt row: read them one by one, so the others still show
        pass
    with store._read() as conn:
        ids = [r.id for r in conn.execute(select(schema.jobs.c.id).order_by(schema.jobs.c.position, schema.jobs.c.id))]
    found = []
    for job_id in ids:
        try:
            found.append(store.job(job_id))
        except StorageError as exc:
            notes.append(f"Job {job_id} left out: {_clip(exc)}")
    return found, True


def _paused(store: Store, notes: list[str]) -> bool:
    try:
        return store.queue_paused()
    except StorageError as exc:
        notes.append(f"Cannot tell whether the queue is paused: {_clip(exc)}")
        return False


def _rows(store: Store, table: Any) -> list[Any]:
    with store._read() as conn:
        if not inspect(conn).has_table(table.name):
            return []
        return list(conn.execute(select(table).order_by(table.c.id)))


def _ideas(store: Store, notes: list[str]) -> list[dict[str, Any]]:
    """The ideas as plain dicts; a field that cannot be read is None (or empty), with a note."""
    out = []
    for r in _rows(store, schema.ideas):
        links = _json(r.links, f"the links of idea {r.id}", notes)
        out.append({"id": r.id, "title": _clip(r.title), "state": _clip(r.state), "note": _text(r.note),
                    "gain": _number(r.gain), "p": _number(r.p), "hours": _number(r.hours),
                    "actual_hours": _number(r.actual_hours),
                    "decided_at": _number(r.decided_at), "links": links if isinstance(links, list) else []})
    return out


def _tests(store: Store, notes: list[str]) -> list[dict[str, Any]]:
    """The A/B tests by time; one whose result cannot be read is left out with a note."""
    out = []
    for r in _rows(store, schema.idea_tests):
        result, at = _json(r.result, f"the result of test {r.id} (idea {r.idea_id})", notes), _number(r.created_at)
        if not isinstance(result, dict) or at is None:
            if result is not None:
                notes.append(f"Test {r.id} (idea {r.idea_id}) left out: its result or time is not a verdict.")
            continue
        out.append({"id": r.id, "idea_id": r.idea_id, "created_at": at, "result": result})
    return sorted(out, key=lambda t: (t["created_at"], t["id"]))


def _json(raw: Any, what: str, notes: list[str]) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        notes.append(f"Cannot read {what}: it is not JSON; left out.")
        return None


# -- ideas: verdicts, decisions, chain, calibration -------------------------------------------------------
def _verdict(test: dict[str, Any], ideas: dict[int, dict[str, Any]]) -> Verdict:
    r, idea = test["result"], ideas.get(test["idea_id"])
    seeds = r.get("seeds")
    return Verdict(idea_id=test["idea_id"], title=idea["title"] if idea else "(idea removed)", at=test["created_at"],
                   verdict=_clip(r.get("verdict", "?")), effect=_number(r.get("effect")),
                   ci_low=_number(r.get("ci_low")), ci_high=_number(r.get("ci_high")),
                   p_value=_number(r.get("p_value")),
                   seeds=seeds if isinstance(seeds, int) and not isinstance(seeds, bool) and 0 <= seeds < 10**9 else None,
                   predicted_gain=idea["gain"] if idea else None, message=_clip(r.get("message", "")))


def _decision(idea: dict[str, Any], notes: list[str]) -> Decision:
    note, state = idea["note"], idea["state"]
    base = {"idea_id": idea["id"], "title": idea["title"], "state": state, "at": idea["decided_at"],
            "by_rule": state == "adopted" and (note or "").lower().startswith("adopted by rule"), "note": note}
    if state != "broken":
        return Decision(**base)
    link = next((x["broken"] for x in reversed(idea["links"]) if isinstance(x, dict) and isinstance(x.get("broken"), dict)),
                None)
    if link is None:  # no link entry: what the note says ("failed check NAME: MESSAGE")
        check, _, message = (note or "").removeprefix("failed check ").partition(": ")
        return Decision(**base, check=_clip(check) or None, message=_clip(message) or None)
    evidence = link.get("evidence")
    if evidence is not None and not isinstance(evidence, dict):
        notes.append(f"The evidence of broken idea {idea['id']} is not an object; left out.")
    return Decision(**base, check=_text(link.get("check")), message=_text(link.get("message")),
                    evidence=_plain(evidence) if isinstance(evidence, dict) else {},
                    next_step=_text(link.get("next_step")))


def _effects(tests: list[dict[str, Any]]) -> dict[int, float]:
    """Idea id -> the effect of its latest test (finite ones only)."""
    out = {}
    for t in tests:
        effect = _number(t["result"].get("effect"))
        if effect is not None:
            out[t["idea_id"]] = effect
        else:
            out.pop(t["idea_id"], None)
    return out


def _chain(ideas: list[dict[str, Any]], effects: dict[int, float], since: float, until: float) -> list[ChainStep]:
    """As ``Ledger.baseline_chain``: the adopted ideas by adoption time, each with its latest test's effect."""
    chain, total = [], 0.0
    for idea in sorted((i for i in ideas if i["state"] == "adopted"), key=lambda i: i["decided_at"] or 0.0):
        effect = effects.get(idea["id"])
        total += effect or 0.0
        at = idea["decided_at"]
        chain.append(ChainStep(idea["id"], idea["title"], effect, total, at, at is not None and since <= at <= until))
    return chain


def _calibration(ideas: list[dict[str, Any]], effects: dict[int, float], notes: list[str]) -> dict[str, Any] | None:
    """``ideas.calibration`` over every decided idea whose estimates read back (broken ones are counted
    apart, not scored); None when no idea was decided."""
    from tuneloop.ideas import Idea, IdeaState, calibration

    decided = [i for i in ideas if i["state"] in ("adopted", "rejected")]
    usable = [i for i in decided if i["p"] is not None and 0 <= i["p"] <= 1 and i["gain"] is not None
              and i["hours"] is not None and i["hours"] > 0]
    broken = [i for i in ideas if i["state"] == "broken"]
    if len(usable) < len(decided):
        notes.append(f"{len(decided) - len(usable)} decided ideas left out of the calibration: their estimates "
                     f"are not numbers.")
    if not usable and not broken:
        return None
    return calibration([Idea(id=i["id"], title=i["title"], state=IdeaState(i["state"]), hours=i["hours"] or 1.0,
                             complexity=1, gain=i["gain"] or 0.0, p=i["p"] or 0.0, actual_hours=i["actual_hours"])
                        for i in usable + broken], effects).to_dict()


# -- values from an untrusted database ----------------------------------------------------------------------
def _number(value: Any) -> float | None:
    """A finite real number as a float; anything else (text, NaN, inf, a bool, an int past floats) None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _clip(value: Any, limit: int = TEXT_CHARS) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any) -> str | None:
    return None if value is None else _clip(value)


def _plain(value: Any, depth: int = 0) -> Any:
    """Evidence as short, JSON-ready data: texts clipped, at most 50 entries a level, 4 levels deep."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _number(value) if isinstance(value, float) or abs(value) > 2**53 else value
    if depth >= 4:
        return _clip(json.dumps(value, default=str), 200) if isinstance(value, (dict, list)) else _clip(value)
    if isinstance(value, dict):
        return {_clip(k, 100): _plain(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value[:50]]
    return _clip(value)
