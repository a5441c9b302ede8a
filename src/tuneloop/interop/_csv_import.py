"""A table of configurations and results -> completed trials of a tuneloop study.

    from tuneloop.interop import import_csv
    import_csv(Store("tuneloop.db"), "sweep", "results.csv", metric="loss", mode="min", space_from_data=True)

The header names the parameters and the metric column; every other column is a parameter unless
``ignore`` names it. Each row is one trial: completed with the metric's value, failed when that
cell is empty or not a number. ``space_from_data`` creates the study with a space read from the
table: a column of integers is an ``Int`` over its range, numbers a ``Float`` (a ``LogFloat``
when all are positive and they span two decades or more), anything else a ``Choice`` of its
values; an empty cell means the parameter was off in that row (a conditional child of the choice
that decides it). Without it the rows go into an existing study, checked against its space.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.interop._common import ImportSummary, check_name, identifiers, infer_space, study_config, write_study
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import Store, TrialState
from tuneloop.store._import import ImportedTrial

MAX_ROWS = 1_000_000
_INT = re.compile(r"[+-]?\d+")
_LOG_SPAN = 100.0  # positive numbers spanning this factor or more are searched on a log scale


def import_csv(store: Store, name: str, path: str | Path, *, metric: str, mode: str | None = None,
               space_from_data: bool = False, ignore: Sequence[str] = ()) -> ImportSummary:
    """Import the rows of ``path`` as completed trials of study ``name`` (see the module docstring)."""
    check_name(metric, "The metric name", "Name the metric's column with --metric.")
    header, rows = _read(Path(path))
    if metric not in header:
        raise ConfigError(f"{path} has no column {metric!r:.60}; its columns: {', '.join(header)[:300]}. "
                          f"Name the metric's column with --metric.")
    unknown = [c for c in ignore if c not in header]
    if unknown:
        raise ConfigError(f"--ignore names columns {path} does not have: {', '.join(unknown)[:200]}.")
    columns = [c for c in header if c != metric and c not in ignore]
    if not columns:
        raise ConfigError(f"{path} has no parameter columns besides {metric!r:.60}.")
    cells = [{c: row[c] for c in columns if row.get(c, "") != ""} for row in rows]
    values = [_number(row.get(metric, "")) for row in rows]
    record = store.get_study(name)
    if space_from_data:
        if record is not None:
            raise ConfigError(f"Study {name!r:.80} already exists; --space-from-data creates a new study (drop it to "
                              f"add the rows to that one).")
        if mode not in ("min", "max"):
            raise ConfigError("A new study needs --mode min or --mode max (which way the metric improves).")
        names = identifiers(columns)
        params = {names[c]: _infer(c, [row[c] for row in cells if c in row]) for c in columns}
        configs = [{names[c]: _typed(params[names[c]], v) for c, v in row.items()} for row in cells]
        space = infer_space(params, configs)
        renamed = {new: old for old, new in names.items() if new != old}
        config = study_config(space, {"kind": "csv", "source": str(path), "metric_column": metric}, renamed)
        trials = _trials(configs, values, metric, int(config["seed"]), 0)
        return _summary(write_study(store, name, metric, mode, space, config, trials), trials, renamed)
    if record is None:
        raise ConfigError(f"No study named {name!r:.80} in {store.url}; pass --space-from-data to create it with a "
                          f"space read from the table.")
    if metric != record.metric or (mode is not None and mode != record.mode.value):
        raise ConfigError(f"Study {name!r:.80} optimizes {record.mode.value} {record.metric!r:.60}; the table's "
                          f"--metric and --mode must match.")
    original = dict(record.config.get("imported_from", {}).get("param_names") or {})
    back = {old: new for new, old in original.items()}
    configs = []
    for i, row in enumerate(cells, start=2):  # row 1 is the header
        config = {back.get(c, c): v for c, v in row.items()}
        config = {k: v if (p := _find(record.space, k)) is None else _typed(p, v) for k, v in config.items()}
        try:
            configs.append(record.space.validate(config))
        except ConfigError as exc:
            raise ConfigError(f"Row {i} of {path} does not fit study {name!r:.80}: {exc}") from None
    existing = store.trials(record.id)
    start = max((t.number for t in existing), default=-1) + 1
    trials = _trials(configs, values, metric, int(record.config.get("seed", 0)), start)
    store.import_trials(record.id, trials)
    return _summary(record, trials, {})


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise ConfigError(f"{path} is not a file; --from takes a CSV table with a header row.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows: list[dict[str, str]] = []
            for line, raw in enumerate(reader, start=2):
                if not any(cell.strip() for cell in raw):
                    continue
                if len(raw) != len(header):
                    raise ConfigError(f"Row {line} of {path} has {len(raw)} cells; the header has {len(header)}.")
                if len(rows) >= MAX_ROWS:
                    raise ConfigError(f"{path} has more than {MAX_ROWS} rows; split it.")
                rows.append({h: cell.strip() for h, cell in zip(header, raw, strict=True)})
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path} is not a UTF-8 CSV table ({exc!s:.120}).") from None
    if not header or any(not h for h in header) or len(set(header)) != len(header):
        raise ConfigError(f"{path} needs a header row of distinct, non-empty column names.")
    if not rows:
        raise ConfigError(f"{path} has no rows under its header.")
    return header, rows


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _infer(column: str, cells: list[str]) -> Param:
    """A column's parameter from its non-empty cells."""
    if all(_INT.fullmatch(c) for c in cells):
        ints = sorted({int(c) for c in cells})
        return Int(ints[0], ints[-1]) if len(ints) > 1 else Choice(ints)
    numbers = [_number(c) for c in cells]
    if all(v is not None and math.isfinite(v) for v in numbers):
        low, high = min(v for v in numbers if v is not None), max(v for v in numbers if v is not None)
        if low == high:
            return Choice([low])
        return LogFloat(low, high) if low > 0 and high / low >= _LOG_SPAN else Float(low, high)
    return Choice(list(dict.fromkeys(cells)))


def _find(space: Space, name: str) -> Param | None:
    """The parameter ``name`` anywhere in ``space`` (conditional children too)."""
    for key, p in space.items():
        if key == name:
            return p
        if isinstance(p, Choice):
            for child in p.children.values():
                found = _find(child, name)
                if found is not None:
                    return found
    return None


def _typed(p: Param, cell: str) -> Any:
    """A cell as the value ``p`` holds (a cell that does not parse stays text, and validation says so)."""
    if isinstance(p, Int) and _INT.fullmatch(cell):
        return int(cell)
    if isinstance(p, (Float, LogFloat)) and _number(cell) is not None:
        return float(cell)
    if isinstance(p, Choice):
        for v in p.values:
            if str(v) == cell or (isinstance(v, (int, float)) and not isinstance(v, bool) and _number(cell) == v):
                return v
    return cell


def _trials(configs: list[dict[str, Any]], values: list[float | None], metric: str, seed: int,
            start: int) -> list[ImportedTrial]:
    from tuneloop.run.driver import trial_seed

    return [ImportedTrial(state=TrialState.COMPLETED if v is not None else TrialState.FAILED, params=c,
                          seed=trial_seed(seed, start + i), number=start + i, value=v,
                          values={} if v is None else {metric: v},
                          error=None if v is not None else f"The table's {metric!r:.60} cell is empty or not a number.")
            for i, (c, v) in enumerate(zip(configs, values, strict=True))]


def _summary(record: Any, trials: list[ImportedTrial], renamed: dict[str, str]) -> ImportSummary:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
    return ImportSummary(record, counts, {}, renamed)
