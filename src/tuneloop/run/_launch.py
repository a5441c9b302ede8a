"""``launch``: the one place a driver is wired. ``Study.run``, finalize and the probes all run
their trials through it, so each gets the same executors (inline, processes, population, Ray),
retries, schedulers, planners and progress bar.

    summary = launch(store, record, train, searcher=Listed(configs), executor="processes", workers=4,
                     seed=int(record.config["seed"]), budget={"epochs": 5}, n_trials=len(configs))

The caller opens the store and the stored study and builds the searcher (it knows the space's
roles, or the list of configurations to run); names of schedulers and executors, dicts with a
name and options, and instances are all accepted here. ``gpus``/``trials_per_gpu`` pin worker
processes to this machine's GPUs; with neither (and no executor or workers chosen) a machine with
several GPUs runs one trial on each (run/_gpus.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tuneloop._validation import check_positive_int, fail
from tuneloop.alerts import Rule
from tuneloop.callbacks import Callback
from tuneloop.errors import ConfigError
from tuneloop.run._executor import executors
from tuneloop.run._gpus import plan
from tuneloop.run._system import system_every
from tuneloop.run.driver import Driver, RunSummary
from tuneloop.schedule import schedulers
from tuneloop.search import Searcher
from tuneloop.store import StoreProtocol, StudyRecord


def executor_spec(executor: Any, workers: int | None, members: int | None = None, owner: str = "Study.run", *,
                  gpus: Sequence[int] | None = None, trials_per_gpu: int | None = None,
                  fn: Callable[..., Any] | None = None) -> Any:
    """The executor to build: ``executor`` when given, else worker processes for several workers and
    inline for one; ``members`` sizes the population executor (and needs it). ``gpus`` and
    ``trials_per_gpu`` pin worker processes to GPUs; ``workers=None`` (not chosen) is one trial per GPU
    on a machine with several (when workers can load the trial function ``fn``), else one
    (:func:`tuneloop.run._gpus.plan`)."""
    if workers is not None:
        check_positive_int(workers, "workers", owner)
    if members is not None:
        if executor != "population":
            raise ConfigError("members= is the population executor's option; pass executor='population' "
                              "(tuneloop run: --executor population --members M).")
        executor = {"name": "population", "members": check_positive_int(members, "members", owner)}
    executor = plan(executor, workers, gpus, trials_per_gpu, owner, fn=fn)
    return executor or ("processes" if (workers or 1) > 1 else "inline")


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
    workers: int | None = 1,
    members: int | None = None,
    gpus: Sequence[int] | None = None,
    trials_per_gpu: int | None = None,
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
    epochs); ``progress`` shows a bar on the terminal; ``workers=None`` lets the GPUs decide (see
    :func:`executor_spec`)."""
    budget, max_retries = dict(budget or {}), check_retries(max_retries)
    system_every()  # a bad $TUNELOOP_SYSTEM_EVERY is refused before any trial starts
    scheduler_obj = schedulers.create(scheduler, mode=study.mode)
    searcher = scheduler_obj.plan(searcher, study.space, budget, seed)
    spec = executor_spec(executor, workers, members, gpus=gpus, trials_per_gpu=trials_per_gpu, fn=fn)
    executor_obj = executors.create(spec, workers=workers or 1)
    callbacks = list(callbacks)
    bar = None
    if progress:
        from tuneloop.progress import RichProgress

        bar = RichProgress(study.metric, study.mode, timeout=timeout, objectives=study.objectives)
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
