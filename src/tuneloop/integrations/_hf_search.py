"""``Trainer.hyperparameter_search`` with tuneloop behind it.

``trainer.hyperparameter_search(backend="tuneloop")`` is not possible in transformers 4.x-5.x:
``backend`` goes through ``HPSearchBackend(backend)``, a closed enum (optuna, ray, wandb), before
the backend table is consulted, and ``Trainer._hp_search_setup`` applies a trial's parameters only
for those three names. Registering another would mean patching transformers' enum and methods, so
this is a function that takes the Trainer instead, with the same contract: a ``model_init``, a
space, a number of trials, and a ``BestRun`` back (its ``run_summary`` is the :class:`tuneloop.Study`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tuneloop.errors import ConfigError


def hyperparameter_search(
    trainer: Any,
    space: Any,
    n_trials: int | None = 20,
    *,
    metric: str = "eval_loss",
    mode: str = "min",
    name: str = "transformers-search",
    storage: str | None = None,
    searcher: Any = None,
    scheduler: Any = "median",
    budget: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = False,
) -> Any:
    """Tune ``trainer`` (built with ``model_init=``) over ``space`` for ``n_trials`` trials.

    Each trial sets the ``TrainingArguments`` fields that ``space`` names (``learning_rate``,
    ``per_device_train_batch_size``, ...), ``num_train_epochs`` to ``trial.budget.epochs`` and
    ``seed`` to ``trial.seed``; the other parameters go to ``model_init(params)`` (a dict, as the
    Ray backend passes). A :class:`TuneloopCallback` reports each evaluation, so ``scheduler``
    prunes as in any study, and the trials, curves and dashboard are the study ``name``'s in
    ``storage``. Trials run one at a time in this process (they share this Trainer).
    Returns ``transformers.trainer_utils.BestRun(run_id, objective, hyperparameters, run_summary)``,
    ``run_summary`` being the study. The Trainer's arguments are restored afterwards.
    """
    from transformers.trainer_utils import BestRun

    from tuneloop.integrations.transformers import TuneloopCallback
    from tuneloop.space import Space
    from tuneloop.study import Study

    init = getattr(trainer, "model_init", None)
    if init is None:
        raise ConfigError("hyperparameter_search needs a Trainer built with model_init= (a function returning a "
                          "fresh model), so that each trial trains its own model: Trainer(model_init=lambda: "
                          "MyModel(config), args=..., ...).")
    space = space if isinstance(space, Space) else Space(space)
    fields = {f.name for f in dataclasses.fields(trainer.args)}
    takes_params = len(inspect.signature(init).parameters) == 1
    for_model = [p for p in space.names if p not in fields]
    if for_model and not takes_params:
        raise ConfigError(f"hyperparameter_search: {', '.join(map(repr, for_model))} "
                          f"{'is not a TrainingArguments field' if len(for_model) == 1 else 'are not TrainingArguments fields'}"
                          ", so model_init must take them: def model_init(params): ... params['name'].")
    args = trainer.args
    saved = {f: getattr(args, f) for f in {*(p for p in space.names if p in fields), "num_train_epochs", "seed"}}
    study_budget = budget if budget is not None else {"epochs": max(1, math.ceil(args.num_train_epochs))}

    def train(trial: Any) -> None:
        params = trial.params.to_dict()
        for key, value in params.items():
            if key in fields:
                setattr(args, key, value)
        if "epochs" in trial.budget:
            args.num_train_epochs = trial.budget.epochs
        args.seed = trial.seed
        # what Trainer._hp_search_setup does for its own backends: the batch size and the
        # accelerator (gradient accumulation, mixed precision) follow the arguments just set
        trainer._train_batch_size = args.train_batch_size
        trainer.create_accelerator_and_postprocess()
        callback = TuneloopCallback(trial, metric)
        trainer.add_callback(callback)
        trainer.model_init = (lambda: init(params)) if takes_params else init
        try:
            trainer.train(resume_from_checkpoint=callback.resume_from())
            if not callback.reported and not callback.stopped:  # no evaluation during training
                trainer.evaluate()
        finally:
            trainer.pop_callback(callback)
            trainer.model_init = init

    study = Study(name, space, train, metric=metric, mode=mode, budget=study_budget, storage=storage, seed=seed,
                  searcher=searcher, scheduler=scheduler)
    try:
        study.run(n_trials, timeout=timeout, executor="inline", workers=1, callbacks=callbacks, progress=progress)
    finally:
        for key, value in saved.items():
            setattr(args, key, value)
        trainer._train_batch_size = args.train_batch_size
    best = study.best  # a completed trial: its value is a number
    return BestRun(str(best.number), float(best.value if best.value is not None else math.nan), dict(best.params),
                   study)
