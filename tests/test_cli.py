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
from conftest import QUADRATIC_EXPERIMENT
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
        (["export", "quad", "--format", "xml"], "The '--format' argument of tuneloop export must be 'json' or 'csv'"),
        (["run", "EXP", "--searcher", "bayes"], "Unknown searcher 'bayes'. Valid names:"),
        (["run", "EXP", "--scheduler", "bohb"], "Unknown scheduler 'bohb'"),
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


def test_reading_commands_never_create_a_database(cli, tmp_path):
    status = cli("status")
    assert status.exit_code == 0 and "No tuneloop database at" in " ".join(status.output.split())
    best = cli("best", "quad")
    assert best.exit_code == 1 and "No tuneloop database at" in " ".join(best.output.split())
    assert not (tmp_path / "tuneloop.db").exists()


def _count(db, state=None):
    con = sqlite3.connect(db)
    try:
        q = "select count(*) from trials" + (" where state = ?" if state else "")
        return con.execute(q, (state,) if state else ()).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


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
    assert all(dict((r[0], r[2]) for r in rows)[n] == p for n, p in before.items())  # kept as they were
    time.sleep(0.5)
    orphans = subprocess.run(["pgrep", "-f", "tuneloop-worker|multiprocessing.spawn"], capture_output=True, text=True)
    mine = [pid for pid in orphans.stdout.split() if _parent_was(pid, driver.pid)]
    assert mine == []


def test_ctrl_c_marks_running_trials_interrupted_and_says_how_to_resume(write_experiment, tmp_path):
    exp = write_experiment(QUADRATIC_EXPERIMENT)
    db = tmp_path / "int.db"
    cmd = [sys.executable, "-m", "tuneloop.cli", "run", str(exp), "--trials", "10", "--workers", "2",
           "--storage", str(db)]
    driver = subprocess.Popen(cmd, env={**os.environ, "TRIAL_SLEEP": "0.2"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while _count(db, "completed") < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130
    assert "Interrupted." in stderr and "Run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    assert _count(db, "running") == 0 and _count(db, "interrupted") >= 1
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _count(db, "completed") == 10 and _count(db) == 10


def _parent_was(pid: str, parent: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().split(") ")[1].split()[1]) == parent
    except (OSError, IndexError, ValueError):
        return False
