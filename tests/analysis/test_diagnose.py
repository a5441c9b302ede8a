"""tuneloop analyze: each check on a study built so that the right answer is known."""

import json
import math
import random

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.analysis import analyze, classify_curve, expected_best
from tuneloop.cli import app


@pytest.fixture
def edge_study(storage):
    study = tl.Study("edge", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), tf.edge_and_nan, metric="score",
                     mode="max", storage=storage, searcher="random")
    study.run(n_trials=40, seed=0)
    return {f.check: f for f in analyze(tl.Store(storage), "edge")}


def test_a_best_region_at_a_bound_is_flagged_with_the_expansion(edge_study):
    f = edge_study["boundaries"]
    assert f.verdict == "warn" and f.evidence[0]["parameter"] == "x" and "Expand x above 1" in f.recommendation


def test_a_region_of_diverged_trials_is_located(edge_study):
    f = edge_study["infeasible"]
    assert f.verdict == "warn" and "y above 0.7" in f.summary and "cut y above 0.7" in f.recommendation
    assert f.evidence[0]["feasible there"] == 0


def test_importance_ranks_the_parameter_that_matters_with_its_spread(edge_study):
    f = edge_study["importance"]
    assert f.evidence[0]["parameter"] == "x" and f.evidence[0]["importance"] > 0.8 and f.evidence[0]["sd"] >= 0
    assert "Spend the next round on x" in f.recommendation


def test_still_improving_best_trials_and_the_step_budget_say_train_longer(edge_study):
    curves = edge_study["curves"]
    assert curves.summary == "Of the best 5 trials: 5 still improving." and "Train longer" in curves.recommendation
    assert edge_study["step budget"].verdict == "warn" and "Train longer" in edge_study["step budget"].recommendation
    assert edge_study["next round"].evidence  # refine would change something


def test_too_few_trials_is_a_problem_and_the_adam_budget_advice_follows_the_count(storage):
    study = tl.Study("few", tl.Space(lr=tl.LogFloat(1e-4, 1e-1), opt=tl.Choice(["adam", "sgd"])), tf.quadratic_lr,
                     metric="loss", mode="min", storage=storage, searcher="random")
    study.run(n_trials=3, seed=0)
    found = {f.check: f for f in analyze(tl.Store(storage), "few")}
    assert found["sampling"].verdict == "problem" and "Only 3 completed trials" in found["sampling"].summary
    assert "tune only the learning rate" in found["adam budget"].summary
    study.run(n_trials=12)
    found = {f.check: f for f in analyze(tl.Store(storage), "few")}
    assert "tune the learning rate and beta1" in found["adam budget"].summary


@pytest.mark.parametrize(("name", "objective", "train", "label"), [
    ("overfit", [(s, 0.5 + 0.1 * s - 0.012 * s * s) for s in range(1, 21)], [(s, 1.0 / s) for s in range(1, 21)],
     "overfitting"),
    ("improving", [(s, 0.5 + 0.02 * s) for s in range(1, 21)], None, "still improving"),
    ("noisy", [(s, 0.7 + (0.15 if s % 2 else -0.15) * (s > 12)) for s in range(1, 21)], None, "noisy at the end"),
    ("early", [(s, 0.9 if s > 2 else 0.5) for s in range(1, 21)], None, "saturated early"),
    ("rising", [(s, 0.6) for s in range(1, 21)], [(s, 0.2 + 0.05 * s) for s in range(1, 21)], "training loss rising"),
    ("nan", [(1, 0.5), (2, math.nan)], None, "diverged"),
])
def test_the_curve_classifier_names_each_shape(name, objective, train, label):
    assert label in classify_curve(objective, "max", train), name


def test_a_healthy_curve_gets_no_label():
    objective = [(s, 0.9 - 0.4 * math.exp(-s / 3)) for s in range(1, 21)]
    assert classify_curve(objective, "max", [(s, math.exp(-s / 3)) for s in range(1, 21)]) == []


def test_expected_best_of_k_matches_simulation():
    rng = random.Random(0)
    values = [rng.random() for _ in range(30)]
    sims = [max(rng.choice(values) for _ in range(5)) for _ in range(20000)]
    assert expected_best(values, 5, "max") == pytest.approx(sum(sims) / len(sims), abs=0.005)
    assert expected_best(values, 1, "min") == pytest.approx(sum(values) / len(values))


def test_analyze_from_the_shell_writes_json(storage, tmp_path, monkeypatch):
    tl.Study("edge", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), tf.edge_and_nan, metric="score",
             mode="max", storage=storage, searcher="random").run(n_trials=20, seed=0)
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "findings.json"
    result = CliRunner().invoke(app, ["analyze", "edge", "--storage", storage, "--json", str(out), "--evidence"])
    assert result.exit_code == 0, result.output
    assert "Analysis of edge" in result.output and "boundaries" in result.output
    saved = json.loads(out.read_text())
    assert [f["check"] for f in saved] == ["importance", "boundaries", "infeasible", "sampling", "isolation", "curves",
                                           "step budget", "instability", "batch size", "more data", "adam budget",
                                           "next round"]
    missing = CliRunner().invoke(app, ["analyze", "nope", "--storage", storage])
    assert missing.exit_code == 1 and "No study named 'nope'" in missing.output


def test_isolation_says_whether_the_scientific_question_is_answered(storage):
    space = tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(5e-3, 2e-2))  # lr matters less than act
    tl.Study("act", space, tf.activation_bowl, metric="val_acc", mode="max", storage=storage,
             scientific=["act"]).run(n_trials=16, seed=0)
    found = {f.check: f for f in analyze(tl.Store(storage), "act")}["isolation"]
    assert found.verdict == "ok" and found.summary.startswith("act=gelu leads act=relu by")
    assert "--per act" in found.recommendation and [r["value"] for r in found.evidence] == ["act=gelu", "act=relu"]
    noise = tl.Space(family=tl.Choice(["a", "b"]), x=tl.Float(0.0, 1.0))
    tl.Study("noise", noise, tf.family_noise, metric="score", mode="max", storage=storage,
             scientific=["family"]).run(n_trials=12, seed=0)
    found = {f.check: f for f in analyze(tl.Store(storage), "noise")}["isolation"]
    assert found.verdict == "warn" and "Not yet answered" in found.summary
    assert {r["from"] for r in found.evidence} == {"its top 3 trials"}
    tl.Study("seeded", noise, tf.family_noise, metric="score", mode="max", storage=storage,
             scientific=["family"]).run(n_trials=12, seeds=3, seed=0)
    found = {f.check: f for f in analyze(tl.Store(storage), "seeded")}["isolation"]
    assert {r["from"] for r in found.evidence} == {"3 seeds of its best configuration"}  # --seeds: the CI of seeds


def test_the_next_round_cuts_the_region_where_trials_diverged(storage):
    from tuneloop.analysis._refine import refine_space

    tl.Study("edge", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), tf.edge_and_nan, metric="score",
             mode="max", storage=storage, searcher="random").run(n_trials=40, seed=0)
    store = tl.Store(storage)
    record = store.require_study("edge")
    new, changes = refine_space(record.space, store.trials(record.id), "max")
    cut = min(t.params["y"] for t in store.trials(record.id) if t.state == "diverged")
    assert new["y"].high <= cut and "cut above" in {c.name: c.reason for c in changes}["y"]


def test_very_bad_trials_count_as_infeasible_and_their_region_is_found(storage):
    tl.Study("bad", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), tf.very_bad_corner, metric="score",
             mode="max", storage=storage, searcher="random").run(n_trials=40, seed=0)
    found = {f.check: f for f in analyze(tl.Store(storage), "bad")}["infeasible"]
    assert found.verdict == "warn" and "very bad" in found.summary and "y above 0.8" in found.summary


def test_a_trend_toward_a_bound_warns_and_refine_expands_it_though_not_every_best_trial_is_there(storage):
    """Issue 21's case: x keeps improving toward its upper bound while y and z matter as much, so the best
    10% are not all in x's outer 10%; the old all-in-the-edge rule was silent, this one warns."""
    from tuneloop.analysis._refine import refine_space

    space = tl.Space(x=tl.Float(0.0, 10.0), y=tl.LogFloat(1e-4, 1e-1), z=tl.Float(-1.0, 1.0))
    study = tl.Study("trend", space, None, metric="loss", mode="min", storage=storage, searcher="random", seed=3)
    rng = random.Random(0)
    for _ in range(100):
        trial = study.ask()
        assert trial is not None
        p = trial.params
        score = p["x"] / 10 - ((math.log10(p["y"]) + 2.5) / 1.5) ** 2 - p["z"] ** 2 + rng.gauss(0, 0.05)
        study.tell(trial, -score)
    store = tl.Store(storage)
    record = store.require_study("trend")
    trials = store.trials(record.id)
    top = sorted(trials, key=lambda t: float(t.value or 0.0))[:10]  # every trial completed: all have a value
    assert not all(t.params["x"] >= 9 for t in top)  # the old rule's case does not hold: it would stay silent
    f = {f.check: f for f in analyze(store, "trend")}["boundaries"]
    assert f.verdict == "warn" and [r["parameter"] for r in f.evidence] == ["x"]
    assert f.evidence[0]["bound"] == "upper 10"
    assert "still improves" in f.summary and "Expand x above 10 (tuneloop refine trend" in f.recommendation
    new, changes = refine_space(record.space, trials, "min")
    reason = {c.name: c.reason for c in changes}["x"]
    x, y = new["x"], new["y"]
    assert isinstance(x, tl.Float) and isinstance(y, tl.LogFloat)
    assert x.high > 10 and "expanded above it (the objective still improves" in reason
    assert y.low >= 1e-4 and y.high <= 1e-1  # the optimum inside stays inside
