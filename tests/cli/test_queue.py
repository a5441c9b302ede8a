"""``tuneloop queue``: jobs queued in the store and run one after another, as a user runs them: in
process for editing the queue, as real runner processes for killing and sharing. Every wait is for
an event (a row in the store, a process gone), never a fixed sleep."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest
from shared import sqlite_rows, wait_until

from tuneloop.errors import ConfigError
from tuneloop.queue import check_args, estimate, prepare, refusal, sign_job, window_end
from tuneloop.store import JobState, Store

# one study per file; each trial reports 3 times, sleeping TRIAL_SLEEP seconds after each report
EXPERIMENT = """
    import os, time
    import tuneloop as tl

    def objective(trial):
        for step in range(3):
            trial.report(step, loss=trial.params.x + 1.0 / (step + 1))
            time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
        return {{"loss": trial.params.x}}

    study = tl.Study("{name}", tl.Space(x=tl.Float(0.0, 1.0)), objective, metric="loss", mode="min",
                     searcher="random", executor="inline")
"""
TRIALS = 3


@pytest.fixture
def experiments(tmp_path):
    """Four experiment files, studies s0..s3."""
    paths = []
    for n in range(4):
        path = tmp_path / f"exp{n}.py"
        path.write_text(textwrap.dedent(EXPERIMENT.format(name=f"s{n}")))
        paths.append(path)
    return paths


def _queue(cli, db, experiments):
    for path in experiments:
        result = cli("queue", "add", "run", path, "--trials", TRIALS, "--storage", db)
        assert result.exit_code == 0 and "Queued job" in result.output, result.output


def _completed(db):
    """{study name: completed trial numbers}."""
    out = {}
    for name, number in sqlite_rows(db, "select s.name, t.number from trials t join studies s on s.id = t.study_id "
                                  "where t.state = 'completed' order by t.number"):
        out.setdefault(name, []).append(number)
    return out


def _runner(db, env=None, *extra):
    cmd = [sys.executable, "-m", "tuneloop.cli", "queue", "run", "--storage", str(db), *extra]
    # as a terminal's foreground job: SIGINT at its default (see test_cli's Ctrl-C test)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)



def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_a_runner_killed_mid_job_is_resumed_and_every_job_finishes_once(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    _queue(cli, db, experiments)
    runner = _runner(db, {"TRIAL_SLEEP": "0.15"})
    # mid-job: the second job's study has a finished trial and is still running
    wait_until(lambda: len(_completed(db).get("s1", [])) >= 1, "the second job to be under way")
    children = _children(runner.pid)
    os.kill(runner.pid, signal.SIGKILL)  # the runner alone: its child must notice and stop
    runner.communicate(timeout=30)
    assert sqlite_rows(db, "select state from jobs where id = 2") == [("running",)]
    assert len(_completed(db)["s1"]) < TRIALS
    wait_until(lambda: all(_gone(c) for c in children), "the killed runner's child to stop")

    again = subprocess.run([sys.executable, "-m", "tuneloop.cli", "queue", "run", "--storage", str(db)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming after its runner stopped (attempt 2)" in again.stdout
    jobs = sqlite_rows(db, "select id, state, attempts, exit_code from jobs order by id")
    assert jobs == [(1, "done", 1, 0), (2, "done", 2, 0), (3, "done", 1, 0), (4, "done", 1, 0)]
    assert _completed(db) == {f"s{n}": list(range(TRIALS)) for n in range(4)}
    assert sqlite_rows(db, "select count(*) from trials where state != 'completed' and state != 'interrupted'") == [(0,)]


@pytest.mark.slow
def test_sigterm_stops_the_child_and_queues_its_job_again(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    _queue(cli, db, experiments[:2])
    runner = _runner(db, {"TRIAL_SLEEP": "0.15"})
    wait_until(lambda: len(_completed(db).get("s0", [])) >= 1, "the first job to be under way")
    children = _children(runner.pid)
    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "queued again; run tuneloop queue run to resume it" in output, output
    assert "Traceback" not in output and all(_gone(c) for c in children)
    assert sqlite_rows(db, "select id, state, attempts, runner from jobs order by id") == [(1, "queued", 1, None),
                                                                                   (2, "queued", 0, None)]
    assert sqlite_rows(db, "select count(*) from trials where state = 'running'") == [(0,)]  # interrupted by the child
    again = subprocess.run([sys.executable, "-m", "tuneloop.cli", "queue", "run", "--storage", str(db)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sqlite_rows(db, "select id, state, attempts from jobs order by id") == [(1, "done", 2), (2, "done", 1)]
    assert _completed(db) == {"s0": list(range(TRIALS)), "s1": list(range(TRIALS))}


@pytest.mark.slow
def test_two_runners_share_the_queue_and_no_job_runs_twice(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    _queue(cli, db, experiments)
    runners = [_runner(db, {"TRIAL_SLEEP": "0.05"}) for _ in range(2)]
    outputs = [r.communicate(timeout=300)[0] for r in runners]
    assert [r.returncode for r in runners] == [0, 0], outputs
    jobs = sqlite_rows(db, "select id, state, attempts, runner from jobs order by id")
    assert [(i, s, a) for i, s, a, _ in jobs] == [(n, "done", 1) for n in range(1, 5)]
    assert all(r for *_, r in jobs)
    started = [line for out in outputs for line in out.splitlines() if "started" in line]
    assert sorted(started) == sorted(f"queue: job {n} (run exp{n - 1}.py --trials {TRIALS}) started"
                                     for n in range(1, 5))  # each job started once, by one of them
    assert _completed(db) == {f"s{n}": list(range(TRIALS)) for n in range(4)}


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_a_job_estimated_past_the_window_stays_queued_with_the_reason(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    assert cli("run", experiments[0], "--trials", 2, "--storage", db).exit_code == 0  # history: s0's trials
    long = cli("queue", "add", "run", experiments[0], "--trials", 10_000_000, "--storage", db)
    assert long.exit_code == 0 and "(estimate " in long.output and "unknown" not in long.output
    assert cli("queue", "add", "run", experiments[1], "--trials", 2, "--storage", db).exit_code == 0
    result = cli("queue", "run", "--hours", 1, "--storage", db)
    assert result.exit_code == 0, result.output
    assert "job 1 (run exp0.py --trials 10000000) stays queued: estimated" in result.output
    assert "stopped: nothing left fits the window" in result.output
    with Store(f"sqlite:///{db}", read_only=True) as store:
        first, second = store.jobs()
    assert first.state is JobState.QUEUED and first.attempts == 0 and first.estimate_s > 3600
    assert first.reason.startswith("estimated ") and first.reason.endswith("left in the window")
    assert second.state is JobState.DONE
    listed = cli("queue", "list", "--storage", db)
    assert "left in the" in listed.output and "estimated" in listed.output
    shown = cli("queue", "show", 2, "--storage", db)  # the tail of its output
    assert shown.exit_code == 0 and "job 2: run exp1.py --trials 2 (done, attempts 1)" in shown.output
    assert "Ran 2 trials" in shown.output


@pytest.mark.slow  # a queued child process (2.5 s): .ci/run runs it in its second pytest call
def test_a_failing_job_is_failed_with_its_exit_code_and_last_line(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    assert cli("queue", "add", "check", experiments[0], "--storage", db).exit_code == 0  # the file defines no checks
    result = cli("queue", "run", "--storage", db)
    assert result.exit_code == 0 and "Ran 1 jobs (0 done, 1 failed)" in result.output, result.output
    with Store(f"sqlite:///{db}", read_only=True) as store:
        (job,) = store.jobs()
    assert job.state is JobState.FAILED and job.exit_code == 1 and "defines no checks" in job.tail
    assert job.reason.startswith("exit code 1: Error: ") and "defines no checks" in job.reason


def test_the_estimate_comes_from_the_studys_history(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    path = str(experiments[0])
    assert cli("run", path, "--trials", 4, "--storage", db).exit_code == 0
    with Store(f"sqlite:///{db}") as store:
        trials = store.trials(store.get_study("s0").id)
        mean = sum(t.duration for t in trials) / len(trials)
        job = SimpleNamespace(kind="run", args=[path, "--trials", "10", "--workers", "2"])
        assert estimate(store, job) == pytest.approx(mean * 6 / 2)
        assert estimate(store, SimpleNamespace(kind="run", args=[path, "--trials", "3"])) == 0
        assert estimate(store, SimpleNamespace(kind="idea-test", args=["1", path, "--seeds", "4"])) == \
            pytest.approx(mean * 4 * 2)
        assert estimate(store, SimpleNamespace(kind="finalize", args=["s0", "--top", "2", "--seeds", "3"])) == \
            pytest.approx(mean * 6)
        assert estimate(store, SimpleNamespace(kind="run", args=[str(experiments[1]), "--trials", "3"])) is None
        assert estimate(store, SimpleNamespace(kind="check", args=[path])) is None  # no history: unknown


def test_a_job_someone_else_wrote_or_whose_file_changed_is_refused_and_nothing_runs(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    assert cli("queue", "add", "run", experiments[0], "--trials", 2, "--storage", db).exit_code == 0
    with Store(f"sqlite:///{db}") as store:  # rows written into the database by someone else
        files, signature = sign_job("run", [str(experiments[1])])
        store.add_job("run", [str(experiments[1])], "forged", files=files, signature="0" * 64)
        store.add_job("run", [str(experiments[2])], "unsigned", files={}, signature=None)
        store.add_job("run", [str(experiments[3]), "--trials", "2"], "swapped", files=files, signature=signature)
        store.add_job("sh", ["-c", "touch pwned"], "[red]not a kind[/]", files={}, signature="0" * 64)
        store.add_job("run", [], "no file", files={}, signature=None)
    experiments[0].write_text(experiments[0].read_text() + "\n# edited after it was queued\n")
    result = cli("queue", "run", "--storage", db)
    assert result.exit_code == 0, result.output
    with Store(f"sqlite:///{db}", read_only=True) as store:
        jobs = store.jobs()
        assert store.studies() == []  # nothing ran
    assert [j.state for j in jobs] == [JobState.FAILED] * 6 and all(j.exit_code is None for j in jobs)
    assert "changed since the job was queued" in jobs[0].reason
    assert all("did not queue it on this machine" in j.reason for j in jobs[1:4])
    assert "'sh' is not a kind of job" in jobs[4].reason and "A run job takes FILE first" in jobs[5].reason
    assert not (tmp_path / "pwned").exists()
    assert "job 5 ([red]not a kind[/]) refused" in result.output  # stored strings print as text
    assert "'sh' is not a kind of job" in cli("queue", "list", "--storage", db).output
    assert "refused" in result.output and "Traceback" not in result.output


@pytest.mark.slow  # queued child processes (2 s): .ci/run runs it in its second pytest call
def test_pause_resume_remove_and_move_edit_the_queue(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    _queue(cli, db, experiments[:3])

    def order():
        with Store(f"sqlite:///{db}", read_only=True) as store:
            return [j.id for j in store.jobs([JobState.QUEUED])]

    assert cli("queue", "move", 3, "--to", 1, "--storage", db).output.startswith("Job 3 is now number 1 of 3")
    assert order() == [3, 1, 2]
    assert cli("queue", "move", 2, "--before", 1, "--storage", db).exit_code == 0
    assert order() == [3, 2, 1]
    assert cli("queue", "remove", 2, "--storage", db).exit_code == 0
    assert order() == [3, 1] and "removed" not in cli("queue", "list", "--storage", db).output
    assert "removed" in cli("queue", "list", "--all", "--storage", db).output

    assert cli("queue", "pause", "--storage", db).exit_code == 0
    assert "The queue is paused" in cli("queue", "list", "--storage", db).output
    paused = cli("queue", "run", "--storage", db)
    assert paused.exit_code == 0 and "stopped: the queue is paused" in paused.output
    assert cli("queue", "resume", "--storage", db).exit_code == 0
    assert cli("queue", "pause", 3, "--storage", db).exit_code == 0
    assert "queued (paused)" in cli("queue", "list", "--storage", db).output

    with Store(f"sqlite:///{db}") as store:  # a runner holds job 1
        assert store.claim_next("elsewhere", os.getpid(), time.time(), 60).id == 1
    refused = cli("queue", "remove", 1, "--storage", db)
    assert refused.exit_code == 1 and "Job 1 is running" in refused.output and len(refused.output.splitlines()) == 1
    assert cli("queue", "resume", 3, "--storage", db).exit_code == 0
    ran = cli("queue", "run", "--storage", db)  # job 3 runs; job 1 is a live runner's
    assert ran.exit_code == 0 and "Ran 1 jobs (1 done, 0 failed)" in ran.output, ran.output


@pytest.mark.parametrize(("args", "message"), [
    (["queue", "add", "train", "x.py"], "'train' is not a kind of job; one of run, idea-test"),
    (["queue", "add", "run"], "A run job takes FILE first"),
    (["queue", "add", "run", "missing.py"], "No file 'missing.py'"),
    (["queue", "add", "run", "{exp}", "--trails", "3"], "No such option: --trails"),
    (["queue", "add", "run", "{exp}", "--workers", "many"], "Bad arguments for a run job"),
    (["queue", "add", "probe", "speed", "{exp}"], "WHICH is one of lr, batch, data"),
    (["queue", "add", "idea-test", "one", "{exp}"], "ID is a whole number"),
    (["queue", "add", "run", "{exp}", "--", "--help"], "--help is not allowed in a job"),
    (["queue", "move", "1"], "either --to POSITION or --before JOB_ID"),
    (["queue", "remove", "9"], "No job 9"),
    (["queue", "run", "--until", "7am"], "--until takes a time of day as HH:MM"),
    (["queue", "run", "--until", "07:00", "--hours", "2"], "not both"),
])
def test_bad_input_is_one_line_with_the_fix(cli, tmp_path, experiments, args, message):
    db = tmp_path / "q.db"
    _queue(cli, db, experiments[:1])
    result = cli(*[a.format(exp=experiments[0]) for a in args], "--storage", db)
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_kinds_take_only_their_commands_and_sign_what_they_name(tmp_path, experiments):
    exp, variant = str(experiments[0]), tmp_path / "variant.py"
    variant.write_text("x = 1\n")
    args = prepare("idea-test", ["3", os.path.relpath(exp), "--variant", os.path.relpath(variant), "--seeds", "2"])
    assert args == ["3", exp, "--variant", str(variant), "--seeds", "2"]  # files made absolute
    assert check_args("idea-test", args) == [exp, str(variant)]
    assert check_args("idea-test", ["3", exp, "--variant=lr=0.1"]) == [exp]  # overrides, not a file
    assert check_args("finalize", ["s0", f"--file={exp}"]) == [exp]
    with pytest.raises(ConfigError, match="--storage is not allowed in a job"):  # the queue's database is its storage
        check_args("run", [exp, "--storage=other.db"])
    files, signature = sign_job("idea-test", args)
    assert refusal("idea-test", args, files, signature) is None
    assert "did not queue it" in refusal("idea-test", [*args, "--workers", "2"], files, signature)  # args changed
    assert "did not queue it" in refusal("run", args[1:], files, signature)  # another kind
    variant.write_text("x = 2\n")
    assert "changed since the job was queued" in refusal("idea-test", args, files, signature)
    assert json.loads(json.dumps(files)) == files


def test_the_window_ends_at_the_next_such_time_or_after_the_hours():
    import datetime as dt

    evening = dt.datetime(2026, 1, 1, 22, 30)
    assert window_end("07:00", None, evening) == dt.datetime(2026, 1, 2, 7, 0).timestamp()
    assert window_end("23:00", None, evening) == dt.datetime(2026, 1, 1, 23, 0).timestamp()
    assert window_end(None, 2, evening) == evening.timestamp() + 7200
    assert window_end(None, None, evening) is None


def test_a_module_planted_in_the_runners_folder_is_not_imported_by_a_job(cli, tmp_path, experiments):
    """The child runs ``python -P -m tuneloop.cli``: the runner's folder is not first on sys.path."""
    db = tmp_path / "q.db"
    _queue(cli, db, experiments[:1])
    marker = tmp_path / "planted-ran"
    (tmp_path / "typer.py").write_text(f"open({str(marker)!r}, 'w').close()\n")  # tuneloop.cli imports typer
    result = cli("queue", "run", "--storage", db)  # in tmp_path: the runner's current folder
    assert result.exit_code == 0 and "Ran 1 jobs (1 done, 0 failed)" in result.output, result.output
    assert not marker.exists()


# a trial that will not stop on SIGINT, with a grandchild that ignores it too and holds the output pipe
STUBBORN = """
    import os, signal, subprocess, sys, time
    import tuneloop as tl

    def objective(trial):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["WORKER_PID"] + ".tmp", "w") as f:
            f.write(str(worker.pid))
        os.replace(os.environ["WORKER_PID"] + ".tmp", os.environ["WORKER_PID"])
        time.sleep(float(os.environ["TRIAL_SLEEP"]))
        return {"loss": trial.params.x}

    study = tl.Study("stubborn", tl.Space(x=tl.Float(0.0, 1.0)), objective, metric="loss", mode="min",
                     searcher="random", executor="inline")
"""


def _stubborn(cli, tmp_path, sleep):
    db, path, pidfile = tmp_path / "q.db", tmp_path / "stubborn.py", tmp_path / "worker.pid"
    path.write_text(textwrap.dedent(STUBBORN))
    assert cli("queue", "add", "run", path, "--trials", 1, "--storage", db).exit_code == 0
    runner = _runner(db, {"TRIAL_SLEEP": str(sleep), "WORKER_PID": str(pidfile)})
    wait_until(pidfile.exists, "the trial to start its worker")
    return db, runner, int(pidfile.read_text()), _children(runner.pid)


@pytest.mark.slow
def test_a_second_sigterm_kills_the_jobs_whole_process_group_and_the_job_is_queued_again(cli, tmp_path):
    db, runner, worker, children = _stubborn(cli, tmp_path, 600)
    runner.send_signal(signal.SIGTERM)  # the child and its worker ignore the SIGINT this sends them
    wait_until(lambda: sqlite_rows(db, "select count(*) from jobs where state = 'running'") == [(1,)], "the job to run")
    # two signals sent at once may arrive as one (standard signals do not queue): the second goes once
    # the runner says it took the first (it then waits out its 30 s grace); the second cuts that short
    seen = []
    for line in runner.stdout:
        seen.append(line)
        if "stopping it" in line:
            break
    runner.send_signal(signal.SIGTERM)
    started = time.monotonic()
    rest, _ = runner.communicate(timeout=25)
    output = "".join(seen) + rest
    assert time.monotonic() - started < 20  # not the 30 s grace, and not blocked on the worker's pipe
    assert runner.returncode == 130 and "queued again" in output and "Traceback" not in output, output
    wait_until(lambda: _gone(worker) and all(_gone(c) for c in children), "the job's processes to be killed")
    assert sqlite_rows(db, "select state, runner, pid from jobs") == [("queued", None, None)]
    assert "interrupted" in sqlite_rows(db, "select reason from jobs")[0][0]


@pytest.mark.slow
def test_a_job_that_ends_well_while_it_is_being_stopped_is_recorded_done(cli, tmp_path):
    db, runner, worker, _ = _stubborn(cli, tmp_path, 1.5)
    runner.send_signal(signal.SIGTERM)  # ignored by the trial, which finishes its 1.5 s and exits 0
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "finished as it was stopped (recorded done)" in output, output
    assert sqlite_rows(db, "select state, attempts, exit_code from jobs") == [("done", 1, 0)]
    wait_until(lambda: _gone(worker), "the worker that outlived its job to be killed with the group")


@pytest.mark.slow
def test_a_worker_that_outlives_its_job_neither_blocks_the_runner_nor_survives_it(cli, tmp_path):
    db, runner, worker, _ = _stubborn(cli, tmp_path, 0.2)  # the job ends; its worker (holding the pipe) lives on
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0 and "Ran 1 jobs (1 done, 0 failed)" in output, output
    assert sqlite_rows(db, "select state, exit_code from jobs") == [("done", 0)]
    wait_until(lambda: _gone(worker), "the leftover worker to be killed with the job's group")


class _Flaky:
    """A store whose heartbeats fail (``raise``: a StorageError, ``lost``: taken over) or whose finish is refused."""

    def __init__(self, store, beat="ok", finish=True):
        self._store, self.beat, self.finish, self.beats = store, beat, finish, 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def heartbeat_job(self, job_id, runner):
        self.beats += 1
        if self.beat == "raise" and self.beats <= 2:
            from tuneloop.errors import StorageError
            raise StorageError("The store is unavailable (a test).")
        return self.beat != "lost" and self._store.heartbeat_job(job_id, runner)

    def finish_job(self, *args, **kwargs):
        return self.finish and self._store.finish_job(*args, **kwargs)


@pytest.mark.parametrize(("beat", "finish", "ran", "said"), [
    pytest.param("raise", True, [(1, JobState.DONE)], "its heartbeat could not be stored",  # the child is kept running
                 marks=pytest.mark.slow),  # (5 s: a child that outlives failed heartbeats; in .ci/run's second call)
    ("lost", True, [], "was taken over by another runner"),  # the child is stopped; the taker records it
    ("ok", False, [], "another runner had taken it over"),  # finish refused: not reported done
])
@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_a_runner_keeps_its_child_through_failed_heartbeats_and_stops_it_when_taken_over(
        cli, tmp_path, experiments, monkeypatch, beat, finish, ran, said):
    from tuneloop.queue import Runner

    db = tmp_path / "q.db"
    _queue(cli, db, experiments[:1])
    monkeypatch.setenv("TRIAL_SLEEP", "0.4" if beat != "ok" else "0")
    lines = []
    with Store(f"sqlite:///{db}") as store:
        flaky = _Flaky(store, beat, finish)
        summary = Runner(flaky, stale_after=0.8, say=lines.append, echo=lambda line: None).run()
        job = store.job(1)
    assert summary.ran == ran and any(said in line for line in lines), lines
    if beat == "raise":
        assert job.state is JobState.DONE and flaky.beats > 2
    else:
        assert job.state is JobState.RUNNING and not any(") done" in line for line in lines)


def test_a_dead_runners_job_past_the_window_is_queued_again_with_the_reason_or_removed(cli, tmp_path, experiments):
    db = tmp_path / "q.db"
    assert cli("run", experiments[0], "--trials", 2, "--storage", db).exit_code == 0  # history: s0's trials
    assert cli("queue", "add", "run", experiments[0], "--trials", 10_000_000, "--storage", db).exit_code == 0
    with Store(f"sqlite:///{db}") as store:
        store.claim_next("gone", 999_999_999, time.time(), 60)  # its runner died (a PID no process has)
    result = cli("queue", "run", "--hours", 1, "--storage", db)
    assert result.exit_code == 0 and "job 1 (run exp0.py --trials 10000000) stays queued" in result.output
    with Store(f"sqlite:///{db}") as store:
        job = store.job(1)
        assert job.state is JobState.QUEUED and job.runner is None and job.reason.endswith("left in the window")
        store.claim_next("gone", 999_999_999, time.time(), 60)
    removed = cli("queue", "remove", 1, "--storage", db)
    assert removed.exit_code == 0, removed.output
    assert sqlite_rows(db, "select state from jobs") == [("removed",)]


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
@pytest.mark.parametrize(("column", "value"), [("attempts", "x"), ("estimate_s", "abc"), ("heartbeat_at", "soon"),
                                               ("pid", 2**40)])
def test_corrupt_numbers_are_one_line_in_list_and_show_and_a_runner_passes_the_row_over(
        cli, tmp_path, experiments, column, value):
    db = tmp_path / "q.db"
    _queue(cli, db, experiments[:2])
    con = sqlite3.connect(db)
    con.execute(f"update jobs set {column} = ? where id = 1", (value,))
    con.commit()
    con.close()
    for args in (("queue", "list"), ("queue", "show", 1)):
        result = cli(*args, "--storage", db)
        assert result.exit_code == 1 and "Corrupt row: the" in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    ran = cli("queue", "run", "--storage", db)
    assert ran.exit_code == 0 and "Ran 1 jobs (1 done, 0 failed)" in ran.output, ran.output
    assert sqlite_rows(db, "select id, state from jobs order by id") == [(1, "queued"), (2, "done")]


def test_queue_list_on_a_database_from_before_the_queue_is_empty_at_once(cli, tmp_path, experiments):
    db = tmp_path / "old.db"
    assert cli("run", experiments[0], "--trials", 1, "--storage", db).exit_code == 0
    con = sqlite3.connect(db)
    con.execute("drop table jobs")
    con.execute("update tuneloop_meta set value = '7' where key = 'schema_version'")
    con.commit()
    con.close()
    started = time.monotonic()
    result = cli("queue", "list", "--storage", db)
    assert result.exit_code == 0 and "Queue (0 queued)" in result.output, result.output
    assert time.monotonic() - started < 10  # not a minute of retries


class _History:
    """A store with one study run from ``path`` whose config and trials are as given."""

    def __init__(self, path, config, durations=(2.0,)):
        self.path, self.config, self.durations = path, config, durations

    def study_configs(self):
        return {"s": {"experiment": self.path}}

    def get_study(self, name):
        return SimpleNamespace(id=1, created_at=0.0, config=self.config)

    def trials(self, study_id, states=None):
        return [SimpleNamespace(duration=d) for d in self.durations]

    def count_finished(self, study_id):
        return 0

    def jobs(self, states=None):
        return []


@pytest.mark.parametrize(("config", "args", "expected"), [
    ({"n_trials": "abc"}, [], None),
    ({"n_trials": ["x"]}, [], None),
    ({"n_trials": "²"}, [], None),
    ({"n_trials": 10**30}, [], None),
    ({"n_trials": True}, [], None),
    ({"n_trials": 4}, ["--trials", "²"], 8.0),  # not a whole number: the study's own budget
    ({"n_trials": 4}, ["--trials", "9" * 5000], 8.0),  # too many digits: likewise
    ({"n_trials": 4}, ["--trials", "3", "--workers", "²"], 6.0),
    ({"n_trials": 4}, ["--trials", "3"], 6.0),
])
def test_an_estimate_from_hostile_history_or_arguments_is_a_number_or_unknown(config, args, expected):
    store = _History("/x/exp.py", config)
    assert estimate(store, SimpleNamespace(kind="run", args=["/x/exp.py", *args])) == expected
    broken = _History("/x/exp.py", config, durations=("soon",))  # a duration that is text: unknown, no crash
    assert estimate(broken, SimpleNamespace(kind="run", args=["/x/exp.py", *args])) is None


def test_the_command_lines_default_stale_after_is_the_stores():
    from tuneloop.cli._queue import STALE_AFTER as CLI_DEFAULT
    from tuneloop.store._jobs import STALE_AFTER

    assert CLI_DEFAULT == STALE_AFTER >= 3 * 60.0  # well above the store's 60 s of retries
