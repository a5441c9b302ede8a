"""Stored probe results read back through the store alone (no study is run here), as
``analyze`` shows them: the probe study is written row by row, as ``tuneloop probe`` stores it."""

import pytest
from sqlalchemy import update

import tuneloop as tl
from tuneloop.analysis import analyze
from tuneloop.analysis._probes import BatchResult, ProbeResult, read_probe, stored_probes
from tuneloop.store import schema
from tuneloop.store.store import point_rows

SPACE = tl.Space(lr=tl.LogFloat(1e-4, 1.0), batch_size=tl.Int(8, 2048))


def _probe(store, parent, kind, param, configs, outcomes, mode="max", **extra):
    """A stored probe study: one trial per config, (state, value, seconds, curves) each."""
    record = store.create_study(f"{parent}-probe-{param}", "acc", mode, SPACE,
                                {"kind": "probe", "parent": parent, "probe": kind, "param": param,
                                 "configs": configs, "best": configs[0][param], "seed": 0, **extra})
    for number, (config, (state, value, seconds, curves)) in enumerate(zip(configs, outcomes, strict=True)):
        trial = store.create_trial(record.id, number, config, seed=number)
        points = [(trial, 0, step, name, v) for name, values in curves.items() for step, v in enumerate(values)]
        store.finish_trial(trial, state, value, {"acc": value} if value is not None else {},
                           batch={"metrics": point_rows(points)} if points else None)
        if seconds is not None:  # a batch probe's timing is the trial's duration
            with store.engine.begin() as conn:
                conn.execute(update(schema.trials).where(schema.trials.c.id == trial)
                             .values(started_at=100.0, finished_at=100.0 + seconds))
    return record


@pytest.fixture
def store(storage):
    with tl.Store(storage) as s:
        s.create_study("base", "acc", "max", SPACE, {"seed": 0})
        yield s


def test_a_learning_rate_probe_reads_instability_and_a_clipping_threshold(store):
    configs = [{"lr": 0.01 * f, "batch_size": 64} for f in (1, 2, 4, 8)]
    norms = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    record = _probe(store, "base", "lr", "lr", configs, [
        ("completed", 0.90, None, {"train_loss": [1.0, 0.5], "grad_norm": norms}),
        ("completed", 0.89, None, {"train_loss": [1.0, 0.4]}),
        ("completed", 0.50, None, {"train_loss": [1.0, 0.6]}),  # far below the 1x run: unstable
        ("diverged", None, None, {"train_loss": [1.0, float("nan")]}),
    ])
    result = read_probe(store, record)
    assert isinstance(result, ProbeResult) and result.study == "base" and result.param == "lr"
    assert [r.unstable for r in result.rows][:2] == [None, None]
    assert result.rows[2].unstable.startswith("objective 0.5 against 0.9") and result.rows[3].unstable == "diverged"
    assert result.rows[3].state == tl.TrialState.DIVERGED and result.unstable_from == 4
    assert result.clip == 10.0 and result.clipped_share == 0.0
    assert any("add warmup" in a for a in result.advice)
    assert result.to_dict()["rows"][3]["state"] == "diverged"


def test_a_batch_probe_recommends_the_last_size_that_still_paid(store):
    configs = [{"lr": 0.01, "batch_size": b} for b in (32, 64, 128, 256)]
    _probe(store, "base", "batch", "batch_size", configs, [
        ("completed", 0.9, 8.0, {}), ("completed", 0.9, 4.0, {}), ("completed", 0.9, 3.9, {}),
        ("completed", 0.9, 2.0, {})], min_gain=1.1)
    found = stored_probes(store, "base")
    batch = found["batch"]
    assert set(found) == {"batch"} and isinstance(batch, BatchResult)
    assert [r.batch_size for r in batch.rows] == [32, 64, 128, 256] and batch.recommended == 64
    assert batch.rows[1].speedup == pytest.approx(2.0)


def test_analyze_shows_stored_probes_and_says_when_there_are_none(store):
    by_check = {f.check: f for f in analyze(store, "base")}
    assert by_check["instability"].summary == "No learning-rate probe yet."
    assert by_check["batch size"].summary == "No batch-size probe yet."
    configs = [{"lr": 0.01 * f, "batch_size": 64} for f in (1, 2)]
    _probe(store, "base", "lr", "lr", configs, [("completed", 0.9, None, {}), ("completed", 0.9, None, {})],
           mode="max")
    by_check = {f.check: f for f in analyze(store, "base")}
    assert "stable up to the largest multiple" in by_check["instability"].summary
    assert [row["state"] for row in by_check["instability"].evidence] == ["completed", "completed"]


def test_a_minimized_probe_counts_a_higher_loss_as_worse(store):
    configs = [{"lr": 0.01 * f, "batch_size": 64} for f in (1, 2)]
    record = _probe(store, "base", "lr", "lr", configs, [("completed", 0.10, None, {}),
                                                          ("completed", 0.20, None, {})], mode="min")
    rows = read_probe(store, record).rows
    assert rows[0].unstable is None and rows[1].unstable.startswith("objective 0.2 against 0.1")
