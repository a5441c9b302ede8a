"""Finalize: retrain the best configurations over fresh seeds and measure them once on test.

    result = study.finalize(top=3, seeds=5)                 # or: tuneloop finalize STUDY
    result.configs[0].test                                  # MeanCI over 5 seeds
    study.finalize(top=1, pick="max val_acc where latency_ms <= 2")   # several objectives: a front member
    result.configs[0].objectives["latency_ms"]              # every objective on test, MeanCI over seeds

The retraining runs are the trials of a study of their own, ``<study>-final``, linked to the
tuned one, so they are stored, resumable and shown like any other. Each run gets
``trial.phase == "final"``: ``trial.splits(data)`` hands it (train, test), or (train + val, test)
with ``fit_on="train+val"``. With ``epochs="best"`` a configuration trains for the epoch count
that retrospective selection picked while tuning (its median over seeds), since the test split
cannot pick an epoch. The test split is looked at once: finalizing again with other choices is
refused unless ``again=True``, which records a second look (``<study>-final-2``).

A study with several objectives finalizes members of its front (``pick="max val_acc where
latency_ms <= 2"`` chooses which); the final study carries every objective (``val_`` names measured
as ``test_``) and the constraints, so each objective is reported with its interval over seeds and
each configuration says whether it kept the constraints on test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tuneloop._validation import check_one_of, check_positive_int
from tuneloop.analysis import Difference, MeanCI, mean_ci, welch
from tuneloop.errors import ConfigError
from tuneloop.finalize._rerank import check_rerank, rerank_name, rerank_runs
from tuneloop.finalize._select import Candidate, Pick, top_configs
from tuneloop.objectives import Constraint, Judge, Objective, Objectives
from tuneloop.rounds import chain
from tuneloop.run import check_retries, executor_spec, executors, launch
from tuneloop.search import Listed
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState

if TYPE_CHECKING:
    from tuneloop.callbacks import Callback
    from tuneloop.study import Study

FIT_ON = ("train", "train+val")


@dataclass
class FinalConfig:
    """One finalized configuration: the tuning evidence and the test result over seeds."""

    rank: int
    params: dict[str, Any]
    source: list[int]
    tuned: MeanCI
    epochs: int | None
    study: str = ""  # the round the source trials belong to
    trials: list[int] = field(default_factory=list)  # numbers in the final study
    values: list[float] = field(default_factory=list)  # test values, one per seed
    test: MeanCI | None = None
    versus_first: Difference | None = None  # this minus rank 1 on test, Welch's t over seeds
    objectives: dict[str, MeanCI] = field(default_factory=dict)  # every objective on test, over seeds
    tuned_objectives: dict[str, MeanCI] = field(default_factory=dict)  # and while tuning (several objectives)
    feasible: list[bool] = field(default_factory=list)  # per completed run: kept every constraint on test

    @property
    def kept(self) -> bool | None:
        """Whether every completed run kept the constraints on test (None: no constraint or no run)."""
        return all(self.feasible) if self.feasible else None


@dataclass
class FinalResult:
    """What finalize measured: one row per configuration, test metric mean +/- CI over seeds."""

    study: str
    final_study: str
    metric: str
    tuned_metric: str
    mode: str
    fit_on: str
    seeds: int
    look: int
    configs: list[FinalConfig]
    per: str | None = None  # the parameter whose every value was finalized (its best configurations)
    rounds: str = "this"  # "all": chosen among every round of the goal
    objectives: list[str] = field(default_factory=list)  # the final study's objectives (test names), in order
    directions: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)  # as on test, e.g. "latency_ms <= 2"
    pick: str | None = None  # the rule that chose among the front
    rerank: list[int] | None = None  # [K, seeds]: the best K re-run over seeds on validation before choosing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def test_metric(metric: str) -> str:
    """The final study's objective: ``val_acc`` is measured as ``test_acc``; other names stay."""
    return "test_" + metric[len("val_"):] if metric.startswith("val_") else metric


def final_objectives(objectives: Objectives) -> Objectives:
    """The final study's objectives: the tuned ones, constraints and judge under :func:`test_metric`
    names (``val_acc`` is measured as ``test_acc``; ``latency_ms`` stays)."""
    judge = objectives.judged
    return Objectives(tuple(Objective(test_metric(o.name), o.direction) for o in objectives.items),
                      tuple(Constraint(test_metric(c.metric), c.op, c.bound) for c in objectives.constraints),
                      Judge(tuple((test_metric(n), w) for n, w in judge.weights), judge.direction, judge.scalarized))


def final_name(study: str, look: int) -> str:
    return f"{study}-final" if look == 1 else f"{study}-final-{look}"


def finalize(
    study: Study,
    *,
    top: int = 3,
    seeds: int = 5,
    fit_on: str = "train",
    epochs: str = "best",
    per: str | None = None,
    rounds: str = "this",
    pick: Pick | None = None,
    rerank: int | None = None,
    rerank_seeds: int = 3,
    workers: int | None = None,
    executor: Any = None,
    members: int | None = None,
    gpus: Sequence[int] | None = None,
    trials_per_gpu: int | None = None,
    max_retries: int = 1,
    storage: str | None = None,
    again: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
) -> FinalResult:
    """Retrain the ``top`` configurations of ``study`` (the ``top`` of each value of parameter
    ``per``, when given) over ``seeds`` seeds each and evaluate each run once on the test split.
    ``rounds="all"`` chooses among the completed trials of every round of the study's goal (the same
    trial function and validation split), not this round's alone. Rerunning with the same choices
    resumes or shows the result. ``executor``, ``members``, ``gpus``, ``trials_per_gpu`` and
    ``max_retries`` work as in :meth:`Study.run`.

    Which configurations: with one objective, the best by mean tuning value (a constrained study's
    feasible ones only: a configuration that broke a constraint in any run is never finalized); with
    several, the members of the front of configurations, best first by the first objective. ``pick``
    orders the front instead: a rule such as ``"max val_acc where latency_ms <= 2"`` (the members it
    keeps, best first; see :mod:`tuneloop.picking`) or a function taking the front (a list of
    TrialRecords; a configuration repeated over seeds appears once, with its mean values) and
    returning one of them or a list of them best first. The ``top`` first are retrained. The result
    reports every objective on test with its interval over seeds (:attr:`FinalConfig.objectives`)
    and whether each configuration kept the constraints there (:attr:`FinalConfig.feasible`).

    ``rerank=K`` first runs the K best configurations again on validation until each has
    ``rerank_seeds`` runs (in ``<study>-rerank``, whole budget), and chooses among them by their mean
    over seeds, not by a single lucky seed (:mod:`tuneloop.finalize._rerank`)."""
    check_positive_int(top, "top", "finalize")
    check_positive_int(seeds, "seeds", "finalize")
    check_one_of(fit_on, FIT_ON, "fit_on", "finalize")
    check_one_of(epochs, ("best", "budget"), "epochs", "finalize")
    check_one_of(rounds, ("this", "all"), "rounds", "finalize")
    pick_text = _pick_text(pick)  # a malformed rule fails before anything is read or run
    check_rerank(rerank, rerank_seeds, per, rounds)
    workers = workers if workers is not None else study.chosen_workers
    if workers is not None:
        check_positive_int(workers, "workers", "finalize")
    executor = executor_spec(executor or study.defaults["executor"], workers, members, "finalize", gpus=gpus,
                             trials_per_gpu=trials_per_gpu, fn=study.fn)
    max_retries = check_retries(max_retries, "finalize")
    executors.resolve(executor)
    store = study.store(storage)
    parent = store.require_study(study.name)
    if parent.config.get("kind") == "final":
        raise ConfigError(f"{study.name!r} is itself a finalize run; finalize the tuning study "
                          f"{parent.config.get('parent')!r} instead.")
    sources = [parent] if rounds == "this" else [store.require_study(r.study) for r in chain(store, parent.name)]
    trials, where, budgets = [], {}, {}
    for source in sources:
        for t in store.trials(source.id):
            trials.append(t)
            where[t.id] = source.name
        budgets[source.name] = dict(source.config.get("budget") or {})
    curves = {i: c.get(parent.metric, []) for i, c in store.series([t.id for t in trials], [parent.metric]).items()}
    if rerank is not None:
        _refuse_another_look(store, parent, again, top=top, seeds=seeds, fit_on=fit_on, epochs=epochs, per=per,
                             rounds=rounds, pick=pick_text, rerank=[rerank, rerank_seeds])  # before any run
        candidates = top_configs(trials, parent.mode, rerank, curves, parent.name, None, where, parent.objectives, pick)
        trials = rerank_runs(study, store, parent, trials, candidates, rerank_seeds, executor=executor,
                             workers=workers or 1, max_retries=max_retries, callbacks=callbacks, progress=progress)
        where.update({t.id: rerank_name(parent.name) for t in trials if t.id not in where})
        curves = {i: c.get(parent.metric, []) for i, c in store.series([t.id for t in trials], [parent.metric]).items()}
    chosen = top_configs(trials, parent.mode, top, curves, parent.name, per, where, parent.objectives, pick)
    budget = dict(parent.config.get("budget") or study.budget.to_dict())
    plan = {**_plan(parent, chosen, seeds, fit_on, epochs, budget, budgets), "per": per, "rounds": rounds,
            "pick": pick_text, "rerank": None if rerank is None else [rerank, rerank_seeds]}
    record, _ = _final_study(store, parent, plan, again)
    by_key = {json.dumps(c["params"], sort_keys=True): c for c in plan["configs"]}
    launch(store, record, study.fn, searcher=Listed([c["params"] for c in plan["configs"] for _ in range(seeds)]),
           seed=int(record.config["seed"]), executor=executor, workers=workers or 1, max_retries=max_retries,
           n_trials=len(plan["configs"]) * seeds, budget=budget, callbacks=callbacks,
           experiment_path=study.experiment_path, rules=study.rules, phase="final", fit_on=fit_on,
           budget_of=lambda params: by_key[json.dumps(params, sort_keys=True)]["budget"], progress=progress)
    return read_final(store, record.name)


def latest_final(store: Store, name: str) -> StudyRecord | None:
    """The most recent finalize study of tuning study ``name`` (None when it was not finalized)."""
    found, look = None, 1
    while (nxt := store.get_study(final_name(name, look))) is not None:
        found, look = nxt, look + 1
    return found


def _pick_text(pick: Pick | None) -> str | None:
    """How ``pick`` is stored with the final study (and compared on a rerun): a rule in its parsed
    form, a function by its name."""
    from tuneloop.picking import Rule

    if pick is None:
        return None
    if callable(pick):
        return f"function {getattr(pick, '__qualname__', type(pick).__name__)}"
    if not isinstance(pick, str):
        raise ConfigError(f"finalize: pick= takes a rule such as 'max val_acc where latency_ms <= 2' or a function "
                          f"of the front; got {type(pick).__name__}.")
    return str(Rule.parse(pick))


def _plan(parent: StudyRecord, chosen: list[Candidate], seeds: int, fit_on: str, epochs: str,
          budget: dict[str, Any], budgets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What this finalize will do, stored with the final study (and compared on a rerun)."""
    configs = []
    for c in chosen:
        own = budgets.get(c.study) or budget  # a configuration from another round keeps that round's budget
        run_epochs = c.best_step if epochs == "best" and "epochs" in budget and c.best_step else None
        if run_epochs is None and own.get("epochs") != budget.get("epochs"):
            run_epochs = own.get("epochs")
        entry = {"rank": c.rank, "params": c.params, "source": c.source, "study": c.study,
                 "tuned": c.tuned.to_dict(), "budget": {"epochs": run_epochs} if run_epochs else {}}
        if c.objectives:  # several objectives or constraints: every objective's tuning values
            entry["objectives"] = {n: ci.to_dict() for n, ci in c.objectives.items()}
        configs.append(entry)
    return {"kind": "final", "parent": parent.name, "fit_on": fit_on, "seeds": seeds, "epochs": epochs,
            "tuned_metric": parent.metric, "configs": configs}


class AlreadyFinalizedError(ConfigError):
    """The study was finalized with other choices: its test split has been seen."""


def _already_finalized(parent: StudyRecord, latest: StudyRecord) -> AlreadyFinalizedError:
    cfg = latest.config
    configs = cfg.get("configs")
    rerank = cfg.get("rerank")
    said = [f"top {len(configs) if isinstance(configs, list) else '?'}", f"{cfg.get('seeds')} seeds",
            f"fit on {cfg.get('fit_on')}"]
    if cfg.get("pick"):
        said.append(f"pick {cfg.get('pick')!r}")
    if isinstance(rerank, list) and len(rerank) == 2:
        said.append(f"rerank {rerank[0]} over {rerank[1]} seeds")
    return AlreadyFinalizedError(
        f"{parent.name!r} was already finalized in {latest.name!r} ({', '.join(map(str, said))}), so the test split "
        f"has been seen; choosing again by test results would make it a validation split. Repeat those options to "
        f"show or resume it, or pass --again to record a second look.")


def _refuse_another_look(store: Store, parent: StudyRecord, again: bool, **options: Any) -> None:
    """Refuse before anything runs when the latest finalize chose with other options (finalize's
    final check compares whole plans; this one saves a re-ranking's runs that would be refused)."""
    latest = latest_final(store, parent.name)
    if latest is None or again:
        return
    stored = {k: latest.config.get(k, "this" if k == "rounds" else None) for k in options if k != "top"}
    if stored != json.loads(json.dumps({k: v for k, v in options.items() if k != "top"})):
        raise _already_finalized(parent, latest)


def _final_study(store: Store, parent: StudyRecord, plan: dict[str, Any], again: bool) -> tuple[StudyRecord, int]:
    """The final study for ``plan``: the existing one when it matches, a new look when asked."""
    latest = latest_final(store, parent.name)
    look = 1 if latest is None else int(latest.config.get("look", 1))
    if latest is not None:
        stored = {k: latest.config.get(k, "this" if k == "rounds" else None) for k in plan}
        if stored == json.loads(json.dumps(plan)) and not again:
            return latest, look
        if not again:
            raise _already_finalized(parent, latest)
        look += 1
    import random

    config = {**plan, "seed": random.randrange(2**31), "look": look}
    objectives = final_objectives(parent.objectives)
    if objectives != Objectives.of(objectives.primary.name, objectives.primary.direction):
        config.update(objectives.to_config())  # several objectives or constraints: each final run is judged on all
    record = store.create_study(final_name(parent.name, look), test_metric(parent.metric), parent.mode,
                                parent.space, config)
    return record, look


def read_final(store: Store, name: str) -> FinalResult:
    """The stored result of a final study (``<study>-final``), grouped by configuration."""
    record = store.require_study(name)
    if record.config.get("kind") != "final":
        raise ConfigError(f"{name!r} is not a finalize run; its finalize runs are in {final_name(name, 1)!r}.")
    cfg = record.config
    trials = store.trials(record.id)
    objectives = record.objectives
    several = objectives.multi or bool(objectives.constraints)
    rows = []
    for c in cfg["configs"]:
        key = json.dumps(c["params"], sort_keys=True)
        runs = [t for t in trials if json.dumps(t.params, sort_keys=True) == key]
        done = [t for t in runs if t.state == TrialState.COMPLETED and t.value is not None]
        values = [float(t.value) for t in done if t.value is not None]
        rows.append(FinalConfig(
            rank=c["rank"], params=c["params"], source=c["source"], study=c.get("study", cfg["parent"]),
            tuned=MeanCI(**c["tuned"]),
            epochs=c["budget"].get("epochs"), trials=[t.number for t in done], values=values,
            test=mean_ci(values) if values else None,
            objectives=_scores(done, objectives.names) if several else {},
            tuned_objectives={n: MeanCI(**ci) for n, ci in (c.get("objectives") or {}).items()},
            feasible=[objectives.feasible(t.values) for t in done] if objectives.constraints else [],
        ))
    for row in rows[1:]:
        row.versus_first = welch(rows[0].values, row.values)
    return FinalResult(study=cfg["parent"], final_study=name, metric=record.metric, tuned_metric=cfg["tuned_metric"],
                       mode=record.mode, fit_on=cfg["fit_on"], seeds=cfg["seeds"], look=cfg.get("look", 1),
                       configs=rows, per=cfg.get("per"), rounds=cfg.get("rounds", "this"),
                       objectives=objectives.names, directions=[d.value for d in objectives.directions],
                       constraints=[str(c) for c in objectives.constraints], pick=cfg.get("pick"),
                       rerank=_pair(cfg.get("rerank")))


def _scores(runs: Sequence[TrialRecord], names: Sequence[str]) -> dict[str, MeanCI]:
    """Each objective's mean and interval over the runs that reported it finitely."""
    out = {}
    for name in names:
        values = [float(v) for t in runs if isinstance(v := t.values.get(name), (int, float))
                  and not isinstance(v, bool) and math.isfinite(v)]
        if values:
            out[name] = mean_ci(values)
    return out


def _pair(value: Any) -> list[int] | None:
    """A stored ``[K, seeds]`` (the database may be someone else's: anything else reads as None)."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
        return [int(value[0]), int(value[1])]
    return None
