"""The store's half for what trials log besides metrics: histograms, alerts, slices, samples.

Rows arrive in batches (one transaction per flush); image samples are files in the store's
artifact folder, referenced by a path relative to it, so a study folder can be moved whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_

from tuneloop.store import schema
from tuneloop.store._retry import retrying
from tuneloop.store.records import AlertRecord, HistogramRecord, SampleRecord, SliceRecord

TABLES = {"metrics": schema.metrics, "histograms": schema.histograms, "alerts": schema.alerts,
          "slices": schema.slices, "samples": schema.samples, "checks": schema.checks,
          "checkpoints": schema.checkpoints, "lineage": schema.lineage, "trial_attrs": schema.trial_attrs}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FOLDER_SLUG = 40  # characters of a study's name kept in its folder's name (the id makes it unique)
_FILE_SLUG = 60  # characters of a sample's name kept in its file's name (a hash keeps it unique)


def _slug(text: str, limit: int) -> str:
    """A readable, filesystem-safe form of ``text``: accents folded to ASCII, runs of anything but
    letters, digits, ``.``, ``_`` and ``-`` made one ``_``, no leading or trailing ``.``/``-``/``_``
    (never ``.`` or ``..``, never a hidden file or an option), at most ``limit`` characters."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SAFE.sub("_", folded).strip("._-")[:limit].rstrip("._-")


def study_folder(study_id: int, name: str) -> str:
    """The artifact folder of a study: its id (unique, so ``exp 1`` and ``exp_1`` never share a
    folder) and a short readable slug of its name, e.g. ``17-exp_1``; never derived from the raw name."""
    if isinstance(study_id, bool) or not isinstance(study_id, int) or study_id < 0:
        raise ValueError(f"A study id is a non-negative int, not {study_id!r}.")
    return f"{study_id}-{_slug(name, _FOLDER_SLUG) or 'study'}"


def artifact_stem(name: str) -> str:
    """A short file name stem for a sample or checkpoint named ``name``: the name itself when it is
    already safe and short, else its slug cut short plus 8 hex digits of its hash, so distinct names
    (``a b`` and ``a_b``, or two long names with one prefix) keep distinct files."""
    slug = _slug(name, _FILE_SLUG)
    if slug and slug == name:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{slug[:_FILE_SLUG - 9]}-{digest}" if slug else digest


class LogsMixin:
    """Batch writes and per-trial reads of histograms, alerts, slices and samples."""

    url: str
    is_sqlite: bool

    def _write(self) -> Any: ...  # provided by Store
    def _read(self) -> Any: ...  # provided by Store

    @property
    def artifact_dir(self) -> Path:
        """Where files (image samples) go: beside an SQLite file, else $TUNELOOP_ARTIFACTS or
        ./tuneloop-artifacts."""
        from sqlalchemy.engine import make_url

        if self.is_sqlite:
            db = make_url(self.url).database
            if db and db != ":memory:":
                path = Path(db)
                return path.with_name(path.stem + "-artifacts")
        return Path(os.environ.get("TUNELOOP_ARTIFACTS") or "tuneloop-artifacts").resolve()

    def artifact_file(self, relative: str) -> Path:
        """The file a stored artifact path names, resolved inside the artifact folder.

        Every stored path is untrusted (a database may come from someone else): it is resolved
        (links and ``..`` followed) and refused with :class:`NotFound` unless it stays inside
        :attr:`artifact_dir`. Absolute paths, NUL bytes and empty paths are refused too."""
        from tuneloop.errors import NotFound

        root = self.artifact_dir.resolve()
        if not isinstance(relative, str) or not relative or "\x00" in relative or Path(relative).is_absolute():
            raise NotFound(f"No artifact {relative!r} inside {root}.")
        try:
            target = (root / relative).resolve()
        except (OSError, RuntimeError, ValueError):
            raise NotFound(f"No artifact {relative!r} inside {root}.") from None
        if target == root or not target.is_relative_to(root):
            raise NotFound(f"Artifact path {relative!r} leaves the artifact folder {root}; refused.")
        try:
            target.stat()
        except OSError as exc:  # a name the file system cannot hold is no artifact; other errors are the caller's
            if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
                raise NotFound(f"No artifact {relative[:200]!r} inside {root}: {exc.strerror}.") from None
        return target

    def find_artifact(self, relative: str) -> Path | None:
        """:meth:`artifact_file`, or None where it refuses the path: for readers that show a refused
        artifact as missing (a report, a table) instead of failing as a whole."""
        from tuneloop.errors import NotFound

        try:
            return self.artifact_file(relative)
        except NotFound:
            return None

    def save_artifact(self, study_id: int, study: str, number: int, name: str, step: int, data: bytes,
                      ext: str) -> str:
        """Write ``data`` under the study's own folder (:func:`study_folder`); return its path
        relative to the artifact folder, which is what the database stores."""
        file = f"{artifact_stem(name)}-step{int(step)}.{ext}"
        relative = Path(study_folder(study_id, study)) / f"trial-{int(number)}" / file
        target = self.artifact_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return relative.as_posix()

    @retrying
    def write_batch(self, batch: Mapping[str, Sequence[dict[str, Any]]], conn: Any = None) -> None:
        """Insert rows into several tables in one transaction (or in ``conn``'s)."""
        if not any(batch.values()):
            return
        if conn is None:
            with self._write() as c:
                self.write_batch(batch, c)
            return
        for table, rows in batch.items():
            if not rows:
                continue
            if table == "trial_attrs":  # an attribute set again replaces the stored one
                a = schema.trial_attrs
                conn.execute(delete(a).where(tuple_(a.c.trial_id, a.c.key).in_([(r["trial_id"], r["key"]) for r in rows])))
            conn.execute(insert(TABLES[table]), list(rows))

    def _rows(self, table: Any, trial_id: int, attempt: int | None) -> list[Any]:
        stmt = select(table).where(table.c.trial_id == trial_id).order_by(table.c.id)
        if attempt is not None:
            stmt = stmt.where(table.c.attempt == attempt)
        with self._read() as conn:
            return list(conn.execute(stmt))

    def histograms(self, trial_id: int, attempt: int | None = None) -> list[HistogramRecord]:
        from tuneloop._logged import counts_of

        return [HistogramRecord(r.step, r.name, r.low, r.high, counts_of(r.counts), r.n, r.nonfinite,
                                json.loads(r.stats), r.flag) for r in self._rows(schema.histograms, trial_id, attempt)]

    def alerts(self, trial_id: int, attempt: int | None = None) -> list[AlertRecord]:
        return [AlertRecord(r.step, r.rule, r.quantity, r.value, r.action, r.message)
                for r in self._rows(schema.alerts, trial_id, attempt)]

    def slices(self, trial_id: int, attempt: int | None = None) -> list[SliceRecord]:
        return [SliceRecord(r.step, r.slice, r.metric, r.value, r.n) for r in self._rows(schema.slices, trial_id, attempt)]

    def samples(self, trial_id: int, attempt: int | None = None) -> list[SampleRecord]:
        return [SampleRecord(r.step, r.name, r.kind, r.path, None if r.payload is None else json.loads(r.payload))
                for r in self._rows(schema.samples, trial_id, attempt)]

    @retrying
    def latest_checkpoint(self, trial_id: int) -> tuple[int, Path] | None:
        """(step, absolute path) of the last checkpoint the trial's current attempt saved. The stored
        path is resolved by :meth:`artifact_file`: one leaving the artifact folder raises NotFound."""
        rows = list(self._rows(schema.checkpoints, trial_id, None))
        if not rows:
            return None
        last_attempt = max(r.attempt for r in rows)
        r = max((r for r in rows if r.attempt == last_attempt), key=lambda r: (r.step, r.id))
        return r.step, self.artifact_file(r.path)

    @retrying
    def add_lineage(self, trial_id: int, member: int, generation: int, parent: int | None, event: str,
                    info: dict[str, Any]) -> None:
        """Where a planner's trial sits: its ``member`` and ``generation``, the number of the trial it
        continues (``parent``), why (``event``) and other plain data (``info``, stored as JSON)."""
        self.write_batch({"lineage": [{"trial_id": trial_id, "member": int(member), "generation": int(generation),
                                       "parent": parent, "event": str(event), "info": json.dumps(info)}]})

    @retrying
    def lineage(self, study_id: int) -> dict[int, dict[str, Any]]:
        """Trial id -> {member, generation, parent, event, info} for the trials a planner launched."""
        t, lin = schema.trials, schema.lineage
        with self._read() as conn:
            rows = conn.execute(select(lin).join(t, t.c.id == lin.c.trial_id).where(t.c.study_id == study_id)).all()
        return {r.trial_id: {"member": r.member, "generation": r.generation, "parent": r.parent, "event": r.event,
                             "info": json.loads(r.info) if r.info else {}} for r in rows}


def alert_row(trial_id: int, attempt: int, step: int, rule: str, quantity: str, value: float | None,
              action: str, message: str) -> dict[str, Any]:
    return {"trial_id": trial_id, "attempt": attempt, "step": step, "rule": rule, "quantity": quantity,
            "value": value, "action": action, "message": message, "created_at": time.time()}


class ChecksMixin:
    """Check-ladder and baseline results, stored per study and per run."""

    def _write(self) -> Any: ...  # provided by Store
    def _read(self) -> Any: ...  # provided by Store

    @retrying
    def add_checks(self, study_id: int, results: Sequence[dict[str, Any]], baselines: dict[str, float],
                   metric: str) -> None:
        """Store one run of the ladder (its results in order) and of the baselines."""
        now = time.time()
        rows = [{"study_id": study_id, "run_at": now, "kind": "check", "name": r["name"], "status": r["status"],
                 "value": None, "message": r["message"],
                 "details": json.dumps({k: r[k] for k in ("evidence", "causes", "next_step", "seconds")},
                                       default=str)} for r in results]
        rows += [{"study_id": study_id, "run_at": now, "kind": "baseline", "name": name, "status": "pass",
                  "value": score, "message": f"{metric} = {score:.4g}", "details": json.dumps({"metric": metric})}
                 for name, score in baselines.items()]
        if rows:
            with self._write() as conn:
                conn.execute(insert(schema.checks), rows)

    @retrying
    def latest_checks(self, study_id: int) -> dict[str, Any]:
        """The latest run of the checks and of the baselines: {"checks": [...], "baselines": {...}, ...}."""
        c = schema.checks
        out: dict[str, Any] = {"checks": [], "baselines": {}, "metric": None, "run_at": None}
        with self._read() as conn:
            for kind in ("check", "baseline"):
                last = conn.execute(select(func.max(c.c.run_at)).where(c.c.study_id == study_id, c.c.kind == kind)).scalar()
                if last is None:
                    continue
                for r in conn.execute(select(c).where(c.c.study_id == study_id, c.c.kind == kind, c.c.run_at == last)
                                      .order_by(c.c.id)):
                    details = json.loads(r.details)
                    if kind == "check":
                        out["checks"].append({"name": r.name, "status": r.status, "message": r.message, **details})
                        out["run_at"] = last
                    else:
                        out["baselines"][r.name] = r.value
                        out["metric"] = details.get("metric")
        return out
