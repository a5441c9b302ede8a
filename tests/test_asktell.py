"""Ask/tell and enqueue in Python: trials run by the caller are stored, leased, scheduled and told like
a driver's own; enqueued (partial) configurations run first, completed by the searcher; a client that
dies leaves its trial to be asked again, up to max_retries."""

import sqlite3
import subprocess
import sys

import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.store import Lease, Store

SPACE = tl.Space(x=tl.Float(-2.0, 2.0), opt=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.9)}, "adam": {}}))


def make(storage, searcher="random", **kw):
    return tl.Study("at", SPACE, tf.quadratic, metric="loss", mode="min", storage=storage, searcher=searcher,
                    budget={"epochs": 4}, seed=0, **kw)


def test_asked_trials_are_stored_reported_and_told(storage):
    study = make(storage)
    for _ in range(3):
        t = study.ask()
        assert SPACE.validate(t.params.to_dict()) and t.budget.epochs == 4
        assert [r.state for r in study.trials if r.number == t.number] == ["running"]
        for step in range(t.budget.epochs):
            t.report(step, loss=abs(t.params.x) + 1 / (step + 1))
        record = study.tell(t, {"loss": abs(t.params.x), "acc": 0.5})
        assert record.state == "completed" and record.values == {"loss": abs(t.params.x), "acc": 0.5}
    assert [r.number for r in study.trials] == [0, 1, 2] and {r.seed for r in study.trials} != {0}
    with Store(storage) as store:  # every report is a stored point of the trial
        curves = store.series([r.id for r in study.trials], names=["loss"])
        assert all(len(c["loss"]) == 4 for c in curves.values())
    assert study.tell(study.ask(), state="failed", error="out of memory").error == "out of memory"


def test_the_scheduler_sees_the_history_and_prunes(storage):
    study = make(storage, scheduler={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 0})
    for x in (0.0, 0.1, 0.2):
        t = study.ask()
        t.report(0, loss=x)
        study.tell(t, x)
    fresh = make(storage, scheduler={"name": "median", "n_startup_trials": 3, "n_warmup_steps": 0})  # another process
    t = fresh.ask()
    t.report(0, loss=5.0)  # far worse than the median of the stored trials at step 0
    assert t.should_stop()
    assert fresh.tell(t, state="pruned").state == "pruned"


@pytest.mark.parametrize("searcher", ["tpe", "grid"])
def test_an_enqueued_partial_config_is_the_first_trial_of_the_next_run(storage, searcher):
    study = make(storage, searcher=searcher)
    study.run(n_trials=2)
    assert study.enqueue({"momentum": 0.45}) == 2  # its branch (opt=sgd) is implied
    assert study.trials[-1].state == "queued" and study.trials[-1].params == {"opt": "sgd", "momentum": 0.45}
    study.run(n_trials=4)
    first = study.trials[2]
    assert first.state == "completed" and first.params["momentum"] == 0.45 and first.params["opt"] == "sgd"
    assert SPACE.validate(first.params) and len(study.trials) == 4


def test_ask_takes_an_enqueued_config_first(storage):
    study = make(storage)
    study.enqueue({"x": 1.5, "opt": "adam"})
    t = study.ask()
    assert t.number == 0 and t.params.to_dict() == {"x": 1.5, "opt": "adam"}


def test_seeds_ask_each_configuration_again_with_its_own_seed(storage):
    study = make(storage)
    asked = []
    for _ in range(4):
        t = study.ask(seeds=2)
        asked.append(t)
        study.tell(t, 0.1)
    assert asked[0].params == asked[1].params != asked[2].params == asked[3].params
    assert len({t.seed for t in asked}) == 4


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _die(storage, number):
    """As a client killed mid-trial leaves it: its lease names a process that is gone."""
    path = storage.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE leases SET pid = ? WHERE trial_id = (SELECT id FROM trials WHERE number = ?)",
                     (_dead_pid(), number))


def test_a_dead_clients_trial_is_asked_again_then_failed_past_max_retries(storage):
    first = make(storage)
    t = first.ask()
    _die(storage, t.number)
    again = make(storage).ask()  # a new client: the dead one's trial, its next attempt
    assert (again.number, again._spec.attempt, again.params) == (t.number, 1, t.params)
    with pytest.raises(tl.ConfigError, match="taken over"):
        first.tell(t, 0.1)  # the first client's result comes too late
    _die(storage, t.number)
    other = make(storage).ask()
    assert other.number == t.number + 1  # max_retries=1 used up: failed, not asked again
    failed = make(storage).trials[t.number]
    assert failed.state == "failed" and "max_retries=1" in failed.error


def test_a_held_lease_keeps_drivers_away_until_it_expires(storage):
    study = make(storage)
    held = study.ask(lease_seconds=3600)
    with Store(storage) as store:
        record = store.get_study("at")
        assert store.take_over(record.id, Lease.mine(), stale_after=0.0) == []  # held for an hour: live
        assert tl.Study.stored("at", storage).tell(held.number, 0.3).state == "completed"  # told from elsewhere
        brief = make(storage).ask(lease_seconds=1e-6)
        taken = store.take_over(record.id, Lease.mine(), stale_after=0.0)  # its hold is over
        assert [store.trials(record.id, numbers=[brief.number])[0].id] == taken


@pytest.mark.parametrize("bad, message", [
    (lambda s, t: s.tell(t, 0.1) and s.tell(t, 0.1), "already told"),
    (lambda s, t: s.tell(99, 0.1), "no trial 99"),
    (lambda s, t: s.tell(t, "abc"), "must be a number"),
    (lambda s, t: s.tell(t, {"loss": [1]}), "must be a number"),
    (lambda s, t: s.tell(t, state="running"), "states 'completed', 'pruned', 'failed'"),
    (lambda s, t: s.tell(t, {"acc": 0.5}), "needs its objective 'loss'"),
    (lambda s, t: s.tell("zero", 0.1), "a Trial from study.ask"),
    (lambda s, t: s.enqueue({"y": 1.0}), "'y' is not a parameter"),
    (lambda s, t: s.enqueue({"x": 5.0}), "outside Float"),
    (lambda s, t: s.enqueue({"momentum": 0.1, "opt": "adam"}), "give the parameters of one branch"),
    (lambda s, t: s.enqueue({}), "takes a dict"),
    (lambda s, t: make(s.storage).ask(lease_seconds=-1), "lease_seconds must be a positive number"),
])
def test_bad_input_is_a_one_line_config_error(storage, bad, message):
    study = make(storage)
    t = study.ask()
    with pytest.raises(tl.ConfigError, match=message) as info:
        bad(study, t)
    assert "\n" not in str(info.value)


def test_a_run_with_a_target_stores_it_for_workers(storage):
    study = make(storage)
    study.run(n_trials=2)
    assert tl.Study.stored("at", storage).store().get_study("at").config["n_trials"] == 2


@pytest.mark.parametrize("searcher", ["tpe", "random", "sobol", "grid", "gp", "cmaes"])
def test_every_searcher_asks_points_of_the_space_and_learns_from_tells(storage, searcher):
    study = make(storage, searcher=searcher)
    numbers = []
    for _ in range(3):
        t = study.ask()
        SPACE.validate(t.params.to_dict())
        numbers.append(study.tell(t, (t.params.x - 0.5) ** 2).number)
    assert numbers == [0, 1, 2] and all(r.state == "completed" for r in study.trials)
