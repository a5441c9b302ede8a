"""The views: what the CLI's tables, the dashboard and the report draw, read from a store built by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import tuneloop as tl
from tuneloop.store import Store
from tuneloop.views import (
    curve_summaries,
    latest_tests,
    measured_effects,
    round_rows,
    trial_data,
    trial_view,
    trials_of,
)


@pytest.fixture
def store(storage):
    """Study "s" (max val_acc): trial 0 completed at 0.5, 1 failed, 2 completed at 0.9, 3 pruned at 0.7."""
    with Store(storage) as store:
        record = store.create_study("s", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)), {})
        for number, state, value in ((0, "completed", 0.5), (1, "failed", None), (2, "completed", 0.9),
                                     (3, "pruned", 0.7)):
            trial = store.create_trial(record.id, number, {"x": number / 10}, seed=number)
            store.add_points([(trial, 0, 0, "grad_norm", 1.0), (trial, 0, 0, "loss", 2.0), (trial, 0, 0, "val_acc", 0.1),
                              (trial, 0, 1, "val_acc", value or 0.0)])
            store.finish_trial(trial, state, value, {} if value is None else {"val_acc": value})
        yield store


def test_trials_by_value_put_completed_trials_best_first_then_the_rest(store):
    record, rows = trials_of(store, "s", sort="value")
    assert record.name == "s"
    assert [t.number for t in rows] == [2, 0, 3, 1]
    assert [t.number for t in trials_of(store, "s")[1]] == [0, 1, 2, 3]
    assert [t.number for t in trials_of(store, "s", state="completed")[1]] == [0, 2]


def test_trial_data_orders_curves_objective_first_and_resolves_sample_files(store):
    record = store.require_study("s")
    trial = store.trial(record.id, 2)
    genuine = store.save_artifact(record.id, "s", 2, "picture", 1, b"\x89PNG", "png")
    store.write_batch({"samples": [
        {"trial_id": trial.id, "attempt": trial.attempt, "step": 1, "name": name, "kind": "image", "path": path,
         "payload": None} for name, path in (("picture", genuine), ("forged", "../outside.png"))]})
    data = trial_data(store, "s", 2)
    assert data.trial.number == 2 and data.study.metric == "val_acc"
    assert [c.name for c in curve_summaries(data)] == ["val_acc", "loss", "grad_norm"]
    assert data.files[genuine] == store.artifact_file(genuine)
    assert data.files["../outside.png"] is None  # a path leaving the artifact folder resolves to nothing
    urls = {s["name"]: s["url"] for s in trial_view(store, "s", 2)["samples"]}
    assert urls == {"picture": f"/artifacts/{genuine}", "forged": None}
    inlined = {s["name"]: s["url"] for s in trial_view(store, "s", 2, inline_images=True)["samples"]}
    assert inlined["picture"].startswith("data:image/png;base64,") and inlined["forged"] is None


def test_round_rows_count_trials_and_take_the_best_by_the_study_mode(store):
    (row,) = round_rows(store, "s")
    assert (row.goal, row.round, row.study, row.parent) == ("s", 1, "s", None)
    assert (row.completed, row.trials, row.best) == (2, 4, 0.9)
    assert row.final is None and row.final_test is None


def test_measured_effects_come_from_each_idea_s_latest_test():
    tests = {1: [{"result": {"effect": 0.1}}, {"result": {"effect": 0.3}}], 2: []}
    ledger = SimpleNamespace(tests=lambda idea_id: tests[idea_id])
    latest = latest_tests(ledger, [SimpleNamespace(id=1), SimpleNamespace(id=2)])
    assert measured_effects(latest) == {1: 0.3}
