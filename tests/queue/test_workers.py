"""``tuneloop queue run --workers N --gpus ...``: several jobs at once, each a real child process, each
recorded exactly once; every wait is for an event (a row, a file, a process gone), never a clock."""

import os
import signal
import sqlite3
import subprocess
import sys

import pytest
from shared import sqlite_rows, wait_until

from tuneloop.errors import ConfigError
from tuneloop.queue._pool import gpu_pool


def _completed(db):
    return sqlite_rows(db, "select s.name, count(*) from trials t join studies s on s.id = t.study_id "
                           "where t.state = 'completed' group by s.name order by s.name")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


def _descendants(pid):
    """Every process under ``pid`` now (its children's children too)."""
    found, todo = [], [pid]
    while todo:
        try:
            with open(f"/proc/{(p := todo.pop())}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


@pytest.mark.slow
def test_two_workers_run_four_jobs_two_at_a_time_each_once(cli, queue, meeting, monkeypatch):
    paths, _ = meeting
    db = queue(*paths)
    monkeypatch.setenv("MEET", "2")  # the first two jobs' trials wait for each other: they must overlap
    result = cli("queue", "run", "--workers", 2, "--storage", db)
    assert result.exit_code == 0 and "Ran 4 jobs (4 done, 0 failed); stopped: the queue is empty" in result.output, \
        result.output
    jobs = sqlite_rows(db, "select id, state, attempts, exit_code, started_at, finished_at from jobs order by id")
    assert [j[:4] for j in jobs] == [(n, "done", 1, 0) for n in range(1, 5)]
    (_, _, _, _, start1, end1), (_, _, _, _, start2, end2) = jobs[:2]
    assert start1 < end2 and start2 < end1  # their runs overlap in time
    started = [line for line in result.output.splitlines() if " started" in line]
    assert sorted(started) == [f"queue: job {n} (run meet{n - 1}.py --trials 1) started" for n in range(1, 5)]
    assert "[job 1] Ran 1 trials" in result.output  # several at once: each line says whose it is
    assert _completed(db) == [(f"s{n}", 1) for n in range(4)]


@pytest.mark.slow
def test_a_runner_killed_with_two_jobs_in_flight_is_resumed_and_each_job_finishes_once(cli, queue, meeting):
    paths, where = meeting
    db = queue(*paths[:2])
    env = {**os.environ, "MEET": "2", "HOLD": "1"}  # both trials wait for `release`, which only comes later
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's foreground job
    try:
        runner = subprocess.Popen([sys.executable, "-m", "tuneloop.cli", "queue", "run", "--workers", "2",
                                   "--storage", str(db)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    wait_until(lambda: (where / "s0.started").exists() and (where / "s1.started").exists(), "both jobs' trials to run")
    processes = _descendants(runner.pid)
    assert sqlite_rows(db, "select id, state from jobs order by id") == [(1, "running"), (2, "running")]
    os.kill(runner.pid, signal.SIGKILL)  # the runner alone: each child must notice and stop
    runner.communicate(timeout=30)
    wait_until(lambda: not any(_alive(p) for p in processes), "the killed runner's children to stop")
    assert sqlite_rows(db, "select id, state, attempts from jobs order by id") == [(1, "running", 1), (2, "running", 1)]
    assert _completed(db) == []

    (where / "release").touch()
    again = subprocess.run([sys.executable, "-m", "tuneloop.cli", "queue", "run", "--workers", "2", "--storage",
                            str(db)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("resuming after its runner stopped (attempt 2)") == 2, again.stdout
    assert sqlite_rows(db, "select id, state, attempts, exit_code from jobs order by id") == [(1, "done", 2, 0),
                                                                                       (2, "done", 2, 0)]
    assert _completed(db) == [("s0", 1), ("s1", 1)]
    assert sqlite_rows(db, "select count(*) from trials where state not in ('completed', 'interrupted')") == [(0,)]


@pytest.mark.slow
def test_each_running_job_gets_a_gpu_of_its_own(cli, queue, meeting, monkeypatch):
    paths, where = meeting
    db = queue(*paths[:3])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("MEET", "2")  # jobs 1 and 2 run at once; job 3 takes the GPU the first to end gives back
    result = cli("queue", "run", "--gpus", "0,1", "--storage", db)  # --workers: one per GPU
    assert result.exit_code == 0 and "Ran 3 jobs (3 done, 0 failed)" in result.output, result.output
    seen = [(where / f"s{n}.started").read_text() for n in range(3)]
    assert sorted(seen[:2]) == ["0", "1"] and seen[2] in ("0", "1")
    assert "job 1 (run meet0.py --trials 1) started on GPU 0" in result.output


def test_gpu_indices_are_the_visible_gpus_and_all_asks_for_every_one(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_pool("1, 0") == ["1", "0"]  # not checked against a count: asking torch is for `all` only
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,GPU-abc,7")
    assert gpu_pool("2,0") == ["7", "5"]
    assert gpu_pool("all") == ["5", "GPU-abc", "7"]
    with pytest.raises(ConfigError, match="There is no GPU 3 to pin to"):
        gpu_pool("3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="--gpus all pins each job to a GPU, but no GPU is visible"):
        gpu_pool("all")
    with pytest.raises(ConfigError, match=r"There is no GPU 0 to pin to: no GPU is visible .*; run without --gpus\.$"):
        gpu_pool("0")  # not "pass indices 0 to -1"


@pytest.mark.parametrize(("args", "message"), [
    (["--gpus", "x"], "--gpus takes GPU indices separated by commas"),
    (["--gpus", "-1"], "--gpus takes GPU indices separated by commas"),
    (["--gpus", "0,,1"], "--gpus takes GPU indices separated by commas"),
    (["--gpus", "0,1,0"], "--gpus names GPU 0 twice"),
    (["--gpus", "0,1", "--workers", "3"], "--workers 3 runs 3 jobs at once, but --gpus gives 2 GPUs"),
    (["--workers", "0"], "--workers takes a whole number of jobs at once, at least 1"),
    (["--notify-url", "file:///etc/passwd"], "--notify-url (or TUNELOOP_NOTIFY_URL) takes an http or https URL"),
    (["--notify-url", "https://"], "takes an http or https URL"),
    (["--notify-url", "http://[oops/s3cr3t"], "takes an http or https URL"),  # urlsplit: ValueError
    (["--notify-url", "https://hooks.slack.com/services/s3cr3t\nx"], "has a space or a control character"),
    (["--notify-email", "me@example.com"], "--notify-email sends mail through an SMTP server: pass --smtp"),
    (["--notify-email", "not an address", "--smtp", "localhost"], "--notify-email takes one mail address"),
    (["--notify-email", "me@example.com", "--smtp", "host:port"], "--smtp (or TUNELOOP_SMTP) takes HOST or HOST:PORT"),
    (["--notify-email", "me@example.com", "--smtp", "host:\u00b2"], "--smtp (or TUNELOOP_SMTP) takes HOST or HOST:PORT"),
    (["--smtp", "localhost"], "--smtp names the server that mails --notify-email ADDRESS"),
])
def test_bad_runner_options_are_one_line_with_the_fix(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = cli("queue", "run", *args, "--storage", tmp_path / "q.db")
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "s3cr3t" not in result.output
    assert not (tmp_path / "q.db").exists()  # refused before anything opened


@pytest.mark.slow
def test_sigterm_stops_every_running_job_queues_each_again_and_says_so(cli, queue, meeting, hook):
    paths, where = meeting
    db = queue(*paths[:3])
    url, seen = hook
    env = {**os.environ, "MEET": "2", "HOLD": "1", "TUNELOOP_NOTIFY_URL": url}
    runner = subprocess.Popen([sys.executable, "-m", "tuneloop.cli", "queue", "run", "--workers", "2", "--storage",
                               str(db)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    wait_until(lambda: (where / "s0.started").exists() and (where / "s1.started").exists(), "both jobs' trials to run")
    processes = _descendants(runner.pid)
    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "2 running jobs were stopped: 2 queued again" in output, output
    assert output.count("stopping it (Ctrl-C again or SIGTERM to kill it now)") == 2 and "Traceback" not in output
    assert not any(_alive(p) for p in processes)
    assert sqlite_rows(db, "select id, state, attempts, runner from jobs order by id") == [
        (1, "queued", 1, None), (2, "queued", 1, None), (3, "queued", 0, None)]  # job 3 never started
    assert sqlite_rows(db, "select count(*) from trials where state = 'running'") == [(0,)]  # interrupted
    ((_, _, message),) = seen  # one message: the summary (no job failed)
    assert "stopped: it was stopped (Ctrl-C or SIGTERM)." in message["text"], message
    text = message["text"]
    assert "Jobs: 0 done, 0 failed, 3 left queued." in text and "job 3 (run meet2.py --trials 1): not reached" in text
    assert "job 1 (run meet0.py --trials 1): interrupted: its runner" in text


def test_with_several_workers_a_job_that_cannot_finish_in_the_window_stays_queued(cli, queue, meeting, tmp_path):
    paths, _ = meeting
    assert cli("run", paths[0], "--trials", 1, "--storage", tmp_path / "q.db").exit_code == 0  # s0's history
    db = queue(paths[1])
    long = cli("queue", "add", "run", paths[0], "--trials", 10_000_000, "--storage", db)
    assert long.exit_code == 0
    result = cli("queue", "run", "--workers", 2, "--hours", 1, "--storage", db)
    assert result.exit_code == 0 and "Ran 1 jobs (1 done, 0 failed); stopped: nothing left fits" in result.output
    assert sqlite_rows(db, "select id, state, attempts from jobs order by id") == [(1, "done", 1), (2, "queued", 0)]
    assert sqlite_rows(db, "select reason from jobs where id = 2")[0][0].endswith("left in the window")


@pytest.mark.slow
def test_a_free_slot_never_takes_over_a_job_its_own_runner_is_running(cli, queue, meeting, tmp_path):
    """A running job whose heartbeat went stale (a suspended laptop, a store busy past --stale-after) looks
    dead to claim_next; the runner holding it must not claim it again in its other slot (run twice, recorded twice)."""
    paths, where = meeting
    db = queue(paths[0])
    env = {**os.environ, "HOLD": "1"}
    log = tmp_path / "runner.txt"
    with open(log, "w") as out:
        runner = subprocess.Popen([sys.executable, "-m", "tuneloop.cli", "queue", "run", "--workers", "2", "--poll",
                                   "0.1", "--stale-after", "600", "--storage", str(db)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: (where / "s0.started").exists(), "job 1's trial to run")
        con = sqlite3.connect(db, timeout=30)
        with con:  # job 1's heartbeat as a runner's looks after a night's suspend
            con.execute("update jobs set heartbeat_at = heartbeat_at - 100000 where id = 1")
        con.close()
        assert cli("queue", "add", "run", paths[1], "--trials", 1, "--storage", db).exit_code == 0
        wait_until(lambda: (where / "s1.started").exists()
              or sqlite_rows(db, "select attempts from jobs where id = 1") != [(1,)], "the runner's next claim")
        assert sqlite_rows(db, "select id, state, attempts from jobs order by id") == [(1, "running", 1),
                                                                                       (2, "running", 1)]
        assert cli("queue", "pause", "--storage", db).exit_code == 0  # then it stops once both have ended
        (where / "release").touch()
        runner.wait(timeout=120)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    output = log.read_text()
    assert runner.returncode == 0 and "attempt 2" not in output, output
    assert sqlite_rows(db, "select id, state, attempts from jobs order by id") == [(1, "done", 1), (2, "done", 1)]


def test_a_slot_that_cannot_start_gives_its_gpu_back_requeues_its_job_and_the_runner_ends(queue, meeting, monkeypatch):
    """A thread that cannot start (the process's thread limit) left the slot registered forever: run() waited
    for it without end, its GPU out of the pool and its job running under a runner that never recorded it."""
    import threading

    from tuneloop.queue import Runner
    from tuneloop.store import Store

    paths, _ = meeting
    db = queue(paths[0])

    class NoSlots(threading.Thread):
        def start(self):
            if self.name.startswith("queue-job-"):
                raise RuntimeError("can't start new thread")
            super().start()

    monkeypatch.setattr(threading, "Thread", NoSlots)
    outcome = []
    with Store(f"sqlite:///{db}") as store:
        runner = Runner(store, gpus=["0"], say=lambda line: None, echo=lambda line: None)

        def run():
            try:
                runner.run()
            except BaseException as exc:  # noqa: BLE001 - what the test looks at
                outcome.append(exc)

        thread = threading.Thread.__mro__[1](target=run, daemon=True)  # a plain thread: run() off the main one
        thread.start()
        thread.join(timeout=20)  # it ends at once, or never
        assert not thread.is_alive(), "run() never ended"
    assert [type(e) for e in outcome] == [RuntimeError]
    assert runner._free_gpus == ["0"] and runner._slots == {}
    assert sqlite_rows(db, "select id, state, runner from jobs") == [(1, "queued", None)]


@pytest.mark.slow
def test_a_job_whose_output_cannot_be_echoed_still_runs_to_its_end(cli, tmp_path):
    """The runner's terminal gone (EIO, a closed pipe: BrokenPipeError) made the reader stop reading the
    child's output: the child then blocked on its full pipe, and the job (and the runner) never ended."""
    import threading

    from tuneloop.queue import Runner
    from tuneloop.store import Store

    db, path = tmp_path / "q.db", tmp_path / "exp.py"
    path.write_text("import sys\nsys.stdout.write(('x' * 99 + '\\n') * 3000)\nsys.stdout.flush()\n"
                    "print('the end')\nraise SystemExit(3)\n")  # 300 KB: several times a pipe's buffer
    assert cli("queue", "add", "check", path, "--storage", db).exit_code == 0

    def echo(line):
        raise BrokenPipeError(32, "Broken pipe")

    with Store(f"sqlite:///{db}") as store:
        runner = Runner(store, say=lambda line: None, echo=echo)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        thread.join(timeout=60)  # a few seconds, or never
        assert not thread.is_alive(), "the job never ended"
    ((state, tail),) = sqlite_rows(db, "select state, tail from jobs")
    assert state == "failed" and "the end" in tail
