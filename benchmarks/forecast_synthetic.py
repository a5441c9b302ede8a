"""The forecast scheduler against ASHA and the median rule on synthetic studies with known curves.

    python benchmarks/forecast_synthetic.py            # 12 studies per shape; benchmarks/results/forecast_synthetic.json

Two shapes of study, 60 trials x 30 steps each, every trial's whole curve known in advance, fed
to each scheduler in trial order (as one worker would) so each stopped trial's final value is known:
  slow-start  y = c (1 - exp(-t / tau)) + noise: the higher a trial's ceiling c, the slower it
              starts (tau grows with c), the case same-step rules get wrong
  late-rise   y = c / (1 + exp(-8 (t - tau))) + noise: flat, then up, tau growing with c: a flat
              start says nothing about the rise, so no forecast can see it coming
Per scheduler: how many of the eventual top 3 it stopped (of 36), trials stopped, steps run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from tuneloop.schedule import Decision, schedulers
from tuneloop.store import TrialState

SCHEDULERS: dict[str, Any] = {"forecast@0.9": {"name": "forecast", "confidence": 0.9},
                              "forecast@0.95": {"name": "forecast", "confidence": 0.95},
                              "asha": {"name": "asha", "min_resource": 3}, "median": "median"}


def curves(shape: str, seed: int, trials: int = 60, steps: int = 30) -> list[np.ndarray]:
    """A study's curves: ceilings in [0.5, 0.9], the better ones slower."""
    rng = np.random.default_rng(seed)
    t = (np.arange(steps) + 1) / steps
    out = []
    for _ in range(trials):
        ceiling = rng.uniform(0.5, 0.9)
        tau = 0.05 + (ceiling - 0.5) * 1.2 * rng.uniform(0.5, 1.0)
        y = ceiling * (1 - np.exp(-t / tau)) if shape == "slow-start" else ceiling / (1 + np.exp(-(t - tau) * 8))
        out.append(y + rng.normal(0, 0.01, steps))
    return out


def replay(spec: Any, study: list[np.ndarray]) -> dict[str, Any]:
    scheduler = schedulers.create(spec, mode="max")
    stopped, steps = [], 0
    for i, curve in enumerate(study):
        scheduler.on_launch(i, {})
        stop, step = False, 0
        for step, value in enumerate(curve):
            steps += 1
            if scheduler.on_report(i, step, float(value)) == Decision.STOP:
                stop = True
                break
        scheduler.on_result(i, TrialState.PRUNED if stop else TrialState.COMPLETED, float(curve[step]))
        stopped.append(stop)
    top3 = np.argsort([c[-1] for c in study])[-3:]
    return {"top3_stopped": int(sum(stopped[j] for j in top3)), "stopped": int(sum(stopped)), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "forecast_synthetic.json")
    args = parser.parse_args()
    start = time.perf_counter()
    results: dict[str, Any] = {}
    for shape in ("slow-start", "late-rise"):
        studies = [curves(shape, seed) for seed in range(args.studies)]
        full = sum(len(c) for s in studies for c in s)
        results[shape] = {}
        for name, spec in SCHEDULERS.items():
            runs = [replay(spec, s) for s in studies]
            results[shape][name] = {"top3_stopped": sum(r["top3_stopped"] for r in runs), "top3_total": 3 * len(runs),
                                    "stopped": sum(r["stopped"] for r in runs),
                                    "steps_share": round(sum(r["steps"] for r in runs) / full, 3)}
            r = results[shape][name]
            print(f"{shape:10s} {name:14s} top-3 stopped {r['top3_stopped']:2d} of {r['top3_total']}  "
                  f"stopped {r['stopped']:4d}  steps {r['steps_share']:.0%}", flush=True)
    args.out.write_text(json.dumps({"benchmark": "forecast_synthetic", "command": "python benchmarks/forecast_synthetic.py",
                                    "studies": args.studies, "trials": 60, "steps": 30, "results": results,
                                    "wall_s": round(time.perf_counter() - start, 1), "machine": platform.machine(),
                                    "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
