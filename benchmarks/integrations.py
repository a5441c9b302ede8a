"""Overhead of the framework callbacks (``tuneloop.integrations``) per validation epoch.

    python benchmarks/integrations.py                    # every bench; writes benchmarks/results/integrations.json
    python benchmarks/integrations.py --only lightning   # one bench; the other benches' stored results are kept

Each bench trains its example's model twice per repeat, alternating, with the same seed: once with
the callback inside a one-trial study (inline executor, SQLite store: every report goes through the
driver, the scheduler and the store before training goes on) and once without it, the anchor (the
same training in the same process, no tuneloop). The medians over repeats give two figures:

- ``callback_share``: the time spent inside the callback's own code per epoch (timed around each of
  its hooks, and its logger), over the anchor's epoch time. Precise; the target (< 2%) is judged on it.
- ``wall_overhead``: the difference in epoch time between the two runs, over the anchor's. What a user
  sees, including the framework's own work the callback causes (Lightning converts logged values for
  a logger once there is one), but noisy: this machine's epoch times drift by a few percent.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import runpy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tuneloop as tl

EXAMPLES = Path(__file__).parents[1] / "examples"
TARGET = 0.02  # the callback's share of an epoch


def _epoch_times(starts: list[float], end: float) -> list[float]:
    """Durations of each epoch from the start of one to the start of the next (hooks included), the
    first (warm-up: data loaders, first allocations) left out."""
    stamps = [*starts, end]
    return [b - a for a, b in itertools.pairwise(stamps)][1:]


def _adding_time(owner: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, adding the seconds each call takes to ``owner.spent``."""
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            owner.spent += time.perf_counter() - start
    return timed


def _timed_hook(base: Callable[..., Any]) -> Callable[..., Any]:
    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._timed(base)(self, *args, **kwargs)
    return hook


def bench_lightning(repeats: int, folder: Path) -> dict[str, Any]:
    """The MNIST-1D MLP of examples/lightning_mnist1d.py (3,200 examples, batch 128: 25 steps per
    epoch, a value logged every 5 steps), 8 epochs, with and without ``TuneloopCallback``."""
    import logging

    import lightning.pytorch as pl
    import torch

    from tuneloop.datasets import mnist1d
    from tuneloop.integrations.lightning import TuneloopCallback

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)  # as a tuneloop worker runs (one thread per trial); also steadier on a shared machine
    example = runpy.run_path(str(EXAMPLES / "lightning_mnist1d.py"))
    data = mnist1d()
    epochs = 8

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.end = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.end = time.perf_counter()

    class Timed(TuneloopCallback):
        """The callback, with the time spent in each of its hooks and in its logger added up."""

        spent = 0.0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._logger.log_metrics = self._timed(self._logger.log_metrics)  # type: ignore[method-assign]

        def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
            return _adding_time(self, fn)

    for hook in ("setup", "on_fit_start", "on_train_epoch_start", "on_validation_start", "on_validation_end",
                 "on_train_epoch_end", "on_train_end"):
        setattr(Timed, hook, _timed_hook(getattr(TuneloopCallback, hook)))

    def fit(trial: tl.Trial | None) -> dict[str, float]:
        pl.seed_everything(0, verbose=False)
        model = example["Classifier"](width=128, dropout=0.1, lr=3e-3, weight_decay=1e-4, epochs=epochs)
        clock = Clock()
        timed = Timed(trial, monitor="val_acc") if trial is not None else None
        trainer = pl.Trainer(max_epochs=epochs, callbacks=[clock] + ([timed] if timed else []), logger=False,
                            log_every_n_steps=5, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False)
        trainer.fit(model, datamodule=example["MNIST1DData"](data.train, data.val))
        return {"epoch_s": statistics.median(_epoch_times(clock.starts, clock.end)),
                "callback_s": timed.spent / epochs if timed else 0.0,
                "val_acc": float(trainer.callback_metrics["val_acc"])}

    import lightning

    return _measure("lightning", fit, "val_acc", "max", epochs, repeats, folder,
                    {"example": "examples/lightning_mnist1d.py", "steps_per_epoch": 25,
                     "versions": {"lightning": lightning.__version__}})


def bench_transformers(repeats: int, folder: Path) -> dict[str, Any]:
    """The 2-layer BERT of examples/hf_tiny_classifier.py (512 sequences, batch 32: 16 steps per
    epoch, a log every 4 steps, an evaluation on 256 each epoch), 8 epochs, with and without
    ``TuneloopCallback``; the anchor is the same Trainer without it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from tuneloop.integrations.transformers import TuneloopCallback

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)  # as a tuneloop worker runs (one thread per trial); also steadier on a shared machine
    example = runpy.run_path(str(EXAMPLES / "hf_tiny_classifier.py"))
    train_set, eval_set = example["TokenRule"](512, seed=0), example["TokenRule"](256, seed=1)
    epochs = 8

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.end = 0.0

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.starts.append(time.perf_counter())

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.end = time.perf_counter()

    class Timed(TuneloopCallback):
        """The callback, with the time spent in each of its hooks added up."""

        spent = 0.0

        def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
            return _adding_time(self, fn)

    for hook in ("on_train_begin", "on_evaluate", "on_log", "on_train_end"):
        setattr(Timed, hook, _timed_hook(getattr(TuneloopCallback, hook)))

    def fit(trial: tl.Trial | None) -> dict[str, float]:
        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(
            vocab_size=example["VOCAB"], hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=example["LENGTH"], num_labels=2))
        args = TrainingArguments(output_dir=str(folder / "hf"), report_to=[], use_cpu=True, disable_tqdm=True,
                                 save_strategy="no", eval_strategy="epoch", logging_steps=4, seed=0,
                                 learning_rate=3e-3, per_device_train_batch_size=32, num_train_epochs=epochs)
        clock = Clock()
        timed = Timed(trial, metric="eval_loss") if trial is not None else None
        trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                          compute_metrics=example["accuracy"], callbacks=[clock] + ([timed] if timed else []))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        last = [h for h in trainer.state.log_history if "eval_loss" in h][-1]
        return {"epoch_s": statistics.median(_epoch_times(clock.starts, clock.end)),
                "callback_s": timed.spent / epochs if timed else 0.0, "eval_loss": float(last["eval_loss"])}

    return _measure("transformers", fit, "eval_loss", "min", epochs, repeats, folder,
                    {"example": "examples/hf_tiny_classifier.py", "steps_per_epoch": 16,
                     "versions": {"transformers": transformers.__version__}})


def _measure(name: str, fit: Callable[[tl.Trial | None], dict[str, float]], metric: str, mode: str, epochs: int,
             repeats: int, folder: Path, about: dict[str, Any]) -> dict[str, Any]:
    """``fit`` without the callback (the anchor) and with it inside a real one-trial study, alternating
    ``repeats`` times; medians of the epoch time and of the time spent in the callback's hooks."""
    runs: dict[str, list[dict[str, float]]] = {"anchor": [], "callback": []}
    for r in range(repeats):
        runs["anchor"].append(fit(None))
        kept: list[dict[str, float]] = []

        def train(trial: tl.Trial, kept: list[dict[str, float]] = kept) -> None:
            kept.append(fit(trial))

        study = tl.Study(f"bench-{name}-{r}", tl.Space(run=tl.Choice([r])), train, metric=metric, mode=mode,
                         budget={"epochs": epochs}, storage=f"sqlite:///{folder / f'{name}.db'}")
        study.run(searcher="grid", executor="inline", scheduler={"name": "asha", "min_resource": 2})
        if not kept or study.trials[0].state != "completed":
            raise RuntimeError(f"the benchmark's trial did not complete: {study.trials[0].error}")
        runs["callback"].append(kept[0])
        print(f"[{r + 1}/{repeats}] {name} epoch: anchor {1e3 * runs['anchor'][-1]['epoch_s']:.1f} ms, with the "
              f"callback {1e3 * kept[0]['epoch_s']:.1f} ms (in its hooks {1e3 * kept[0]['callback_s']:.2f} ms)",
              flush=True)
    anchor = statistics.median(run["epoch_s"] for run in runs["anchor"])
    with_cb = statistics.median(run["epoch_s"] for run in runs["callback"])
    spent = statistics.median(run["callback_s"] for run in runs["callback"])
    return {**about, "epochs": epochs, "repeats": repeats, "anchor_epoch_ms": 1e3 * anchor,
            "callback_epoch_ms": 1e3 * with_cb, "callback_hooks_ms_per_epoch": 1e3 * spent,
            "callback_share": spent / anchor, "wall_overhead": with_cb / anchor - 1, "within_target": spent / anchor < TARGET,
            "same_result": all(a[metric] == c[metric] for a, c in zip(runs["anchor"], runs["callback"])), "runs": runs}


BENCHES: dict[str, Callable[[int, Path], dict[str, Any]]] = {"lightning": bench_lightning,
                                                          "transformers": bench_transformers}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHES), help="run this bench alone")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side (median kept)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "integrations.json")
    args = parser.parse_args()
    stored = json.loads(args.out.read_text()) if args.out.exists() else {}
    results: dict[str, Any] = dict(stored.get("results", {}))
    with tempfile.TemporaryDirectory() as tmp:
        for name in [args.only] if args.only else sorted(BENCHES):
            results[name] = BENCHES[name](args.repeats, Path(tmp)) | {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
            r = results[name]
            print(f"{name}: epoch {r['anchor_epoch_ms']:.1f} ms without the callback, {r['callback_epoch_ms']:.1f} ms "
                  f"with it; its hooks take {r['callback_hooks_ms_per_epoch']:.2f} ms per epoch = "
                  f"{r['callback_share']:.2%} (target < {TARGET:.0%}); wall difference {r['wall_overhead']:+.2%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "integrations", "target_share": TARGET, "results": results,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "tuneloop": tl.__version__},
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
