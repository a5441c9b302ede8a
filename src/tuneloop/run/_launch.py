"""``launch``: the one place a driver is wired. ``Study.run``, finalize and the probes all run
their trials through it, so each gets the same executors (inline, processes, population, Ray),
retries, schedulers, planners and progress bar.

    summary = launch(store, record, train, searcher=Listed(configs), executor="processes", workers=4,
                     seed=int(record.config["seed"]), budget={"epochs": 5}, n_trials=len(configs))

The caller opens the store and the stored study and builds the searcher (it knows the space's
roles, or the list of configurations to run); names of schedulers and executors, dicts with a
name and options, and instances are all accepted here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tuneloop._validation import check_positive_int, fail
from tuneloop.alerts import Rule
from tuneloop.callbacks import Callback
from tuneloop.errors import ConfigError
from tuneloop.run._executor import executors
from tuneloop.run.driver import Driver, RunSummary
from tuneloop.schedule import schedulers
from tuneloop.search import Searcher
from tuneloop.store import StoreProtocol, StudyRecord


def executor_spec(executor: Any, workers: int, members: int | None = None, owner: str = "Study.run") -> Any:
    """The executor to build: ``executor`` when given, else worker processes for several workers and
    inline for one; ``members`` sizes the population executor (and needs it)."""
    executor = executor or ("processes" if workers > 1 else "inline")
    if members is not None:
        if executor != "population":
            raise ConfigError("members= is the population executor's option; pass executor='population' "
                              "(tuneloop run: --executor population --members M).")
        executor = {"name": "population", "members": check_positive_int(members, "members", owner)}
    return executor


def check_retries(value: Any, owner: str = "Study.run") -> int:
    """``max_retries`` as given, when it is a whole number of 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail("max_retries", owner, "a whole number of 0 or more", value)
    return value


def launch(
    store: StoreProtocol,
    study: StudyRecord,
    fn: Callable[..., Any],
    *,
    searcher: Searcher,
    seed: int,
    scheduler: Any = "none",
    executor: Any = None,
    workers: int = 1,
    members: int | None = None,
    max_retries: int = 1,
    n_trials: int | None = None,
    budget: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
    experiment_path: str | None = None,
    rules: Sequence[Rule] = (),
    phase: str = "tune",
    fit_on: str = "train",
    budget_of: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    progress: bool = False,
) -> RunSummary:
    """Run ``fn`` as trials of the stored ``study`` until it holds ``n_trials`` finished ones (or
    ``timeout`` s pass, or the searcher runs out). A planner scheduler (sha, pbt) turns ``searcher``
    into its plan; ``phase``/``fit_on``/``budget_of`` are finalize's (test once, refit, per-config
    epochs); ``progress`` shows a bar on the terminal."""
    budget, max_retries = dict(budget or {}), check_retries(max_retries)
    scheduler_obj = schedulers.create(scheduler, mode=study.mode)
    searcher = scheduler_obj.plan(searcher, study.space, budget, seed)
    executor_obj = executors.create(executor_spec(executor, workers, members), workers=workers)
    callbacks = list(callbacks)
    bar = None
    if progress:
        from tuneloop.progress import RichProgress

        bar = RichProgress(study.metric, study.mode, timeout=timeout)
        callbacks.append(bar)
    driver = Driver(
        store=store, study=study, fn=fn, searcher=searcher, scheduler=scheduler_obj, executor=executor_obj,
        n_trials=n_trials, seed=seed, budget=budget, timeout=timeout, callbacks=callbacks,
        experiment_path=experiment_path, rules=rules, phase=phase, fit_on=fit_on, budget_of=budget_of,
        max_retries=max_retries,
    )
    try:
        return driver.run()
    finally:
        if bar is not None:
            bar.close()  # also after Ctrl-C, so the terminal is left clean
