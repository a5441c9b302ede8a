"""tl.reporting: a stranger's hand-written PyTorch loop (a plain nn.Sequential, a tiny CNN with
BatchNorm, random data) run as real studies against a real store: reports and logs land, a
pruning scheduler stops the loop and the trial ends pruned, histograms of every parameter and
gradient are stored, and sha and pbt continue a trial from the state Reporter.save wrote."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tuneloop as tl
from tuneloop.store import Store

X = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
Y = X @ torch.linspace(-1.0, 1.0, 8).unsqueeze(1) + 0.1 * torch.randn(256, 1, generator=torch.Generator().manual_seed(1))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def one_epoch(model: nn.Module, opt: torch.optim.Optimizer) -> float:
    for i in range(0, 192, 96):
        loss = nn.functional.mse_loss(model(X[i:i + 96]), Y[i:i + 96])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(X[192:]), Y[192:]))


def norm(model: nn.Module) -> float:
    return float(sum(p.detach().pow(2).sum() for p in model.parameters()))


def stored(storage: str, name: str):
    with Store(storage, read_only=True) as store:
        study = store.get_study(name)
        trials = store.trials(study.id)
        return trials, store.series([t.id for t in trials]), store.lineage(study.id), store


def test_reports_land_and_a_pruning_scheduler_ends_the_loop_pruned(storage):
    after_block = []

    def train(trial: tl.Trial) -> None:
        torch.manual_seed(0)
        model = mlp()
        opt = torch.optim.SGD(model.parameters(), lr=trial.params.lr)
        with tl.reporting(trial) as r:
            for epoch in range(trial.budget.epochs):
                val = one_epoch(model, opt)
                r.log(epoch * 2, train_loss=val * 1.1)
                r.report(epoch, val_loss=val)
                if r.should_stop():
                    break
        after_block.append(trial.params.lr)  # a test evaluation here must not run for a stopped trial

    study = tl.Study("loop", tl.Space(lr=tl.Choice([0.05, 0.0])), train, metric="val_loss", mode="min",
                     storage=storage, budget={"epochs": 4}, searcher="grid", rules=None)
    summary = study.run(executor="inline", scheduler={"name": "asha", "min_resource": 1, "reduction_factor": 2})
    assert summary.outcomes == {"completed": 1, "pruned": 1}
    trials, series, _, _ = stored(storage, "loop")
    state = {t.params["lr"]: t for t in trials}
    assert state[0.05].state == "completed" and state[0.0].state == "pruned"
    assert [s for s, _ in series[state[0.05].id]["val_loss"]] == [0, 1, 2, 3]
    assert [s for s, _ in series[state[0.0].id]["val_loss"]] == [0, 1]  # the loop broke at the verdict
    assert [s for s, _ in series[state[0.05].id]["train_loss"]] == [0, 2, 4, 6]
    assert after_block == [0.05]


def test_a_loop_ignoring_the_verdict_still_ends_pruned_and_one_stopping_itself_completes(storage):
    def train(trial: tl.Trial) -> dict:
        with tl.reporting(trial) as r:
            for epoch in range(4):
                r.report(epoch, loss=trial.params.x)
                if trial.params.x == 0.0 and epoch == 1:
                    break  # its own early stopping: no verdict, so it completes
            return {"loss": trial.params.x}  # returned inside the block: a stopped trial stays pruned

    study = tl.Study("verdict", tl.Space(x=tl.Choice([0.0, 5.0])), train, metric="loss", mode="min",
                     storage=storage, searcher="grid", rules=None)
    study.run(executor="inline", scheduler={"name": "asha", "min_resource": 1, "reduction_factor": 2})
    trials, series, _, _ = stored(storage, "verdict")
    state = {t.params["x"]: t for t in trials}
    assert state[0.0].state == "completed" and [s for s, _ in series[state[0.0].id]["loss"]] == [0, 1]
    assert state[5.0].state == "pruned" and len(series[state[5.0].id]["loss"]) == 4


def test_histograms_of_every_parameter_and_gradient_of_a_cnn_with_batchnorm(storage):
    checks = {}

    def train(trial: tl.Trial) -> float:
        torch.manual_seed(trial.seed)
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
        model[0].bias.requires_grad_(False)  # frozen: neither histogram
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with tl.reporting(trial) as r:
            checks["full"] = r.histograms(0, model)
            with torch.no_grad():
                model[4].weight[0, 0] = float("nan")  # a single NaN among 432 values
            rng = torch.get_rng_state()
            checks["sampled"] = r.histograms(1, model, max_values=50, grads=False)
            checks["rng untouched"] = torch.equal(rng, torch.get_rng_state())
            r.report(0, loss=loss.item())
        return loss.item()

    tl.Study("cnn", tl.Space(x=tl.Choice([1])), train, metric="loss", mode="min", storage=storage,
             searcher="grid", rules=None).run(executor="inline")
    trials, _, _, _ = stored(storage, "cnn")
    with Store(storage, read_only=True) as store:
        hists = store.histograms(trials[0].id)
    trainable = ["0.weight", "1.weight", "1.bias", "4.weight", "4.bias"]
    full = {h.name: h for h in hists if h.step == 0}
    assert sorted(full) == sorted([f"weight/{n}" for n in trainable] + [f"grad/{n}" for n in trainable])
    assert checks == {"full": 10, "sampled": 5, "rng untouched": True}
    assert full["weight/4.weight"].n == 432 and sum(full["weight/4.weight"].counts) == 432
    assert full["grad/1.weight"].flag is None and full["grad/1.weight"].stats["abs_max"] > 0
    sampled = {h.name: h for h in hists if h.step == 1}
    assert sorted(sampled) == sorted(f"weight/{n}" for n in trainable)
    big = sampled["weight/4.weight"]
    assert big.nonfinite == 1 and big.flag == "nonfinite"  # the one NaN, never missed by the sample
    assert 50 <= big.n <= 51 and sum(big.counts) == big.n - 1  # 50 drawn (the NaN dropped if drawn) + the NaN
    assert sampled["weight/1.bias"].n == 4  # small tensors whole


def segmented(trial: tl.Trial) -> None:
    """A loop that continues where its checkpoint stopped (sha promotes it; pbt exploits another's)."""
    torch.manual_seed(trial.seed)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=trial.params.lr, momentum=0.9)
    with tl.reporting(trial) as r:
        start = r.restore(model, opt)
        r.log(start, start=start, start_norm=norm(model), opt_lr=opt.param_groups[0]["lr"],
              has_momentum=float(bool(opt.state)))
        epoch = start
        for epoch in range(start, trial.budget.epochs):
            r.report(epoch, val_loss=one_epoch(model, opt))
        r.log(epoch, end_norm=norm(model))
        r.save(epoch, model, opt)


def last(series, name):
    return series[name][-1][1]


def test_sha_promotes_a_user_loop_from_the_step_and_weights_it_saved(storage):
    study = tl.Study("sha", tl.Space(lr=tl.Choice([0.01, 0.03, 0.1])), segmented, metric="val_loss", mode="min",
                     storage=storage, budget={"epochs": 3}, searcher="grid", rules=None)
    study.run(executor="inline", scheduler={"name": "sha", "min_resource": 1, "reduction_factor": 3})
    trials, series, lineage, _ = stored(storage, "sha")
    by_number = {t.number: t for t in trials}
    promoted = [t for t in trials if lineage[t.id]["parent"] is not None]
    assert len(trials) == 4 and len(promoted) == 1 and all(t.state == "completed" for t in trials)
    child = promoted[0]
    parent = by_number[lineage[child.id]["parent"]]
    assert [s for s, _ in series[parent.id]["val_loss"]] == [0]
    assert [s for s, _ in series[child.id]["val_loss"]] == [1, 2]  # epochs 1 and 2: none trained twice
    assert last(series[child.id], "start") == 1
    assert last(series[child.id], "start_norm") == pytest.approx(last(series[parent.id], "end_norm"))
    assert last(series[child.id], "has_momentum") == 1.0  # the optimizer's buffers came back too
    assert all(last(series[t.id], "start") == 0 for t in trials if t is not child)


def test_pbt_exploit_keeps_the_new_learning_rate_and_takes_the_donors_weights(storage):
    study = tl.Study("pbt", tl.Space(lr=tl.LogFloat(0.01, 0.1)), segmented, metric="val_loss", mode="min",
                     storage=storage, budget={"epochs": 2}, searcher="random", seed=3, rules=None)
    study.run(executor="inline", scheduler={"name": "pbt", "population": 2, "interval": 1, "quantile": 0.5,
                                            "resample_probability": 0.0})
    trials, series, lineage, _ = stored(storage, "pbt")
    by_number = {t.number: t for t in trials}
    (exploit,) = [t for t in trials if lineage[t.id]["event"] == "exploit"]
    donor = by_number[lineage[exploit.id]["parent"]]
    assert exploit.params["lr"] != donor.params["lr"]
    assert last(series[exploit.id], "opt_lr") == pytest.approx(exploit.params["lr"])  # its own, not the donor's
    assert last(series[exploit.id], "start_norm") == pytest.approx(last(series[donor.id], "end_norm"))
    (cont,) = [t for t in trials if lineage[t.id]["event"] == "continue"]
    assert last(series[cont.id], "opt_lr") == pytest.approx(cont.params["lr"])


def test_save_is_free_without_a_checkpointing_scheduler_and_restore_refuses_foreign_state(storage):
    saved = []

    def plain(trial: tl.Trial) -> float:
        model = mlp()
        with tl.reporting(trial) as r:
            assert r.restore(model) == 0
            saved.append(r.save(0, model))
            r.report(0, loss=1.0)
        return 1.0

    tl.Study("free", tl.Space(x=tl.Choice([1])), plain, metric="loss", mode="min", storage=storage,
             searcher="grid").run(executor="inline")
    assert saved == [False]

    def foreign(trial: tl.Trial) -> None:
        with tl.reporting(trial) as r:
            start = r.restore(mlp())
            for epoch in range(start, trial.budget.epochs):
                r.report(epoch, loss=trial.params.x)
            trial.save_checkpoint(epoch, {"weights": torch.zeros(2)})  # not Reporter.save's

    tl.Study("foreign", tl.Space(x=tl.Choice([1.0, 2.0, 3.0])), foreign, metric="loss", mode="min",
             storage=storage, budget={"epochs": 3}, searcher="grid", rules=None).run(
        executor="inline", scheduler={"name": "sha", "min_resource": 1, "reduction_factor": 3})
    trials, _, lineage, _ = stored(storage, "foreign")
    (child,) = [t for t in trials if lineage[t.id]["parent"] is not None]
    assert child.state == "failed" and "not written by Reporter.save" in child.error


def test_bad_arguments_are_one_line_errors():
    from tuneloop.reporting import Reporter

    r = Reporter(None)  # type: ignore[arg-type]  # the checks come before the trial is used
    with pytest.raises(tl.ConfigError, match="max_values"):
        r.histograms(0, mlp(), max_values=0)
    with pytest.raises(tl.ConfigError, match=r"torch\.nn\.Module"):
        r.histograms(0, [1, 2])  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_sha_loop_in_docs_your_own_loop_runs_as_written(storage):
    """docs/your-own-loop.md's code, as a newcomer copies it: the script's data and the sha loop."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "your-own-loop.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    before, loop = blocks[0], blocks[2]
    assert "def make_data" in before and "r.restore(model, opt)" in loop
    namespace: dict = {}
    exec(compile("import tuneloop as tl\n" + before + loop, "your-own-loop.md", "exec"), namespace)
    study = namespace["study"]
    study.storage = storage
    summary = study.run(executor="inline", scheduler="sha", seed=0)
    assert summary.outcomes == {"completed": 13}
    trials, series, lineage, _ = stored(storage, study.name)
    promoted = [t for t in trials if lineage[t.id]["parent"] is not None]
    assert len(promoted) == 4  # 3 to the second rung, 1 to the third
    assert all(series[t.id]["val_acc"][0][0] in (1, 3) for t in promoted)
    with Store(storage, read_only=True) as store:
        assert all({"weight/0.weight", "grad/2.bias"} <= {h.name for h in store.histograms(t.id)} for t in trials)


@pytest.mark.gpu
def test_on_a_gpu_histograms_sample_on_the_device_and_checkpoints_load_on_any(storage):
    """A CUDA model: a large tensor sampled on the device, a checkpoint saved to the CPU and
    restored into the GPU model of the promoted trial (optimizer state back on the GPU)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    where = {}

    def train(trial: tl.Trial) -> None:
        torch.manual_seed(trial.seed)
        model = nn.Sequential(nn.Linear(8, 4096), nn.ReLU(), nn.Linear(4096, 1)).cuda()  # 32k and 4k weights
        opt = torch.optim.SGD(model.parameters(), lr=trial.params.lr, momentum=0.9)
        x, y = X.cuda(), Y.cuda()
        with tl.reporting(trial) as r:
            start = r.restore(model, opt)
            where[trial.number] = {str(s["momentum_buffer"].device) for s in opt.state.values()}
            for epoch in range(start, trial.budget.epochs):
                loss = nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                r.histograms(epoch, model, max_values=1000)
                opt.step()
                r.report(epoch, val_loss=loss.item())
            r.save(epoch, model, opt)

    tl.Study("gpu", tl.Space(lr=tl.Choice([0.001, 0.01, 0.1])), train, metric="val_loss", mode="min",
             storage=storage, budget={"epochs": 3}, searcher="grid", rules=None).run(
        executor="inline", scheduler={"name": "sha", "min_resource": 1, "reduction_factor": 3})
    trials, _, lineage, _ = stored(storage, "gpu")
    (child,) = [t for t in trials if lineage[t.id]["parent"] is not None]
    assert all(t.state == "completed" for t in trials)
    assert where[child.number] == {"cuda:0"}  # restored optimizer state lives with the parameters
    with Store(storage, read_only=True) as store:
        big = [h for h in store.histograms(child.id) if h.name == "weight/0.weight"]
    assert big and all(h.n == 1000 for h in big)
