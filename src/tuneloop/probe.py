"""``tuneloop probe lr|batch FILE``: short runs of the best configuration that measure where
training breaks (learning rate) and where throughput stops growing (batch size).

``probe lr``: where does training become unstable above the best learning rate?

The best configuration of the study runs a few short trials at 1, 2, 4, 8 and 16 times its
learning rate (a study of their own, ``<study>-probe-lr``). A run is unstable when it diverges,
when its training loss ends above where it started, or when its objective falls far below the
1x run's. From it: where instability starts, whether warmup is worth it (instability within 4x
of the best rate), and a gradient-clipping threshold (the 90th percentile of the gradient norms
the stable runs logged), with a warning when it would clip more than half of the updates.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError
from tuneloop.run import Driver, executors
from tuneloop.schedule import schedulers
from tuneloop.search import Listed
from tuneloop.study import best_trial

if TYPE_CHECKING:
    from tuneloop.study import Study

FACTORS = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class ProbeRow:
    factor: float
    lr: float
    state: str
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


def probe_lr(study: Study, *, param: str = "lr", factors: Sequence[float] = FACTORS, epochs: int | None = None,
             workers: int = 1, storage: str | None = None) -> ProbeResult:
    """Run the best configuration at ``factors`` times its ``param`` for ``epochs`` each."""
    store, record, best, budget = _best(study, storage, param)
    if epochs is not None:
        budget["epochs"] = epochs
    elif "epochs" in budget:
        budget["epochs"] = max(1, min(int(budget["epochs"]), 5))
    configs = [{**best.params, param: best.params[param] * f} for f in factors]
    probe = _run_probe(study, store, record, f"{study.name}-probe-{param}", configs, budget, workers,
                       {"probe": "lr", "param": param, "best": best.params[param]})
    return read_probe(store, probe)


def _best(study: Study, storage: str | None, param: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(store, study record, best trial, budget) of a study that has run, its best using ``param``."""
    store = study._store(storage)
    record = store.require_study(study.name)
    best = best_trial(store.trials(record.id), record.mode, record.name)
    if param not in best.params:
        raise ConfigError(f"The best trial of {study.name!r} has no parameter {param!r}: the trial function must read "
                          f"it from trial.params; pass --param NAME (its parameters: {', '.join(best.params)}).")
    return store, record, best, dict(record.config.get("budget") or study.budget.to_dict())


def _run_probe(study: Study, store: Any, record: Any, name: str, configs: list[dict[str, Any]],
               budget: dict[str, Any], workers: int, what: dict[str, Any]) -> Any:
    """Run ``configs`` once each as the trials of study ``name`` (stored; a rerun reads them)."""
    probe = store.get_study(name)
    if probe is not None and probe.config.get("configs") != json.loads(json.dumps(configs)):
        raise ConfigError(f"{name!r} holds a probe of another configuration; delete it or probe under a new study.")
    if probe is None:
        probe = store.create_study(name, record.metric, record.mode, record.space,
                                   {"kind": "probe", "parent": study.name, "configs": configs, "budget": budget,
                                    "seed": random.randrange(2**31), **what})
    Driver(store=store, study=probe, fn=study.fn, searcher=Listed(configs), scheduler=schedulers.create("none"),
           executor=executors.create("processes" if workers > 1 else "inline", workers=workers),
           n_trials=len(configs), seed=int(probe.config["seed"]), budget=budget,
           experiment_path=study.experiment_path, rules=study.rules).run()
    return probe


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


BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def probe_batch(study: Study, *, param: str = "batch_size", sizes: Sequence[int] = BATCH_SIZES, epochs: int = 1,
                min_gain: float = 1.1, storage: str | None = None) -> BatchResult:
    """Time ``epochs`` epochs of the best configuration at each batch size (one at a time, so the
    timings do not compete); recommend the largest size that still raised throughput by ``min_gain``."""
    store, record, best, budget = _best(study, storage, param)
    budget["epochs"] = epochs
    configs = [{**best.params, param: int(b)} for b in sizes]
    probe = _run_probe(study, store, record, f"{study.name}-probe-{param}", configs, budget, workers=1,
                       what={"probe": "batch", "param": param, "best": best.params[param], "min_gain": min_gain})
    return read_probe(store, probe)


def read_probe(store: Any, probe: Any) -> ProbeResult | BatchResult:
    """The result of a stored probe study (``<study>-probe-<param>``)."""
    cfg = probe.config
    param, configs = cfg["param"], cfg["configs"]
    if cfg.get("probe") == "batch":
        return _read_batch(store, probe, param, [int(c[param]) for c in configs], cfg["best"], cfg.get("min_gain", 1.1))
    factors = [c[param] / configs[0][param] for c in configs]
    return _read(store, probe, param, factors, configs[0][param], probe.mode)


def _read_batch(store: Any, probe: Any, param: str, sizes: Sequence[int], best: Any, min_gain: float) -> BatchResult:
    trials = sorted(store.trials(probe.id), key=lambda t: t.number)
    rows: list[BatchRow] = []
    recommended = None
    for b, t in zip(sizes, trials, strict=False):
        seconds = t.duration if t.state == "completed" else None
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


def _read(store: Any, probe: Any, param: str, factors: Sequence[float], best_lr: float, mode: str) -> ProbeResult:
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
        if t.state in ("diverged", "failed") or (t.value is not None and not math.isfinite(t.value)):
            reason = t.state
        elif len(train) >= 2 and train[-1] > train[0]:
            reason = "training loss rose"
        elif base is not None and t.value is not None and base.value is not None:
            drop = (base.value - t.value) if mode == "max" else (t.value - base.value)
            if drop > 0.1 * max(abs(base.value), 1e-12):
                reason = f"objective {t.value:.4g} against {base.value:.4g} at 1x"
        if base is None:
            base = t
            best_norms = [v for _, v in c.get("grad_norm", []) if math.isfinite(v)]
        norms.extend(v for _, v in c.get("grad_norm", []) if math.isfinite(v))
        rows.append(ProbeRow(f, best_lr * f, t.state, t.value, reason))
    unstable = [r.factor for r in rows if r.unstable]
    first = min(unstable) if unstable else None
    clip = share = None
    advice = []
    if best_norms:
        ordered = sorted(best_norms)
        clip = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        share = sum(v > clip for v in norms) / len(norms)
        advice.append(f"clip gradients at about {clip:.3g} (the 90th percentile of the norms at the best {param}); "
                      f"it would clip {share:.0%} of the probe's updates")
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
