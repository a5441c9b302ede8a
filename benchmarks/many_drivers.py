"""Many drivers, one study: N no-op trials through 8 independent driver processes on one database,
tuneloop beside Optuna's own multi-process pattern, on SQLite and, where PostgreSQL's binaries are
installed, on a PostgreSQL server started for the run.

    python benchmarks/many_drivers.py                  # 10,000 trials; writes benchmarks/results/many_drivers.json
    python benchmarks/many_drivers.py --trials 2000    # a size a small machine runs in a few minutes
    python benchmarks/many_drivers.py --repeat 3       # the fastest of 3 runs each, taken in turns (a noisy machine)

tuneloop: 8 processes each run ``study.run(N, searcher="random")`` on the same study (the inline
executor); together they stop at exactly N. Optuna: 8 processes each run
``optuna.load_study(...).optimize(noop, n_trials=N / 8)`` with its RandomSampler on the same
database (Optuna's documented way to share a study between processes). Every process imports its
library and opens the study first, then all start at one signal, so imports are not timed. Rates
count trials finished until the last one ended (the database's own timestamps); ``exit_s`` is
when the last process had exited. Lost: trials short of N; duplicated: a trial number or a
(params, seed) pair stored twice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "support"
sys.path.insert(0, str(SUPPORT))  # the test PostgreSQL server

import postgres_server  # noqa: E402

# each process: import and open everything, say ready, wait for "go", run, print what it did
TUNELOOP = """
    import json, pathlib, sys, time
    sys.path.insert(0, {support!r})
    import optuna  # noqa: F401  (the searcher's library, imported before the clock starts)
    import trial_functions as tf
    import tuneloop as tl

    url, n, folder, me = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
    study = tl.Study("many", tl.Space(x=tl.Float(-2.0, 2.0)), tf.noop, metric="loss", mode="min", storage=url, seed=0)
    study.record(study.store())
    (folder / f"ready-{{me}}").touch()
    while not (folder / "go").exists():
        time.sleep(0.001)
    start = time.time()
    summary = study.run(n, searcher="random")
    print(json.dumps({{"start": start, "end": time.time(), "launched": summary.launched}}))
"""

OPTUNA = """
    import json, pathlib, sys, time
    import optuna

    url, n, folder, me = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="many", storage=url, sampler=optuna.samplers.RandomSampler(seed=int(me)))
    (folder / f"ready-{{me}}").touch()
    while not (folder / "go").exists():
        time.sleep(0.001)
    start = time.time()
    study.optimize(lambda trial: 0.0 * trial.suggest_float("x", -2.0, 2.0), n_trials=n)
    print(json.dumps({{"start": start, "end": time.time(), "launched": n}}))
"""


def drive(script: str, url: str, per_process: int, drivers: int, folder: Path) -> dict[str, Any]:
    """Start ``drivers`` processes of ``script``; once all are ready, start them at once; wait for all."""
    folder.mkdir(parents=True)
    path = folder / "drive.py"
    path.write_text(textwrap.dedent(script.format(support=str(SUPPORT))))
    processes = [subprocess.Popen([sys.executable, str(path), url, str(per_process), str(folder), str(i)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(drivers)]
    while len(list(folder.glob("ready-*"))) < drivers:
        if any(p.poll() is not None for p in processes):
            break  # one failed before it was ready: its error is reported below
        time.sleep(0.01)
    go = time.time()
    (folder / "go").touch()
    errors = []
    for p in processes:
        _, err = p.communicate()
        if p.returncode != 0:
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}")
    return {"go": go, "exit_s": time.time() - go, "failed_processes": len(errors), "errors": errors[:3]}


def tuneloop_counts(url: str) -> dict[str, Any]:
    from tuneloop.store import Store

    with Store(url) as store:
        trials = store.trials(store.require_study("many").id)
    done = [t for t in trials if t.state == "completed"]
    pairs = {(json.dumps(t.params, sort_keys=True), t.seed) for t in trials}
    return {"completed": len(done), "numbers": [t.number for t in trials], "pairs": len(pairs),
            "last_end": max((t.finished_at or 0.0) for t in done) if done else None}


def optuna_counts(url: str) -> dict[str, Any]:
    import optuna

    trials = optuna.load_study(study_name="many", storage=url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pairs = {json.dumps(t.params, sort_keys=True) for t in trials}
    return {"completed": len(done), "numbers": [t.number for t in trials], "pairs": len(pairs),
            "last_end": max(t.datetime_complete.timestamp() for t in done) if done else None}


def measure(which: str, url: str, n: int, drivers: int, folder: Path) -> dict[str, Any]:
    if which == "tuneloop":
        import tuneloop as tl

        tl.Study("many", tl.Space(x=tl.Float(-2.0, 2.0)), lambda trial: 0.0, metric="loss", mode="min", storage=url,
                 seed=0).record(tl.Store(url))  # the schema and the study exist before 8 processes open them
        timing = drive(TUNELOOP, url, n, drivers, folder)
        counts = tuneloop_counts(url)
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.create_study(study_name="many", storage=url)
        timing = drive(OPTUNA, url, n // drivers, drivers, folder)
        counts = optuna_counts(url)
    numbers = counts.pop("numbers")
    elapsed = (counts.pop("last_end") or time.time()) - timing.pop("go")
    return {"trials": n, "completed": counts["completed"], "lost": max(0, n - counts["completed"]),
            "duplicated": (len(numbers) - len(set(numbers))) + (len(numbers) - counts.pop("pairs")),
            "extra": max(0, counts["completed"] - n), "seconds": round(elapsed, 3),
            "trials_per_s": round(counts["completed"] / elapsed, 1), **timing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--drivers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, in turns; the fastest is kept")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "many_drivers.json")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        backends = {"sqlite": lambda name: f"sqlite:///{folder}/{name}.db"}
        server = None
        if postgres_server.binaries() is not None:
            server = postgres_server.Server(folder / "pg")
            backends["postgresql"] = server.create_database
        try:
            for backend, make_url in backends.items():
                runs: dict[str, list[dict[str, Any]]] = {"tuneloop": [], "optuna": []}
                for i in range(args.repeat):  # in turns, so a busy spell of the machine hits both alike
                    for which in runs:
                        got = measure(which, make_url(f"{which}{i}"), args.trials, args.drivers,
                                      folder / f"{backend}-{which}{i}")
                        runs[which].append(got)
                        print(backend, which, got, flush=True)
                results[backend] = {which: {**max(got, key=lambda r: r["trials_per_s"]),
                                            "runs_trials_per_s": [r["trials_per_s"] for r in got]}
                                    for which, got in runs.items()}
                mine, theirs = results[backend]["tuneloop"]["trials_per_s"], results[backend]["optuna"]["trials_per_s"]
                results[backend]["speedup"] = round(mine / theirs, 2) if theirs else None
        finally:
            if server is not None:
                server.stop()
    report = {"drivers": args.drivers, "trials": args.trials, "repeat": args.repeat, "results": results,
              "when": time.strftime("%Y-%m-%d %H:%M")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
