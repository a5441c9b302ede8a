"""Two drivers on one study: each holds a lease on the trials it runs (renewed by a heartbeat), a
second driver leaves a live driver's trials alone and takes over a dead one's once its lease is
stale, and trial numbers are claimed in the database, so none is used twice.

The end-to-end cases run real `tuneloop run` processes on one SQLite file; their trials wait at a
gate (a file the test creates), so what each driver does is seen while the other's trials run."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from shared import sqlite_rows
from sqlalchemy import text

import tuneloop as tl
from tuneloop.run.driver import trial_seed
from tuneloop.store import Lease, Store

GATED_EXPERIMENT = """
    import os, pathlib, time
    import tuneloop as tl

    GATE = pathlib.Path(os.environ["GATE"])
    space = tl.Space(x=tl.Float(-2.0, 2.0))

    def objective(trial):
        # a marker per (number, attempt, driver): which driver ran what, seen by the test
        (GATE.parent / f"ran-{trial.number}-a{trial._spec.attempt}-{os.environ['DRIVER']}").touch()
        while not GATE.exists():  # held here until the test opens the gate
            time.sleep(0.01)
        return {"loss": abs(trial.params.x)}

    study = tl.Study("shared", space, objective, metric="loss", mode="min", searcher="random")
"""

# `tuneloop run` with the lease timings the test picks; ELSEWHERE makes it look like a driver on
# another machine, whose process cannot be checked from here (only its heartbeat tells).
DRIVE = """
    import os

    if __name__ == "__main__":  # worker processes import this file again
        import tuneloop.run.driver as driver
        import tuneloop.store._leases as leases
        from tuneloop.cli import app

        driver.LEASE_HEARTBEAT_SECONDS = float(os.environ["HEARTBEAT"])
        driver.LEASE_STALE_SECONDS = float(os.environ["STALE"])
        if os.environ.get("ELSEWHERE"):
            leases.this_host = lambda: "another-machine"
        app()
"""


@pytest.fixture
def drivers(tmp_path, write_experiment):
    """Start `tuneloop run` processes on one database; every one is gone after the test."""
    exp, drive = write_experiment(GATED_EXPERIMENT), write_experiment(DRIVE, "drive.py")
    db, started = tmp_path / "shared.db", []

    def start(name, trials, *, heartbeat=0.2, stale=30.0, elsewhere=False, wait=False):
        env = {**os.environ, "GATE": str(tmp_path / "gate"), "DRIVER": name, "HEARTBEAT": str(heartbeat),
               "STALE": str(stale), "ELSEWHERE": "1" if elsewhere else ""}
        cmd = [sys.executable, str(drive), "run", str(exp), "--trials", str(trials), "--workers", "2",
               "--storage", str(db)]
        if wait:
            return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        started.append(process)
        return process

    yield start, db
    (tmp_path / "gate").touch()  # a trial still waiting ends
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def _wait_for(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _ran(tmp_path, driver=None):
    """(number, attempt, driver) of every trial function started so far."""
    out = set()
    for marker in tmp_path.glob("ran-*"):
        _, number, attempt, who = marker.name.split("-")
        if driver is None or who == driver:
            out.add((int(number), int(attempt[1:]), who))
    return out


def _trials(db):
    return {n: (state, attempt) for n, state, attempt in sqlite_rows(db, "select number, state, attempt from trials")}


def _leases(db):
    """{trial number: (pid, heartbeat_at)}"""
    return {n: (pid, beat) for n, pid, beat in sqlite_rows(
        db, "select t.number, l.pid, l.heartbeat_at from leases l join trials t on t.id = l.trial_id")}


@pytest.mark.slow  # two driver processes (3 s): .ci/run runs it in its second pytest call
def test_a_second_driver_leaves_a_live_drivers_trials_alone(drivers, tmp_path):
    start, db = drivers
    a = start("A", 6)
    _wait_for(lambda: len(_ran(tmp_path, "A")) == 2, "driver A's two trials to be running")
    a_numbers = {n for n, _, _ in _ran(tmp_path, "A")}
    assert {n: _trials(db)[n] for n in a_numbers} == dict.fromkeys(a_numbers, ("running", 0))
    first_beat = {n: _leases(db)[n] for n in a_numbers}
    assert {pid for pid, _ in first_beat.values()} == {a.pid}
    _wait_for(lambda: all(_leases(db)[n][1] > first_beat[n][1] for n in a_numbers), "A's heartbeat to renew")

    b = start("B", 6)
    _wait_for(lambda: len(_ran(tmp_path, "B")) == 2, "driver B's two trials to be running")
    b_numbers = {n for n, _, _ in _ran(tmp_path, "B")}
    assert not a_numbers & b_numbers  # B ran none of A's trials again, and took new numbers
    trials, leases = _trials(db), _leases(db)
    assert {n: trials[n] for n in a_numbers} == dict.fromkeys(a_numbers, ("running", 0))  # untouched
    assert {n: leases[n][0] for n in a_numbers} == dict.fromkeys(a_numbers, a.pid)
    assert {n: leases[n][0] for n in b_numbers} == dict.fromkeys(b_numbers, b.pid)

    (tmp_path / "gate").touch()
    for process in (a, b):
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    assert _trials(db) == dict.fromkeys(range(6), ("completed", 0))  # the study's total, each number once
    ran = _ran(tmp_path)
    assert sorted(n for n, _, _ in ran) == list(range(6))  # every trial ran exactly once, by one driver
    assert {(n, who) for n, _, who in ran} >= {(n, "A") for n in a_numbers} | {(n, "B") for n in b_numbers}
    assert _leases(db) == {}  # finished trials hold no lease


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_a_killed_drivers_trials_are_taken_over_once_its_lease_is_stale(drivers, tmp_path):
    start, db = drivers
    a = start("A", 4, elsewhere=True)  # as if on another machine: only its heartbeat says it lives
    _wait_for(lambda: len(_ran(tmp_path, "A")) == 2, "driver A's two trials to be running")
    a_numbers = {n for n, _, _ in _ran(tmp_path, "A")}
    os.killpg(a.pid, signal.SIGKILL)  # the driver and its workers, with no chance to clean up
    a.communicate()
    (tmp_path / "gate").touch()

    fresh = start("B1", 4, stale=600.0)  # A's leases are still fresh for this driver: it waits for them
    _wait_for(lambda: sum(s == ("completed", 0) for s in _trials(db).values()) == 2, "B1's own trials to end")
    trials = _trials(db)
    assert {n: trials[n] for n in a_numbers} == dict.fromkeys(a_numbers, ("running", 0))  # left alone
    assert {n: s for n, s in trials.items() if n not in a_numbers} == dict.fromkeys(range(2, 4), ("completed", 0))
    assert not {(n, who) for n, _, who in _ran(tmp_path, "B1")} & {(n, "B1") for n in a_numbers}

    stale = 1.0
    _wait_for(lambda: all(time.time() - beat > stale for _, beat in _leases(db).values()), "A's leases to go stale")
    taker = start("B2", 4, stale=stale, wait=True)
    assert taker.returncode == 0, taker.stderr
    assert _trials(db) == {n: ("completed", 1 if n in a_numbers else 0) for n in range(4)}  # re-run: next attempt
    assert _ran(tmp_path, "B2") == {(n, 1, "B2") for n in a_numbers}
    _, stderr = fresh.communicate(timeout=60)  # B1 waited for the study's last trials, then ended with it
    assert fresh.returncode == 0, stderr
    assert not {(n, who) for n, _, who in _ran(tmp_path, "B1")} & {(n, "B1") for n in a_numbers}
    assert _leases(db) == {}


# -- the store's side --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def url(request, storage):
    return request.getfixturevalue("postgres") if request.param == "postgres" else storage


def test_concurrent_drivers_claim_distinct_numbers_up_to_the_cap(url):
    stores = [Store(url), Store(url)]
    study = stores[0].create_study("race", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
    leases = [Lease.mine(), Lease.mine()]

    def claim_all(i):
        got = []
        while (claimed := stores[i].claim_trial(study.id, {"x": 0.5}, lambda n: trial_seed(7, n), leases[i],
                                                limit=60)) is not None:
            got.append(claimed)
        return got

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(claim_all, [0, 1]))
    numbers = sorted(n for got in results for _, n, _ in got)
    assert numbers == list(range(60))  # none twice, none missing, none past the cap
    assert all(seed == trial_seed(7, n) for got in results for _, n, seed in got)
    held = stores[0].leases(study.id)
    assert {i: held[i]["owner"] for i, _, _ in results[0]} == {i: leases[0].owner for i, _, _ in results[0]}
    assert len(held) == 60 and all(t.state == "running" for t in stores[0].trials(study.id))
    for store in stores:
        store.close()


def test_take_over_leaves_live_leases_and_takes_stale_missing_or_dead_ones(url):
    store = Store(url)
    study = store.create_study("s", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
    live, stale = Lease("live", "another-machine", 1), Lease("stale", "another-machine", 1)
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                            check=True)
    dead = Lease("dead", Lease.mine().host, int(exited.stdout))  # this machine, a process that has exited
    ids = {}
    for name, lease in (("live", live), ("stale", stale), ("dead", dead)):
        ids[name] = store.claim_trial(study.id, {"x": 0.5}, lambda n: n, lease)[0]
    ids["orphan"] = store.create_trial(study.id, 3, {"x": 0.5}, 3)  # running, with no lease at all
    with store.engine.begin() as conn:  # the stale driver's last beat was a minute ago
        conn.exec_driver_sql("update leases set heartbeat_at = heartbeat_at - 60 where owner = 'stale'")
    me = Lease.mine()
    taken = store.take_over(study.id, me, stale_after=30.0)
    assert sorted(taken) == sorted([ids["stale"], ids["dead"], ids["orphan"]])
    states = {t.id: t.state for t in store.trials(study.id)}
    assert states[ids["live"]] == "running" and {states[i] for i in taken} == {"interrupted"}
    assert {i: v["owner"] for i, v in store.leases(study.id).items()} == {ids["live"]: "live",
                                                                         **dict.fromkeys(taken, me.owner)}
    assert store.take_over(study.id, Lease.mine(), stale_after=30.0) == []  # ours now, and we are alive

    # the stalled driver finishing late records nothing over the new owner's attempt
    assert not store.finish_leased_trial(ids["stale"], "stale", "completed", 1.0, {"loss": 1.0})
    assert store.finish_leased_trial(ids["stale"], me.owner, "completed", 0.5, {"loss": 0.5})
    store.release_leases(me.owner, interrupt=True)
    after = {t.id: (t.state, t.value) for t in store.trials(study.id)}
    assert after[ids["stale"]] == ("completed", 0.5) and after[ids["dead"]][0] == "interrupted"
    assert list(store.leases(study.id)) == [ids["live"]]
    store.close()


def _leasesqlite_rows(store):
    """The trial ids the leases table holds a row for, whatever the trials' states."""
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("select trial_id from leases"))}


def test_a_finished_trials_lease_goes_with_its_end_or_at_the_next_heartbeat(url):
    store = Store(url)
    study = store.create_study("s", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
    me = Lease.mine()
    a, b = (store.claim_trial(study.id, {"x": 0.5}, lambda n: n, me)[0] for _ in range(2))
    assert store.finish_leased_trial(a, me.owner, "completed", 0.5, {"loss": 0.5})
    assert set(store.leases(study.id)) == {b}  # at once, on both back ends (SQLite drops the row later)
    assert store.renew_leases(me.owner) == 1 and _leasesqlite_rows(store) == {b}

    gone = Lease("gone", "another-machine", 1)  # a driver killed right after it finished a trial
    c = store.claim_trial(study.id, {"x": 0.5}, lambda n: n, gone)[0]
    assert store.finish_leased_trial(c, gone.owner, "completed", 0.5, {"loss": 0.5})
    assert store.take_over(study.id, Lease.mine(), stale_after=30.0) == []  # b is ours and we are alive
    assert _leasesqlite_rows(store) == {b}  # what the killed driver left on its finished trial is gone
    store.close()


def test_a_number_hint_that_is_taken_falls_back_to_the_next_free_number(url):
    store = Store(url)
    study = store.create_study("s", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
    me = Lease.mine()
    assert [store.claim_trial(study.id, {"x": 0.5}, lambda n: 10 * n, me, number=n)[1:] for n in (0, 1)] == [
        (0, 0), (1, 10)]
    assert store.claim_trial(study.id, {"x": 0.5}, lambda n: 10 * n, me, number=0)[1:] == (2, 20)  # 0 is taken
    assert store.claim_trial(study.id, {"x": 0.5}, lambda n: n, me, limit=3, number=1) is None  # 0-2 all taken
    assert set(store.leases(study.id)) == {t.id for t in store.trials(study.id)}
    store.close()


def test_a_finish_racing_a_take_over_waits_for_it_and_records_nothing(url):
    """The take-over's transaction holds the lease (PostgreSQL: its row lock; SQLite: the write lock)
    when the stalled driver finishes: the finish waits, then sees the new holder and records nothing."""
    store = Store(url)
    study = store.create_study("s", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
    me = Lease.mine()
    trial_id = store.claim_trial(study.id, {"x": 0.5}, lambda n: n, me)[0]
    with store.engine.connect() as conn, ThreadPoolExecutor(1) as pool:
        taking = conn.begin()
        conn.execute(text("update leases set owner = 'taker' where trial_id = :t"), {"t": trial_id})
        conn.execute(text("update trials set state = 'interrupted' where id = :t"), {"t": trial_id})
        finish = pool.submit(store.finish_leased_trial, trial_id, me.owner, "completed", 1.0, {"loss": 1.0})
        time.sleep(0.5)
        assert not finish.done()  # held up by the take-over
        taking.commit()
        assert finish.result(timeout=30) is False
    assert store.trials(study.id)[0].state == "interrupted" and store.leases(study.id)[trial_id]["owner"] == "taker"
    store.close()


def _dead_pid() -> int:
    """The pid of a process of this machine that has exited (its leases are free at once)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_dead_drivers_trial_runs_again_up_to_max_retries_and_a_ctrl_c_one_always(storage):
    """Issue 18: a trial whose driver died while running it is re-run by the next driver unless it
    already ran max_retries times again (then it fails with the cause); one interrupted by Ctrl-C
    (state interrupted) always resumes."""
    import trial_functions as tf

    study = tl.Study("worn", tl.Space(x=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss", mode="min", storage=storage)
    study.run(n_trials=1)
    dead = Lease("dead-driver", Lease.mine().host, _dead_pid())
    with Store(storage) as store:
        record = store.require_study("worn")
        ids = [store.claim_trial(record.id, {"x": 0.1 * (i + 1)}, lambda n: n, dead)[0] for i in range(3)]
        with store.engine.begin() as conn:  # trial 2 died once before; trial 3 was Ctrl-C'd twice
            conn.execute(text("UPDATE trials SET attempt = 1 WHERE id = :i"), {"i": ids[1]})
            conn.execute(text("UPDATE trials SET attempt = 2, state = 'interrupted' WHERE id = :i"), {"i": ids[2]})
    study.run(n_trials=4, max_retries=1)
    by_number = {t.number: t for t in study.trials}
    assert [by_number[n].state for n in range(4)] == ["completed", "completed", "failed", "completed"]
    assert by_number[1].attempt == 1  # died once: run again
    assert "died 2 times" in by_number[2].error and "max_retries=1" in by_number[2].error
    assert by_number[3].attempt == 3  # Ctrl-C'd twice: resumed regardless
