"""tuneloop probe lr: where training becomes unstable above the best rate, warmup and clipping."""

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.probe import probe_lr


def tuned(storage):
    study = tl.Study("cliff", tl.Space(lr=tl.Choice([0.01, 0.02, 0.03])), tf.lr_cliff, metric="val_acc", mode="max",
                     budget={"epochs": 10}, storage=storage)
    study.run(searcher="grid")
    return study


def test_the_probe_finds_the_cliff_and_recommends_warmup_and_clipping(storage):
    result = probe_lr(tuned(storage))
    assert result.best_lr == 0.03 and [r.factor for r in result.rows] == [1, 2, 4, 8, 16]
    assert [r.unstable is None for r in result.rows] == [True, True, False, False, False]  # 0.12 and up fall
    assert result.unstable_from == 4 and "training loss rose" in result.rows[2].unstable
    assert any("add warmup" in a for a in result.advice)
    assert result.clip == pytest.approx(0.03 * 100 * 1.75)  # the 90th percentile of the 1x run's norms
    assert result.clipped_share > 0.5 and any("more than half" in a for a in result.advice)
    again = probe_lr(tuned(storage))  # a rerun reads the stored probe
    assert [r.value for r in again.rows] == [r.value for r in result.rows]
    from tuneloop.analysis import analyze

    found = {f.check: f for f in analyze(tl.Store(storage), "cliff")}
    assert found["instability"].verdict == "warn" and "unstable from 4x" in found["instability"].summary
    assert "add warmup" in found["instability"].recommendation and len(found["instability"].evidence) == 5
    assert found["batch size"].summary == "No batch-size probe yet."


def test_probe_from_the_shell(write_experiment, tmp_path, monkeypatch):
    path = write_experiment("""
        import tuneloop as tl
        import trial_functions as tf

        study = tl.Study("cliff", tl.Space(lr=tl.Choice([0.01, 0.02])), tf.lr_cliff, metric="val_acc", mode="max",
                         budget={"epochs": 4}, searcher="grid")
    """)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path)]).exit_code == 0
    result = runner.invoke(app, ["probe", "lr", str(path)])
    assert result.exit_code == 0, result.output
    assert "unstable from 8x" in result.output and "clip gradients at about" in result.output
    wrong = runner.invoke(app, ["probe", "lr", str(path), "--param", "beta"])
    assert wrong.exit_code == 1 and "no parameter 'beta'" in wrong.output


def test_the_batch_probe_recommends_where_throughput_stops_growing(storage, write_experiment, tmp_path, monkeypatch):
    from tuneloop.probe import probe_batch

    study = tl.Study("batch", tl.Space(batch_size=tl.Choice([32])), tf.batch_timing, metric="val_acc", mode="max",
                     budget={"epochs": 1}, storage=storage)
    study.run(searcher="grid")
    result = probe_batch(study)
    assert [r.batch_size for r in result.rows] == [16, 32, 64, 128, 256, 512, 1024]
    assert result.recommended == 256  # beyond it one batch holds all 256 examples: no faster
    assert result.rows[1].speedup > 1.1 and result.rows[5].speedup < 1.1
    assert any("re-tuning the learning rate" in a for a in result.advice)
    from tuneloop.analysis import analyze

    found = {f.check: f for f in analyze(tl.Store(storage), "batch")}
    assert found["batch size"].summary == "Throughput grows up to batch size 256."
    path = write_experiment("""
        import tuneloop as tl
        import trial_functions as tf

        study = tl.Study("batch", tl.Space(batch_size=tl.Choice([32])), tf.batch_timing, metric="val_acc", mode="max",
                         budget={"epochs": 1}, searcher="grid")
    """)
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["probe", "batch", str(path), "--storage", storage])
    assert shown.exit_code == 0, shown.output
    assert "use batch size 256" in shown.output and "speedup vs half" in shown.output
