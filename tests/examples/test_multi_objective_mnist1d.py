"""Real MNIST-1D studies with two objectives: accuracy bought with width, and the shipped example."""

from pathlib import Path

import pytest
import trial_functions as tf

import tuneloop as tl

EXAMPLE = Path(__file__).parents[2] / "examples" / "multi_objective_mnist1d.py"


@pytest.mark.slow
def test_accuracy_against_width_gives_a_front_of_several_models(storage):
    """Ten widths of a one-hidden-layer MLP, 8 epochs each: wider is more accurate and costs more
    parameters, so most trials are on the front, and along it accuracy rises with parameters."""
    study = tl.Study("width", tl.Space(width=tl.Int(2, 256, log=True)), tf.mnist1d_width,
                     objectives={"val_acc": "max", "params_m": "min"}, budget={"epochs": 8}, storage=storage,
                     searcher="sobol")
    study.run(n_trials=10, seed=0)
    trials = study.trials
    assert all(t.state == "completed" for t in trials), [t.error for t in trials]
    for t in trials:  # fit's params_m is the model's real parameter count
        width = t.params["width"]
        assert t.values["params_m"] == pytest.approx((40 * width + width + width * 10 + 10) / 1e6)
        assert t.values["latency_ms"] > 0 and t.values["train_time_s"] > 0
    front = sorted(study.front, key=lambda t: t.values["params_m"])
    assert len(front) >= 4, [(t.params["width"], t.values["val_acc"]) for t in trials]
    accs = [t.values["val_acc"] for t in front]
    assert accs == sorted(accs) and accs[0] < accs[-1]  # a trade-off: each step up the front costs parameters
    assert accs[-1] > 0.4  # it learned (10 classes: chance is 0.1)
    assert study.best.values["val_acc"] == accs[-1] == max(t.values["val_acc"] for t in trials)
    small = study.pick(f"max val_acc where params_m <= {front[1].values['params_m']}")
    assert small.number == front[1].number


@pytest.mark.slow
def test_the_accuracy_latency_example_runs_from_the_cli_and_keeps_its_constraint(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tuneloop.cli import app

    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "t.db")
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "--trials", "6", "--storage", db, "--seed", "0"])
    assert result.exit_code == 0, result.output
    stored = tl.Study.stored("mnist1d-accuracy-latency", db)
    trials, front = stored.trials, stored.front
    assert len(trials) == 6 and all(t.state == "completed" for t in trials), [t.error for t in trials]
    assert front and all(t.values["params_m"] <= 0.25 for t in front)
    assert "Pareto front of mnist1d-accuracy-latency" in result.output
    assert all({"val_acc", "latency_ms", "params_m", "train_time_s"} <= set(t.values) for t in trials)
