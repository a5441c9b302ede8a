"""A rolling population: jobs join a running population at an epoch boundary, in the slots members
left, each counting its own epochs, and train exactly as alone (float64 oracle: sequential ``fit``)."""

import copy

import numpy as np
import pytest

from tuneloop.torch import CNN, MLP, Population, fit, fit_population
from tuneloop.torch._population._jobs import fit_defaults, prepare

FLOAT64_TOLERANCE = 1e-10
TIMED = ("train_time_s", "epoch_time_s", "latency_ms")


def job(data, model, **kwargs):
    train, val = data
    return {"model": model, "train": train, "val": val, "epochs": 3, "batch_size": 32, "inspect_every": 0,
            "predictions": False, **kwargs}


def rolling(monkeypatch, jobs, joiners, **options):
    """Train ``jobs`` as a population whose freed slots take ``joiners`` (in order, as many as are free);
    each result, the jobs' then the joiners', must equal its sequential ``fit``. Returns the results, the
    free slots each refill was offered, and (population size, joining jobs) of every join."""
    queue, offered, joins = list(joiners), [], []
    add = Population.add

    def spy(pop, members, trained_s=0.0):
        joins.append((len(pop.members), [m.job for m in members]))
        add(pop, members, trained_s)

    monkeypatch.setattr(Population, "add", spy)

    def refill(free, key):
        offered.append(free)
        taken, queue[:] = queue[:free], queue[free:]
        return [(j, None) for j in taken]

    together = fit_population(jobs, refill=refill, exact=True, **options)
    assert len(together) == len(jobs) + len(joiners) and not queue
    for a, spec in zip(together, [*jobs, *joiners]):
        b = fit(**spec)
        assert a.best_epoch == b.best_epoch and a.stopped_early == b.stopped_early
        assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]  # its own epoch count
        for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            assert float((x - y).abs().max()) <= FLOAT64_TOLERANCE
        for key in set(b.metrics) - set(TIMED):
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-5, abs=1e-6)
    return together, offered, joins


FAMILIES = {
    "adam": [("adam", {"weight_decay": 1e-3}), ("adamw", {"weight_decay": 1e-2}), ("adam", {}), ("adamw", {})],
    "sgd": [("sgd", {"lr": 0.05, "weight_decay": 1e-3}), ("momentum", {"lr": 0.05}),
            ("nesterov", {"lr": 0.03, "momentum": 0.8, "weight_decay": 1e-3}), ("momentum", {"lr": 0.02})],
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_joiner_takes_a_freed_slot_and_every_member_equals_its_sequential_run(data, float64, monkeypatch,
                                                                                family):
    """Three members, the first leaving after its only epoch; a fourth joins at that boundary and trains
    its 3 epochs beside the others (epochs 2-3 of theirs): dropout, weight decay, each kind's own rule."""
    specs = [job(data, lambda p=p: MLP(16, 4, width=24, dropout=p), optimizer=o, seed=s, epochs=1 if s == 0 else 3,
                 **{"lr": 3e-3, **extra})
             for s, ((o, extra), p) in enumerate(zip(FAMILIES[family], [0.2, 0.1, 0.3, 0.25]))]
    together, offered, joins = rolling(monkeypatch, specs[:3], specs[3:])
    assert offered[0] == 1 and joins == [(2, [3])]  # joined at once, into the two that stayed
    assert len(together[0].history) == 1 and [h["epoch"] for h in together[3].history] == [1.0, 2.0, 3.0]


def test_a_joiner_of_another_bucket_trains_beside_the_population(data, float64, monkeypatch):
    """An SGD job offered to an Adam population does not join; it trains in its own, started next round
    beside the Adam one, correctly."""
    specs = [job(data, lambda: MLP(16, 4, width=24), seed=s, lr=3e-3, epochs=1 if s == 0 else 2) for s in range(2)]
    joiner = job(data, lambda: MLP(16, 4, width=24), optimizer="momentum", seed=5, lr=0.05, epochs=2)
    together, offered, joins = rolling(monkeypatch, specs, [joiner])
    assert offered[0] == 1 and joins == []
    assert len(together[2].history) == 2


@pytest.mark.parametrize("model", [lambda: MLP(16, 4, width=16, dropout=0.2), lambda: CNN(16, 4, channels=6, dropout=0.25)],
                         ids=["mlp", "cnn"])
def test_joiners_on_the_vmap_path(data, float64, monkeypatch, model):
    specs = [job(data, model, seed=s, lr=lr, weight_decay=1e-4, epochs=e)
             for s, (lr, e) in enumerate([(3e-3, 1), (1e-3, 2), (2e-3, 2)])]
    _, _, joins = rolling(monkeypatch, specs[:2], specs[2:], fast=False)
    assert joins == [(1, [2])]


def test_a_joiner_fits_a_padded_mlp_population_when_its_width_does(data, float64, monkeypatch):
    """Widths 24 and 17 pad to 24; a width-20 joiner fits those blocks and joins, a width-31 one (the same
    bucket key) does not fit and trains in a population of its own; every member equals its sequential run."""
    specs = [job(data, lambda w=w: MLP(16, 4, width=w, dropout=0.2), seed=s, lr=3e-3, weight_decay=1e-3, clip=0.5,
                 epochs=e) for s, (w, e) in enumerate([(24, 1), (17, 3), (31, 2), (20, 3)])]

    queue = [specs[2], specs[3]]  # both offered at the first free slot: 31 starts its own, 20 joins
    joins = []
    add = Population.add

    def spy(pop, members, trained_s=0.0):
        joins.append((len(pop.members), [m.job for m in members], [tuple(b.shape) for b in pop.model.blocks][:2]))
        add(pop, members, trained_s)

    monkeypatch.setattr(Population, "add", spy)

    def refill(free, key):
        taken, queue[:] = list(queue), []
        return [(j, None) for j in taken]

    together = fit_population(specs[:2], refill=refill, exact=True)
    assert joins == [(1, [3], [(1, 24, 16), (1, 24)])]  # the width-20 joiner (job 3) into the 24-wide blocks
    for a, spec in zip(together, [specs[0], specs[1], specs[2], specs[3]]):
        b = fit(**spec)
        assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]
        for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            assert x.shape == y.shape and float((x - y).abs().max()) <= FLOAT64_TOLERANCE
    assert len(together) == 4


class _Trial:
    """Enough of a trial for ``fit`` to save a checkpoint and continue from one (mse: no slices)."""

    def __init__(self, found=None, checkpointing=False):
        self.found, self.checkpointing, self.saved = found, checkpointing, None

    def load_checkpoint(self):
        return copy.deepcopy(self.found)

    def save_checkpoint(self, epoch, state):
        self.saved = (epoch, copy.deepcopy(state))

    def report(self, epoch, **metrics):
        pass

    def should_stop(self):
        return False

    def log(self, step, **values):
        pass


def test_members_resumed_at_another_epoch_share_a_population(data, float64):
    """Each member counts its own epochs, so a start does not split buckets: a member continuing from
    its epoch-2 checkpoint trains its epochs 3-4 beside a fresh member's 1-2, each as alone."""
    (xt, yt), (xv, yv) = data
    regression = ((xt, np.eye(4)[yt]), (xv, np.eye(4)[yv]))
    base = job(regression, lambda: MLP(16, 4, width=24, dropout=0.2), loss="mse", seed=0, lr=3e-3, epochs=2,
               weight_decay=1e-3)
    saver = _Trial(checkpointing=True)
    fit(**base, trial=saver)
    resumed = {**base, "epochs": 4, "trial": _Trial(saver.saved)}
    fresh = job(regression, lambda: MLP(16, 4, width=17, dropout=0.1), loss="mse", seed=1, lr=1e-3, epochs=2)
    keys = {prepare(i, {**fit_defaults(), **j}, {}).key for i, j in enumerate([resumed, {**fresh, "trial": None}])}
    assert len(keys) == 1
    together = fit_population([resumed, fresh], exact=True)
    for a, spec, epochs in zip(together, [resumed, fresh], [[3.0, 4.0], [1.0, 2.0]]):
        b = fit(**spec)
        assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history] == epochs
        for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            assert float((x - y).abs().max()) <= FLOAT64_TOLERANCE


def test_a_bucket_larger_than_its_cap_fills_freed_slots_with_its_waiting_members(data, float64, monkeypatch):
    """max_members=2 of 3 equal-keyed jobs: the third does not wait for the first population to end but
    joins it when the first member leaves after its only epoch."""
    specs = [job(data, lambda: MLP(16, 4, width=24, dropout=0.2), seed=s, lr=3e-3, epochs=e)
             for s, e in enumerate([1, 3, 2])]
    _, _, joins = rolling(monkeypatch, specs, [], max_members=2)
    assert joins == [(1, [2])]
