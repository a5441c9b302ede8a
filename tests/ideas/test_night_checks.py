"""The night shift's idea tests: the variant's check ladder before its A/B test (a broken variant stops
there, marked ``broken`` with the evidence), and adopt-if rules (adopted by rule, the next test's baseline,
calibration), on real SQLite files with tiny real experiments."""

import math
import textwrap

import pytest
from shared import QUADRATIC_EXPERIMENT, sqlite_rows
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.ideas import AdoptRule, Comparison, Ledger, calibration

# a deterministic study (so paired differences are exact) with a check ladder on a tiny learnable task; the
# model builder takes the checked configuration: ``huge`` breaks the output layer's initialization
EXPERIMENT = """
    import numpy as np
    import torch
    import tuneloop as tl
    from tuneloop.torch import MLP

    space = tl.Space(x=tl.Float(-2.0, 2.0), y=tl.Float(-2.0, 2.0))


    def objective(trial):
        return {"loss": (trial.params.x - 0.5) ** 2 + trial.params.y ** 2}


    def build(p):
        net = MLP(8, 4, width=p.get("width", 16))
        if p.get("huge"):
            with torch.no_grad():
                net[-1].weight.mul_(SCALE)
        return net


    SCALE = 100
    _rng = np.random.default_rng(0)
    _x = _rng.normal(size=(320, 8)).astype("float32")
    _y = (_x @ _rng.normal(size=(8, 4))).argmax(1)
    study = tl.Study("quad", space, objective, metric="loss", mode="min", searcher="random", executor="inline")
    checks = tl.Checks(build, train=(_x[:256], _y[:256]), val=(_x[256:], _y[256:]), fit={"lr": 1e-2}, stages=[],
                       baselines=False)
"""


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread is fastest, and several spin against other processes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def night(tmp_path, monkeypatch, one_thread):
    """(invoke, db path, experiment path): a study of 3 trials run, its file defining a check ladder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "night.db"
    exp = tmp_path / "exp.py"
    exp.write_text(textwrap.dedent(EXPERIMENT))

    def invoke(*args):
        return CliRunner().invoke(app, [*map(str, args), "--storage", f"sqlite:///{db}"])

    assert invoke("run", exp, "--trials", 3, "--seed", 0).exit_code == 0
    return invoke, db, exp


def _studies(db):
    return [name for (name,) in sqlite_rows(db, "select name from studies order by id")]


def test_a_variant_failing_a_rung_is_broken_no_ab_trial_runs_and_its_fix_is_tested_again(night):
    invoke, db, exp = night
    assert invoke("idea", "add", "wider net", "--config", "width=24").exit_code == 0
    result = invoke("idea", "test", 1, exp, "--variant", "huge=1", "--seeds", 2)
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "FAIL loss at initialization" in text and "evidence:" in text and "next step:" in text
    assert "Idea 1 is broken" in text and "the A/B test did not run" in text and "Traceback" not in text
    ledger = Ledger(f"sqlite:///{db}")
    idea = ledger.get(1)
    assert idea.state == "broken" and idea.note.startswith("failed check loss at initialization: cross-entropy")
    assert idea.decided_at is not None
    broken = idea.links[-1]["broken"]  # the contract the morning report reads
    assert broken["check"] == "loss at initialization" and broken["message"] in idea.note
    assert broken["evidence"]["loss"] > 5 and broken["next_step"].startswith("scale the last layer")
    assert _studies(db) == ["quad"] and ledger.tests(1) == []  # no A/B study, no trial, no verdict
    assert calibration(ledger.ideas(), {}).decided == 0 and calibration(ledger.ideas(), {}).broken == 1
    assert "1 broken ideas" in invoke("idea", "calibration").output

    # fixed: the idea's own config (width 24) passes the whole ladder, then the A/B test runs
    fixed = invoke("idea", "test", 1, exp, "--seeds", 2)
    assert fixed.exit_code == 0, fixed.output
    assert "pass overfit a tiny batch" in fixed.output and "Stored with idea 1" in fixed.output
    assert ledger.get(1).state == "testing" and _studies(db) == ["quad", "idea-1-test-1"]
    assert len(sqlite_rows(db, "select t.id from trials t join studies s on s.id = t.study_id "
                               "where s.name = 'idea-1-test-1' and t.state = 'completed'")) == 4
    assert ledger.get(1).links[-2]["checks"]["passed"] >= 8  # the ladder's rungs and time, for idea plan


def test_a_variant_file_runs_its_own_ladder(night, tmp_path):
    invoke, db, exp = night
    variant = tmp_path / "variant.py"
    variant.write_text(textwrap.dedent(EXPERIMENT).replace("width=p.get(\"width\", 16)", "width=16")
                       .replace("if p.get(\"huge\"):", "if True:"))
    assert invoke("idea", "add", "a new head").exit_code == 0
    result = invoke("idea", "test", 1, exp, "--variant", variant, "--seeds", 2)
    assert result.exit_code == 1 and "its own check ladder" in result.output, result.output
    assert Ledger(f"sqlite:///{db}").get(1).state == "broken" and _studies(db) == ["quad"]


def test_without_a_ladder_or_with_no_checks_the_ab_test_runs_as_before(night, write_experiment):
    invoke, db, exp = night
    assert invoke("idea", "add", "broken on purpose").exit_code == 0
    skipped = invoke("idea", "test", 1, exp, "--variant", "huge=1", "--seeds", 2, "--no-checks")
    assert skipped.exit_code == 0 and "Checking" not in skipped.output, skipped.output
    assert Ledger(f"sqlite:///{db}").get(1).state == "testing"

    plain = write_experiment(QUADRATIC_EXPERIMENT, name="plain.py")
    assert invoke("run", plain, "--trials", 2, "--seed", 0).exit_code == 0
    assert invoke("idea", "add", "x at its optimum").exit_code == 0
    result = invoke("idea", "test", 2, plain, "--variant", "x=0.5,y=0.0", "--seeds", 2)
    assert result.exit_code == 0, result.output
    assert "No check ladder: " in result.output and "defines no tl.Checks" in result.output


def test_adopt_if_adopts_when_the_rule_holds_and_the_next_test_uses_the_new_baseline(night):
    invoke, db, exp = night
    ledger = Ledger(f"sqlite:///{db}")
    for title in ("x at its optimum", "y off zero", "y a little off"):
        assert invoke("idea", "add", title).exit_code == 0
    result = invoke("idea", "test", 1, exp, "--variant", "x=0.5,y=0.0", "--seeds", 2, "--no-checks",
                    "--adopt-if", "better and p < 0.01")
    assert result.exit_code == 0 and "Adopted idea 1 by rule 'better and p < 0.01'" in result.output, result.output
    idea = ledger.get(1)
    assert idea.state == "adopted" and idea.note.startswith("adopted by rule 'better and p < 0.01': better: ")
    assert ledger.baseline_config() == {"x": 0.5, "y": 0.0}
    assert [step["id"] for step in ledger.baseline_chain()] == [1]
    c = calibration(ledger.ideas(), {1: ledger.tests(1)[-1]["result"]["effect"]})
    assert (c.decided, c.base_rate) == (1, 1.0) and c.gain_realized > 0
    assert "1 decided ideas; success base rate 1" in invoke("idea", "calibration").output

    # the same night's next test starts from the adopted baseline: x = 0.5, y = 0 (loss 0 on every seed)
    worse = invoke("idea", "test", 2, exp, "--variant", "y=0.5", "--seeds", 2, "--no-checks",
                   "--adopt-if", "better or (effect > 0 and low > 0)")
    assert worse.exit_code == 0 and "does not hold: idea 2 is not adopted" in worse.output, worse.output
    assert ledger.tests(2)[-1]["baseline"] == [0.0, 0.0] and ledger.get(2).state == "testing"
    none = invoke("idea", "test", 3, exp, "--variant", "y=0.1", "--seeds", 2, "--no-checks")
    assert none.exit_code == 0 and ledger.get(3).state == "testing"  # no rule: never adopted by itself
    assert ledger.baseline_config() == {"x": 0.5, "y": 0.0}


@pytest.mark.parametrize("rule", ["better and p <", "p << 0.1", "better and eval(1)", "", "effect > nan",
                                  "(better", "better p < 0.1", "x" * 10_000])
def test_a_bad_rule_is_one_line_before_anything_runs(night, rule):
    invoke, db, exp = night
    assert invoke("idea", "add", "x at its optimum").exit_code == 0
    result = invoke("idea", "test", 1, exp, "--variant", "x=0.5", "--adopt-if", rule)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "cannot be read" in result.output and "a rule is terms joined by 'and'/'or'" in " ".join(result.output.split())
    assert _studies(db) == ["quad"] and Ledger(f"sqlite:///{db}").get(1).state == "proposed"
    queued = invoke("queue", "add", "idea-test", 1, exp, "--adopt-if", rule)
    assert queued.exit_code == 1 and "cannot be read" in queued.output and "Traceback" not in queued.output
    assert sqlite_rows(db, "select id from jobs") == []


def test_queue_add_keeps_a_good_rule(night):
    invoke, db, exp = night
    result = invoke("queue", "add", "idea-test", 1, exp, "--adopt-if", "better and p < 0.01")
    assert result.exit_code == 0, result.output
    ((args,),) = sqlite_rows(db, "select args from jobs")
    assert "better and p < 0.01" in args


def _comparison(verdict="better", effect=0.02, low=0.01, high=0.03, p=0.004):
    return Comparison(verdict, effect, low, high, p, 3, 0.01, None, "m")


@pytest.mark.parametrize("rule, holds", [
    ("better", True), ("worse", False), ("same", False), ("inconclusive or better", True),
    ("better and p < 0.01", True), ("better and p < 0.001", False), ("better and p <= 0.004", True),
    ("effect > 0.02", False), ("effect >= 0.02", True), ("low > 0.005 and high < 0.05", True),
    ("worse or (better and low > 0.02)", False), ("(worse or better) and seeds >= 3", True),
    ("BETTER AND P<0.01", True), ("effect > -1e-3", True),
])
def test_rules_hold_as_written(rule, holds):
    assert AdoptRule.parse(rule).holds(_comparison()) is holds


def test_a_comparison_with_nan_satisfies_no_numeric_term():
    undecided = Comparison("inconclusive", math.nan, math.nan, math.nan, math.nan, 1, math.nan, None, "m")
    assert not AdoptRule.parse("p < 1 or effect > -1").holds(undecided)
    assert AdoptRule.parse("same").holds(undecided)


def test_checks_for_a_config_merge_fit_arguments_and_give_the_builder_the_config(one_thread):
    import numpy as np

    from tuneloop.torch import MLP

    x, y = np.zeros((8, 4), dtype="float32"), np.zeros(8, dtype="int64")
    seen = []
    checks = tl.Checks(lambda p: seen.append(p) or MLP(4, 2, width=p.get("width", 8)), train=(x, y), val=(x, y),
                       fit={"lr": 1e-2, "epochs": 2}, baselines=False)
    variant = checks.for_config({"width": 3, "lr": 0.5, "x": 1}, {"lr": 0.5, "optimizer": "sgd", "x": 1, "seed": 9})
    assert variant.fit == {"loss": "cross_entropy", "lr": 0.5, "epochs": 2, "optimizer": "sgd"}
    assert checks.fit["lr"] == 1e-2 and variant.study is None and not variant.with_baselines
    assert variant.build()[0].out_features == 3 and seen[-1] == {"width": 3, "lr": 0.5, "x": 1}
    assert checks.build()[0].out_features == 8 and seen[-1] == {}
    zero_arg = tl.Checks(lambda: MLP(4, 2, width=5), train=(x, y), val=(x, y))
    assert zero_arg.for_config({"width": 3}).build()[0].out_features == 5


def test_mark_broken_keeps_the_evidence_as_json(storage):
    import numpy as np

    ledger = Ledger(storage)
    idea = ledger.add("x", hours=1, complexity=1, gain=0.01, p=0.2)
    ledger.mark_broken(idea.id, check="loss at initialization", message="too large",
                       evidence={"loss": np.float32(9.5), "steps": np.int64(3), "bad": math.inf}, next_step="scale")
    got = ledger.get(idea.id)
    assert got.state == tl.ideas.IdeaState.BROKEN == "broken" and got.note == "failed check loss at initialization: too large"
    assert got.links == [{"broken": {"check": "loss at initialization", "message": "too large",
                                     "evidence": {"loss": 9.5, "steps": 3, "bad": "inf"}, "next_step": "scale"}}]
    assert [i.id for i in ledger.ideas("broken")] == [idea.id]
    again = ledger.start(idea.id)  # its fix tested again: no longer broken, the evidence kept as history
    assert again.state == "testing" and again.note is None and again.decided_at is None and again.links == got.links


def test_a_rule_that_does_not_hold_never_says_adopted_for_an_idea_adopted_before(night, tmp_path):
    """An idea adopted by rule earlier, tested again (here with a variant file) under a rule that does not
    hold now: the output must say the rule does not hold, not 'Adopted ... by rule' from the old note."""
    invoke, db, exp = night
    assert invoke("idea", "add", "x at its optimum").exit_code == 0
    first = invoke("idea", "test", 1, exp, "--variant", "x=0.5,y=0.0", "--seeds", 2, "--no-checks",
                   "--adopt-if", "better")
    assert first.exit_code == 0 and "Adopted idea 1 by rule 'better'" in first.output, first.output
    note = Ledger(f"sqlite:///{db}").get(1).note
    variant = tmp_path / "variant.py"
    variant.write_text(exp.read_text())
    again = invoke("idea", "test", 1, exp, "--variant", variant, "--seeds", 2, "--no-checks", "--adopt-if", "worse")
    assert again.exit_code == 0, again.output
    assert "Adopted idea 1" not in again.output and "Rule 'worse' does not hold" in again.output, again.output
    assert Ledger(f"sqlite:///{db}").get(1).note == note  # still adopted, by the first rule


def test_a_variant_whose_model_cannot_even_be_built_is_broken_in_one_line(night):
    """The override makes the builder raise (a negative width): that is the most broken a variant gets. It is
    marked broken with the error as its evidence, the A/B test never runs, and the output has no traceback."""
    invoke, db, exp = night
    assert invoke("idea", "add", "negative width").exit_code == 0
    result = invoke("idea", "test", 1, exp, "--variant", "width=-1", "--seeds", 2)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "Idea 1 is broken" in result.output and "the A/B test did not run" in result.output
    idea = Ledger(f"sqlite:///{db}").get(1)
    assert idea.state == "broken" and idea.note.startswith("failed check ") and "negative" in idea.note
    (entry,) = [link["broken"] for link in idea.links if "broken" in link]
    assert "negative" in entry["evidence"]["error"]
    assert _studies(db) == ["quad"]  # no A/B study, no trial


def test_a_broken_variant_of_an_adopted_idea_keeps_the_baseline(night):
    """An adopted idea tuned again (``--variant`` on top of its adopted config) whose variant fails a rung: the
    variant is broken, but the adoption stands. Marking the idea itself broken would take its overrides out
    of the baseline (baseline_config follows adopted ideas) and change every later test without a word."""
    invoke, db, exp = night
    ledger = Ledger(f"sqlite:///{db}")
    assert invoke("idea", "add", "x at its optimum").exit_code == 0
    adopted = invoke("idea", "test", 1, exp, "--variant", "x=0.5,y=0.0", "--seeds", 2, "--no-checks",
                     "--adopt-if", "better")
    assert adopted.exit_code == 0 and ledger.get(1).state == "adopted", adopted.output
    assert ledger.baseline_config() == {"x": 0.5, "y": 0.0}
    retuned = invoke("idea", "test", 1, exp, "--variant", "huge=1", "--seeds", 2)
    text = " ".join(retuned.output.split())
    assert retuned.exit_code == 1 and "FAIL loss at initialization" in text and "the A/B test did not run" in text
    idea = ledger.get(1)
    assert idea.state == "adopted" and ledger.baseline_config() == {"x": 0.5, "y": 0.0}
    assert idea.links[-1]["broken"]["check"] == "loss at initialization"  # the evidence is kept, as history
