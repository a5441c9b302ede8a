"""Nested, stratified subsets of the training split (``trial.fraction``): what ``probe data`` trains on."""

import itertools

import numpy as np
import pytest
import torch

import tuneloop as tl
from tuneloop._subset import subset_indices, take_subset
from tuneloop.run.events import TrialSpec

FRACTIONS = (0.1, 0.2, 0.4, 0.7, 1.0)


@pytest.fixture(scope="module")
def labels():
    """Ten classes of unequal sizes, shuffled: class c has 20 + 10 c examples."""
    y = np.repeat(np.arange(10), [20 + 10 * c for c in range(10)])
    return np.random.default_rng(0).permutation(y)


def test_subsets_are_nested_for_one_seed_and_differ_between_seeds(labels):
    for seed in (0, 1):
        chosen = [set(subset_indices(labels, f, seed).tolist()) for f in FRACTIONS]
        assert all(a < b for a, b in itertools.pairwise(chosen))
        assert chosen[-1] == set(range(len(labels)))
    assert set(subset_indices(labels, 0.2, 0)) != set(subset_indices(labels, 0.2, 1))


def test_subsets_are_stratified_and_reproducible(labels):
    idx = subset_indices(labels, 0.1, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.tolist() == [round(0.1 * (20 + 10 * c) + 1e-9) for c in range(10)]  # each class keeps its share
    assert np.array_equal(idx, subset_indices(labels, 0.1, seed=3)) and np.array_equal(idx, np.sort(idx))
    assert subset_indices(np.array([0] * 50 + [1]), 0.1).tolist()[-1] == 50  # a class keeps one example at least


def test_take_subset_keeps_the_kind_of_data_and_refuses_what_it_cannot_split(labels):
    x = np.arange(len(labels), dtype=np.float32)[:, None]
    xs, ys = take_subset((x, labels), 0.2, seed=0)
    assert isinstance(xs, np.ndarray) and np.array_equal(labels[xs[:, 0].astype(int)], ys)
    xt, _ = take_subset((torch.tensor(x), torch.tensor(labels)), 0.2, seed=0)
    assert isinstance(xt, torch.Tensor) and np.array_equal(xt.numpy(), xs)
    pair = (x, labels)
    assert take_subset(pair, 1.0) is pair
    regression = take_subset((x, labels.astype(np.float32)), 0.5, seed=0)  # float targets: one group
    assert len(regression[1]) == len(labels) // 2
    with pytest.raises(tl.ConfigError, match=r"needs its training split as an \(x, y\) pair"):
        take_subset(torch.utils.data.TensorDataset(torch.tensor(x)), 0.5)
    with pytest.raises(tl.ConfigError, match=r"must be a number in \(0, 1\]"):
        subset_indices(labels, 0.0)


def test_a_trial_reads_its_fraction_and_keeps_it_out_of_its_budget(labels):
    trial = tl.Trial(TrialSpec(1, 0, 0, "s", {}, 7, {"epochs": 3, "fraction": 0.4, "data_seed": 2}), channel=None)
    assert trial.fraction == 0.4 and trial.data_seed == 2 and trial.probing_data
    assert dict(trial.budget) == {"epochs": 3}
    assert np.array_equal(trial.subset_indices(labels), subset_indices(labels, 0.4, 2))
    plain = tl.Trial(TrialSpec(1, 0, 0, "s", {}, 7, {"epochs": 3}), channel=None)
    assert plain.fraction == 1.0 and plain.data_seed == 0 and not plain.probing_data


def test_fit_trains_on_the_fraction_and_any_trial_function_can(storage):
    from tuneloop.torch import MLP, fit

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] * 3 + rng.normal(0, 0.5, (300, 3))).astype(np.float32)
    seen = []

    def with_fit(trial):
        return fit(lambda: MLP(3, 3, width=8), (x[:200], y[:200]), (x[200:], y[200:]), trial=trial, epochs=1,
                   seed=trial.seed, inspect_every=0, predictions=False).metrics

    def by_hand(trial):
        _, ys = trial.subset((x[:200], y[:200]))
        seen.append((trial.fraction, len(ys)))
        return {"val_acc": 0.5}

    studies = [tl.Study(name, tl.Space(u=tl.Choice([0])), fn, metric="val_acc", mode="max",
                        budget={"epochs": 1, "fraction": 0.25}, storage=storage)
               for name, fn in (("fit", with_fit), ("hand", by_hand))]
    for study in studies:
        study.run(searcher="grid")
    (t,) = studies[0].trials
    counts = np.bincount(y[:200], minlength=3)
    assert t.attrs["train_examples"] == sum(round(c / 4 + 1e-9) for c in counts) and t.attrs["fraction"] == 0.25
    assert t.attrs["train_examples/class 2"] == round(counts[2] / 4 + 1e-9)
    assert seen == [(0.25, t.attrs["train_examples"])]


def test_a_loader_over_the_trials_own_subset_trains_and_an_uncut_one_is_refused(storage):
    from torch.utils.data import DataLoader, Subset, TensorDataset

    from tuneloop.torch import MLP, fit

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] * 3 + rng.normal(0, 0.5, (300, 3))).astype(np.float32)
    dataset = TensorDataset(torch.tensor(x[:200]), torch.tensor(y[:200]))
    seen = []

    def train(trial, loader, pair=None):
        return fit(lambda: MLP(3, 3, width=8), loader if pair is None else pair, (x[200:], y[200:]), trial=trial,
                   epochs=1, seed=trial.seed, inspect_every=0, predictions=False).metrics

    def cut_by_the_trial(trial):
        subset = Subset(dataset, trial.subset_indices(y[:200]).tolist())
        seen.append(len(subset))
        return train(trial, DataLoader(subset, batch_size=32))

    def pair_cut_once(trial):  # trial.subset, then fit: the subset is not taken a second time
        return train(trial, None, trial.subset((x[:200], y[:200])))

    def uncut(trial):
        return train(trial, DataLoader(dataset, batch_size=32))

    runs = {}
    for name, fn in (("loader", cut_by_the_trial), ("pair", pair_cut_once), ("uncut", uncut)):
        study = tl.Study(name, tl.Space(u=tl.Choice([0])), fn, metric="val_acc", mode="max",
                         budget={"epochs": 1, "fraction": 0.25}, storage=storage)
        study.run(searcher="grid")
        (runs[name],) = study.trials
    quarter = len(subset_indices(y[:200], 0.25))
    assert runs["loader"].state == tl.TrialState.COMPLETED and seen == [quarter]
    assert runs["loader"].attrs["fraction"] == 0.25 and "train_examples" not in runs["loader"].attrs
    assert runs["pair"].state == tl.TrialState.COMPLETED and runs["pair"].attrs["train_examples"] == quarter
    assert runs["uncut"].state == tl.TrialState.FAILED
    assert "which fit takes of an (x, y) pair only; got a DataLoader" in runs["uncut"].error.splitlines()[0]
    assert "trial.subset_indices(labels)" in runs["uncut"].error.splitlines()[0]
