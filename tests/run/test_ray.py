"""The Ray executor on a real local Ray cluster (ray.init(num_cpus=2)) and on a two-node cluster
started on this machine with `ray start --head` and `ray start --address`."""

import os
import shutil
import subprocess
import sys

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


def test_trials_stream_reports_and_schedulers_stop_them(local_ray, storage):
    study = study_of(tf.quadratic, storage)
    summary = study.run(8, executor="ray", searcher="random", scheduler="asha")
    assert sum(summary.outcomes.values()) == 8 and summary.outcomes.get("pruned", 0) >= 1
    with Store(storage) as store:
        trials = store.trials(store.get_study("ray").id)
        series = store.series([t.id for t in trials], names=["loss"])
    for t in trials:
        steps = [s for s, _ in series[t.id]["loss"]]
        assert steps == list(range(len(steps))) and (t.state == "pruned") == (len(steps) < 4)


def test_a_failing_trial_fails_alone(local_ray, storage):
    study = study_of(tf.fails_when_negative, storage)
    study.run(6, executor="ray", searcher="random")
    assert {t.state for t in study.trials} <= {"completed", "failed"}
    for t in study.trials:
        assert (t.state == "failed") == (t.params["x"] < 0)
        if t.state == "failed":
            assert t.error.startswith("ValueError: x is negative")


def test_a_killed_ray_worker_is_retried(local_ray, storage):
    study = study_of(tf.killed_once, storage)
    summary = study.run(4, executor="ray", searcher="random")
    assert summary.outcomes == {"completed": 4} and summary.retried == 1
    assert [t.attempt for t in study.trials] == [0, 1, 0, 0]


@pytest.mark.skipif(shutil.which("ray") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "ray")),
                    reason="the ray command is not installed")
def test_a_two_node_cluster_on_one_machine(storage):
    """docs/cluster.md's rehearsal: a head and a second node, trials spread over both."""
    if ray.is_initialized():
        ray.shutdown()
    cli = os.path.join(os.path.dirname(sys.executable), "ray")
    port = "6391"
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
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([cli, "stop", "--force"], capture_output=True, env=env, check=False)
