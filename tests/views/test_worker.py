"""The dashboard's importance fit in a worker process: the same values as the report's in-process fit,
really computed in another process, and a killed worker never leaves the page stuck computing."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tuneloop as tl
from tuneloop.analysis import importance
from tuneloop.store import Store
from tuneloop.views import _worker, study_view

SPACE = tl.Space(x=tl.Float(0.0, 1.0), lr=tl.LogFloat(1e-4, 1e-1), depth=tl.Int(1, 8),
                 opt=tl.Choice({"sgd": {"momentum": tl.Float(0.0, 0.99)}, "adam": {}}))


def _trial(store: Store, study_id: int, n: int) -> None:
    """Trial ``n``: x drives the loss, the rest is mostly noise; every fourth one fails (left out of the fit)."""
    opt = "sgd" if n % 3 else "adam"
    params = {"x": (n * 0.37) % 1, "lr": 10 ** -(1 + (n * 7 % 30) / 10), "depth": 1 + n % 8, "opt": opt,
              **({"momentum": (n * 0.11) % 0.99} if opt == "sgd" else {})}
    trial = store.create_trial(study_id, n, params, seed=n)
    loss = (params["x"] - 0.3) ** 2 + 0.01 * params["depth"]
    store.finish_trial(trial, "failed" if n % 4 == 3 else "completed", None if n % 4 == 3 else loss,
                       {} if n % 4 == 3 else {"loss": loss})


def _study(store: Store, name: str, n_trials: int = 24):
    """A study of ``n_trials`` trials over a conditional space (three in four completed)."""
    record = store.create_study(name, "loss", "min", SPACE, {})
    for n in range(n_trials):
        _trial(store, record.id, n)
    return record


@pytest.fixture
def study(storage):
    """A real SQLite study "w" of 24 trials (18 completed)."""
    with Store(storage) as store:
        yield store, _study(store, "w")


@pytest.fixture
def pids(monkeypatch):
    """The worker's pid hook, cleared for the test (and restored after it)."""
    monkeypatch.setattr(_worker, "last_pid", None)
    return _worker


def _settled(store: Store, name: str = "w") -> dict:
    """The dashboard's first look at a study (which starts the fit in the background), then the waited-for
    result of that same fit: a report with the same key waits on the pending computation."""
    first = study_view(store, name, wait=False)
    assert first["importance_status"]["state"] == "computing"
    return study_view(store, name)


def test_the_dashboard_fit_runs_in_another_process_and_matches_the_in_process_fit(study, pids):
    store, record = study
    view = _settled(store)
    assert view["importance_status"] == {**view["importance_status"], "state": "ready", "trials": 18}
    expected = importance(store.require_study("w").space, store.trials(record.id), "min")
    assert set(expected) == {"x", "lr", "depth", "opt"}  # fANOVA keeps the parameters every trial has
    assert view["importance"] == expected  # the same forest on the same data: equal to the last bit
    assert pids.last_pid is not None and pids.last_pid != os.getpid()
    assert pids.last_pid == pids._worker.pid and pids._worker.poll() is None  # still alive for the next fit
    # at a lower priority than the server: a fit gives way to the requests
    assert os.getpriority(os.PRIO_PROCESS, pids.last_pid) > os.getpriority(os.PRIO_PROCESS, 0)


def test_a_report_computes_in_its_own_process(study, pids):
    store, record = study
    view = study_view(store, "w")  # wait=True: the first and only call
    assert view["importance"] == importance(record.space, store.trials(record.id), "min")
    assert pids.last_pid is None  # no worker was asked


@pytest.mark.slow  # a worker process started for it (2-3 s): .ci/run runs it in its second pytest call
def test_a_killed_worker_is_replaced_by_the_next_fit(study, pids):
    store, _ = study
    assert _settled(store)["importance"]  # the worker is up
    pid = pids.last_pid
    worker = pids._worker
    os.kill(pid, signal.SIGKILL)
    assert worker.wait(timeout=60) == -signal.SIGKILL  # really dead before the next fit

    again = _study(store, "again", 28)  # a study the dashboard has not seen: its first look starts a fit
    view = _settled(store, "again")
    assert view["importance"] == importance(again.space, store.trials(again.id), "min") != {}
    assert view["importance_status"]["trials"] == 21
    assert pids.last_pid not in (None, pid, os.getpid())  # a new worker computed it


@pytest.mark.slow  # a worker process started for it (2-3 s): .ci/run runs it in its second pytest call
def test_a_worker_that_dies_during_a_fit_gives_no_panel_and_the_next_fit_starts_a_new_one(study, pids):
    store, _ = study
    dying = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"],  # reads the request, ends
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with pids._lock:
        if pids._worker is not None:
            pids._stop(pids._worker)
        pids._worker = dying
    view = _settled(store)
    assert view["importance"] == {} and view["importance_status"]["state"] == "ready"  # answered, not stuck
    assert dying.poll() is not None and pids._worker is None  # ended and forgotten

    again = _study(store, "again", 28)
    view = _settled(store, "again")
    assert view["importance"] == importance(again.space, store.trials(again.id), "min") != {}
    assert pids.last_pid not in (None, dying.pid, os.getpid())


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on the worker with a pidfd (Linux)")
@pytest.mark.slow  # a worker process started for it (2-3 s): .ci/run runs it in its second pytest call
def test_the_worker_ends_with_a_server_that_is_killed(study, storage):
    """A server killed (or stopped by SIGTERM, which uvicorn re-raises after its graceful shutdown)
    runs no exit handler: its worker must not outlive it (its stdin closes, and it ends)."""
    code = textwrap.dedent(f"""
        import os, signal
        from tuneloop.store import Store
        from tuneloop.views import _worker

        with Store({storage!r}) as store:
            record = store.require_study("w")
            done = [t for t in store.trials(record.id) if t.value is not None]
            assert _worker.importance_in_worker(record.space, done, "min")
        print(_worker.last_pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with server.stdout:  # read the one line only: a worker that outlived the server would hold the pipe open
        line = server.stdout.readline()
    assert server.wait(timeout=120) == -signal.SIGKILL and line.strip(), "the server did not report its worker"
    pid = int(line)
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        readable, _, _ = select.select([handle], [], [], 60)  # readable once the process has exited
        if not readable:
            os.kill(pid, signal.SIGKILL)  # no orphan left behind by a failing run
        assert readable, f"the worker {pid} outlived its killed server"
    finally:
        os.close(handle)


@pytest.mark.slow  # a worker process started for it (2-3 s): .ci/run runs it in its second pytest call
def test_the_worker_never_imports_from_the_folder_the_server_runs_in(study, pids, tmp_path, monkeypatch):
    store, record = study
    planted = tmp_path / "served"
    planted.mkdir()
    (planted / "optuna.py").write_text(f"open({str(planted / 'ran')!r}, 'w').close()\nraise SystemExit(3)\n")
    with pids._lock:  # a worker started from that folder
        if pids._worker is not None:
            pids._stop(pids._worker)
    monkeypatch.chdir(planted)
    view = _settled(store)
    assert view["importance"] == importance(record.space, store.trials(record.id), "min") != {}
    assert not (planted / "ran").exists()  # the planted file never ran


def test_a_hung_fit_is_stopped_at_its_limit_and_gives_no_panel(study, pids, monkeypatch):
    store, _ = study
    hung = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.readline(); time.sleep(600)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    with pids._lock:
        if pids._worker is not None:
            pids._stop(pids._worker)
        pids._worker = hung
    monkeypatch.setattr(pids, "FIT_LIMIT_S", 1.0)
    view = _settled(store)
    assert view["importance"] == {} and view["importance_status"]["state"] == "ready"  # answered, not stuck
    assert hung.poll() == -signal.SIGKILL and pids._worker is None  # stopped and forgotten


@pytest.mark.slow  # a server app and a worker stand-in (3 s): .ci/run runs it in its second pytest call
def test_a_server_shutting_down_stops_its_worker_in_the_middle_of_a_fit(study, pids):
    """uvicorn ends a SIGTERMed server by re-raising the signal after its shutdown, so no exit hook runs:
    the app's shutdown itself stops the worker, which would otherwise finish a long fit for nobody."""
    import threading
    import time

    from fastapi.testclient import TestClient

    from tuneloop.dashboard import create_app

    store, record = study
    busy = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.stdin.readline(); time.sleep(600)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # a fit that takes minutes
    with pids._lock:
        if pids._worker is not None:
            pids._stop(pids._worker)
        pids._worker = busy
    done = [t for t in store.trials(record.id) if t.value is not None]
    answers: list = []
    fit = threading.Thread(target=lambda: answers.append(pids.importance_in_worker(record.space, done, "min")))
    with TestClient(create_app(store.url), base_url="http://localhost"):
        fit.start()
        deadline = time.monotonic() + 60
        while not pids._lock.locked():  # the fit holds the lock from its request to its answer
            assert time.monotonic() < deadline and fit.is_alive()
            time.sleep(0.01)
    fit.join(60)  # the shutdown (leaving the client) stopped the worker: the fit's reader saw the end
    assert busy.poll() == -signal.SIGKILL and pids._worker is None  # stopped by the shutdown, and forgotten
    assert answers == [{}]  # the fit in flight gives no panel
    assert pids.importance_in_worker(record.space, done, "min")  # and the next fit starts a new worker


def _process_state(pid: int) -> str:
    """The state letter of ``pid`` in /proc (R running, S sleeping, T stopped)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped, waiting for the event (a signal is delivered asynchronously) up to 60 s."""
    deadline = time.monotonic() + 60
    while _process_state(pid) != "T":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc (Linux)")
@pytest.mark.slow  # a worker process started for it (2-3 s): .ci/run runs it in its second pytest call
def test_a_paused_worker_is_stopped_and_its_fit_completes_once_it_goes_on(study, pids):
    """A study page drawing pauses the fit (tuneloop.views._holds): the worker is really stopped, a fit asked
    for meanwhile waits in its pipe, and gives the same shares once the worker goes on."""
    store, record = study
    done = [t for t in store.trials(record.id) if t.value is not None]
    assert pids.importance_in_worker(record.space, done, "min")  # the worker is up
    worker = pids._worker
    answers: list[dict] = []
    try:
        pids.pause(True)
        assert _stopped(worker.pid)
        fit = threading.Thread(target=lambda: answers.append(pids.importance_in_worker(record.space, done[:-1], "min")))
        fit.start()
        assert _process_state(worker.pid) == "T"  # still stopped with a request in its pipe
        pids.pause(False)
        fit.join(timeout=120)
    finally:
        pids.pause(False)
    assert answers == [importance(record.space, done[:-1], "min")] and answers[0]
    assert pids._worker is worker and _process_state(worker.pid) != "T"  # the same worker, going on

    # a worker started while paused starts stopped: its first fit waits for the pause to end
    with pids._lock:
        pids._stop(worker)
    answers.clear()
    try:
        pids.pause(True)
        fit = threading.Thread(target=lambda: answers.append(pids.importance_in_worker(record.space, done, "min")))
        fit.start()
        deadline = time.monotonic() + 60
        while pids._worker is None:  # the event: the fit started a new worker
            assert time.monotonic() < deadline and fit.is_alive(), "no worker was started"
            time.sleep(0.01)
        assert pids._worker is not worker and _stopped(pids._worker.pid)
        pids.pause(False)
        fit.join(timeout=120)
    finally:
        pids.pause(False)
    assert answers == [importance(record.space, done, "min")]


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc (Linux)")
@pytest.mark.slow  # a worker process started for it (2-3 s): .ci/run runs it in its second pytest call
def test_a_stopped_worker_ends_with_a_server_that_is_killed(study, storage):
    """A server killed while a page held its worker stopped: the stopped worker cannot read the end of its
    stdin, but its process group, orphaned with a stopped member, gets SIGHUP and SIGCONT from the kernel."""
    code = textwrap.dedent(f"""
        import os, signal
        from tuneloop.store import Store
        from tuneloop.views import _worker

        with Store({storage!r}) as store:
            record = store.require_study("w")
            done = [t for t in store.trials(record.id) if t.value is not None]
            assert _worker.importance_in_worker(record.space, done, "min")
        _worker.pause(True)
        while open(f"/proc/{{_worker.last_pid}}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            pass  # stopped (a signal is delivered asynchronously): then the server dies
        print(_worker.last_pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with server.stdout:
        line = server.stdout.readline()
    assert server.wait(timeout=120) == -signal.SIGKILL and line.strip(), "the server did not report its worker"
    pid = int(line)
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{pid}") and _process_state(pid) != "Z":  # the event: it ended (or is a zombie)
        assert time.monotonic() < deadline, f"the worker {pid} outlived its server ({_process_state(pid)})"
        time.sleep(0.02)
