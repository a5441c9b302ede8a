"""Cost metrics: what a model costs to train and to run, measured for the trainer so a study can
minimize them (``objectives={"val_acc": "max", "latency_ms": "min"}``) or bound them (constraints).

- ``params_m``: trainable parameters, in millions (shared parameters counted once);
- ``train_time_s``: seconds spent training so far (the epochs' training steps; evaluation and these
  measurements excluded), cumulative over the run;
- ``epoch_time_s``: seconds the last epoch's training took, measured the same way;
- ``latency_ms``: inference time per example, in milliseconds: a held-out batch of up to
  :data:`LATENCY_BATCH` examples, in eval mode under ``torch.no_grad``, after :data:`WARMUP`
  untimed passes, the median of several timed passes divided by the batch size.

Latency depends on the architecture and the device, not on the weights, so trainers measure it once
and repeat the value in every report.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

COST_METRICS = ("params_m", "train_time_s", "epoch_time_s", "latency_ms")
LATENCY_BATCH = 256  # examples: a batch as a server would run it, and a bounded cost for the measurement
WARMUP = 3  # untimed passes first: allocator, kernel selection and caches settle
RUNS = (5, 10)  # timed passes: at least the first, at most the second...
BUDGET_S = 0.1  # ...stopping after this many seconds of timed passes once the minimum is reached


def params_m(model: nn.Module) -> float:
    """Trainable parameters of ``model``, in millions."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6


def time_passes(run: Callable[[], Any], device: torch.device | None = None) -> float:
    """Median seconds of one call of ``run``: :data:`WARMUP` untimed calls, then between ``RUNS[0]``
    and ``RUNS[1]`` timed ones (fewer when they take long). On CUDA the device is synchronized
    around each call, so the time is the kernels', not the launch's."""
    cuda = device is not None and device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(WARMUP):
        run()
    sync()
    times: list[float] = []
    spent = 0.0
    while len(times) < RUNS[1] and (len(times) < RUNS[0] or spent < BUDGET_S):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


def latency_ms(model: nn.Module, x: Any, forward: Callable[[nn.Module, Any], Any] | None = None) -> float:
    """Milliseconds per example of ``model`` on the inputs ``x`` (a tensor, or a mapping or tuple of
    tensors sharing the batch dimension), cut to :data:`LATENCY_BATCH` examples: eval mode, no
    gradients, warm, the median of several passes. ``forward(model, x)`` calls the model (default:
    ``model(x)``). The model's train/eval mode is restored."""
    x = _cut(x, LATENCY_BATCH)
    n = _batch_size(x)
    device = _device(x) or _device(model)
    call = forward or (lambda m, inputs: m(inputs))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            seconds = time_passes(lambda: call(model, x), device)
    finally:
        model.train(was_training)
    return 1000.0 * seconds / max(n, 1)


def first_inputs(batch: Any) -> torch.Tensor | None:
    """The model inputs of a batch shaped ``(x, y)`` (tuple or list) or ``x`` (a tensor), detached
    and copied (the loader may reuse its buffers); None for any other shape."""
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, torch.Tensor) or x.dim() == 0:
        return None
    return x[:LATENCY_BATCH].detach().clone()


class TrainClock:
    """Training time: the sum of the spans between :meth:`start` and :meth:`stop`, with the last
    span (an epoch) kept. ``before``: seconds already trained (a run continued from a checkpoint)."""

    def __init__(self, before: float = 0.0) -> None:
        self.total = float(before)
        self.last: float | None = None
        self._since: float | None = None

    def start(self) -> None:
        self._since = time.perf_counter()

    def stop(self, device: torch.device | None = None, excluded: float = 0.0) -> float:
        """End the span (waiting for the device's queued work first), less ``excluded`` seconds spent
        in it on something else (a validation inside the epoch); its seconds."""
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        if self._since is None:
            return 0.0
        self.last = max(time.perf_counter() - self._since - excluded, 0.0)
        self.total += self.last
        self._since = None
        return self.last

    def metrics(self) -> dict[str, float]:
        """``train_time_s`` and ``epoch_time_s`` (once a span ended)."""
        out = {"train_time_s": self.total}
        if self.last is not None:
            out["epoch_time_s"] = self.last
        return out


def seconds(value: Any) -> float:
    """A stored training time if it is a sane number (a checkpoint is untrusted data), else 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else 0.0


def _cut(x: Any, n: int) -> Any:
    if isinstance(x, torch.Tensor):
        return x[:n] if x.dim() > 0 else x
    if isinstance(x, Mapping):
        return {k: _cut(v, n) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_cut(v, n) for v in x)
    return x


def _batch_size(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.dim() > 0 else 1
    parts = list(x.values()) if isinstance(x, Mapping) else list(x) if isinstance(x, (tuple, list)) else []
    sizes = [_batch_size(v) for v in parts if isinstance(v, (torch.Tensor, Mapping, tuple, list))]
    return max(sizes, default=1)


def _device(x: Any) -> torch.device | None:
    if isinstance(x, torch.Tensor):
        return x.device
    if isinstance(x, nn.Module):
        return next((p.device for p in x.parameters()), None)
    parts = list(x.values()) if isinstance(x, Mapping) else list(x) if isinstance(x, (tuple, list)) else []
    return next((d for d in map(_device, parts) if d is not None), None)
