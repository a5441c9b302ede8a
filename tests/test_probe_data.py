"""tuneloop probe data on MNIST-1D, where the answer is known: accuracy grows with the data, and a
class made scarce in the training split (a tenth of its examples kept) gains most per example."""

import numpy as np
import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.probe import probe_data

SCARCE = 7
KEEP = 10  # one in KEEP training examples of class SCARCE is kept


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy two-core machine two threads per tiny matmul are slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scarce_mnist1d():
    """MNIST-1D with nine in ten training examples of class 7 dropped."""
    from tuneloop.datasets import mnist1d

    data = mnist1d()
    x, y = data.train
    drop = np.flatnonzero(y == SCARCE)[len(np.flatnonzero(y == SCARCE)) // KEEP:]
    keep = np.setdiff1d(np.arange(len(y)), drop)
    return (x[keep], y[keep]), data.val


def train(trial):
    from tuneloop.torch import MLP, fit

    (x, y), val = scarce_mnist1d()
    return fit(lambda: MLP(40, 10, width=64), (x, y), val, trial=trial, lr=trial.params["lr"],
               epochs=trial.budget["epochs"], batch_size=128, seed=trial.seed, inspect_every=0, log_every=0,
               predictions=False, cost_metrics=False).metrics


def tuned(storage):
    study = tl.Study("scarce", tl.Space(lr=tl.Choice([0.01])), train, metric="val_acc", mode="max",
                     budget={"epochs": 8}, storage=storage)
    study.run(searcher="grid")
    return study


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_the_data_probe_grows_with_the_data_and_names_the_scarce_class_first(storage):
    result = probe_data(tuned(storage), fractions=(0.25, 0.5, 1.0), seeds=2)
    assert result.counted and len(result.runs) == 6 and all(r.state == tl.TrialState.COMPLETED for r in result.runs)
    by_fraction = {f: np.mean([r.value for r in result.runs if r.fraction == f]) for f in (0.25, 0.5, 1.0)}
    assert by_fraction[0.25] < by_fraction[0.5] < by_fraction[1.0]  # accuracy grows with size
    assert result.overall.b > 0 and result.overall.at(2.0).gain > 0
    scarce = result.slices[0]  # named first: too few examples to be learned at all
    assert scarce.slice == f"class {SCARCE}" and scarce.small_data and scarce.gain_per_example is None
    assert scarce.examples < 0.2 * result.slices[1].examples
    assert result.advice[1].startswith(f"class {SCARCE} is not learned yet (error ")
    assert any(a.startswith("collect ~") for a in result.advice)  # then the curves that forecast most per example
    sizes = {(r.fraction, r.data_seed): r.examples for r in result.runs}
    assert sizes[(0.5, 0)] == sizes[(0.5, 1)] and sizes[(0.25, 0)] < sizes[(0.5, 0)] < sizes[(1.0, 0)]
    again = probe_data(tuned(storage), fractions=(0.25, 0.5, 1.0), seeds=2)  # a rerun reads the stored probe
    assert [r.value for r in again.runs] == [r.value for r in result.runs]
    with pytest.raises(tl.ConfigError, match="holds a probe of another configuration"):
        probe_data(tuned(storage), fractions=(0.5, 1.0), seeds=2)
    from tuneloop.analysis._data_probe import data_finding
    from tuneloop.analysis._probes import stored_probes

    finding = data_finding(stored_probes(tl.Store(storage), "scarce")["data"])
    assert f"class {SCARCE}" in finding.summary and finding.evidence[0]["slice"] == "overall"


def test_probe_data_refuses_what_it_cannot_fit(storage):
    with pytest.raises(tl.ConfigError, match="at least two different fractions"):
        probe_data(tuned(storage), fractions=(1.0, 1.0))
    with pytest.raises(tl.ConfigError, match=r"must be a number in \(0, 1\]"):
        probe_data(tuned(storage), fractions=(0.5, 1.5))


def test_probe_data_from_the_shell(write_experiment, storage, monkeypatch):
    path = write_experiment("""
        import tuneloop as tl

        def train(trial):
            from tuneloop.datasets import mnist1d
            from tuneloop.torch import MLP, fit

            data = mnist1d()
            return fit(lambda: MLP(40, 10, width=32), data.train, data.val, trial=trial, lr=0.01,
                       epochs=trial.budget["epochs"], seed=trial.seed, inspect_every=0, log_every=0,
                       predictions=False, cost_metrics=False).metrics

        study = tl.Study("shell", tl.Space(lr=tl.Choice([0.01])), train, metric="val_acc", mode="max",
                         budget={"epochs": 2}, searcher="grid")
    """)
    monkeypatch.setenv("COLUMNS", "220")
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path), "--storage", storage]).exit_code == 0
    shown = runner.invoke(app, ["probe", "data", str(path), "--fractions", "0.3,1", "--seeds", "1", "--same-epochs",
                                "--top", "3", "--storage", storage])
    assert shown.exit_code == 0, shown.output
    assert "error = a * n^-b" in shown.output and "overall" in shown.output and "7 more slices" in shown.output
    assert "doubling the training data (~" in shown.output
    wrong = runner.invoke(app, ["probe", "data", str(path), "--fractions", "0.3,x", "--storage", storage])
    assert wrong.exit_code == 2 and "--fractions takes numbers" in wrong.output


def by_hand(trial):
    """Not fit: applies trial.fraction itself and logs two slices whose errors follow known power laws."""
    _, y = trial.subset((np.zeros((400, 1)), np.repeat([0, 1], [300, 100])))
    n = np.bincount(y, minlength=2)
    errors = {"common": 0.5 * n[0] ** -0.3, "rare": 2.0 * n[1] ** -0.5}
    for name, e in errors.items():
        trial.log_slice(1, name, "acc", 1 - e, 50)
    return {"val_acc": 1 - float(np.mean(list(errors.values())))}


def test_any_trial_function_that_applies_the_fraction_can_be_probed(storage):
    study = tl.Study("hand", tl.Space(u=tl.Choice([0])), by_hand, metric="val_acc", mode="max", storage=storage)
    study.run(searcher="grid")
    result = probe_data(study, seeds=2)
    assert not result.counted and len(result.runs) == 10  # no counts recorded: sizes are fractions of the split
    by = {law.slice: law for law in result.slices}
    assert by["rare"].b == pytest.approx(0.5, abs=0.05) and by["common"].b == pytest.approx(0.3, abs=0.05)
    assert result.slices[0].slice == "rare" and result.advice[1].startswith("double the examples of rare: +")


def test_the_population_executor_trains_each_run_on_its_own_subset(storage):
    study = tl.Study("pop", tl.Space(lr=tl.Choice([0.01])), train, metric="val_acc", mode="max",
                     budget={"epochs": 2}, storage=storage)
    study.run(searcher="grid")
    result = probe_data(study, fractions=(0.5, 1.0), seeds=2, executor="population", same_steps=False)
    assert all(r.state == tl.TrialState.COMPLETED and len(r.slices) == 10 for r in result.runs)
    assert [r.examples for r in result.runs] == [1456, 1456, 2907, 2907]  # the subset was taken before fit joined


def test_a_rerun_with_other_epochs_is_refused_not_read_back(storage):
    study = tl.Study("epochs", tl.Space(u=tl.Choice([0])), by_hand, metric="val_acc", mode="max",
                     budget={"epochs": 4}, storage=storage)
    study.run(searcher="grid")
    probe_data(study, fractions=(0.5, 1.0), seeds=1, epochs=2)
    assert len(probe_data(study, fractions=(0.5, 1.0), seeds=1, epochs=2).runs) == 2  # the same options: read back
    with pytest.raises(tl.ConfigError, match=r"another configuration \(--epochs \(it ran 2\) differ\)"):
        probe_data(study, fractions=(0.5, 1.0), seeds=1, epochs=3)
    with pytest.raises(tl.ConfigError, match="--epochs"):
        probe_data(study, fractions=(0.5, 1.0), seeds=1)  # the budget's 4 epochs


def test_an_interrupted_probe_resumes_each_run_on_its_own_fraction(storage):
    seen = []

    def interrupted_once(trial):
        if trial.fraction == 0.4 and not any(f == 0.4 for f, _ in seen):
            seen.append((0.4, "interrupted"))
            trial.log_slice(99, "rare", "acc", 0.0, 50)  # the interrupted attempt's, not read back
            raise KeyboardInterrupt  # Ctrl-C while this run trains
        seen.append((trial.fraction, trial.data_seed))
        return by_hand(trial)

    study = tl.Study("resume", tl.Space(u=tl.Choice([0])), interrupted_once, metric="val_acc", mode="max",
                     storage=storage)
    study.run(searcher="grid")
    with pytest.raises(KeyboardInterrupt):
        probe_data(study, fractions=(0.2, 0.4, 1.0), seeds=1)
    result = probe_data(study, fractions=(0.2, 0.4, 1.0), seeds=1)  # resumes: the interrupted run again
    assert seen == [(1.0, 0), (0.2, 0), (0.4, "interrupted"), (0.4, 0), (1.0, 0)]
    assert [(r.fraction, r.state) for r in result.runs] == [(f, tl.TrialState.COMPLETED) for f in (0.2, 0.4, 1.0)]
    rare = [r.slices["rare"] for r in result.runs]
    assert rare[0] > rare[1] > rare[2] and rare[1] == pytest.approx(2.0 * 40 ** -0.5)  # 0.4 of 100 rare examples


def test_the_table_prints_each_gain_in_its_unit(monkeypatch, tmp_path):
    """A loss gains 0.001s: printed to three significant digits, not "+0.0"; slices stay in points."""
    from types import SimpleNamespace

    import tuneloop.experiment
    import tuneloop.probe
    from tuneloop.analysis._data_probe import DataRun, _fit_all

    rng = np.random.default_rng(0)
    runs = [DataRun(f, s, None, tl.TrialState.COMPLETED, 0.05 * (f * 1000) ** -0.3 * np.exp(rng.normal(0, 0.01)),
                    {"class 0": 2 * (f * 400) ** -0.5, "class 1": (f * 400) ** -0.5}, {}, {"class 0": 50, "class 1": 50})
            for f in (0.25, 0.5, 1.0) for s in range(2)]
    result = _fit_all(SimpleNamespace(metric="val_loss", mode="min", name="s-probe-data"), "s", runs)
    monkeypatch.setattr(tuneloop.probe, "probe_data", lambda study, **_: result)
    monkeypatch.setattr(tuneloop.experiment, "load_study", lambda file, name: SimpleNamespace(name="s"))
    monkeypatch.setenv("COLUMNS", "220")
    shown = CliRunner().invoke(app, ["probe", "data", str(tmp_path / "s.py")])
    assert shown.exit_code == 0, shown.output
    loss, slice_gain = result.overall.at(2.0).gain, result.slices[0].at(2.0).gain
    assert 0 < loss < 0.01 and f"{loss:+.3g} [" in shown.output and f"{slice_gain:+.1f} [" in shown.output
    assert "Gains in val_loss overall, accuracy points per slice" in shown.output
