"""Plain MLPs of different depths in one population (identity-padded layers), against the oracle:
sequential ``fit`` with the same seed and arguments, float64, dropout masks drawn as ``fit``
draws them (``exact=True``).

The fixtures are tests/torch/conftest.py's; ``compare`` checks each member under its own parameter names.
"""

import math

import pytest
import torch
from torch import nn

import tuneloop as tl
from tuneloop.torch import MLP, Population, fit, fit_population
from tuneloop.torch._population import _loop
from tuneloop.torch._population._jobs import fit_defaults, prepare

FLOAT64_TOLERANCE = 1e-10
TIMED = ("train_time_s", "epoch_time_s", "latency_ms")


def compare(jobs, **options):
    """Train ``jobs`` as a population and one by one: the same epochs, metrics and parameters
    (under each member's own names)."""
    together = fit_population(jobs, **{"exact": True, **options})
    alone = [fit(**job) for job in jobs]
    for a, b in zip(together, alone):
        assert (a.best_epoch, len(a.history), a.stopped_early) == (b.best_epoch, len(b.history), b.stopped_early)
        ours, theirs = a.model.state_dict(), b.model.state_dict()
        assert ours.keys() == theirs.keys()
        assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) <= FLOAT64_TOLERANCE
        for key in set(b.metrics) - set(TIMED):
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-5, abs=1e-6)
    return together, alone


def job(data, model, **kwargs):
    train, val = data
    return {"model": model, "train": train, "val": val, "epochs": 3, "batch_size": 32, "inspect_every": 0,
            "predictions": False, **kwargs}


def members(jobs):
    return [prepare(i, {**fit_defaults(), **j, "trial": None}, {}) for i, j in enumerate(jobs)]


def sequential(*widths, act=nn.GELU, out=4):
    """A user's own nn.Sequential: hidden layers of ``widths``, each followed by ``act``."""
    layers, size = [], 16
    for w in widths:
        layers += [nn.Linear(size, w), act()]
        size = w
    return nn.Sequential(*layers, nn.Linear(size, out))


@pytest.mark.parametrize("optimizer,lr", [("adam", 3e-3), ("sgd", 0.05)])
def test_mlps_of_depth_1_2_3_share_one_population_and_each_trains_as_alone(data, float64, optimizer, lr):
    """Depths 1, 3 and 2 (widths 20, 24, 31) with dropout, weight decay and clipping: one key, one
    population of the deepest's three hidden layers, all 31 wide; the depth-1 member's parameters
    are the first layer's and the head's blocks; each member equals its sequential run."""
    jobs = [job(data, lambda d=d, w=w: MLP(16, 4, width=w, depth=d, dropout=0.2), optimizer=optimizer, lr=lr,
                seed=i, weight_decay=1e-3, clip=0.5, epochs=2)
            for i, (d, w) in enumerate([(1, 20), (3, 24), (2, 31)])]
    found = members(jobs)
    assert len({m.key for m in found}) == 1
    model = Population(found).model
    assert [tuple(b.shape) for b in model.blocks] == [(3, 31, 16), (3, 31), (3, 31, 31), (3, 31), (3, 31, 31),
                                                      (3, 31), (3, 4, 31), (3, 4)]
    assert [k for k, _ in model.placement[0]] == [0, 1, 6, 7]
    assert [tuple(v.shape) for v in model.member(0)] == [(20, 16), (20,), (4, 20), (4,)]
    compare(jobs)


def test_a_users_sequential_with_per_layer_widths_and_gelu_mixes_depths(data, float64):
    """Hidden widths that differ within a member (40 then 64) all pad to one width (64)."""
    nets = [lambda: sequential(40, 64), lambda: sequential(48), lambda: sequential(33, 50, 36)]
    jobs = [job(data, net, optimizer="rmsprop", lr=1e-3, seed=i, epochs=2) for i, net in enumerate(nets)]
    found = members(jobs)
    assert len({m.key for m in found}) == 1
    assert [tuple(b.shape) for b in Population(found).model.blocks][::2] == [(3, 64, 16), (3, 64, 64), (3, 64, 64),
                                                                              (3, 4, 64)]
    compare(jobs)


def test_what_does_not_mix_with_other_depths(data):
    """A single Linear, another activation, dropout in one and not the other, widths 4x apart,
    bias on or off: keys of their own."""
    nets = [lambda: MLP(16, 4, width=24, depth=2), lambda: nn.Sequential(nn.Linear(16, 4)),
            lambda: MLP(16, 4, width=24, depth=1, activation="tanh"), lambda: MLP(16, 4, width=24, dropout=0.1),
            lambda: MLP(16, 4, width=96, depth=3),
            lambda: nn.Sequential(nn.Linear(16, 24, bias=False), nn.ReLU(), nn.Linear(24, 4))]
    found = members([job(data, net) for net in nets])
    assert len({m.key for m in found}) == len(nets)
    same = members([job(data, lambda: MLP(16, 4, width=24, depth=1)), job(data, lambda: MLP(16, 4, width=24))])
    assert same[0].key == same[1].key


def test_default_dropout_masks_of_a_member_are_its_own_in_a_mixed_depth_population(data, float64):
    """Not exact: a member skipping a dropout layer draws nothing there, so trained among deeper
    members it ends exactly as trained alone."""
    jobs = [job(data, lambda d=d, w=w, p=p: MLP(16, 4, width=w, depth=d, dropout=p), lr=3e-3, seed=i, epochs=2)
            for i, (d, w, p) in enumerate([(3, 24, 0.2), (1, 17, 0.5), (2, 31, 0.3)])]
    together = fit_population(jobs)
    for j, result in zip(jobs, together):
        (alone,) = fit_population([j])
        ours, theirs = result.model.state_dict(), alone.model.state_dict()
        assert max(float((ours[k] - theirs[k]).abs().max()) for k in ours) <= FLOAT64_TOLERANCE


def test_members_of_other_depths_leave_while_the_others_train_on(data, float64):
    """Patience stops the deepest early, a step budget stops the shallowest mid-epoch (frozen and
    restored); the population shrinks around them and the depth-2 member runs every epoch."""
    jobs = [job(data, lambda: MLP(16, 4, width=24, depth=3, dropout=0.1), lr=0.3, seed=0, epochs=6, patience=1),
            job(data, lambda: MLP(16, 4, width=20, depth=1, dropout=0.1), lr=1e-3, seed=1, epochs=6, steps=13),
            job(data, lambda: MLP(16, 4, width=31, depth=2, dropout=0.1), lr=1e-3, seed=2, epochs=6)]
    together, _ = compare(jobs)
    assert together[0].stopped_early and len(together[0].history) < 6
    assert len(together[1].history) == math.ceil(13 / 5)
    assert len(together[2].history) == 6


@pytest.mark.slow  # about 4 s: two studies of 8 trials
def test_pbt_checkpoints_of_mixed_depth_members_resume_at_their_own_shapes(data, float64, tmp_path, monkeypatch):
    """Depth a tl.Int(1, 3) under PBT: generations train as mixed-depth populations whose members
    save and load checkpoints at their own depth; the trial values equal the inline executor's."""
    storage = f"sqlite:///{tmp_path / 'depth.db'}"
    train, val = data
    space = tl.Space(depth=tl.Int(1, 3), lr=tl.LogFloat(1e-3, 1e-2))
    depths = []

    class Recorded(Population):
        def __init__(self, found, **options):
            super().__init__(found, **options)
            depths.append(sorted(self.model.depths))

    monkeypatch.setattr(_loop, "Population", Recorded)

    def trial_fn(trial):
        return fit(lambda: MLP(16, 4, width=12, depth=trial.params.depth, dropout=0.1), train, val, trial=trial,
                   lr=trial.params.lr, weight_decay=1e-3, epochs=trial.budget.epochs, batch_size=32,
                   seed=trial.seed, inspect_every=0).metrics

    values = {}
    for executor in ("inline", {"name": "population", "exact": True}):
        name = "inline" if executor == "inline" else "population"
        study = tl.Study(f"depth-{name}", space, trial_fn, metric="val_acc", mode="max", seed=5,
                         budget=tl.Budget(epochs=4), storage=storage)
        study.run(searcher="random", scheduler={"name": "pbt", "population": 4, "interval": 2}, executor=executor)
        values[name] = {t.number: (t.state, t.params["depth"], (t.values or {}).get("val_loss")) for t in study.trials}
    assert values["inline"].keys() == values["population"].keys() and len(values["inline"]) == 8
    for number, (state, depth, loss) in values["inline"].items():
        assert values["population"][number][:2] == (state, depth)
        assert values["population"][number][2] == pytest.approx(loss, rel=1e-6)
    assert any(len(set(d)) > 1 for d in depths)  # at least one generation mixed depths


def test_a_layer_module_used_twice_runs_twice_and_mismatched_mlps_are_refused():
    """nn.Sequential lists a module used twice at both places (named_children would list it once)."""
    from tuneloop.errors import ConfigError
    from tuneloop.torch._stacked_mlp import StackedMLP

    act = nn.Tanh()
    net = nn.Sequential(nn.Linear(16, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 4))
    x = torch.randn(5, 16)
    assert torch.allclose(StackedMLP([net]).forward(x, shared_input=True, train=False)[0], net(x))
    with pytest.raises(ConfigError, match="separate populations"):
        StackedMLP([sequential(8), sequential(8, act=nn.ReLU)])
