"""The population engine against its oracle: sequential ``fit`` with the same seed and arguments.

In float64 every member's trained parameters equal the sequential run's within 1e-10 (the
engine's kernels sum in another order, nothing else differs). In float32 the same holds within
a documented tolerance on stable configurations.
"""

import contextlib
import math

import pytest
import torch
from torch import nn

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.torch import CNN, GRU, MLP, Population, fit, fit_population
from tuneloop.torch._population import run_jobs
from tuneloop.torch._population._jobs import fit_defaults, prepare

FLOAT64_TOLERANCE = 1e-10
FLOAT32_TOLERANCE = 1e-4  # docs/population.md: 3 epochs, lr <= 3e-3
TIMED = ("train_time_s", "epoch_time_s", "latency_ms")


def compare(jobs, *, tolerance, **options):
    """Train ``jobs`` as a population (dropout masks drawn as fit draws them: ``exact=True``) and
    one by one; return the largest parameter difference."""
    together = fit_population(jobs, **{"exact": True, **options})
    alone = [fit(**job) for job in jobs]
    worst = 0.0
    for a, b in zip(together, alone):
        assert a.best_epoch == b.best_epoch
        assert len(a.history) == len(b.history)
        assert a.stopped_early == b.stopped_early
        for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            worst = max(worst, float((x - y).abs().max()))
        for key in set(b.metrics) - set(TIMED):  # times differ from run to run; the rest must not
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-5, abs=1e-6)
        assert all(a.metrics[key] > 0 for key in TIMED)
    assert worst <= tolerance
    return together, alone


def job(data, model, **kwargs):
    train, val = data
    return {"model": model, "train": train, "val": val, "epochs": 3, "batch_size": 32, "inspect_every": 0,
            "predictions": False, **kwargs}


OPTIMIZERS = [
    ("adam", {}), ("adamw", {"weight_decay": 1e-2}), ("sgd", {"lr": 0.05}), ("momentum", {"lr": 0.05}),
    ("nesterov", {"lr": 0.05, "momentum": 0.8}), ("rmsprop", {"lr": 1e-3}),
]


@pytest.mark.parametrize("optimizer,extra", OPTIMIZERS, ids=[o for o, _ in OPTIMIZERS])
@pytest.mark.parametrize("fast", [True, False], ids=["fast-mlp", "vmap"])
def test_float64_members_equal_sequential_fit_for_every_optimizer(data, float64, optimizer, extra, fast):
    """Per-member learning rates, weight decay and seeds; both the hand-written MLP path and vmap."""
    jobs = [job(data, lambda: MLP(16, 4, width=24), optimizer=optimizer, seed=s,
                **{"lr": lr, "weight_decay": wd, **{k: v * (1 + s) for k, v in extra.items()}})
            for s, (lr, wd) in enumerate([(1e-3, 0.0), (3e-3, 1e-3), (1e-2, 1e-4)])]
    compare(jobs, tolerance=FLOAT64_TOLERANCE, fast=fast)


def test_float64_dropout_clip_smoothing_init_scale_and_schedules_per_member(data, float64):
    """Every per-member hyperparameter at once: each member draws its own dropout masks."""
    keys = ("dropout", "clip", "label_smoothing", "init_scale", "schedule", "warmup")
    settings = [dict(zip(keys, values)) for values in [
        (0.1, 1.0, 0.0, 1.0, "warmup_cosine", 0.2), (0.3, None, 0.1, 0.5, "one_cycle", 0.3),
        (0.5, 0.1, 0.2, 2.0, "step", 0.05), (0.2, None, 0.0, 1.0, "plateau", 0.05)]]
    jobs = []
    for s, st in enumerate(settings):
        p = st.pop("dropout")
        jobs.append(job(data, lambda p=p: MLP(16, 4, width=24, dropout=p), optimizer="adam", lr=3e-3, seed=s,
                        weight_decay=1e-3, **st))
    compare(jobs, tolerance=FLOAT64_TOLERANCE)
    compare(jobs, tolerance=FLOAT64_TOLERANCE, fast=False)


@pytest.mark.parametrize("model", [lambda: CNN(16, 4, channels=6, dropout=0.25),
                                   lambda: GRU(16, 4, hidden=8)], ids=["cnn", "gru"])
def test_float64_cnn_and_gru_members_equal_sequential_fit(data, float64, model):
    jobs = [job(data, model, epochs=2, lr=lr, seed=s, weight_decay=1e-4) for s, lr in enumerate([1e-3, 4e-3])]
    compare(jobs, tolerance=FLOAT64_TOLERANCE)


def test_float32_within_the_documented_tolerance(data):
    jobs = [job(data, lambda: MLP(16, 4, width=24, dropout=0.1), lr=lr, seed=s) for s, lr in enumerate([1e-3, 3e-3])]
    compare(jobs, tolerance=FLOAT32_TOLERANCE)


def test_stopped_members_leave_while_the_others_train_on(data, float64):
    """Patience stops one member early, a step budget another mid-epoch; the rest run every epoch."""
    jobs = [job(data, lambda: MLP(16, 4, width=24), lr=0.3, seed=0, epochs=8, patience=1),
            job(data, lambda: MLP(16, 4, width=24), lr=1e-3, seed=1, epochs=8, steps=13),
            job(data, lambda: MLP(16, 4, width=24), lr=1e-3, seed=2, epochs=8)]
    together, _ = compare(jobs, tolerance=FLOAT64_TOLERANCE)
    assert together[0].stopped_early and len(together[0].history) < 8
    assert len(together[1].history) == math.ceil(13 / 5)
    assert len(together[2].history) == 8


def test_a_diverging_member_stops_with_nan_metrics_and_spares_the_others(data):
    jobs = [job(data, lambda: MLP(16, 4, width=24), optimizer="sgd", lr=1e6, seed=0),
            job(data, lambda: MLP(16, 4, width=24), lr=1e-3, seed=1)]
    blown, fine = fit_population(jobs)
    assert blown.stopped_early and math.isnan(blown.history[-1]["val_loss"])
    alone = fit(**jobs[1])
    assert fine.metrics["val_acc"] == alone.metrics["val_acc"]


def test_shapes_split_into_buckets_and_chunks_give_the_same_result(data, float64):
    """Widths and optimizers differ (buckets); a cap of 2 members splits a bucket into chunks."""
    jobs = [job(data, lambda w=w: MLP(16, 4, width=w), optimizer=o, lr=2e-3, seed=i)
            for i, (w, o) in enumerate([(8, "adam"), (16, "adam"), (8, "adam"), (8, "sgd"), (8, "adam")])]
    capped = fit_population(jobs, max_members=2)
    for a, b in zip(capped, [fit(**j) for j in jobs]):
        for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
            assert float((x - y).abs().max()) <= FLOAT64_TOLERANCE


def test_memory_splits_a_population_into_chunks(data, monkeypatch, float64):
    from tuneloop.torch._population import _memory

    monkeypatch.setattr(_memory, "available_ram", lambda: 2 * 1000 * 8 * 8 * 2)  # about two members
    jobs = [job(data, lambda: MLP(16, 4, width=24), lr=1e-3 * (i + 1), seed=i) for i in range(4)]
    members = [prepare(i, {**fit_defaults(), **j, "trial": None}, {}) for i, j in enumerate(jobs)]
    assert 1 <= _memory.fitting_members(members) < 4
    compare(jobs, tolerance=FLOAT64_TOLERANCE)


def test_pbt_exploit_copies_parameters_and_optimizer_state_in_place(data):
    jobs = [job(data, lambda: MLP(16, 4, width=24), lr=1e-3, seed=s) for s in range(3)]
    defaults = fit_defaults()
    members = [prepare(i, {**defaults, **j, "trial": None}, {}) for i, j in enumerate(jobs)]
    pop = Population(members)
    x, y = members[0].train.x[:32], members[0].train.y[:32]
    for _ in range(2):
        _, grads = pop.model.loss_and_grad(torch.stack([x] * 3), torch.stack([y] * 3), {}, pop.loss,
                                           contextlib.nullcontext)
        pop.optim.step(grads, [1e-3, 2e-3, 3e-3])
    pop.exploit(0, 2, lr=5e-4, weight_decay=1e-3)
    for block in pop.model.blocks:
        assert torch.equal(block[2], block[0])
        assert not torch.equal(block[1], block[0])
    for blocks in pop.optim.state.values():
        for t in blocks:
            assert torch.equal(t[2], t[0])
    assert members[2].args["lr"] == 5e-4 and pop.optim.hyper["weight_decay"] == [0.0, 0.0, 1e-3]
    with pytest.raises(ConfigError, match="exploit cannot set"):
        pop.exploit(0, 1, width=3)


def test_batchnorm_and_random_forward_are_refused_with_the_fix(data):
    def bn():
        return nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))

    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.b(nn.functional.dropout(self.a(x), 0.5, self.training))

    (result,) = run_jobs([job(data, bn)], [None])
    assert isinstance(result, ConfigError) and "BatchNorm1d" in str(result) and "LayerNorm" in str(result)
    (result,) = run_jobs([job(data, Noisy)], [None])
    assert isinstance(result, ConfigError) and "nn.Dropout" in str(result)


def test_one_bad_job_fails_alone(data):
    good = job(data, lambda: MLP(16, 4, width=8), seed=0)
    results = run_jobs([good, {**good, "epochs": 0}, {**good, "bogus": 1}], [None, None, None])
    assert results[0].metrics["val_acc"] > 0
    assert isinstance(results[1], ConfigError) and "epochs" in str(results[1])
    assert isinstance(results[2], ConfigError) and "bogus" in str(results[2])


def test_loaders_are_refused_with_the_fix(data):
    train, _ = data
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(train[0]), torch.tensor(train[1])))
    (result,) = run_jobs([{**job(data, lambda: MLP(16, 4)), "train": loader}], [None])
    assert isinstance(result, ConfigError) and "(x, y) arrays" in str(result)


def test_checkpoints_resume_in_either_trainer(data, float64, tmp_path):
    """A population member's checkpoint continues in sequential fit exactly as fit's own would."""
    storage = f"sqlite:///{tmp_path / 'pbt.db'}"
    train, val = data
    space = tl.Space(lr=tl.LogFloat(1e-3, 1e-2))

    def trial_fn(trial):
        return fit(lambda: MLP(16, 4, width=12, dropout=0.1), train, val, trial=trial, lr=trial.params.lr,
                   weight_decay=1e-3, epochs=trial.budget.epochs, batch_size=32, seed=trial.seed,
                   inspect_every=0).metrics

    values = {}
    for executor in ("inline", "population"):
        study = tl.Study(f"pbt-{executor}", space, trial_fn, metric="val_acc", mode="max", seed=3,
                         budget=tl.Budget(epochs=4), storage=storage)
        study.run(searcher="random", scheduler={"name": "pbt", "population": 4, "interval": 2},
                  executor=executor if executor == "inline" else {"name": "population", "exact": True})
        values[executor] = {t.number: (t.params["lr"], t.values["val_loss"]) for t in study.trials}
    assert len(values["inline"]) == 8 and values["inline"].keys() == values["population"].keys()
    for number, (lr, loss) in values["inline"].items():
        assert values["population"][number][0] == lr
        assert values["population"][number][1] == pytest.approx(loss, rel=1e-6)  # evaluated in float32


def test_a_module_instance_gives_each_member_its_own_copy(data, float64):
    """fit(model=an instance) trains that instance; members given one instance each get a copy."""
    torch.manual_seed(0)
    shared = MLP(16, 4, width=8)
    jobs = [job(data, shared, lr=lr, seed=s) for s, lr in enumerate([1e-3, 1e-2])]
    a, b = fit_population(jobs)
    assert a.model is not b.model and a.model is not shared
    assert not torch.equal(a.model.state_dict()["0.weight"], b.model.state_dict()["0.weight"])


def test_mlps_of_different_widths_share_one_padded_population(data, float64):
    """Widths 24, 17 and 31 (within 2x: one bucket) train as one population padded to 31, with
    per-member dropout masks drawn at each member's own width; each equals its sequential run."""
    jobs = [job(data, lambda w=w: MLP(16, 4, width=w, dropout=0.2), lr=3e-3, seed=i, weight_decay=1e-3, clip=0.5)
            for i, w in enumerate([24, 17, 31])]
    members = [prepare(i, {**fit_defaults(), **j, "trial": None}, {}) for i, j in enumerate(jobs)]
    assert len({m.key for m in members}) == 1
    pop = Population(members)
    assert [tuple(b.shape) for b in pop.model.blocks][:2] == [(3, 31, 16), (3, 31)]
    compare(jobs, tolerance=FLOAT64_TOLERANCE)
    for optimizer in ("sgd", "rmsprop", "adamw"):
        compare([{**j, "optimizer": optimizer} for j in jobs], tolerance=FLOAT64_TOLERANCE)
    wide = [job(data, lambda: MLP(16, 4, width=64), seed=0), job(data, lambda: MLP(16, 4, width=8), seed=1)]
    keys = {prepare(i, {**fit_defaults(), **j, "trial": None}, {}).key for i, j in enumerate(wide)}
    assert len(keys) == 2  # more than 2x apart: buckets of their own


def test_padded_members_checkpoint_at_their_own_shapes(data, float64, tmp_path):
    storage = f"sqlite:///{tmp_path / 'pad.db'}"
    train, val = data
    space = tl.Space(width=tl.Choice([12, 15]), lr=tl.LogFloat(1e-3, 1e-2))  # one bucket: both round to 16

    def trial_fn(trial):
        return fit(lambda: MLP(16, 4, width=trial.params.width), train, val, trial=trial, lr=trial.params.lr,
                   epochs=trial.budget.epochs, batch_size=32, seed=trial.seed, inspect_every=0).metrics

    values = {}
    for executor in ("inline", "population"):
        study = tl.Study(f"pad-{executor}", space, trial_fn, metric="val_acc", mode="max", seed=5,
                         budget=tl.Budget(epochs=4), storage=storage)
        study.run(searcher="random", scheduler={"name": "pbt", "population": 4, "interval": 2}, executor=executor)
        values[executor] = {t.number: t.values["val_loss"] for t in study.trials}
    assert values["inline"].keys() == values["population"].keys()
    for number, loss in values["inline"].items():
        assert values["population"][number] == pytest.approx(loss, rel=1e-6)


def test_default_dropout_masks_are_each_members_own_and_drop_at_its_rate(data, float64):
    """By default (not exact) masks come from one batched comparison per layer, but each member's
    still depends on its seed and own width only: trained among others or alone, it ends the same."""
    from tuneloop.torch._stacked import drawn_masks

    jobs = [job(data, lambda w=w, p=p: MLP(16, 4, width=w, dropout=p), lr=3e-3, seed=i, epochs=2)
            for i, (w, p) in enumerate([(24, 0.2), (17, 0.5)])]
    together = fit_population(jobs)
    for j, result in zip(jobs, together):
        (alone,) = fit_population([j])
        for x, y in zip(result.model.state_dict().values(), alone.model.state_dict().values()):
            assert float((x - y).abs().max()) <= FLOAT64_TOLERANCE  # padding sums in another order
    exact = fit_population(jobs[:1], exact=True)[0].model.state_dict()["0.weight"]
    assert float((exact - together[0].model.state_dict()["0.weight"]).abs().max()) > 1e-4  # not fit's masks
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    masks = drawn_masks(["a", "b"], {"a": [0.0, 0.3, 1.0], "b": [0.5, 0.5, 0.5]},
                        {"a": [(400, 50)] * 3, "b": [(400, 10), (400, 20), (400, 5)]}, gens, torch.float64,
                        torch.device("cpu"))
    a, b = masks["a"], masks["b"]
    assert a.shape == (3, 400, 50) and b.shape == (3, 400, 20) and a.dtype == torch.float64
    assert bool((a[0] == 1).all()) and bool((a[2] == 0).all())
    kept = round(0.7 * 2**16)  # of the 2**16 values a 16-bit draw takes; scaled by the kept share's inverse
    assert set(a[1].unique().tolist()) == {0.0, 2**16 / kept} and abs(float((a[1] == 0).double().mean()) - 0.3) < 0.02
    assert bool((b[0, :, 10:] == 1).all()) and abs(float((b[2, :, :5] == 0).double().mean()) - 0.5) < 0.05
    again = drawn_masks(["b"], {"b": [0.5]}, {"b": [(400, 20)]}, [torch.Generator().manual_seed(1)],
                        torch.float64, torch.device("cpu"))["b"]
    assert not torch.equal(again[0], b[1])  # member 1's layer "a" drew first above: a stream, in forward order
    alone = drawn_masks(["b"], {"b": [0.5]}, {"b": [(400, 10)]}, [torch.Generator().manual_seed(0)],
                        torch.float64, torch.device("cpu"))["b"]
    assert torch.equal(alone[0], b[0, :, :10])  # member 0's layer "a" has rate 0: it drew nothing there
    gens = [torch.Generator().manual_seed(0)]
    first = drawn_masks(["a", "b"], {"a": [0.0], "b": [0.5]}, {"a": [(400, 50)], "b": [(400, 10)]}, gens,
                        torch.float64, torch.device("cpu"))["b"]
    assert torch.equal(first[0], b[0, :, :10])  # the same seed and shapes, alone: the same mask



def test_default_dropout_masks_of_members_of_one_shape_are_each_their_own():
    """Members of one shape take the batched path (one float expression for all): each member's mask is what it
    draws alone, drops at its own rate, and has mean 1 (scaled by its kept share's inverse), in every dtype."""
    from tuneloop.torch._stacked import drawn_masks

    rates = [0.3, 0.5, 0.9, 1.0, 0.999995]  # the last past the draws' resolution (2**-16)
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        gens = [torch.Generator().manual_seed(s) for s in range(len(rates))]
        masks = drawn_masks(["a", "b"], {"a": rates, "b": rates[::-1]}, {"a": [(500, 40)] * 5, "b": [(500, 30)] * 5},
                            gens, dtype, torch.device("cpu"))
        assert masks["a"].shape == (5, 500, 40) and masks["a"].dtype == dtype
        for m, p in enumerate(rates):
            alone = drawn_masks(["a", "b"], {"a": [p], "b": [rates[::-1][m]]}, {"a": [(500, 40)], "b": [(500, 30)]},
                                [torch.Generator().manual_seed(m)], dtype, torch.device("cpu"))
            assert torch.equal(masks["a"][m], alone["a"][0]) and torch.equal(masks["b"][m], alone["b"][0])
            dropped = float((masks["a"][m] == 0).double().mean())
            assert abs(dropped - p) < 0.03 and len(masks["a"][m].unique()) <= 2
            if p < 1 - 2**-17:
                kept = round((1 - p) * 2**16)
                assert float(masks["a"][m].max()) == pytest.approx(2**16 / kept, rel=1e-2)  # bfloat16: 8 bits
            else:  # past the draws' resolution: nothing kept, as at p = 1
                assert not bool(masks["a"][m].any())


def test_no_torch_optimizer_unless_a_schedule_or_checkpoint_needs_one(data):
    """Members hold their hyperparameters in a light stand-in (building the first torch optimizer
    imports torch._dynamo); torch-scheduled members get a real one; bad values fail as torch's do."""
    from tuneloop.torch._fit import make_optimizer
    from tuneloop.torch._population._jobs import Hyper

    def member(**kwargs):
        return prepare(0, {**fit_defaults(), **job(data, lambda: MLP(16, 4, width=8)), "trial": None, **kwargs}, {})

    for optimizer in ("adam", "adamw", "sgd", "momentum", "nesterov", "rmsprop"):
        m = member(optimizer=optimizer, momentum=0.5 if optimizer == "rmsprop" else None)
        assert isinstance(m.opt, Hyper) and m.sched is None
        real = m.torch_optimizer()
        assert isinstance(real, torch.optim.Optimizer) and m.opt is real
        group = {k: v for k, v in real.param_groups[0].items() if k != "params"}
        assert all(group[k] == v for k, v in Hyper(optimizer, [], 1e-3, momentum=m.args["momentum"]
                                                   ).param_groups[0].items() if k not in ("params", "lr"))
    assert isinstance(member(schedule="one_cycle").opt, torch.optim.Optimizer)
    for bad in ({"lr": -1.0}, {"weight_decay": -0.1}, {"optimizer": "nesterov", "momentum": 0.0}):
        args = {"optimizer": "sgd", "lr": 0.1, **bad}
        with pytest.raises(ValueError) as ours:
            member(**args)
        with pytest.raises(ValueError) as torchs:
            make_optimizer(args["optimizer"], MLP(16, 4, width=8).parameters(), args["lr"],
                           args.get("weight_decay", 0.0), args.get("momentum"))
        assert str(ours.value) == str(torchs.value)
    with pytest.raises(ConfigError, match="optimizer"):
        member(optimizer="lion")
