"""Wall-clock time to reach a target validation accuracy with the MNIST-1D CNN.

    python benchmarks/time_to_target.py                       # 5 seeds each; benchmarks/results/time_to_target.json
    python benchmarks/time_to_target.py --seeds 3 --cap 300   # quicker
    python benchmarks/time_to_target.py --methods population optuna

Four ways to tune the paper's CNN (examples/mnist1d_cnn.py's space and trainer, 30 epochs):
  population tpe + asha (first rung at epoch 3), the population executor: --members trials trained
             together, channels, kernel sizes and optimizers of one family in one padded population
  tuneloop   tpe + asha (first rung at epoch 3), 2 worker processes
  optuna     Optuna's defaults: TPESampler + MedianPruner, study.optimize(n_jobs=1)
  random     Optuna's RandomSampler, no pruner, sequential
Every run uses the same training code (tuneloop.torch.fit) and 2 CPU threads in total, and reads
MNIST-1D from tuneloop's disk cache (generated once before the first run). The clock
stops at the first epoch report, of any trial, with val_acc >= the target; a run that has not
reached it after --cap seconds counts as the cap (censored; reported as such).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

import tuneloop as tl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist1d_cnn.py"
EPOCHS = 30
METHODS = ("population", "tuneloop", "optuna", "random")


class Reached(Exception):
    """The target was reached: stop the run."""


class _OptunaTrial:
    """What tuneloop.torch.fit needs from a trial, on top of an Optuna trial (so every method
    trains with identical code)."""

    heldout, phase, splits_used, checkpointing = "val", "tune", True, False

    def __init__(self, trial: optuna.Trial, params: dict[str, Any], seed: int, watch: Any) -> None:
        self.trial, self.params, self.seed, self.watch = trial, tl.Params(params), seed, watch
        self.budget = tl.Budget(epochs=EPOCHS)

    def report(self, step: int, **metrics: float) -> None:
        self.watch(metrics.get("val_acc"))
        self.trial.report(metrics["val_acc"], step)

    def should_stop(self) -> bool:
        return self.trial.should_prune()

    def splits(self, data: Any) -> tuple[Any, Any]:
        return data.train, data.val

    def log(self, *_: Any, **__: Any) -> None: ...
    def log_slice(self, *_: Any, **__: Any) -> None: ...
    def log_sample(self, *_: Any, **__: Any) -> None: ...
    def log_histogram(self, *_: Any, **__: Any) -> None: ...
    def log_predictions(self, *_: Any, **__: Any) -> None: ...
    def load_checkpoint(self) -> None: ...
    def extra_heldout(self) -> None: ...


def run_optuna(kind: str, seed: int, target: float, cap: float) -> float | None:
    import torch

    torch.set_num_threads(2)
    example = tl.load_study(EXAMPLE)
    start = time.perf_counter()
    hit: list[float] = []

    def watch(value: float | None) -> None:
        if value is not None and value >= target and not hit:
            hit.append(time.perf_counter() - start)
            raise Reached

    def objective(trial: optuna.Trial) -> float:
        params = example.space.suggest(trial)
        shim = _OptunaTrial(trial, params, seed * 1000 + trial.number, watch)
        metrics = example.fn(shim)
        if shim.should_stop():
            raise optuna.TrialPruned
        return metrics["val_acc"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if kind == "optuna" else optuna.samplers.RandomSampler(seed=seed)
    pruner = optuna.pruners.MedianPruner() if kind == "optuna" else optuna.pruners.NopPruner()
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    try:
        study.optimize(objective, timeout=cap, catch=())
    except Reached:
        pass
    return hit[0] if hit else None


class _Watch(tl.Callback):
    def __init__(self, target: float, start: float) -> None:
        self.target, self.start, self.hit = target, start, None

    def on_report(self, number: int, step: int, metrics: dict[str, float]) -> None:
        if metrics.get("val_acc", 0.0) >= self.target and self.hit is None:
            self.hit = time.perf_counter() - self.start
            raise Reached


def run_tuneloop(seed: int, target: float, cap: float, folder: Path, members: int | None = None) -> float | None:
    study = tl.load_study(EXAMPLE)
    study.budget = tl.Budget(epochs=EPOCHS)
    start = time.perf_counter()
    watch = _Watch(target, start)
    how: dict[str, Any] = {"workers": 2} if members is None else {"executor": "population", "members": members}
    if members is not None:
        import torch

        torch.set_num_threads(2)
    try:
        study.run(timeout=cap, seed=seed, searcher="tpe", scheduler={"name": "asha", "min_resource": 3},
                  storage=str(folder / f"tuneloop-{seed}-{members}.db"), callbacks=[watch], **how)
    except Reached:
        pass
    return watch.hit


def _one(kind: str, seed: int, target: float, cap: float, folder: str, members: int) -> float | None:
    """One run in a fresh process (no warm caches carried over; its workers may spawn freely)."""
    out = subprocess.run([sys.executable, __file__, "--one", kind, str(seed), str(target), str(cap), folder,
                          str(members)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.94)
    parser.add_argument("--cap", type=float, default=400.0, help="seconds per run before giving up")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "time_to_target.json")
    parser.add_argument("--members", type=int, default=16, help="population executor: trials trained together")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="which methods to run (the first is the one the speed-ups are of)")
    parser.add_argument("--one", nargs=6, metavar=("KIND", "SEED", "TARGET", "CAP", "FOLDER", "MEMBERS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process of one run
        kind, seed, target, cap, folder, members = args.one
        if kind in ("tuneloop", "population"):
            seconds = run_tuneloop(int(seed), float(target), float(cap), Path(folder),
                                   int(members) if kind == "population" else None)
        else:
            seconds = run_optuna(kind, int(seed), float(target), float(cap))
        print(json.dumps({"seconds": seconds}))
        return
    from tuneloop.datasets import mnist1d

    mnist1d()  # generated once, before any clock: every method then reads it from the disk cache alike
    results: dict[str, list[float | None]] = {kind: [] for kind in args.methods}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):  # interleaved, so machine drift hits every method alike
            for kind in args.methods:
                t = _one(kind, seed, args.target, args.cap, folder, args.members)
                results[kind].append(t)
                shown = "not reached" if t is None else f"{t:.1f}s"
                print(f"seed {seed} {kind:8s} {shown}", flush=True)
    summary = {}
    for kind, times in results.items():
        capped = [args.cap if t is None else t for t in times]
        summary[kind] = {"times_s": times, "median_s": statistics.median(capped),
                         "reached": sum(t is not None for t in times), "runs": len(times)}
    for ours in ("population", "tuneloop"):
        if ours in summary:
            for kind in summary:
                if kind not in ("population", "tuneloop"):
                    summary[kind][f"{ours}_speedup_at_median"] = summary[kind]["median_s"] / summary[ours]["median_s"]
    out = {"benchmark": "time_to_target", "target_val_acc": args.target, "cap_s": args.cap, "epochs": EPOCHS,
           "members": args.members, "load_at_end": os.getloadavg(),
           "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
           "results": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
