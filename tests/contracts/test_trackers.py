"""The tracker contract: every registered tracker mirrors a real study (inline executor, three
trials, one pruned, a study name that is hostile text) through the real library into files under
tmp_path, and the files, read back with the library's own reader, hold what tuneloop's store holds:
every trial, its parameters, each curve point by point with its steps, and its final state. A new
tracker is tested by registering it and adding how to build it and read it back below."""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path

import pytest

import tuneloop as tl
from tuneloop.store import Store
from tuneloop.trackers import trackers

HOSTILE = '../../<b>"mirror"</b> é\\x'


def _trial(trial: tl.Trial) -> None:
    trial.set_attr("host_note", "<i>untrusted</i>")
    for step in range(3):
        trial.log(10 * step + 5, train_loss=1.0 / (step + 1))  # logged steps interleave with reported ones
        trial.report(step, loss=trial.params.x / (step + 1), acc=0.25 * step)
        if trial.params.x > 1.5 and step == 1:
            raise tl.TrialPruned()


# -- how to build each tracker into a folder, and read back what it wrote ----------------------
def _build(name: str, folder: Path) -> tl.Callback:
    options = {
        "tensorboard": {"folder": folder},
        # MLflow's file store: its database backend spends ~8 s creating its tables on a slow disk
        # (test_mlflow_on_its_database_backend, slow, runs the same contract there)
        "mlflow": {"tracking_uri": (folder / "mlruns").as_uri()},
        "wandb": {"project": "contract", "mode": "offline", "dir": folder},
    }
    return trackers.create({"name": name, **options[name]})


def _read_tensorboard(folder: Path) -> dict[int, dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    (study_dir,) = folder.iterdir()  # one study folder, whatever the study is called
    out = {}
    for run in study_dir.glob("trial-*"):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        series = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
        data = plugin_data_pb2.HParamsPluginData()
        content = acc.PluginTagToContent("hparams")
        data.ParseFromString(content["_hparams_/session_start_info"])
        hp = {k: getattr(v, v.WhichOneof("kind")) for k, v in data.session_start_info.hparams.items()}
        out[int(run.name.split("-")[1])] = {"params": hp, "series": series, "state": hp.pop("state"),
                                            "final": series["final/loss"]}
    return out


def _read_mlflow(folder: Path) -> dict[int, dict]:
    from mlflow.tracking import MlflowClient

    db = folder / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}" if db.exists() else (folder / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    assert experiment.name == HOSTILE  # an experiment named after the study
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("tuneloop.kind") == "study"]
    out = {}
    for run in runs:
        if run is parent:
            continue
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id  # nested under the study
        series = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                  for key in run.data.metrics}
        state = run.data.tags["tuneloop.state"]
        assert run.info.status == "FINISHED"  # pruned too: an outcome, not a failure (the tag says which)
        out[int(run.data.tags["tuneloop.trial"])] = {"params": run.data.params, "series": series, "state": state,
                                                     "final": series["final/loss"]}
    return out


def _wandb_records(path: Path):
    """The records of a W&B run file: LevelDB log blocks holding wandb's own protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, parts = path.read_bytes(), 7, 32768, b""  # 7: the ":W&B" file header
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            pos += block - pos % block if pos % block else 0
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):  # full, or the last piece of a record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            yield record


def _complete(paths: list[Path]) -> list[list]:
    """Each run file's records once all of them end with an exit record: W&B's service writes the
    files in the background, so a file can still be growing just after run.finish() returns."""
    deadline = time.monotonic() + 20
    while True:
        runs = [list(_wandb_records(p)) for p in paths]
        if all(any(r.WhichOneof("record_type") == "exit" for r in records) for records in runs):
            return runs
        assert time.monotonic() < deadline, "W&B never finished writing its run files"
        time.sleep(0.05)


def _read_wandb(folder: Path) -> dict[int, dict]:
    from tuneloop.trackers._wandb import STEP

    out = {}
    for records in _complete(sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))):
        run, series, summary, exit_code = None, {}, {}, None
        for record in records:
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
            elif kind == "history":
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                for key, value in row.items():
                    if not key.startswith("_") and key != STEP:
                        series.setdefault(key, []).append((row[STEP], value))
            elif kind == "summary":
                summary |= {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.summary.update}
            elif kind == "exit":
                exit_code = record.exit.exit_code
        assert run is not None and run.run_group == HOSTILE and exit_code == 0
        config = {item.key: json.loads(item.value_json) for item in run.config.update if item.key != "_wandb"}
        assert config.pop("attr/host_note") == "<i>untrusted</i>"
        out[int(run.display_name.split("-")[1])] = {"params": config, "series": series, "state": summary["state"],
                                                    "final": [(series["loss"][-1][0], summary["loss"])]}
    return out


READERS = {"tensorboard": _read_tensorboard, "mlflow": _read_mlflow, "wandb": _read_wandb}


def test_every_registered_tracker_has_a_reader():
    assert sorted(READERS) == trackers.names, "add how to build and read back the new tracker here"


def _same(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6)  # TensorBoard keeps float32
    except (TypeError, ValueError):
        return str(a) == str(b)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """W&B's own folders (settings, caches) in tmp_path, not the user's home."""
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home" / var.lower()))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store unless asked


SLOW = {"wandb"}  # starts W&B's service process: ~2 s, so it runs with -m slow


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in trackers.names])
def test_a_study_mirrored_reads_back_as_the_store_holds_it(name, tmp_path, storage, home):
    check_contract(_build(name, tmp_path / "mirror"), READERS[name], tmp_path, storage)


@pytest.mark.slow
def test_mlflow_on_its_database_backend(tmp_path, storage, home):
    """The backend the docs recommend (sqlite:///mlflow.db): slow only because MLflow creates its
    tables with ~100 commits."""
    tracker = trackers.create({"name": "mlflow", "tracking_uri": f"sqlite:///{tmp_path / 'mirror' / 'mlflow.db'}"})
    (tmp_path / "mirror").mkdir()
    check_contract(tracker, _read_mlflow, tmp_path, storage)


def check_contract(tracker, read, tmp_path: Path, storage: str) -> None:
    folder = tmp_path / "mirror"
    study = tl.Study(HOSTILE, tl.Space(x=tl.Choice([0.5, 1.0, 2.0])), _trial, metric="loss", mode="min",
                     storage=storage, searcher="grid", rules=None)
    summary = study.run(executor="inline", callbacks=[tracker])
    assert summary.outcomes == {"completed": 2, "pruned": 1}

    mirrored = read(folder)
    with Store(storage, read_only=True) as store:
        record = store.get_study(HOSTILE)
        trials = store.trials(record.id)
        series = store.series([t.id for t in trials])
    assert sorted(mirrored) == [t.number for t in trials] == [0, 1, 2]
    for t in trials:
        got = mirrored[t.number]
        assert got["state"] == t.state.value
        assert set(t.params) <= set(got["params"])
        assert all(_same(got["params"][k], v) for k, v in t.params.items()), (got["params"], t.params)
        assert {"loss", "acc", "train_loss"} <= set(series[t.id])
        [(step, final)] = got["final"]  # the final objective, at the objective's last step (not a logged one's)
        assert step == series[t.id]["loss"][-1][0] and _same(final, t.value)
        for metric, points in series[t.id].items():
            mirror = got["series"].get(metric)
            assert mirror is not None, f"{metric} missing: {sorted(got['series'])}"
            assert [s for s, _ in mirror] == [s for s, _ in points], metric
            assert all(_same(a, b) for (_, a), (_, b) in zip(mirror, points, strict=True)), metric
    (pruned,) = [t for t in trials if t.params["x"] == 2.0]
    assert series[pruned.id]["loss"] == [(0, 2.0), (1, 1.0)]  # it stopped after step 1
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(folder) and not p.is_relative_to(tmp_path / "wandb-home")]
    assert {p.name for p in outside} <= {"tuneloop.db", "tuneloop.db-wal", "tuneloop.db-shm", "mirror"}, outside
