"""Checks that train a little: loss at initialization, input dependence, overfitting a batch, stages."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tuneloop.checks._layers import crash
from tuneloop.checks._result import FAIL, PASS, SKIP, CheckResult


@dataclass
class Stage:
    """One rung of the ladder: ``fit`` options (a model builder, ``fraction`` of the training
    data, epochs, regularization...) and a pass criterion: ``at_least``/``at_most`` on
    ``metric`` (default: the selection metric), or ``beats_previous``."""

    name: str
    model: Callable[[], nn.Module] | None = None
    fraction: float = 1.0
    at_least: float | None = None
    at_most: float | None = None
    beats_previous: bool = False
    metric: str | None = None
    fit: dict[str, Any] = field(default_factory=dict)


def init_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classify: bool) -> CheckResult:
    """Cross-entropy near ln C (and no class favoured), or MSE near the targets' variance."""
    name = "loss at initialization"
    try:
        with torch.no_grad():
            out = model(x).float().detach()
    except Exception as exc:  # noqa: BLE001
        return crash(name, exc)
    if classify:
        c = out.shape[-1]
        loss = float(nn.functional.cross_entropy(out, y))
        expected = math.log(c)
        mean_probs = torch.softmax(out, -1).mean(0)
        top = float(mean_probs.max())
        evidence = {"loss": loss, "expected": expected, "ratio": loss / expected, "max_mean_probability": top,
                    "uniform_probability": 1 / c}
        if not 0.67 <= loss / expected <= 1.5 or top > 2.5 / c:
            return CheckResult(name, FAIL, f"cross-entropy at init is {loss:.3g}, expected about ln {c} = {expected:.3g}"
                               + (f"; one class already gets {top:.0%} of the probability" if top > 2.5 / c else ""),
                               evidence, ["the output layer's weights or bias are initialized too large",
                                          "a softmax applied before a loss that expects logits",
                                          "labels not in 0..C-1"],
                               "scale the last layer's initial weights down (e.g. x0.01) and zero its bias")
        return CheckResult(name, PASS, f"cross-entropy at init {loss:.3g} is near ln {c} = {expected:.3g}", evidence)
    target = y.float().reshape(out.shape)
    loss = float(nn.functional.mse_loss(out, target))
    expected = float(target.var()) + float(target.mean()) ** 2  # a zero predictor's MSE
    evidence = {"loss": loss, "expected": expected, "ratio": loss / max(expected, 1e-12)}
    if not loss <= 2.0 * expected:
        return CheckResult(name, FAIL, f"MSE at init is {loss:.3g}, far above {expected:.3g} (what predicting 0 gives)",
                           evidence, ["outputs initialized too large", "targets not standardized"],
                           "standardize the targets and scale the last layer's initial weights down")
    return CheckResult(name, PASS, f"MSE at init {loss:.3g} is near {expected:.3g}", evidence)


def input_dependence(model_fn: Callable[[], nn.Module], train: tuple[Any, Any], val: tuple[Any, Any],
                     fit_options: dict[str, Any], classify: bool, seed: int) -> CheckResult:
    """The output depends on the input, and a short training on real inputs beats one on zeros."""
    from tuneloop.torch import fit

    name = "input-independent baseline"
    x = torch.as_tensor(np.asarray(train[0][:64]), dtype=torch.float32).requires_grad_(True)
    try:
        torch.manual_seed(seed)
        net = model_fn().eval()
        net(x).float().sum().backward()
    except Exception as exc:  # noqa: BLE001
        return crash(name, exc)
    if x.grad is None or not x.grad.any():
        return CheckResult(name, FAIL, "the model's output does not depend on its input at all (zero input gradient)",
                           {"input_grad_norm": 0.0},
                           ["forward ignores x (returns a parameter or a constant)", "the input is detached or overwritten"],
                           "trace forward from x to the output")
    options = {"inspect_every": 0, "log_every": 0, "seed": seed, **fit_options, "epochs": 3}  # short on purpose
    select = "val_acc" if classify else "val_loss"
    try:
        real = fit(model_fn, train, val, **options)
        zeros = fit(model_fn, (np.zeros_like(np.asarray(train[0])), train[1]), (np.zeros_like(np.asarray(val[0])), val[1]),
                    **options)
    except Exception as exc:  # noqa: BLE001
        return crash(name, exc)
    r, z = real.metrics[select], zeros.metrics[select]
    first = real.history[0]["train_loss"]
    learned = len(real.history) > 1 and real.history[-1]["train_loss"] < 0.95 * first
    evidence = {f"{select}_real": r, f"{select}_zeroed": z, "epochs": options["epochs"]}
    better = (r - z >= 0.05) if classify else (r <= 0.9 * z)
    if better:
        return CheckResult(name, PASS, f"{select} with real inputs {r:.3g} against {z:.3g} with inputs zeroed", evidence)
    if not learned:
        return CheckResult(name, SKIP, f"inconclusive: neither run learned in {options['epochs']} epochs "
                           f"({select} {r:.3g} real, {z:.3g} zeroed); the overfit check will say why", evidence)
    return CheckResult(name, FAIL, f"{select} with real inputs {r:.3g} is no better than with inputs zeroed ({z:.3g})",
                       evidence, ["the model uses its input too weakly (a bottleneck, a huge dropout)",
                                  "the labels are not aligned with the inputs (a shuffled array)"],
                       "check that x[i] and y[i] belong together, then simplify the model")


def overfit_batch(model_fn: Callable[[], nn.Module], train: tuple[Any, Any], fit_options: dict[str, Any],
                  classify: bool, seed: int, size: int = 32, steps: int = 300) -> CheckResult:
    """On one fixed batch, the training loss falls to near zero within ``steps``."""
    from tuneloop.torch import fit

    name = "overfit a tiny batch"
    batch = (np.asarray(train[0])[:size], np.asarray(train[1])[:size])
    options = {"inspect_every": 0, "log_every": 0, "seed": seed, "optimizer": "adam", "lr": 1e-3,
               **{k: v for k, v in fit_options.items() if k in ("optimizer", "lr", "momentum", "loss")},
               "batch_size": size, "steps": steps, "weight_decay": 0.0}
    try:
        result = fit(model_fn, batch, batch, **options)
    except Exception as exc:  # noqa: BLE001
        return crash(name, exc)
    losses = [h["train_loss"] for h in result.history]
    start, end = losses[0], losses[-1]
    evidence = {"steps": steps, "batch": size, "loss_first": start, "loss_last": end, "lr": options["lr"]}
    if math.isfinite(end) and end <= max(0.05, 0.02 * start):
        return CheckResult(name, PASS, f"training loss on {size} examples fell from {start:.3g} to {end:.3g} "
                           f"in {steps} steps", evidence)
    if not math.isfinite(end) or end > start:
        return CheckResult(name, FAIL, f"loss exploding: from {start:.3g} to {end:.3g}", evidence,
                           ["the learning rate is too high", "a missing normalization"],
                           "lower the learning rate 10x, add gradient clipping")
    if end > 0.9 * start:
        return CheckResult(name, FAIL, f"loss flat: from {start:.3g} to {end:.3g} in {steps} steps", evidence,
                           ["the learning rate is far too low", "parameters frozen or not passed to the optimizer",
                            "a detached graph (the loss does not reach the weights)"],
                           "raise the learning rate 10x; check that optimizer gets model.parameters()")
    return CheckResult(name, FAIL, f"loss falls too slowly: from {start:.3g} to {end:.3g} in {steps} steps", evidence,
                       ["too little capacity", "a learning rate somewhat too low"],
                       "raise the learning rate or the width; a working model memorizes 32 examples")


def stage_ladder(stages: list[Stage], default_model: Callable[[], nn.Module], train: tuple[Any, Any],
                 val: tuple[Any, Any], fit_options: dict[str, Any], classify: bool, seed: int) -> list[CheckResult]:
    """Each stage in order; the first whose criterion fails ends the ladder."""
    from tuneloop.torch import fit

    results: list[CheckResult] = []
    previous: float | None = None
    for stage in stages:
        name = f"stage: {stage.name}"
        metric = stage.metric or ("val_acc" if classify else "val_loss")
        n = max(1, int(round(len(train[1]) * stage.fraction)))  # noqa: RUF046 - numpy < 2 rounds to a float
        options = {"inspect_every": 0, "log_every": 0, "seed": seed, **fit_options, **stage.fit}
        try:
            result = fit(stage.model or default_model, (np.asarray(train[0])[:n], np.asarray(train[1])[:n]), val, **options)
        except Exception as exc:  # noqa: BLE001
            results.append(crash(name, exc))
            return results
        value = result.metrics.get(metric, math.nan)
        higher = metric.endswith("acc") or "acc" in metric
        fails = []
        if stage.at_least is not None and not value >= stage.at_least:
            fails.append(f"below {stage.at_least}")
        if stage.at_most is not None and not value <= stage.at_most:
            fails.append(f"above {stage.at_most}")
        if stage.beats_previous and previous is not None and not (value > previous if higher else value < previous):
            fails.append(f"no better than the previous stage ({previous:.4g})")
        evidence = {"metric": metric, "value": value, "examples": n, "previous": previous, **{
            k: v for k, v in stage.fit.items() if isinstance(v, (int, float, str))}}
        if fails:
            results.append(CheckResult(name, FAIL, f"{metric} = {value:.4g}: {'; '.join(fails)}", evidence,
                                       ["the simplification this stage undoes was hiding a problem",
                                        "this stage needs more epochs or its own learning rate"],
                                       "compare this stage's curves with the previous stage's"))
            return results
        results.append(CheckResult(name, PASS, f"{metric} = {value:.4g} on {n} examples", evidence))
        previous = value
    return results
