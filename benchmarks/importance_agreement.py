"""How much importance is lost by a smaller fANOVA forest, and what it saves: tuneloop's forest
(``IMPORTANCE_TREES`` trees of depth ``IMPORTANCE_DEPTH``) and PED-ANOVA against Optuna's default
fANOVA (64 trees of depth 64), on the same studies.

    python benchmarks/importance_agreement.py              # 300 and 1,000 trials; 10,000 against depth 12
    python benchmarks/importance_agreement.py --quick      # 300 trials only

Studies: the test functions of ``searcher_scale.py`` (Hartmann6, Rosenbrock 4-D, the mixed network-
shaped space with a conditional branch) plus a 5-parameter network-shaped function with noise, each
sampled two ways: uniformly (random search) and by ``fasttpe`` (what a tuned study looks like:
points crowd the good region). Agreement: the L1 distance between the two importance vectors
(shares summing to 1; 0 is identical, 2 is disjoint) and whether both name the same most important
parameter; the yardstick is the reference forest against itself with another seed. At 10,000 trials Optuna's default forest takes minutes, so the reference there is 32 trees
of depth 12. Timings are one core's (run it with ``taskset -c 1``); results in
``results/importance_agreement.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import optuna  # noqa: E402
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances  # noqa: E402
from optuna.trial import create_trial  # noqa: E402
from searcher_scale import PROBLEMS, make, random_config  # noqa: E402

import tuneloop as tl  # noqa: E402
from tuneloop.analysis._study import IMPORTANCE_DEPTH, IMPORTANCE_TREES  # noqa: E402
from tuneloop.search import Outcome  # noqa: E402
from tuneloop.store import TrialState  # noqa: E402


def net(p: dict[str, Any]) -> float:
    """Loss-shaped: lr matters most, then dropout and activation, width a little, weight decay barely."""
    return ((math.log10(p["lr"]) + 2.5) ** 2 + 3 * abs(p["dropout"] - 0.2) + {"relu": 0.2, "tanh": 0.5, "gelu": 0.0}[p["act"]]
            - 0.1 * math.log(p["width"]) + 0.5 * p["wd"])


PROBLEMS = {**PROBLEMS, "net": (tl.Space(lr=tl.LogFloat(1e-4, 1.0), wd=tl.Float(0.0, 0.1), width=tl.Int(16, 512),
                                         act=tl.Choice(["relu", "tanh", "gelu"]), dropout=tl.Float(0.0, 0.5)), net, 0.0)}
PROBLEMS.pop("branin")  # two parameters: nothing to rank


def history(problem: str, n: int, sampler: str, seed: int) -> list[Any]:
    """``n`` finished trials of ``problem`` as Optuna FrozenTrials (noise: 2% of the values' spread)."""
    space, f, _ = PROBLEMS[problem]
    rng = random.Random(seed)
    points: list[tuple[dict[str, Any], float]] = []
    if sampler == "random":
        points = [(p, f(p)) for p in (random_config(space, rng) for _ in range(n))]
    else:
        searcher = make("fasttpe", space, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(n):
                (prop,) = searcher.ask(1)
                v = f(prop.params)
                searcher.tell(Outcome(prop.params, TrialState.COMPLETED, v, [(0, v)], prop.token))
                points.append((prop.params, v))
    spread = float(np.std([v for _, v in points])) or 1.0
    noise = np.random.default_rng(seed).normal(0, 0.02 * spread, len(points))
    return [create_trial(value=float(v + e), params=p, distributions=space.distributions(p))
            for (p, v), e in zip(points, noise, strict=True)]


def shares(trials: list[Any], evaluator: Any) -> tuple[dict[str, float], float]:
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = get_param_importances(study, evaluator=evaluator, normalize=True)
    return {k: float(v) for k, v in got.items()}, time.perf_counter() - start


def compare(ref: dict[str, float], got: dict[str, float]) -> dict[str, Any]:
    keys = sorted(set(ref) | set(got))
    return {"l1": round(sum(abs(ref.get(k, 0.0) - got.get(k, 0.0)) for k in keys), 4),
            "same_top": max(ref, key=ref.__getitem__) == max(got, key=got.__getitem__)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "importance_agreement.json"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ours = {"n_trees": IMPORTANCE_TREES, "max_depth": IMPORTANCE_DEPTH}
    rows = []
    sizes = [300] if args.quick else [300, 1000, 10000]
    begun = time.time()
    for n in sizes:
        for problem in PROBLEMS:
            for sampler in ("random", "fasttpe"):
                if n == 10000 and sampler == "fasttpe":
                    continue  # 10,000 fasttpe trials of history take longer than the forests
                trials = history(problem, n, sampler, seed=len(rows))
                reference = {"n_trees": 64, "max_depth": 64} if n < 10000 else {"n_trees": 32, "max_depth": 12}
                ref, ref_s = shares(trials, FanovaImportanceEvaluator(**reference, seed=0))
                small, small_s = shares(trials, FanovaImportanceEvaluator(**ours, seed=0))
                ped, ped_s = shares(trials, PedAnovaImportanceEvaluator())
                # the yardstick: the reference forest against itself with another seed
                noise = compare(ref, shares(trials, FanovaImportanceEvaluator(**reference, seed=1))[0]) \
                    if n < 10000 else None
                row = {"trials": n, "problem": problem, "sampler": sampler, "reference": reference,
                       "reference_s": round(ref_s, 3), "ours_s": round(small_s, 3), "ped_anova_s": round(ped_s, 3),
                       "ours": compare(ref, small), "ped_anova": compare(ref, ped), "reference_reseeded": noise,
                       "shares": {"reference": ref, "ours": small, "ped_anova": ped}}
                rows.append(row)
                print(f"{n:>6} {problem:12} {sampler:8} reference {ref_s:6.1f} s | ours {small_s:5.2f} s L1 "
                      f"{row['ours']['l1']:.3f} top {row['ours']['same_top']} | PED-ANOVA L1 {row['ped_anova']['l1']:.3f} "
                      f"top {row['ped_anova']['same_top']} | reseeded L1 {noise['l1'] if noise else '-'}", flush=True)
    summary = {}
    for n in sizes:
        sel = [r for r in rows if r["trials"] == n]
        summary[str(n)] = {
            "studies": len(sel),
            "ours_max_l1": max(r["ours"]["l1"] for r in sel),
            "ours_same_top": sum(r["ours"]["same_top"] for r in sel),
            "ped_anova_max_l1": max(r["ped_anova"]["l1"] for r in sel),
            "ped_anova_same_top": sum(r["ped_anova"]["same_top"] for r in sel),
            "reference_reseeded_max_l1": max((r["reference_reseeded"]["l1"] for r in sel if r["reference_reseeded"]),
                                             default=None),
            "speedup_median": float(np.median([r["reference_s"] / max(r["ours_s"], 1e-9) for r in sel])),
        }
    out = {"benchmark": "importance_agreement", "command": "python " + " ".join(sys.argv), "ours": ours,
           "summary": summary, "rows": rows, "wall_s": round(time.time() - begun, 1),
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "affinity": sorted(os.sched_getaffinity(0)), "load_at_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
