"""The trainer on a CUDA device (run with -m gpu where a GPU is present)."""

import numpy as np
import pytest
import torch
import trial_functions  # noqa: F401 - keeps tests/ importable for the workers

import tuneloop as tl
from tuneloop.torch import MLP, fit

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_fit_trains_on_the_gpu_by_default():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = (np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])[y] + rng.normal(0, 0.5, (600, 2))).astype(np.float32)
    result = fit(lambda: MLP(2, 3, width=32), (x[:400], y[:400]), (x[400:], y[400:]), lr=1e-2, epochs=10)
    assert next(result.model.parameters()).is_cuda
    assert result.metrics["val_acc"] > 0.95


def test_worker_processes_each_use_the_gpu(storage):
    from tuneloop import demo

    study = tl.Study("gpu", demo.space, demo.train, metric="val_acc", mode="max", budget={"epochs": 3},
                     storage=storage, searcher="random")
    study.run(n_trials=4, workers=2, seed=0)
    assert [t.state for t in study.trials] == ["completed"] * 4
    assert study.best.value > 0.2
