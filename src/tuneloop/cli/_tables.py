"""Rich tables of what :mod:`tuneloop.views` and the store's records hold (data in, tables out).

Every stored string (names, values, messages) goes through :func:`tuneloop._text.safe` (or
:func:`fmt`, which uses it) before it becomes a cell, title or caption: a database may come from
someone else, and ``[/x]`` or an escape sequence in it must print as text."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from tuneloop._text import plain, safe
from tuneloop.cli._fronts import extra_metrics, feasibility, infeasible_note, label, summary
from tuneloop.objectives import Objectives
from tuneloop.store import StudySummary, TrialRecord

if TYPE_CHECKING:
    from tuneloop.views import RoundRow

_STATE_STYLE = {"completed": "green", "pruned": "yellow", "failed": "red", "diverged": "magenta",
                "interrupted": "cyan", "running": "blue", "queued": "dim"}


def styled(text: str, style: str | None) -> str:
    """Rich markup for ``text`` in ``style`` (plain text when there is no style)."""
    return f"[{style}]{text}[/]" if style else text


def fmt(value: Any) -> str:
    """A value as Rich markup: numbers short, stored strings escaped and stripped of control characters."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return safe(value)


def ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    s = max(0.0, time.time() - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit} ago"
    return f"{s:.0f}s ago"


def studies_table(summaries: Sequence[StudySummary], url: str,
                  shown: Mapping[str, tuple[str, str]] | None = None) -> Table:
    """The studies of a store: objective, trials by state, best value, last activity. ``shown`` maps
    a study's name to its objective and best cells (markup made safe) where the summary's single
    metric and best value do not say it: several objectives (the front's size) or constraints."""
    table = Table(title=f"Studies in {safe(url)}")
    for col in ("study", "objective", "trials", "by state", "best", "last activity"):
        table.add_column(col, justify="right" if col in ("trials", "best", "last activity") else "left", overflow="fold")
    for s in summaries:
        states = ", ".join(styled(f"{n} {safe(k)}", _STATE_STYLE.get(k)) for k, n in sorted(s.counts.items()))
        objective, best = (shown or {}).get(s.name, (f"{safe(s.mode)} {safe(s.metric)}", fmt(s.best_value)))
        table.add_row(safe(s.name), objective, str(s.n_trials), states or "-", best, ago(s.last_activity))
    return table


def trials_table(trials: Sequence[TrialRecord], objectives: Objectives, title: str) -> Table:
    """``title`` is markup the caller made safe; the objectives and every trial are stored data. One
    column per objective, a feasible column when the study has constraints, a device column when the
    trials ran on more than one device (pinned to GPUs, docs/gpus.md)."""
    table = Table(title=title)
    devices = len({repr(t.attrs.get("device")) for t in trials}) > 1  # repr: a forged list is a device too
    multi, constrained = objectives.multi, bool(objectives.constraints)
    heads = [label(o) for o in objectives.items] if multi else [safe(objectives.primary.name)]
    table.add_column("#", justify="right")
    table.add_column("state")
    for head in heads:
        table.add_column(head, justify="right", overflow="fold")
    if constrained:
        table.add_column("feasible", overflow="fold")
    table.add_column("duration", justify="right")
    table.add_column("params", overflow="fold")
    if devices:
        table.add_column("device", overflow="fold")
    for t in trials:
        params = ", ".join(f"{safe(k)}={fmt(v)}" for k, v in t.params.items())
        values = [fmt(t.values.get(n)) for n in objectives.names] if multi else [fmt(t.value)]
        table.add_row(str(t.number), styled(safe(t.state), _STATE_STYLE.get(t.state)), *values,
                      *([_feasible_cell(feasibility(objectives, t))] if constrained else []),
                      "-" if t.duration is None else f"{t.duration:.1f}s", params,
                      *([fmt(t.attrs.get("device"))] if devices else []))
    return table


def _feasible_cell(text: str) -> str:
    return styled(text, "green" if text == "yes" else None if text == "-" else "red")


def trial_detail(trial: TrialRecord, objectives: Objectives) -> Table:
    """One trial: its number, every objective's value, whether it is feasible (with constraints),
    its seed, parameters and other final values."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("trial", str(trial.number))
    if objectives.multi:
        for o in objectives.items:
            table.add_row(label(o), fmt(trial.values.get(o.name)))
    else:
        table.add_row(safe(objectives.primary.name), fmt(trial.value))
    if objectives.constraints:
        table.add_row("feasible", _feasible_cell(feasibility(objectives, trial)))
    table.add_row("seed", fmt(trial.seed))
    for k, v in trial.params.items():
        table.add_row(f"  {safe(k)}", fmt(v))
    others = {k: v for k, v in trial.values.items() if k not in objectives.names}
    if others:
        table.add_row("values", safe(json.dumps({k: round(v, 6) if isinstance(v, float) and math.isfinite(v) else v
                                                 for k, v in others.items()})))
    return table


def front_table(objectives: Objectives, trials: Sequence[Any], name: str) -> Table:
    """The feasible completed trials no other one dominates: one column per objective (and per
    constrained metric that is not one), then the parameters; sorted by the first objective."""
    front = objectives.front_sorted(trials)
    done = len(objectives.completed(trials))
    table = Table(title=f"Pareto front of {safe(name)}: {len(front)} of {done} completed trials "
                        f"({summary(objectives)})", caption=infeasible_note(objectives, trials))
    extra = extra_metrics(objectives)
    table.add_column("#", justify="right")
    for o in objectives.items:
        table.add_column(label(o), justify="right")
    for m in extra:
        table.add_column(safe(m), justify="right")
    table.add_column("params", overflow="fold")
    table.add_column("seed", justify="right")
    for t in front:
        params = ", ".join(f"{safe(k)}={fmt(v)}" for k, v in t.params.items())
        table.add_row(str(t.number), *(fmt(t.values.get(n)) for n in [*objectives.names, *extra]), params,
                      fmt(t.seed))
    return table


def curves_table(summaries: Sequence[Any]) -> Table:
    table = Table(title="Curves")
    for col in ("metric", "points", "start", "best", "@ step", "end", "@ step", "trend"):
        table.add_column(col, justify="left" if col in ("metric", "trend") else "right")
    colours = {"improving": "green", "worsening": "red", "diverged": "magenta", "flat": "dim"}
    for c in summaries:
        has_best = math.isfinite(c.best)  # NaN: a quantity with no better direction (lr, grad_norm)
        table.add_row(safe(c.name), str(c.points), fmt(c.start), fmt(c.best) if has_best else "-",
                      str(c.best_step) if has_best else "-", fmt(c.end),
                      str(c.end_step), styled(c.trend, colours.get(c.trend)))
    return table


def alerts_table(alerts: Sequence[Any]) -> Table:
    table = Table(title=f"Alerts ({len(alerts)})")
    for col in ("step", "action", "message"):
        table.add_column(col, overflow="fold", justify="right" if col == "step" else "left")
    for a in alerts:
        table.add_row(str(a.step), styled(safe(a.action), "red" if a.action == "stop" else "yellow"), safe(a.message))
    return table


def slices_table(slices: Sequence[Any]) -> Table:
    """The last step's value of each metric on each slice."""
    last = max(s.step for s in slices)
    rows = [s for s in slices if s.step == last]
    metrics = sorted({s.metric for s in rows})
    table = Table(title=f"Slices at step {last}")
    table.add_column("slice")
    for m in metrics:
        table.add_column(safe(m), justify="right")
    table.add_column("n", justify="right")
    by_slice: dict[str, dict[str, Any]] = {}
    for s in rows:
        by_slice.setdefault(s.slice, {"n": s.n})[s.metric] = s.value
    for name, vals in by_slice.items():
        table.add_row(safe(name), *[fmt(vals.get(m)) for m in metrics], fmt(vals["n"]))
    return table


def samples_table(samples: Sequence[Any], files: Mapping[str, Path | None]) -> Table:
    """The trial's samples; a file is shown by its stored path resolved inside the artifact folder
    (``files``, from :func:`tuneloop.views.trial_data`), one leaving it (a hostile database) as
    missing, never as the path it names."""
    from rich.text import Text

    table = Table(title=f"Samples ({len(samples)})")
    for col in ("step", "name", "kind", "where / what"):
        table.add_column(col, overflow="fold", justify="right" if col == "step" else "left")
    for s in samples:
        what: str | Text
        if s.path:
            file = files.get(s.path)
            if file is not None:
                what = Text(plain(file))  # Text: a path is never read as Rich markup
            else:
                what = Text("missing (its stored path leaves the artifact folder)", style="red")
        elif s.kind == "text":
            what = safe(repr(s.payload[:80]))
        elif s.kind == "array":
            what = f"array of shape {s.payload['shape']}" + (" (truncated)" if s.payload.get("truncated") else "")
        else:
            what = f"table of {len(s.payload)} rows"
        table.add_row(str(s.step), safe(s.name), safe(s.kind), what)
    return table


def histograms_table(histograms: Sequence[Any]) -> Table:
    """Per histogram name: how many steps were logged and the last one's statistics."""
    last: dict[str, Any] = {}
    steps: dict[str, int] = {}
    for h in histograms:
        last[h.name] = h
        steps[h.name] = steps.get(h.name, 0) + 1
    table = Table(title=f"Histograms ({len(last)} quantities)")
    for col in ("name", "steps", "last step", "mean", "std", "abs max", "zeros", "flag"):
        table.add_column(col, justify="left" if col in ("name", "flag") else "right")
    for name, h in last.items():
        st = h.stats
        table.add_row(safe(name), str(steps[name]), str(h.step), fmt(st.get("mean")), fmt(st.get("std")),
                      fmt(st.get("abs_max")), fmt(st.get("zero_fraction")), safe(h.flag or ""))
    return table


def sample_table(sample: Any) -> Table:
    """A small table sample (a confusion matrix, say) drawn as it is."""
    columns = list(dict.fromkeys(k for row in sample.payload for k in row))
    table = Table(title=f"{safe(sample.name)} (step {sample.step})")
    for col in columns:
        table.add_column(safe(col), justify="right")
    for row in sample.payload:
        table.add_row(*[fmt(row.get(c)) for c in columns])
    return table


def baselines_table(scores: Mapping[str, float], metric: str) -> Table:
    """Each scikit-learn baseline's score on the validation split."""
    table = Table(title=f"Baselines ({safe(metric)} on the validation split)")
    table.add_column("model")
    table.add_column(safe(metric), justify="right")
    for name, score in scores.items():
        table.add_row(safe(name), fmt(score))
    return table


def _differing(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Parameter names whose values differ between configurations (all of them for one)."""
    names = sorted({k for c in configs for k in c})
    if len(configs) < 2:
        return names
    return [n for n in names if len({json.dumps(c.get(n)) for c in configs}) > 1]


def ensemble_table(result: Any) -> Table:
    """One row per ensemble method: score over seeds and gain over the best single model."""
    table = Table(title=f"Ensembles of {safe(result.study)} on {safe(result.split)} ({safe(result.metric)}); "
                        f"gain interval: {safe(result.interval)}",
                  caption="members: " + "; ".join(safe(m) for m in result.members))
    for i, col in enumerate(("method", safe(result.metric), "gain over best single (95% CI)", "how")):
        table.add_column(col, overflow="fold", justify="left" if i in (0, 3) else "right")
    for r in result.rows:
        score = f"{r.score:.4f}" + (f" [{r.score_low:.4f}, {r.score_high:.4f}]" if result.seeds > 1 else "")
        if r.gain is None:
            gain = "-"
        else:
            sure = r.gain_low > 0 or r.gain_high < 0
            gain = styled(f"{r.gain:+.4f} [{r.gain_low:+.4f}, {r.gain_high:+.4f}]",
                          ("green" if r.gain > 0 else "red") if sure else None)
        table.add_row(safe(r.method), score, gain, safe(r.note))
    return table


def rounds_table(rounds: Sequence[RoundRow]) -> Table:
    """A goal's rounds (:func:`tuneloop.views.round_rows`): each one's roles, trial counts, best value
    and finalize result."""
    table = Table(title=f"Rounds of goal {safe(repr(rounds[0].goal))}")
    for col in ("round", "study", "from", "scientific", "fixed", "trials", "best", "finalized (test, 95% CI)"):
        table.add_column(col, overflow="fold", justify="right" if col in ("round", "trials", "best") else "left")
    for r in rounds:
        shown = "-"
        if r.final is not None:
            shown = f"{format(r.final_test, '.4f')} ({r.final})" if r.final_test is not None else r.final
        table.add_row(str(r.round), safe(r.study), safe(r.parent or "-"), safe(", ".join(r.scientific) or "-"),
                      safe(", ".join(f"{k}={v}" for k, v in r.fixed.items()) or "-"),
                      f"{r.completed}/{r.trials}", fmt(r.best), safe(shown))
    return table
