"""Per-trial overhead of searcher + driver + store, against Optuna alone doing the same ask/tell.

    python benchmarks/overhead.py                 # 1,000 trials each; writes benchmarks/results/overhead.json

A no-op trial function over 5 float parameters isolates the framework's own cost. tuneloop
runs with the inline executor and a persistent SQLite store (a fresh file); Optuna runs its
ask/tell loop in memory and with its SQLite storage. "at_end_ms" is the mean cost of the last
100 trials (what a trial costs once the study holds ~1,000), "mean_ms" the mean over all.
On this flat space tuneloop's ``tpe`` is Optuna's default TPESampler (tuneloop adds ``group``
only on conditional spaces), so the TPE comparison is like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna

import tuneloop as tl

SPACE = tl.Space(**{f"x{i}": tl.Float(-5.0, 5.0) for i in range(5)})


def noop(trial: tl.Trial) -> float:
    return sum(trial.params[f"x{i}"] ** 2 for i in range(5))


class _Clock(tl.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_trial_end(self, trial: tl.TrialRecord) -> None:
        self.stamps.append(time.perf_counter())


def _stats(durations: list[float]) -> dict[str, float]:
    tail = durations[-100:]
    return {"trials": len(durations), "mean_ms": 1e3 * sum(durations) / len(durations),
            "at_end_ms": 1e3 * sum(tail) / len(tail), "total_s": sum(durations)}


def bench_tuneloop(searcher: str | dict, n: int, folder: Path) -> dict[str, float]:
    label = searcher if isinstance(searcher, str) else "-".join(map(str, searcher.values()))
    db = folder / f"tuneloop-{label}.db"
    study = tl.Study(f"bench-{label}", SPACE, noop, metric="value", mode="min", storage=str(db))
    clock = _Clock()
    start = time.perf_counter()
    study.run(n_trials=n, searcher=searcher, executor="inline", seed=0, callbacks=[clock])
    stamps = [start, *clock.stamps]
    return _stats([b - a for a, b in zip(stamps, stamps[1:], strict=False)])


def bench_optuna(make_sampler: Callable[[], optuna.samplers.BaseSampler], n: int, storage: str | None) -> dict[str, float]:
    study = optuna.create_study(sampler=make_sampler(), storage=storage, direction="minimize")
    durations = []
    for _ in range(n):
        t0 = time.perf_counter()
        trial = study.ask()
        value = sum(trial.suggest_float(f"x{i}", -5.0, 5.0) ** 2 for i in range(5))
        study.tell(trial, value)
        durations.append(time.perf_counter() - t0)
    return _stats(durations)


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {"repeats": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each target comparison (median kept)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "overhead.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    n = args.trials
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # the target comparisons, interleaved and repeated: this machine's timings drift by ~30%
        targets: list[tuple[str, Callable[[int], dict[str, float]]]] = [
            ("tuneloop random (inline, sqlite)", lambda r: bench_tuneloop("random", n, folder / f"r{r}")),
            ("optuna random (memory)", lambda r: bench_optuna(lambda: optuna.samplers.RandomSampler(seed=0), n, None)),
            ("tuneloop tpe (inline, sqlite)", lambda r: bench_tuneloop("tpe", n, folder / f"t{r}")),
            ("optuna tpe (memory)", lambda r: bench_optuna(lambda: optuna.samplers.TPESampler(seed=0), n, None)),
        ]
        raw: dict[str, list[dict[str, float]]] = {name: [] for name, _ in targets}
        for r in range(args.repeats):
            (folder / f"r{r}").mkdir()
            (folder / f"t{r}").mkdir()
            for name, run in targets:
                raw[name].append(run(r))
                print(f"[{r + 1}/{args.repeats}] {name:36s} at trial {n}: {raw[name][-1]['at_end_ms']:8.2f} ms/trial",
                      flush=True)
        results = {name: _median(runs) for name, runs in raw.items()}
        # context only (Optuna's own persistent storage), run once: it is slow
        results["optuna random (sqlite)"] = bench_optuna(
            lambda: optuna.samplers.RandomSampler(seed=0), n, f"sqlite:///{folder / 'optuna-random.db'}")
        results["optuna tpe (sqlite)"] = bench_optuna(
            lambda: optuna.samplers.TPESampler(seed=0), n, f"sqlite:///{folder / 'optuna-tpe.db'}")
    print()
    for name, r in results.items():
        print(f"{name:36s} mean {r['mean_ms']:8.2f} ms/trial   at trial {n}: {r['at_end_ms']:8.2f} ms/trial")
    tpe = results["tuneloop tpe (inline, sqlite)"]
    ref = results["optuna tpe (memory)"]
    verdict = {
        "random_at_end_ms": results["tuneloop random (inline, sqlite)"]["at_end_ms"],
        "random_below_2ms": results["tuneloop random (inline, sqlite)"]["at_end_ms"] < 2.0,
        "tpe_ratio_at_end": tpe["at_end_ms"] / ref["at_end_ms"],
        "tpe_ratio_mean": tpe["mean_ms"] / ref["mean_ms"],
        "tpe_within_1.2x_at_end": tpe["at_end_ms"] / ref["at_end_ms"] <= 1.2,
    }
    print(json.dumps(verdict, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "overhead", "trials": n, "results": results, "targets": verdict,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "optuna": optuna.__version__, "tuneloop": tl.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
