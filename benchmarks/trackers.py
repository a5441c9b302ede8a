"""What mirroring to a tracker costs the driver, per report, and how long the mirror takes to catch up.

    pip install 'tuneloop[tensorboard,mlflow,wandb]'
    python benchmarks/trackers.py                  # writes benchmarks/results/trackers.json

One inline study of TRIALS trials, each reporting REPORTS times four metrics, is run without a
tracker and then with each tracker (W&B offline, MLflow on a SQLite database). Rows: the time
the driver's thread spends in the tracker's ``on_report`` (median and 99th percentile: the base
class only queues the event); the run's extra time per report, setup and the wait at the end for
the mirror to catch up left out (what remains is the tracker's thread sharing the GIL with the
driver and, in an inline study, with the trials); the setup (connecting, creating MLflow's tables)
and that wait; and the driver's time per trial start (``wandb.init`` and MLflow's ``create_run``
run on the tracker's thread, not the driver's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import tuneloop as tl

TRIALS, REPORTS = 8, 250


def objective(trial: tl.Trial) -> None:
    for step in range(REPORTS):
        trial.report(step, loss=1.0 / (step + 1), acc=step / REPORTS, lr=trial.params.lr, grad_norm=1.0)


class Timed(tl.Callback):
    """Delegates to a tracker and times the driver's calls into it."""

    def __init__(self, inner: tl.Callback) -> None:
        self.inner, self.report_s, self.start_s, self.setup_s, self.drain_s = inner, [], [], 0.0, 0.0

    def on_run_start(self, *a):
        t = time.perf_counter()
        self.inner.on_run_start(*a)
        self.setup_s = time.perf_counter() - t

    def on_trial_start(self, *a):
        t = time.perf_counter()
        self.inner.on_trial_start(*a)
        self.start_s.append(time.perf_counter() - t)

    def on_report(self, *a):
        t = time.perf_counter()
        self.inner.on_report(*a)
        self.report_s.append(time.perf_counter() - t)

    def on_log(self, *a):
        self.inner.on_log(*a)

    def on_attrs(self, *a):
        self.inner.on_attrs(*a)

    def on_trial_end(self, *a):
        self.inner.on_trial_end(*a)

    def on_run_end(self, *a):
        t = time.perf_counter()
        self.inner.on_run_end(*a)
        self.drain_s = time.perf_counter() - t


def run(folder: Path, name: str, callbacks: list) -> float:
    study = tl.Study(name, tl.Space(lr=tl.LogFloat(1e-4, 1e-1)), objective, metric="loss", mode="min",
                     storage=f"sqlite:///{folder / 'tuneloop.db'}", searcher="random", rules=None)
    start = time.perf_counter()
    study.run(TRIALS, executor="inline", callbacks=callbacks)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "trackers.json")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_SILENT", "true")
    from tuneloop.trackers import MLflow, TensorBoard, WandB

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run(folder, "warm-up", [])
        base = run(folder, "none", [])
        makers = {"tensorboard": lambda: TensorBoard(folder / "tb"),
                  "mlflow": lambda: MLflow(f"sqlite:///{folder / 'mlflow.db'}"),
                  "wandb": lambda: WandB("bench", mode="offline", dir=folder / "wb")}
        for name, make in makers.items():
            timed = Timed(make())
            elapsed = run(folder, name, [timed])
            us = sorted(s * 1e6 for s in timed.report_s)
            rows[name] = {"on_report_median_us": round(statistics.median(us), 1),
                          "on_report_p99_us": round(us[int(len(us) * 0.99)], 1),
                          "setup_s": round(timed.setup_s, 3),
                          "catch_up_at_end_s": round(timed.drain_s, 3),
                          "extra_per_report_us": round((elapsed - base - timed.setup_s - timed.drain_s)
                                                       / (TRIALS * REPORTS) * 1e6, 1),
                          "on_trial_start_median_us": round(statistics.median(timed.start_s) * 1e6, 1)}
            print(f"{name:12s} " + "  ".join(f"{k}={v}" for k, v in rows[name].items()))
    result = {"trials": TRIALS, "reports_per_trial": REPORTS, "metrics_per_report": 4,
              "baseline_run_s": round(base, 3), "rows": rows, "machine": platform.platform(),
              "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
