"""The ledger on a real store: ranking, states, decisions, chain, calibration, YAML, CLI, A/B end to end."""

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.ideas import Ledger, calibration, export_yaml, import_yaml, priority


@pytest.fixture
def ledger(storage):
    return Ledger(storage)


def test_ranking_follows_the_formula_and_ties_go_to_the_cheapest(ledger):
    a = ledger.add("cheap likely", hours=0.5, complexity=1, gain=0.01, p=0.5)
    b = ledger.add("complex", hours=0.5, complexity=5, gain=0.01, p=0.5)
    c = ledger.add("same score, dearer", hours=1.0, complexity=1, gain=0.02, p=0.5)
    d = ledger.add("same score, cheaper", hours=0.25, complexity=1, gain=0.005, p=0.5)
    assert a.priority == pytest.approx(priority(0.5, 0.01, 0.5, 1)) == pytest.approx(0.01)
    assert b.priority == pytest.approx(0.01 / 2.0)  # complexity 5: divided by 1 + 0.25 * 4
    assert [i.id for i in ledger.ideas()] == [d.id, a.id, c.id, b.id]


@pytest.mark.parametrize("kwargs, message", [
    ({"hours": 0}, "The 'hours' argument of idea must be a positive number"),
    ({"complexity": 6}, "The 'complexity' argument of idea must be an integer from 1"),
    ({"p": 1.5}, "The 'p' argument of idea must be a probability between 0 and 1"),
])
def test_bad_estimates(ledger, kwargs, message):
    with pytest.raises(tl.ConfigError, match=message):
        ledger.add("x", **{"hours": 1, "complexity": 1, "gain": 0.01, "p": 0.2, **kwargs})


def test_states_decisions_chain_and_baseline_config(ledger):
    a = ledger.add("AdamW", hours=0.5, complexity=1, gain=0.01, p=0.3, config={"optimizer": "adamw"})
    b = ledger.add("warmup", hours=0.5, complexity=1, gain=0.01, p=0.3, config={"schedule": "warmup_cosine"})
    c = ledger.add("dropout", hours=0.5, complexity=1, gain=0.01, p=0.3, config={"dropout": 0.2})
    assert ledger.start(a.id).state == "testing"
    for idea, effect in ((a, 0.012), (b, 0.004)):
        ledger.record_test(idea.id, metric="val_acc", mode="max", seeds=[1, 2], baseline=[0.7, 0.7],
                           variant=[0.7 + effect] * 2, result={"effect": effect, "message": "m"})
        ledger.decide(idea.id, "adopt", note="real gain", actual_hours=1.0)
    assert ledger.decide(c.id, "reject", note="worse").state == "rejected"
    chain = ledger.baseline_chain()
    assert [s["id"] for s in chain] == [a.id, b.id] and chain[-1]["cumulative"] == pytest.approx(0.016)
    assert ledger.baseline_config() == {"optimizer": "adamw", "schedule": "warmup_cosine"}
    with pytest.raises(tl.ConfigError, match="The 'decision' argument of idea decide must be one of"):
        ledger.decide(c.id, "maybe")


def test_calibration_scores_predictions_against_outcomes(ledger):
    good = ledger.add("a", hours=1, complexity=1, gain=0.02, p=0.8)
    bad = ledger.add("b", hours=2, complexity=1, gain=0.01, p=0.6)
    ledger.decide(good.id, "adopt", actual_hours=2.0)
    ledger.decide(bad.id, "reject", actual_hours=2.0)
    ledger.add("undecided", hours=1, complexity=1, gain=0.01, p=0.5)
    c = calibration(ledger.ideas(), {good.id: 0.01})
    assert c.decided == 2 and c.base_rate == 0.5
    assert c.brier == pytest.approx(((0.8 - 1) ** 2 + (0.6 - 0) ** 2) / 2) and c.brier_base_rate == pytest.approx(0.25)
    assert (c.gain_predicted, c.gain_realized) == (0.02, 0.01) and c.hours_ratio == pytest.approx(4 / 3)


def test_yaml_round_trip(ledger, tmp_path, storage):
    ledger.add("x", hours=1, complexity=2, gain=0.01, p=0.2, tags=["opt"], config={"lr": 0.01})
    ledger.decide(ledger.add("y", hours=2, complexity=1, gain=0.0, p=0.5).id, "park", note="later")
    path = tmp_path / "ideas.yaml"
    path.write_text(export_yaml(ledger))
    other = Ledger(f"sqlite:///{tmp_path / 'other.db'}")
    assert import_yaml(other, path) == 2
    assert [(i.title, i.state, i.tags, i.config) for i in other.ideas()] == \
        [(i.title, i.state, i.tags, i.config) for i in ledger.ideas()]
    path.write_text("ideas: [{hours: 1}]")
    with pytest.raises(tl.ConfigError, match="Idea 1 in .* needs at least a title"):
        import_yaml(other, path)


def test_cli_add_list_show_decide_calibration(storage, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    run = lambda *a: CliRunner().invoke(app, ["idea", *map(str, a), "--storage", storage])  # noqa: E731
    assert run("seed-catalog").exit_code == 0
    added = run("add", "Bigger batch", "--hours", 0.2, "--gain", 0.005, "--p", 0.1, "--config", "batch_size=256")
    assert added.exit_code == 0 and "Added idea 11" in added.output
    listing = run("list").output
    assert "Ensemble the top trials" in listing and "priority = p x gain / (hours x (1 + 0.25 x" in listing
    assert run("decide", 11, "reject", "--note", "no gain").exit_code == 0
    assert '"batch_size": 256' in run("show", 11).output and "no gain" in run("show", 11).output
    assert "1 decided ideas; success base rate 0" in run("calibration").output
    missing = run("show", 99)
    assert missing.exit_code == 1 and "No idea 99" in missing.output and "Traceback" not in missing.output


@pytest.mark.slow  # six MNIST-1D trainings (7 s): .ci/run runs it in its second pytest call
def test_ab_test_on_the_mnist1d_mlp_stores_a_verdict(storage, monkeypatch):
    from tuneloop.ideas import ab_test

    from pathlib import Path

    study = tl.load_study(Path(__file__).parents[2] / "examples" / "mnist1d_mlp.py")
    monkeypatch.setattr(study, "budget", tl.Budget(epochs=2))  # the example's study is shared in the process
    monkeypatch.setattr(study, "storage", storage)
    study.run(n_trials=2, seed=0)
    ledger = Ledger(storage)
    idea = ledger.add("more weight decay", hours=0.2, complexity=1, gain=0.01, p=0.3, config={"weight_decay": 1e-3})
    result = ab_test(ledger, idea.id, study, seeds=3)
    assert result.verdict in ("better", "worse", "inconclusive") and result.seeds == 3
    (stored,) = ledger.tests(idea.id)
    assert stored["result"]["verdict"] == result.verdict and len(stored["baseline"]) == len(stored["variant"]) == 3
    assert ledger.get(idea.id).state == "testing" and ledger.get(idea.id).links[0]["baseline_of"] == "mnist1d-mlp"
    arms = tl.Study(stored["study"], tl.Space(x=tl.Float(0, 1)), print, metric="val_acc", mode="max", storage=storage)
    pairs = {(t.params["arm"], t.params["seed_index"]) for t in arms.store(None).trials(
        arms.store(None).get_study(stored["study"]).id)}
    assert len(pairs) == 6  # both arms on the same three seeds


def test_cli_idea_test_runs_both_arms_and_stores_the_verdict(write_experiment, tmp_path, monkeypatch):
    from shared import QUADRATIC_EXPERIMENT

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    assert CliRunner().invoke(app, ["run", str(exp), "--trials", "3", "--seed", "0"]).exit_code == 0
    assert CliRunner().invoke(app, ["idea", "add", "x at its optimum", "--gain", "0.1"]).exit_code == 0
    result = CliRunner().invoke(app, ["idea", "test", "1", str(exp), "--variant", "x=0.5,y=0.0", "--seeds", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("No check ladder: ")  # the file defines no tl.Checks: said in one line
    assert "\nbetter: " in result.output and "Stored with idea 1" in result.output  # loss fell on every seed
    (stored,) = Ledger().tests(1)
    assert stored["result"]["verdict"] == "better" and stored["seeds"] == [10000, 10001, 10002]
    bad = CliRunner().invoke(app, ["idea", "test", "1", str(exp), "--variant", "x0.5"])
    assert bad.exit_code == 1 and "An override is NAME=VALUE" in bad.output
