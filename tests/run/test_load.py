"""Load: 10,000 no-op trials through driver and store with 8 worker processes, none lost, none
doubled (throughput is measured by benchmarks/load.py; here it is only printed)."""

import pytest
import time

import trial_functions as tf

import tuneloop as tl
from tuneloop.store import Store


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_ten_thousand_trials_through_eight_workers(storage, capsys):
    study = tl.Study("load", tl.Space(x=tl.Float(-2.0, 2.0)), tf.noop, metric="loss", mode="min", storage=storage,
                     seed=0)
    start = time.perf_counter()
    summary = study.run(10_000, workers=8, searcher="random")
    elapsed = time.perf_counter() - start
    assert summary.outcomes == {"completed": 10_000} and summary.finished_total == 10_000
    with Store(storage) as store:
        trials = store.trials(store.get_study("load").id)
    assert len(trials) == 10_000 and sorted(t.number for t in trials) == list(range(10_000))
    assert all(t.attempt == 0 and t.value == 0.0 for t in trials)
    with capsys.disabled():
        print(f"\n10,000 no-op trials, 8 workers: {elapsed:.1f} s, {10_000 / elapsed:.0f} trials/s")
