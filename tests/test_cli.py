"""The tuneloop command, run as a user would: in-process for most, as a real process to kill."""

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from shared import QUADRATIC_EXPERIMENT
from typer.testing import CliRunner

from tuneloop.cli import app


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_run_status_trials_best_export(cli, write_experiment, tmp_path):
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    result = cli("run", exp, "--trials", 6, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "Ran 6 trials" in result.output and "Best trial of quad" in result.output
    assert (tmp_path / "tuneloop.db").exists()

    status = cli("status")
    assert status.exit_code == 0 and "quad" in status.output and "6 completed" in status.output

    trials = cli("trials", "quad", "--sort", "value", "--limit", 3)
    assert trials.exit_code == 0 and "Trials of quad (6)" in trials.output

    best = json.loads(cli("best", "quad", "--json").output)
    rows = json.loads(cli("export", "quad").output)["trials"]
    assert best["value"] == min(r["value"] for r in rows)

    data = json.loads(cli("export", "quad", "--format", "json").output)
    assert data["format"] == "tuneloop.study/1"
    assert data["study"]["name"] == "quad" and data["study"]["seed"] == 1
    assert set(data["space"]) == {"x", "y"}
    t0 = data["trials"][0]
    assert set(t0) >= {"number", "state", "params", "value", "values", "metrics", "seed", "duration_s"}
    assert [s for s, _ in t0["metrics"]["loss"]] == [0, 1, 2]

    out_file = tmp_path / "quad.csv"
    assert cli("export", "quad", "-f", "csv", "-o", out_file).exit_code == 0
    table = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert len(table) == 6 and {"param.x", "param.y", "value.loss"} <= set(table[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["best", "nope"], "No study named 'nope'"),
        (["export", "quad", "--format", "xml"], "The '--format' argument of tuneloop export must be one of 'json', 'csv', 'optuna'"),
        (["run", "EXP", "--searcher", "bayes"], "Unknown searcher 'bayes'. Valid names:"),
        (["run", "EXP", "--scheduler", "bohb"], "Unknown scheduler 'bohb'"),
        (["run", "EXP", "--scheduler", "forecast:confidence"], "Bad --scheduler option 'confidence': write NAME:key=value"),
        (["run", "EXP", "--trials", 2, "--scheduler", "forecast:confidence=2"], "'confidence' argument of forecast scheduler must be"),
        (["run", "EXP", "--trials", 2, "--scheduler", "asha:bogus=1"], "Bad options for scheduler 'asha'"),
        (["run", "EXP", "--executor", "ray2", "--trials", 1], "Unknown executor 'ray2'"),
        (["run", "NOSTUDY", "--trials", 1], "does not define a study"),
        (["trials", "quad", "--state", "done"], "The '--state' argument of tuneloop trials must be one of 'queued'"),
        (["run", "EXP", "--trials", 1, "--storage", "/nonexistent/dir/t.db"], "does not exist; pass --storage"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_code_1(cli, write_experiment, tmp_path, args, message):
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    nostudy = write_experiment("x = 1\n", name="nostudy.py")
    args = [exp if a == "EXP" else nostudy if a == "NOSTUDY" else a for a in args]
    assert cli("run", exp, "--trials", 1).exit_code == 0  # a database with one study, 'quad'
    result = cli(*args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not os.path.exists("/nonexistent")


def test_a_scheduler_and_a_searcher_take_options_after_a_colon(cli, write_experiment):
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    result = cli("run", exp, "--trials", 4, "--searcher", "tpe:n_startup_trials=2",
                 "--scheduler", "forecast:confidence=0.9,k=2,max_step=2")
    assert result.exit_code == 0, result.output
    assert "Ran 4 trials" in result.output


def test_reading_commands_never_create_a_database(cli, tmp_path):
    status = cli("status")  # nothing to read is an error: exit 1, one line, nothing created
    assert status.exit_code == 1 and "No tuneloop database at" in " ".join(status.output.split())
    best = cli("best", "quad")
    assert best.exit_code == 1 and "No tuneloop database at" in " ".join(best.output.split())
    assert not (tmp_path / "tuneloop.db").exists()


# stored strings as a hostile database holds them: Rich markup, escape sequences, a bell, 10k characters
HOSTILE_NAMES = ["[/x]", "[bold red]x", "\x1b[31mred", "a\x07b", "[link=https://evil.example]y" + "[/x]" * 2500]


@pytest.fixture
def hostile_db(tmp_path):
    """One study per hostile name; the name is also its metric, its Choice values, its trial's error,
    alert, slice and curve names, so every table `status`, `show`, `best` and `trials` draws holds it."""
    import tuneloop as tl
    from tuneloop.store import Store
    from tuneloop.store._logs import alert_row

    db = tmp_path / "hostile.db"
    with Store(str(db)) as store:
        for name in HOSTILE_NAMES:
            space = tl.Space(c=tl.Choice(HOSTILE_NAMES), x=tl.Float(0.0, 1.0))
            record = store.create_study(name, name, "min", space, {"note": name})
            good = store.create_trial(record.id, 0, {"c": name, "x": 0.5}, seed=0)
            store.add_points([(good, 0, 0, name, 1.0), (good, 0, 1, name, 0.5), (good, 0, 0, "\x1b]8;;x\x1b\\", 2.0)])
            store.write_batch({"alerts": [alert_row(good, 0, 1, name, name, 1.0, "warn", f"{name}: \x1b[2J")],
                               "slices": [{"trial_id": good, "attempt": 0, "step": 1, "slice": name, "metric": name,
                                           "value": 0.5, "n": 3}]})
            store.finish_trial(good, "completed", 0.5, {name: 0.5, "\x1b[2Jother": 1.0})
            bad = store.create_trial(record.id, 1, {"c": HOSTILE_NAMES[0], "x": 0.1}, seed=1)
            store.finish_trial(bad, "failed", None, {}, error=f"boom {name}\nTraceback \x1b[2J\x1b]8;;http://evil\x07")
    return db


@pytest.mark.parametrize("name", [*HOSTILE_NAMES[:-1], pytest.param(HOSTILE_NAMES[-1], marks=pytest.mark.slow)],
                         ids=["close-tag", "style", "ansi", "bell", "10k"])  # 10k: 5 s, in .ci/run's second call
def test_hostile_stored_strings_print_as_text(cli, hostile_db, name, monkeypatch):
    from tuneloop.cli import _common

    for console in (_common.out, _common.err):  # Rich's own colours off: any ESC would be the database's
        monkeypatch.setattr(console, "_color_system", None)
    for args in (["status"], ["trials", name], ["best", name], ["show", name, 0], ["show", name, 1]):
        result = cli(*args, "--storage", hostile_db)
        assert result.exit_code == 0, (args, result.output[:500], result.exception)
        assert "\x1b" not in result.output and "\x07" not in result.output, args
        assert "MarkupError" not in result.output
    shown = "".join(cli("show", name, 0, "--storage", hostile_db).output.split())
    assert "".join(name.replace("\x1b", "").replace("\x07", "").split())[:200] in shown  # the text itself, verbatim


def test_an_error_quoting_a_hostile_name_is_one_plain_line(cli, hostile_db):
    result = cli("show", "[/x]", 7, "--storage", hostile_db)
    assert result.exit_code == 1 and "no trial 7" in result.output
    missing = cli("best", "[bold red]nope\x1b[2J", "--storage", hostile_db)
    assert missing.exit_code == 1 and not isinstance(missing.exception, Exception)
    assert "No study named '[bold red]nope" in missing.output and "\x1b" not in missing.output


def _tamper(db, sql, *params):
    con = sqlite3.connect(db)
    con.execute(sql, params)
    con.commit()
    con.close()


@pytest.fixture
def small_db(tmp_path):
    import tuneloop as tl
    from tuneloop.store import Store

    db = tmp_path / "small.db"
    with Store(str(db)) as store:
        record = store.create_study("quad", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
        store.finish_trial(store.create_trial(record.id, 0, {"x": 0.5}, seed=0), "completed", 0.5, {"loss": 0.5})
    return db


@pytest.mark.parametrize("tamper, args, message", [
    (None, ["show", "quad", "99999999999999999999999"], "This study has no trial 99999999999999999999999"),
    ("update tuneloop_meta set value = '5.0' where key = 'schema_version'", ["status"],
     "has a corrupt schema version '5.0' in table tuneloop_meta"),
    ("update trials set params = '[1, 2]'", ["trials", "quad"],
     "Corrupt row: the params of trial 0 (id 1) is not a JSON object but a list"),
    ("update trials set params = '\"x\"'", ["best", "quad"], "is not a JSON object but a str"),
    ("""update studies set space = '{"x": {"type": "float", "low": 0.0}}'""", ["best", "quad"],
     "Corrupt space: the space of study 'quad' is not a valid space (parameter 'x': it has no 'high'"),
    ("""update studies set config = '{"objectives": "[red]x"}'""", ["best", "quad"],
     "Corrupt row: the objectives stored for study 'quad' are malformed"),
    (None, ["status", "--storage", "sqlite://:::x"], "'sqlite://:::x' is not a database URL"),
    (None, ["status", "--storage", "sqlite://host/x.db"], "'sqlite://host/x.db' is not a database URL"),
], ids=["trial-past-64-bit", "schema-5.0", "params-list", "params-str", "space-missing-bound", "objectives", "bad-url",
        "sqlite-host"])
def test_corrupt_or_extreme_input_is_one_line_not_a_traceback(cli, small_db, tamper, args, message):
    if tamper:
        _tamper(small_db, tamper)
    if "--storage" not in args:
        args = [*args, "--storage", small_db]
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception), repr(result.exception)  # a clean exit, not a crash
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_status_lists_a_study_whose_stored_objectives_are_malformed_as_stored(cli, small_db):
    _tamper(small_db, """update studies set config = '{"objectives": [["[red]x", "max"], 3]}'""")
    result = cli("status", "--storage", small_db)
    assert result.exit_code == 0 and "min loss" in result.output, result.output


def _count(db, state=None):
    con = sqlite3.connect(db)
    try:
        q = "select count(*) from trials" + (" where state = ?" if state else "")
        return con.execute(q, (state,) if state else ()).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_a_driver_killed_with_sigkill_resumes_with_nothing_lost_or_duplicated(write_experiment, tmp_path):
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    db = tmp_path / "kill.db"
    cmd = [sys.executable, "-m", "tuneloop.cli", "run", str(exp), "--trials", "12", "--workers", "2",
           "--storage", str(db), "--seed", "3"]
    env = {**os.environ, "TRIAL_SLEEP": "0.15"}  # each trial ~0.5 s, so the kill lands mid-run
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.time() + 60
    while _count(db, "completed") < 3 and time.time() < deadline:
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)  # the driver alone: its workers must notice and exit
    driver.wait()
    con = sqlite3.connect(db)
    before = dict(con.execute("select number, params from trials where state = 'completed'").fetchall())
    con.close()
    assert 3 <= len(before) < 12
    assert _count(db, "running") >= 1  # what the dead driver left behind

    rerun = subprocess.run(cmd, env={**env, "TRIAL_SLEEP": "0"}, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    con = sqlite3.connect(db)
    rows = con.execute("select number, state, params from trials order by number").fetchall()
    con.close()
    assert [r[0] for r in rows] == list(range(12))
    assert all(r[1] == "completed" for r in rows)
    assert all({r[0]: r[2] for r in rows}[n] == p for n, p in before.items())  # kept as they were
    time.sleep(0.5)
    orphans = subprocess.run(["pgrep", "-f", "tuneloop-worker|multiprocessing.spawn"], capture_output=True, text=True)
    mine = [pid for pid in orphans.stdout.split() if _parent_was(pid, driver.pid)]
    assert mine == []


# Trials 0 and 1 finish at once; every later one waits at a gate (a file) until the test opens it,
# so when Ctrl-C is sent, trials are provably running and none can finish on its own.
GATED_EXPERIMENT = """
    import os, pathlib, time
    import tuneloop as tl

    GATE = pathlib.Path(os.environ["GATE"])
    space = tl.Space(x=tl.Float(-2.0, 2.0))

    def objective(trial):
        if trial.number >= 2:
            (GATE.parent / f"waiting-{trial.number}").touch()
            while not GATE.exists():
                time.sleep(0.01)
        trial.report(0, loss=abs(trial.params.x))
        return {"loss": abs(trial.params.x)}

    study = tl.Study("gated", space, objective, metric="loss", mode="min", searcher="random")
"""


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_ctrl_c_marks_running_trials_interrupted_and_says_how_to_resume(write_experiment, tmp_path):
    exp = write_experiment(GATED_EXPERIMENT)
    db, gate = tmp_path / "int.db", tmp_path / "gate"
    cmd = [sys.executable, "-m", "tuneloop.cli", "run", str(exp), "--trials", "10", "--workers", "2",
           "--storage", str(db)]
    env = {**os.environ, "GATE": str(gate)}
    # A process started with SIGINT ignored (a background job of a non-interactive shell, as some CI
    # runners start pytest) passes that on, and Python keeps it: the driver would never see Ctrl-C and
    # would exit 0 after its last trial. A terminal's foreground job has the default: give it that.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.time() + 60
    while (_count(db, "completed") < 2 or not list(tmp_path.glob("waiting-*"))) and time.time() < deadline:
        time.sleep(0.05)
    assert _count(db, "completed") == 2 and _count(db, "running") >= 1, "the driver never reached a gated trial"
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr
    assert "Interrupted." in stderr and "Run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    assert _count(db, "running") == 0 and _count(db, "interrupted") >= 1
    gate.touch()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert _count(db, "completed") == 10 and _count(db) == 10


POPULATION_EXPERIMENT = """
    import numpy as np
    import tuneloop as tl
    from tuneloop.torch import MLP, fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")

    def train(trial):
        epochs = 1 if trial.number == 0 else 100_000  # trial 0 leaves at once; the others train until Ctrl-C
        return fit(lambda: MLP(4, 2, width=8), (x[:48], y[:48]), (x[48:], y[48:]), trial=trial,
                   lr=trial.params.lr, epochs=epochs, batch_size=16, seed=trial.seed, inspect_every=0,
                   predictions=False).metrics

    study = tl.Study("popint", tl.Space(lr=tl.LogFloat(1e-3, 1e-1)), train, metric="val_acc", mode="max",
                     searcher="random")
"""


@pytest.mark.slow  # a driver process and a population (2 s): .ci/run runs it in its second pytest call
def test_ctrl_c_stops_a_rolling_population_and_marks_its_members_interrupted(write_experiment, tmp_path):
    """Ctrl-C while the population trains on its trainer thread: the run ends at the next step with
    exit code 130, every member still training is interrupted, none is left running."""
    exp = write_experiment(POPULATION_EXPERIMENT)
    db = tmp_path / "pop.db"
    cmd = [sys.executable, "-m", "tuneloop.cli", "run", str(exp), "--trials", "6", "--executor", "population",
           "--members", "3", "--storage", str(db)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # see the test above
    try:
        driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.time() + 120
    while (_count(db, "completed") < 1 or _count(db, "running") < 3) and time.time() < deadline:
        time.sleep(0.05)
    assert _count(db, "completed") == 1 and _count(db, "running") == 3, "trial 3 never joined the population"
    os.killpg(driver.pid, signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130, stderr
    assert "Interrupted." in stderr and "Traceback" not in stderr
    assert _count(db, "running") == 0 and _count(db, "interrupted") == 3


def _parent_was(pid: str, parent: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().split(") ")[1].split()[1]) == parent
    except (OSError, IndexError, ValueError):
        return False
