"""GPUs on one machine (run/_gpus.py), tested through the environment each worker sees: the driver
runs under a CUDA_VISIBLE_DEVICES of made-up ids, and every worker process reports the one it was
started with. The CUDA path itself runs under ``-m gpu``."""

import os
from pathlib import Path

import pytest
import trial_functions as tf
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.errors import ConfigError
from tuneloop.run import ProcessesExecutor, executor_spec
from tuneloop.run._gpus import parse_gpus, parse_visible, pin_slots, resolve, visible_gpus
from tuneloop.store import Store

CUDA = "CUDA_VISIBLE_DEVICES"
SPACE = tl.Space(x=tl.Float(0.0, 1.0))

EXPERIMENT = """
    import tuneloop as tl
    import trial_functions as tf

    study = tl.Study("pinned", tl.Space(x=tl.Float(0.0, 1.0)), tf.pinned, metric="loss", mode="min",
                     searcher="random", seed=3)
"""


def test_the_visible_list_reads_cuda_visible_devices_as_cuda_does():
    assert parse_visible("2,3,GPU-5f3c-aa,MIG-7e1d") == ["2", "3", "GPU-5f3c-aa", "MIG-7e1d"]
    assert parse_visible(" 1 , 4 ") == ["1", "4"]
    assert parse_visible("0,-1,2") == ["0"]  # CUDA stops at the first id it cannot use
    assert parse_visible("") == [] and parse_visible("1,1") == ["1"]
    assert parse_gpus("0,2") == [0, 2] and parse_gpus("none") == []
    for bad in ("x", "0,-1", ""):
        with pytest.raises(ConfigError, match="--gpus takes GPU indices"):
            parse_gpus(bad)


def test_gpu_indices_are_torch_numbers_of_the_visible_gpus(monkeypatch):
    monkeypatch.setenv(CUDA, "2,3,5")
    assert visible_gpus() == ["2", "3", "5"] and resolve([0, 1]) == ["2", "3"]
    assert pin_slots(visible_gpus(), [0, 2], trials_per_gpu=2) == ["2", "2", "5", "5"]  # packed
    assert pin_slots(visible_gpus(), [0, 1, 2], workers=4) == ["2", "3", "5", "2"]  # round-robin
    with pytest.raises(ConfigError, match=r"no GPU 3 to pin to: 3 GPUs are visible \(cuda:0 = GPU 2, cuda:1 = GPU 3"):
        resolve([3])
    monkeypatch.setenv(CUDA, "")
    with pytest.raises(ConfigError, match=r"gpus=\[0\] \(--gpus 0\) pins trials to GPUs, but no GPU is visible"):
        executor_spec(None, None, gpus=[0])


def test_what_runs_where_with_gpus_given_defaulted_or_refused(monkeypatch):
    monkeypatch.setenv(CUDA, "7,8,9")
    processes = {"name": "processes", "trials_per_gpu": None}
    assert executor_spec(None, None, gpus=[0, 2], trials_per_gpu=2) == {
        **processes, "workers": 4, "gpus": [0, 2], "trials_per_gpu": 2}
    assert executor_spec(None, None, fn=tf.noop) == {**processes, "workers": 3, "gpus": [0, 1, 2]}  # one per GPU
    assert executor_spec(None, None, fn=lambda trial: 0.0) == "inline"  # a notebook's or a script's: as before
    assert executor_spec(None, 5) == {**processes, "workers": 5, "gpus": [0, 1, 2]}  # spread round-robin
    assert executor_spec(None, 1) == "inline" and executor_spec("inline", None) == "inline"  # chosen: as before
    assert executor_spec(None, None, gpus=[]) == "inline" and executor_spec(None, 2, gpus=[]) == "processes"
    assert executor_spec("population", None, gpus=[1]) == {"name": "population", "gpus": [1]}
    refusals = {
        "conflicts with 2 GPUs x trials_per_gpu=2 = 4 workers": {"workers": 3, "gpus": [0, 2], "trials_per_gpu": 2},
        "executor='inline' runs trials in this process": {"executor": "inline", "gpus": [0]},
        "pass gpus_per_trial": {"executor": "ray", "gpus": [0]},
        "names a GPU twice": {"gpus": [1, 1]},
        "turns pinning off": {"gpus": [], "trials_per_gpu": 2},
    }
    for message, args in refusals.items():
        with pytest.raises(ConfigError, match=message):
            executor_spec(args.pop("executor", None), args.pop("workers", None), **args)
    monkeypatch.setenv(CUDA, "")  # no GPU: exactly as before
    assert executor_spec(None, None) == "inline" and executor_spec(None, 3) == "processes"


@pytest.mark.slow  # worker processes (2 s): .ci/run runs it in its second pytest call
def test_the_cli_pins_each_worker_to_its_gpu_and_shows_where_each_trial_ran(tmp_path, monkeypatch,
                                                                          write_experiment):
    """Also the worker side of system metrics: samples sent by each worker's sampler thread beside the
    trial's own events (tests/run/test_system_metrics.py has the rest)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv(CUDA, "7,8,9")
    monkeypatch.setenv("TUNELOOP_SYSTEM_EVERY", "0.05")
    exp = write_experiment(EXPERIMENT)
    runner = CliRunner()
    refused = runner.invoke(app, ["run", str(exp), "-n", "8", "--gpus", "0,2", "--trials-per-gpu", "2",
                                  "--workers", "3"])
    assert refused.exit_code == 1 and "conflicts with 2 GPUs x trials_per_gpu=2 = 4 workers" in refused.output
    refused = runner.invoke(app, ["run", str(exp), "-n", "8", "--gpus", "3"])
    assert refused.exit_code == 1 and "no GPU 3 to pin to: 3 GPUs are visible" in refused.output

    result = runner.invoke(app, ["run", str(exp), "-n", "4", "--gpus", "2,0"])
    assert result.exit_code == 0, result.output
    trials = tl.Study("pinned", SPACE, tf.pinned, metric="loss", mode="min").trials
    assert [t.state for t in trials] == ["completed"] * 4
    gpu_of_pid: dict[int, set[str]] = {}
    for t in trials:
        gpu = t.attrs["cuda_visible"]
        assert gpu in ("7", "9") and t.attrs["device"] == f"cuda:0 = GPU {gpu}" and t.attrs["host"]
        gpu_of_pid.setdefault(t.attrs["pid"], set()).add(gpu)
    assert sorted("".join(g) for g in gpu_of_pid.values()) == ["7", "9"]  # one worker on each GPU, staying there
    store = Store("tuneloop.db", read_only=True)
    points = store.series([t.id for t in trials])
    for t in trials:
        assert set(t.values) == {"loss"} and points[t.id]["sys/rss_mb"][0][0] == 0  # a metric, never a value
        assert points[t.id]["sys/rss_mb"][0][1] > 10 and "sys/cpu_percent" in points[t.id]
    shown = runner.invoke(app, ["show", "pinned", str(trials[0].number)])
    assert shown.exit_code == 0 and f"device cuda:0 = GPU {trials[0].attrs['cuda_visible']} on host" in shown.output
    assert "attributes: cuda_visible=" in shown.output
    listed = runner.invoke(app, ["trials", "pinned"]).output  # a device column once trials ran on several
    assert "device" in listed and "cuda:0 = GPU 7" in listed and "cuda:0 = GPU 9" in listed

    final = runner.invoke(app, ["finalize", "pinned", "--top", "1", "--seeds", "2", "--gpus", "1", "--file", str(exp)])
    assert final.exit_code == 0, final.output
    from tuneloop.finalize import latest_final

    record = latest_final(store, "pinned")
    assert [t.attrs["cuda_visible"] for t in store.trials(record.id)] == ["8", "8"]  # finalize pins too


def _environment_of(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with (Linux), once it runs the worker (until its exec,
    a forked child shows its parent's)."""
    import time

    deadline = time.monotonic() + 30
    while b"--multiprocessing-fork" not in Path(f"/proc/{pid}/cmdline").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/PID/environ (Linux)")
def test_trials_per_gpu_packs_worker_slots_and_a_replacement_keeps_the_dead_ones_gpu(monkeypatch):
    import signal
    import time

    monkeypatch.setenv(CUDA, "7,8,9")
    executor = ProcessesExecutor(gpus=[0, 2], trials_per_gpu=2)  # each worker runs one trial at a time
    executor.start(tf.noop, lambda event: False)
    try:
        workers = executor._workers
        assert [_environment_of(w.process.pid)[CUDA] for w in workers] == ["7", "7", "9", "9"]  # before it starts
        dead = workers[2].process.pid
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while executor._workers[2].process.pid == dead and time.monotonic() < deadline:
            executor.poll(0.05)
        replacement = executor._workers[2].process.pid
        assert replacement != dead and _environment_of(replacement)[CUDA] == "9"
    finally:
        executor.shutdown(kill=True)
    assert os.environ[CUDA] == "7,8,9"  # the driver's own environment is as it was


@pytest.mark.gpu
def test_pinned_workers_see_their_gpu_alone_as_cuda_0(storage, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    monkeypatch.setenv("TUNELOOP_SYSTEM_EVERY", "0.5")
    visible = visible_gpus()
    gpus = [0, 1] if len(visible) > 1 else [0]
    uuids = {visible[g]: str(torch.cuda.get_device_properties(g).uuid) for g in gpus}
    study = tl.Study("cuda", SPACE, tf.cuda_device, metric="loss", mode="min", storage=storage, searcher="random")
    study.run(2 * len(gpus), gpus=gpus, trials_per_gpu=2)
    store = study.store()
    curves = store.series([t.id for t in study.trials])
    for t in study.trials:
        a = t.attrs
        assert t.state == "completed" and a["cuda_count"] == 1 and a["cuda_current"] == 0
        assert a["cuda_uuid"] == uuids[a["cuda_visible"]]  # the very GPU it was pinned to
        assert a["device"].startswith("cuda:0 = ") and a["cuda_visible"] in a["device"]
        if a["cuda_name"] not in a["device"]:
            pytest.importorskip("pynvml")  # the name comes from NVML
            raise AssertionError(a["device"])
        assert curves[t.id].get("sys/rss_mb")  # sampled in the pinned worker
        if "sys/gpu_mem_mb" in curves[t.id]:  # with NVML: the 64 MB it holds, and its CUDA context
            assert max(v for _, v in curves[t.id]["sys/gpu_mem_mb"]) >= 64


@pytest.mark.gpu
def test_population_buckets_take_a_gpu_each(storage):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gpus = [0, 1] if torch.cuda.device_count() > 1 else [0]
    study = tl.Study("buckets", tl.Space(x=tl.Choice([-0.5, 0.5])), tf.two_widths, metric="val_acc", mode="max",
                     budget={"epochs": 2}, storage=storage, searcher="grid")
    study.run(executor="population", members=2, gpus=gpus)  # widths 8 and 16: two buckets
    devices = {t.attrs["device"].split(" = ")[0] for t in study.trials}
    assert all(t.state == "completed" for t in study.trials)
    assert devices == {f"cuda:{g}" for g in gpus}  # dealt round-robin: each GPU got a bucket

