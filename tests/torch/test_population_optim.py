"""Optimizer families in one population, each member by its own rule, against sequential ``fit``
in float64; and per-member optimizer state read and written through a placement."""

import pytest
import torch
from tests.torch import test_population as oracle

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.torch import MLP, fit
from tuneloop.torch._member_optim import Family, MemberOptimizer, optimizer_family
from tuneloop.torch._population._jobs import fit_defaults, prepare

FLOAT64_TOLERANCE, compare, job = oracle.FLOAT64_TOLERANCE, oracle.compare, oracle.job


def one_bucket(jobs):
    return len({prepare(i, {**fit_defaults(), **j, "trial": None}, {}).key for i, j in enumerate(jobs)}) == 1


def test_adam_and_adamw_members_train_in_one_population(data, float64):
    """Coupled and decoupled weight decay as per-member columns, fused kernel and unfused."""
    settings = [("adam", 1e-3, 0.0), ("adamw", 3e-3, 1e-2), ("adam", 2e-3, 1e-3), ("adamw", 1e-3, 0.0)]
    jobs = [job(data, lambda: MLP(16, 4, width=12), optimizer=o, lr=lr, weight_decay=wd, seed=s, epochs=2)
            for s, (o, lr, wd) in enumerate(settings)]
    assert one_bucket(jobs)
    compare(jobs, tolerance=FLOAT64_TOLERANCE)
    compare(jobs, tolerance=FLOAT64_TOLERANCE, fused=False)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-mlp", "vmap"])
def test_sgd_momentum_and_nesterov_members_train_in_one_population(data, float64, fast):
    """Plain SGD (no buffer), SGD with momentum 0.5, heavy-ball and Nesterov: one population, with
    per-member weight decay and gradient clipping."""
    settings = [("sgd", {}), ("momentum", {"weight_decay": 1e-3}), ("nesterov", {"momentum": 0.8, "clip": 0.5}),
                ("sgd", {"momentum": 0.5, "weight_decay": 1e-2, "clip": 1.0})]
    jobs = [job(data, lambda: MLP(16, 4, width=12), optimizer=o, lr=0.03 * (1 + s), seed=s, epochs=2, **extra)
            for s, (o, extra) in enumerate(settings)]
    assert one_bucket(jobs)
    compare(jobs, tolerance=FLOAT64_TOLERANCE, fast=fast)


def test_each_members_buffer_starts_and_rests_as_torch_sgds(float64):
    """Against torch.optim.SGD step by step: a fresh plain member (no buffer), a resumed momentum
    member (its buffer goes on), a fresh Nesterov member (its buffer starts as its gradient) and a
    member whose momentum went to 0 after it had a buffer (torch keeps that buffer, unused)."""
    kinds = ["sgd", "momentum", "nesterov", "sgd"]
    torch.manual_seed(0)
    start = torch.randn(4, 5, 3)
    refs = []
    for m, (kind, momentum) in enumerate(zip(kinds, [0.0, 0.9, 0.7, 0.0])):
        p = torch.nn.Parameter(start[m].clone())
        opt = torch.optim.SGD([p], lr=0.1 * (m + 1), momentum=momentum, nesterov=kind == "nesterov", weight_decay=0.01)
        if m in (1, 3):  # resumed: a buffer from an earlier run
            opt.state[p]["momentum_buffer"] = torch.randn(5, 3)
        refs.append((p, opt))
    block = start.clone()
    optim = MemberOptimizer(kinds, [block], [opt for _, opt in refs])
    assert optim.started == [False, True, False, True]
    for _ in range(3):
        grads = torch.randn(4, 5, 3)
        for m, (p, opt) in enumerate(refs):
            p.grad = grads[m].clone()
            opt.step()
        optim.step([grads.clone()], [0.1 * (m + 1) for m in range(4)])
        for m, (p, _) in enumerate(refs):
            assert float((block[m] - p.detach()).abs().max()) <= FLOAT64_TOLERANCE
    for m, (_, opt) in enumerate(refs):
        exported = optim.export(m, torch.optim.SGD([torch.nn.Parameter(torch.zeros(5, 3))], lr=1.0), 0.1)["state"]
        assert exported.keys() == opt.state_dict()["state"].keys()  # none for the plain member
        for i, state in opt.state_dict()["state"].items():
            assert torch.allclose(exported[i]["momentum_buffer"], state["momentum_buffer"], atol=FLOAT64_TOLERANCE)


def test_families_stay_apart():
    assert [optimizer_family(o) for o in ("adam", "adamw", "sgd", "momentum", "nesterov", "rmsprop")] == [
        Family.ADAM, Family.ADAM, Family.SGD, Family.SGD, Family.SGD, Family.RMSPROP]
    with pytest.raises(ConfigError, match="optimizer"):
        optimizer_family("lion")
    block = torch.zeros(2, 3)
    groups = [torch.optim.SGD([torch.zeros(3, requires_grad=True)]), torch.optim.Adam([torch.zeros(3)])]
    with pytest.raises(ConfigError, match="one optimizer family"):
        MemberOptimizer(["sgd", "adam"], [block], groups)


def test_checkpoints_of_one_family_continue_in_either_trainer(data, float64, tmp_path):
    """PBT with the optimizer a Choice of the SGD family: children redraw it and continue from their
    parent's checkpoint; the population run equals the inline one."""
    storage = f"sqlite:///{tmp_path / 'family.db'}"
    train, val = data
    space = tl.Space(optimizer=tl.Choice(["sgd", "momentum", "nesterov"]), lr=tl.LogFloat(1e-2, 5e-2))

    def trial_fn(trial):
        return fit(lambda: MLP(16, 4, width=12), train, val, trial=trial, optimizer=trial.params.optimizer,
                   lr=trial.params.lr, weight_decay=1e-3, epochs=trial.budget.epochs, batch_size=32, seed=trial.seed,
                   inspect_every=0).metrics

    values = {}
    for executor in ("inline", "population"):
        study = tl.Study(f"family-{executor}", space, trial_fn, metric="val_acc", mode="max", seed=2,
                         budget=tl.Budget(epochs=2), storage=storage)
        study.run(searcher="random", scheduler={"name": "pbt", "population": 4, "interval": 1},
                  executor=executor if executor == "inline" else {"name": "population", "exact": True})
        values[executor] = {t.number: (t.params["optimizer"], t.values["val_loss"]) for t in study.trials}
    assert len({o for o, _ in values["inline"].values()}) > 1  # the family really mixed
    assert values["inline"].keys() == values["population"].keys()
    for number, (optimizer, loss) in values["inline"].items():
        assert values["population"][number][0] == optimizer
        assert values["population"][number][1] == pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize("kind", ["adamw", "momentum"])
def test_state_round_trips_through_a_placement(kind, float64):
    """Member 1 owns two parameters of three blocks, the first in a corner, the second in the last
    block's middle rows; its torch optimizer's state loads there and exports back unchanged."""
    blocks = [torch.zeros(2, 4, 3), torch.zeros(2, 5), torch.zeros(2, 6)]
    own = [[torch.nn.Parameter(torch.zeros(4, 3)), torch.nn.Parameter(torch.zeros(5)), torch.nn.Parameter(torch.zeros(6))],
           [torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(3))]]
    placement = [[(0, (slice(0, 4), slice(0, 3))), (1, (slice(0, 5),)), (2, (slice(0, 6),))],
                 [(0, (slice(0, 2), slice(0, 3))), (2, (slice(1, 4),))]]
    opts = []
    for params in own:
        opt = _make(kind, params)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
        opts.append(opt)
    before = [opt.state_dict() for opt in opts]
    optim = MemberOptimizer(kind, blocks, opts, placement=placement)
    for per_block in optim.state.values():  # padding stays zero
        assert bool((per_block[0][1][2:] == 0).all()) and bool((per_block[1][1] == 0).all())
        assert bool((per_block[2][1][0] == 0).all()) and bool((per_block[2][1][4:] == 0).all())
    for m, params in enumerate(own):
        fresh = _make(kind, params)
        after = optim.export(m, fresh, 0.1)
        assert after["state"].keys() == before[m]["state"].keys()
        for i, state in before[m]["state"].items():
            assert after["state"][i].keys() == state.keys()
            for name, value in state.items():
                assert torch.equal(torch.as_tensor(after["state"][i][name]), torch.as_tensor(value))
    optim.select(blocks, [1])
    assert optim.placement == [placement[1]] and optim.kinds == [kind]
    with pytest.raises(ValueError, match="placement"):
        MemberOptimizer(kind, blocks, opts, placement=[placement[1], placement[1]])


def _make(kind, params):
    from tuneloop.torch._fit import make_optimizer

    return make_optimizer(kind, params, 0.1, weight_decay=1e-3)
