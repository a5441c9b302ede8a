"""Seconds per MNIST-1D trial of the demo's MLP and the paper's CNN, on the CPU and on CUDA.

    python benchmarks/gpu_fit.py            # writes benchmarks/results/gpu_fit.json

One trial = ``fit`` for 40 epochs at batch size 128. Small models are launch-bound on a GPU:
this is the baseline the population executor (issue 9) is meant to beat.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from tuneloop.datasets import mnist1d
from tuneloop.torch import CNN, MLP, fit


def main() -> None:
    data = mnist1d()
    models = {"mlp-256x2": lambda: MLP(40, 10, width=256, depth=2), "cnn-25": lambda: CNN(40, 10)}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {}
    for name, build in models.items():
        for device in devices:
            fit(build, data.train, data.val, epochs=1, device=device)  # warm-up (CUDA context, kernels)
            start = time.perf_counter()
            r = fit(build, data.train, data.val, epochs=40, batch_size=128, lr=3e-3, seed=0, device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - start
            results[f"{name} {device}"] = {"seconds_per_trial": secs, "val_acc": r.metrics["val_acc"]}
            print(f"{name:10s} {device:5s} {secs:6.2f} s/trial  val_acc {r.metrics['val_acc']:.3f}", flush=True)
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    out = Path(__file__).parent / "results" / "gpu_fit.json"
    out.write_text(json.dumps({"benchmark": "gpu_fit", "machine": info, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
