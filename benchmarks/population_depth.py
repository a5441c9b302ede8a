"""Members of different depths in one population against one population per depth (issue 20).

    python benchmarks/population_depth.py                # writes benchmarks/results/population_depth.json
    python benchmarks/population_depth.py --members 6    # a small sweep

The sweep: ``tuneloop.torch.MLP(40, 10, width=100, depth=1..3, dropout=0.1)``, Adam, 1,024
generated examples, batch 64, 4 epochs, learning rates varied; depths in turn (1, 2, 3, 1, ...).
Three ways, each the best of ``--repeats`` runs, wall and process CPU time:

  mixed         one ``fit_population`` call: one population, padded to depth 3 (what the engine
                does now for such a sweep)
  mixed_sorted  the same members ordered by depth (a skipped layer then runs on a slice of the
                blocks instead of gathered rows)
  buckets       one ``fit_population`` call per depth (what the engine did before)

One torch thread by default (``--threads``), so a loaded machine disturbs the figures less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from tuneloop.torch import MLP, fit_population


def _jobs(depths: list[int], x: torch.Tensor, y: torch.Tensor, epochs: int) -> list[dict[str, Any]]:
    return [{"model": (lambda d=d: MLP(40, 10, width=100, depth=d, dropout=0.1)), "train": (x, y),
             "val": (x[:256], y[:256]), "epochs": epochs, "batch_size": 64, "inspect_every": 0,
             "predictions": False, "seed": i, "lr": 1e-3 * (1 + i % 4)} for i, d in enumerate(depths)]


def _best(run: Any, repeats: int) -> dict[str, float]:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": round(min(walls), 3), "cpu_s": round(min(cpus), 3)}


def _ways(depths: list[int], x: torch.Tensor, y: torch.Tensor, epochs: int) -> dict[str, Any]:
    return {
        "mixed": lambda: fit_population(_jobs(depths, x, y, epochs)),
        "mixed_sorted": lambda: fit_population(_jobs(sorted(depths), x, y, epochs)),
        "buckets": lambda: [fit_population(_jobs([d] * depths.count(d), x, y, epochs)) for d in (1, 2, 3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[6, 24])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "population_depth.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 40, generator=gen)
    y = torch.randint(0, 10, (1024,), generator=gen)
    fit_population(_jobs([1, 2, 3], x, y, 1))  # warm up (imports, first kernels)
    results: dict[str, Any] = {"host": platform.node(), "torch": torch.__version__, "threads": args.threads,
                               "load_average": os.getloadavg()[0], "epochs": args.epochs, "sweeps": {}}
    for n in args.members:
        depths = [1 + i % 3 for i in range(n)]
        figures = {way: _best(run, args.repeats) for way, run in _ways(depths, x, y, args.epochs).items()}
        results["sweeps"][str(n)] = figures
        print(n, "members:", json.dumps(figures))
    results["load_average_after"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
