"""Re-rank before finalizing: the best few configurations, each run over more seeds on validation.

    study.finalize(top=1, seeds=5, rerank=8)                # or: tuneloop finalize STUDY --rerank 8

A configuration that won on one seed is partly a lucky seed (the winner's curse): among 100
configurations within a point of each other, the one that came out on top is usually one whose seed
was kind to it, and it falls back once retrained. ``rerank=K`` takes the K best configurations of
the tuning study and runs each again until it has ``rerank_seeds`` completed runs (its tuning runs
count), on the validation split and with the whole budget (no scheduler); finalize then chooses
among those K by their mean over seeds. Test is still looked at once, by finalize, after the choice.

The extra runs are the trials of a study of their own, ``<study>-rerank``, linked to the tuning
study (as finalize's are ``<study>-final``): they never mix into the tuning study's trials, its
queue or its counts, and which K to re-rank is decided by the tuning study alone, so a second
finalize, or a resumed one, re-ranks the same K. A run that failed is run again next time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneloop._validation import check_positive_int
from tuneloop.errors import ConfigError, StorageError
from tuneloop.finalize._select import Candidate
from tuneloop.objectives import Objectives
from tuneloop.run import launch
from tuneloop.search import Listed
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState

if TYPE_CHECKING:
    from tuneloop.callbacks import Callback
    from tuneloop.study import Study


def check_rerank(rerank: int | None, rerank_seeds: int, per: str | None, rounds: str) -> None:
    """Refuse what re-ranking cannot do, before anything runs."""
    if rerank is None:
        return
    check_positive_int(rerank, "rerank", "finalize")
    check_positive_int(rerank_seeds, "rerank_seeds", "finalize")
    if rerank_seeds < 2:
        raise ConfigError(f"finalize: rerank_seeds={rerank_seeds} runs each configuration once, which ranks by one "
                          f"seed as tuning did; give 2 or more (default 3).")
    if per is not None or rounds != "this":
        raise ConfigError("finalize: rerank chooses among this round's configurations; it cannot be combined with "
                          "per= or rounds='all'. Drop one of them.")


def rerank_name(study: str) -> str:
    return f"{study}-rerank"


def rerank_runs(study: Study, store: Store, parent: StudyRecord, trials: Sequence[TrialRecord],
                candidates: Sequence[Candidate], seeds: int, *, executor: Any, workers: int, max_retries: int,
                callbacks: Sequence[Callback], progress: bool) -> list[TrialRecord]:
    """Run each of ``candidates`` in ``<study>-rerank`` until it has ``seeds`` completed runs, counting
    its completed runs among the tuning ``trials``; return every completed run of the configurations
    that have them (tuning and re-ranking runs), for finalize to choose among by their mean."""
    wanted = {_key(c.params): c.params for c in candidates}
    tuned: dict[str, list[TrialRecord]] = {}
    for t in trials:
        if _key(t.params) in wanted and t.state == TrialState.COMPLETED and t.value is not None:
            tuned.setdefault(_key(t.params), []).append(t)
    record = _rerank_study(store, parent)
    # what the tuning runs leave missing; the re-ranking study's own completed runs are replayed into
    # Listed on launch and strike their copies off (a failed one does not: it runs again)
    queue = [params for key, params in wanted.items() for _ in range(max(0, seeds - len(tuned.get(key, []))))]
    if queue:
        launch(store, record, study.fn, searcher=Listed(queue, retry_failed=True), seed=int(record.config["seed"]),
               executor=executor, workers=workers, max_retries=max_retries, budget=dict(record.config["budget"]),
               callbacks=callbacks, experiment_path=study.experiment_path, rules=study.rules, progress=progress)
    runs = {key: list(group) for key, group in tuned.items()}
    for t in store.trials(record.id):
        if _key(t.params) in wanted and t.state == TrialState.COMPLETED and t.value is not None:
            runs.setdefault(_key(t.params), []).append(t)
    kept = [t for group in runs.values() if len(group) >= seeds for t in group]
    if not kept:
        raise ConfigError(f"finalize: none of the {len(wanted)} configurations re-ranked in {record.name!r} completed "
                          f"{seeds} runs (see tuneloop trials {record.name} --state failed); fix the failures and run "
                          f"finalize again (finished runs are kept, failed ones run again).")
    return kept


def _rerank_study(store: Store, parent: StudyRecord) -> StudyRecord:
    """``<study>-rerank``: found (when it is this study's) or created with the tuning study's budget
    (two finalizes started together: the second finds the first's)."""
    name = rerank_name(parent.name)
    found = store.get_study(name)
    if found is None:
        try:
            return _create(store, parent, name)
        except StorageError:  # another process created it first: checked below like any found one
            found = store.get_study(name)
            if found is None:
                raise
    if found.config.get("kind") != "rerank" or found.config.get("parent") != parent.name:
        raise ConfigError(f"finalize --rerank records its runs in a study named {name!r}, and a study of that name "
                          f"that is not {parent.name!r}'s re-ranking exists; rename or delete it.")
    if not isinstance(found.config.get("seed"), int) or not isinstance(found.config.get("budget"), dict):
        raise ConfigError(f"Corrupt row: study {name!r} has no valid seed or budget in its config; delete it and "
                          f"finalize again.")
    return found


def _create(store: Store, parent: StudyRecord, name: str) -> StudyRecord:
    import random

    budget = parent.config.get("budget")
    config = {"kind": "rerank", "parent": parent.name, "seed": random.randrange(2**31),
              "budget": dict(budget) if isinstance(budget, dict) else {}}
    objectives = parent.objectives
    if objectives != Objectives.of(objectives.primary.name, objectives.primary.direction):
        config.update(objectives.to_config())  # several objectives or constraints: judged as the tuning study
    return store.create_study(name, parent.metric, parent.mode, parent.space, config)


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
