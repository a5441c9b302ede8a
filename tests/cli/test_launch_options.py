"""The options every launching command shares (declared once in cli/_common.py): ``--executor``,
``--members`` and ``--max-retries`` on run, finalize and probe lr|batch reach the function that
runs the trials; and ``tuneloop run`` says when another live driver holds some of the study's trials."""

import time

import pytest

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.store import Lease, Store

CLIFF = """
    import tuneloop as tl
    import trial_functions as tf

    study = tl.Study("cliff", tl.Space(lr=tl.Choice([0.01, 0.02])), tf.lr_cliff, metric="val_acc", mode="max",
                     budget={"epochs": 2}, searcher="grid")
"""

QUICK = """
    import tuneloop as tl

    study = tl.Study("quick", tl.Space(x=tl.Float(0.0, 1.0)), lambda trial: {"loss": trial.params.x},
                     metric="loss", mode="min", searcher="random", executor="inline")
"""


@pytest.fixture
def reached(monkeypatch):
    """Replace a launching function by one that records its keyword arguments and stops the command."""
    calls = {}

    def stub(target, name):
        def record(*args, **kwargs):
            calls[name] = kwargs
            raise ConfigError(f"{name} reached")

        monkeypatch.setattr(target, name, record)

    stub.calls = calls
    return stub


def test_probe_lr_runs_with_an_executor_and_no_retries(cli, write_experiment):
    exp = write_experiment(CLIFF)
    assert cli("run", exp).exit_code == 0
    result = cli("probe", "lr", exp, "--factors", "1,8", "--executor", "inline", "--max-retries", "0")
    assert result.exit_code == 0, result.output
    assert "unstable from 8x" in result.output


def test_probe_lr_passes_members_executor_and_retries(cli, write_experiment, reached):
    import tuneloop.probe

    reached(tuneloop.probe, "probe_lr")
    result = cli("probe", "lr", write_experiment(CLIFF), "--executor", "population", "--members", "3",
                 "--max-retries", "2")
    assert result.exit_code == 1 and "probe_lr reached" in result.output
    assert {k: reached.calls["probe_lr"][k] for k in ("executor", "members", "max_retries")} == {
        "executor": "population", "members": 3, "max_retries": 2}


def test_probe_batch_passes_executor_and_retries(cli, write_experiment, reached):
    import tuneloop.probe

    reached(tuneloop.probe, "probe_batch")
    result = cli("probe", "batch", write_experiment(CLIFF), "--executor", "processes", "--max-retries", "0")
    assert result.exit_code == 1 and "probe_batch reached" in result.output
    assert reached.calls["probe_batch"]["executor"] == "processes" and reached.calls["probe_batch"]["max_retries"] == 0


def test_probe_batch_checks_max_retries_like_study_run(cli, write_experiment):
    result = cli("probe", "batch", write_experiment(CLIFF), "--max-retries", "-1")
    assert result.exit_code == 1 and "max_retries" in result.output and "Traceback" not in result.output


def test_finalize_passes_members_executor_and_retries(cli, write_experiment, reached):
    exp = write_experiment(QUICK)
    assert cli("run", exp, "--trials", 2).exit_code == 0
    reached(tl.Study, "finalize")
    result = cli("finalize", "quick", "--file", exp, "--executor", "population", "--members", "4",
                 "--max-retries", "0")
    assert result.exit_code == 1 and "finalize reached" in result.output
    assert {k: reached.calls["finalize"][k] for k in ("executor", "members", "max_retries")} == {
        "executor": "population", "members": 4, "max_retries": 0}


def test_finalize_checks_max_retries_like_study_run(cli, write_experiment):
    exp = write_experiment(QUICK)
    assert cli("run", exp, "--trials", 2).exit_code == 0
    result = cli("finalize", "quick", "--file", exp, "--max-retries", "-1")
    assert result.exit_code == 1 and "max_retries" in result.output and "Traceback" not in result.output


def test_a_run_leaves_another_live_drivers_trial_alone_and_waits_for_it(cli, write_experiment, tmp_path):
    """Issue 18: a run that has started its share waits for the other live driver's trial (never
    re-running it), so the study ends at exactly --trials finished; a run with nothing to start says
    which trials another driver holds."""
    import threading

    exp = write_experiment(QUICK)
    first = cli("run", exp, "--trials", 1)
    assert first.exit_code == 0 and "left alone" not in first.output  # said only when there are such trials
    other = Lease("other-run", "another-machine", 1)  # a driver on another machine, its heartbeat fresh
    with Store(tmp_path / "tuneloop.db") as store:
        study = store.require_study("quick")
        held, _, _ = store.claim_trial(study.id, {"x": 0.5}, lambda n: n, other)

    def the_other_driver_finishes_once_trial_2_has() -> None:  # an event in the store, not a timer
        with Store(tmp_path / "tuneloop.db") as s:
            deadline = time.monotonic() + 60
            while s.count_finished(study.id) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            s.finish_leased_trial(held, other.owner, "completed", 0.5, {"loss": 0.5})

    helper = threading.Thread(target=the_other_driver_finishes_once_trial_2_has)
    helper.start()
    result = cli("run", exp, "--trials", 3)
    helper.join()
    assert result.exit_code == 0, result.output
    assert "Ran 1 trials" in result.output and "3 finished in total" in result.output
    with Store(tmp_path / "tuneloop.db", read_only=True) as store:
        trial = store.trial(study.id, 1)
    assert (trial.value, trial.attempt) == (0.5, 0)  # the other driver's result: never re-run here
    with Store(tmp_path / "tuneloop.db") as store:
        store.claim_trial(study.id, {"x": 0.25}, lambda n: n, other)
    done = cli("run", exp, "--trials", 3)  # nothing left to start: says who runs the rest
    assert "already has 3 finished trials" in done.output and "1 trial is running under another" in done.output
