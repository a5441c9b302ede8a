"""States and directions read from the store are typed (``TrialState``, ``Direction``) yet still equal
their words, print as them and go to JSON as them; a word the types do not know is a corrupt row."""

import json
import sqlite3

import pytest

import tuneloop as tl
from tuneloop.finalize import top_configs
from tuneloop.ideas import Ledger
from tuneloop.store import Store, TrialRecord, TrialState


@pytest.fixture
def store(storage):
    with Store(storage) as s:
        yield s


def _tamper(storage, sql):
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as con:
        con.execute(sql)


def test_read_states_and_modes_are_typed_and_still_their_words(store, space):
    study = store.create_study("s", "acc", "max", space, {})
    a = store.create_trial(study.id, 0, {"x": 0.0}, seed=0)
    b = store.create_trial(study.id, 1, {"x": 1.0}, seed=0)
    store.finish_trial(a, "completed", 0.7, {"acc": 0.7})
    store.finish_trial(b, tl.TrialState.COMPLETED, 0.9, {"acc": 0.9})  # a member binds as its word
    record, (summary,) = store.get_study("s"), store.studies()
    assert record.mode is tl.Direction.MAX and record.mode == "max" and summary.mode is tl.Direction.MAX
    assert summary.best_value == 0.9 and summary.counts == {"completed": 2}
    trials = store.trials(study.id, states=[TrialState.COMPLETED])
    assert [t.state for t in trials] == [TrialState.COMPLETED] * 2 == ["completed", "completed"]
    assert all(type(t.state) is TrialState and t.state.finished for t in trials)
    assert f"{trials[0].state} {record.mode}" == "completed max" and str(trials[0].state) == "completed"
    assert json.loads(json.dumps({"state": trials[0].state, "mode": record.mode})) == {"state": "completed",
                                                                                       "mode": "max"}


def test_a_record_built_from_words_holds_the_types():
    t = TrialRecord(id=1, number=0, state="pruned", params={}, seed=0, attempt=0, value=None, values={}, error=None,
                    created_at=0.0, started_at=None, finished_at=None)
    assert t.state is TrialState.PRUNED and not TrialState.INTERRUPTED.finished
    with pytest.raises(ValueError, match="'done' is not a trial state"):
        TrialRecord(id=1, number=0, state="done", params={}, seed=0, attempt=0, value=None, values={}, error=None,
                    created_at=0.0, started_at=None, finished_at=None)


def test_a_minimized_study_lists_its_lowest_value(store, space):
    study = store.create_study("m", "loss", tl.Direction.MIN, space, {})
    for n, v in enumerate((0.3, 0.1)):
        store.finish_trial(store.create_trial(study.id, n, {"x": 0.0}, seed=0), "completed", v, {"loss": v})
    (summary,) = store.studies()
    assert summary.mode == "min" and summary.best_value == 0.1


@pytest.mark.parametrize(("sql", "message"), [
    ("update trials set state = 'exploded'", r"the state of trial 0 \(id \d+\) is 'exploded', not one of 'queued'"),
    ("update studies set mode = 'maximize'", r"the mode of study 's' is 'maximize', not one of 'min', 'max'; repair"),
])
def test_an_unknown_state_or_mode_is_a_corrupt_row(store, space, storage, sql, message):
    study = store.create_study("s", "loss", "min", space, {})
    store.create_trial(study.id, 0, {"x": 0.0}, seed=0)
    _tamper(storage, sql)
    read = store.get_study if "studies" in sql else (lambda name: store.trials(study.id))
    with pytest.raises(tl.StorageError, match="Corrupt row: " + message):
        read("s")


def test_finalize_with_only_failed_trials_raises_trial_failed_with_the_last_traceback(store, space):
    study = store.create_study("broken", "loss", "min", space, {})
    for n in range(2):
        store.finish_trial(store.create_trial(study.id, n, {"x": 0.0}, seed=0), "failed", None, {},
                           f"Traceback (most recent call last):\nValueError: bad batch {n}")
    with pytest.raises(tl.TrialFailed, match=r"no completed trial to finalize: all 2 of its finished trials failed "
                                             r"or diverged \(the last, trial 1: ValueError: bad batch 1\)") as info:
        top_configs(store.trials(study.id), "min", 1, {}, "broken")
    assert info.value.traceback.endswith("bad batch 1") and isinstance(info.value, tl.TuneloopError)
    with pytest.raises(tl.TuneloopError, match="no completed trial to finalize; run it first") as info:
        top_configs([], "min", 1, {}, "empty")
    assert not isinstance(info.value, tl.TrialFailed)


def test_a_missing_idea_is_not_found(storage):
    with pytest.raises(tl.NotFound, match="No idea 99"):
        Ledger(storage).get(99)
