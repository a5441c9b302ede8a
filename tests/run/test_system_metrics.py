"""System metrics per trial (run/_system.py): sampled in the process that runs the trial, stored as
``sys/...`` metrics with step = seconds, kept out of the objective, the final values and the
training curves, and never allowed to change a trial's outcome. Worker processes' samples are
checked with the pinned run of tests/run/test_gpus.py (one set of workers started, not two)."""

import threading
import time

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.errors import ConfigError
from tuneloop.run._system import Sampler
from tuneloop.views import curve_summaries, system_summaries, trial_data, trial_view

SYSTEM = {"sys/cpu_percent", "sys/rss_mb"}  # and sys/gpu_mem_mb, sys/gpu_util where NVML sees a GPU


def _until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_the_sampler_reads_this_process_and_stops_quietly():
    sent = []
    sampler = Sampler(7, 0.05, sent.append)
    assert _until(lambda: sent)
    sampler.stop()
    assert not sampler._thread.is_alive()
    first = sent[0]
    assert first.trial_id == 7 and first.step == 0 and set(first.values) >= SYSTEM
    assert first.values["sys/rss_mb"] > 10 and first.values["sys/cpu_percent"] >= 0
    assert len(sent) == 1  # at most one sample per whole second of the trial

    def broken(event):
        raise BrokenPipeError("the driver is gone")

    sampler = Sampler(8, 0.05, broken)
    assert _until(lambda: not sampler._thread.is_alive())  # it stopped at its first failure, raising nothing
    sampler.stop()


def test_each_trial_is_sampled_as_metrics_never_as_its_result(storage, monkeypatch):
    monkeypatch.setenv("TUNELOOP_SYSTEM_EVERY", "0.1")
    threads = []

    class Logged(tl.Callback):
        def on_log(self, number, step, values):
            threads.append(threading.get_ident())

    study = tl.Study("busy", tl.Space(x=tl.Float(0.6, 0.7)), tf.busy, metric="loss", mode="min",
                     storage=storage, searcher="random")
    study.run(1, executor="inline", callbacks=[Logged()])  # samples queue until the trial's thread sends them
    (trial,) = study.trials
    assert trial.state == "completed" and trial.value == trial.params["x"]
    assert set(trial.values) == {"loss"}  # no sys/ among the final values
    assert trial.attrs["device"] == "cpu" and trial.attrs["host"]
    store = study.store()
    points = store.series([trial.id])[trial.id]
    assert set(points) >= SYSTEM and points["sys/cpu_percent"][0][0] == 0  # step: whole seconds
    assert max(v for _, v in points["sys/cpu_percent"]) > 10  # the trial kept a core busy
    assert threads and set(threads) == {threading.get_ident()}  # handled on the driver's thread, never the sampler's
    data = trial_data(store, study.name, 0)
    assert [c.name for c in curve_summaries(data)] == ["loss"]
    assert {s.name for s in system_summaries(data)} == {n for n in points if n.startswith("sys/")}
    view = trial_view(store, study.name, 0)
    assert set(view["curves"]) == {"loss"} and set(view["system"]) >= SYSTEM
    shown = CliRunner().invoke(app, ["show", study.name, "0", "--storage", storage], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "System (sampled while it ran)" in shown.output
    assert "sys/cpu_percent" in shown.output and "device cpu on host" in shown.output


def test_system_metrics_are_never_an_objective_and_the_interval_is_checked(storage, monkeypatch):
    for what in ({"metric": "sys/cpu_percent", "mode": "min"}, {"objectives": {"loss": "min", "sys/rss_mb": "min"}},
                 {"metric": "loss", "mode": "min", "constraints": {"sys/rss_mb": ("<=", 100)}}):
        with pytest.raises(ConfigError, match="system metric tuneloop samples .*never an objective or constraint"):
            tl.Study("sys", tl.Space(x=tl.Float(0, 1)), tf.noop, storage=storage, **what)
    monkeypatch.setenv("TUNELOOP_SYSTEM_EVERY", "soon")
    study = tl.Study("every", tl.Space(x=tl.Float(0, 1)), tf.noop, metric="loss", mode="min", storage=storage)
    with pytest.raises(ConfigError, match="TUNELOOP_SYSTEM_EVERY='soon' must be a number of seconds"):
        study.run(1)
    monkeypatch.setenv("TUNELOOP_SYSTEM_EVERY", "0")  # off
    study.run(1)
    assert not [n for n in study.store().series([study.trials[0].id])[study.trials[0].id] if n.startswith("sys/")]
