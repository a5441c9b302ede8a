"""tuneloop check and tuneloop baseline on experiment files, as a user runs them."""

import pytest
from typer.testing import CliRunner

from tuneloop.cli import app

GOOD = """
import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import MLP

study = tl.Study("checked", tl.Space(x=tl.Float(0, 1)), print, metric="val_acc", mode="max")
checks = tl.Checks(lambda: MLP(40, 10, width=64), data=mnist1d(), fit={"lr": 3e-3}, stages=[])
"""

BROKEN = GOOD.replace('fit={"lr": 3e-3}', 'fit={"lr": 1e-7}')


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_check_passes_stores_and_baseline_runs_alone(write_experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    exp = write_experiment(GOOD)
    result = CliRunner().invoke(app, ["check", str(exp)])
    assert result.exit_code == 0, result.output
    assert "Every check passed" in result.output and "stored with study 'checked'" in result.output
    assert "logistic regression" in result.output
    only = CliRunner().invoke(app, ["baseline", str(exp)])
    assert only.exit_code == 0 and "random forest" in only.output and "Stored with study 'checked'" in only.output


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_a_failing_check_exits_1_with_evidence_causes_and_next_step(write_experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["check", str(write_experiment(BROKEN, name="broken.py"))])
    assert result.exit_code == 1
    out = result.output
    for words in ("FAIL overfit a tiny batch: loss flat", "evidence:", "likely cause: the learning rate is far too low",
                  "next step: raise the learning rate", "Stopped at 'overfit a tiny batch'"):
        assert words in out, words


def test_a_file_without_checks_says_what_to_add(write_experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", str(write_experiment("x = 1", name="none.py"))])
    assert result.exit_code == 1 and "defines no checks: add checks = tl.Checks(" in " ".join(result.output.split())
