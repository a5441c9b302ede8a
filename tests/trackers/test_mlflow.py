"""MLflow specifics: a study run again continues its parent run, the best value so far is kept on
it, and a tracking URI MLflow refuses stops the run before any trial, saying what to use."""

from __future__ import annotations

import pytest

import tuneloop as tl
from tuneloop.trackers import MLflow


def _quadratic(trial: tl.Trial) -> float:
    trial.report(0, loss=(trial.params.x - 1.0) ** 2)
    return (trial.params.x - 1.0) ** 2


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # fast to create; the slow contract case covers SQLite
    return (tmp_path / "mlruns").as_uri()


def test_a_study_run_again_continues_its_parent_run_and_its_best_value(storage, file_store):
    from mlflow.tracking import MlflowClient

    study = tl.Study("resumed", tl.Space(x=tl.Float(-2.0, 2.0)), _quadratic, metric="loss", mode="min",
                     storage=storage, searcher="random", seed=0, rules=None)
    study.run(2, executor="inline", callbacks=[MLflow(file_store)])
    study.run(4, executor="inline", callbacks=[MLflow(file_store)])
    client = MlflowClient(file_store)
    experiment = client.get_experiment_by_name("resumed")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("tuneloop.kind") == "study"]
    trials = [r for r in runs if r is not parent]
    assert sorted(int(r.data.tags["tuneloop.trial"]) for r in trials) == [0, 1, 2, 3]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert parent.info.status == "FINISHED"
    best = [m.value for m in client.get_metric_history(parent.info.run_id, "best/loss")]
    assert best == sorted(best, reverse=True) and best[-1] == pytest.approx(min(t.value for t in study.trials))


def test_a_refused_tracking_uri_stops_the_run_before_any_trial(storage, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    study = tl.Study("refused", tl.Space(x=tl.Float(-2.0, 2.0)), _quadratic, metric="loss", mode="min",
                     storage=storage, rules=None)
    with pytest.raises(tl.ConfigError, match=r"sqlite:///mlflow.db .*MLFLOW_ALLOW_FILE_STORE=true"):
        study.run(2, executor="inline", callbacks=[MLflow((tmp_path / "mlruns").as_uri())])
    assert study.trials == []
