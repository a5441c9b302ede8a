"""A night of the night shift in a real SQLite store, for the morning report's tests.

Four jobs (2 done, 1 failed with a reason, 1 queued next with an estimate), two idea tests (one
adopted by rule, one rejected) and one broken idea, written through the store's job functions and
the ideas ledger. The jobs are claimed with start times in the past, so each lasted about as long
as ``HOURS`` says, without sleeping.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from tuneloop.ideas import Ledger, compare
from tuneloop.store import JobState, Store

HOURS = {"train": 3.0, "probe": 2.0, "crash": 1.0}  # each job's start, in hours before now
MARKUP = "[red]x[/red]<script>alert(1)</script><!--<script>"  # Rich markup, HTML that would run, a comment opener
TAIL = "epoch 1\nepoch 2\nTraceback (most recent call last):\nRuntimeError: CUDA out of memory\n"


@dataclass
class Night:
    storage: str
    jobs: dict[str, int]  # title -> job id
    adopted: int
    rejected: int
    broken: int
    started: float  # the first job's start


def _job(store: Store, title: str, kind: str = "run") -> int:
    return store.add_job(kind, [f"/x/{title}.py"], title, files={}, signature="sig").id


def _run(store: Store, job_id: int, start: float, state: JobState, code: int, tail: str = "ok\n",
         reason: str | None = None) -> None:
    job = store.claim_job(store.job(job_id), "runner-1", 1, start)
    assert job is not None
    assert store.finish_job(job_id, "runner-1", state, code, tail, reason)


def _test(ledger: Ledger, idea_id: int, baseline: list[float], variant: list[float]) -> None:
    result = compare(baseline, variant, "max", predicted_gain=ledger.get(idea_id).gain)
    ledger.record_test(idea_id, metric="acc", mode="max", seeds=[10_000, 10_001, 10_002], baseline=baseline,
                       variant=variant, result=result.to_dict(), study=f"idea-{idea_id}-test-1")


def build_night(storage: str, *, title: str = "wider model") -> Night:
    """Write the night; ``title``: the adopted idea's title (a test passes markup)."""
    now = time.time()
    with Store(storage) as store:
        ids = {name: _job(store, name) for name in ("train", "probe", "crash", "next")}
        _run(store, ids["train"], now - HOURS["train"] * 3600, JobState.DONE, 0)
        _run(store, ids["probe"], now - HOURS["probe"] * 3600, JobState.DONE, 0)
        _run(store, ids["crash"], now - HOURS["crash"] * 3600, JobState.FAILED, 1, TAIL, "exit code 1")
        store.note_job(ids["next"], "estimated 2.1 h, 1.4 h left in the window", 7560.0)
        ledger = Ledger(store)
        adopted = ledger.add(title, hours=1, complexity=1, gain=0.02, p=0.3).id
        rejected = ledger.add("label smoothing", hours=0.5, complexity=1, gain=0.01, p=0.2).id
        broken = ledger.add("fp16", hours=0.5, complexity=1, gain=0.01, p=0.5).id
        _test(ledger, adopted, [0.80, 0.81, 0.79], [0.83, 0.835, 0.82])  # better
        _test(ledger, rejected, [0.80, 0.81, 0.79], [0.78, 0.79, 0.775])  # worse
        ledger.decide(adopted, "adopt", note="adopted by rule: better and p < 0.05")
        ledger.decide(rejected, "reject", note="worse")
        ledger.mark_broken(broken, check="overfit_batch", message="loss stayed at 2.3",
                           evidence={"loss": [2.3, 2.3, 2.31]}, next_step="check the labels")
    return Night(storage, ids, adopted, rejected, broken, now - HOURS["train"] * 3600)


def spoil(night: Night) -> int:
    """Make the night's SQLite file hostile, as a forged database would be: a 10,000-character job and idea
    title, control characters and markup in an output tail, a corrupt job row, links and a test result
    that are not JSON, NaN, overflowing and huge numbers in a verdict, estimates that are not numbers.
    Returns the id of the queued job with the long title (the other queued job is the corrupt one)."""
    from tuneloop.ideas import Ledger

    with Store(night.storage) as store:
        long = store.add_job("run", ["/x/a.py"], "y" * 10_000, files={}, signature="sig").id
        Ledger(store).add("z" * 10_000, hours=1, complexity=1, gain=0.01, p=0.2)
    con = sqlite3.connect(night.storage.removeprefix("sqlite:///"))
    con.execute("update jobs set tail = ? where id = ?", ("\x1b[2J" + "w" * 20_000 + "\nlast [bold]", night.jobs["crash"]))
    con.execute("update jobs set estimate_s = 'soon' where id = ?", (night.jobs["next"],))  # a corrupt row
    con.execute("update ideas set links = '{not json', state = 'broken', decided_at = ? where id = ?",
                (time.time(), night.rejected))
    con.execute("update idea_tests set result = ? where idea_id = ?",
                (json.dumps({"verdict": MARKUP, "effect": "NaN", "ci_low": 1e308 * 10, "ci_high": 10**400,
                             "p_value": None, "seeds": 2**80, "message": "m" * 10_000}).replace('"NaN"', "NaN"),
                 night.adopted))
    con.execute("insert into idea_tests (idea_id, created_at, metric, mode, seeds, baseline, variant, result) "
                "values (?, ?, 'acc', 'max', '[]', '[]', '[]', '[1, 2')", (night.broken, time.time()))
    con.execute("update ideas set p = 'high', gain = 1e999 where id = ?", (night.adopted,))
    con.commit()
    con.close()
    return long
