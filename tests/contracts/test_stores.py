"""The store contract (optuna's StorageTestCase is the model): one suite run on SQLite and on
PostgreSQL, through the StoreProtocol the driver uses: studies, trials claimed by number, points
and logs in one batch, finishing under a lease, series of the current attempt, leases taken over
when stale, lineage, and read-only opening."""

import math
import time

import pytest

from tuneloop.direction import Direction
from tuneloop.errors import NotFound, StorageError
from tuneloop.store import Lease, LogBatch, Store, StoreProtocol, TrialState

PARAMS = {"x": 0.1, "lr": 0.01, "opt": "adam"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, storage):
    return storage if request.param == "sqlite" else request.getfixturevalue("postgres")


@pytest.fixture
def store(url):
    with Store(url) as s:
        yield s


def seed_of(number):
    return 1000 + number


def new_study(store, space, name="s"):
    return store.create_study(name, "loss", "min", space, {"seed": 1, "note": "ü"})


def test_it_is_what_the_driver_types_against(store):
    assert isinstance(store, StoreProtocol)


def test_a_study_round_trips(store, space):
    created = new_study(store, space)
    got = store.get_study("s")
    assert got == created and got.space == space and got.config == {"seed": 1, "note": "ü"}
    assert got.mode is Direction.MIN and got.metric == "loss"
    assert store.get_study("nope") is None
    with pytest.raises(NotFound, match="No study named 'nope'"):
        store.require_study("nope")
    store.update_study_config(got.id, {"seed": 2})
    assert store.get_study("s").config == {"seed": 2}


def test_trials_are_claimed_by_number_up_to_the_limit(store, space):
    study = new_study(store, space)
    lease = Lease.mine()
    claimed = [store.claim_trial(study.id, {**PARAMS, "x": 0.1 * i}, seed_of, lease, limit=3) for i in range(4)]
    assert [c[1:] for c in claimed[:3]] == [(0, 1000), (1, 1001), (2, 1002)] and claimed[3] is None
    trials = store.trials(study.id)
    assert [(t.number, t.state, t.attempt) for t in trials] == [(n, TrialState.RUNNING, 0) for n in range(3)]
    assert trials[1].params == {**PARAMS, "x": 0.1} and store.trial(study.id, 2).id == claimed[2][0]
    with pytest.raises(NotFound):
        store.trial(study.id, 7)
    assert set(store.leases(study.id)) == {c[0] for c in claimed[:3]}


def test_a_batch_of_points_and_logs_is_written_and_read_back(store, space):
    study = new_study(store, space)
    lease = Lease.mine()
    trial_id, number, _ = store.claim_trial(study.id, PARAMS, seed_of, lease)
    batch = LogBatch()
    batch.metrics(trial_id, 0, 0, {"loss": 1.0, "acc": 0.5})
    batch.metrics(trial_id, 0, 1, {"loss": math.nan})
    batch.histogram(trial_id, 0, 1, name="act/fc1", low=0.0, high=1.0, counts=b"\x01\x00\x00\x00", n=1, nonfinite=0,
                    stats={"mean": 0.5})
    batch.slice(trial_id, 0, 1, slice="class 0", metric="acc", value=math.inf, n=3)
    batch.sample(trial_id, 0, 1, name="note", kind="text", payload='"hi"')
    path = store.save_artifact(study.id, study.name, number, "checkpoint-a0", 1, b"state", "pt")
    batch.checkpoint(trial_id, 0, 1, path, time.time())
    batch.alert(trial_id, 0, 1, rule="r", quantity="loss", value=None, action="warn", message="m")
    assert len(batch) == 8
    store.write_batch(batch.take())
    assert len(batch) == 0
    series = store.series([trial_id])[trial_id]
    assert series["acc"] == [(0, 0.5)] and series["loss"][0] == (0, 1.0) and math.isnan(series["loss"][1][1])
    assert store.series([trial_id], names=["acc"]) == {trial_id: {"acc": [(0, 0.5)]}}
    (h,) = store.histograms(trial_id)
    assert (h.name, h.counts, h.stats) == ("act/fc1", [1], {"mean": 0.5})
    assert [(s.slice, s.value) for s in store.slices(trial_id)] == [("class 0", None)]  # not finite: NULL
    assert [(s.name, s.payload) for s in store.samples(trial_id)] == [("note", "hi")]
    assert [a.message for a in store.alerts(trial_id)] == ["m"]
    step, file = store.latest_checkpoint(trial_id)
    assert step == 1 and file.read_bytes() == b"state"


def test_trial_attributes_are_replaced_by_key_and_read_with_the_trial(store, space):
    study = new_study(store, space)
    lease = Lease.mine()
    a, _, _ = store.claim_trial(study.id, PARAMS, seed_of, lease)
    b, _, _ = store.claim_trial(study.id, PARAMS, seed_of, lease)
    batch = LogBatch()
    batch.attrs(a, {"device": "GPU 1", "n": 3, "ok": True, "none": None})
    batch.attrs(a, {"n": 4})  # the last value of a key given twice in one batch
    store.write_batch(batch.take())
    batch.attrs(a, {"device": "GPU 2 [red]ü"})  # a later batch replaces the stored value
    batch.attrs(b, {"device": "cpu"})
    store.write_batch(batch.take())
    expected = {"device": "GPU 2 [red]ü", "n": 4, "ok": True, "none": None}
    assert store.trial(study.id, 0).attrs == expected
    assert [t.attrs for t in store.trials(study.id)] == [expected, {"device": "cpu"}]


def test_a_trial_finishes_under_its_lease_only(store, space):
    study = new_study(store, space)
    mine, other = Lease.mine(), Lease.mine()
    a, _, _ = store.claim_trial(study.id, PARAMS, seed_of, mine)
    b, _, _ = store.claim_trial(study.id, PARAMS, seed_of, mine)
    batch = LogBatch()
    batch.metrics(a, 0, 0, {"loss": 0.3})
    assert store.finish_leased_trial(a, mine.owner, TrialState.COMPLETED.value, 0.3, {"loss": 0.3}, None, batch.take())
    assert not store.finish_leased_trial(b, other.owner, TrialState.FAILED.value, None, {}, "boom")
    done = store.trial(study.id, 0)
    assert (done.state, done.value, done.values, done.error) == (TrialState.COMPLETED, 0.3, {"loss": 0.3}, None)
    assert store.trial(study.id, 1).state == TrialState.RUNNING and store.count_finished(study.id) == 1
    assert store.series([a]) == {a: {"loss": [(0, 0.3)]}} and set(store.leases(study.id)) == {b}


def test_a_stale_lease_is_taken_over_and_the_rerun_attempt_hides_old_points(store, space):
    study = new_study(store, space)
    dead, live, me = Lease.mine(), Lease.mine(), Lease.mine()
    stale, _, _ = store.claim_trial(study.id, PARAMS, seed_of, dead)
    fresh, _, _ = store.claim_trial(study.id, PARAMS, seed_of, live)
    store.write_batch({"metrics": [{"trial_id": stale, "attempt": 0, "step": 0, "name": "loss", "value": 9.0}]})
    time.sleep(0.3)
    assert store.renew_leases(live.owner) == 1  # the live driver's heartbeat
    assert store.take_over(study.id, me, stale_after=0.2) == [stale]  # the live one is left alone
    assert store.trial(study.id, 0).state == TrialState.INTERRUPTED
    assert store.leases(study.id)[stale]["owner"] == me.owner
    assert store.restart_trial(stale) == 1 and store.series([stale]) == {stale: {}}
    store.release_leases(me.owner, interrupt=True)
    assert store.trial(study.id, 0).state == TrialState.INTERRUPTED and set(store.leases(study.id)) == {fresh}


def test_lineage_round_trips(store, space):
    study = new_study(store, space)
    t, _, _ = store.claim_trial(study.id, PARAMS, seed_of, Lease.mine())
    store.add_lineage(t, 2, 1, 0, "promote", {"budget": {"epochs": 3}})
    assert store.lineage(study.id) == {t: {"member": 2, "generation": 1, "parent": 0, "event": "promote",
                                           "info": {"budget": {"epochs": 3}}}}


def test_a_read_only_store_reads_and_never_writes(url, space):
    with Store(url) as s:
        new_study(s, space)
    with Store(url, read_only=True) as ro:
        assert ro.get_study("s").name == "s" and ro.trials(ro.get_study("s").id) == []
        with pytest.raises(StorageError, match="read-only"):
            ro.create_study("t", "loss", "min", space, {})
    with Store(url) as s:
        assert [x.name for x in s.studies()] == ["s"]


def test_a_read_only_store_never_creates_a_database(tmp_path):
    with pytest.raises(StorageError, match="No tuneloop database"):
        Store(str(tmp_path / "missing.db"), read_only=True)
    assert list(tmp_path.iterdir()) == []
