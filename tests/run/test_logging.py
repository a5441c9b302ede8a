"""What trials log besides metrics: histograms, slices, samples, alerts, through both executors."""

import numpy as np
import pytest
import trial_functions as tf
from PIL import Image

import tuneloop as tl

EXECUTORS = [{"executor": "inline", "workers": 1}, {"executor": "processes", "workers": 2}]


def run_grid(fn, storage, xs, rules="default", **how):
    study = tl.Study("logs", tl.Space(x=tl.Choice(xs)), fn, metric="loss", mode="min", storage=storage, rules=rules)
    study.run(searcher="grid", **how)
    return study, study.store(None)


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_histograms_slices_samples_are_stored(how, storage):
    study, store = run_grid(tf.logs_everything, storage, [0.5], **how)
    (t,) = study.trials
    assert t.state == "completed"
    hists = {h.name: h for h in store.histograms(t.id)}
    h = hists["act/fc1"]
    assert sum(h.counts) == h.n == 100 and h.nonfinite == 0 and h.flag is None
    assert (h.low, h.high) == (0.0, 99.0)
    assert h.stats["mean"] == pytest.approx(49.5) and h.stats["std"] == pytest.approx(np.arange(100).std())
    assert h.counts == np.histogram(np.arange(100.0), bins=32, range=(0, 99))[0].tolist()
    assert hists["empty"].flag == "empty" and hists["empty"].n == 0

    slices = {s.slice: s for s in store.slices(t.id)}
    assert (slices["class 1"].value, slices["class 1"].n, slices["class 1"].step) == (0.75, 12, 1)

    samples = {s.name: s for s in store.samples(t.id)}
    image = Image.open(store.artifact_dir / samples["picture"].path)
    assert image.size == (4, 3) and samples["picture"].payload is None
    assert np.asarray(image)[-1, -1] == 255 and np.asarray(image)[0, 0] == 0
    assert samples["note"].payload == "hello"
    assert samples["table"].payload == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert store.series([t.id])[t.id]["grad_norm"] == [(0, 1.5)]


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_a_non_finite_histogram_alerts_and_the_default_rule_stops_the_trial_as_diverged(how, storage):
    study, store = run_grid(tf.logs_everything, storage, [0.5, 2.0], **how)
    by_x = {t.params["x"]: t for t in study.trials}
    assert by_x[0.5].state == "completed" and store.alerts(by_x[0.5].id) == []
    bad = by_x[2.0]
    assert bad.state == "diverged"
    (alert,) = store.alerts(bad.id)
    assert alert.rule == "non-finite" and alert.quantity == "act/fc1" and alert.action == "stop"
    assert "holds 1 non-finite of 100 values" in alert.message and "clip gradients" in alert.message
    assert next(h for h in store.histograms(bad.id) if h.name == "act/fc1").flag == "nonfinite"


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_a_stop_rule_reaches_the_running_trial(how, storage):
    rules = [tl.Rule("blowup", max=10.0, action="stop", name="too big")]
    study, store = run_grid(tf.logs_until_stopped, storage, [1.0], rules=rules, **how)
    (t,) = study.trials
    assert t.state == "pruned"
    assert 10 < t.values["loss"] < 200  # it stopped soon after the rule fired at step 11
    (alert,) = store.alerts(t.id)
    assert (alert.step, alert.value, alert.rule) == (11, 11.0, "too big")


def test_warn_rules_fire_once_per_trial_and_quantity(storage):
    rules = [tl.Rule("loss", max=0.1, name="high loss")]
    study, store = run_grid(tf.quadratic, storage, [2.0], rules=rules)
    (t,) = study.trials
    assert t.state == "completed"
    alerts = store.alerts(t.id)
    assert len(alerts) == 1 and alerts[0].step == 0 and alerts[0].message.startswith("high loss: loss = ")


def test_logging_a_non_number_names_the_key(storage):
    def bad(trial):
        trial.log(0, lr="fast")

    study = tl.Study("bad", tl.Space(x=tl.Float(0, 1)), bad, metric="loss", mode="min", storage=storage)
    study.run(n_trials=1)
    assert "Metric 'lr' must be a number" in study.trials[0].error


def test_a_version_1_database_is_upgraded_in_place(storage, space):
    import sqlite3

    from tuneloop.store import SCHEMA_VERSION, Store

    with Store(storage) as s:
        s.create_study("old", "loss", "min", space, {"seed": 1})
    path = storage.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    for table in ("histograms", "alerts", "slices", "samples"):
        con.execute(f"drop table {table}")
    con.execute("update tuneloop_meta set value = '1'")
    con.commit()
    with Store(storage) as s:
        assert s.get_study("old").space == space
        assert s.histograms(1) == []
    assert con.execute("select value from tuneloop_meta").fetchone()[0] == str(SCHEMA_VERSION)


def test_show_prints_every_section(storage, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tuneloop.cli import app

    monkeypatch.setenv("COLUMNS", "250")  # wide enough that paths are not folded
    study, store = run_grid(tf.logs_everything, storage, [2.0, 0.5])
    result = CliRunner().invoke(app, ["show", "logs", "0", "--storage", storage])
    assert result.exit_code == 0, result.output
    out = result.output
    for section in ("Trial 0 of logs", "diverged", "Curves", "Alerts (1)", "non-finite", "Slices at step 1",
                    "class 1", "Samples (3)", "picture-step1.png", "'hello'", "Histograms (2 quantities)"):
        assert section in out, section
    missing = CliRunner().invoke(app, ["show", "logs", "9", "--storage", storage])
    assert missing.exit_code == 1 and "has no trial 9" in missing.output
