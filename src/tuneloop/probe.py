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
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneloop.analysis._probes import BatchResult, BatchRow, ProbeResult, ProbeRow, read_probe  # noqa: F401
from tuneloop.errors import ConfigError
from tuneloop.run import check_retries, launch
from tuneloop.search import Listed
from tuneloop.study import best_trial

if TYPE_CHECKING:
    from tuneloop.study import Study

FACTORS = (1.0, 2.0, 4.0, 8.0, 16.0)


def probe_lr(study: Study, *, param: str = "lr", factors: Sequence[float] = FACTORS, epochs: int | None = None,
             workers: int = 1, executor: Any = None, members: int | None = None, max_retries: int = 1,
             storage: str | None = None) -> ProbeResult:
    """Run the best configuration at ``factors`` times its ``param`` for ``epochs`` each
    (``workers``, ``executor``, ``members`` and ``max_retries`` work as in :meth:`Study.run`)."""
    check_retries(max_retries, "probe_lr")
    store, record, best, budget = _best(study, storage, param)
    if epochs is not None:
        budget["epochs"] = epochs
    elif "epochs" in budget:
        budget["epochs"] = max(1, min(int(budget["epochs"]), 5))
    configs = [{**best.params, param: best.params[param] * f} for f in factors]
    probe = _run_probe(study, store, record, f"{study.name}-probe-{param}", configs, budget,
                       {"probe": "lr", "param": param, "best": best.params[param]},
                       {"workers": workers, "executor": executor, "members": members, "max_retries": max_retries})
    result = read_probe(store, probe)
    assert isinstance(result, ProbeResult)
    return result


def _best(study: Study, storage: str | None, param: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(store, study record, best trial, budget) of a study that has run, its best using ``param``."""
    store = study.store(storage)
    record = store.require_study(study.name)
    best = best_trial(store.trials(record.id), record.objectives, record.name)
    if param not in best.params:
        raise ConfigError(f"The best trial of {study.name!r} has no parameter {param!r}: the trial function must read "
                          f"it from trial.params; pass --param NAME (its parameters: {', '.join(best.params)}).")
    return store, record, best, dict(record.config.get("budget") or study.budget.to_dict())


def _run_probe(study: Study, store: Any, record: Any, name: str, configs: list[dict[str, Any]],
               budget: dict[str, Any], what: dict[str, Any], how: dict[str, Any]) -> Any:
    """Run ``configs`` once each as the trials of study ``name`` (stored; a rerun reads them);
    ``how`` holds the executor, workers, members and max_retries."""
    probe = store.get_study(name)
    if probe is not None and probe.config.get("configs") != json.loads(json.dumps(configs)):
        raise ConfigError(f"{name!r} holds a probe of another configuration; delete it or probe under a new study.")
    if probe is None:
        probe = store.create_study(name, record.metric, record.mode, record.space,
                                   {"kind": "probe", "parent": study.name, "configs": configs, "budget": budget,
                                    "seed": random.randrange(2**31), **what})
    launch(store, probe, study.fn, searcher=Listed(configs), seed=int(probe.config["seed"]), n_trials=len(configs),
           budget=budget, experiment_path=study.experiment_path, rules=study.rules, **how)
    return probe


BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def probe_batch(study: Study, *, param: str = "batch_size", sizes: Sequence[int] = BATCH_SIZES, epochs: int = 1,
                min_gain: float = 1.1, executor: Any = None, max_retries: int = 1,
                storage: str | None = None) -> BatchResult:
    """Time ``epochs`` epochs of the best configuration at each batch size (one at a time, so the
    timings do not compete: an ``executor`` that runs several at once skews them); recommend the
    largest size that still raised throughput by ``min_gain``."""
    check_retries(max_retries, "probe_batch")
    store, record, best, budget = _best(study, storage, param)
    budget["epochs"] = epochs
    configs = [{**best.params, param: int(b)} for b in sizes]
    probe = _run_probe(study, store, record, f"{study.name}-probe-{param}", configs, budget,
                       {"probe": "batch", "param": param, "best": best.params[param], "min_gain": min_gain},
                       {"workers": 1, "executor": executor, "max_retries": max_retries})
    result = read_probe(store, probe)
    assert isinstance(result, BatchResult)
    return result
