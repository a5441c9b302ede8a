"""The forecast scheduler against ASHA, the median rule and no scheduler on the MNIST-1D MLP and CNN.

    python benchmarks/forecast_scheduler.py                    # writes benchmarks/results/forecast_scheduler.json
    python benchmarks/forecast_scheduler.py --kinds mlp --seeds 2 --trials 24 --epochs 12   # quicker
    taskset -c 1 python benchmarks/forecast_scheduler.py       # one core, as the stored results were made

Each study (examples/mnist1d_mlp.py, examples/mnist1d_cnn.py: their spaces and trainers, ``--epochs``
epochs) runs once per seed with the random searcher and no scheduler, on one worker (inline), every
trial to its end; each epoch's ``val_acc`` and wall time are recorded. Random proposals do not
depend on results, so replaying a scheduler over those full curves in trial order (``on_launch``,
``on_report`` each epoch until it says stop, ``on_result``) is exactly what it would have decided in
a real run with one worker, and the trials it stopped are measured to completion for free. One
seed of the first kind is also run for real with the forecast scheduler to check that: its pruned
trials must be the replay's stopped ones.

Per scheduler (forecast at confidence 0.9 and 0.95, asha with its first rung at epoch 3 as in
benchmarks/time_to_target.py, median, none), per study and seed:
  epochs           epochs trained (and their share of none's)
  time_s           simulated wall time: the recorded seconds of the epochs it ran (the first holds the
                   trial's start-up), plus each trial's wind-up after its last epoch
  best             best final value of the trials it completed
  time_to_target_s simulated time until a trial (completed or then running) first reported the common
                   target: the best value every scheduler reached in that seed (the least of their bests)
                   (its median ratio to none's is ``vs none``)
  stopped          trials stopped (and after which epoch: the summary's median_stop_epoch)
  top3_stopped     of the eventual top 3 (by their full curve's final value; ties at third included),
                   how many it stopped; the forecast scheduler claims at most 1 - confidence of them
  bound_missed     (forecast) stopped trials whose full curve ended at or above the k-th best they were
                   judged against: its optimistic bound missed
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tuneloop as tl
from tuneloop.schedule import Decision, ForecastScheduler, schedulers
from tuneloop.store import Store, TrialState

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"mlp": ROOT / "examples" / "mnist1d_mlp.py", "cnn": ROOT / "examples" / "mnist1d_cnn.py"}
METRIC = "val_acc"
SCHEDULERS: dict[str, Any] = {
    "forecast@0.9": {"name": "forecast", "confidence": 0.9},
    "forecast@0.95": {"name": "forecast", "confidence": 0.95},
    "asha": {"name": "asha", "min_resource": 3},  # benchmarks/time_to_target.py's first rung
    "median": "median",
    "none": "none",
}
FORECAST_CODE = [ROOT / "src" / "tuneloop" / "forecast.py", ROOT / "src" / "tuneloop" / "schedule" / "_forecast.py"]
LIVE = "forecast@0.9"  # the scheduler the live run checks the replay against
DEFAULTS = {"mlp": {"trials": 60, "epochs": 30}, "cnn": {"trials": 40, "epochs": 30}}  # the examples' own 30 epochs


@dataclass
class Recorded:
    """One trial of a run without a scheduler: its full curve and what each epoch cost."""

    id: int
    number: int
    params: dict[str, Any]
    state: str
    value: float | None  # the stored objective (fit's best epoch)
    curve: list[tuple[int, float]]  # (epoch, val_acc)
    seconds: list[float]  # wall time of each epoch, the trial's start-up in the first
    tail: float  # wall time from its last report to its end (fit selecting and saving its best epoch)


@dataclass
class Replayed:
    """What one scheduler did over a recorded run."""

    epochs: int = 0
    time_s: float = 0.0
    best: float | None = None
    stopped: list[int] = field(default_factory=list)  # trial numbers
    stopped_at: dict[int, int] = field(default_factory=dict)  # number: the epoch it was stopped after
    forecasts: dict[int, dict[str, Any]] = field(default_factory=dict)  # number: the forecast it stopped on
    reports: list[tuple[float, float]] = field(default_factory=list)  # (simulated time, value) of every report


class _Clock(tl.Callback):
    """Wall-clock marks of each trial's start, reports and end (the inline executor runs them in turn)."""

    def __init__(self) -> None:
        self.marks: dict[int, list[float]] = {}
        self.ends: dict[int, float] = {}

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        self.marks[number] = [time.perf_counter()]

    def on_report(self, number: int, step: int, metrics: dict[str, float]) -> None:
        self.marks[number].append(time.perf_counter())

    def on_trial_end(self, trial: Any) -> None:
        self.ends[trial.number] = time.perf_counter()


def run_study(kind: str, seed: int, trials: int, epochs: int, storage: str, scheduler: Any = "none") -> list[Recorded]:
    """Run ``kind``'s example study with the random searcher and ``scheduler`` on one inline worker;
    every trial with its curve and epoch times, in trial order."""
    import torch

    torch.set_num_threads(1)
    study = tl.load_study(EXAMPLES[kind])
    study.budget = tl.Budget(epochs=epochs)
    clock = _Clock()
    study.run(trials, seed=seed, searcher="random", scheduler=scheduler, executor="inline", storage=storage,
              callbacks=[clock])
    store = Store(storage)
    record = store.get_study(study.name)
    assert record is not None
    rows = store.trials(record.id)
    series = store.series([r.id for r in rows], names=[METRIC])
    out = []
    for r in rows:
        marks = clock.marks[r.number]
        curve = sorted((int(s), float(v)) for s, v in series[r.id].get(METRIC, []))
        seconds = [b - a for a, b in itertools.pairwise(marks)]
        if len(seconds) != len(curve):
            raise RuntimeError(f"trial {r.number}: {len(curve)} {METRIC} points but {len(seconds)} reports timed")
        out.append(Recorded(r.id, r.number, dict(r.params), str(r.state), r.value, curve, seconds,
                            clock.ends[r.number] - marks[-1]))
    return out


def replay(recorded: list[Recorded], spec: Any) -> Replayed:
    """What scheduler ``spec`` decides over ``recorded`` in trial order, as the driver tells it."""
    scheduler = schedulers.create(spec, mode="max")
    out, clock = Replayed(), 0.0
    for t in recorded:
        scheduler.on_launch(t.id, t.params)
        ran, stop = 0, False
        for (step, value), seconds in zip(t.curve, t.seconds, strict=True):
            ran += 1
            clock += seconds
            out.reports.append((clock, value))
            if not math.isfinite(value):
                break  # diverged: the driver stops it and asks the scheduler nothing
            if scheduler.on_report(t.id, step, value) == Decision.STOP:
                stop = True
                if isinstance(scheduler, ForecastScheduler):
                    f = scheduler.last[t.id]
                    out.forecasts[t.number] = {**f.to_dict(), "kth_best": scheduler.kth_best(),
                                               "curves_calibrated_on": scheduler.calibration.curves}
                break
        clock += t.tail
        out.epochs += ran
        final: float | None
        if stop:
            out.stopped.append(t.number)
            out.stopped_at[t.number] = t.curve[ran - 1][0]
            state, final = TrialState.PRUNED, max(v for _, v in t.curve[:ran])  # fit returns its best epoch so far
        else:
            state, final = t.state, t.value
            if state == TrialState.COMPLETED and final is not None and math.isfinite(final):
                out.best = final if out.best is None else max(out.best, final)
        scheduler.on_result(t.id, state, final)
    out.time_s = clock
    return out


def top3(recorded: list[Recorded]) -> list[int]:
    """The numbers of the eventual top 3 completed trials (ties at third place included)."""
    done = {t.number: t.value for t in recorded if t.state == TrialState.COMPLETED and t.value is not None}
    if not done:
        return []
    third = sorted(done.values(), reverse=True)[min(2, len(done) - 1)]
    return sorted(n for n, value in done.items() if value >= third)


def time_to(reports: list[tuple[float, float]], target: float) -> float | None:
    """The simulated time of the first report at or above ``target``."""
    return next((clock for clock, value in reports if value >= target), None)


def figures(recorded: list[Recorded], specs: dict[str, Any] = SCHEDULERS) -> dict[str, Any]:
    """Every scheduler replayed over one recorded run, and what each did."""
    runs = {name: replay(recorded, spec) for name, spec in specs.items()}
    best_of = [r.best for r in runs.values() if r.best is not None]
    target = min(best_of) if best_of else None
    tops = top3(recorded)
    full = sum(len(t.curve) for t in recorded)
    full_s = sum(sum(t.seconds) + t.tail for t in recorded)
    by_number = {t.number: t for t in recorded}
    out: dict[str, Any] = {"trials": len(recorded), "states": sorted({t.state for t in recorded}),
                           "target": target, "top3": tops, "top3_values": [by_number[n].value for n in tops],
                           "schedulers": {}}
    for name, r in runs.items():
        stopped_top = [n for n in r.stopped if n in tops]
        # a forecast stop whose trial would have ended at or above the k-th best it was judged against
        missed = [n for n, f in r.forecasts.items() if (by_number[n].value or -math.inf) >= f["kth_best"]]
        out["schedulers"][name] = {
            "epochs": r.epochs, "epochs_share": r.epochs / full, "time_s": round(r.time_s, 2),
            "time_share": r.time_s / full_s, "best": r.best,
            "time_to_target_s": None if target is None else _round(time_to(r.reports, target)),
            "stopped": len(r.stopped), "stopped_after_epoch": r.stopped_at,
            "top3_stopped": len(stopped_top),
            "top3_stopped_detail": [{"number": n, "at_epoch": r.stopped_at[n], "final": by_number[n].value,
                                     "curve": [v for _, v in by_number[n].curve],
                                     **({"forecast": r.forecasts[n]} if n in r.forecasts else {})}
                                    for n in stopped_top],
            **({"bound_missed": missed} if _is_forecast(specs[name]) else {}),
        }
    return out


def _is_forecast(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("name") == "forecast"


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def live_check(kind: str, seed: int, trials: int, epochs: int, storage: str, recorded: list[Recorded],
               spec: Any = SCHEDULERS[LIVE]) -> dict[str, Any]:
    """Run the study for real with ``spec`` and compare its pruned trials with the replay's stopped ones;
    where they differ, whether the curves did (training not reproduced) or the decisions."""
    start = time.perf_counter()
    live = run_study(kind, seed, trials, epochs, storage, scheduler=spec)
    wall = time.perf_counter() - start
    replayed = replay(recorded, spec)
    pruned = [t.number for t in live if t.state == TrialState.PRUNED]
    by_number = {t.number: t for t in recorded}
    differing_curves = [t.number for t in live
                        if t.params != by_number[t.number].params or t.curve != by_number[t.number].curve[:len(t.curve)]]
    return {"scheduler": spec, "seed": seed, "wall_s": round(wall, 1), "live_pruned": pruned,
            "replay_stopped": replayed.stopped, "match": pruned == replayed.stopped,
            "live_stopped_at": {t.number: t.curve[-1][0] for t in live if t.state == TrialState.PRUNED},
            "replay_stopped_at": replayed.stopped_at, "curves_or_params_differ": differing_curves,
            "live_states": sorted({t.state for t in live})}


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over seeds, per scheduler."""
    out: dict[str, Any] = {}
    n_top = sum(len(s["top3"]) for s in per_seed)
    for name in per_seed[0]["schedulers"]:
        rows = [s["schedulers"][name] for s in per_seed]
        none = [s["schedulers"]["none"] for s in per_seed]
        ratios = [r["time_to_target_s"] / n["time_to_target_s"] for r, n in zip(rows, none, strict=True)
                  if r["time_to_target_s"] and n["time_to_target_s"]]
        stopped_top = sum(r["top3_stopped"] for r in rows)
        stops = [e for r in rows for e in r["stopped_after_epoch"].values()]
        out[name] = {
            "epochs_share": sum(r["epochs"] for r in rows) / sum(n["epochs"] for n in none),
            "time_share": sum(r["time_s"] for r in rows) / sum(n["time_s"] for n in none),
            "mean_best": statistics.mean(r["best"] for r in rows),
            "median_time_to_target_s": statistics.median(r["time_to_target_s"] for r in rows),
            "median_time_to_target_vs_none": statistics.median(ratios) if ratios else None,
            "stopped": sum(r["stopped"] for r in rows), "median_stop_epoch": _median(stops),
            "top3_stopped": stopped_top, "top3_total": n_top,
            "top3_stopped_share": stopped_top / n_top if n_top else None,
        }
        if "bound_missed" in rows[0]:
            out[name]["bound_missed"] = sum(len(r["bound_missed"]) for r in rows)
    return out


def table(kind: str, summary: dict[str, Any]) -> str:
    """One kind's summary as a printed table."""
    head = (f"{kind}: {'scheduler':14s} {'epochs':>7s} {'time':>6s} {'best':>6s} {'to target':>10s} "
            f"{'vs none':>8s} {'stopped':>8s} {'at epoch':>8s} {'top-3 stopped':>14s}")
    lines = [head]
    for name, s in summary.items():
        vs = "-" if s["median_time_to_target_vs_none"] is None else f"{s['median_time_to_target_vs_none']:.2f}x"
        at = "-" if s["median_stop_epoch"] is None else f"{s['median_stop_epoch']:g}"
        lines.append(f"{'':{len(kind) + 2}s}{name:14s} {s['epochs_share']:7.0%} {s['time_share']:6.0%} "
                     f"{s['mean_best']:6.3f} {s['median_time_to_target_s']:9.1f}s {vs:>8s} {s['stopped']:8d} {at:>8s} "
                     f"{s['top3_stopped']:>6d} of {s['top3_total']:<3d} ({s['top3_stopped_share']:.0%})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, help=f"trials per run (default {DEFAULTS})")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: per kind, as --trials)")
    parser.add_argument("--no-live", action="store_true", help="skip the live run that checks the replay")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forecast_scheduler.json")
    args = parser.parse_args()
    plan = {k: {"trials": args.trials or DEFAULTS[k]["trials"], "epochs": args.epochs or DEFAULTS[k]["epochs"],
                "seeds": args.seeds} for k in args.kinds}
    print(f"plan: {plan}; schedulers {list(SCHEDULERS)}; live check of {LIVE} on {args.kinds[0]} seed 0"
          f"{' (skipped)' if args.no_live else ''}", flush=True)
    began = time.perf_counter()
    code = {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in FORECAST_CODE}
    results: dict[str, Any] = {}
    live: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as folder:
        for kind, p in plan.items():
            per_seed = []
            for seed in range(p["seeds"]):
                t0 = time.perf_counter()
                recorded = run_study(kind, seed, p["trials"], p["epochs"], f"sqlite:///{folder}/{kind}-{seed}.db")
                f = figures(recorded)
                f["seed"], f["recorded_wall_s"] = seed, round(time.perf_counter() - t0, 1)
                per_seed.append(f)
                print(f"{kind} seed {seed}: {len(recorded)} trials in {f['recorded_wall_s']}s; top 3 {f['top3']}; "
                      + "; ".join(f"{n} stopped {s['stopped']} (top-3 {s['top3_stopped']})"
                                  for n, s in f["schedulers"].items() if n != "none"), flush=True)
                if live is None and not args.no_live:
                    live = live_check(kind, seed, p["trials"], p["epochs"], f"sqlite:///{folder}/{kind}-{seed}-live.db",
                                      recorded)
                    live["kind"] = kind
                    print(f"live check: pruned {live['live_pruned']} vs replay {live['replay_stopped']}: "
                          f"{'match' if live['match'] else 'DIFFER'}", flush=True)
            results[kind] = {"plan": p, "summary": summarize(per_seed), "per_seed": per_seed}
    total = time.perf_counter() - began
    out = {"benchmark": "forecast_scheduler", "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "code": code,
           "schedulers": SCHEDULERS, "searcher": "random", "workers": 1, "torch_threads": 1,
           "total_wall_s": round(total, 1), "live_check": live, "results": results,
           "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                       "affinity": sorted(os.sched_getaffinity(0)), "load_at_end": os.getloadavg()},
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=_json))
    for kind, r in results.items():
        print(table(kind, r["summary"]))
    print(f"total {total:.0f}s; {args.out}")


def _json(x: Any) -> Any:
    return asdict(x) if hasattr(x, "__dataclass_fields__") else str(x)


if __name__ == "__main__":
    main()
