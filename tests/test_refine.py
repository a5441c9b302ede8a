"""``tuneloop refine``: the next round as an editable experiment file that runs as it is."""

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app

EXPERIMENT = """
    import trial_functions as tf
    import tuneloop as tl

    space = tl.Space(act=tl.Choice(["relu", "gelu", "tanh"]), lr=tl.LogFloat(1e-4, 1.0),
                     width=tl.Int(16, 256, log=True))
    study = tl.Study("act", space, tf.activation_bowl, metric="val_acc", mode="max", scientific=["act"],
                     fixed={"depth": 2})
"""


def test_refine_writes_a_round_that_runs_and_chains(write_experiment, tmp_path, monkeypatch):
    path = write_experiment(EXPERIMENT)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(path), "--trials", "24", "--seed", "0"]).exit_code == 0
    result = runner.invoke(app, ["refine", "act"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "act_r2.py"
    text = written.read_text()
    assert "Round 2 of goal 'act'" in text and "from 24 completed trials of round 1" in text
    assert "# lr: the top 9 trials span" in text and "# act: kept: a scientific parameter" in text
    assert "fixed={'depth': 2}" in text and "scientific=['act']" in text
    compile(text, str(written), "exec")
    ran = runner.invoke(app, ["run", str(written), "--trials", "6", "--seed", "1"])
    assert ran.exit_code == 0, ran.output
    assert "trials from act fed to sobol" in ran.output  # round 2 learns from round 1 (a warm start)
    record = tl.Store("tuneloop.db").require_study("act-r2")
    assert 0 < record.config["warm_start"]["act"] <= 24
    assert (record.config["round"], record.config["parent"], record.config["goal"]) == (2, "act", "act")
    assert record.config["experiment"] == str(written.resolve())  # so finalize and refine find this file
    assert record.space["lr"] != tl.LogFloat(1e-4, 1.0) and record.space["lr"].high <= 1.0
    again = runner.invoke(app, ["refine", "act"])
    assert again.exit_code == 1 and "exists" in again.output
    third = runner.invoke(app, ["refine", "act-r2", "-o", "r3.py"])
    assert third.exit_code == 1 and "6 completed trials" in third.output  # too few to refine from


def test_refine_needs_the_experiment_file_of_a_study_made_in_python(storage, tmp_path, monkeypatch):
    import trial_functions as tf

    tl.Study("py", tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(1e-4, 1.0)), tf.activation_bowl,
             metric="val_acc", mode="max", storage=storage).run(n_trials=10, seed=0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["refine", "py", "--storage", storage])
    assert result.exit_code == 1 and "--file EXPERIMENT.py" in result.output


# -- stored names are data, never code (issue 15) -----------------------------------------------
HOSTILE = 'x"""; import os; os.system("touch PWNED"); """'
GOAL = 'g\'"""\\\r\n#é😀\u2028' + HOSTILE
METRIC = 'm\n"""\nimport os; os.system("touch PWNED")\n#' + "μ" * 10_000
VALUES = [HOSTILE, "line\nbreak", "back\\slash\\", "q'\"", "[/x]", "é😀\u2028\x1b[31m", "z" * 10_000]
LONG = "a" * 10_000

HOSTILE_EXPERIMENT = f"""
    import math
    import tuneloop as tl

    VALUES = {VALUES!r}

    def train(trial):
        p = trial.params
        value = -abs(math.log10(p["lr"]) + 2.0) + 0.1 * VALUES.index(p["class"]) + 0.001 * p["ﬁ"] + 0.001 * p[{LONG!r}]
        return {{{METRIC!r}: value}}

    space = tl.Space(**{{"class": tl.Choice(VALUES), "lr": tl.LogFloat(1e-4, 1.0), "ﬁ": tl.Int(1, 9),
                        "λ": tl.Choice({{{HOSTILE!r}: {{"inner": tl.Float(0.0, 1.0)}}, "b\\\\": {{}}}}),
                        {LONG!r}: tl.Float(0.0, 1.0)}})
    study = tl.Study({HOSTILE!r}, space, train, metric={METRIC!r}, mode="max", goal={GOAL!r},
                     scientific=["class"], fixed={{"fixed_one": {HOSTILE!r}}})
"""


@pytest.fixture(autouse=True)
def own_trust_key(tmp_path, monkeypatch):
    """This test's own signing key (the experiment files a study ran from are vouched for with it)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_hostile_stored_names_come_back_as_literals_and_never_run(write_experiment, tmp_path, monkeypatch):
    path = write_experiment(HOSTILE_EXPERIMENT)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(path), "--trials", "14", "--seed", "0"])
    assert ran.exit_code == 0, ran.output
    before = set(tmp_path.glob("*.py"))
    result = runner.invoke(app, ["refine", HOSTILE])
    assert result.exit_code == 0, result.output
    (written,) = set(tmp_path.glob("*.py")) - before  # named by a slug of the goal, in this folder
    assert written.parent == tmp_path and len(written.name) <= 70
    text = written.read_text(encoding="utf-8")
    compile(text, str(written), "exec")
    assert "\u2028" not in text and "\x1b" not in text and "\r" not in text  # escaped, in code and comments
    assert "space = tl.Space({" in text and "'class': tl.Choice(" in text  # names that cannot be keywords
    again = runner.invoke(app, ["run", str(written), "--trials", "2", "--seed", "1"])
    assert again.exit_code == 0, again.output
    assert not (tmp_path / "PWNED").exists()
    store = tl.Store("tuneloop.db")
    record = store.require_study(f"{GOAL}-r2")
    assert (record.metric, record.config["goal"], record.config["parent"]) == (METRIC, GOAL, HOSTILE)
    assert set(record.space) == {"class", "lr", "ﬁ", "λ", LONG, "fixed_one"}
    assert record.space["class"].values == VALUES  # scientific: every value kept, each unchanged
    assert record.space["fixed_one"].values == [HOSTILE]
    assert record.space["λ"].values[0] == HOSTILE and "inner" in record.space["λ"].children[0]
    assert len(store.trials(record.id)) == 2 and not (tmp_path / "PWNED").exists()


def test_literals_evaluate_back_to_the_stored_values():
    import math

    from tuneloop.refine import keyword_safe, literal

    values = [*VALUES, METRIC, GOAL, "\ud800", None, True, False, 0, -3, 10**5000, 1e-05, -0.0,
              [1, "a\n"], {"k\n": [None, 2.5]}]
    for value in values:
        source = literal(value)
        assert "\n" not in source and "\r" not in source
        assert eval(compile(source, "<literal>", "eval"), {}) == value
    for special in (math.nan, math.inf, -math.inf):
        back = eval(literal(special), {})
        assert (math.isnan(back) and math.isnan(special)) or back == special
    assert keyword_safe("lr") and keyword_safe("λ")
    assert not keyword_safe("class") and not keyword_safe("ﬁ")  # a keyword; NFKC makes it "fi"
    with pytest.raises(tl.ConfigError, match="Cannot write a bytes"):
        literal(b"x")


def test_refine_imports_a_stored_experiment_path_only_when_this_machine_ran_it(storage, tmp_path, monkeypatch):
    import trial_functions as tf

    evil = tmp_path / "evil.py"
    evil.write_text("open(__file__ + '.ran', 'w').close()\n")
    tl.Study("py", tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(1e-4, 1.0)), tf.activation_bowl,
             metric="val_acc", mode="max", storage=storage).run(n_trials=10, seed=0)
    store = tl.Store(storage)
    record = store.require_study("py")
    store.update_study_config(record.id, {**record.config, "experiment": str(evil)})  # a database from elsewhere
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["refine", "py", "--storage", storage, "-o", "r2.py"])
    assert result.exit_code == 1 and "did not record running it" in result.output and "--file PATH" in result.output
    assert not (tmp_path / "r2.py").exists() and not (tmp_path / "evil.py.ran").exists()
    named = CliRunner().invoke(app, ["refine", "py", "--storage", storage, "-o", "r2.py", "--file", str(evil)])
    assert named.exit_code == 0 and "'evil.py'" in (tmp_path / "r2.py").read_text()  # the user named it
