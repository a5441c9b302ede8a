"""Every example and the demo run, on a tiny budget, through the public entry points."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


# the transformers example takes 3 s (a model to build): it runs in the slow call of .ci/run
@pytest.mark.parametrize("path", [pytest.param(p, marks=[pytest.mark.slow] if p.stem == "hf_tiny_classifier" else [])
                                  for p in EXAMPLES], ids=[p.stem for p in EXAMPLES])
def test_example_runs_on_a_tiny_budget(path, storage, monkeypatch):
    study = tl.load_study(path)
    # the file is imported once per process, so its study is shared: the tiny budget is undone after the test
    # (left behind, it cut tests/integrations' run of the same example to 2 epochs in CI's slow call)
    monkeypatch.setattr(study, "budget", tl.Budget(epochs=2))
    summary = study.run(n_trials=2, storage=storage, seed=0)
    assert summary.finished_total == 2
    trials = study.trials
    assert all(t.state in ("completed", "pruned") for t in trials), [t.error for t in trials]
    assert 0.1 <= study.best.value <= 1.0  # an accuracy, better than nothing


@pytest.mark.slow  # the demo end to end (8 s): .ci/run runs it in its second pytest call
def test_demo_command_tunes_then_tests_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # one sentence per line
    result = CliRunner().invoke(app, ["demo", "--minutes", "0.02", "--members", "8", "--epochs", "2", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "Best trial of demo-mnist1d-mlp" in result.output
    assert "MNIST-1D test accuracy" in result.output and "paper: CNN" in result.output
    line = next(ln for ln in result.output.splitlines() if "this run: tuned MLP" in ln)
    mean, half = map(float, re.search(r"([\d.]+)% ± ([\d.]+)% \(5 seeds\)", line).groups())
    assert 10.0 <= mean <= 100.0 and half >= 0  # finalized: 5 seeds, each tested once
    assert "Re-ranking the best 6 over 3 seeds" in result.output and "finalizing the winner" in result.output
    assert re.search(r"Chosen by its validation accuracy over 3 seeds", result.output)
    assert re.search(r"The 95% interval \[.*\] (lies above|lies below|includes) the paper's MLP", result.output)
    assert (tmp_path / "tuneloop.db").exists()
    best = line.split("(trial ")[1].split(")")[0]
    show = CliRunner().invoke(app, ["show", "demo-mnist1d-mlp", best])
    assert show.exit_code == 0, show.output
    for section in ("Curves", "Slices at step", "class 9", "Samples (3)", "predictions/val", "confusion", "misclassified-step",
                    "Histograms"):
        assert section in show.output, section
    analyzed = CliRunner().invoke(app, ["analyze", "demo-mnist1d-mlp"])  # the playbook's checks, end to end
    assert analyzed.exit_code == 0, analyzed.output
    for check in ("importance", "boundaries", "infeasible", "sampling", "isolation", "curves", "step budget",
                  "instability", "batch size", "adam budget", "next round"):
        assert check in analyzed.output, check
