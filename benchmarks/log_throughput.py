"""Scalar logging throughput into the store, against TensorBoard and MLflow; curve loading time.

    pip install tensorboard mlflow-skinny        # only for the comparison rows
    python benchmarks/log_throughput.py          # writes benchmarks/results/logging.json

(Not benchmarks/logging.py: a script of that name would shadow the standard library's logging
for every script in this folder.)

Rows: the store's batched write (``Store.write_batch``, what the driver does every flush), the
whole path through a study (``trial.log`` in an inline trial: events, driver buffer, flushes),
TensorBoard's ``SummaryWriter.add_scalar`` (event file) and MLflow's ``log_metric`` (local file
store), each writing the same points. Then: loading every curve of a 100-trial x 1,000-step
study (two metrics each) with ``Store.series``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import tuneloop as tl
from tuneloop.store import Store
from tuneloop.store.store import point_rows

POINTS = 100_000


def store_batched(folder: Path, n: int) -> float:
    store = Store(str(folder / "batched.db"))
    study = store.create_study("b", "loss", "min", tl.Space(x=tl.Float(0, 1)), {})
    trial_id = store.create_trial(study.id, 0, {"x": 0.5}, seed=0)
    points = [(trial_id, 0, i, "loss", 1.0 / (i + 1)) for i in range(n)]
    start = time.perf_counter()
    for i in range(0, n, 2000):  # the driver's flush size
        store.write_batch({"metrics": point_rows(points[i:i + 2000])})
    return n / (time.perf_counter() - start)


def _logs_points(trial: tl.Trial) -> float:
    n = trial.budget.points
    for i in range(n):
        trial.log(i, loss=1.0 / (i + 1))
    return 0.0


def through_study(folder: Path, n: int) -> float:
    study = tl.Study("t", tl.Space(x=tl.Float(0, 1)), _logs_points, metric="loss", mode="min",
                     storage=str(folder / "study.db"), budget={"points": n}, rules=None)
    start = time.perf_counter()
    study.run(n_trials=1)
    return n / (time.perf_counter() - start)


def tensorboard(folder: Path, n: int) -> float | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    writer = SummaryWriter(str(folder / "tb"))
    start = time.perf_counter()
    for i in range(n):
        writer.add_scalar("loss", 1.0 / (i + 1), i)
    writer.close()  # flushed to disk, as the store's rows are committed
    return n / (time.perf_counter() - start)


def mlflow_file_store(folder: Path, n: int) -> float | None:
    import os

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store in maintenance
    try:
        import mlflow
    except ImportError:
        return None
    mlflow.set_tracking_uri((folder / "mlruns").as_uri())
    with mlflow.start_run():
        start = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        return n / (time.perf_counter() - start)


def load_curves(folder: Path, trials: int = 100, steps: int = 1000) -> tuple[float, int]:
    store = Store(str(folder / "curves.db"))
    study = store.create_study("c", "loss", "min", tl.Space(x=tl.Float(0, 1)), {})
    ids = []
    for t in range(trials):
        trial_id = store.create_trial(study.id, t, {"x": 0.5}, seed=t)
        ids.append(trial_id)
        points = [(trial_id, 0, s, name, 1.0 / (s + 1)) for s in range(steps) for name in ("train_loss", "val_loss")]
        store.write_batch({"metrics": point_rows(points)})
    store.close()
    fresh = Store(str(folder / "curves.db"))  # a cold reader, as the dashboard would be
    start = time.perf_counter()
    curves = fresh.series(ids)
    elapsed = time.perf_counter() - start
    return elapsed, sum(len(p) for c in curves.values() for p in c.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=POINTS)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "logging.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    n = args.points
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, fn in (("store batched write (points/s)", store_batched),
                         ("trial.log through a study (points/s)", through_study),
                         ("tensorboard add_scalar (points/s)", tensorboard),
                         ("mlflow log_metric, file store (points/s)", lambda f, k: mlflow_file_store(f, min(k, 5000)))):
            results[name] = fn(folder, n)
            shown = "not installed" if results[name] is None else f"{results[name]:12,.0f}"
            print(f"{name:42s} {shown}", flush=True)
        seconds, count = load_curves(folder)
        results["load 100 trials x 1000 steps x 2 metrics (s)"] = seconds
        print(f"load curves: {count:,} points in {seconds:.3f} s")
    verdict = {"store_at_least_200k_per_s": (results["store batched write (points/s)"] or 0) >= 200_000,
               "load_under_0.5s": seconds < 0.5}
    print(json.dumps(verdict, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "logging", "points": n, "results": results, "targets": verdict,
                                    "note": "mlflow is timed on min(points, 5000): one file append per call",
                                    "machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")},
                                   indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
