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


# -- finalize and ensembles --------------------------------------------------------------------
# Three members, each wrong on its own third of the examples (it predicts the next class there):
# any single one is 2/3 right, while a vote or an average of the three is always right.
N_PER_BLOCK = 60
SPLIT_SIZES = {"train": 240, "val": 3 * N_PER_BLOCK, "test": 3 * N_PER_BLOCK}


def _labels(n: int) -> list[int]:
    return [i % 3 for i in range(n)]


SPLITS = {name: (list(range(n)), _labels(n)) for name, n in SPLIT_SIZES.items()}


def member_outputs(k: int, n: int, noise: float = 0.0, seed: int = 0):
    """Probabilities of member ``k``: confident and right, except on block k (the next class)."""
    import numpy as np

    y = np.array(_labels(n))
    wrong = np.zeros(n, dtype=bool)
    wrong[k * (n // 3):(k + 1) * (n // 3)] = True
    pred = np.where(wrong, (y + 1) % 3, y)
    probs = np.full((n, 3), 0.05)
    probs[np.arange(n), pred] = 0.9
    if noise:
        probs = probs + np.random.default_rng(seed).uniform(0, noise, probs.shape)
        probs /= probs.sum(1, keepdims=True)
    return probs, y


def ensemble_member(trial: tl.Trial) -> dict:
    """Reports an accuracy that peaks at epoch 3 of 6 (better for smaller k), logs what it was
    given, and saves the member's predictions on the held-out split (and on val when final)."""
    fit_on, heldout = trial.splits(SPLITS)
    k = trial.params["k"]
    for epoch in range(1, trial.budget["epochs"] + 1):
        trial.report(epoch, **{f"{trial.heldout}_acc": 0.9 - 0.1 * k - 0.01 * (epoch - 3) ** 2})
    trial.log(0, n_fit=len(fit_on[1]), n_eval=len(heldout[1]), epochs=trial.budget["epochs"])
    splits = [(trial.heldout, len(heldout[1]))] + ([] if trial.extra_heldout() is None else
                                                   [(trial.extra_heldout()[0], len(trial.extra_heldout()[1][1]))])
    for name, n in splits:
        probs, y = member_outputs(k, n, noise=0.02, seed=trial.seed)
        trial.log_predictions(3, name, probs, y)
    return {f"{trial.heldout}_acc": 0.9 - 0.1 * k - 0.01 * (trial.budget["epochs"] - 3) ** 2 + 0.001 * (trial.seed % 3)}


def fit_without_splits(trial: tl.Trial) -> dict:
    """Trains with fit on val directly: fine while tuning, refused in a final run."""
    import numpy as np

    from tuneloop.torch import MLP, fit

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)).astype(np.float32), rng.integers(0, 2, 60)
    return fit(lambda: MLP(2, 2, width=4), (x, y), (x, y), trial=trial, epochs=1, inspect_every=0).metrics


def activation_bowl(trial: tl.Trial) -> dict:
    """val_acc peaks at lr = 0.01 for every activation; gelu is 0.1 better; width helps a little.
    Records which parameters it was given."""
    import math

    p = trial.params
    value = 1.0 - abs(math.log10(p["lr"]) + 2.0) * 0.2 + (0.1 if p["act"] == "gelu" else 0.0)
    value += 0.05 * p.get("width", 0) / 256
    value += 0.01 * (trial.seed % 3) if trial.phase == "final" else 0.0
    trial.report(1, **{f"{trial.heldout}_acc": value})
    return {f"{trial.heldout}_acc": value, "n_params": len(p)}


def family_curve(trial: tl.Trial) -> dict:
    """Family 'weak' is 10 worse than 'strong' at every step; within a family, x orders trials."""
    offset = 0.0 if trial.params["family"] == "strong" else -10.0
    value = 0.0
    for step in range(1, 10):
        value = offset + trial.params["x"] * step / 9
        trial.report(step, score=value)
        if trial.should_stop():
            return {}
    return {"score": value}


def stepper(trial: tl.Trial) -> dict:
    """A one-number "model": each epoch w moves by lr toward 10; the score is -|10 - w|. It
    continues from its checkpoint, so a continued trial starts where its parent stopped."""
    found = trial.load_checkpoint()
    start, w = (found[0], found[1]["w"]) if found else (0, 0.0)
    epochs = trial.budget["epochs"]
    for epoch in range(start + 1, epochs + 1):
        w += trial.params["lr"] * (1 if w < 10 else -1)
        trial.report(epoch, score=-abs(10 - w), w=w)
    if trial.checkpointing:
        trial.save_checkpoint(epochs, {"w": w})
    return {"score": -abs(10 - w), "w": w, "start": start}


def edge_and_nan(trial: tl.Trial) -> dict:
    """Best at the top of x's range (x = 1); every trial with y above 0.7 diverges."""
    x, y = trial.params["x"], trial.params["y"]
    if y > 0.7:
        trial.report(1, score=float("nan"))
        return {}
    for step in range(1, 6):
        trial.report(step, score=x * step / 5 - 0.1 * y, train_loss=1.0 / step)
    return {"score": x - 0.1 * y}


def quadratic_lr(trial: tl.Trial) -> dict:
    """Loss is smallest at lr = 1e-2 (in log scale)."""
    import math

    return {"loss": (math.log10(trial.params["lr"]) + 2) ** 2}


def family_noise(trial: tl.Trial) -> dict:
    """The family makes no difference: the score is seed noise alone."""
    import random as _random

    return {"score": _random.Random(trial.seed).random()}


def lr_cliff(trial: tl.Trial) -> dict:
    """Learns while lr < 0.1; at 0.1 or above the loss blows up. Logs a gradient norm that grows with lr."""
    lr = trial.params["lr"]
    loss = 2.0
    for epoch in range(1, trial.budget["epochs"] + 1):
        loss = loss * (1 - 10 * lr if lr < 0.1 else 3.0)
        for step in range(4):
            trial.log((epoch - 1) * 4 + step, grad_norm=lr * 100 * (1 + step / 4))
        trial.report(epoch, train_loss=loss, val_acc=1.0 / (1.0 + loss) if math.isfinite(loss) else math.nan)
    return {"val_acc": 1.0 / (1.0 + loss)}


def batch_timing(trial: tl.Trial) -> dict:
    """One epoch of 256 examples: a fixed 8 ms per batch plus 0.05 ms per example, slept."""
    b = trial.params["batch_size"]
    n_batches = max(1, math.ceil(256 / b))
    time.sleep(n_batches * (0.008 + 0.00005 * min(b, 256)))
    return {"val_acc": 0.5}


def very_bad_corner(trial: tl.Trial) -> dict:
    """Finite everywhere, but far worse (-100) wherever y is above 0.8."""
    return {"score": -100.0 if trial.params["y"] > 0.8 else trial.params["x"]}


def slow_quadratic(trial: tl.Trial) -> dict:
    """quadratic, 0.05 s per step: long enough for a database to go away mid-run."""
    x = trial.params["x"]
    for step in range(4):
        time.sleep(0.05)
        trial.report(step, loss=(x - 0.5) ** 2 + 1.0 / (step + 1))
    return {"loss": (x - 0.5) ** 2}


def killed_once(trial: tl.Trial) -> float:
    """Trial 1's worker dies on the first attempt only (SIGKILL, as the OOM killer would)."""
    if trial.number == 1 and trial._spec.attempt == 0:
        trial.report(0, loss=9.0)
        time.sleep(0.3)  # the report reaches the driver before the worker dies
        os.kill(os.getpid(), signal.SIGKILL)
    trial.report(0, loss=abs(trial.params.x))
    return abs(trial.params.x)


def where_it_ran(trial: tl.Trial) -> dict:
    """The Ray node and process that ran this trial, as metrics (node ids hashed to numbers)."""
    import ray

    trial.report(0, loss=abs(trial.params.x))
    time.sleep(0.5)  # long enough that trials overlap and spread over the nodes
    node = ray.get_runtime_context().get_node_id()
    return {"loss": abs(trial.params.x), "node": float(int(node[:12], 16)), "pid": float(os.getpid())}


def two_widths(trial: tl.Trial) -> dict:
    """An MLP whose width (8 or 16) splits a population into two buckets; the model function
    captures the trial itself (a copy travels to the Ray worker)."""
    import numpy as np

    from tuneloop.torch import MLP, fit

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 240)
    x = (np.eye(3)[y] * 2 + rng.normal(0, 1.0, (240, 3))).astype(np.float32)
    result = fit(lambda: MLP(3, 3, width=8 if trial.params.x < 0 else 16), (x[:160], y[:160]), (x[160:], y[160:]),
                 trial=trial, lr=0.01, epochs=trial.budget.epochs, batch_size=40, seed=trial.seed, inspect_every=0)
    return {**result.metrics, "pid": float(os.getpid())}


def slow_on_any_node(trial: tl.Trial) -> dict:
    """Runs 5 s, reporting every 0.5 s: the test kills a node once both trials have reported, and
    each trial still has seconds to go."""
    import ray

    for step in range(10):
        time.sleep(0.5)
        trial.report(step, loss=abs(trial.params.x) + 1.0 / (step + 1))
    node = ray.get_runtime_context().get_node_id()
    return {"loss": abs(trial.params.x), "node": float(int(node[:12], 16))}


def exits(trial: tl.Trial) -> float:
    """Calls sys.exit on negative x (a trial function must not take its worker down with it)."""
    import sys

    if trial.params.x < 0:
        sys.exit(3)
    return abs(trial.params.x)


def contract_trial(trial: tl.Trial) -> dict:
    """The executor contract's trial (tests/contracts/test_executors.py): fails for x < -1; for
    x > 1 logs a growing value until an alert rule stops it between reports; else reports a loss
    curve over 3 steps and returns the final loss."""
    x = trial.params.x
    if x < -1.0:
        raise ValueError(f"x is too small: {x}")
    if x > 1.0:
        for step in range(400):
            trial.log(step, blowup=float(step))
            if trial.should_stop():
                return {"loss": float(step)}
            time.sleep(0.005)
        return {"loss": 1e9}
    for step in range(3):
        trial.report(step, loss=(x - 0.5) ** 2 + 1.0 / (step + 1))
    return {"loss": (x - 0.5) ** 2}


def sets_attributes(trial: tl.Trial) -> dict:
    """Records attributes (one set twice) and where it ran, as its worker sees it."""
    trial.set_attr("commit", "abc123")
    trial.set_attr("layers", 2)
    trial.set_attr("layers", 3)
    trial.report(0, loss=trial.params.x)
    return {"loss": trial.params.x}


def pinned(trial: tl.Trial) -> dict:
    """Where it ran, as its worker sees it: CUDA_VISIBLE_DEVICES and pid (0.2 s, long enough for a
    system sample or two)."""
    trial.set_attr("cuda_visible", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_attr("pid", os.getpid())
    time.sleep(0.2)
    return {"loss": trial.params.x}


def busy(trial: tl.Trial) -> dict:
    """Keeps a core busy for x seconds, asking should_stop as a training loop would (an in-process
    executor's system samples reach the driver there)."""
    end = time.monotonic() + trial.params.x
    while time.monotonic() < end:
        sum(range(20_000))
        trial.should_stop()
    trial.report(0, loss=trial.params.x)
    return {"loss": trial.params.x}


def cuda_device(trial: tl.Trial) -> dict:
    """What torch sees in a pinned worker: how many GPUs, and the UUID and name of cuda:0 (it holds
    memory there for a second, so the system sampler sees it)."""
    import torch

    held = torch.zeros(64, 2**20 // 4, device="cuda")  # 64 MB
    trial.set_attr("cuda_visible", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_attr("cuda_count", torch.cuda.device_count())
    trial.set_attr("cuda_current", torch.cuda.current_device())
    trial.set_attr("cuda_uuid", str(torch.cuda.get_device_properties(0).uuid))
    trial.set_attr("cuda_name", torch.cuda.get_device_name(0))
    time.sleep(1.5)
    del held
    return {"loss": trial.params.x}


def accuracy_latency(trial: tl.Trial) -> dict:
    """A deterministic trade-off: a wider model is more accurate and slower; padding only makes it
    worse on both, so trials with padding > 0 are dominated. params_m grows with both (a third objective)."""
    x, y = trial.params.width, trial.params.padding
    val_acc = 0.5 + 0.45 * x - 0.1 * y
    for step in range(2):
        trial.report(step, val_acc=val_acc - 0.1 / (step + 1))
    return {"val_acc": val_acc, "latency_ms": 1.0 + 4.0 * x * x + y, "params_m": 0.1 + x + y * y}


# -- multi-objective problems with known fronts (tests/search/test_multi_objective.py) ---------------
def _zdt(trial: tl.Trial, shape: float) -> dict:
    """ZDT-style: f1 = x0; g = 1 + 9 * mean(x1..); f2 = g * (1 - (f1 / g) ** shape). The front is
    x1.. = 0 (g = 1): f2 = 1 - f1 ** shape; convex for shape 0.5 (ZDT1), concave for 2 (ZDT2)."""
    xs = [float(trial.params[f"x{i}"]) for i in range(len(trial.params))]
    f1 = xs[0]
    g = 1.0 + 9.0 * sum(xs[1:]) / max(len(xs) - 1, 1)
    return {"f1": f1, "f2": g * (1.0 - (f1 / g) ** shape)}


def zdt1(trial: tl.Trial) -> dict:
    return _zdt(trial, 0.5)


def zdt2(trial: tl.Trial) -> dict:
    return _zdt(trial, 2.0)


def bnh(trial: tl.Trial) -> dict:
    """Binh and Korn's constrained problem (x in [0, 5], y in [0, 3]): minimize f1, f2 subject to
    c1 <= 25 and c2 >= 7.7 (the constraints are metrics the trial returns)."""
    x, y = float(trial.params["x"]), float(trial.params["y"])
    return {"f1": 4 * x * x + 4 * y * y, "f2": (x - 5) ** 2 + (y - 5) ** 2, "c1": (x - 5) ** 2 + y * y,
            "c2": (x - 8) ** 2 + (y + 3) ** 2}


def mostly_infeasible(trial: tl.Trial) -> dict:
    """acc grows with x, cost with x too; the constraint cost <= 0.1 keeps only x <= 0.1, and the
    best acc of all (x near 1) is infeasible."""
    x = float(trial.params["x"])
    return {"acc": x + 0.01 * float(trial.params.get("y", 0.0)), "cost": x}


def acc_cost_curve(trial: tl.Trial) -> dict:
    """Reports acc and cost for 6 steps; both rise with x. acc - 2 * cost = x * (step / 6 - 1) - 0.02 * step
    falls with x before the last step: pruning on that sum stops large x, pruning on acc would stop small x."""
    x = float(trial.params["x"])
    acc = cost = 0.0
    for step in range(1, 7):
        acc, cost = x * step / 6, 0.5 * x + 0.01 * step
        trial.report(step, acc=acc, cost=cost)
        if trial.should_stop():
            return {}
    return {"acc": acc, "cost": cost, "pid": float(os.getpid())}


def heldout_tradeoff(trial: tl.Trial) -> dict:
    """For finalize: two objectives that trade off, deterministically: a wider model is more accurate and slower
    (``{heldout}_acc = 0.6 + 0.1 * width``, a little lower per seed, and 0.06 lower on test;
    ``latency_ms = width``). Every width is on the front."""
    width = trial.params["width"]
    acc = 0.6 + 0.1 * width - 0.001 * (trial.seed % 3) - (0.06 if trial.heldout == "test" else 0.0)
    trial.report(0, **{f"{trial.heldout}_acc": acc, "latency_ms": float(width)})
    return {f"{trial.heldout}_acc": acc, "latency_ms": float(width), "params_m": 0.5 * width}


def member_with_latency(trial: tl.Trial) -> dict:
    """:func:`ensemble_member` with a second objective it trades against: ``latency_ms = 3 - k``
    (a worse member is faster), so every k is on the front."""
    return {**ensemble_member(trial), "latency_ms": 3.0 - trial.params["k"]}


def mnist1d_width(trial: tl.Trial) -> dict:
    """A one-hidden-layer MLP on a small MNIST-1D: only its width varies, so accuracy is bought with
    parameters (fit reports params_m beside val_acc)."""
    from tuneloop.datasets import mnist1d
    from tuneloop.torch import MLP, fit

    data = mnist1d(num_samples=2000, seed=3)
    fit_on, heldout = trial.splits(data)
    result = fit(lambda: MLP(data.n_features, data.n_classes, width=trial.params["width"], depth=1), fit_on, heldout,
                 trial=trial, optimizer="adamw", lr=1e-2, batch_size=64, epochs=trial.budget["epochs"], seed=trial.seed,
                 inspect_every=0, predictions=False)
    return result.metrics


LUCKY_QUALITY = {0: 0.70, 1: 0.72, 2: 0.74, 3: 0.60, 4: 0.65, 5: 0.71}


def lucky_seed(trial: tl.Trial) -> dict:
    """A configuration's quality plus a large seed-dependent luck (up to 0.1): one run of a
    configuration says little about it, the mean over seeds more."""
    luck = 0.01 * ((trial.seed * 7919) % 11)
    value = LUCKY_QUALITY[trial.params["k"]] + luck
    trial.report(1, **{f"{trial.heldout}_acc": value})
    return {f"{trial.heldout}_acc": value}


def saturating(trial: tl.Trial) -> dict:
    """A saturating learning curve: its ceiling and speed set by x; reported every step of budget["epochs"]."""
    import math

    x, epochs = trial.params["x"], int(trial.budget.get("epochs", 20))
    ceiling, tau = 0.5 + 0.4 * x, 0.05 + 0.5 * x
    value = 0.0
    for step in range(epochs):
        value = ceiling * (1 - math.exp(-(step + 1) / (epochs * tau)))
        trial.report(step, score=value)
        if trial.should_stop():
            break
    return {"score": value}
