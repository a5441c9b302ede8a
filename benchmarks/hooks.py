"""Training-time overhead of the trainer's default logging and inspection hooks.

    python benchmarks/hooks.py          # writes benchmarks/results/hooks.json

The MNIST-1D MLP of the demo (2 x 256, batch 128, 40 epochs) trains inside a one-trial study
(inline executor, SQLite store), once with the defaults (log_every=50, inspect_every=200, the
default alert rules) and once with every hook off (log_every=0, inspect_every=0, no rules). Each
is run 3 times, alternating; the medians are compared. Target: at most 10% overhead.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import tuneloop as tl
from tuneloop.datasets import mnist1d
from tuneloop.torch import MLP, fit


def _train(trial: tl.Trial) -> dict:
    data = mnist1d()
    on = trial.params.hooks == "on"
    return fit(lambda: MLP(40, 10, width=256, depth=2), data.train, data.val, trial=trial, lr=3e-3, epochs=40,
               batch_size=128, seed=0, log_every=50 if on else 0, inspect_every=200 if on else 0).metrics


def timed(hooks: str, folder: Path, i: int) -> float:
    study = tl.Study(f"hooks-{hooks}-{i}", tl.Space(hooks=tl.Choice([hooks])), _train, metric="val_acc",
                     mode="max", storage=str(folder / "hooks.db"), rules="default" if hooks == "on" else None)
    start = time.perf_counter()
    study.run(searcher="grid")
    return time.perf_counter() - start


def main() -> None:
    mnist1d()  # generate the data outside the timings
    times: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            for hooks in ("off", "on"):
                times[hooks].append(timed(hooks, Path(tmp), i))
                print(f"hooks {hooks}: {times[hooks][-1]:.2f} s", flush=True)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    overhead = on / off - 1
    print(f"median off {off:.2f} s, on {on:.2f} s: overhead {overhead:+.1%} (target <= 10%)")
    out = Path(__file__).parent / "results" / "hooks.json"
    out.write_text(json.dumps({"benchmark": "hooks", "seconds": times, "median_off": off, "median_on": on,
                               "overhead": overhead, "within_10pct": overhead <= 0.10,
                               "machine": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
