"""Rich renderings of stored studies and trials for the CLI (data in, tables out)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from tuneloop.store import StudySummary, TrialRecord

_STATE_STYLE = {"completed": "green", "pruned": "yellow", "failed": "red", "diverged": "magenta",
                "interrupted": "cyan", "running": "blue", "queued": "dim"}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    s = max(0.0, time.time() - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"


def studies_table(summaries: Sequence[StudySummary], url: str) -> Table:
    table = Table(title=f"Studies in {url}")
    for col, justify in (("study", "left"), ("objective", "left"), ("trials", "right"), ("by state", "left"),
                         ("best", "right"), ("last activity", "right")):
        table.add_column(col, justify=justify, overflow="fold")
    for s in summaries:
        states = ", ".join(f"[{_STATE_STYLE.get(k, '')}]{n} {k}[/]" for k, n in sorted(s.counts.items()))
        table.add_row(s.name, f"{s.mode} {s.metric}", str(s.n_trials), states or "-", fmt(s.best_value),
                      ago(s.last_activity))
    return table


def trials_table(trials: Sequence[TrialRecord], metric: str, title: str) -> Table:
    table = Table(title=title)
    for col in ("#", "state", metric, "duration", "params"):
        table.add_column(col, justify="right" if col in ("#", metric, "duration") else "left",
                         overflow="fold")
    for t in trials:
        style = _STATE_STYLE.get(t.state, "")
        params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
        table.add_row(str(t.number), f"[{style}]{t.state}[/]", fmt(t.value),
                      "-" if t.duration is None else f"{t.duration:.1f}s", params)
    return table


def trial_detail(trial: TrialRecord, metric: str) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("trial", str(trial.number))
    table.add_row(metric, fmt(trial.value))
    table.add_row("seed", str(trial.seed))
    for k, v in trial.params.items():
        table.add_row(f"  {k}", fmt(v))
    others = {k: v for k, v in trial.values.items() if k != metric}
    if others:
        table.add_row("values", json.dumps({k: round(v, 6) if isinstance(v, float) and math.isfinite(v) else v
                                            for k, v in others.items()}))
    return table
