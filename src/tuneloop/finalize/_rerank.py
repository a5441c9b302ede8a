"""Re-rank before finalizing: the best few configurations, each run over more seeds on validation.

    study.finalize(top=1, seeds=5, rerank=8)                # or: tuneloop finalize STUDY --rerank 8

A configuration that won on one seed is partly a lucky seed (the winner's curse): among 100
configurations within a point of each other, the one that came out on top is usually one whose seed
was kind to it, and it falls back once retrained. ``rerank=K`` runs the K best configurations of
the study again until each has ``rerank_seeds`` completed runs (its earlier runs count), as
ordinary trials of the tuning study on the validation split and with the whole budget (no
scheduler), then finalize chooses among those K by their mean over seeds. Test is still looked at
once, by finalize, after the choice. A rerun resumes: the runs already stored are not run again.

Which K is decided by the tuning runs alone: the re-ranking runs are recorded in the study's config
(``reranked``: their trial numbers, each written as it starts) and left out of that choice, so a
second finalize picks the same K even when re-ranking pulled a winner's mean below a configuration
that ran once (the winner's curse at work), and a killed re-ranking resumes with the same K.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tuneloop._validation import check_positive_int
from tuneloop.callbacks import Callback
from tuneloop.errors import ConfigError
from tuneloop.finalize._select import Candidate
from tuneloop.run import launch
from tuneloop.search import Listed
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState

if TYPE_CHECKING:
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


def tuning_runs(parent: StudyRecord, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The trials of ``parent`` that are not re-ranking runs (which K to re-rank is chosen among these)."""
    reranked = set(parent.config.get("reranked") or [])
    return [t for t in trials if t.number not in reranked]


class _Recorded(Callback):
    """Writes each re-ranking run's number into the study's config as it starts."""

    def __init__(self, store: Store, parent: StudyRecord) -> None:
        self.store, self.parent = store, parent

    def on_trial_start(self, number: int, params: dict[str, Any]) -> None:
        numbers = list(self.parent.config.get("reranked") or [])
        if number not in numbers:
            self.parent.config["reranked"] = [*numbers, number]
            self.store.update_study_config(self.parent.id, self.parent.config)


def rerank_runs(study: Study, store: Store, parent: StudyRecord, candidates: Sequence[Candidate], seeds: int, *,
                executor: Any, workers: int, max_retries: int, callbacks: Sequence[Callback],
                progress: bool) -> list[TrialRecord]:
    """Run each of ``candidates`` in the tuning study until it has ``seeds`` completed runs; return
    the completed runs of those that have them (a configuration whose extra runs failed drops out)."""
    wanted = {_key(c.params): c.params for c in candidates}
    # seeds copies of each; the stored runs of these configurations are replayed into Listed on launch and
    # strike their copies off, so only the missing runs are trained (and a rerun resumes)
    queue = [params for params in wanted.values() for _ in range(seeds)]
    launch(store, parent, study.fn, searcher=Listed(queue), seed=int(parent.config["seed"]), executor=executor,
           workers=workers, max_retries=max_retries, budget=dict(parent.config.get("budget") or study.budget.to_dict()),
           callbacks=[_Recorded(store, parent), *callbacks], experiment_path=study.experiment_path, rules=study.rules,
           progress=progress)
    runs: dict[str, list[TrialRecord]] = {}
    for t in store.trials(parent.id):
        key = _key(t.params)
        if key in wanted and t.state == TrialState.COMPLETED and t.value is not None:
            runs.setdefault(key, []).append(t)
    kept = [t for group in runs.values() if len(group) >= seeds for t in group]
    if not kept:
        raise ConfigError(f"finalize: none of the {len(wanted)} configurations re-ranked in {parent.name!r} completed "
                          f"{seeds} runs (see tuneloop trials {parent.name} --state failed); fix the failures and run "
                          f"finalize again (finished runs are kept).")
    return kept


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
