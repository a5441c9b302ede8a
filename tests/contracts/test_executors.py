"""The executor contract: every registered executor runs a tiny study to completion with the same
stored results as the inline executor, streams each trial's reports to the driver before the
trial ends, stops a trial between reports when the driver cancels it (an alert rule), and a
failing trial fails only itself. A new executor is tested by registering it (and, if it needs
options, adding them to OPTIONS)."""

import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.run import Executor, executors

OPTIONS = {  # how each executor runs several trials at once here
    "inline": {},
    "processes": {"workers": 2},
    "population": {"executor": "population", "members": 3},
    "ray": {"executor": {"name": "ray", "num_cpus": 2}},
}
RULES = [tl.Rule("blowup", max=3.0, action="stop")]  # stops a trial between its reports (Executor.cancel)
N = 6  # with seed 4 the random searcher proposes x = 1.87, 0.19, 1.89, 0.86, 0.79, -1.14


class Seen(tl.Callback):
    """The driver's view, in order: each report and each trial's end."""

    def __init__(self):
        self.events = []

    def on_report(self, number, step, metrics):
        self.events.append(("report", number, step))

    def on_trial_end(self, trial):
        self.events.append(("end", trial.number, None))


def run(name, storage):
    seen = Seen()
    study = tl.Study("contract", tl.Space(x=tl.Float(-2.0, 2.0)), tf.contract_trial, metric="loss", mode="min",
                     storage=storage, seed=4, searcher="random", rules=RULES)
    options = dict(OPTIONS[name])
    options.setdefault("executor", name)
    summary = study.run(N, callbacks=[seen], **options)
    store = study.store(storage)
    curves = store.series([t.id for t in study.trials], names=["loss"])
    return summary, study.trials, {t.number: curves[t.id].get("loss", []) for t in study.trials}, seen.events


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The inline executor's results: the oracle every executor must reproduce."""
    return run("inline", f"sqlite:///{tmp_path_factory.mktemp('inline') / 'inline.db'}")


def test_every_registered_executor_is_in_the_suite():
    assert set(executors.names) == set(OPTIONS), "add the new executor's options to OPTIONS"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "ray" else n for n in executors.names])
# ray: one case, a local cluster of 2 CPUs (about 8 s): .ci/run runs it in its second pytest call
def test_a_tiny_study_runs_to_the_same_results_with_reports_streamed_and_failures_alone(name, storage, reference):
    if name == "ray":
        pytest.importorskip("ray")
    summary, trials, curves, events = run(name, storage)
    _, ref_trials, ref_curves, _ = reference
    assert summary.finished_total == N and summary.launched == N and summary.retried == 0
    assert summary.outcomes == {"completed": 3, "pruned": 2, "failed": 1}
    assert [t.number for t in trials] == list(range(N))
    for t, ref in zip(trials, ref_trials):
        assert t.params == ref.params and t.state == ref.state and t.seed == ref.seed
        if t.params["x"] < -1.0:  # the failing trial fails alone, with its own error
            assert t.state == "failed" and t.error.startswith("ValueError: x is too small")
        elif t.params["x"] > 1.0:  # stopped by the rule between reports, long before its 400 steps
            assert t.state == "pruned" and t.value < 100
        else:  # the same values and curves as inline, every report having reached the driver first
            assert t.state == "completed" and t.value == pytest.approx(ref.value)
            assert curves[t.number] == ref_curves[t.number] and [s for s, _ in curves[t.number]] == [0, 1, 2]
            mine = [e for e in events if e[1] == t.number]
            assert mine == [("report", t.number, 0), ("report", t.number, 1), ("report", t.number, 2),
                            ("end", t.number, None)]


@pytest.mark.parametrize("name", executors.names)
def test_it_builds_an_executor(name):
    options = {k: v for k, v in OPTIONS[name].items() if k != "executor"}
    spec = OPTIONS[name].get("executor", name)
    built = executors.create(spec, workers=options.get("workers", 1))
    assert isinstance(built, Executor) and built.running == 0
