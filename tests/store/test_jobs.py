"""The job queue in the store (issue 22), on SQLite and PostgreSQL: adding, ordering, pausing,
removing, and claiming jobs so that no job is ever claimed by two runners; a dead runner's job is
taken over as its next attempt; only the holder heartbeats or finishes it; reading never writes."""

import sqlite3
import time

import pytest
from sqlalchemy import update

from tuneloop.errors import ConfigError, NotFound, StorageError
from tuneloop.store import JobState, Store, schema


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, storage):
    return storage if request.param == "sqlite" else request.getfixturevalue("postgres")


@pytest.fixture
def store(url):
    with Store(url) as s:
        yield s


def add(store, name):
    return store.add_job("run", [f"/x/{name}.py", "--trials", "3"], name, files={f"/x/{name}.py": "ab"},
                         signature="sig")


def queued(store):
    return [j.title for j in store.jobs([JobState.QUEUED])]


def test_jobs_are_added_at_the_end_and_read_back_as_stored(store):
    a, b = add(store, "a"), add(store, "b")
    assert a.position < b.position and queued(store) == ["a", "b"]
    got = store.job(a.id)
    assert got == a and got.state is JobState.QUEUED and got.args == ["/x/a.py", "--trials", "3"]
    assert got.files == {"/x/a.py": "ab"} and got.signature == "sig" and got.attempts == 0 and not got.paused
    with pytest.raises(NotFound, match="No job 99"):
        store.job(99)


def test_jobs_move_to_a_place_or_before_another(store):
    a, b, c = (add(store, n) for n in "abc")
    store.move_job(c.id, to=1)
    assert queued(store) == ["c", "a", "b"]
    store.move_job(c.id, before=b.id)
    assert queued(store) == ["a", "c", "b"]
    store.move_job(a.id, to=99)  # past the end: last
    assert queued(store) == ["c", "b", "a"]
    for _ in range(80):  # more halvings than a float holds: the queued jobs are renumbered, order kept
        store.move_job(a.id, before=b.id)
        store.move_job(b.id, before=a.id)
    assert queued(store) == ["c", "b", "a"]
    with pytest.raises(ConfigError, match="either --to"):
        store.move_job(a.id)
    with pytest.raises(ConfigError, match="not another queued job"):
        store.move_job(a.id, before=a.id)
    with pytest.raises(NotFound):
        store.move_job(42, to=1)


def test_a_paused_queue_or_job_is_not_claimed(store):
    a, b = add(store, "a"), add(store, "b")
    store.pause_queue()
    store.pause_queue()  # twice is once
    assert store.queue_paused() and store.claim_next("r1", 1, time.time(), 60) is None
    store.pause_queue(False)
    store.pause_job(a.id)
    assert store.job(a.id).paused
    assert store.claim_next("r1", 1, time.time(), 60).id == b.id
    store.pause_job(a.id, False)
    assert store.claim_next("r1", 1, time.time(), 60).id == a.id
    with pytest.raises(ConfigError, match="only a queued job"):
        store.pause_job(a.id)


def test_a_running_job_cannot_be_removed(store):
    a, b = add(store, "a"), add(store, "b")
    store.claim_next("r1", 1, time.time(), 60)
    with pytest.raises(ConfigError, match=f"Job {a.id} is running"):
        store.remove_job(a.id)
    store.remove_job(b.id)
    assert store.job(b.id).state is JobState.REMOVED and queued(store) == []
    with pytest.raises(NotFound):
        store.remove_job(77)


def test_a_job_is_claimed_once_and_only_its_holder_beats_or_finishes_it(store):
    a, b = add(store, "a"), add(store, "b")
    seen = store.claimable_jobs(time.time(), 60)
    first = store.claim_job(seen[0], "r1", 1, time.time())
    assert first.id == a.id and first.state is JobState.RUNNING and first.runner == "r1" and first.attempts == 1
    assert store.claim_job(seen[0], "r2", 2, time.time()) is None  # the row changed: r2 lost the race
    assert store.claim_next("r2", 2, time.time(), 60).id == b.id  # r2 moves on to the next
    assert store.claim_next("r3", 3, time.time(), 60) is None  # both held by live runners
    assert store.heartbeat_job(a.id, "r1") and not store.heartbeat_job(a.id, "r2")
    assert not store.finish_job(a.id, "r2", JobState.DONE, 0, "x")
    assert store.finish_job(a.id, "r1", JobState.DONE, 0, "y" * 5000)
    done = store.job(a.id)
    assert done.state is JobState.DONE and done.exit_code == 0 and len(done.tail) == 4096 and done.finished_at
    assert not store.finish_job(a.id, "r1", JobState.FAILED, 1, None)  # finished once
    assert store.finish_job(b.id, "r2", JobState.QUEUED, None, None, reason="interrupted")  # queued again
    again = store.job(b.id)
    assert again.state is JobState.QUEUED and again.runner is None and again.attempts == 1
    assert store.claim_next("r3", 3, time.time(), 60).attempts == 2


def test_a_dead_runners_job_is_taken_over_first_as_its_next_attempt(store):
    a, b = add(store, "a"), add(store, "b")
    store.claim_next("r1", 999_999_999, time.time(), 60)  # a PID no process has: a dead runner of this machine
    c = store.claim_next("r2", 2, time.time(), 60)
    assert c.id == a.id and c.attempts == 2 and c.runner == "r2"
    assert not store.heartbeat_job(a.id, "r1")  # the dead one lost it
    store.claim_next("r3", 3, time.time(), 60)  # b
    later = time.time() + 120  # r2 and r3 (live PIDs of another machine: no PID check) stop beating
    with store.engine.begin() as conn:
        conn.execute(update(schema.jobs).values(host="elsewhere"))
    assert [j.id for j in store.claimable_jobs(later, 60)] == [a.id, b.id]
    assert store.claimable_jobs(time.time(), 60) == []  # fresh heartbeats: live
    assert store.claim_next("r4", 4, later, 60, accept=lambda j: j.id == b.id).id == b.id
    assert store.job(b.id).attempts == 2


def test_reading_the_queue_never_writes(url, store):
    add(store, "a")
    with Store(url, read_only=True) as reader:
        assert [j.title for j in reader.jobs()] == ["a"] and not reader.queue_paused()
        assert [j.title for j in reader.claimable_jobs(time.time(), 60)] == ["a"]
        with pytest.raises(StorageError, match="read-only"):
            reader.add_job("run", [], "x", files={}, signature=None)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("args", "not json", "args of job 1 is not valid JSON"),
    ("args", '{"a": 1}', "args of job 1 is not a list of strings"),
    ("files", "[1]", "files of job 1 is not an object"),
    ("state", "sleeping", "state of job 1 is 'sleeping'"),
])
def test_a_corrupt_job_row_is_one_clear_error(storage, column, value, message):
    with Store(storage) as store:
        add(store, "a")
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute(f"update jobs set {column} = ?", (value,))
    con.commit()
    con.close()
    with Store(storage) as store, pytest.raises(StorageError, match=f"Corrupt row: the {message}"):
        store.jobs()


@pytest.mark.parametrize(("column", "value", "message"), [
    ("heartbeat_at", "soon", "heartbeat of job 1 is not a finite number"),
    ("pid", 2**40, "pid of job 1 is not a whole number from 1"),
    ("pid", 0, "pid of job 1 is not a whole number from 1"),
    ("pid", -1, "pid of job 1 is not a whole number from 1"),
    ("attempts", "x", "attempts of job 1 is not a whole number"),
    ("estimate_s", "abc", "estimate of job 1 is not a finite number"),
    ("estimate_s", -5.0, "estimate of job 1 is not a finite number of at least 0"),
    ("position", "first", "position of job 1 is not a finite number"),
    ("started_at", "yesterday", "start time of job 1 is not a finite number"),
    ("finished_at", "today", "finish time of job 1 is not a finite number"),
    ("exit_code", "oops", "exit code of job 1 is not a whole number"),
    ("paused", "yes", "paused flag of job 1 is not a whole number from 0 to 1"),
    ("kind", b"run", "kind of job 1 is not text"),  # a blob: SQLite turns a number into text here
    ("host", b"\x00", "host of job 1 is not text"),
])
def test_hostile_numbers_and_texts_are_one_corrupt_row_error_and_claims_pass_the_row_over(storage, column, value,
                                                                                          message):
    with Store(storage) as store:
        add(store, "a")
        add(store, "b")
        store.claim_next("r1", 999_999_999, time.time(), 60)  # job 1 running under a dead runner of this machine
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute(f"update jobs set {column} = ? where id = 1", (value,))
    con.commit()
    con.close()
    with Store(storage) as store:
        with pytest.raises(StorageError, match=f"Corrupt row: the {message}") as raised:
            store.jobs()
        assert "\n" not in str(raised.value)
        with pytest.raises(StorageError, match="Corrupt row"):
            store.job(1)
        # a runner neither takes the corrupt row over nor crashes on it: it claims the next job
        claimed = store.claim_next("r2", 2, time.time() + 1000, 60)
        assert claimed is not None and claimed.id == 2


def test_a_dead_runners_job_can_be_removed_or_queued_again_but_a_live_ones_cannot(store):
    a, b, c = add(store, "a"), add(store, "b"), add(store, "c")
    store.claim_next("dead", 999_999_999, time.time(), 60)  # a: a dead process of this machine holds it
    store.remove_job(a.id)
    assert store.job(a.id).state is JobState.REMOVED and store.job(a.id).runner is None
    store.claim_next("dead", 999_999_999, time.time(), 60)  # b
    held = store.job(b.id)
    assert store.requeue_job(held, "estimated 9 h, 1 h left in the window")
    again = store.job(b.id)
    assert again.state is JobState.QUEUED and again.runner is None and again.reason.startswith("estimated 9 h")
    assert not store.requeue_job(held, "x")  # compare-and-swap: the row is no longer as it was read
    store.claim_next("dead", 999_999_999, time.time(), 60)  # b again
    stale = store.job(b.id)
    assert store.claim_next("r2", 2, time.time(), 60).id == b.id  # r2 took it over first
    assert not store.requeue_job(stale, "x") and store.job(b.id).runner == "r2"
    with pytest.raises(ConfigError, match=f"Job {b.id} is running"):  # r2 (this test's own PID) lives
        store.remove_job(b.id)
    assert store.job(c.id).state is JobState.QUEUED


def test_a_database_from_before_the_queue_reads_as_an_empty_queue(storage):
    with Store(storage) as store:
        add(store, "a")
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute("drop table jobs")
    con.execute("update tuneloop_meta set value = '7' where key = 'schema_version'")
    con.commit()
    con.close()
    started = time.monotonic()
    with Store(storage, read_only=True) as reader:
        assert reader.jobs() == [] and reader.claimable_jobs(time.time(), 60) == []
        with pytest.raises(NotFound, match="No job 1"):
            reader.job(1)
    assert time.monotonic() - started < 5  # no retries: a missing table is not a busy database
