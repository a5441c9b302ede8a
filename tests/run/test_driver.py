"""The driver with each executor: outcomes, failures, streaming, resume after Ctrl-C."""

import math

import pytest
import trial_functions as tf

import tuneloop as tl

EXECUTORS = [{"executor": "inline", "workers": 1}, {"executor": "processes", "workers": 2}]


def make(fn, storage, name="s", mode="min", metric="loss", **kw):
    space = kw.pop("space", tl.Space(x=tl.Float(-2.0, 2.0)))
    kw.setdefault("searcher", "random")
    return tl.Study(name, space, fn, metric=metric, mode=mode, storage=storage, **kw)


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_contract_trials_complete_with_values_and_curves(how, storage):
    study = make(tf.quadratic, storage)
    summary = study.run(n_trials=6, seed=0, **how)
    assert summary.outcomes == {"completed": 6} and summary.finished_total == 6
    trials = study.trials
    assert [t.number for t in trials] == list(range(6))
    for t in trials:
        assert t.value == pytest.approx((t.params["x"] - 0.5) ** 2)
    store = study.store(None)
    curves = store.series([t.id for t in trials])
    assert all([s for s, _ in c["loss"]] == [0, 1, 2, 3] for c in curves.values())
    assert study.best.value == min(t.value for t in trials)


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_contract_a_raising_trial_fails_with_its_traceback_and_the_study_goes_on(how, storage):
    study = make(tf.fails_when_negative, storage)
    study.run(n_trials=10, seed=1, **how)
    trials = study.trials
    failed = [t for t in trials if t.state == "failed"]
    assert len(trials) == 10 and failed and len(failed) < 10
    for t in failed:
        assert t.params["x"] < 0
        assert t.error.startswith("ValueError: x is negative")
        assert "fails_when_negative" in t.error  # the traceback is kept
    assert all(t.state == "completed" and t.value == t.params["x"] for t in trials if t.params["x"] >= 0)


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_sys_exit_in_a_trial_fails_that_trial_and_the_study_goes_on(how, storage):
    study = make(tf.exits, storage)
    summary = study.run(n_trials=8, seed=1, **how)
    trials = study.trials
    assert summary.finished_total == 8 and summary.retried == 0  # no worker died, nothing ran twice
    assert {t.state for t in trials if t.params["x"] < 0} == {"failed"}
    assert {t.state for t in trials if t.params["x"] >= 0} == {"completed"}
    for t in trials:
        if t.state == "failed":
            assert t.error.startswith("SystemExit: the trial function called sys.exit(3); return a result")
            assert "in exits" in t.error and t.attempt == 0  # the traceback shows where


def test_argparse_erroring_in_an_inline_trial_fails_it_with_the_fix(storage, capsys):
    import argparse

    def parses(trial):
        argparse.ArgumentParser().parse_args(["--no-such-flag"])

    study = make(parses, storage, name="argparse")
    summary = study.run(n_trials=2)
    assert summary.outcomes == {"failed": 2}
    assert study.trials[0].error.startswith("SystemExit: the trial function called sys.exit(2)")
    assert "read settings from trial.params" in study.trials[0].error


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_contract_nan_objective_stops_the_trial_as_diverged(how, storage):
    study = make(tf.nan_when_large, storage)
    study.run(n_trials=12, seed=2, **how)
    store = study.store(None)
    for t in study.trials:
        curve = store.series([t.id])[t.id]["loss"]
        if t.params["x"] > 1.0:
            assert t.state == "diverged" and len(curve) == 3 and math.isnan(curve[-1][1])
        else:
            assert t.state == "completed" and len(curve) == 5


@pytest.mark.parametrize("how", EXECUTORS, ids=["inline", "processes"])
def test_contract_scheduler_stops_are_recorded_as_pruned(how, storage):
    study = make(tf.quadratic, storage, scheduler={"name": "asha", "reduction_factor": 2})
    study.run(n_trials=12, seed=3, **how)
    pruned = [t for t in study.trials if t.state == "pruned"]
    assert pruned
    store = study.store(None)
    for t in pruned:
        assert len(store.series([t.id])[t.id]["loss"]) < 4  # stopped before the end


def test_trial_pruned_exception_and_missing_objective(storage):
    make(tf.prunes_itself, storage, name="a").run(n_trials=2)
    assert {t.state for t in make(tf.prunes_itself, storage, name="a").trials} == {"pruned"}
    study = make(tf.forgets_objective, storage, name="b")
    study.run(n_trials=1)
    (t,) = study.trials
    assert t.state == "failed"
    assert t.error.startswith("MissingObjective: the trial function finished without reporting 'loss'")


def test_a_bare_number_returned_is_the_objective(storage):
    study = make(tf.fails_when_negative, storage, space=tl.Space(x=tl.Float(0.0, 1.0)))
    study.run(n_trials=3)
    assert all(t.value == t.params["x"] and t.values == {"loss": t.value} for t in study.trials)


@pytest.mark.slow  # worker processes (2 s): .ci/run runs it in its second pytest call
def test_processes_run_elsewhere_and_stream_reports_while_the_trial_runs(storage):
    seen = {}

    class Clock(tl.Callback):
        def on_report(self, number, step, metrics):
            import time

            seen.setdefault(number, time.time())

    study = make(tf.report_then_sleep, storage)
    study.run(n_trials=2, workers=2, callbacks=[Clock()])
    import os

    for t in study.trials:
        assert t.state == "completed"
        # the report reached the driver well before the trial function returned
        assert t.values["finished_at"] - seen[t.number] > 0.4
    quad = make(tf.quadratic, storage, name="pids")
    quad.run(n_trials=4, workers=2)
    assert os.getpid() not in {t.values["pid"] for t in quad.trials}


def test_a_killed_worker_fails_its_trial_with_the_cause_and_is_replaced(storage):
    study = make(tf.killed_on_number_one, storage)
    summary = study.run(n_trials=5, workers=2)
    trials = study.trials
    assert summary.finished_total == 5 and len(trials) == 5 and summary.retried == 1  # retried once, died again
    assert trials[1].state == "failed" and trials[1].attempt == 1
    assert "WorkerDied" in trials[1].error and "signal 9" in trials[1].error
    assert all(t.state == "completed" for t in trials if t.number != 1)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_a_trial_whose_worker_died_runs_again_and_keeps_what_it_logged(storage):
    study = make(tf.killed_once, storage)
    summary = study.run(n_trials=4, workers=2)
    assert summary.outcomes == {"completed": 4} and summary.retried == 1
    store = study.store(None)
    trial = store.trial(store.get_study(study.name).id, 1)
    assert trial.attempt == 1 and trial.value == abs(trial.params["x"])
    (alert,) = store.alerts(trial.id)
    assert alert.action == "retry" and "WorkerDied" in alert.message and "retry 1 of at most 1" in alert.message
    with store._read() as conn:  # the dead attempt's report is still stored, under its attempt
        from tuneloop.store import schema

        rows = conn.execute(schema.metrics.select().where(schema.metrics.c.trial_id == trial.id)).fetchall()
    assert {(r.attempt, r.value) for r in rows} >= {(0, 9.0), (1, abs(trial.params["x"]))}


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_max_retries_zero_fails_at_once(storage):
    study = make(tf.killed_once, storage)
    summary = study.run(n_trials=3, workers=2, max_retries=0)
    assert summary.outcomes == {"completed": 2, "failed": 1} and summary.retried == 0
    with pytest.raises(tl.ConfigError, match="max_retries"):
        study.run(n_trials=3, max_retries=-1)


def test_ctrl_c_keeps_finished_trials_and_a_rerun_completes_exactly(storage):
    study = make(tf.interrupted_on_number_three, storage)
    with pytest.raises(KeyboardInterrupt):
        study.run(n_trials=8, seed=5)
    before = study.trials
    assert [t.state for t in before] == ["completed"] * 3 + ["interrupted"]
    summary = study.run(n_trials=8)
    after = study.trials
    assert summary.finished_total == 8
    assert [t.number for t in after] == list(range(8))  # nothing duplicated, nothing lost
    assert all(t.state == "completed" for t in after)
    assert after[3].attempt == 1 and after[3].params == before[3].params  # re-run, same configuration
    assert [t.params for t in after[:3]] == [t.params for t in before[:3]]


def test_more_trials_later_add_to_the_study_and_equal_counts_do_nothing(storage):
    study = make(tf.quadratic, storage)
    study.run(n_trials=3, seed=0)
    assert study.run(n_trials=3).reason == "nothing to do"
    study.run(n_trials=5)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]


def test_a_fixed_seed_reproduces_configurations_and_trial_seeds(tmp_path):
    runs = []
    for i in range(2):
        study = make(tf.quadratic, f"sqlite:///{tmp_path / f'{i}.db'}", searcher="tpe")
        study.run(n_trials=12, seed=42)
        runs.append([(t.params, t.seed) for t in study.trials])
    assert runs[0] == runs[1]
    assert len({seed for _, seed in runs[0]}) == 12


def test_grid_ends_when_exhausted(storage):
    study = make(tf.quadratic, storage, space=tl.Space(x=tl.Float(0.0, 1.0)))
    summary = study.run(searcher={"name": "grid", "steps": 3})
    assert summary.reason == "exhausted"
    assert sorted(t.params["x"] for t in study.trials) == [0.0, 0.5, 1.0]


def test_timeout_stops_launching_new_trials(storage):
    study = make(tf.report_then_sleep, storage)
    summary = study.run(timeout=0.3)
    assert summary.reason == "timeout" and summary.launched == 1  # one trial takes 0.6 s


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_a_function_workers_cannot_load_fails_each_trial_with_the_fix(storage, tmp_path):
    import importlib.util
    import sys

    # a module that the driver can import but its spawned workers cannot find (like a notebook)
    path = tmp_path / "hidden_module.py"
    path.write_text("def fn(trial):\n    return 1.0\n")
    spec = importlib.util.spec_from_file_location("hidden_module", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hidden_module"] = module
    spec.loader.exec_module(module)
    try:
        study = make(module.fn, storage)
        summary = study.run(n_trials=3, workers=2)
    finally:
        del sys.modules["hidden_module"]
    assert summary.finished_total == 3
    for t in study.trials:
        assert t.state == "failed"
        assert t.error.startswith("WorkerSetup: a worker process could not load the trial function")
        assert "executor='inline'" in t.error


@pytest.mark.slow  # a script whose worker processes all die (3 s): .ci/run runs it in its second pytest call
def test_a_script_without_a_main_guard_ends_at_once_saying_how_to_fix_it(tmp_path):
    """Spawned workers import the script again; unguarded, each one starts the study itself and dies
    while starting. The run ends after two rounds of such deaths (not at its timeout, failing trial
    after trial) with one line naming the guard, and keeps the trials it recorded."""
    import subprocess
    import sys
    from pathlib import Path

    support = Path(tf.__file__).parent
    script = tmp_path / "sweep.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(support)!r})\n"
        "import tuneloop as tl, trial_functions as tf\n"
        f"tl.Study('ng', tl.Space(x=tl.Float(-2.0, 2.0)), tf.quadratic, metric='loss', mode='min',\n"
        f"         storage={str(tmp_path / 'ng.db')!r}).run(timeout=300, workers=2)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "worker processes in a row died before running a trial" in last
    assert 'each worker imports sweep.py again: put the code that starts the study under `if __name__ == "__main__":`' in last
    store = tl.Store(str(tmp_path / "ng.db"))
    trials = store.trials(store.require_study("ng").id)
    assert trials and all(t.state in ("failed", "interrupted") for t in trials)
    assert any(t.state == "failed" and t.error.startswith("WorkerSetup") for t in trials)


def test_a_lambda_cannot_go_to_worker_processes(storage):
    study = make(lambda trial: 0.0, storage, name="lam")
    with pytest.raises(tl.ConfigError, match="cannot be sent to worker processes .* top level of a module"):
        study.run(n_trials=2, workers=2)
