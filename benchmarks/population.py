"""One 64-configuration sweep three ways: Optuna + a plain PyTorch loop, tuneloop's processes
executor, tuneloop's population executor.

    python benchmarks/population.py                 # writes benchmarks/results/population.json
    python benchmarks/population.py --configs 16    # quicker

The sweep: the MNIST-1D MLP 40-100-100-10, Adam, 20 epochs, batch 100, learning rate (log
1e-4..3e-2) and weight decay (log 1e-6..1e-2) varied; the same 64 configurations (seed 0) for
every method.

  (a) optuna_plain      Optuna (the configurations enqueued), a plain PyTorch loop as in Optuna's
                        examples: DataLoader over a TensorDataset, Adam, val accuracy each epoch
  (a') optuna_tight     the same, but batches by tensor indexing instead of a DataLoader (the
                        fastest sequential loop; reported for honesty, the target is against (a))
  (b) processes         tuneloop, tuneloop.torch.fit, processes executor, 2 workers
  (c) population        tuneloop, the same trial function, population executor, 64 members

Every method evaluates on validation each epoch; test accuracy is measured once per configuration
outside selection. Achieved GFLOP/s count the multiply-adds of training (3x forward) and of the
validation passes; the peak is a 2048^3 fp32 matmul measured in the same run.

The user sweep (issue 20), shaped like a user's own model rather than tuneloop's: a plain
``nn.Sequential`` 20-128-128-4 with ReLU and two ``nn.Dropout`` layers, SGD with momentum, a generated
data set of 1,024 training and 512 validation examples (a random teacher network's labels, with
noise), batch 64, 12 epochs; learning rate, momentum and dropout varied; 16 and 48 trials, end to
end (the wall time of ``study.run``): the population executor against its anchor, the processes
executor with 2 workers, in the same run.

    python benchmarks/population.py --sweep user                # only the user sweep (16 and 48 trials)
    python benchmarks/population.py --sweep user --trials 16    # quicker

Each sweep's figures are merged into the results file: running one keeps the other's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.search import Listed
from tuneloop.store import Store
from tuneloop.torch import MLP, fit

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, BATCH, WIDTH = 20, 100, 100


def configs(n: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    return [{"lr": float(10 ** rng.uniform(-4, np.log10(3e-2))), "weight_decay": float(10 ** rng.uniform(-6, -2))}
            for _ in range(n)]


def matmul_peak(device: torch.device) -> float:
    """GFLOP/s of a large fp32 matmul (the best of three timings)."""
    n = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = 0.0
    for _ in range(3):
        reps = 20 if device.type == "cuda" else 5
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sweep_flop(n_configs: int, data: Any) -> float:
    """Multiply-adds x2 of training (forward + 2x backward) and of one validation pass per epoch."""
    macs = 40 * WIDTH + WIDTH * WIDTH + WIDTH * 10
    train = 3 * 2 * macs * len(data.y_train) * EPOCHS
    val = 2 * macs * len(data.y_val) * EPOCHS
    return float(n_configs * (train + val))


# -- (a) Optuna + a plain PyTorch loop ------------------------------------------------------------
def optuna_plain(cfgs: list[dict[str, float]], tight: bool) -> dict[str, Any]:
    data = mnist1d()
    xtr, ytr = torch.tensor(data.x_train), torch.tensor(data.y_train)
    xva, yva = torch.tensor(data.x_val), torch.tensor(data.y_val)
    xte, yte = torch.tensor(data.x_test), torch.tensor(data.y_test)
    tests: dict[int, float] = {}

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        torch.manual_seed(trial.number)
        model = nn.Sequential(nn.Linear(40, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10))
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xtr, ytr), batch_size=BATCH, shuffle=True)
        best = 0.0
        for epoch in range(EPOCHS):
            model.train()
            if tight:
                order = torch.randperm(len(ytr))
                batches = ((xtr[order[i:i + BATCH]], ytr[order[i:i + BATCH]]) for i in range(0, len(ytr), BATCH))
            else:
                batches = loader
            for xb, yb in batches:
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                acc = (model(xva).argmax(1) == yva).float().mean().item()
            best = max(best, acc)
            trial.report(acc, epoch)
        with torch.no_grad():
            tests[trial.number] = (model(xte).argmax(1) == yte).float().mean().item()
        return best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for c in cfgs:
        study.enqueue_trial(c)
    start = time.perf_counter()
    study.optimize(objective, n_trials=len(cfgs))
    wall = time.perf_counter() - start
    best = study.best_trial
    return {"wall_s": wall, "best_val_acc": best.value, "test_acc_of_best": tests[best.number],
            "mean_val_acc": statistics.fmean(t.value for t in study.trials)}


# -- (b), (c) tuneloop ----------------------------------------------------------------------------
def train(trial: tl.Trial) -> dict[str, float]:
    """The tuneloop trial function, the same for both executors."""
    p, data = trial.params, mnist1d()
    result = fit(lambda: MLP(40, 10, width=WIDTH), data.train, data.val, trial=trial, optimizer="adam", lr=p.lr,
                 weight_decay=p.weight_decay, epochs=trial.budget.epochs, batch_size=BATCH, seed=trial.seed)
    with torch.no_grad():
        model = result.model.eval()
        x = torch.as_tensor(data.x_test).to(next(model.parameters()))
        test = (model(x).argmax(1).cpu() == torch.as_tensor(data.y_test)).float().mean().item()
    return {**result.metrics, "test_acc": test}


def tuneloop_run(cfgs: list[dict[str, float]], executor: str, folder: str) -> dict[str, Any]:
    space = tl.Space(lr=tl.LogFloat(1e-4, 3e-2), weight_decay=tl.LogFloat(1e-6, 1e-2))
    study = tl.Study(f"bench-{executor}", space, train, metric="val_acc", mode="max",
                     budget=tl.Budget(epochs=EPOCHS), storage=f"sqlite:///{Path(folder) / (executor + '.db')}")
    options = {"workers": 2} if executor == "processes" else {"members": len(cfgs)}
    start = time.perf_counter()
    summary = study.run(len(cfgs), searcher=Listed(cfgs), scheduler="none", executor=executor, **options)
    wall = time.perf_counter() - start
    done = [t for t in study.trials if t.state == "completed"]
    best = max(done, key=lambda t: t.value)
    out = {"wall_s": wall, "completed": len(done), "outcomes": summary.outcomes, "best_val_acc": best.value,
           "test_acc_of_best": best.values.get("test_acc"), "mean_val_acc": statistics.fmean(t.value for t in done)}
    if executor == "population":
        store = Store(study.storage)
        series = store.series([t.id for t in done], names=["population/peak_mb", "population/members"])
        out["peak_memory_mb"] = max(v for s in series.values() for _, v in s.get("population/peak_mb", []))
        out["members_per_population"] = max(v for s in series.values() for _, v in s.get("population/members", []))
    return out


# -- the user sweep ------------------------------------------------------------------------------
USER_EPOCHS, USER_BATCH, USER_FEATURES, USER_CLASSES, USER_WIDTH = 12, 64, 20, 4, 128


@functools.lru_cache(maxsize=1)
def user_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """1,024 + 512 examples: Gaussian inputs labelled by a fixed random teacher MLP, with noise."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1536, USER_FEATURES)).astype(np.float32)
    w1 = rng.normal(size=(USER_FEATURES, 32)) / np.sqrt(USER_FEATURES)
    w2 = rng.normal(size=(32, USER_CLASSES)) / np.sqrt(32)
    logits = np.tanh(x @ w1) @ w2 * 3 + rng.gumbel(size=(1536, USER_CLASSES)) * 0.5
    y = logits.argmax(1).astype(np.int64)
    return (x[:1024], y[:1024]), (x[1024:], y[1024:])


def user_model(dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(USER_FEATURES, USER_WIDTH), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(USER_WIDTH, USER_WIDTH), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(USER_WIDTH, USER_CLASSES))


def user_train(trial: tl.Trial) -> dict[str, float]:
    """A user's own trial function: their model, SGD with momentum, their arrays."""
    p = trial.params
    train_set, val_set = user_data()
    return fit(lambda: user_model(p.dropout), train_set, val_set, trial=trial, optimizer="momentum", lr=p.lr,
               momentum=p.momentum, epochs=trial.budget.epochs, batch_size=USER_BATCH, seed=trial.seed).metrics


def user_configs(n: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(1)
    return [{"lr": float(10 ** rng.uniform(-3, -0.5)), "momentum": float(rng.uniform(0.5, 0.95)),
             "dropout": float(rng.uniform(0.0, 0.5))} for _ in range(n)]


def user_run(n: int, executor: str, folder: str) -> dict[str, Any]:
    cfgs = user_configs(n)
    space = tl.Space(lr=tl.LogFloat(1e-3, 10 ** -0.5), momentum=tl.Float(0.5, 0.95), dropout=tl.Float(0.0, 0.5))
    study = tl.Study(f"user-{executor}-{n}", space, user_train, metric="val_acc", mode="max",
                     budget=tl.Budget(epochs=USER_EPOCHS), storage=f"sqlite:///{Path(folder) / f'user-{executor}-{n}.db'}")
    options = {"workers": 2} if executor == "processes" else {"members": n}
    start = time.perf_counter()
    summary = study.run(n, searcher=Listed(cfgs), scheduler="none", executor=executor, **options)
    wall = time.perf_counter() - start
    done = [t for t in study.trials if t.state == "completed"]
    return {"wall_s": wall, "completed": len(done), "outcomes": summary.outcomes,
            "best_val_acc": max(t.value for t in done), "mean_val_acc": statistics.fmean(t.value for t in done)}


def user_sweep(trial_counts: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sweep": {"model": f"nn.Sequential {USER_FEATURES}-{USER_WIDTH}-{USER_WIDTH}-{USER_CLASSES}, ReLU, 2x Dropout",
                  "optimizer": "momentum (SGD)", "examples": {"train": 1024, "val": 512}, "epochs": USER_EPOCHS,
                  "batch_size": USER_BATCH, "varied": ["lr", "momentum", "dropout"], "anchor": "processes, 2 workers"},
        "load_before": _loadavg(), "trials": {}}
    with tempfile.TemporaryDirectory() as folder:
        for n in trial_counts:
            row: dict[str, Any] = {}
            for executor in ("processes", "population"):
                print(f"user sweep, {n} trials, {executor} ...", flush=True)
                row[executor] = user_run(n, executor, folder)
                print(f"  {row[executor]['wall_s']:.1f} s, best val acc {row[executor]['best_val_acc']:.3f}", flush=True)
            row["speedup_population_vs_processes"] = row["processes"]["wall_s"] / row["population"]["wall_s"]
            out["trials"][str(n)] = row
    out["load_after"] = _loadavg()
    return out


def _loadavg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=64)
    parser.add_argument("--skip", nargs="*", default=[], help="methods to leave out")
    parser.add_argument("--sweep", choices=["mnist1d", "user", "both"], default="both",
                        help="the original MNIST-1D sweep, the user-shaped sweep, or both")
    parser.add_argument("--trials", type=int, nargs="*", default=[16, 48], help="the user sweep's trial counts")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "population.json")
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.sweep in ("user", "both"):
        previous["user_sweep"] = {**user_sweep(args.trials), "when": time.strftime("%Y-%m-%d %H:%M")}
        _write(args.out, previous)
    if args.sweep == "user":
        print(json.dumps(previous["user_sweep"], indent=2))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfgs = configs(args.configs)
    data = mnist1d()
    flop = sweep_flop(len(cfgs), data)
    peaks = [matmul_peak(device)]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, run in [("optuna_plain", lambda: optuna_plain(cfgs, tight=False)),
                          ("optuna_tight", lambda: optuna_plain(cfgs, tight=True)),
                          ("processes", lambda: tuneloop_run(cfgs, "processes", folder)),
                          ("population", lambda: tuneloop_run(cfgs, "population", folder))]:
            if name in args.skip:
                continue
            print(f"{name} ...", flush=True)
            results[name] = run()
            print(f"  {results[name]['wall_s']:.1f} s", flush=True)
    peaks.append(matmul_peak(device))
    peak = max(peaks)
    base = results.get("optuna_plain", {}).get("wall_s")
    for r in results.values():
        r["gflop_per_s"] = flop / r["wall_s"] / 1e9
        r["fraction_of_matmul_peak"] = r["gflop_per_s"] / peak
        if base:
            r["speedup_vs_optuna_plain"] = base / r["wall_s"]
    report = {
        "sweep": {"configs": len(cfgs), "model": f"MLP 40-{WIDTH}-{WIDTH}-10", "optimizer": "adam", "epochs": EPOCHS,
                  "batch_size": BATCH, "varied": ["lr", "weight_decay"], "gflop": flop / 1e9},
        "machine": {"device": str(device), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "matmul_peak_gflop_per_s": peak,
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": results,
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "load_after": _loadavg(),
    }
    if "user_sweep" in previous:
        report["user_sweep"] = previous["user_sweep"]
    _write(args.out, report)
    print(json.dumps(report, indent=2))


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
