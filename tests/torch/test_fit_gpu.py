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


def test_population_on_the_gpu_equals_sequential_fit_there():
    """float64 on CUDA (no dropout: CUDA draws masks in its own kernel) and the generic path with
    mixed precision, both through the population engine."""
    from tuneloop.torch import fit_population

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])[y] + rng.normal(0, 0.5, (600, 2))
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        jobs = [dict(model=lambda: MLP(2, 3, width=32), train=(x[:400], y[:400]), val=(x[400:], y[400:]), lr=lr,
                     weight_decay=1e-3, epochs=3, seed=s, amp=False, inspect_every=0) for s, lr in enumerate([1e-3, 1e-2])]
        for together, alone in zip(fit_population(jobs), [fit(**j) for j in jobs]):
            assert next(together.model.parameters()).is_cuda
            for a, b in zip(together.model.state_dict().values(), alone.model.state_dict().values()):
                assert float((a - b).abs().max()) <= 1e-10
    finally:
        torch.set_default_dtype(before)
    mixed = fit_population([{**jobs[0], "amp": None, "train": (x[:400].astype(np.float32), y[:400]),
                             "val": (x[400:].astype(np.float32), y[400:])}])
    assert mixed[0].metrics["val_acc"] > 0.9
