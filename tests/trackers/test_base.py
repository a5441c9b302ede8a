"""What every tracker shares: names from the store made safe for paths and for MLflow, the
--mirror option, a missing library named by its extra, a mirror that fails without stopping the
study, events handled in order off the driver's thread, and runs closed after an interrupted run."""

from __future__ import annotations

import sys
import threading

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.trackers import MLflow, TensorBoard, Tracker, WandB, from_option, safe_key, safe_segment, trackers
from tuneloop.trackers._base import _close_all, inside

HOSTILE_NAMES = ["..", ".", "../../etc/passwd", "/abs/path", "a/b\\c", "<script>alert(1)</script>", "con:1?*|",
                 "x" * 500, "", " ", "-rf", ".hidden", "tab\tnew\nline", "é漢字", "a//b/./c/", "...x", "x\x00y"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_study_name_becomes_one_safe_folder_inside_the_root(name, tmp_path):
    segment = safe_segment(name)
    assert segment and segment not in (".", "..") and len(segment) <= 90
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in segment) and segment[0] not in ".-"
    assert inside(tmp_path, segment, "trial-0").parent.parent == tmp_path.resolve()


def test_names_keep_apart_and_plain_ones_stay_as_they_are():
    assert safe_segment("mnist-mlp_v2.1") == "mnist-mlp_v2.1"
    assert len({safe_segment(n) for n in ["a/b", "a_b", "a:b", "a b"]}) == 4  # changed ones carry a hash
    with pytest.raises(tl.ConfigError, match="outside"):
        inside(__import__("pathlib").Path("/tmp/root"), "..", "x")


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, "val_acc", "sys/gpu0/mem", "grad/0.weight", "attr.device"])
def test_metric_and_parameter_names_are_ones_mlflow_accepts(name):
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, _validate_metric_name

    key = safe_key(name)
    _validate_metric_name(key)  # MLflow's own check, as log_batch runs it
    assert 0 < len(key) <= MAX_ENTITY_KEY_LENGTH
    if name in ("val_acc", "sys/gpu0/mem", "grad/0.weight", "attr.device"):
        assert key == name


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_mirror_options_build_each_tracker_and_bad_ones_say_what_to_write(tmp_path):
    tb = from_option(f"tensorboard={tmp_path}")
    assert isinstance(tb, TensorBoard) and tb.folder == tmp_path
    mlflow = from_option("mlflow=sqlite:///mlflow.db")
    assert isinstance(mlflow, MLflow) and mlflow.tracking_uri == "sqlite:///mlflow.db"
    wandb = from_option("wandb=my-project")
    assert isinstance(wandb, WandB) and wandb.project == "my-project"
    assert isinstance(from_option("tensorboard"), TensorBoard)  # its defaults: ./runs
    with pytest.raises(tl.ConfigError, match=r"Unknown tracker 'neptune'\. Valid names: mlflow, tensorboard, wandb"):
        from_option("neptune=x")
    with pytest.raises(tl.ConfigError, match="needs a value after '='"):
        from_option("mlflow=")
    with pytest.raises(tl.ConfigError, match="mode"):
        WandB(mode="sometimes")


LIBRARY = {"tensorboard": "torch.utils.tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


@pytest.mark.parametrize("name", trackers.names)
def test_a_missing_library_is_named_with_the_extra_that_installs_it(name, monkeypatch):
    monkeypatch.setitem(sys.modules, LIBRARY[name], None)  # what Python does for a package that is not installed
    with pytest.raises(tl.ConfigError, match=rf"pip install 'tuneloop\[{name}\]'"):
        trackers.create(name)


class Recorder(Tracker):
    """A tracker that writes what it is told into a list (and can be told to fail)."""

    name = "recorder"

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.calls: list[tuple] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on

    def _note(self, *call) -> None:
        self.threads.add(threading.get_ident())
        self.calls.append(call)
        if call[0] == self.fail_on:
            raise OSError("disk full")

    def start_trial(self, number, params):
        self._note("start", number, params)

    def scalars(self, number, step, values):
        self._note("scalars", number, step, values)

    def attrs(self, number, attrs):
        self._note("attrs", number, attrs)

    def end_trial(self, record):
        self._note("end", record.number, record.state.value)

    def end_study(self):
        self._note("end_study")


def _steps(trial: tl.Trial) -> None:
    trial.set_attr("note", "x")
    for step in range(3):
        trial.log(step, train=float(step))
        trial.report(step, loss=trial.params.x + step)
        if trial.params.x > 1 and step == 1:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second trial


def test_events_arrive_in_order_off_the_drivers_thread(storage):
    recorder = Recorder()
    tl.Study("order", tl.Space(x=tl.Choice([0.0, 1.0])), _steps, metric="loss", mode="min", storage=storage,
             searcher="grid", rules=None).run(executor="inline", callbacks=[recorder])
    sampled = [c for c in recorder.calls if c[0] == "scalars" and all(k.startswith("sys/") for k in c[3])]
    trial0 = [c for c in recorder.calls if c[0] != "end_study" and c[1] == 0 and c not in sampled]
    assert trial0[0] == ("start", 0, {"x": 0.0}) and trial0[-1] == ("end", 0, "completed")
    assert [c[2] for c in trial0 if c[0] == "scalars" and "loss" in c[3]] == [0, 1, 2]
    assert ("attrs", 0, {"note": "x"}) in trial0
    assert recorder.calls[-1] == ("end_study",)
    assert threading.get_ident() not in recorder.threads and len(recorder.threads) == 1


def test_a_failing_mirror_warns_once_and_the_study_goes_on(storage):
    recorder = Recorder(fail_on="scalars")
    study = tl.Study("fails", tl.Space(x=tl.Choice([0.0, 0.5])), _steps, metric="loss", mode="min", storage=storage,
                     searcher="grid", rules=None)
    with pytest.warns(RuntimeWarning, match="The recorder mirror failed and is off .*OSError: disk full") as caught:
        summary = study.run(executor="inline", callbacks=[recorder])
    assert len(caught) == 1 and summary.outcomes == {"completed": 2}
    assert [c[0] for c in recorder.calls][-1] == "scalars"  # nothing was sent to it after the failure


def test_runs_left_open_by_an_interrupted_run_are_ended_at_exit_or_by_the_next_run(storage):
    study = tl.Study("cut", tl.Space(x=tl.Choice([0.0, 2.0])), _steps, metric="loss", mode="min", storage=storage,
                     searcher="grid", rules=None)
    recorder = Recorder()
    with pytest.raises(KeyboardInterrupt):
        study.run(executor="inline", callbacks=[recorder])  # on_run_end is never called
    assert ("start", 1, {"x": 2.0}) in recorder.calls and ("end_study",) not in recorder.calls
    _close_all()  # what the interpreter runs at exit
    assert recorder.calls[-1] == ("end_study",)
    again = Recorder()
    with pytest.raises(KeyboardInterrupt):
        study.run(executor="inline", callbacks=[again])
    with pytest.raises(KeyboardInterrupt):
        study.run(executor="inline", callbacks=[again])  # the next run starts by ending what the last left open
    assert again.calls.count(("end_study",)) == 1


EXPERIMENT = """
import tuneloop as tl

def objective(trial):
    for step in range(3):
        trial.report(step, loss=(trial.params.x - 0.5) ** 2 + 1.0 / (step + 1))

study = tl.Study("quad", tl.Space(x=tl.Float(-2.0, 2.0)), objective, metric="loss", mode="min", searcher="random")
"""


def test_tuneloop_run_mirror_writes_each_trial_to_its_folder(tmp_path, monkeypatch):
    from tuneloop.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELOOP_STORAGE", raising=False)
    exp = tmp_path / "exp.py"
    exp.write_text(EXPERIMENT)
    result = CliRunner().invoke(app, ["run", str(exp), "--trials", "2", "--mirror", "tensorboard=runs"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "runs" / "quad").iterdir()) == ["trial-0", "trial-1"]
    assert all(any(p.glob("events.out.tfevents.*")) for p in (tmp_path / "runs" / "quad").iterdir())
    bad = CliRunner().invoke(app, ["run", str(exp), "--trials", "3", "--mirror", "neptune=x"])
    assert bad.exit_code == 1 and "Unknown tracker 'neptune'" in bad.output
