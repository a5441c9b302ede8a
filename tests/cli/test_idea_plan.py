"""``tuneloop idea plan``: the night's window filled from the ledger by expected gain per machine hour, what
stays out and why, and ``--queue`` queueing signed idea-test jobs in that order (a real SQLite file, a
real tiny study for the history)."""

import math
from types import SimpleNamespace

import pytest
from shared import QUADRATIC_EXPERIMENT
from typer.testing import CliRunner

from tuneloop.cli import app
from tuneloop.ideas import Ledger, plan_night
from tuneloop.queue import estimate, refusal
from tuneloop.store import Store


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    db = f"sqlite:///{tmp_path / 'night.db'}"

    def invoke(*args):
        return CliRunner().invoke(app, [*map(str, args), "--storage", db])

    return invoke, db


@pytest.fixture
def history(cli, write_experiment):
    """A study with finished trials, and ideas whose last check ladder took a known time (so each idea's
    machine time is known: the ladder's hours plus a few milliseconds of A/B trials)."""
    invoke, db = cli
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    assert invoke("run", exp, "--trials", 3, "--seed", 0).exit_code == 0
    ledger = Ledger(db)
    # (title, researcher's hours, p, gain, config, ladder hours): ledger priority puts "cheap work" first,
    # but per MACHINE hour "fast to run" is best (0.5 x 0.02 / 0.2 h), then "long" (0.9 x 0.05 / 3 h), then
    # "cheap work" (0.5 x 0.01 / 0.5 h)
    ideas = {}
    for title, hours, p, gain, config, ladder in (
            ("cheap work", 0.1, 0.5, 0.01, {"x": 0.1}, 0.5),
            ("fast to run", 50.0, 0.5, 0.02, {"x": 0.2}, 0.2),
            ("long", 1.0, 0.9, 0.05, {"x": 0.3}, 3.0),
            ("needs code", 1.0, 0.9, 0.05, None, None)):
        idea = ledger.add(title, hours=hours, complexity=1, gain=gain, p=p, config=config)
        if ladder is not None:
            ledger.link(idea.id, checks={"passed": 9, "seconds": ladder * 3600})
        ideas[title] = idea.id
    decided = ledger.add("done already", hours=1, complexity=1, gain=0.5, p=1.0, config={"x": 0.4})
    ledger.decide(decided.id, "reject")
    return invoke, db, exp, ideas


def test_the_plan_orders_by_gain_per_machine_hour_and_leaves_out_what_does_not_fit(history):
    invoke, db, exp, ideas = history
    result = invoke("idea", "plan", exp, "--hours", 2)
    assert result.exit_code == 0, result.output
    out = result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    # not the ledger's priority order (cheap work first); the researcher's 50 h shown, not counted
    assert [row[2] for row in rows] == ["fast to run", "cheap work"], out
    assert rows[0][:7] == ["1", str(ideas["fast to run"]), "fast to run", "0.5", "0.02", "50", "12 min"]
    assert f"Left out: idea {ideas['long']} (long): needs 3.0 h, 1.8 h left in the window" in out
    untestable = f"idea {ideas['needs code']} (needs code): no config; set one with tuneloop idea edit"
    assert f"Not testable automatically: {untestable} {ideas['needs code']} --config" in out
    assert "done already" not in out and "Planned 2 ideas: 42 min of machine time in a window of 2 h" in out

    store = Store(db, read_only=True)
    plan = plan_night(Ledger(store), store, str(exp.resolve()), study_name="quad", hours=2)
    assert [e.idea.id for e in plan.planned] == [ideas["fast to run"], ideas["cheap work"]]
    assert plan.planned[0].per_hour == pytest.approx(0.5 * 0.02 / 0.2, rel=1e-3)
    assert [e.idea.id for e in plan.left_out] == [ideas["long"]]
    wide = plan_night(Ledger(store), store, str(exp.resolve()), study_name="quad", hours=4)
    assert [e.idea.id for e in wide.planned] == [ideas[t] for t in ("fast to run", "long", "cheap work")]


def test_queue_adds_signed_idea_test_jobs_in_the_plans_order(history):
    invoke, db, exp, ideas = history
    result = invoke("idea", "plan", exp, "--hours", 2, "--seeds", 4, "--workers", 2, "--queue",
                    "--adopt-if", "better and p < 0.01")
    assert result.exit_code == 0 and "Queued job 2: idea" in result.output, result.output
    jobs = Store(db, read_only=True).jobs()
    assert [j.kind for j in jobs] == ["idea-test", "idea-test"]
    assert [j.args for j in jobs] == [[str(ideas[t]), str(exp.resolve()), "--seeds", "4", "--workers", "2",
                                      "--adopt-if", "better and p < 0.01"] for t in ("fast to run", "cheap work")]
    for j in jobs:
        assert j.signature and refusal(j.kind, j.args, j.files, j.signature) is None  # a runner would run it
    # the queue's estimate counts the idea's check ladder, as the plan did (unless the job skips it)
    assert 0.2 * 3600 <= jobs[0].estimate_s < 0.2 * 3600 + 60 and 0.5 * 3600 <= jobs[1].estimate_s < 0.5 * 3600 + 60
    with Store(db, read_only=True) as store:
        skip = estimate(store, SimpleNamespace(kind="idea-test", args=[*jobs[0].args, "--no-checks"]))
    assert skip is not None and skip < 60


@pytest.mark.parametrize("hours", ["0", "-1", "nan", "inf"])
def test_a_window_of_no_hours_is_one_line(history, hours):
    invoke, _db, exp, _ideas = history
    result = invoke("idea", "plan", exp, "--hours", hours)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "The 'hours' argument of idea plan must be a positive number of machine hours" in result.output


def test_an_empty_ledger_or_no_study_yet_is_one_line(cli, write_experiment):
    invoke, db = cli
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    Ledger(db)  # the database exists, with no idea
    empty = invoke("idea", "plan", exp, "--hours", 8)
    assert empty.exit_code == 1 and "is empty: add ideas first" in empty.output and "Traceback" not in empty.output
    Ledger(db).add("x", hours=1, complexity=1, gain=0.01, p=0.5, config={"x": 0.1})
    missing = invoke("idea", "plan", exp, "--hours", 8)
    assert missing.exit_code == 1 and "No study 'quad'" in missing.output and "run it first" in missing.output
    assert len(missing.output.strip().splitlines()) == 1


def test_unknown_estimates_are_planned_and_said(cli, write_experiment):
    invoke, db = cli
    exp = write_experiment(QUADRATIC_EXPERIMENT.replace("def objective(trial):", "def objective(trial):\n"
                                                         "        raise ValueError('no history')"))
    invoke("run", exp, "--trials", 1, "--seed", 0)  # every trial fails: no duration to go by
    Ledger(db).add("x", hours=1, complexity=1, gain=0.01, p=0.5, config={"x": 0.1})
    result = invoke("idea", "plan", exp, "--hours", 1)
    assert result.exit_code == 0 and "unknown" in result.output and "with an unknown estimate" in result.output


def test_hostile_titles_print_as_text_and_short(history):
    invoke, db, exp, _ideas = history
    ledger = Ledger(db)
    ledger.add("[red]boom[/red] " + "x" * 10_000, hours=1, complexity=1, gain=0.9, p=0.9, config={"y": 0.1})
    ledger.add("[bold]no config " + "y" * 10_000, hours=1, complexity=1, gain=0.9, p=0.9)
    result = invoke("idea", "plan", exp, "--hours", 2)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "[red]boom[/red]" in result.output and "[bold]no config" in result.output
    assert "x" * 100 not in result.output and "y" * 100 not in result.output
    assert all(math.isfinite(len(line)) and len(line) <= 200 for line in result.output.splitlines())


def test_ideas_that_take_no_machine_time_still_go_by_expected_gain(cli, write_experiment):
    """Trials stored with no duration (an imported history) and no ladder: every idea takes 0 s. Their
    gain per machine hour is not 'infinite for all, then by id': the likelier, larger gain goes first, and
    an idea expected to gain nothing is not put ahead of everything."""
    import sqlite3

    invoke, db = cli
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    assert invoke("run", exp, "--trials", 3, "--seed", 0).exit_code == 0
    con = sqlite3.connect(db.removeprefix("sqlite:///"))
    con.execute("update trials set finished_at = started_at")
    con.commit()
    con.close()
    ledger = Ledger(db)
    nothing = ledger.add("gains nothing", hours=1, complexity=1, gain=0.0, p=0.5, config={"x": 0.1}).id
    small = ledger.add("small", hours=1, complexity=1, gain=0.01, p=0.1, config={"x": 0.2}).id
    large = ledger.add("large", hours=1, complexity=1, gain=0.05, p=0.9, config={"x": 0.3}).id
    store = Store(db, read_only=True)
    plan = plan_night(Ledger(store), store, str(exp.resolve()), study_name="quad", hours=1)
    assert [e.seconds for e in plan.planned] == [0.0, 0.0, 0.0]
    assert [e.idea.id for e in plan.planned] == [large, small, nothing]
    assert plan.planned[-1].per_hour == 0.0


@pytest.mark.parametrize("column, value", [("config", "{not json"), ("links", "[1, 2"), ("tags", "nope"),
                                           ("config", "[1, 2]"), ("links", '{"a": 1}'), ("p", "high"),
                                           ("hours", -1.0), ("complexity", 1e9)])
def test_an_idea_row_that_is_not_json_is_one_line(history, column, value):
    """Someone else's database: an idea whose JSON columns do not read (or are not what they hold) is a
    one-line error naming the row, not a traceback, and the file is left as it was."""
    import sqlite3
    from pathlib import Path

    invoke, db, exp, ideas = history
    path = db.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        con.execute(f"update ideas set {column} = ? where id = ?", (value, ideas["cheap work"]))
    with sqlite3.connect(path) as con:
        con.execute("pragma wal_checkpoint(truncate)")
    before = Path(path).read_bytes()
    result = invoke("idea", "plan", exp, "--hours", 2)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"idea {ideas['cheap work']}" in result.output and "Corrupt row" in result.output
    assert len(result.output.strip().splitlines()) == 1 and Path(path).read_bytes() == before


def test_a_test_row_that_is_not_json_is_one_line(history):
    import sqlite3

    invoke, db, exp, ideas = history
    Ledger(db).start(ideas["cheap work"])  # testing: the plan reads its tests
    with sqlite3.connect(db.removeprefix("sqlite:///")) as con:
        con.execute("insert into idea_tests (idea_id, created_at, metric, mode, seeds, baseline, variant, result) "
                    "values (?, 0, 'loss', 'min', '[]', '[]', '[]', '{not json')", (ideas["cheap work"],))
    result = invoke("idea", "plan", exp, "--hours", 2)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "Corrupt row" in result.output and f"idea {ideas['cheap work']}" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_forged_ladder_time_prints_short(history):
    """A ladder link of 1e300 s (finite, so it counts) leaves the idea out with a short reason, not hundreds of
    digits."""
    import json
    import re
    import sqlite3

    invoke, db, exp, ideas = history
    with sqlite3.connect(db.removeprefix("sqlite:///")) as con:
        con.execute("update ideas set links = ? where id = ?",
                    (json.dumps([{"checks": {"passed": 9, "seconds": 1e300}}]), ideas["long"]))
    result = invoke("idea", "plan", exp, "--hours", 2)
    assert result.exit_code == 0, result.output
    assert f"Left out: idea {ideas['long']} (long): needs" in result.output
    assert not re.search(r"\d{25}", result.output), result.output


def test_a_broken_ideas_long_note_is_cut_like_a_title(history):
    invoke, db, exp, _ideas = history
    ledger = Ledger(db)
    broken = ledger.add("fp16", hours=1, complexity=1, gain=0.01, p=0.5, config={"x": 0.2}).id
    ledger.mark_broken(broken, check="overfit_batch", message="[red]loss[/red] " + "m" * 10_000)
    result = invoke("idea", "plan", exp, "--hours", 2)
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert f"idea {broken} (fp16): broken (failed check overfit_batch: [red]loss[/red] m" in flat
    assert "m" * 300 not in result.output.replace("\n", "") and len(result.output) < 5_000


def test_planning_again_does_not_queue_an_idea_already_queued(history):
    """idea plan --queue twice (say, the evening's plan redone after adding an idea): the ideas whose idea-test
    job is still queued are not queued again (each would be A/B tested twice, the second time on a baseline
    that may already hold it); they are said to be queued, and their time is not counted again."""
    invoke, db, exp, ideas = history
    assert invoke("idea", "plan", exp, "--hours", 2, "--queue").exit_code == 0
    again = invoke("idea", "plan", exp, "--hours", 2, "--queue")
    assert again.exit_code == 0, again.output
    jobs = Store(db, read_only=True).jobs()
    assert [j.args[0] for j in jobs] == [str(ideas["fast to run"]), str(ideas["cheap work"])], again.output
    assert f"idea {ideas['fast to run']} (fast to run): already queued as job {jobs[0].id}" in again.output
