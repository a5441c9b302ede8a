"""``Study``: a name, a search space, a trial function and an objective, stored under a name.

    study = tl.Study("mlp", space, train, metric="val_acc", mode="max", budget={"epochs": 20})
    study.run(n_trials=64, searcher="tpe", scheduler="asha", workers=2)
    study.best.params

``n_trials`` is the study's total: running the same call again after a crash or Ctrl-C
finishes the missing trials and stops at exactly ``n_trials``.

A run is wired by :func:`tuneloop.run.launch` (as finalize's and the probes' are); what other
modules need of a Study is public: ``store(storage)`` and ``record(store)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tuneloop._validation import check_positive_int, fail
from tuneloop.alerts import Rule, default_rules
from tuneloop.callbacks import Callback
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError, StorageError, TuneloopError
from tuneloop.experiment import experiment_record
from tuneloop.objectives import Objectives
from tuneloop.rounds import Roles, assign_roles, searched_space
from tuneloop.run import RunSummary, check_retries, executor_spec, executors, launch
from tuneloop.schedule import NoScheduler, PerValue, Planner, Scheduler, schedulers
from tuneloop.search import Searcher, Stratified, check_partial, repeated, searchers
from tuneloop.search._warm import describe, feed, load_priors, searcher_name
from tuneloop.space import Param, Space
from tuneloop.store import StudyRecord, TrialRecord, TrialState
from tuneloop.trial import Budget, Trial

if TYPE_CHECKING:
    from tuneloop.finalize import EnsembleResult, FinalResult
    from tuneloop.run._asktell import AskTell
    from tuneloop.store import Store

TrialFunction = Callable[[Trial], Any]


class Study:
    """A tuning study. Nothing is opened or written until :meth:`run` (or a read) needs it."""

    def __init__(
        self,
        name: str,
        space: Space | Mapping[str, Param],
        fn: TrialFunction | None = None,
        *,
        metric: str | None = None,
        mode: str | None = None,
        objectives: Mapping[str, str] | None = None,
        constraints: Mapping[str, tuple[str, float]] | None = None,
        prune_on: str | Mapping[str, float] | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
        storage: str | None = None,
        seed: int | None = None,
        searcher: Any = None,
        scheduler: Any = "none",
        executor: Any = None,
        workers: int | None = None,
        rules: Sequence[Rule] | str | None = "default",
        scientific: Sequence[str] = (),
        nuisance: Sequence[str] | None = None,
        fixed: Mapping[str, Any] | None = None,
        goal: str | None = None,
        round: int = 1,
        parent: str | None = None,
        warm_start: Sequence[str] | str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "Study", "a non-empty string", name)
        if fn is not None and not callable(fn):  # None: a study run only through ask/tell
            raise fail("fn", "Study", "a function that takes a tl.Trial (or None to run it with ask/tell)", fn)
        # what it optimizes: one metric and mode, or several objectives; constraints; what schedulers judge
        self.objectives = Objectives.of(metric, mode, objectives, constraints, prune_on, "Study")
        self.name = name
        self.space, self.roles = assign_roles(space if isinstance(space, Space) else Space(space), scientific,
                                              nuisance, fixed)
        self.goal = goal or name
        self.round = check_positive_int(round, "round", "Study")
        self.parent = parent
        # earlier studies whose trials the searcher learns from first (search/_warm.py)
        self.warm_start = check_warm_start(warm_start)
        self._warm_optional = False  # next_round's parent chain: a parent missing from the store is skipped
        self.warm_note: str | None = None  # what the last run's warm start fed, as `tuneloop run` prints it
        if searcher is None:  # a round that compares values explores evenly; one that optimizes models
            searcher = "sobol" if self.roles.scientific else "tpe"
        self.fn: TrialFunction = fn or _asked_only
        self.metric = self.objectives.primary.name  # the first objective: curves, pruned trials' ranking
        self.mode = self.objectives.primary.direction
        self.budget = budget if isinstance(budget, Budget) else Budget(budget)
        self.storage = storage
        self.seed = seed
        self.defaults = {"searcher": searcher, "scheduler": scheduler, "executor": executor,
                         "workers": 1 if workers is None else workers}
        self._workers_chosen = workers is not None  # if not, a machine with several GPUs runs one trial on each
        if rules == "default":
            rules = default_rules()
        elif isinstance(rules, str) or any(not isinstance(r, Rule) for r in rules or ()):
            raise fail("rules", "Study", "'default', None or a list of tl.Rule", rules)
        self.rules: list[Rule] = list(rules or [])
        self.experiment_path: str | None = None  # set when loaded from a file (workers re-import it)
        self._stores: dict[str, Store] = {}
        self._askers: dict[str, tuple[AskTell, tuple[Any, ...]]] = {}  # ask/tell sessions by store URL
        self._last_url: str | None = None

    def __repr__(self) -> str:
        if self.objectives.multi:
            return f"Study({self.name!r}, objectives={ {o.name: o.direction.value for o in self.objectives.items}!r})"
        return f"Study({self.name!r}, metric={self.metric!r}, mode={self.mode.value!r})"

    @classmethod
    def stored(cls, name: str, storage: str | None = None) -> Study:
        """The study ``name`` as stored (space, objective, roles, budget, seed, searcher), without a
        trial function: for :meth:`ask`, :meth:`tell` and :meth:`enqueue` from any process."""
        from tuneloop.rounds import round_info
        from tuneloop.store import Store

        store = Store(storage)
        record = store.require_study(name)
        info, config = round_info(record), record.config  # checked: the database may come from elsewhere
        budget = config.get("budget")
        study = cls(name, searched_space(record.space, info.roles), **objective_arguments(record.objectives),
                    budget=budget if isinstance(budget, dict) else None, storage=store.url,
                    searcher=config.get("searcher"), scheduler=config.get("scheduler") or "none",
                    scientific=info.roles.scientific, nuisance=info.roles.nuisance, fixed=info.roles.fixed,
                    goal=info.goal, round=info.round, parent=info.parent)
        study._stores[store.url], study._last_url = store, store.url
        return study

    # -- running ----------------------------------------------------------------------------
    def run(
        self,
        n_trials: int | None = None,
        *,
        searcher: Any = None,
        scheduler: Any = None,
        workers: int | None = None,
        executor: Any = None,
        members: int | None = None,
        gpus: Sequence[int] | None = None,
        trials_per_gpu: int | None = None,
        max_retries: int = 1,
        timeout: float | None = None,
        seed: int | None = None,
        seeds: int | None = None,
        storage: str | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
    ) -> RunSummary:
        """Run trials until the study holds ``n_trials`` finished ones (or ``timeout`` seconds
        pass, or a grid is exhausted). Arguments left as None take the Study's defaults.

        ``searcher``/``scheduler``/``executor`` take a name (``"tpe"``), a dict with a name and
        options (``{"name": "asha", "reduction_factor": 4}``) or an instance. ``seeds=K`` runs each
        configuration K times, each with its own ``trial.seed`` (``n_trials`` counts every run).
        ``executor="population"`` trains up to ``members`` trials (default 64) of one architecture
        together in one vectorized pass (their ``tuneloop.torch.fit`` calls). A trial whose worker
        process dies (killed, out of memory) runs again up to ``max_retries`` times, then is failed
        with the cause.

        ``gpus=[0, 1]`` pins worker processes to those GPUs (numbered as torch numbers the visible
        ones), ``trials_per_gpu`` on each; ``gpus=[]`` turns pinning off. With neither, and no
        ``workers`` or ``executor`` chosen, a machine with several GPUs runs one trial on each
        (docs/gpus.md).
        """
        if self.fn is _asked_only:
            _asked_only(None)  # raises: there is no trial function to run
        searcher = searcher if searcher is not None else self.defaults["searcher"]
        scheduler = scheduler if scheduler is not None else self.defaults["scheduler"]
        executor = executor or self.defaults["executor"]
        for registry, spec in ((searchers, searcher), (schedulers, scheduler), (executors, executor)):
            if spec is not None:
                registry.resolve(spec)  # a misspelt name fails first, whatever else is wrong
        if n_trials is not None:
            check_positive_int(n_trials, "n_trials", "Study.run")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise fail("timeout", "Study.run", "a positive number of seconds", timeout)
        max_retries = check_retries(max_retries)
        if n_trials is None and timeout is None and not (searchers.declared(searcher, "ends_by_itself")
                                                         or schedulers.declared(scheduler, "ends_by_itself")):
            raise ConfigError("Study.run needs n_trials or timeout (tuneloop run: --trials N or --timeout SECONDS); "
                              "only the grid searcher and the sha and pbt schedulers end by themselves.")
        workers = workers if workers is not None else self.chosen_workers
        if workers is not None:
            check_positive_int(workers, "workers", "Study.run")
        executor = executor_spec(executor, workers, members, gpus=gpus, trials_per_gpu=trials_per_gpu, fn=self.fn)

        store = self.store(storage)
        record = self.record(store, seed)
        seed = seed if seed is not None else int(record.config["seed"])
        if n_trials is not None and record.config.get("n_trials") != n_trials:  # the target `tuneloop worker` reads
            record.config["n_trials"] = n_trials
            store.update_study_config(record.id, record.config)
        # build every plug-in before any trial starts, so a bad name fails fast
        searcher_obj = repeated(self._searcher(searcher, seed), seeds)
        return launch(
            store, record, self.fn, searcher=searcher_obj, seed=seed, scheduler=self._scheduler(scheduler, seeds),
            executor=executor, workers=workers or 1, max_retries=max_retries, n_trials=n_trials,
            budget=self.budget.to_dict(), timeout=timeout, callbacks=callbacks, experiment_path=self.experiment_path,
            rules=self.rules, progress=progress,
        )

    # -- ask and tell: trials run by the caller ----------------------------------------------------
    def ask(self, *, n_trials: int | None = None, seeds: int | None = None, lease_seconds: float | None = None,
            max_retries: int = 1, storage: str | None = None) -> Trial | None:
        """A trial to run yourself, stored as running: its ``params``, ``seed`` and ``budget`` come from
        the study's searcher (an enqueued configuration first; a trial whose client or driver died,
        again, up to ``max_retries`` times). Report through ``trial.report`` (the study's scheduler
        decides ``trial.should_stop()``) and end it with :meth:`tell`. None when the searcher has run
        out (a grid) or, with ``n_trials``, once the study's first ``n_trials`` numbers are taken (every
        trial below it handed out, by this or any client or driver). ``seeds=K`` asks each
        configuration K times.

        While this process holds asked trials a heartbeat keeps them its own; with ``lease_seconds``
        each is held that long after its ask and each report instead (a client that exits before it
        tells, as ``tuneloop ask`` does). See docs/ask-tell.md."""
        if n_trials is not None:
            check_positive_int(n_trials, "n_trials", "Study.ask")
        return self._asker(storage, seeds, lease_seconds, max_retries).ask(n_trials)

    def tell(self, trial: Trial | int, values: Mapping[str, Any] | float | None = None, *, state: str = "completed",
             error: str | None = None, storage: str | None = None) -> TrialRecord:
        """End an asked trial (the Trial, or its number): ``values`` holds its metrics (a bare number is
        the objective); ``state="pruned"`` or ``"failed"`` (with ``error``) ends it otherwise. The
        searcher and scheduler learn from it; the stored record is returned."""
        return self._asker(storage).tell(trial, values, state, error)

    def enqueue(self, params: Mapping[str, Any], *, storage: str | None = None) -> int:
        """Run ``params`` (some or all parameters; the searcher chooses the rest) before the searcher's
        own proposals, in whichever run, worker or ask comes next; its trial number."""
        from tuneloop.run.driver import trial_seed

        fixed = check_partial(self.space, params)
        store = self.store(storage)
        record = self.record(store)
        seed = int(record.config["seed"])
        return store.enqueue_trial(record.id, fixed, lambda number: trial_seed(seed, number))[1]

    def _asker(self, storage: str | None, seeds: int | None = None, lease_seconds: float | None = None,
               max_retries: int | None = None) -> AskTell:
        """This process's ask/tell session on the store: one per store, so the searcher keeps what it
        learned between asks; asking with other options starts a new one once no asked trial runs."""
        from tuneloop.run._asktell import AskTell
        from tuneloop.run.driver import trial_seed

        store = self.store(storage)
        options = (check_positive_int(seeds or 1, "seeds", "Study.ask"), lease_seconds,
                   check_retries(1 if max_retries is None else max_retries, "Study.ask"))
        session, held = self._askers.get(store.url, (None, options))
        if session is not None and (max_retries is None or held == options):
            return session
        if session is not None and session._running:
            raise ConfigError("Study.ask: tell the trials already asked before asking with other options "
                              "(seeds, lease_seconds, max_retries).")
        record = self.record(store)
        seed = int(record.config["seed"])
        # the searcher's seed moves on with the trials stored: each `tuneloop ask` is a fresh process, and
        # one seeded alike would propose the same first configurations again
        searcher = self._searcher(self.defaults["searcher"], trial_seed(seed, 2**40 + len(store.trials(record.id))))
        session = AskTell(store=store, study=record, searcher=searcher,
                          scheduler=self._scheduler(self.defaults["scheduler"], options[0]), seed=seed,
                          budget=self.budget.to_dict(), rules=self.rules, seeds=options[0], lease_seconds=options[1],
                          max_retries=options[2])
        self._askers[store.url] = (session, options)
        return session

    # -- reading ----------------------------------------------------------------------------
    @property
    def trials(self) -> list[TrialRecord]:
        """Every stored trial of this study, by number (from the store the last run used)."""
        store = self.store(None)
        record = store.get_study(self.name)
        return [] if record is None else store.trials(record.id)

    @property
    def best(self) -> TrialRecord:
        """The feasible completed trial with the best objective value; with several objectives, the
        best by the first one (the whole trade-off is :attr:`front`)."""
        return best_trial(self.trials, self.objectives, self.name)

    @property
    def front(self) -> list[TrialRecord]:
        """The Pareto front: feasible completed trials that no other one beats on every objective
        (with one objective, the trials tied at the best value)."""
        return self.objectives.front(self.trials)

    def pick(self, rule: str | Callable[[list[TrialRecord]], Any]) -> TrialRecord:
        """The front member ``rule`` chooses: ``"max val_acc where latency_ms <= 2"`` or a callable
        taking the front and returning one of its trials (see :func:`tuneloop.picking.pick`)."""
        from tuneloop.picking import pick

        return pick(self.front, rule, self.name)

    @property
    def chosen_workers(self) -> int | None:
        """The ``workers`` this study was defined with; None when not chosen (a machine with several
        GPUs then runs one trial on each)."""
        return self.defaults["workers"] if self._workers_chosen else None

    # -- finishing --------------------------------------------------------------------------
    def finalize(self, *, top: int = 3, seeds: int = 5, fit_on: str = "train", epochs: str = "best",
                 per: str | None = None, rounds: str = "this", pick: str | Callable[[list[TrialRecord]], Any] | None = None,
                 rerank: int | None = None, rerank_seeds: int = 3, workers: int | None = None, executor: Any = None,
                 members: int | None = None, gpus: Sequence[int] | None = None, trials_per_gpu: int | None = None,
                 max_retries: int = 1, storage: str | None = None, again: bool = False,
                 progress: bool = False) -> FinalResult:
        """Retrain the ``top`` configurations (of each value of ``per``; among every round of the
        goal with ``rounds="all"``; with several objectives, front members, ordered by ``pick``:
        ``"max val_acc where latency_ms <= 2"`` or a function of the front) over ``seeds`` seeds and
        test each run once (``fit_on="train+val"`` to refit on both); ``rerank=K`` first reruns the K
        best over ``rerank_seeds`` seeds on validation and chooses among them by their mean; see
        :func:`tuneloop.finalize.finalize`."""
        from tuneloop.finalize import finalize

        return finalize(self, top=top, seeds=seeds, fit_on=fit_on, epochs=epochs, per=per, rounds=rounds, pick=pick,
                        rerank=rerank, rerank_seeds=rerank_seeds, workers=workers,
                        executor=executor, members=members, gpus=gpus, trials_per_gpu=trials_per_gpu,
                        max_retries=max_retries, storage=storage, again=again, progress=progress)

    def ensemble(self, methods: Sequence[str] = ("vote", "average", "stack"), *,
                 storage: str | None = None) -> EnsembleResult:
        """Vote, average and stack the finalized configurations; each gain over the best single
        model comes with its interval. See :func:`tuneloop.finalize.ensemble`."""
        from tuneloop.finalize import ensemble

        return ensemble(self.store(storage), self.name, methods)

    # -- rounds ----------------------------------------------------------------------------
    def next_round(
        self,
        space: Space | Mapping[str, Param] | None = None,
        *,
        name: str | None = None,
        scientific: Sequence[str] | None = None,
        nuisance: Sequence[str] | None = None,
        fixed: Mapping[str, Any] | None = None,
        searcher: Any = None,
        scheduler: Any = None,
        budget: Budget | Mapping[str, Any] | None = None,
        warm_start: Sequence[str] | None = None,
    ) -> Study:
        """The next round of this study's goal: the same trial function and objective, a new
        space or new roles (each left as None keeps this round's), named ``<goal>-r<N>``. Its
        searcher is warm-started from this round and the rounds before it (the parent chain; those
        not in the store are skipped); ``warm_start=[]`` starts it cold."""
        keep_roles = scientific is None and nuisance is None
        study = Study(
            name or f"{self.goal}-r{self.round + 1}", space if space is not None else searched_space(self.space, self.roles),
            self.fn, **objective_arguments(self.objectives), budget=budget if budget is not None else self.budget,
            storage=self.storage, searcher=searcher, scheduler=scheduler or self.defaults["scheduler"],
            executor=self.defaults["executor"], workers=self.chosen_workers,
            rules=self.rules or None,
            scientific=self.roles.scientific if scientific is None else scientific,
            nuisance=self.roles.nuisance if keep_roles and space is None else nuisance,
            fixed=self.roles.fixed if fixed is None else fixed,
            goal=self.goal, round=self.round + 1, parent=self.name,
            warm_start=[self.name, *self.warm_start] if warm_start is None else warm_start,
        )
        study._warm_optional = warm_start is None
        study.experiment_path = self.experiment_path
        return study

    # -- what a run is built from -------------------------------------------------------------
    def _searcher(self, spec: Any, seed: int) -> Searcher:
        """The searcher ``spec`` names: over the whole space, or one per scientific value over its
        nuisance space; warm-started from the studies in ``warm_start`` (in the store in use)."""
        searcher = self._new_searcher(spec, seed)
        if self.warm_start:
            self._warm(searcher, spec)
        return searcher

    def _warm(self, searcher: Searcher, spec: Any) -> None:
        """Feed the earlier studies' trials that fit this space to ``searcher`` as priors; record
        how many each gave in the study's config (they are never this study's trials)."""
        store = self.store()
        record = self.record(store)
        priors = load_priors(store, record, self.warm_start, self.space, optional=self._warm_optional)
        fed = feed(searcher, priors)
        self.warm_note = describe(fed, priors, searcher_name(spec))
        if record.config.get("warm_start") != fed:
            record.config["warm_start"] = fed
            store.update_study_config(record.id, record.config)

    def _new_searcher(self, spec: Any, seed: int) -> Searcher:
        if not self.roles.scientific:
            return searchers.create(spec, space=self.space, seed=seed, mode=self.mode, objectives=self.objectives)
        if not isinstance(spec, (str, dict)):
            raise ConfigError("With scientific parameters, give the searcher by name (or a dict with a name and "
                              "options): each scientific value gets its own searcher over the nuisance parameters.")
        return Stratified(self.space, self.roles.scientific, lambda sub, i: searchers.create(
            spec, space=sub, seed=seed + 7919 * i, mode=self.mode, objectives=self.objectives))

    def _scheduler(self, spec: Any, seeds: int | None = None) -> Scheduler:
        """The scheduler ``spec`` names; with scientific parameters, one per value (ASHA compares
        like with like). A planner plans whole generations, so it refuses scientific values and seeds."""
        judge = self.objectives.judged  # one metric (the first objective) or a weighted sum of objectives
        scheduler = schedulers.create(spec, mode=judge.direction)
        if isinstance(scheduler, Planner):
            if self.roles.scientific or (seeds or 1) > 1:
                raise ConfigError(f"The {type(scheduler).__name__} scheduler plans whole generations; it cannot "
                                  f"be combined with scientific parameters or --seeds. Use asha (per value) there.")
        elif self.roles.scientific and not isinstance(scheduler, NoScheduler):
            scheduler = PerValue(self.roles.scientific, lambda: schedulers.create(spec, mode=judge.direction))
        return scheduler

    def store(self, storage: str | None = None) -> Store:
        """The store at ``storage``; else the one the last run used; else the Study's own."""
        from tuneloop.store import Store, resolve_url  # SQLAlchemy: loaded where a store is opened, not in workers

        url = resolve_url(storage or self._last_url or self.storage)
        self._last_url = url
        if url not in self._stores:
            self._stores[url] = Store(url)
        return self._stores[url]

    def record(self, store: Store, seed: int | None = None) -> StudyRecord:
        """The stored study in ``store``: created on first use (with ``seed``, else the Study's,
        else a random one), checked against this definition after."""
        record = store.get_study(self.name)
        if record is None:
            config = {
                "seed": seed if seed is not None else (self.seed if self.seed is not None else random.randrange(2**31)),
                "budget": self.budget.to_dict(),
                **experiment_record(self.experiment_path),  # path, content hash, this user's signature
                "goal": self.goal, "round": self.round, "parent": self.parent, "roles": self.roles.to_json(),
                # what `tuneloop ask` uses when it has no experiment file (names and plain options only)
                "searcher": _plain(self.defaults["searcher"]), "scheduler": _plain(self.defaults["scheduler"]),
            }
            if self.objectives != Objectives.of(self.metric, self.mode):  # one plain objective: metric and mode say it
                config.update(self.objectives.to_config())
            try:
                return store.create_study(self.name, self.metric, self.mode.value, self.space, config)
            except StorageError:  # drivers started together: another one created it first, and it is checked below
                record = store.get_study(self.name)
                if record is None:
                    raise
        for what, stored, now in (("metric", record.metric, self.metric), ("mode", record.mode, self.mode)):
            if stored != now:
                raise ConfigError(
                    f"Study {self.name!r} in {store.url} has {what} {str(stored)!r}, not {str(now)!r}; use a new "
                    f"study name for a different objective."
                )
        if record.objectives != self.objectives:
            raise ConfigError(
                f"Study {self.name!r} in {store.url} optimizes {record.objectives.describe()} (prune_on "
                f"{record.objectives.judged}), not {self.objectives.describe()} (prune_on {self.objectives.judged}); "
                f"use a new study name for different objectives or constraints."
            )
        if record.space != self.space:
            raise ConfigError(
                f"Study {self.name!r} in {store.url} was run with a different search space; give the "
                f"changed space a new study name (e.g. {self.name + '-r2'!r}) so results stay comparable."
            )
        if Roles.from_json(record.config.get("roles")).to_json() != self.roles.to_json():
            raise ConfigError(
                f"Study {self.name!r} in {store.url} was run with other parameter roles; give the new roles a new "
                f"study name (study.next_round(...) names it {self.goal + '-r' + str(self.round + 1)!r})."
            )
        stamp = experiment_record(self.experiment_path)
        if self.experiment_path and any(record.config.get(k) != v for k, v in stamp.items()):
            record.config.update(stamp)  # resumed from an edited or moved file: vouch for the one that runs now
            store.update_study_config(record.id, record.config)
        return record


def check_warm_start(value: Any) -> tuple[str, ...]:
    """``warm_start`` as a tuple of study names (one name alone is one study)."""
    names = () if value is None else (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or any(not isinstance(n, str) or not n.strip() for n in names):
        raise fail("warm_start", "Study", "a list of earlier study names in the same store, e.g. ['mlp']", value)
    return tuple(names)


def _asked_only(trial: Trial | None) -> None:
    name = "This study" if trial is None else f"Study {trial.study_name!r}"
    raise ConfigError(f"{name} has no trial function (it was made without one, or loaded from the "
                      f"store); run it with study.ask()/tell(), or give it one (tuneloop worker STUDY --file FILE).")


def _plain(spec: Any) -> Any:
    """A plug-in spec as JSON can store it (a name, or a dict of plain options); None for an instance."""
    import json

    if isinstance(spec, str):
        return spec
    try:
        return json.loads(json.dumps(spec)) if isinstance(spec, dict) else None
    except (TypeError, ValueError):
        return None


def best_trial(trials: Sequence[TrialRecord], objectives: Objectives | Direction | str, name: str = "") -> TrialRecord:
    """The feasible completed trial with the best (first) objective; TuneloopError when there is none.
    A bare direction ranks by each trial's stored value alone (one objective, no constraints)."""
    if not isinstance(objectives, Objectives):
        done = [t for t in trials if t.state == TrialState.COMPLETED and t.value is not None]
        if not done:
            raise TuneloopError(f"Study {name!r} has no completed trial yet; run it first (tuneloop run FILE).")
        return Direction.of(objectives).best(done, key=lambda t: t.value)
    best = objectives.best(trials)
    if best is None:
        if objectives.constraints and objectives.completed(trials):
            raise TuneloopError(f"Study {name!r} has no feasible trial yet: every completed one breaks "
                                f"{', '.join(str(c) for c in objectives.constraints)}; run more trials or loosen them.")
        raise TuneloopError(f"Study {name!r} has no completed trial yet; run it first (tuneloop run FILE).")
    return best


def objective_arguments(objectives: Objectives) -> dict[str, Any]:
    """The Study keywords that define ``objectives`` again."""
    judge = objectives.judged
    prune_on: Any = ({n: abs(w) for n, w in judge.weights} if judge.scalarized
                     else None if judge.names[0] == objectives.primary.name else judge.names[0])
    constraints = {c.metric: (c.op, c.bound) for c in objectives.constraints} or None
    if objectives.multi:
        return {"objectives": {o.name: o.direction.value for o in objectives.items}, "constraints": constraints,
                "prune_on": prune_on}
    return {"metric": objectives.primary.name, "mode": objectives.primary.direction.value,
            "constraints": constraints, "prune_on": prune_on}

