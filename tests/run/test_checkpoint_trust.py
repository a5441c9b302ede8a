"""Checkpoints are untrusted data: resuming a study whose checkpoint files (or the paths the
database stores for them) were tampered with fails those trials with a clear error, and never
runs code from the file or reads one outside the artifact folder."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch
import trial_functions as tf

import tuneloop as tl
from tuneloop.errors import ConfigError, NotFound
from tuneloop.trial import check_plain_state, load_state

SPACE = tl.Space(lr=tl.LogFloat(0.01, 1.0))
PBT = {"name": "pbt", "population": 4, "interval": 3}


class Payload:
    """What an attacker pickles: unpickling it opens (so creates) the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pbt(storage: str) -> tl.Study:
    return tl.Study("plan", SPACE, tf.stepper, metric="score", mode="max", budget={"epochs": 9}, storage=storage,
                    searcher="random", scheduler=PBT)


def first_generation(storage: str) -> tuple[tl.Store, list[tuple[int, str]]]:
    """Run generation 0 and two trials of generation 1; return the store and every checkpoint row
    (id, stored path) of generation 0, which the rest of generation 1 continues from."""
    pbt(storage).run(n_trials=6, seed=0)
    store = tl.Store(storage)
    record = store.require_study("plan")
    gen0 = [t.id for t in store.trials(record.id) if store.lineage(record.id)[t.id]["generation"] == 0]
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as db:
        rows = db.execute(f"SELECT id, path FROM checkpoints WHERE trial_id IN ({','.join('?' * len(gen0))})",
                          gen0).fetchall()
    assert len(rows) == 4
    return store, rows


def resumed_trials(store: tl.Store) -> list:
    record = store.require_study("plan")
    lineage = store.lineage(record.id)
    return [t for t in store.trials(record.id) if lineage[t.id]["generation"] == 1][2:]


def test_a_pickled_payload_in_a_checkpoint_is_refused_not_run(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    marker = tmp_path / "pwned"
    store, rows = first_generation(storage)
    for _, path in rows:
        torch.save({"w": Payload(str(marker))}, store.artifact_file(path))
    pbt(storage).run(seed=0)  # the study goes on: those trials fail, the run does not
    assert not marker.exists()  # nothing in the file ran
    resumed = resumed_trials(store)
    assert resumed and all(t.state == "failed" for t in resumed)
    assert all("was refused" in t.error and "weights_only=True" in t.error for t in resumed)


def test_a_stored_checkpoint_path_outside_the_artifact_folder_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    marker = tmp_path / "pwned"
    torch.save({"w": Payload(str(marker))}, tmp_path / "evil.pt")
    store, rows = first_generation(storage)
    hostile = ["../evil.pt", str(tmp_path / "evil.pt"), "trial-0/../../../evil.pt", "/etc/hostname"]
    with sqlite3.connect(tmp_path / "tuneloop.db") as db:  # a hostile database: paths out of its folder
        trial_ids = []
        for (row_id, _), path in zip(rows, hostile):
            db.execute("UPDATE checkpoints SET path = ? WHERE id = ?", (path, row_id))
            trial_ids += db.execute("SELECT trial_id FROM checkpoints WHERE id = ?", (row_id,)).fetchone()
    for trial_id in trial_ids:
        with pytest.raises(NotFound):
            store.latest_checkpoint(trial_id)
    pbt(storage).run(seed=0)  # the study goes on: those trials fail, the run does not
    assert not marker.exists()
    resumed = resumed_trials(store)
    assert resumed and all(t.state == "failed" and "checkpoint was refused" in t.error for t in resumed)


def test_checkpoints_of_planners_still_round_trip(storage):
    """The refusal is for foreign content only: a study's own checkpoints continue as before."""
    pbt(storage).run(n_trials=6, seed=0)
    summary = pbt(storage).run(seed=0)
    assert summary.finished_total == 12
    store = tl.Store(storage)
    assert all(t.state == "completed" for t in store.trials(store.require_study("plan").id))


def saves_numpy(trial: tl.Trial) -> dict:
    trial.save_checkpoint(1, {"model": {"w": torch.ones(2)}, "rng": np.random.get_state()})
    return {"score": 1.0}


def test_saving_anything_but_tensors_and_plain_data_is_refused_where_it_happens():
    plain = {"model": {"w": torch.ones(2)}, "opt": {"state": {0: {"step": torch.tensor(1.0)}}, "betas": (0.9, 0.99)},
             "rng": torch.get_rng_state(), "random": __import__("random").getstate(), "tags": ["a", None, 1.5, b"x"],
             "dtype": torch.float32, "device": torch.device("cpu"), "shape": torch.Size([2])}
    check_plain_state(plain)
    for bad, where in (({"rng": np.random.get_state()}, "state['rng'][1]"), ([1, np.float64(2.0)], "state[1]"),
                       ({"f": Payload("x")}, "state['f']"), ({Payload("x"): 1}, "the key state[")):
        with pytest.raises(ConfigError, match="torch.from_numpy") as info:
            check_plain_state(bad)
        assert where in str(info.value)


def test_a_trial_saving_numpy_state_fails_with_the_fix(storage):
    study = tl.Study("np", SPACE, saves_numpy, metric="score", mode="max", budget={"epochs": 3}, storage=storage,
                     searcher="random", scheduler={"name": "sha", "reduction_factor": 3, "n": 3})
    study.run(seed=0)
    t = study.trials[0]
    assert t.state == "failed" and "torch.from_numpy" in t.error and "state['rng'][1]" in t.error


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\x80\x04K\x01."])
def test_unreadable_checkpoint_files_are_refused_with_one_line(tmp_path, content):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="was refused") as info:
        load_state(str(path))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="was refused"):
        load_state(str(tmp_path / "missing.pt"))
