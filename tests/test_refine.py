"""``tuneloop refine``: the next round as an editable experiment file that runs as it is."""

from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app

EXPERIMENT = """
    import trial_functions as tf
    import tuneloop as tl

    space = tl.Space(act=tl.Choice(["relu", "gelu", "tanh"]), lr=tl.LogFloat(1e-4, 1.0),
                     width=tl.Int(16, 256, log=True))
    study = tl.Study("act", space, tf.activation_bowl, metric="val_acc", mode="max", scientific=["act"],
                     fixed={"depth": 2})
"""


def test_refine_writes_a_round_that_runs_and_chains(write_experiment, tmp_path, monkeypatch):
    path = write_experiment(EXPERIMENT)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path), "--trials", "24", "--seed", "0"]).exit_code == 0
    result = runner.invoke(app, ["refine", "act"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "act_r2.py"
    text = written.read_text()
    assert "Round 2 of goal 'act'" in text and "from 24 completed trials of round 1" in text
    assert "# lr: the top 9 trials span" in text and "# act: kept: a scientific parameter" in text
    assert "fixed={'depth': 2}" in text and "scientific=['act']" in text
    compile(text, str(written), "exec")
    ran = runner.invoke(app, ["run", str(written), "--trials", "6", "--seed", "1"])
    assert ran.exit_code == 0, ran.output
    record = tl.Store("tuneloop.db").require_study("act-r2")
    assert (record.config["round"], record.config["parent"], record.config["goal"]) == (2, "act", "act")
    assert record.config["experiment"] == str(written.resolve())  # so finalize and refine find this file
    assert record.space["lr"] != tl.LogFloat(1e-4, 1.0) and record.space["lr"].high <= 1.0
    again = runner.invoke(app, ["refine", "act"])
    assert again.exit_code == 1 and "exists" in again.output
    third = runner.invoke(app, ["refine", "act-r2", "-o", "r3.py"])
    assert third.exit_code == 1 and "6 completed trials" in third.output  # too few to refine from


def test_refine_needs_the_experiment_file_of_a_study_made_in_python(storage, tmp_path, monkeypatch):
    import trial_functions as tf

    tl.Study("py", tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(1e-4, 1.0)), tf.activation_bowl,
             metric="val_acc", mode="max", storage=storage).run(n_trials=10, seed=0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["refine", "py", "--storage", storage])
    assert result.exit_code == 1 and "--file EXPERIMENT.py" in result.output
