"""The study answer's columns of completed trials: a parameter some trials lack is told apart from a
choice whose value is None (the parallel coordinates put each on its own tick)."""

import tuneloop as tl
from tuneloop.store import Store
from tuneloop.views import study_response


def test_a_lacking_parameter_is_told_apart_from_a_none_choice(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'cols.db'}") as store:
        space = tl.Space(x=tl.Float(0.0, 1.0), pool=tl.Choice([None, "max", "avg"]))
        record = store.create_study("cols", "loss", "min", space, {})
        for n, params in enumerate([{"x": 0.1, "pool": None}, {"x": 0.2}, {"x": 0.3, "pool": "max"}]):
            trial = store.create_trial(record.id, n, params, seed=n)
            store.finish_trial(trial, "completed", params["x"], {"loss": params["x"]})
        running = store.create_trial(record.id, 3, {"x": 0.4}, seed=3)  # not completed: not a column entry
        assert running
        view, _ = study_response(store, "cols")
    done = view["done"]
    assert done["number"] == [0, 1, 2] and done["params"]["pool"] == [None, None, "max"]
    assert done["absent"] == {"pool": [1]}  # trial 1 lacks it; trial 0 chose None
    assert view["counts"] == {"total": 4, "states": {"completed": 3, "running": 1}} and view["devices"] is False
