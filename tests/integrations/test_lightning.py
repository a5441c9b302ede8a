"""The Lightning callback, against a real Trainer training a stranger's module on CPU: an
``nn.Sequential`` inside a LightningModule, a DataLoader over random tensors, Lightning's own
CSVLogger beside the callback. Lightning is imported once for the module (it takes seconds)."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

import tuneloop as tl
from tuneloop.schedule import Decision, Scheduler

EXAMPLE = Path(__file__).parents[2] / "examples" / "lightning_mnist1d.py"

# Lightning 2.6 on torch >= 2.10 warns on every batch that it uses a deprecated torch API; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*:FutureWarning")


@pytest.fixture(scope="module")
def lit():
    """Lightning, and a trial function training a small regression module with the callback (64
    examples, batch 16: 4 steps per epoch), keeping each Trainer for the test to look at."""
    import logging

    import lightning.pytorch as pl
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from tuneloop.integrations.lightning import TuneloopCallback

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Regressor(pl.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
            self.lr = lr

        def forward(self, x):  # what latency_ms times
            return self.model(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self.model(x), y)
            self.log("loss", loss)  # per step only: Lightning's default in training_step
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self.model(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = x[:, :1] - 0.5 * x[:, 1:2]
    kept: list = []

    def make_train(root: Path, monitor: str = "val_loss", **trainer_options):
        def train(trial: tl.Trial) -> dict:
            torch.manual_seed(trial.seed)
            options = {"logger": False, "enable_checkpointing": False, **trainer_options}
            trainer = pl.Trainer(max_epochs=trial.budget.epochs, default_root_dir=root, log_every_n_steps=2,
                                callbacks=[TuneloopCallback(trial, monitor=monitor)], enable_progress_bar=False,
                                enable_model_summary=False, **options)
            kept.append(trainer)
            trainer.fit(Regressor(trial.params.lr), DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True),
                        DataLoader(TensorDataset(x, y), batch_size=64))
            return {"epochs_trained": trainer.current_epoch, "lr_used": trainer.optimizers[0].param_groups[0]["lr"]}

        return train

    return SimpleNamespace(make_train=make_train, kept=kept)


def _study(lit, storage: str, root: Path, name: str, epochs: int, lr=(0.05,), **options) -> tl.Study:
    space = tl.Space(lr=lr if isinstance(lr, tl.LogFloat) else tl.Choice(list(lr)))
    return tl.Study(name, space, lit.make_train(root, **options), metric="val_loss", mode="min",
                    budget={"epochs": epochs}, storage=storage)


def _series(study: tl.Study, storage: str, trial) -> dict[str, list[tuple[int, float]]]:
    return study.store(storage).series([trial.id])[trial.id]


class _StopAt(Scheduler):
    """Stops every trial at its report of step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        return Decision.STOP if step >= self.at else Decision.CONTINUE


def test_each_validated_epoch_is_reported_and_steps_are_logged_beside_lightnings_own_logger(lit, storage, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    csv_logger = CSVLogger(tmp_path, name="csv")
    study = _study(lit, storage, tmp_path, "lit-report", epochs=3, logger=csv_logger)
    study.run(searcher="grid", seed=0)
    [trial] = study.trials
    trainer = lit.kept[-1]
    assert trial.state == "completed", trial.error
    assert trainer.logger is csv_logger  # the user's logger stays first; ours is beside it
    with open(Path(csv_logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    series = _series(study, storage, trial)
    # the oracle: what Lightning's CSVLogger wrote. One report per epoch, none for the sanity check
    csv_val = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert series["val_loss"] == [(1, pytest.approx(csv_val[0])), (2, pytest.approx(csv_val[1])),
                                  (3, pytest.approx(csv_val[2]))]
    assert trial.value == pytest.approx(csv_val[-1])
    csv_steps = [(int(r["step"]), pytest.approx(float(r["loss"]))) for r in rows if r["loss"]]
    assert series["step/loss"] == csv_steps and len(csv_steps) == 6  # 12 steps, every 2nd
    assert "step/val_loss" not in series  # epoch values are reported once, not logged again
    assert trial.values["epochs_trained"] == 3
    # cost metrics, measured by the callback: the module's size, training time per epoch, latency once
    assert series["params_m"] == [(e, (8 * 16 + 16 + 16 + 1) / 1e6) for e in (1, 2, 3)]
    times = [v for _, v in series["train_time_s"]]
    assert times == sorted(times) and len(set(times)) == 3
    assert times[-1] == pytest.approx(sum(v for _, v in series["epoch_time_s"]))  # validation excluded
    latencies = {v for _, v in series["latency_ms"]}
    assert len(latencies) == 1 and 0 < latencies.pop() == trial.values["latency_ms"]


def test_a_stop_verdict_stops_the_trainer_and_the_trial_ends_pruned(lit, storage, tmp_path):
    # no logger of the user's, Lightning's default checkpointing on: its folder must not move
    study = _study(lit, storage, tmp_path, "lit-stop", epochs=5, enable_checkpointing=True)
    study.run(searcher="grid", scheduler=_StopAt(2), seed=0)
    [trial] = study.trials
    trainer = lit.kept[-1]
    assert trial.state == "pruned", trial.error
    assert [s for s, _ in _series(study, storage, trial)["val_loss"]] == [1, 2]
    assert trainer.current_epoch == 2 and trainer.should_stop
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch=1-step=8.ckpt"]


def test_a_monitor_the_module_never_logs_fails_the_trial_in_one_line(lit, storage, tmp_path):
    study = _study(lit, storage, tmp_path, "lit-monitor", epochs=2, monitor="val_acc")
    study.run(searcher="grid", seed=0)
    [trial] = study.trials
    assert trial.state == "failed"
    first = trial.error.splitlines()[0]
    assert "TuneloopCallback(monitor='val_acc')" in first and "it logged: loss, val_loss" in first, first
    assert "self.log('val_acc', value)" in first
    assert lit.kept[-1].current_epoch == 0  # failed at the first epoch's end, nothing more trained


def test_checkpoints_hold_plain_data_only_and_a_foreign_one_is_refused(lit):
    import numpy as np
    import torch

    from tuneloop.errors import ConfigError
    from tuneloop.integrations.lightning import _plain, _restore
    from tuneloop.trial import check_plain_state

    with pytest.warns(UserWarning, match=r"left out of the checkpoint.*state\['fn'\] \(builtin_function_or_method\)"):
        state = _plain({"w": torch.ones(2, requires_grad=True), "fn": len, "lr": np.float32(0.5), "betas": (0.9, 0.99)})
    check_plain_state(state)
    assert set(state) == {"w", "lr", "betas"} and state["lr"] == 0.5 and not state["w"].requires_grad
    with pytest.raises(ConfigError, match=r"not one TuneloopCallback saved .*state_dict"):
        _restore(None, {"model": {}, "epoch": 3}, [])  # fit's own checkpoint shape, say


@pytest.mark.slow
def test_successive_halving_continues_each_promoted_trial_from_its_checkpoint(lit, storage, tmp_path):
    study = _study(lit, storage, tmp_path, "lit-sha", epochs=4, lr=(0.01, 0.02, 0.05, 0.1))
    study.run(searcher="grid", scheduler={"name": "sha", "n": 4, "reduction_factor": 2}, seed=0)
    trials = {t.number: t for t in study.trials}
    assert len(trials) == 7 and all(t.state == "completed" for t in trials.values()), [t.error for t in trials.values()]
    series = study.store(storage).series([t.id for t in trials.values()])
    firsts = {n: series[t.id]["val_loss"][0][0] for n, t in trials.items()}
    assert sorted(firsts.values()) == [1, 1, 1, 1, 2, 2, 3]  # rungs of 1, 2, 4 epochs, each continuing the last
    last = trials[6]
    assert [s for s, _ in series[last.id]["val_loss"]] == [3, 4] and last.values["epochs_trained"] == 4
    # global steps go on too: the last segment's step logs start after the 8 steps already trained
    assert series[last.id]["step/loss"][0][0] > 8


@pytest.mark.slow
def test_pbt_continues_from_a_better_member_with_this_members_learning_rate(lit, storage, tmp_path):
    study = _study(lit, storage, tmp_path, "lit-pbt", epochs=3, lr=tl.LogFloat(0.01, 0.1))
    study.run(searcher="random", scheduler={"name": "pbt", "population": 4, "interval": 1}, seed=0)
    trials = study.trials
    assert all(t.state == "completed" for t in trials), [t.error for t in trials]
    first = {t.params["lr"] for t in trials if t.number < 4}
    continued = [t for t in trials if t.number >= 4]
    assert len(continued) == 8 and any(t.params["lr"] not in first for t in continued)  # some lr was explored
    series = study.store(storage).series([t.id for t in continued])
    for t in continued:  # an explored learning rate is the one the optimizer uses after the restore
        assert t.values["lr_used"] == pytest.approx(t.params["lr"])
        assert series[t.id]["val_loss"][0][0] > 1


@pytest.mark.slow
def test_the_example_prunes_with_asha_and_finalizes(storage, monkeypatch):
    study = tl.load_study(EXAMPLE)
    monkeypatch.setattr(study, "budget", tl.Budget(epochs=4))  # the example's study is shared in the process
    study.run(n_trials=6, storage=storage, seed=0, executor="inline", scheduler={"name": "asha", "min_resource": 1})
    trials = study.trials
    assert {t.state for t in trials} <= {"completed", "pruned"}, [t.error for t in trials]
    assert any(t.state == "pruned" for t in trials)
    series = study.store(storage).series([t.id for t in trials])
    best = study.best
    assert [s for s, _ in series[best.id]["val_acc"]] == [1, 2, 3, 4] and "step/train_loss" in series[best.id]
    result = study.finalize(top=1, seeds=1, storage=storage)
    assert result.metric == "test_acc" and 0.1 < result.configs[0].values[0] <= 1.0


def test_latency_needs_a_forward_and_x_inputs_and_a_forward_that_fails_only_warns(lit):
    import lightning.pytorch as pl
    import torch
    from torch import nn

    from tuneloop.integrations.lightning import TuneloopCallback

    class NoForward(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(4, 1)

    class Broken(NoForward):
        def forward(self, x):
            raise RuntimeError("needs a mask")

    batch = (torch.ones(3, 4), torch.zeros(3))

    def costs(module: pl.LightningModule, first_batch) -> dict:
        callback = TuneloopCallback(SimpleNamespace(), monitor="val_loss")
        callback.on_validation_batch_start(None, module, first_batch, 0)  # the hook, as Lightning calls it
        return callback._costs(module)

    assert "latency_ms" not in costs(NoForward(), batch)  # no forward(x) to time: left out, silently
    assert "latency_ms" not in costs(Broken(), {"x": batch[0]})  # not (x, y) or x: left out
    with pytest.warns(UserWarning, match=r"latency_ms is not measured: .*RuntimeError: needs a mask"):
        assert "latency_ms" not in costs(Broken(), batch)
    assert costs(NoForward(), batch)["params_m"] == 5 / 1e6
