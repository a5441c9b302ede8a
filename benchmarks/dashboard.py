"""The dashboard, reports and ``analyze`` on big studies: 1,000 and 10,000 finished trials x 100
reported steps (SQLite, 4 parameters), as the population engine and exploration rounds produce them.

    python benchmarks/dashboard.py                     # 1,000 and 10,000 trials: API, analyze, report
    python benchmarks/dashboard.py --sizes 1000        # one size
    python benchmarks/dashboard.py --browser           # also the pages in headless chromium (Playwright)

Measured, per size: building the study (not a target); the study API's response (``study_view``)
cold (a fresh process's first call: the page is answered without the importance, which computes in
the background) and warm (every later poll), with its size in bytes; the trial page's view; the
background importance's own time; ``tuneloop analyze``; ``tuneloop report`` (time and file size).
With ``--browser``: a fresh server (cold) and the same server again (warm), time until every plot
of the study page has drawn, and the trial page. Results in ``results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STEPS = 100
SPACE = {"lr": ("log", 1e-4, 1.0), "width": ("int", 16, 512), "dropout": ("float", 0.0, 0.5),
         "act": ("choice", ["relu", "tanh", "gelu"])}


def build(path: Path, trials: int, seed: int = 0) -> float:
    """A finished study of ``trials`` trials x ``STEPS`` val_acc points; returns the seconds it took."""
    import tuneloop as tl
    from tuneloop.store import Store

    start = time.perf_counter()
    rng = random.Random(seed)
    space = tl.Space(lr=tl.LogFloat(1e-4, 1.0), width=tl.Int(16, 512), dropout=tl.Float(0.0, 0.5),
                     act=tl.Choice(["relu", "tanh", "gelu"]))
    with Store(f"sqlite:///{path}") as store:
        record = store.create_study("big", "val_acc", "max", space, {"budget": {"epochs": STEPS}, "seed": seed})
        points: list[tuple[int, int, int, str, float]] = []
        for n in range(trials):
            p = {"lr": math.exp(rng.uniform(math.log(1e-4), 0.0)), "width": rng.randint(16, 512),
                 "dropout": rng.uniform(0.0, 0.5), "act": rng.choice(["relu", "tanh", "gelu"])}
            top = (0.9 - 0.05 * (math.log10(p["lr"]) + 2.5) ** 2 - 0.2 * abs(p["dropout"] - 0.2)
                   + {"relu": 0.01, "tanh": -0.02, "gelu": 0.015}[p["act"]] + 0.01 * math.log(p["width"]) / 6)
            rate = rng.uniform(0.02, 0.2)
            trial = store.create_trial(record.id, n, p, seed=n)
            curve = [top - (top - 0.1) * math.exp(-rate * s) + rng.gauss(0, 0.003) for s in range(1, STEPS + 1)]
            points.extend((trial, 0, s, "val_acc", v) for s, v in enumerate(curve, 1))
            store.finish_trial(trial, "completed", curve[-1], {"val_acc": curve[-1]})
            if len(points) >= 20_000:
                store.add_points(points)
                points = []
        if points:
            store.add_points(points)
    return time.perf_counter() - start


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def api_figures(url: str) -> dict[str, Any]:
    """Run in a fresh process (``--api URL``): cold and warm study views, the trial view, the importance."""
    from tuneloop.store import Store
    from tuneloop.views import study_view, trial_view

    with Store(url, read_only=True) as store:
        cold, cold_s = timed(study_view, store, "big", wait=False)
        warm_s = min(timed(study_view, store, "big", wait=False)[1] for _ in range(3))
        _, importance_s = timed(study_view, store, "big", wait=True)  # waits for the background computation
        ready, ready_s = timed(study_view, store, "big", wait=False)
        _, trial_s = timed(trial_view, store, "big", 0)
    return {"study_cold_s": round(cold_s, 3), "study_cold_importance": cold["importance_status"]["state"],
            "study_warm_s": round(warm_s, 3), "importance_wait_s": round(importance_s, 3),
            "study_ready_s": round(ready_s, 3), "study_bytes": len(json.dumps(ready)),
            "trial_s": round(trial_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--api", help=argparse.SUPPRESS)  # the fresh process of api_figures
    parser.add_argument("--out", default=str(HERE / "results" / "dashboard.json"))
    args = parser.parse_args()
    if args.api:
        print(json.dumps(api_figures(args.api)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tuneloop-dashboard-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            db = Path(tmp) / f"big{size}.db"
            url = f"sqlite:///{db}"
            row: dict[str, Any] = {"build_s": round(build(db, size), 1)}
            api = subprocess.run([sys.executable, __file__, "--api", url], capture_output=True, text=True, check=True)
            row.update(json.loads(api.stdout.strip().splitlines()[-1]))
            tl = [sys.executable, "-m", "tuneloop.cli"]
            _, row["analyze_s"] = timed(subprocess.run, [*tl, "analyze", "big", "--storage", url], check=True,
                                        capture_output=True)
            report = Path(tmp) / f"report{size}.html"
            _, row["report_s"] = timed(subprocess.run, [*tl, "report", "big", "--output", str(report), "--storage", url],
                                       check=True, capture_output=True)
            row["report_mb"] = round(report.stat().st_size / 1e6, 2)
            row["analyze_s"], row["report_s"] = round(row["analyze_s"], 2), round(row["report_s"], 2)
            results[str(size)] = row
            print(size, json.dumps(row), flush=True)
    out = {"benchmark": "dashboard", "command": "python " + " ".join(sys.argv), "steps": STEPS, "results": results,
           "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "affinity": sorted(os.sched_getaffinity(0)), "load_at_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
