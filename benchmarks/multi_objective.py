"""Multi-objective search: hypervolume after 100 trials against Optuna's own samplers, and the cost
per trial at 1,000 trials (wall time and peak memory).

    python benchmarks/multi_objective.py                   # 3 problems x 5 seeds x 100 trials; cost at 1,000
    python benchmarks/multi_objective.py --seeds 3 --cost-trials 300   # a quicker look
    python benchmarks/multi_objective.py --gp              # adds GP to the quality part (slow: seconds a trial)

Quality: ZDT1 and ZDT2 (5 parameters, 2 objectives; reference point f1 = 1.1, f2 = 11) and BNH (2
parameters, 2 objectives, 2 constraints; reference point 140, 55). tuneloop runs ``tl.Study(...,
objectives=..., constraints=...).run`` (a real SQLite store); Optuna runs its own ask/tell loop in
memory with the same seed, the constraints through ``constraints_func``. Both are scored by the same
function (the hypervolume of the feasible trials, Optuna's WFG) against the same reference point.
tuneloop's ``tpe`` is ``TPESampler(multivariate=True, constant_liar=True)``: against Optuna with those
options the runs are the same trials (a tie); Optuna's default TPESampler (independent) is run too.

Cost: 1,000 trials of ZDT1 with each sampler, each configuration in a fresh process that first runs
5 trials of another study (what is imported and built once is not a cost per trial): wall time per
trial (mean, and mean of the last 100) without tracing, the median of interleaved repeats; then peak
memory in one more run: the tracemalloc peak of everything allocated during the 1,000 trials (Python
objects, NumPy buffers, SQLAlchemy's side; not SQLite's C page cache) and the growth of the process's
peak RSS (coarse: it only moves once the run outgrows what the imports already took). tuneloop
always keeps its trials in a store (SQLite here, a file in a temporary folder) and its searcher keeps an
in-memory Optuna study beside it; Optuna is measured in memory (the target's baseline) and with its
own SQLite storage (RDBStorage), which is the like-for-like persistent comparison. Timings on a
shared machine move with its load; memory figures do not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

import tuneloop as tl
from tuneloop.objectives import hypervolume

DIMS = 5


# -- problems -------------------------------------------------------------------------------------------
def zdt(xs: list[float], shape: float) -> tuple[float, float]:
    f1 = xs[0]
    g = 1.0 + 9.0 * sum(xs[1:]) / (len(xs) - 1)
    return f1, g * (1.0 - (f1 / g) ** shape)


def bnh(x: float, y: float) -> tuple[tuple[float, float], list[float]]:
    """Objectives and violations (<= 0 kept) of Binh and Korn's problem."""
    f = (4 * x * x + 4 * y * y, (x - 5) ** 2 + (y - 5) ** 2)
    return f, [(x - 5) ** 2 + y * y - 25.0, 7.7 - ((x - 8) ** 2 + (y + 3) ** 2)]


def zdt1_trial(trial: tl.Trial) -> dict:
    f1, f2 = zdt([trial.params[f"x{i}"] for i in range(DIMS)], 0.5)
    return {"f1": f1, "f2": f2}


def zdt2_trial(trial: tl.Trial) -> dict:
    f1, f2 = zdt([trial.params[f"x{i}"] for i in range(DIMS)], 2.0)
    return {"f1": f1, "f2": f2}


def bnh_trial(trial: tl.Trial) -> dict:
    (f1, f2), (v1, v2) = bnh(trial.params["x"], trial.params["y"])
    return {"f1": f1, "f2": f2, "c1": v1 + 25.0, "c2": 7.7 - v2}


ZDT_SPACE = tl.Space(**{f"x{i}": tl.Float(0.0, 1.0) for i in range(DIMS)})
BNH_SPACE = tl.Space(x=tl.Float(0.0, 5.0), y=tl.Float(0.0, 3.0))
PROBLEMS: dict[str, dict[str, Any]] = {
    "zdt1": {"fn": zdt1_trial, "space": ZDT_SPACE, "constraints": None, "reference": [1.1, 11.0]},
    "zdt2": {"fn": zdt2_trial, "space": ZDT_SPACE, "constraints": None, "reference": [1.1, 11.0]},
    "bnh": {"fn": bnh_trial, "space": BNH_SPACE, "constraints": {"c1": ("<=", 25.0), "c2": (">=", 7.7)},
            "reference": [140.0, 55.0]},
}
OBJECTIVES = {"f1": "min", "f2": "min"}


def optuna_objective(problem: str, trial: optuna.Trial) -> tuple[tuple[float, float], list[float]]:
    """The same problem through Optuna's define-by-run API (the same names and bounds, so the same
    seed draws the same numbers)."""
    if problem == "bnh":
        return bnh(trial.suggest_float("x", 0.0, 5.0), trial.suggest_float("y", 0.0, 3.0))
    xs = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(DIMS)]
    return zdt(xs, 0.5 if problem == "zdt1" else 2.0), []


def _violations(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(trial.user_attrs.get("violations", []))


# -- quality: hypervolume after N trials ------------------------------------------------------------------
def tuneloop_hv(problem: str, searcher: Any, seed: int, n: int, storage: str) -> float:
    p = PROBLEMS[problem]
    label = searcher if isinstance(searcher, str) else searcher["name"]
    study = tl.Study(f"{problem}-{label}-{seed}", p["space"], p["fn"], objectives=OBJECTIVES,
                     constraints=p["constraints"], storage=storage, searcher=searcher)
    study.run(n_trials=n, seed=seed, executor="inline")
    return study.objectives.hypervolume(study.trials, p["reference"])


def optuna_hv(problem: str, make: Callable[[int, Any], optuna.samplers.BaseSampler], seed: int, n: int) -> float:
    constrained = PROBLEMS[problem]["constraints"] is not None
    sampler = make(seed, _violations if constrained else None)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    points = []
    for _ in range(n):
        trial = study.ask()
        values, violations = optuna_objective(problem, trial)
        if constrained:
            trial.set_user_attr("violations", violations)
        study.tell(trial, list(values))
        if all(v <= 0 for v in violations):
            points.append(values)
    return hypervolume(points, PROBLEMS[problem]["reference"])


def _constrained(cls: Any, **options: Any) -> Callable[[int, Any], optuna.samplers.BaseSampler]:
    def make(seed: int, constraints: Any) -> optuna.samplers.BaseSampler:
        return cls(seed=seed, **options, **({"constraints_func": constraints} if constraints else {}))

    return make


def _plain(cls: Any, **options: Any) -> Callable[[int, Any], optuna.samplers.BaseSampler]:
    return lambda seed, _: cls(seed=seed, **options)


def quality(problems: list[str], seeds: int, n: int, gp: bool, folder: Path) -> dict[str, Any]:
    ours: dict[str, Any] = {"tpe": "tpe", "nsga2": "nsga2", "random": "random"}
    theirs: dict[str, Callable[[int, Any], Any]] = {
        "TPESampler(multivariate, constant_liar)": _constrained(optuna.samplers.TPESampler, multivariate=True,
                                                                  constant_liar=True),
        "TPESampler()": _constrained(optuna.samplers.TPESampler),
        "NSGAIISampler()": _constrained(optuna.samplers.NSGAIISampler),
        "RandomSampler()": _plain(optuna.samplers.RandomSampler),
    }
    if gp:
        ours["gp"] = "gp"
        theirs["GPSampler()"] = _constrained(optuna.samplers.GPSampler)
    out: dict[str, Any] = {}
    storage = f"sqlite:///{folder / 'quality.db'}"
    for problem in problems:
        rows: dict[str, list[float]] = {}
        for label, spec in ours.items():
            rows[f"tuneloop {label}"] = [tuneloop_hv(problem, spec, s, n, storage) for s in range(seeds)]
            print(f"{problem:5s} tuneloop {label:38s} median {statistics.median(rows[f'tuneloop {label}']):10.4f}",
                  flush=True)
        for label, make in theirs.items():
            rows[f"optuna {label}"] = [optuna_hv(problem, make, s, n) for s in range(seeds)]
            print(f"{problem:5s} optuna {label:40s} median {statistics.median(rows[f'optuna {label}']):10.4f}",
                  flush=True)
        out[problem] = {name: {"median": statistics.median(v), "per_seed": v} for name, v in rows.items()}
    return out


def quality_verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Same or better: each tuneloop searcher's median against the Optuna sampler it wraps."""
    pairs = {"tpe": "TPESampler(multivariate, constant_liar)", "nsga2": "NSGAIISampler()", "random": "RandomSampler()",
             "gp": "GPSampler()"}
    verdict: dict[str, Any] = {}
    for problem, rows in results.items():
        for ours, theirs in pairs.items():
            a, b = rows.get(f"tuneloop {ours}"), rows.get(f"optuna {theirs}")
            if a is None or b is None:
                continue
            same = all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a["per_seed"], b["per_seed"], strict=True))
            verdict[f"{problem} {ours}"] = {"tuneloop": a["median"], "optuna": b["median"],
                                            "identical_per_seed": same, "same_or_better": a["median"] >= b["median"] - 1e-9}
        default = rows.get("optuna TPESampler()")
        if default is not None:
            verdict[f"{problem} tpe vs optuna default TPESampler()"] = {
                "tuneloop": rows["tuneloop tpe"]["median"], "optuna": default["median"],
                "same_or_better": rows["tuneloop tpe"]["median"] >= default["median"] - 1e-9}
    return verdict


# -- cost: 1,000 trials, one configuration per process ----------------------------------------------------
def cost_run(kind: str, sampler: str, n: int, measure: str, folder: str) -> dict[str, float]:
    """One configuration: ``kind`` tuneloop | optuna-memory | optuna-sqlite; ``measure`` time | memory."""
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stamps: list[float] = []
    if kind == "tuneloop":
        def study(name: str) -> tl.Study:
            return tl.Study(name, ZDT_SPACE, zdt1_trial, objectives=OBJECTIVES,
                            storage=f"sqlite:///{folder}/tuneloop-{sampler}-{measure}-{name}-{os.getpid()}.db", searcher=sampler)

        class Clock(tl.Callback):
            def on_trial_end(self, trial: tl.TrialRecord) -> None:
                stamps.append(time.perf_counter())

        def run(trials: int = n, name: str = "cost") -> None:
            study(name).run(n_trials=trials, seed=0, executor="inline", callbacks=[Clock()])
    else:
        make = {"tpe": lambda: optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True),
                "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=0),
                "random": lambda: optuna.samplers.RandomSampler(seed=0)}[sampler]
        storage = f"sqlite:///{folder}/optuna-{sampler}-{measure}-{os.getpid()}.db" if kind == "optuna-sqlite" else None

        def run(trials: int = n, name: str = "cost") -> None:
            url = storage and storage.replace(".db", f"-{name}.db")
            study = optuna.create_study(directions=["minimize", "minimize"], sampler=make(), storage=url)
            for _ in range(trials):
                trial = study.ask()
                values, _ = optuna_objective("zdt1", trial)
                study.tell(trial, list(values))
                stamps.append(time.perf_counter())

    run(5, "warmup")  # what the first trials import and build once (modules, schemas) is not a cost per trial
    stamps.clear()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if measure == "memory":
        tracemalloc.start(1)  # one frame: the peak is the same, and tracing costs far less
    start = time.perf_counter()
    run()
    out: dict[str, float] = {"trials": float(len(stamps)), "total_s": time.perf_counter() - start}
    if measure == "memory":
        _, peak = tracemalloc.get_traced_memory()
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        out["tracemalloc_peak_mb"] = peak / 2**20
        out["rss_growth_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
        top = snapshot.statistics("filename")[:8]
        out["held_at_end_by_file"] = {str(s.traceback[0].filename).split("site-packages/")[-1].split("src/")[-1]:
                                      round(s.size / 2**20, 2) for s in top}  # type: ignore[assignment]
    else:
        times = [b - a for a, b in zip([start, *stamps], stamps, strict=False)]
        out["mean_ms"] = 1e3 * sum(times) / len(times)
        out["at_end_ms"] = 1e3 * sum(times[-100:]) / len(times[-100:])
    return out


KINDS = ("tuneloop", "optuna-memory", "optuna-sqlite")


def _child(kind: str, sampler: str, n: int, measure: str, folder: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--_cost", kind, sampler, str(n), measure, str(folder)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cost(samplers: list[str], n: int, repeats: int, folder: Path) -> dict[str, Any]:
    """Timings interleaved and repeated (the median kept: this machine's load moves them); memory once."""
    out: dict[str, Any] = {}
    for sampler in samplers:
        timed: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for _ in range(repeats):
            for kind in KINDS:
                timed[kind].append(_child(kind, sampler, n, "time", folder))
        for kind in KINDS:
            row: dict[str, Any] = {k: statistics.median(r[k] for r in timed[kind]) for k in timed[kind][0]}
            row["time_repeats"] = repeats
            row["at_end_ms_each"] = [r["at_end_ms"] for r in timed[kind]]
            row.update(_child(kind, sampler, n, "memory", folder))
            out[f"{kind} {sampler}"] = row
            print(f"{kind:14s} {sampler:6s} at trial {n}: {row['at_end_ms']:8.2f} ms/trial (mean {row['mean_ms']:7.2f}); "
                  f"peak traced {row['tracemalloc_peak_mb']:7.1f} MB, RSS growth {row['rss_growth_mb']:7.1f} MB", flush=True)
    return out


def cost_verdict(results: dict[str, Any], samplers: list[str]) -> dict[str, Any]:
    verdict = {}
    for s in samplers:
        ours, mem, rdb = results[f"tuneloop {s}"], results[f"optuna-memory {s}"], results[f"optuna-sqlite {s}"]
        ratio = ours["tracemalloc_peak_mb"] / mem["tracemalloc_peak_mb"]
        verdict[s] = {"memory_ratio_vs_optuna_memory": ratio, "within_1.2x": ratio <= 1.2,
                      "memory_ratio_vs_optuna_sqlite": ours["tracemalloc_peak_mb"] / rdb["tracemalloc_peak_mb"],
                      "rss_growth_ratio_vs_optuna_memory": (ours["rss_growth_mb"] / mem["rss_growth_mb"]
                                                            if mem["rss_growth_mb"] >= 1.0 else None),
                      "time_ratio_at_end_vs_optuna_memory": ours["at_end_ms"] / mem["at_end_ms"],
                      "time_ratio_at_end_vs_optuna_sqlite": ours["at_end_ms"] / rdb["at_end_ms"]}
    return verdict


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_cost":  # one cost configuration, in its own process
        kind, sampler, n, measure, folder = sys.argv[2:7]
        print(json.dumps(cost_run(kind, sampler, int(n), measure, folder)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per run in the quality part")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--problems", default="zdt1,zdt2,bnh")
    parser.add_argument("--gp", action="store_true", help="add GP to the quality part (slow)")
    parser.add_argument("--cost-trials", type=int, default=1000)
    parser.add_argument("--cost-samplers", default="tpe,nsga2")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs of each cost configuration (median kept)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "multi_objective.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # Optuna 5 deprecates constraints_func (FutureWarning) and marks GP experimental
    samplers = args.cost_samplers.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        hv = quality(args.problems.split(","), args.seeds, args.trials, args.gp, Path(tmp))
        costs = cost(samplers, args.cost_trials, args.repeats, Path(tmp))
    targets = {"hypervolume": quality_verdict(hv), "cost": cost_verdict(costs, samplers)}
    print(json.dumps(targets, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "multi_objective", "quality_trials": args.trials, "seeds": args.seeds, "cost_trials": args.cost_trials,
        "timing_note": "timings move with this shared machine's load (2 cores, several agents): medians of interleaved "
                       "repeats; memory figures do not",
        "reference_points": {p: PROBLEMS[p]["reference"] for p in args.problems.split(",")},
        "hypervolume": hv, "cost": costs, "targets": targets,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(), "optuna": optuna.__version__, "tuneloop": tl.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
