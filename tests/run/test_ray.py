"""The Ray executor on a real local Ray cluster (ray.init(num_cpus=2)) and on a two-node cluster
started on this machine with `ray start --head` and `ray start --address`."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.store import Store

ray = pytest.importorskip("ray")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def study_of(fn, storage, name="ray"):
    return tl.Study(name, tl.Space(x=tl.Float(-2.0, 2.0)), fn, metric="loss", mode="min", storage=storage, seed=0)


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_trials_stream_reports_and_schedulers_stop_them(local_ray, storage):
    study = study_of(tf.quadratic, storage)
    summary = study.run(8, executor="ray", searcher="random", scheduler="asha")
    assert sum(summary.outcomes.values()) == 8 and summary.outcomes.get("pruned", 0) >= 1
    with Store(storage) as store:
        trials = store.trials(store.get_study("ray").id)
        series = store.series([t.id for t in trials], names=["loss"])
    for t in trials:
        steps = [s for s, _ in series[t.id]["loss"]]
        # streamed in order; a completed trial reported every step, a pruned one stopped at a rung (ASHA's
        # last rung is the last step, so a trial may be pruned there with all four reports)
        assert steps == list(range(len(steps))) and (t.state != "completed" or len(steps) == 4)


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_a_failing_trial_fails_alone(local_ray, storage):
    study = study_of(tf.fails_when_negative, storage)
    study.run(6, executor="ray", searcher="random")
    assert {t.state for t in study.trials} <= {"completed", "failed"}
    for t in study.trials:
        assert (t.state == "failed") == (t.params["x"] < 0)
        if t.state == "failed":
            assert t.error.startswith("ValueError: x is negative")


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_sys_exit_in_a_ray_trial_fails_that_trial_only(local_ray, storage):
    study = study_of(tf.exits, storage)
    summary = study.run(6, executor="ray", searcher="random")
    assert summary.retried == 0 and summary.finished_total == 6
    for t in study.trials:
        assert (t.state == "failed") == (t.params["x"] < 0)
        if t.state == "failed":
            assert t.error.startswith("SystemExit: the trial function called sys.exit(3)")


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_a_killed_ray_worker_is_retried(local_ray, storage):
    study = study_of(tf.killed_once, storage)
    summary = study.run(4, executor="ray", searcher="random")
    assert summary.outcomes == {"completed": 4} and summary.retried == 1
    assert [t.attempt for t in study.trials] == [0, 1, 0, 0]


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_population_buckets_train_as_ray_tasks(local_ray, tmp_path, monkeypatch):
    """Two widths: two buckets, each a Ray task (another process); the results equal the local
    population executor's, every member's epochs reported back as they trained."""
    from tuneloop.torch import _population

    values = {}
    for where, executor in (("local", {"name": "population", "members": 6}),
                            ("ray", {"name": "population", "members": 6, "address": "local"})):
        if where == "ray":  # from here on, training in this process would fail the trials
            monkeypatch.setattr(_population, "run_jobs", lambda *_, **__: pytest.fail("trained in the driver"))
        study = tl.Study(f"pop-{where}", tl.Space(x=tl.Float(-2.0, 2.0)), tf.two_widths, metric="val_acc", mode="max",
                         storage=f"sqlite:///{tmp_path / (where + '.db')}", seed=0, budget=tl.Budget(epochs=3))
        summary = study.run(6, executor=executor, searcher="random")
        assert summary.outcomes == {"completed": 6}
        values[where] = {t.number: t.value for t in study.trials}
        with Store(study.storage) as store:
            series = store.series([t.id for t in study.trials], names=["val_acc"])
        assert all([s for s, _ in series[t.id]["val_acc"]] == [1, 2, 3] for t in study.trials)
    assert values["local"] == values["ray"]


@pytest.mark.skipif(shutil.which("ray") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "ray")),
                    reason="the ray command is not installed")
@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_a_two_node_cluster_on_one_machine(storage):
    """docs/cluster.md's rehearsal: a head and a second node, trials spread over both."""
    if ray.is_initialized():
        ray.shutdown()
    cli = os.path.join(os.path.dirname(sys.executable), "ray")
    import socket

    with socket.socket() as probe:  # a free port for the head
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    def start(*args):
        done = subprocess.run([cli, "start", *args, "--num-cpus=1"], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    start("--head", f"--port={port}", "--include-dashboard=false")
    try:
        start(f"--address=127.0.0.1:{port}")
        study = study_of(tf.where_it_ran, storage, name="two-nodes")
        summary = study.run(6, executor={"name": "ray", "address": f"127.0.0.1:{port}"}, searcher="random")
        assert summary.outcomes == {"completed": 6}
        assert len({t.values["node"] for t in study.trials}) == 2

        # the second node dies mid-trial: its trial runs again (on the head) and the study completes
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        nodes = [n for n in ray.nodes() if n["Alive"]]
        head = next(n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"])
        other = next(n for n in nodes if n["NodeID"] != head)
        raylet = subprocess.run(["pgrep", "-f", f"raylet_socket_name={other['RayletSocketName']} "],
                                capture_output=True, text=True, check=False).stdout.split()
        assert raylet, "the second node's raylet process"
        def kill_once_both_trials_run() -> None:  # an event, not a clock: both trials have reported
            from tuneloop.store import Store

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with Store(storage, read_only=True) as store:
                    record = store.get_study("node-dies")
                    trials = store.trials(record.id) if record is not None else []
                    series = store.series([t.id for t in trials], ["loss"]) if trials else {}
                if len(trials) == 2 and all(series.get(t.id, {}).get("loss") for t in trials):
                    break
                time.sleep(0.05)
            for pid in raylet:
                os.kill(int(pid), signal.SIGKILL)

        killer = threading.Thread(target=kill_once_both_trials_run, daemon=True)
        killer.start()
        study = study_of(tf.slow_on_any_node, storage, name="node-dies")
        summary = study.run(2, executor={"name": "ray", "address": f"127.0.0.1:{port}"}, searcher="random")
        killer.join()
        assert summary.outcomes == {"completed": 2} and summary.retried >= 1
        assert all(t.values["node"] == float(int(head[:12], 16)) for t in study.trials if t.attempt > 0)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([cli, "stop", "--force"], capture_output=True, env=env, check=False)
