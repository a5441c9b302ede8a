"""Searcher cost at 1,000, 5,000 and 10,000 trials, and regret on standard test functions:
``fasttpe`` beside Optuna's TPE (tuneloop's ``tpe``), ``random`` and ``gp``.

    python benchmarks/searcher_scale.py                          # cost at 1k/5k/10k; 10 seeds x 200 trials
    python benchmarks/searcher_scale.py --quick                  # cost at 1k/2k, 3 seeds x 100 trials, GP 1 seed
    python benchmarks/searcher_scale.py --cost-at 1000 --seeds 5 --trials 100 --gp-seeds 0
    python benchmarks/searcher_scale.py --part cost             # one part again; the other is kept from the file

Cost: the searcher's history is first filled with ``n - 50`` random trials replayed through ``tell``
(no token, as on resume: what a searcher pays per trial depends on how many trials it holds, not on
how they came), one ask+tell runs untimed (lazy imports), then 50 ask+tell pairs are timed and averaged: milliseconds per trial with ``n``
trials held. Two spaces: Hartmann6 (6 floats) and the mixed space below (log float, log int, int,
a Choice and a conditional Choice). ``random`` never reads the history (tuneloop skips replaying
trials into it), so its cost is the same at any size. GP is not timed at scale (seconds a trial).

Regret: best value found minus the known minimum, after 50, 100, ... trials, median over seeds
(the same seeds for every searcher), on Branin (2-D), Hartmann6 (6-D), Rosenbrock (4-D, [-2.048,
2.048]) and the mixed space. GP runs only its first ``--gp-trials`` trials of ``--gp-seeds`` seeds.
Every searcher runs one trial at a time (ask 1, tell 1). Timings move with the machine's load: the
JSON records ``os.getloadavg()`` before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import tuneloop as tl
from tuneloop.search import Outcome, searchers
from tuneloop.store import TrialState

HERE = Path(__file__).resolve().parent

# -- test functions (each with its known minimum) ------------------------------------------------------
_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                 [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(p: dict[str, Any]) -> float:
    x, y = p["x"], p["y"]
    return ((y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2
            + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10)


def hartmann6(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-(_H_ALPHA * np.exp(-(_H_A * (x - _H_P) ** 2).sum(axis=1))).sum())


def rosenbrock(p: dict[str, Any]) -> float:
    x = [p[f"x{i}"] for i in range(4)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


_ACT = {"relu": 0.5, "gelu": 0.0, "tanh": 1.0}


def mixed(p: dict[str, Any]) -> float:
    """A network-shaped space: the minimum 0 at lr=1e-3, width=256, depth=3, gelu, adam with beta1=0.9."""
    base = (math.log10(p["lr"]) + 3) ** 2 + (math.log2(p["width"]) - 8) ** 2 / 4 + (p["depth"] - 3) ** 2 / 4
    branch = 1.0 + 4 * (p["momentum"] - 0.9) ** 2 if p["opt"] == "sgd" else 10 * (p["beta1"] - 0.9) ** 2
    return base + _ACT[p["act"]] + branch


PROBLEMS: dict[str, tuple[tl.Space, Callable[[dict[str, Any]], float], float]] = {
    "branin": (tl.Space(x=tl.Float(-5.0, 10.0), y=tl.Float(0.0, 15.0)), branin, 0.397887),
    "hartmann6": (tl.Space({f"x{i}": tl.Float(0.0, 1.0) for i in range(6)}), hartmann6, -3.32237),
    "rosenbrock4": (tl.Space({f"x{i}": tl.Float(-2.048, 2.048) for i in range(4)}), rosenbrock, 0.0),
    "mixed": (tl.Space(lr=tl.LogFloat(1e-5, 1.0), width=tl.Int(16, 1024, log=True), depth=tl.Int(1, 8),
                       act=tl.Choice(list(_ACT)),
                       opt=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.99)},
                                      "adam": {"beta1": tl.Float(0.8, 0.999)}})), mixed, 0.0),
}


def make(name: str, space: tl.Space, seed: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return searchers.create(name, space=space, seed=seed, mode="min")


def step(searcher: Any, f: Callable[[dict[str, Any]], float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (p,) = searcher.ask(1)
        v = f(p.params)
        searcher.tell(Outcome(p.params, TrialState.COMPLETED, v, [(0, v)], p.token))
    return v


# -- cost ------------------------------------------------------------------------------------------------
def random_config(space: tl.Space, rng: random.Random) -> dict[str, Any]:
    """A uniform point of ``space`` (log-uniform on log parameters), children after their parents."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, tl.Choice):
            out[name] = rng.choice(p.values)
            child = p.child(out[name])
            if child is not None:
                out.update(random_config(child, rng))
        elif isinstance(p, tl.LogFloat):
            out[name] = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
        elif isinstance(p, tl.Int):
            out[name] = round(math.exp(rng.uniform(math.log(p.low), math.log(p.high)))) if p.log \
                else rng.randint(p.low, p.high)
        else:
            out[name] = rng.uniform(p.low, p.high)
    return out


def cost(name: str, problem: str, n: int, window: int) -> dict[str, float]:
    """Milliseconds per ask+tell with ``n - window`` trials held, averaged over ``window`` trials."""
    space, f, _ = PROBLEMS[problem]
    searcher = make(name, space, seed=0)
    rng = random.Random(0)
    t0 = time.perf_counter()
    for i in range(n - window):
        config = random_config(space, rng)
        v = f(config)
        searcher.tell(Outcome(config, TrialState.COMPLETED, v, [(0, v)], None, number=i))
    fill_s = time.perf_counter() - t0
    step(searcher, f)  # untimed: lazy imports and first-call set-up are not a cost per trial
    t0 = time.perf_counter()
    for _ in range(window):
        step(searcher, f)
    return {"ms_per_trial": 1000 * (time.perf_counter() - t0) / window, "fill_s": fill_s}


# -- regret ----------------------------------------------------------------------------------------------
def regret_curve(name: str, problem: str, seed: int, trials: int, marks: list[int]) -> dict[int, float]:
    space, f, best_known = PROBLEMS[problem]
    searcher = make(name, space, seed)
    best, out = math.inf, {}
    for i in range(1, trials + 1):
        best = min(best, step(searcher, f))
        if i in marks:
            out[i] = best - best_known
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="cost at 1k and 2k, 3 seeds x 100 trials, GP 1 seed")
    ap.add_argument("--cost-at", type=int, nargs="*", default=None, help="history sizes (default 1000 5000 10000)")
    ap.add_argument("--window", type=int, default=50, help="ask+tell pairs timed at each size")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per problem (default 10)")
    ap.add_argument("--trials", type=int, default=None, help="trials per regret run (default 200)")
    ap.add_argument("--gp-seeds", type=int, default=None, help="GP seeds (default 3; 0 skips GP)")
    ap.add_argument("--gp-trials", type=int, default=50)
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--part", choices=["both", "cost", "regret"], default="both",
                    help="run one part; the other part's figures are kept from --out")
    ap.add_argument("--out", default=str(HERE / "results" / "searcher_scale.json"))
    args = ap.parse_args()
    sizes = args.cost_at if args.cost_at is not None else ([1000, 2000] if args.quick else [1000, 5000, 10000])
    seeds = args.seeds or (3 if args.quick else 10)
    trials = args.trials or (100 if args.quick else 200)
    gp_seeds = args.gp_seeds if args.gp_seeds is not None else (1 if args.quick else 3)
    marks = sorted({m for m in (25, 50, 100, 200, 500, 1000) if m <= trials} | {trials})
    load_before = os.getloadavg()
    started = time.time()

    old = json.loads(Path(args.out).read_text()) if args.part != "both" and Path(args.out).exists() else {}
    costs: dict[str, dict[str, dict[str, Any]]] = {}
    for problem in ("hartmann6", "mixed") if args.part != "regret" else ():
        for n in sizes:
            for name in ("fasttpe", "tpe", "random"):
                r = cost(name, problem, n, args.window)
                costs.setdefault(problem, {}).setdefault(name, {})[str(n)] = r
                print(f"cost {problem:10s} n={n:6d} {name:8s} {r['ms_per_trial']:8.2f} ms/trial", flush=True)

    regret: dict[str, dict[str, Any]] = {}
    for problem in args.problems if args.part != "cost" else ():
        runs: dict[str, list[dict[int, float]]] = {}
        for seed in range(seeds):
            for name in ("fasttpe", "tpe", "random"):
                runs.setdefault(name, []).append(regret_curve(name, problem, seed, trials, marks))
            if seed < gp_seeds:
                gp_marks = [m for m in marks if m <= args.gp_trials]
                runs.setdefault("gp", []).append(regret_curve("gp", problem, seed, args.gp_trials, gp_marks))
        regret[problem] = {}
        for name, curves in runs.items():
            regret[problem][name] = {str(m): {"median": statistics.median(c[m] for c in curves),
                                              "per_seed": [c[m] for c in curves]} for m in curves[0]}
        line = "  ".join(f"{name} {regret[problem][name][str(trials)]['median']:.4g}"
                         for name in ("fasttpe", "tpe", "random"))
        print(f"regret {problem:12s} at {trials}: {line}", flush=True)

    settings = {"cost": {"cost_at": sizes, "window": args.window},
                "regret": {"seeds": seeds, "trials": trials, "gp_seeds": gp_seeds, "gp_trials": args.gp_trials}}
    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
               "load_before": load_before, "load_after": os.getloadavg(), "seconds": round(time.time() - started, 1)}
    runs = {part: {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "settings": settings[part],
                   "machine": machine} for part in ("cost", "regret") if args.part in ("both", part)}
    if args.part == "cost":
        regret, runs = old.get("regret", {}), {**old.get("runs", {}), **runs}
    elif args.part == "regret":
        costs, runs = old.get("cost", {}), {**old.get("runs", {}), **runs}
    verdict: dict[str, Any] = {}
    if costs:
        top = str(max(int(n) for n in next(iter(costs.values()))["fasttpe"]))
        verdict.update({
            "cost_at": int(top),
            "fasttpe_ms": {p: round(costs[p]["fasttpe"][top]["ms_per_trial"], 2) for p in costs},
            "tpe_ms": {p: round(costs[p]["tpe"][top]["ms_per_trial"], 2) for p in costs},
            "fasttpe_at_most_10ms": all(costs[p]["fasttpe"][top]["ms_per_trial"] <= 10 for p in costs),
        })
    if regret:
        last = {p: str(max(int(m) for m in regret[p]["fasttpe"])) for p in regret}
        verdict["regret_median_fasttpe_vs_tpe"] = {
            p: [regret[p]["fasttpe"][last[p]]["median"], regret[p]["tpe"][last[p]]["median"]] for p in regret}
        verdict["regret_fasttpe_le_tpe"] = {p: regret[p]["fasttpe"][last[p]]["median"]
                                            <= regret[p]["tpe"][last[p]]["median"] for p in regret}
        verdict["seeds_where_fasttpe_beats_tpe"] = {p: "{} of {}".format(sum(  # paired: the same seed
            a < b for a, b in zip(regret[p]["fasttpe"][last[p]]["per_seed"], regret[p]["tpe"][last[p]]["per_seed"],
                                  strict=True)), len(regret[p]["tpe"][last[p]]["per_seed"])) for p in regret}
    result = {"benchmark": "searcher_scale", "runs": runs, "cost": costs, "regret": regret, "verdict": verdict}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(verdict, indent=1))


if __name__ == "__main__":
    main()
