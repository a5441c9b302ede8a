"""Stored probe results, read through the store: what ``tuneloop probe lr|batch|data`` measured.

A probe is a study of its own (``<study>-probe-<param>``, config ``kind: probe``) whose trials are
the best configuration at several learning rates, batch sizes or training-data fractions (the data
probe is read in ``_data_probe.py``). ``probe.py`` runs it; this module
only reads it back, so ``analyze``, the CLI and reports never import the code that runs studies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneloop.analysis._data_probe import DataResult, read_data
from tuneloop.direction import Direction
from tuneloop.store import Store, StudyRecord, TrialState


@dataclass
class ProbeRow:
    factor: float
    lr: float
    state: TrialState
    value: float | None
    unstable: str | None  # why, or None for a stable run


@dataclass
class ProbeResult:
    study: str
    probe_study: str
    param: str
    best_lr: float
    rows: list[ProbeRow]
    unstable_from: float | None  # the smallest factor that was unstable
    clip: float | None
    clipped_share: float | None
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchRow:
    batch_size: int
    seconds: float | None  # one epoch's wall time
    speedup: float | None  # against the previous (half as large) batch size
    value: float | None


@dataclass
class BatchResult:
    study: str
    probe_study: str
    rows: list[BatchRow]
    recommended: int | None
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stored_probes(store: Store, name: str) -> dict[str, ProbeResult | BatchResult | DataResult]:
    """The stored probes of study ``name`` by kind (``"lr"``, ``"batch"``, ``"data"``); the last one of a
    kind wins."""
    found: dict[str, ProbeResult | BatchResult | DataResult] = {}
    for study, cfg in store.study_configs().items():
        if cfg.get("kind") == "probe" and cfg.get("parent") == name:
            found[cfg.get("probe", "lr")] = read_probe(store, store.require_study(study))
    return found


def read_probe(store: Store, probe: StudyRecord) -> ProbeResult | BatchResult | DataResult:
    """The result of a stored probe study (``<study>-probe-<param>``)."""
    cfg = probe.config
    if cfg.get("probe") == "data":
        return read_data(store, probe)
    param, configs = cfg["param"], cfg["configs"]
    if cfg.get("probe") == "batch":
        return _read_batch(store, probe, param, [int(c[param]) for c in configs], cfg["best"], cfg.get("min_gain", 1.1))
    factors = [c[param] / configs[0][param] for c in configs]
    return _read_lr(store, probe, param, factors, configs[0][param], probe.mode)


def _read_batch(store: Store, probe: StudyRecord, param: str, sizes: Sequence[int], best: Any,
                min_gain: float) -> BatchResult:
    trials = sorted(store.trials(probe.id), key=lambda t: t.number)
    rows: list[BatchRow] = []
    recommended = None
    for b, t in zip(sizes, trials, strict=False):
        seconds = t.duration if t.state == TrialState.COMPLETED else None
        before = rows[-1].seconds if rows else None
        speedup = before / seconds if before and seconds else None
        rows.append(BatchRow(int(b), seconds, speedup, t.value))
        chain_unbroken = recommended is None or rows[-2].batch_size == recommended
        if seconds is not None and (speedup is None or speedup >= min_gain) and chain_unbroken:
            recommended = int(b)
    advice = []
    if recommended is not None:
        advice.append(f"use batch size {recommended}: larger ones raised throughput by less than {min_gain - 1:.0%}")
        if recommended != best:
            advice.append(f"changing it from {best} means re-tuning the learning rate (and momentum, "
                          f"weight decay, warmup): they were tuned for that batch size")
    return BatchResult(probe.config["parent"], probe.name, rows, recommended, advice)


def _read_lr(store: Store, probe: StudyRecord, param: str, factors: Sequence[float], best_lr: float,
             mode: Direction) -> ProbeResult:
    trials = sorted(store.trials(probe.id), key=lambda t: t.number)
    curves = store.series([t.id for t in trials])
    rows: list[ProbeRow] = []
    base = None
    norms: list[float] = []  # every probe run's gradient norms
    best_norms: list[float] = []  # the 1x run's
    for f, t in zip(factors, trials, strict=False):
        c = curves.get(t.id, {})
        train = [v for _, v in c.get("train_loss", [])]
        reason = None
        if t.state in (TrialState.DIVERGED, TrialState.FAILED) or (t.value is not None and not math.isfinite(t.value)):
            reason = str(t.state)
        elif len(train) >= 2 and train[-1] > train[0]:
            reason = "training loss rose"
        elif base is not None and t.value is not None and base.value is not None:
            drop = (t.value - base.value) * mode.sign  # how much worse than the 1x run
            if drop > 0.1 * max(abs(base.value), 1e-12):
                reason = f"objective {t.value:.4g} against {base.value:.4g} at 1x"
        if base is None:
            base = t
            best_norms = [v for _, v in c.get("grad_norm", []) if math.isfinite(v)]
        norms.extend(v for _, v in c.get("grad_norm", []) if math.isfinite(v))
        rows.append(ProbeRow(f, best_lr * f, t.state, t.value, reason))
    unstable = [r.factor for r in rows if r.unstable]
    first = min(unstable) if unstable else None
    clip, share, advice = _clip_advice(best_norms, norms, param)
    if first is None:
        advice.append(f"no instability up to {max(factors):g}x: the learning-rate range can reach higher")
    elif first <= 4:
        advice.append(f"training becomes unstable from {first:g}x the best {param} ({best_lr * first:.3g}): add warmup "
                      f"(about 5% of the steps) so the best rate is reached safely")
    else:
        advice.append(f"training stays stable up to {first / 2:g}x the best {param}: there is headroom, warmup is optional")
    if share is not None and share > 0.5:
        advice.append("warning: that threshold would clip more than half of the updates; raise it")
    return ProbeResult(probe.config["parent"], probe.name, param, best_lr, rows, first, clip, share, advice)


def _clip_advice(best_norms: list[float], norms: list[float], param: str) -> tuple[float | None, float | None, list[str]]:
    """A clipping threshold (the 90th percentile of the 1x run's gradient norms), the share of all
    probe updates it would clip, and the advice saying so (nothing when no norms were logged)."""
    if not best_norms:
        return None, None, []
    ordered = sorted(best_norms)
    clip = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    share = sum(v > clip for v in norms) / len(norms)
    advice = (f"clip gradients at about {clip:.3g} (the 90th percentile of the norms at the best {param}); "
              f"it would clip {share:.0%} of the probe's updates")
    return clip, share, [advice]
