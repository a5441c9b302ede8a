"""analyze on a study with several objectives or constraints: the front's growth, the parameters that
trade one objective for another, the constraint that breaks most (issue 19)."""

import random

import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.analysis import analyze
from tuneloop.analysis._diagnose import StudyData
from tuneloop.analysis._front import check_constraints, check_front_moving, check_tradeoffs
from tuneloop.cli import app
from tuneloop.objectives import Objectives
from tuneloop.store import StudyRecord, TrialRecord

SPACE = tl.Space(a=tl.Float(0.0, 1.0), b=tl.Float(0.0, 1.0), c=tl.Float(0.0, 1.0))


def study(rows, constraints=None):
    """A study record (acc max, latency_ms min) and one completed trial per (params, values) row."""
    objectives = Objectives.of(objectives={"acc": "max", "latency_ms": "min"}, constraints=constraints)
    record = StudyRecord(1, "s", "acc", "max", SPACE, objectives.to_config(), 0.0, 0.0)
    trials = [TrialRecord(i, i, "completed", params, 0, 0, values["acc"], values, None, 0.0, 0.0, 1.0)
              for i, (params, values) in enumerate(rows)]
    return StudyData(record, trials, {})


def point(acc, latency):
    return {"a": 0.5, "b": 0.5, "c": 0.5}, {"acc": acc, "latency_ms": latency}


def test_a_front_found_early_has_settled_and_one_still_growing_at_the_end_is_moving():
    front = [point(0.5 + 0.1 * k, 1.0 + k) for k in range(5)]
    dominated = [point(0.4, 9.0)] * 15
    settled = check_front_moving(study(front + dominated))
    assert settled.verdict == "ok" and "added 0%" in settled.summary and "settled" in settled.summary
    assert settled.evidence[-1]["share of the end"] == 1.0
    moving = check_front_moving(study(dominated + front))  # the same trials, the front found last
    assert moving.verdict == "warn" and "still moving" in moving.summary and "Run more trials" in moving.recommendation
    assert "last 5 of 20" in moving.summary
    # over the last 2 trials alone the gain is smaller, but still there
    assert "last 2 of 20" in check_front_moving(study(dominated + front), last=2).summary
    few = check_front_moving(study(front))
    assert few.verdict == "info" and "too few" in few.summary


def test_a_parameter_raising_accuracy_and_latency_together_is_a_trade_off_and_noise_is_not():
    rng = random.Random(0)
    rows = []
    for _ in range(40):
        a, b, c = rng.random(), rng.random(), rng.random()
        rows.append(({"a": a, "b": b, "c": c}, {"acc": 0.5 + 0.4 * a + 0.2 * c + 0.02 * rng.random(),
                                                 "latency_ms": 1.0 + 3.0 * a - 1.0 * c + 0.05 * rng.random()}))
    f = check_tradeoffs(study(rows))
    kinds = {r["parameter"]: r["kind"] for r in f.evidence}
    assert kinds == {"a": "trade-off", "b": "no clear effect", "c": "helps"}, f.evidence
    a = next(r for r in f.evidence if r["parameter"] == "a")
    assert a["rho: acc (max)"] > 0.5 and a["rho: latency_ms (min)"] > 0.5 and a["raising it"] == "improves acc and worsens latency_ms"
    assert f.summary.startswith("a trades: raising it improves acc and worsens latency_ms; c helps")
    assert f.recommendation.startswith("Keep searching a: where a configuration sits on the front")
    assert ". Move c toward" in f.recommendation and "Fix b or search it less" in f.recommendation


def test_infeasible_trials_are_counted_and_the_constraint_broken_most_is_named():
    rows = [point(0.9, 5.0)] * 6 + [point(0.6, 1.0)] * 3 + [({"a": 0.1}, {"acc": 0.2})]  # the last lacks latency
    f = check_constraints(study(rows, constraints={"latency_ms": ("<=", 2.0), "acc": (">=", 0.5)}))
    assert f.verdict == "problem" and f.summary.startswith("7 of 10 completed trials (70%) broke a constraint")
    assert "latency_ms <= 2 broke most (7 trials)" in f.summary and "never reported" in f.recommendation
    assert [(r["constraint"], r["broken by"], r["worst"]) for r in f.evidence] == [
        ("latency_ms <= 2", 7, 5.0), ("acc >= 0.5", 1, 0.2)]
    assert check_constraints(study([point(0.6, 1.0)], constraints={"latency_ms": ("<=", 2.0)})).verdict == "ok"


def test_analyze_adds_the_front_checks_only_where_they_apply(storage, monkeypatch):
    mo = tl.Study("mo", tl.Space(width=tl.Choice([1, 2, 3, 4])), tf.heldout_tradeoff,
                  objectives={"val_acc": "max", "latency_ms": "min"}, constraints={"latency_ms": ("<=", 3.0)},
                  storage=storage)
    mo.run(searcher="grid")
    checks = [f.check for f in analyze(tl.Store(storage), "mo")]
    assert checks[3:7] == ["sampling", "front moving", "trade-offs", "constraints"]
    single = tl.Study("one", tl.Space(x=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss", mode="min", storage=storage)
    single.run(n_trials=3, seed=0)
    assert not {"front moving", "trade-offs", "constraints"} & {f.check for f in analyze(tl.Store(storage), "one")}
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["analyze", "mo", "--last", "2", "--storage", storage])
    assert shown.exit_code == 0, shown.output
    assert "front moving" in shown.output and "1 of 4 completed trials (25%) broke a constraint" in shown.output


def test_the_best_so_far_skips_trials_that_break_a_constraint():
    from tuneloop.analysis import history

    data = study([point(0.6, 1.0), point(0.9, 5.0), point(0.7, 1.5)], constraints={"latency_ms": ("<=", 2.0)})
    assert history(data.trials, "max")["best"] == [0.6, 0.9, 0.9]  # without objectives: as before
    assert history(data.trials, "max", data.record.objectives)["best"] == [0.6, 0.6, 0.7]


def test_the_cheap_end_of_a_front_is_never_an_outlier_to_cut_but_broken_constraints_are():
    """With one objective a trial far worse than the median is 'very bad' and refine cuts its region;
    with several, the low-accuracy, low-latency end of the front is a trade-off, not a failure."""
    from tuneloop.analysis._refine import infeasible

    cheap = [point(0.2, 0.01 * k) for k in range(1, 4)]
    accurate = [point(0.9 + 0.001 * k, 1.0 + k) for k in range(12)]
    data = study(cheap + accurate)
    assert infeasible(data.trials, "max") == data.trials[:3]  # one objective: the cheap three are outliers
    assert infeasible(data.trials, "max", data.record.objectives) == []  # a front: none is
    broken = study(cheap + accurate, constraints={"latency_ms": ("<=", 5.0)})
    assert infeasible(broken.trials, "max", broken.record.objectives) == broken.trials[8:]  # latency 6 to 12
