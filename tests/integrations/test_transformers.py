"""The Hugging Face Trainer callback, against a real Trainer training a real (tiny) BERT on CPU.

Nothing is downloaded: the model is built from a config, the data generated here. transformers is
imported once for the module (it takes seconds).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import tuneloop as tl
from tuneloop.errors import ConfigError
from tuneloop.schedule import Decision, Scheduler

EXAMPLE = Path(__file__).parents[2] / "examples" / "hf_tiny_classifier.py"


@pytest.fixture(scope="module", autouse=True)
def _offline():
    """No download, ever, and one torch thread for a tiny model."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and several spin against other processes
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hf(tmp_path_factory, _offline):
    """transformers, a tiny dataset (64 train, 32 eval: 4 steps per epoch at batch 16) and a
    trial function that trains a 1-layer BERT with the callback, keeping its Trainer for the test."""
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, PrinterCallback, Trainer, TrainingArguments

    from tuneloop.integrations.transformers import TuneloopCallback

    transformers.logging.set_verbosity_error()
    out = tmp_path_factory.mktemp("hf")

    def data(n: int, seed: int) -> list[dict]:
        x = torch.randint(2, 16, (n, 8), generator=torch.Generator().manual_seed(seed))
        y = (x == 5).any(dim=1).long()
        return [{"input_ids": x[i], "labels": y[i]} for i in range(n)]

    def accuracy(p) -> dict:
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    kept: list = []

    def make_train(metric: str | None = None, compute_metrics=accuracy):
        def train(trial: tl.Trial) -> None:
            torch.manual_seed(0)
            model = BertForSequenceClassification(BertConfig(
                vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=8, num_labels=2))
            args = TrainingArguments(output_dir=str(out), report_to=[], use_cpu=True, disable_tqdm=True,
                                     save_strategy="no", eval_strategy="epoch", logging_steps=2, seed=0,
                                     per_device_train_batch_size=16, learning_rate=trial.params.learning_rate,
                                     num_train_epochs=trial.budget.epochs)
            callback = TuneloopCallback(trial, metric=metric)
            trainer = Trainer(model=model, args=args, train_dataset=data(64, 0), eval_dataset=data(32, 1),
                              compute_metrics=compute_metrics, callbacks=[callback])
            trainer.remove_callback(PrinterCallback)
            kept.append((trainer, callback))
            trainer.train()

        return train

    return SimpleNamespace(make_train=make_train, kept=kept, TuneloopCallback=TuneloopCallback)


def _study(hf, storage: str, name: str, epochs: int, **train_options) -> tl.Study:
    return tl.Study(name, tl.Space(learning_rate=tl.Choice([3e-3])), hf.make_train(**train_options),
                    metric="eval_accuracy", mode="max", budget={"epochs": epochs}, storage=storage)


def _series(study: tl.Study, storage: str, trial) -> dict[str, list[tuple[int, float]]]:
    return study.store(storage).series([trial.id])[trial.id]


def _assert_linear_decay(points: list[tuple[int, float]], base: float, total: int) -> None:
    """``points`` (step, logged rate) lie on ``base * (1 - step / total)``, every one shifted by the
    same 0 or 1 step (transformers 5 logs the rate a step trained with, 4.x the one after it)."""
    step, lr = points[0]
    shift = round(step - total * (1 - lr / base))
    assert shift in (0, 1), points
    for step, lr in points:
        assert lr == pytest.approx(base * (1 - (step - shift) / total), rel=1e-4), (step, points)


class _StopAtOnce(Scheduler):
    """Stops every trial at its first report."""

    def on_report(self, trial_id: int, step: int, value: float) -> Decision:
        return Decision.STOP


def test_each_evaluation_is_reported_at_its_epoch_and_training_logs_are_mirrored(hf, storage):
    study = _study(hf, storage, "hf-report", epochs=2, metric="eval_accuracy")
    study.run(searcher="grid", seed=0)
    [trial] = study.trials
    trainer, callback = hf.kept[-1]
    assert trial.state == "completed", trial.error
    series = _series(study, storage, trial)
    evaluations = [h for h in trainer.state.log_history if "eval_loss" in h]  # the Trainer's own record
    assert series["eval_loss"] == [(1, pytest.approx(evaluations[0]["eval_loss"])),
                                   (2, pytest.approx(evaluations[1]["eval_loss"]))]
    assert trial.value == pytest.approx(evaluations[-1]["eval_accuracy"])  # the last evaluation is the result
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert series["loss"] == [(h["step"], pytest.approx(h["loss"])) for h in logged]  # global steps 2, 4, 6, 8
    assert [s for s, _ in series["learning_rate"]] == [2, 4, 6, 8] and "grad_norm" in series
    assert "eval_runtime" not in series and "train_runtime" not in series  # speed figures are not results
    assert series["train_loss"] == [(8, pytest.approx(trainer.state.log_history[-1]["train_loss"]))]
    assert callback.reported and not callback.stopped
    # cost metrics, measured by the callback with each evaluation
    model = trainer.model
    assert series["params_m"] == [(e, sum(p.numel() for p in model.parameters()) / 1e6) for e in (1, 2)]
    times, epochs = [v for _, v in series["train_time_s"]], [v for _, v in series["epoch_time_s"]]
    assert 0 < times[0] < times[1] and all(e > 0 for e in epochs)
    assert times[1] <= trainer.state.log_history[-1]["train_runtime"]  # less its evaluations and our timing
    latencies = {v for _, v in series["latency_ms"]}
    assert len(latencies) == 1 and 0 < latencies.pop() == trial.values["latency_ms"]


def test_a_stop_verdict_stops_the_trainer_and_the_trial_ends_pruned(hf, storage):
    study = _study(hf, storage, "hf-stop", epochs=3)
    study.run(searcher="grid", scheduler=_StopAtOnce(), seed=0)
    [trial] = study.trials
    trainer, callback = hf.kept[-1]
    assert trial.state == "pruned", trial.error
    assert callback.stopped and trainer.control.should_training_stop
    assert trainer.state.global_step == 4  # one epoch of the three, then the Trainer stopped
    assert [s for s, _ in _series(study, storage, trial)["eval_accuracy"]] == [1]


def test_a_metric_the_evaluation_lacks_fails_the_trial_at_the_first_evaluation(hf, storage):
    study = _study(hf, storage, "hf-missing", epochs=3, metric="eval_accuracy", compute_metrics=None)
    study.run(searcher="grid", seed=0)
    [trial] = study.trials
    assert trial.state == "failed"
    assert "has no metric 'eval_accuracy'; it has eval_loss" in trial.error and "compute_metrics" in trial.error
    assert hf.kept[-1][0].state.global_step == 4  # it failed at the first evaluation, not after training


def test_the_callback_refuses_what_is_not_a_trial_and_a_checkpoint_it_did_not_save(hf, tmp_path):
    with pytest.raises(ConfigError, match=r"TuneloopCallback\(trial\)"):
        hf.TuneloopCallback({"lr": 0.1})
    from tuneloop.integrations._hf_checkpoint import FORMAT, write_trainer_checkpoint

    with pytest.raises(ConfigError, match="format"):
        write_trainer_checkpoint({"model": {}}, str(tmp_path))
    forged = {"format": FORMAT, "model": {}, "optimizer": None, "scheduler": None, "learning_rate": 1e-3,
              "weight_decay": 0.0, "trainer_state": {"global_step": "../../etc"}}
    with pytest.raises(ConfigError, match="global_step"):
        write_trainer_checkpoint(forged, str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # checked before anything is written


# -- end to end (slow) ------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_example_prunes_with_asha_and_stores_every_curve(storage, monkeypatch):
    monkeypatch.chdir(Path(storage.removeprefix("sqlite:///")).parent)
    study = tl.load_study(EXAMPLE)
    summary = study.run(n_trials=8, storage=storage, seed=0)
    assert summary.finished_total == 8
    states = [t.state for t in study.trials]
    assert "pruned" in states and "completed" in states, [t.error for t in study.trials]
    assert study.best.value < 0.1  # eval_loss: the rule is learnable, the best configuration learns it
    series = study.store(storage).series([t.id for t in study.trials])
    for t in study.trials:
        epochs = [s for s, _ in series[t.id]["eval_loss"]]
        assert epochs == list(range(1, len(epochs) + 1)) and "loss" in series[t.id]
        if t.state == "pruned":
            assert len(epochs) < 6


@pytest.mark.slow
def test_sha_continues_a_promoted_trial_where_its_checkpoint_stopped(storage, monkeypatch):
    monkeypatch.chdir(Path(storage.removeprefix("sqlite:///")).parent)
    study = tl.load_study(EXAMPLE)
    monkeypatch.setattr(study, "budget", tl.Budget(epochs=3))  # the example's study is shared in the process
    study.run(scheduler={"name": "sha", "min_resource": 1, "reduction_factor": 3}, storage=storage, seed=0)
    trials = study.trials
    assert [t.state for t in trials] == ["completed"] * 4, [t.error for t in trials]
    first, promoted = trials[:3], trials[3]
    [parent] = [t for t in first if t.params == promoted.params]
    series = study.store(storage).series([parent.id, promoted.id])
    assert [s for s, _ in series[promoted.id]["eval_accuracy"]] == [2, 3]  # epochs 2 and 3, not 1 to 3 again
    parent_steps = [s for s, _ in series[parent.id]["loss"]]
    assert min(s for s, _ in series[promoted.id]["loss"]) > max(parent_steps)  # the global step went on
    # one learning-rate curve across both segments: linear decay over all 3 epochs
    lrs = series[parent.id]["learning_rate"] + series[promoted.id]["learning_rate"]
    _assert_linear_decay(lrs, promoted.params["learning_rate"], total=max(s for s, _ in lrs))


@pytest.mark.slow
def test_pbt_exploit_trains_with_its_own_learning_rate(storage, monkeypatch):
    monkeypatch.chdir(Path(storage.removeprefix("sqlite:///")).parent)
    example = tl.load_study(EXAMPLE)
    space = tl.Space(learning_rate=tl.LogFloat(1e-3, 1e-2), weight_decay=tl.Choice([0.01]),
                     dropout=tl.Choice([0.1]), batch_size=tl.Choice([32]))  # PBT must not change the batch size
    study = tl.Study("hf-pbt", space, example.fn, metric="eval_loss", mode="min", budget={"epochs": 2})
    study.run(scheduler={"name": "pbt", "population": 4, "interval": 1}, storage=storage, seed=0)
    trials = study.trials
    assert len(trials) == 8 and all(t.state == "completed" for t in trials), [t.error for t in trials]
    series = study.store(storage).series([t.id for t in trials], ["learning_rate"])
    second = trials[4:]
    changed = [t for t in second if all(t.params["learning_rate"] != f.params["learning_rate"] for f in trials[:4])]
    assert changed, "no member was exploited and explored"
    for t in changed:  # its own rate, decayed on the schedule of the whole run (16 steps per epoch, 2 epochs)
        _assert_linear_decay(series[t.id]["learning_rate"], t.params["learning_rate"], total=32)


@pytest.mark.slow
def test_hyperparameter_search_tunes_a_trainer_and_returns_the_best_run(storage, tmp_path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from tuneloop.integrations.transformers import hyperparameter_search

    x = torch.randint(2, 16, (160, 8), generator=torch.Generator().manual_seed(0))
    rows = [{"input_ids": x[i], "labels": (x[i] == 5).any().long()} for i in range(160)]
    built: list[float] = []

    def model_init(params):
        dropout = params["dropout"] if params else 0.1
        built.append(dropout)
        return BertForSequenceClassification(BertConfig(
            vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=8, num_labels=2, hidden_dropout_prob=dropout))

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, disable_tqdm=True,
                             save_strategy="no", eval_strategy="epoch", num_train_epochs=2, learning_rate=5e-5)
    trainer = Trainer(model_init=model_init, args=args, train_dataset=rows[:128], eval_dataset=rows[128:])
    space = {"learning_rate": tl.LogFloat(1e-4, 1e-2), "per_device_train_batch_size": tl.Choice([16, 32]),
             "dropout": tl.Float(0.0, 0.3)}
    best = hyperparameter_search(trainer, space, n_trials=3, storage=storage, name="hf-search", seed=0)
    study = best.run_summary
    assert len(study.trials) == 3 and all(t.state in ("completed", "pruned") for t in study.trials)
    assert best.objective == study.best.value and best.hyperparameters == study.best.params
    assert best.run_id == str(study.best.number) and math.isfinite(best.objective)
    assert sorted(built[-3:]) == sorted(t.params["dropout"] for t in study.trials)  # model_init got the params
    series = study.store(storage).series([t.id for t in study.trials], ["eval_loss"])
    assert all(series[t.id]["eval_loss"] for t in study.trials)
    assert args.learning_rate == 5e-5 and args.num_train_epochs == 2  # the Trainer's arguments are back
    with pytest.raises(ConfigError, match="model_init"):
        hyperparameter_search(Trainer(model=model_init(None), args=args, eval_dataset=rows[128:]), space, n_trials=1,
                              storage=storage)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
