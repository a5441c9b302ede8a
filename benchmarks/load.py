"""Throughput of driver + store: N no-op trials through 8 worker processes, on SQLite and, where
PostgreSQL's binaries are installed, on a PostgreSQL server started for the run.

    python benchmarks/load.py                 # 10,000 trials; writes benchmarks/results/load.json
    python benchmarks/load.py --repeat 3      # the fastest of 3 runs per back end (a shared, noisy machine)

Run it alone: on a machine whose cores other work shares, one run can be 20% off either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))  # the no-op trial function and the test PostgreSQL server

import postgres_server  # noqa: E402
import trial_functions as tf  # noqa: E402

import tuneloop as tl  # noqa: E402
from tuneloop.store import Store  # noqa: E402


def fastest(urls: list[str], n: int, workers: int) -> dict[str, float | int]:
    """One run per URL (each a fresh database); the fastest, with every run's rate beside it."""
    runs = [run(url, n, workers) for url in urls]
    best = max(runs, key=lambda r: r["trials_per_s"])
    return {**best, "runs_trials_per_s": [round(float(r["trials_per_s"]), 1) for r in runs]} if len(runs) > 1 else best


def run(url: str, n: int, workers: int) -> dict[str, float | int]:
    study = tl.Study("load", tl.Space(x=tl.Float(-2.0, 2.0)), tf.noop, metric="loss", mode="min", storage=url, seed=0)
    start = time.perf_counter()
    summary = study.run(n, workers=workers, searcher="random")
    elapsed = time.perf_counter() - start
    with Store(url) as store:
        numbers = sorted(t.number for t in store.trials(store.get_study("load").id))
    return {"trials": n, "completed": summary.outcomes.get("completed", 0), "lost": n - len(set(numbers)),
            "duplicated": len(numbers) - len(set(numbers)), "seconds": elapsed, "trials_per_s": n / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="runs per back end; the fastest is kept")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load.json")
    args = parser.parse_args()
    results: dict[str, dict[str, float | int]] = {}
    runs = range(1, args.repeat + 1)
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = fastest([f"sqlite:///{folder}/load{i}.db" for i in runs], args.trials, args.workers)
        print("sqlite", results["sqlite"], flush=True)
        if postgres_server.binaries() is not None:
            server = postgres_server.Server(Path(folder) / "pg")
            try:
                results["postgresql"] = fastest([server.create_database(f"load{i}") for i in runs], args.trials,
                                                args.workers)
                print("postgresql", results["postgresql"], flush=True)
            finally:
                server.stop()
    report = {"workers": args.workers, "repeat": args.repeat, "results": results,
              "when": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
