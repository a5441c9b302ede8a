"""``tuneloop probe lr|batch|data FILE``: runs of the best configuration that measure where
training breaks (learning rate), where throughput stops growing (batch size) and what more
training data would buy (data).

``probe lr``: where does training become unstable above the best learning rate?

The best configuration of the study runs a few short trials at 1, 2, 4, 8 and 16 times its
learning rate (a study of their own, ``<study>-probe-lr``). A run is unstable when it diverges,
when its training loss ends above where it started, or when its objective falls far below the
1x run's. From it: where instability starts, whether warmup is worth it (instability within 4x
of the best rate), and a gradient-clipping threshold (the 90th percentile of the gradient norms
the stable runs logged), with a warning when it would clip more than half of the updates.

``probe data``: what would more training data buy, and of which slice?

The best configuration retrains on nested, stratified subsets of the training split (10% to 100%
by default), over a few data seeds, and is evaluated on the validation split, overall and per
slice; a power law per slice forecasts the error at 2x and 10x the data (read back in
``analysis/_data_probe.py``). Each run's fraction rides in its budget (``trial.fraction``,
``trial.data_seed``), which ``fit`` applies before training.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneloop._subset import check_fraction
from tuneloop._validation import check_positive_int
from tuneloop.analysis._data_probe import DataResult
from tuneloop.analysis._probes import BatchResult, BatchRow, ProbeResult, ProbeRow, read_probe  # noqa: F401
from tuneloop.errors import ConfigError
from tuneloop.run import check_retries, launch
from tuneloop.search import Lineage, Listed, Outcome, Proposal
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
               budget: dict[str, Any], what: dict[str, Any], how: dict[str, Any],
               searcher: Listed | None = None) -> Any:
    """Run ``configs`` once each as the trials of study ``name`` (stored; a rerun reads them);
    ``how`` holds the executor, workers, members and max_retries; ``searcher`` proposes them
    (default: ``Listed(configs)``)."""
    probe = store.get_study(name)
    if probe is not None:
        changed = [option for k, option in (("plan", "--fractions or --seeds"), ("same_steps", "--same-epochs"),
                                            ("epochs", f"--epochs (it ran {probe.config.get('epochs')!r})"))
                   if probe.config.get(k) != json.loads(json.dumps(what.get(k)))]
        if probe.config.get("configs") != json.loads(json.dumps(configs)) or changed:
            differ = f" ({', '.join(changed)} differ)" if changed else ""
            raise ConfigError(f"{name!r} holds a probe of another configuration{differ}; delete it or probe under a new "
                              f"study.")
    if probe is None:
        probe = store.create_study(name, record.metric, record.mode, record.space,
                                   {"kind": "probe", "parent": study.name, "configs": configs, "budget": budget,
                                    "seed": random.randrange(2**31), **what})
    launch(store, probe, study.fn, searcher=searcher or Listed(configs), seed=int(probe.config["seed"]),
           n_trials=len(configs),
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


FRACTIONS = (0.1, 0.2, 0.4, 0.7, 1.0)


def probe_data(study: Study, *, fractions: Sequence[float] = FRACTIONS, seeds: int = 3, epochs: int | None = None,
               same_steps: bool = True, workers: int = 1, executor: Any = None, members: int | None = None,
               max_retries: int = 1, storage: str | None = None) -> DataResult:
    """Retrain the best configuration on each fraction of the training split with ``seeds`` data
    seeds (nested, stratified subsets: ``trial.fraction``), fit a power law per slice and forecast
    2x and 10x the data. ``same_steps``: a fraction ``f`` trains ``epochs / f`` epochs (at most
    10x), so every subset gets about the optimizer steps of the whole split; ``epochs``: the whole
    split's epochs (default: the study's budget). The rest works as in :meth:`Study.run`."""
    check_retries(max_retries, "probe_data")
    check_positive_int(seeds, "seeds", "probe_data")
    steps = sorted({check_fraction(f, "probe_data") for f in fractions})
    if len(steps) < 2:
        raise ConfigError(f"probe_data needs at least two different fractions to fit a curve. Got {list(fractions)!r} "
                          f"instead; e.g. fractions=(0.1, 0.2, 0.4, 0.7, 1.0).")
    store = study.store(storage)
    record = store.require_study(study.name)
    best = best_trial(store.trials(record.id), record.objectives, record.name)
    budget = dict(record.config.get("budget") or study.budget.to_dict())
    if epochs is not None:
        check_positive_int(epochs, "epochs", "probe_data")
        budget["epochs"] = epochs
    budget["fraction"] = 1.0  # a probe run, whatever its fraction: fit records what it trained on
    plan = [(f, s) for f in steps for s in range(seeds)]
    per_trial = [{"fraction": f, "data_seed": s, **_scaled_epochs(budget, f, same_steps)} for f, s in plan]
    configs = [dict(best.params) for _ in plan]
    probe = _run_probe(study, store, record, f"{study.name}-probe-data", configs, budget,
                       {"probe": "data", "param": "fraction", "best": 1.0, "fractions": steps, "seeds": seeds,
                        "same_steps": same_steps, "epochs": budget.get("epochs"), "plan": [list(p) for p in plan]},
                       {"workers": workers, "executor": executor, "members": members, "max_retries": max_retries},
                       searcher=_Budgeted(configs, per_trial))
    result = read_probe(store, probe)
    assert isinstance(result, DataResult)
    return result


def _scaled_epochs(budget: dict[str, Any], fraction: float, same_steps: bool) -> dict[str, Any]:
    if not same_steps or "epochs" not in budget:
        return {}
    return {"epochs": max(1, round(int(budget["epochs"]) / max(fraction, 0.1)))}


class _Budgeted(Listed):
    """``Listed`` whose i-th configuration is trial i and runs with the i-th budget (a fraction and
    its data seed). A replayed trial strikes its own number off, whatever its configuration (they
    are all the best one). Each proposal carries a lineage (member i), the way SHA and PBT place
    their trials: the driver stores its budget with the trial, so a trial rerun after Ctrl-C or a
    dead driver trains on its own fraction again, not the base budget's."""

    def __init__(self, configs: Sequence[dict[str, Any]], budgets: Sequence[dict[str, Any]]) -> None:
        super().__init__(configs)
        self._left = dict(enumerate(zip(configs, budgets, strict=True)))

    def ask(self, n: int = 1) -> list[Proposal]:
        numbers = sorted(self._left)[:n]
        return [Proposal(dict(self._left[i][0]), token="listed", budget=dict(self._left.pop(i)[1]),
                         lineage=Lineage(i, 0, "probe")) for i in numbers]

    def tell(self, outcome: Outcome) -> None:
        if outcome.token is None and outcome.number is not None:
            self._left.pop(outcome.number, None)
