"""The data probe read back through the store alone: power laws with a known answer, stored row by
row as ``tuneloop probe data`` stores them (a run's fraction and training counts are attributes)."""

import math

import numpy as np
import pytest

import tuneloop as tl
from tuneloop.analysis._data_probe import DataResult, data_finding
from tuneloop.analysis._probes import read_probe, stored_probes
from tuneloop.store._batch import LogBatch

FRACTIONS = (0.1, 0.2, 0.4, 0.7, 1.0)
COUNTS = {"class 0": 1000, "class 1": 1000, "class 2": 100}  # class 2 is scarce
EXPONENT = {"class 0": 0.5, "class 1": 0.3, "class 2": 0.5}


def _store_probe(store, seeds=3, noise=0.02, counts=True):
    record = store.create_study("base-probe-data", "val_acc", "max", tl.Space(lr=tl.Float(0, 1)),
                                {"kind": "probe", "parent": "base", "probe": "data", "param": "fraction",
                                 "configs": [], "seed": 0, "plan": [[f, s] for f in FRACTIONS for s in range(seeds)]})
    rng = np.random.default_rng(0)
    for number, (f, _) in enumerate((f, s) for f in FRACTIONS for s in range(seeds)):
        trial = store.create_trial(record.id, number, {"lr": 0.1}, seed=number)
        accs = {}
        batch = LogBatch()
        for name, n in COUNTS.items():  # error = 2 n^-b, with multiplicative noise
            accs[name] = 1 - 2 * (round(f * n)) ** -EXPONENT[name] * math.exp(rng.normal(0, noise))
            batch.slice(trial, 0, 3, slice=name, metric="acc", value=accs[name], n=200)
        attrs = {"fraction": f}
        if counts:
            attrs |= {"train_examples": sum(round(f * n) for n in COUNTS.values()),
                      **{f"train_examples/{k}": round(f * n) for k, n in COUNTS.items()}}
        batch.attrs(trial, attrs)
        value = float(np.mean(list(accs.values())))
        store.finish_trial(trial, "completed", value, {"val_acc": value}, batch=batch.take())
    return record


@pytest.fixture
def store(storage):
    with tl.Store(storage) as s:
        s.create_study("base", "val_acc", "max", tl.Space(lr=tl.Float(0, 1)), {"seed": 0})
        yield s


def test_the_fit_recovers_known_exponents_and_names_the_scarce_slice_first(store):
    result = read_probe(store, _store_probe(store))
    assert isinstance(result, DataResult) and result.counted and result.examples == 2100
    by = {law.slice: law for law in result.slices}
    for name, b in EXPONENT.items():
        assert by[name].b == pytest.approx(b, abs=0.03)
        assert by[name].b_low < b < by[name].b_high
    two = by["class 2"].at(2.0)  # the oracle: 2 n^-0.5 at 100 and at 200 examples
    assert two.gain == pytest.approx(100 * 2 * (100 ** -0.5 - 200 ** -0.5), rel=0.1)
    assert two.gain_low < two.gain < two.gain_high and by["class 2"].examples == 100
    assert [law.slice for law in result.slices] == ["class 2", "class 1", "class 0"]  # class 2: a tenth of the examples
    assert result.advice[-3].startswith("collect ~100 more examples of class 2: +")
    assert result.advice[0].startswith("doubling the training data (~2,100 more examples) forecasts +")
    assert [p["fraction"] for p in by["class 0"].points] == list(FRACTIONS) and by["class 0"].points[0]["runs"] == 3


def test_without_recorded_counts_the_probe_speaks_in_fractions(store):
    result = read_probe(store, _store_probe(store, counts=False))
    assert not result.counted and result.examples is None
    assert [law.slice for law in result.slices] == ["class 2", "class 1", "class 0"]  # equal validation shares: by gain
    assert result.advice[1].startswith("double the examples of class 2: +")
    assert result.slices[0].b == pytest.approx(0.5, abs=0.03)  # on fractions: the same exponent


def test_analyze_reads_the_data_probe_as_a_finding(store):
    assert data_finding(None).summary == "No data probe yet."
    _store_probe(store)
    found = stored_probes(store, "base")["data"]
    finding = data_finding(found)
    assert finding.check == "more data" and "class 2" in finding.summary
    assert finding.evidence[0]["slice"] == "overall" and len(finding.evidence) == 4
    assert "Collect ~100 more examples of class 2" in finding.recommendation or "class 2" in finding.recommendation


def test_the_plot_data_holds_each_fit_with_a_band_that_widens_past_the_data(store):
    from tuneloop.analysis._data_probe import curve
    from tuneloop.views import analysis_view

    assert analysis_view(store, "base")["more_data"] is None
    _store_probe(store)
    shown = analysis_view(store, "base")["more_data"]
    assert [s["slice"] for s in shown["series"]] == ["overall", "class 2", "class 1", "class 0"] and shown["counted"]
    law = stored_probes(store, "base")["data"].slices[0]
    points = curve(law)
    assert points[0]["n"] == pytest.approx(10) and points[-1]["n"] == pytest.approx(1000)  # from 10% to 10x
    assert all(p["low"] < p["error"] < p["high"] for p in points)
    width = [math.log(p["high"] / p["low"]) for p in points]
    assert width[-1] > 2 * min(width)  # an extrapolation is less certain than the fitted range


SPACE = tl.Space(lr=tl.Float(0, 1))


def _probe_of(store, runs, *, metric="val_acc", mode="max"):
    """A stored data probe of ``runs``: (fraction, objective, {slice: accuracy}, attributes) each."""
    record = store.create_study("base-probe-data", metric, mode, SPACE,
                                {"kind": "probe", "parent": "base", "probe": "data", "param": "fraction",
                                 "configs": [], "seed": 0, "plan": [[f, 0] for f, *_ in runs]})
    for number, (f, value, accs, attrs) in enumerate(runs):
        trial = store.create_trial(record.id, number, {"lr": 0.1}, seed=number)
        batch = LogBatch()
        for name, acc in accs.items():
            batch.slice(trial, 0, 3, slice=name, metric="acc", value=acc, n=200)
        batch.attrs(trial, {"fraction": f, **attrs})
        store.finish_trial(trial, "completed", value, {metric: value}, batch=batch.take())
    return record


def _counted(f, counts):
    return {"train_examples": sum(counts.values()), **{f"train_examples/{k}": n for k, n in counts.items() if n}}


def test_slice_names_sort_naturally_whatever_words_and_digits_they_hold():
    from tuneloop.analysis._data_probe import _natural

    names = ["age unknown", "age 20", "x²", "class 10", "age 3", "class 2"]
    assert sorted(names, key=_natural) == ["age 3", "age 20", "age unknown", "class 2", "class 10", "x²"]


def test_a_class_with_no_training_example_has_zero_and_a_slice_that_is_no_class_an_unknown_count(store):
    runs = []
    for f in (0.25, 0.5, 1.0):
        n = {"class 0": round(f * 400), "class 1": round(f * 400), "class 2": 0}  # fit records no class 2
        accs = {"class 0": 1 - n["class 0"] ** -0.5, "class 1": 1 - 2 * n["class 1"] ** -0.5, "class 2": 0.0,
                "night": 1 - 3 * (f * 800) ** -0.5}  # a slice fit(slices=...) logs: no count of its own
        runs.append((f, float(np.mean(list(accs.values()))), accs, _counted(f, n)))
    result = read_probe(store, _probe_of(store, runs))
    by = {law.slice: law for law in result.slices}
    assert result.counted and by["class 2"].examples == 0 and by["class 2"].count_known and by["class 2"].small_data
    assert "class 2 is not learned yet (error 100% with no training examples" in " ".join(result.advice)
    assert not any("~800 training examples" in a for a in result.advice)  # not the whole split's count
    night = by["night"]
    assert night.fitted and not night.count_known and night.gain_per_example is None
    assert not any("night" in a for a in result.advice)  # no per-example gain to rank it by
    assert by["class 0"].count_known and by["class 0"].gain_per_example > 0
    assert next(e for e in data_finding(result).evidence if e["slice"] == "night")["gain per example"] is None


def test_the_rarest_class_measured_at_one_size_is_still_named_for_collection(store):
    runs = []
    for f in (0.25, 0.5, 1.0):
        n = {"class 0": round(f * 400), "class 1": round(f * 400), "class 2": 1}  # one example at every fraction
        accs = {"class 0": 1 - n["class 0"] ** -0.5, "class 1": 1 - 2 * n["class 1"] ** -0.5, "class 2": 0.0}
        runs.append((f, float(np.mean(list(accs.values()))), accs, _counted(f, n)))
    result = read_probe(store, _probe_of(store, runs))
    rare = result.slices[0]
    assert rare.slice == "class 2" and not rare.fitted and rare.small_data and rare.examples == 1
    assert rare.forecasts == [] and rare.gain_per_example is None and rare.error_now == 1.0
    assert any(a.startswith("class 2 is not learned yet (error 100% with ~1 training example,") for a in result.advice)
    from tuneloop.analysis._data_probe import data_plot

    assert "class 2" not in [s["slice"] for s in data_plot(result)["series"]]  # no curve to draw
    assert data_finding(result).evidence[1]["gain at 2x"] is None


def test_an_objective_that_is_no_error_still_shows_the_slices(store):
    runs = []
    for f in (0.25, 0.5, 1.0):
        accs = {"class 0": 1 - (f * 400) ** -0.5, "class 1": 1 - 2 * (f * 400) ** -0.5}
        runs.append((f, 40 * f, accs, {}))  # a score maximized, not in [0, 1]
    result = read_probe(store, _probe_of(store, runs, metric="val_score"))
    finding = data_finding(result)
    assert result.overall is None and len(result.slices) == 2
    assert finding.summary.startswith("No overall curve: val_score is maximized but is not an accuracy in [0, 1]")
    assert "failed runs" not in finding.summary + finding.recommendation
    assert [e["slice"] for e in finding.evidence] == ["class 1", "class 0"]


def test_a_minimized_objective_at_or_below_zero_gets_no_curve_but_its_slices_do(storage):
    with tl.Store(storage) as store:
        store.create_study("base", "val_nll", "min", SPACE, {"seed": 0})
        runs = [(f, -f, {"class 0": 1 - (f * 400) ** -0.5}, {}) for f in (0.25, 0.5, 1.0)]
        result = read_probe(store, _probe_of(store, runs, metric="val_nll", mode="min"))
        assert result.overall is None and "val_nll is minimized but reaches -1" in result.note
        assert result.slices[0].fitted and "failed runs" not in data_finding(result).recommendation


def test_each_gain_keeps_its_unit(storage):
    with tl.Store(storage) as store:
        store.create_study("base", "val_loss", "min", SPACE, {"seed": 0})
        runs = [(f, 0.05 * (f * 1000) ** -0.3, {"class 0": 1 - (f * 400) ** -0.5, "class 1": 1 - (f * 40) ** -0.2}, {})
                for f in (0.25, 0.5, 1.0)]
        result = read_probe(store, _probe_of(store, runs, metric="val_loss", mode="min"))
        assert result.overall.unit == "val_loss" and result.slices[0].unit == "points"
        assert 0 < result.overall.at(2.0).gain < 0.01  # a loss gains in its own units: not "+0.0"
        assert result.advice[0].startswith(f"doubling the training data forecasts {result.overall.at(2.0).gain:+.3g} (")
        assert result.advice[-1].startswith("double the examples of class 0: +") and " points (" in result.advice[-1]
        evidence = data_finding(result).evidence
        assert evidence[0]["unit"] == "val_loss" and evidence[0]["gain at 2x"] != 0


def test_an_extreme_fit_forecasts_huge_errors_instead_of_overflowing():
    from tuneloop.analysis._data_probe import _power_law, curve

    law = _power_law("x", [(0.1, 1e-18, 0.1), (1.0, 1e300, 1.0)], 100, 1, None, "points")
    assert law is not None and all(math.isfinite(v) for f in law.forecasts for v in (f.error, f.gain, f.low))
    law = _power_law("x", [(0.1, 1e-90, 0.1), (0.1, 1e-80, 0.1), (1.0, 1e90, 1.0), (1.0, 1e80, 1.0)], 100, 1, None,
                     "points")
    assert law is not None and law.dof == 2 and all(math.isfinite(p["high"]) for p in curve(law))


HUGE = "1" + "0" * 400  # an int no float holds


def _sql(storage, *statements):
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(storage.removeprefix("sqlite:///"))) as conn:
        for statement, args in statements:
            conn.execute(statement, args)
        conn.commit()


def test_hostile_stored_numbers_never_break_the_reader_analyze_or_the_dashboard(store, storage):
    import json

    from tuneloop.analysis import analyze
    from tuneloop.views import analysis_view

    record = _store_probe(store, seeds=3)
    ids = [t.id for t in sorted(store.trials(record.id), key=lambda t: t.number)]
    config = ('{"kind": "probe", "parent": "base", "probe": "data", "param": "fraction", "configs": [], "seed": 0, '
              '"plan": [[0.1, 1e999], [NaN, 0], "x", [0.2, ' + HUGE + '], [0.2, "one"], [Infinity, 1], 7]}')
    attr = "UPDATE trial_attrs SET value = ? WHERE trial_id = ? AND key = ?"
    _sql(storage, ("UPDATE studies SET config = ? WHERE id = ?", (config, record.id)),
         (attr, ("NaN", ids[0], "fraction")), (attr, ("1e999", ids[1], "fraction")),
         (attr, (HUGE, ids[2], "train_examples")), (attr, ('"many"', ids[3], "train_examples/class 0")),
         (attr, ("-5", ids[4], "train_examples/class 1")), (attr, ("[1, 2]", ids[5], "train_examples/class 2")),
         ("UPDATE slices SET n = 'x' WHERE trial_id = ? AND slice = 'class 0'", (ids[6],)),
         ("UPDATE slices SET step = 'x' WHERE trial_id = ? AND slice = 'class 1'", (ids[7],)),
         ("UPDATE slices SET value = 1e999 WHERE trial_id = ? AND slice = 'class 2'", (ids[8],)),
         ("UPDATE slices SET value = 'high' WHERE trial_id = ? AND slice = 'class 0'", (ids[9],)),
         ("UPDATE slices SET slice = '[red]x[/red]' WHERE trial_id = ? AND slice = 'class 1'", (ids[9],)),
         ("UPDATE slices SET n = 9223372036854775807 WHERE trial_id = ? AND slice = 'class 2'", (ids[9],)),
         ("UPDATE trials SET value = 'abc' WHERE id = ?", (ids[10],)),
         ("UPDATE trials SET value = 1e999 WHERE id = ?", (ids[11],)),
         ("UPDATE trials SET number = 'x' WHERE id = ?", (ids[12],)))
    result = read_probe(store, store.require_study("base-probe-data"))
    assert isinstance(result, DataResult) and not result.unreadable and result.overall is not None
    assert {law.slice for law in result.slices} >= {"class 0", "class 1", "class 2", "[red]x[/red]"}
    finding = next(f for f in analyze(store, "base") if f.check == "more data")
    assert finding.summary.startswith("Error falls as n^-")
    json.dumps(analysis_view(store, "base"), allow_nan=False)
    _sql(storage, ("UPDATE trials SET state = 'bogus' WHERE id = ?", (ids[0],)))  # a row the store cannot read
    finding = next(f for f in analyze(store, "base") if f.check == "more data")
    assert finding.verdict == "warn" and finding.summary.startswith("The data probe study base-probe-data is unreadable")
    assert "\n" not in finding.summary and analysis_view(store, "base")["more_data"] is None


def test_only_the_current_attempt_of_a_run_is_read(store, storage):
    record = _store_probe(store, seeds=1)
    first = min(store.trials(record.id), key=lambda t: t.number)
    before = read_probe(store, record).runs[0].slices["class 0"]
    _sql(storage, ("UPDATE slices SET attempt = 1 WHERE trial_id = ?", (first.id,)),
         ("UPDATE trials SET attempt = 1 WHERE id = ?", (first.id,)))
    batch = LogBatch()  # the interrupted attempt 0 had logged a later step, with another accuracy
    batch.slice(first.id, 0, 99, slice="class 0", metric="acc", value=0.0, n=200)
    batch.slice(first.id, 0, 99, slice="gone", metric="acc", value=0.5, n=200)
    store.write_batch(batch.take())
    run = read_probe(store, record).runs[0]
    assert run.slices["class 0"] == before and "gone" not in run.slices


def test_each_stored_field_is_checked_before_it_is_used():
    from tuneloop.analysis._data_probe import _count, _plan, _slice_counts

    assert _plan({"plan": "x"}) == [] and _plan({"plan": {"a": 1}}) == []
    assert _plan({"plan": [[0.1, math.inf], [math.nan, 0], [math.inf, 0], [0.5, 10**400], [0.5, "1"], [0.5, 2]]}) \
        == [None, None, None, None, None, (0.5, 2)]
    assert [_count(v) for v in (10**400, 10**15, 10**15 - 1, -3, True, 2.0, "7")] == [None, None, 10**15 - 1] + [None] * 4
    assert _slice_counts({"train_examples/class 0": 10**400, "train_examples/class 1": 3, 7: 1}) == {"class 1": 3}
