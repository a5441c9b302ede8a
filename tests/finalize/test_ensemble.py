"""Ensembles: members that err on different thirds make a perfect vote; gains carry intervals."""

import json

import numpy as np
import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.finalize import ensemble

SPACE = tl.Space(k=tl.Choice([0, 1, 2]))


def finalized(storage, seeds=2, fit_on="train"):
    study = tl.Study("members", SPACE, tf.ensemble_member, metric="val_acc", mode="max", budget={"epochs": 6},
                     storage=storage)
    study.run(searcher="grid")
    study.finalize(top=3, seeds=seeds, fit_on=fit_on)
    return study


def test_vote_and_average_fix_what_each_member_gets_wrong(storage):
    result = finalized(storage).ensemble()
    assert result.study == "members-final" and result.split == "test" and result.seeds == 2
    assert result.warning is None and "t interval over 2 seeds" in result.interval
    rows = {r.method: r for r in result.rows}
    assert rows["best single"].score == pytest.approx(2 / 3)
    for method in ("vote", "average"):
        assert rows[method].score == pytest.approx(1.0)
        assert rows[method].gain == pytest.approx(1 / 3)
        assert rows[method].gain_low == pytest.approx(1 / 3) and rows[method].gain_high == pytest.approx(1 / 3)
    assert "validation predictions" in rows["stack"].note and rows["stack"].score > 0.95
    assert result.members[0].startswith("#1 (members trials 0)")


def test_without_validation_predictions_stacking_is_cross_fitted_on_test(storage):
    result = finalized(storage, seeds=1, fit_on="train+val").ensemble(["stack"])
    _, stack = result.rows
    assert "cross-fitted" in stack.note and stack.score > 0.95
    # one seed: the gain's interval is a paired bootstrap over the test examples, around the true gain
    assert "bootstrap over 180 examples" in result.interval
    assert stack.gain_low < stack.gain < stack.gain_high and stack.gain_low > 0.2


def test_top_tuning_trials_are_used_on_validation_with_a_warning(storage):
    tl.Study("members", SPACE, tf.ensemble_member, metric="val_acc", mode="max", budget={"epochs": 6},
             storage=storage).run(searcher="grid")
    result = ensemble(tl.Store(storage), "members", ["vote"], top=3)
    assert result.split == "val" and "optimistic" in result.warning
    assert {r.method: r.score for r in result.rows}["vote"] == pytest.approx(1.0)


def test_regression_outputs_are_averaged_and_vote_is_left_out(storage):
    def regress(trial):
        trial.splits({"train": ([0], [0]), "val": ([0], [0]), "test": ([0], [0])})  # marks this a proper final run
        rng = np.random.default_rng(trial.params["k"])
        y = np.linspace(0, 1, 200)
        trial.log_predictions(1, trial.heldout, y + rng.normal(0, 0.1, 200), y)
        return {f"{trial.heldout}_mse": 0.01 + trial.params["k"] * 1e-3}

    study = tl.Study("reg", SPACE, regress, metric="val_mse", mode="min", storage=storage)
    study.run(searcher="grid")
    study.finalize(top=3, seeds=1, fit_on="train+val")
    result = study.ensemble()
    rows = {r.method: r for r in result.rows}
    assert result.metric == "mse" and "vote" not in rows
    assert rows["average"].score < rows["best single"].score * 0.6  # independent noise averages out
    assert rows["average"].gain > 0 and rows["average"].gain_low > 0


def test_missing_predictions_and_too_few_members_are_explained(storage):
    study = tl.Study("quad", tl.Space(x=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss", mode="min",
                     storage=storage, searcher="random")
    study.run(n_trials=3, seed=0)
    with pytest.raises(tl.TuneloopError, match="saved no predictions on val.*log_predictions"):
        ensemble(tl.Store(storage), "quad")
    with pytest.raises(tl.ConfigError, match="Unknown ensemble method"):
        ensemble(tl.Store(storage), "quad", ["boost"])
    members = finalized(storage)
    members.finalize(top=1, seeds=1, again=True)
    with pytest.raises(tl.TuneloopError, match="at least 2 finalized configurations"):
        members.ensemble()


def test_finalize_and_ensemble_from_the_shell(write_experiment, tmp_path, monkeypatch):
    path = write_experiment("""
        import tuneloop as tl
        import trial_functions as tf

        study = tl.Study("members", tl.Space(k=tl.Choice([0, 1, 2])), tf.ensemble_member, metric="val_acc",
                         mode="max", budget={"epochs": 6}, searcher="grid")
    """)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path)]).exit_code == 0
    result = runner.invoke(app, ["finalize", "members", "--top", "3", "--seeds", "2"])
    assert result.exit_code == 0, result.output
    assert "test once over 2 seeds" in result.output and "test_acc (95% CI)" in result.output
    shown = runner.invoke(app, ["finalize", "members", "--show"])
    assert shown.exit_code == 0 and "members-final" in shown.output
    refused = runner.invoke(app, ["finalize", "members", "--top", "2"])
    assert refused.exit_code == 1 and "--again" in refused.output
    ens = runner.invoke(app, ["ensemble", "members", "--json", "ens.json"])
    assert ens.exit_code == 0, ens.output
    assert "vote" in ens.output and "+0.3333 [+0.3333, +0.3333]" in ens.output
    saved = json.loads((tmp_path / "ens.json").read_text())
    assert {r["method"] for r in saved["rows"]} == {"best single", "vote", "average", "stack"}
