"""The morning report's data: a night of jobs, idea tests and decisions read back in order, with
durations, intervals and p-values (SQLite and PostgreSQL); an empty store, a store from before the queue and hostile rows
read without an error; reading never writes."""

import json
import math
import sqlite3
import time
from pathlib import Path

import pytest
from night import HOURS, MARKUP, build_night, spoil
from sqlalchemy import update

from tuneloop.store import Store, schema
from tuneloop.views import morning
from tuneloop.views._morning import NIGHT_GAP_S, TEXT_CHARS


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, storage):
    return storage if request.param == "sqlite" else request.getfixturevalue("postgres")


def read(storage, **kwargs):
    with Store(storage, read_only=True) as store:
        return morning(store, **kwargs)


def test_a_night_reads_back_in_order_with_durations_verdicts_and_decisions(url):
    night = build_night(url)
    m = read(url)
    assert m.window == "latest night" and m.since == pytest.approx(night.started)
    assert [j.title for j in m.jobs] == ["train", "probe", "crash"]  # by start
    for job in m.jobs:
        assert job.duration_s == pytest.approx(HOURS[job.title] * 3600, abs=60)
    assert m.machine_s == pytest.approx(6 * 3600, abs=180)
    crash = m.jobs[2]
    assert (crash.state, crash.exit_code, crash.reason) == ("failed", 1, "exit code 1")
    assert crash.tail[-1] == "RuntimeError: CUDA out of memory" and m.jobs[0].tail == []  # tails of failures only
    assert [j.id for j in m.failed_jobs] == [night.jobs["crash"]]
    assert [(j.title, j.estimate_s, j.reason) for j in m.queued] == [
        ("next", 7560.0, "estimated 2.1 h, 1.4 h left in the window")]

    better, worse = m.verdicts
    assert (better.idea_id, better.verdict, worse.idea_id, worse.verdict) == (night.adopted, "better", night.rejected,
                                                                             "worse")
    diffs = [0.03, 0.025, 0.03]  # variant - baseline, seed by seed
    mean, sd = sum(diffs) / 3, math.sqrt(sum((d - sum(diffs) / 3) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert better.effect == pytest.approx(mean) and better.ci_low == pytest.approx(mean - half)
    assert better.ci_high == pytest.approx(mean + half) and better.seeds == 3 and better.predicted_gain == 0.02
    assert 0 < better.p_value < 0.05 and worse.effect < 0

    assert [(d.idea_id, d.state, d.by_rule) for d in m.decisions] == [
        (night.adopted, "adopted", True), (night.rejected, "rejected", False), (night.broken, "broken", False)]
    broken = m.broken[0]
    assert (broken.check, broken.message, broken.next_step) == ("overfit_batch", "loss stayed at 2.3", "check the labels")
    assert broken.evidence == {"loss": [2.3, 2.3, 2.31]}
    assert [s.idea_id for s in m.chain] == [night.adopted] and m.chain[0].tonight
    assert m.gain_total == pytest.approx(mean) and m.gain_tonight == pytest.approx(mean)
    assert m.calibration["decided"] == 2 and m.calibration["base_rate"] == 0.5 and m.calibration["broken"] == 1
    assert m.calibration["gain_predicted"] == pytest.approx(0.015)
    assert not m.empty and m.notes == []
    assert m.headline == "3 jobs ran (1 failed), 6.0 h; 2 verdicts; adopted 1, rejected 1, broken 1; 1 queued"
    data = m.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["failed_jobs"] == [night.jobs["crash"]] and data["machine_s"] == pytest.approx(m.machine_s)


def test_an_earlier_night_and_a_given_window(storage):
    night = build_night(storage)
    with Store(storage) as store:  # a job of two days ago belongs to another night
        old = store.add_job("check", ["/x/old.py"], "old", files={}, signature="sig")
        store.claim_job(store.job(old.id), "r", 1, time.time() - 2 * 86400)
        store.finish_job(old.id, "r", "done", 0, "ok")
        with store._write() as conn:  # it ended then (finish_job records the time it is called)
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == old.id).values(
                finished_at=time.time() - 2 * 86400 + 600))
    m = read(storage)
    assert "old" not in [j.title for j in m.jobs] and m.since == pytest.approx(night.started)
    assert read(storage, since=time.time() - 1.5 * 3600).window == "given"
    assert [j.title for j in read(storage, since=time.time() - 1.5 * 3600).jobs] == ["train", "probe", "crash"]
    early = read(storage, since=night.started - 10, until=night.started + 10)  # before any idea was tested
    assert early.verdicts == [] and early.decisions == [] and early.chain[0].tonight is False
    assert NIGHT_GAP_S == 7200


def test_the_latest_night_is_the_last_run_of_jobs_without_a_two_hour_gap():
    from types import SimpleNamespace

    from tuneloop.store import JobState
    from tuneloop.views._morning import _night_start

    h = 3600.0

    def job(start, end, state=JobState.DONE):
        return SimpleNamespace(started_at=start, finished_at=end, state=state, heartbeat_at=None)

    # 0-1 h, then a 3 h gap; a long job from 4 h to 9 h beside short ones: no gap after it though 5-5.5 ended early
    jobs = [job(0, h), job(4 * h, 9 * h), job(5 * h, 5.5 * h), job(10 * h, 11 * h)]
    assert _night_start(jobs, 12 * h) == (4 * h, "latest night")
    assert _night_start([*jobs, job(14 * h, None, JobState.RUNNING)], 15 * h) == (14 * h, "latest night")
    assert _night_start([job(0, None, JobState.RUNNING), job(5 * h, 6 * h)], 7 * h) == (0, "latest night")  # still running
    assert _night_start([], 7 * h) == (7 * h - 86400, "last 24 h")


def test_an_empty_store_is_an_empty_morning(storage):
    Store(storage).close()
    m = read(storage)
    assert m.empty and m.window == "last 24 h" and m.jobs == m.queued == m.verdicts == m.decisions == []
    assert m.calibration is None and m.gain_total == 0 and m.notes == []
    assert m.until - m.since == pytest.approx(86400)


def test_a_store_from_before_the_queue_is_an_empty_morning_that_says_so(storage):
    night = build_night(storage)
    path = storage.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("drop table jobs")
    con.execute("update tuneloop_meta set value = '7' where key = 'schema_version'")
    con.commit()
    con.close()
    m = read(storage)
    assert m.jobs == [] and m.queued == [] and "before the queue" in m.notes[0]
    assert [d.idea_id for d in m.decisions] == [night.adopted, night.rejected, night.broken]  # the ideas still read


def test_reading_never_writes(storage):
    build_night(storage)
    path = storage.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        con.execute("pragma wal_checkpoint(truncate)")
    before = Path(path).read_bytes()
    read(storage)
    assert Path(path).read_bytes() == before


def test_hostile_values_never_raise(storage):
    night = build_night(storage, title=MARKUP)
    long = spoil(night)
    m = read(storage)
    assert [j.id for j in m.queued] == [long]  # the corrupt job is left out with a note
    assert any(f"Job {night.jobs['next']} left out" in n for n in m.notes)
    assert any("links of idea" in n for n in m.notes) and any("not JSON" in n for n in m.notes)
    crash = next(j for j in m.jobs if j.id == night.jobs["crash"])
    assert crash.tail[-1] == "last [bold]" and all(len(line) <= TEXT_CHARS for line in crash.tail)
    assert len(m.queued[0].title) == TEXT_CHARS
    hostile = next(v for v in m.verdicts if v.idea_id == night.adopted)
    assert hostile.title == MARKUP and hostile.verdict == MARKUP and len(hostile.message) == TEXT_CHARS
    assert (hostile.effect, hostile.ci_low, hostile.ci_high, hostile.seeds) == (None, None, None, None)
    assert next(d for d in m.decisions if d.idea_id == night.rejected).state == "broken"
    assert any("left out of the calibration" in n for n in m.notes)
    json.dumps(m.to_dict(), allow_nan=False)


def test_a_removed_job_does_not_open_a_window_it_is_not_shown_in(storage):
    """A job that started (a runner that died) and was then removed is not listed under What ran: it
    must not open the window either, or a morning after it reports nothing and hides the night."""
    night = build_night(storage)
    with Store(storage) as store:
        late = store.add_job("run", ["/x/late.py"], "late", files={}, signature="sig")
        store.claim_job(store.job(late.id), "dead-runner", 1, time.time() + 3 * 3600)  # hours after the night
        with store._write() as conn:  # its runner died; it was removed (state only, as remove_job does)
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == late.id).values(state="removed"))
    m = read(storage, until=time.time() + 4 * 3600)
    assert m.since == pytest.approx(night.started) and m.window == "latest night"
    assert [j.title for j in m.jobs] == ["train", "probe", "crash"]


def test_a_running_job_whose_runner_died_counts_up_to_its_last_heartbeat(storage):
    """The machine lost power at 03:00 with a job running: read at 09:00 (before any runner took it over) the
    job still reads 'running', but it stopped at its last heartbeat; its duration and the night's machine time
    must not keep growing until the morning, and a note says so."""
    night = build_night(storage)
    now = time.time()
    with Store(storage) as store:
        job = store.add_job("run", ["/x/lost.py"], "lost", files={}, signature="sig")
        store.claim_job(store.job(job.id), "dead-runner", 1, now - 1800)
        with store._write() as conn:  # its last heartbeat 20 min after it started, 10 min ago
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == job.id).values(heartbeat_at=now - 600))
        live = store.add_job("run", ["/x/live.py"], "live", files={}, signature="sig")
        store.claim_job(store.job(live.id), "live-runner", 1, now - 1200)
        with store._write() as conn:  # a live runner: heartbeat just now
            conn.execute(update(schema.jobs).where(schema.jobs.c.id == live.id).values(heartbeat_at=now))
    m = read(storage, until=now)
    by_title = {j.title: j for j in m.jobs}
    assert by_title["lost"].duration_s == pytest.approx(1200, abs=5)
    assert by_title["live"].duration_s == pytest.approx(1200, abs=5)
    assert any(f"Job {job.id}" in n and "heartbeat" in n for n in m.notes), m.notes
    assert m.since == pytest.approx(night.started)
