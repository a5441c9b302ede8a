"""`tuneloop ask`, `tell`, `enqueue` and `worker`: a study driven from a shell, each command its own
invocation (as each is its own process in a shell loop), on one SQLite file."""

import json

import pytest
from typer.testing import CliRunner

from tuneloop.cli import app

EXPERIMENT = """
    import tuneloop as tl

    space = tl.Space(lr=tl.LogFloat(1e-4, 1e-1), width=tl.Choice([32, 64, 128]))

    def train(trial):
        loss = abs(trial.params.lr - 0.01) + 1 / trial.params.width
        for epoch in range(trial.budget.epochs):
            trial.report(epoch, loss=loss + 1 / (epoch + 1))
        return {"loss": loss}

    study = tl.Study("mlp", space, train, metric="loss", mode="min", budget={"epochs": 2}, seed=0, searcher="random")
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNELOOP_STORAGE", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_a_shell_loop_enqueues_asks_tells_and_a_worker_finishes_the_study(cli, write_experiment):
    exp = write_experiment(EXPERIMENT)
    assert cli("run", exp, "--trials", 2).exit_code == 0
    enqueued = cli("enqueue", "mlp", "width=64", "lr=0.01")
    assert enqueued.exit_code == 0 and "Enqueued as trial 2" in enqueued.output
    asked = cli("ask", "mlp", "--json")
    assert asked.exit_code == 0, asked.output
    trial = json.loads(asked.output)  # one JSON line
    assert trial["number"] == 2 and trial["params"] == {"lr": 0.01, "width": 64} and trial["budget"] == {"epochs": 2}
    told = cli("tell", "mlp", 2, "--value", 0.3, "--metric", "acc=0.9")
    assert told.exit_code == 0 and "Trial 2 of 'mlp': completed (loss 0.3)" in told.output
    again = cli("tell", "mlp", 2, "--value", 0.3)
    assert again.exit_code == 1 and "already told" in again.output and len(again.output.strip().splitlines()) == 1
    pruned = json.loads(cli("ask", "mlp", "--json").output)["number"]
    assert cli("tell", "mlp", pruned, "--state", "pruned").exit_code == 0
    assert cli("worker", "mlp").exit_code == 0  # the stored target (2) is reached: nothing to do
    worked = cli("worker", "mlp", "--trials", 6)
    assert worked.exit_code == 0 and "holds 6 of 6 finished" in worked.output, worked.output
    listed = cli("trials", "mlp").output
    assert listed.count("completed") == 5 and listed.count("pruned") == 1


def test_ask_ends_a_shell_loop_with_exit_3_at_its_trials(cli, write_experiment):
    assert cli("run", write_experiment(EXPERIMENT), "--trials", 1).exit_code == 0
    numbers = []
    while (asked := cli("ask", "mlp", "--json", "--trials", 3)).exit_code == 0:
        numbers.append(json.loads(asked.output)["number"])
        assert cli("tell", "mlp", numbers[-1], "--value", 0.5).exit_code == 0
    assert numbers == [1, 2] and asked.exit_code == 3 and "first 3 trials" in asked.output


@pytest.mark.parametrize("args, message", [
    (("enqueue", "mlp", "depth=3"), "not NAME=VALUE for a parameter"),
    (("enqueue", "mlp", "width=48"), "not a value of Choice"),
    (("enqueue", "mlp", "lr=big"), "not a value of LogFloat"),
    (("tell", "mlp", 0, "--value", "abc"), "must be a number"),
    (("tell", "mlp", 7, "--value", 1), "no trial 7"),
    (("tell", "mlp", 0, "--state", "running"), "'completed', 'pruned', 'failed'"),
    (("ask", "nope"), "No study named 'nope'"),
])
def test_bad_input_is_one_line(cli, write_experiment, args, message):
    assert cli("run", write_experiment(EXPERIMENT), "--trials", 1).exit_code == 0
    result = cli(*args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


SLEEPY = EXPERIMENT.replace("return {\"loss\": loss}", "import time; time.sleep(0.2); return {\"loss\": loss}")


@pytest.mark.slow
def test_a_worker_and_a_shell_client_share_a_study_and_a_killed_clients_trial_runs_again(tmp_path, write_experiment):
    """Real processes on one SQLite file: a Python client is SIGKILLed holding the enqueued trial 0; a
    `tuneloop worker` and a shell loop of `tuneloop ask`/`tell` then bring the study to exactly 6
    finished trials, none duplicated, trial 0 run again (attempt 1) by the worker."""
    import os
    import signal
    import subprocess
    import sys

    from tuneloop.store import Store

    exp = write_experiment(SLEEPY)
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "TUNELOOP_STORAGE": db}
    tuneloop = [sys.executable, "-m", "tuneloop.cli"]

    def cmd(*args, check=True):
        return subprocess.run([*tuneloop, *map(str, args)], env=env, capture_output=True, text=True, timeout=60,
                              check=check, cwd=tmp_path)

    cmd("enqueue", "mlp", "width=64", "--file", exp)
    holds = "import sys, tuneloop as tl\nt = tl.Study.stored('mlp').ask()\nprint(t.number, flush=True)\nsys.stdin.read()"
    client = subprocess.Popen([sys.executable, "-c", holds], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert client.stdout.readline().strip() == "0"  # it holds the enqueued trial
    finally:
        client.send_signal(signal.SIGKILL)
        client.communicate()
    worker = subprocess.Popen([*tuneloop, "worker", "mlp", "--trials", "6"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    told = []
    while (asked := cmd("ask", "mlp", "--json", "--trials", 6, check=False)).returncode == 0:
        number = json.loads(asked.stdout)["number"]
        cmd("tell", "mlp", number, "--value", 0.5)
        told.append(number)
    assert asked.returncode == 3, asked.stderr
    output, errors = worker.communicate(timeout=60)
    assert worker.returncode == 0 and "holds 6 of 6 finished" in output, output + errors
    with Store(db) as store:
        trials = store.trials(store.get_study("mlp").id)
    assert [t.number for t in trials] == list(range(6)) and all(t.state == "completed" for t in trials)
    assert trials[0].attempt == 1 and trials[0].params["width"] == 64  # the killed client's, run again once
    assert all(trials[n].value == 0.5 for n in told)
