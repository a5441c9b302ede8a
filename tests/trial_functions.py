"""Trial functions used by the tests; a module of their own so worker processes can import them."""

from __future__ import annotations

import math
import os
import signal
import time

import tuneloop as tl


def quadratic(trial: tl.Trial) -> dict:
    """Minimum 0 at x = 0.5; reports a decreasing curve over 4 steps."""
    x = trial.params["x"]
    for step in range(4):
        trial.report(step, loss=(x - 0.5) ** 2 + 1.0 / (step + 1))
        if trial.should_stop():
            return {}
    return {"loss": (x - 0.5) ** 2, "pid": os.getpid()}


def fails_when_negative(trial: tl.Trial) -> float:
    if trial.params.x < 0:
        raise ValueError(f"x is negative: {trial.params.x}")
    return trial.params.x


def nan_when_large(trial: tl.Trial) -> None:
    for step in range(5):
        loss = math.nan if trial.params.x > 1.0 and step >= 2 else abs(trial.params.x)
        trial.report(step, loss=loss)
        if trial.should_stop():
            return


def forgets_objective(trial: tl.Trial) -> dict:
    trial.report(0, accuracy=0.5)
    return {"accuracy": 0.5}


def prunes_itself(trial: tl.Trial) -> None:
    trial.report(0, loss=1.0)
    raise tl.TrialPruned()


def report_then_sleep(trial: tl.Trial) -> dict:
    trial.report(0, loss=1.0)
    time.sleep(0.6)
    return {"loss": 0.5, "finished_at": time.time()}


def killed_on_number_one(trial: tl.Trial) -> float:
    if trial.number == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return float(trial.params.x)


def interrupted_on_number_three(trial: tl.Trial) -> float:
    if trial.number == 3 and trial._spec.attempt == 0:
        raise KeyboardInterrupt
    trial.report(0, loss=abs(trial.params.x))
    return abs(trial.params.x)


def noop(trial: tl.Trial) -> float:
    return 0.0


def logs_everything(trial: tl.Trial) -> dict:
    """Logs one of each kind; x > 1 puts a NaN into the histogram."""
    import numpy as np

    values = np.arange(100, dtype=float)
    if trial.params.x > 1.0:
        values[3] = np.nan
    trial.log(0, grad_norm=1.5)
    trial.log_histogram(0, "act/fc1", values)
    trial.log_histogram(0, "empty", [])
    trial.log_slice(1, "class 0", "acc", 0.5, n=10)
    trial.log_slice(1, "class 1", "acc", 0.75, n=12)
    trial.log_sample(1, "picture", np.linspace(0, 1, 12).reshape(3, 4), kind="image")
    trial.log_sample(1, "note", "hello")
    trial.log_sample(1, "table", {"a": [1, 2], "b": ["x", "y"]})
    for step in range(1, 4):
        trial.report(step, loss=abs(trial.params.x))
        if trial.should_stop():
            return {}
    return {"loss": abs(trial.params.x)}


def logs_until_stopped(trial: tl.Trial) -> dict:
    """Logs a growing value until told to stop (by an alert rule); returns how far it got."""
    for step in range(200):
        trial.log(step, blowup=float(step))
        if trial.should_stop():
            return {"loss": float(step)}
        time.sleep(0.005)
    return {"loss": 1e9}


def quadratic_xy(trial: tl.Trial) -> dict:
    """Minimum at x = 0.5, y = 1 (the upper bound of y: the best trials crowd it)."""
    x, y = trial.params.x, trial.params.y
    value = (x - 0.5) ** 2 + (math.log10(y)) ** 2
    for step in range(3):
        trial.report(step, loss=value + 1.0 / (step + 1))
    return {"loss": value}
