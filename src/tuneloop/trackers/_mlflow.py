"""Mirror trials to MLflow: a parent run per study, a nested run per trial.

The study's parent run (found again when the study resumes) holds its metric, direction and the
best objective so far (``best/<metric>``, stepped by trial number); each trial is a nested run
named ``trial-<n>`` with its parameters, every reported and logged value with its step, its
attributes as tags, ``final/<metric>``, and its state as the tag ``tuneloop.state`` and the run's
status (completed or pruned: FINISHED, interrupted: KILLED, failed or diverged: FAILED).

It talks to the tracking server or database through its own ``MlflowClient``, never through
``mlflow.start_run``'s global active run, so it neither sees nor disturbs a run the user's own
code has open. Points are sent in batches (at least every ``flush_secs``, and when a trial ends):
one ``log_metric`` per report would cost the driver a database write each.
"""

from __future__ import annotations

import hashlib
import re
import time
import warnings
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError
from tuneloop.trackers._base import Tracker, need, state_of, trackers

if TYPE_CHECKING:
    from tuneloop.store import StudyRecord, TrialRecord

# pruned is an outcome the study chose, not a failure: FINISHED (the tag says pruned), so MLflow's
# pages do not mark half a study red
_STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED"}  # anything else: FAILED
_BATCH = 900  # metrics per log_batch call: MLflow takes 1000 items, tags included
_KEY = re.compile(r"[^/\w.\- ]")  # what MLflow accepts in a metric, parameter or tag name (no ':' for Windows)


def safe_key(name: str) -> str:
    """``name`` as an MLflow metric, parameter or tag name: characters MLflow refuses become ``_``
    and so do path segments it refuses (empty, ``.``, ``..``); a name that had to change gets a
    short hash of the original, so two names never merge. At most 250 characters."""
    segments = [_KEY.sub("_", s) for s in str(name).split("/") if s]
    segments = ["_" * len(s) if set(s) == {"."} else (s.replace(".", "_", 2) if s.startswith("..") else s)
                for s in segments]
    key = "/".join(segments)[:230]
    if key != name or not key:
        key = f"{key}-{hashlib.sha256(str(name).encode('utf-8', 'surrogatepass')).hexdigest()[:8]}".lstrip("-")
    return key


class MLflow(Tracker):
    """Mirror each trial as a nested MLflow run under one parent run per study.

        study.run(n_trials=20, callbacks=[tl.trackers.MLflow("sqlite:///mlflow.db")])
        # mlflow ui --backend-store-uri sqlite:///mlflow.db

    ``tracking_uri``: a database URL, a server (``http://host:5000``) or None for MLflow's own
    default (``$MLFLOW_TRACKING_URI``); ``experiment``: the MLflow experiment, by default one named
    after the study."""

    name, extra, target = "mlflow", "mlflow", "tracking_uri"

    def __init__(self, tracking_uri: str | None = None, *, experiment: str | None = None,
                 flush_secs: float = 1.0) -> None:
        super().__init__()
        need("mlflow", self.name, self.extra)
        if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
            raise ConfigError(f"The 'experiment' argument of MLflow must be a non-empty string. Got {experiment!r}.")
        self.tracking_uri, self.experiment, self.flush_secs = tracking_uri, experiment, flush_secs
        self._client: Any = None
        self._experiment_id = self._parent = ""
        self._runs: dict[int, str] = {}  # trial number -> its open run's id
        self._pending: dict[str, tuple[list[Any], list[Any]]] = {}  # run id -> (metrics, tags) not sent yet
        self._steps: dict[int, int] = {}
        self._best: float | None = None
        self._last_flush = time.monotonic()

    def __repr__(self) -> str:
        return f"MLflow({self.tracking_uri!r})"

    # -- the study's parent run -----------------------------------------------------------------
    def start_study(self, study: StudyRecord) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            with warnings.catch_warnings():  # MLflow's own deprecations (its database models): not the user's to fix
                warnings.simplefilter("ignore", DeprecationWarning)
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
                self._experiment_id = self._find_experiment(self.experiment or _bounded(study.name, 480))
                self._parent = self._parent_run(study)
        except MlflowException as e:
            first = " ".join(str(e).split()).split(". ")[0].rstrip(".")[:300] or type(e).__name__
            uri = self.tracking_uri or "the default tracking URI"
            keep = (" (or set MLFLOW_ALLOW_FILE_STORE=true to keep MLflow's file store)"
                    if "file" in first.lower() else "")
            raise ConfigError(f"The mlflow tracker could not use {uri}: {first}. Give it a database URL such as "
                              f"sqlite:///mlflow.db (--mirror mlflow=sqlite:///mlflow.db) or a server's http:// URL"
                              f"{keep}.") from None

    def _find_experiment(self, name: str) -> str:
        found = self._client.get_experiment_by_name(name)
        if found is None:
            return str(self._client.create_experiment(name))
        if found.lifecycle_stage != "active":
            raise ConfigError(f"The MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) "
                              f"or mirror to another with MLflow(..., experiment='...').")
        return str(found.experiment_id)

    def _parent_run(self, study: StudyRecord) -> str:
        """The study's parent run: the one an earlier run of this study created, else a new one."""
        key = hashlib.sha256(f"{study.name}\0{study.created_at!r}".encode("utf-8", "surrogatepass")).hexdigest()[:16]
        # the key is hex, so it is safe inside MLflow's filter language; the study name is not
        found = self._client.search_runs([self._experiment_id], f"tags.`tuneloop.study_key` = '{key}'", max_results=1)
        if found:
            run = found[0]
            self._client.update_run(run.info.run_id, status="RUNNING")
            best = run.data.metrics.get(safe_key(f"best/{study.metric}"))
            self._best = None if best is None else float(best)
            return str(run.info.run_id)
        self._best = None
        tags = {"tuneloop.kind": "study", "tuneloop.study_key": key, "tuneloop.study": _bounded(study.name, 5000),
                "tuneloop.metric": _bounded(study.metric, 5000), "tuneloop.mode": str(study.mode)}
        return str(self._client.create_run(self._experiment_id, run_name=_bounded(study.name, 250),
                                           tags=tags).info.run_id)

    # -- trials ----------------------------------------------------------------------------------
    def start_trial(self, number: int, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if number in self._runs:  # an attempt whose worker died: end its run, open the next attempt's
            self._end_run(self._runs.pop(number), "interrupted")
        tags = {"mlflow.parentRunId": self._parent, "tuneloop.study": _bounded(self.study.name, 5000),
                "tuneloop.trial": str(number), "tuneloop.state": "running"}
        run_id = str(self._client.create_run(self._experiment_id, run_name=f"trial-{int(number)}",
                                             tags=tags).info.run_id)
        self._runs[number], self._steps[number] = run_id, 0
        items = [Param(safe_key(k), _bounded(_text(v), 6000)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per call
            self._client.log_batch(run_id, params=items[i:i + 100])

    def scalars(self, number: int, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        run_id = self._runs.get(number)
        if run_id is None:
            return
        now = int(time.time() * 1000)
        self._pending.setdefault(run_id, ([], []))[0].extend(
            Metric(safe_key(k), float(v), now, int(step)) for k, v in values.items())
        if self.study.metric in values:  # final/<metric> goes at the objective's last step
            self._steps[number] = max(self._steps[number], step)
        if time.monotonic() - self._last_flush >= self.flush_secs or len(self._pending[run_id][0]) >= _BATCH:
            self._flush()

    def attrs(self, number: int, attrs: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        run_id = self._runs.get(number)
        if run_id is not None:
            self._pending.setdefault(run_id, ([], []))[1].extend(
                RunTag(safe_key(f"tuneloop.attr.{k}"), _bounded(_text(v), 5000)) for k, v in attrs.items())

    def end_trial(self, record: TrialRecord) -> None:
        from mlflow.entities import Metric

        run_id = self._runs.pop(record.number, None)
        if run_id is None:
            return
        step = self._steps.pop(record.number, 0)
        if record.value is not None:
            now = int(time.time() * 1000)
            key = safe_key(f"final/{self.study.metric}")
            self._pending.setdefault(run_id, ([], []))[0].append(Metric(key, float(record.value), now, step))
            feasible = self.study.objectives.feasible(record.values)  # an infeasible trial is never the best
            if state_of(record) == "completed" and feasible and (self._best is None
                                                                 or self.study.mode.better(record.value, self._best)):
                self._best = float(record.value)
                self._client.log_batch(self._parent, metrics=[
                    Metric(safe_key(f"best/{self.study.metric}"), self._best, now, int(record.number))])
        self._end_run(run_id, state_of(record))

    def _end_run(self, run_id: str, state: str) -> None:
        from mlflow.entities import RunTag

        self._pending.setdefault(run_id, ([], []))[1].append(RunTag("tuneloop.state", state))
        self._flush(run_id)
        self._client.set_terminated(run_id, _STATUS.get(state, "FAILED"))

    def _flush(self, only: str | None = None) -> None:
        for run_id in [only] if only is not None else list(self._pending):
            metrics, tags = self._pending.pop(run_id, ([], []))
            while metrics or tags:  # MLflow takes at most 1000 items per call, 100 of them tags
                self._client.log_batch(run_id, metrics=metrics[:_BATCH], tags=tags[:100])
                metrics, tags = metrics[_BATCH:], tags[100:]
        if only is None:
            self._last_flush = time.monotonic()

    def flush(self) -> None:
        if self._client is not None:
            self._flush()

    def end_study(self) -> None:
        if self._client is None:
            return
        for number in list(self._runs):
            self._end_run(self._runs.pop(number), "interrupted")
        self._flush()
        if self._parent:
            self._client.set_terminated(self._parent, "FINISHED")
            self._parent = ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@trackers.register("mlflow", MLflow)
def _make_mlflow(options: dict[str, Any], **_: Any) -> MLflow:
    return MLflow(**options)
