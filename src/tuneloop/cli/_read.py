"""Commands that read a store: ``status``, ``trials``, ``best``, ``show``, ``export``.

Each opens the store read-only and draws what :mod:`tuneloop.views` returns."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneloop._text import safe
from tuneloop.cli._common import Storage, StudyArg, err, open_store, out, print_best
from tuneloop.cli._tables import (
    alerts_table,
    curves_table,
    fmt,
    histograms_table,
    sample_table,
    samples_table,
    slices_table,
    studies_table,
    trial_detail,
    trials_table,
)


def status(storage: Storage = None) -> None:
    """List the studies in a store: trials by state, best value (with several objectives, the
    Pareto front's size), last activity."""
    store = open_store(storage)  # read-only: a missing or foreign database is a one-line error, left as it was
    summaries = store.studies()
    if not summaries:
        out.print(f"No studies in {safe(store.url)} yet; start one with: tuneloop demo, or tuneloop run FILE.")
        return
    out.print(studies_table(summaries, store.url, _standings(store, summaries)))


def _standings(store: Any, summaries: list[Any]) -> dict[str, tuple[str, str]]:
    """The objective and best cells of the studies a summary's one metric and best value do not
    describe: several objectives (the front's size) or constraints (the best feasible value)."""
    from tuneloop.cli._fronts import summary
    from tuneloop.errors import TuneloopError

    shown: dict[str, tuple[str, str]] = {}
    for s in summaries:
        try:
            record = store.get_study(s.name)
            objectives = record.objectives
        except TuneloopError:  # a malformed row: the listing still shows the others, and this one as stored
            continue
        if not objectives.multi and not objectives.constraints:
            continue
        trials = store.trials(record.id)
        if objectives.multi:
            n = len(objectives.front(trials))
            best = f"front of {n}" if n else "-"
        else:
            found = objectives.best(trials)
            best = "-" if found is None else fmt(found.value)
        shown[s.name] = (summary(objectives), best)
    return shown


def trials(
    study: StudyArg,
    state: Annotated[str | None, typer.Option(help="Only trials in this state")] = None,
    sort: Annotated[str, typer.Option(help="number, or value: best first (feasible trials first, then by Pareto "
                                           "layer and the first objective)")] = "number",
    limit: Annotated[int | None, typer.Option(help="Show at most this many")] = None,
    storage: Storage = None,
) -> None:
    """List a study's trials: one column per objective, and whether each is feasible when the study has constraints."""
    from tuneloop._validation import check_one_of
    from tuneloop.store import TrialState
    from tuneloop.views import trials_of

    check_one_of(sort, ["number", "value"], "--sort", "tuneloop trials")
    if state is not None:
        check_one_of(state, [s.value for s in TrialState], "--state", "tuneloop trials")
    record, rows = trials_of(open_store(storage), study, state=state, sort=sort)  # value: Objectives.ranked first
    out.print(trials_table(rows[:limit] if limit else rows, record.objectives, f"Trials of {safe(study)} ({len(rows)})"))


def best(
    study: StudyArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the best trial (several objectives: the front) as JSON")] = False,
    storage: Storage = None,
) -> None:
    """Show a study's best feasible trial: its value, parameters and seed; with several objectives,
    the Pareto front (the trials no other one beats on every objective)."""
    import json

    from tuneloop.cli._fronts import front_json
    from tuneloop.export import strict_json
    from tuneloop.study import best_trial
    from tuneloop.views import trials_of

    record, rows = trials_of(open_store(storage), study)
    objectives = record.objectives
    b = best_trial(rows, objectives, study)  # raises the clear error when none is completed (or feasible)
    if as_json:
        data = front_json(objectives, rows) if objectives.multi else {
            "number": b.number, "value": b.value, "params": b.params, "seed": b.seed, "values": b.values}
        print(json.dumps(strict_json(data), indent=2))
        return
    print_best(rows, objectives, study)


def show(
    study: StudyArg,
    trial: Annotated[int, typer.Argument(help="Trial number")],
    storage: Storage = None,
) -> None:
    """Everything about one trial: final metrics, where it ran, curves, system metrics, alerts,
    slices, samples, histograms."""
    from tuneloop.cli._fronts import feasibility
    from tuneloop.views import curve_summaries, system_summaries, trial_data

    data = trial_data(open_store(storage), study, trial)
    t, objectives = data.trial, data.study.objectives
    duration = "-" if t.duration is None else f"{t.duration:.1f}s"
    shown = ([f"{safe(o.name)} = {fmt(t.values.get(o.name))}" for o in objectives.items] if objectives.multi
             else [f"{safe(objectives.primary.name)} = {fmt(t.value)}"])
    out.print(f"[bold]Trial {t.number} of {safe(study)}[/]: {safe(t.state)}, {', '.join(shown)}, {duration}, "
              f"attempt {t.attempt}")
    if objectives.constraints:
        out.print(f"feasible: {feasibility(objectives, t)} ({safe(', '.join(map(str, objectives.constraints)))})",
                  highlight=False)
    if "device" in t.attrs or "host" in t.attrs:  # recorded by the process that ran it
        out.print(f"device {fmt(t.attrs.get('device'))} on host {fmt(t.attrs.get('host'))}", highlight=False)
    others = {k: v for k, v in t.attrs.items() if k not in ("device", "host")}
    if others:  # what the trial function set with Trial.set_attr
        out.print("attributes: " + ", ".join(f"{safe(k)}={fmt(v)}" for k, v in sorted(others.items())),
                  highlight=False)
    lineage = data.lineage
    if lineage:  # continued by sha or pbt from another trial's checkpoint
        source = "" if lineage["parent"] is None else f" from trial {safe(lineage['parent'])}"
        out.print(f"member {safe(lineage['member'])}, generation {safe(lineage['generation'])}: "
                  f"{safe(lineage['event'])}{source}")
    out.print(trial_detail(t, objectives))
    curves = curve_summaries(data)
    if curves:
        out.print(curves_table(curves))
    system = system_summaries(data)
    if system:
        out.print(_system_table(system))
    if data.alerts:
        out.print(alerts_table(data.alerts))
    if data.slices:
        out.print(slices_table(data.slices))
    if data.histograms:
        out.print(histograms_table(data.histograms))
    if data.samples:
        out.print(samples_table(data.samples, data.files))
        for s in data.samples:
            if s.kind == "table" and 0 < len(s.payload) <= 20:
                out.print(sample_table(s))
    if t.error:
        out.print(f"[red]Error[/]: {safe(t.error, lines=True)}", highlight=False)


_UNITS = {"sys/cpu_percent": "%", "sys/gpu_util": "%", "sys/rss_mb": " MB", "sys/gpu_mem_mb": " MB"}


def _system_table(summaries: list[Any]) -> Table:
    """The system metrics sampled while the trial ran (docs/gpus.md)."""
    table = Table(title="System (sampled while it ran)")
    for col in ("metric", "samples", "mean", "peak", "last", "@ second"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for m in summaries:
        unit = _UNITS.get(m.name, "")
        table.add_row(safe(m.name), str(m.samples), f"{m.mean:.4g}{unit}", f"{m.peak:.4g}{unit}", f"{m.last:.4g}{unit}",
                      str(m.seconds))
    return table


def export(
    study: StudyArg,
    format: Annotated[str, typer.Option("--format", "-f", help="json, csv or optuna")] = "json",
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write here instead of stdout (optuna: a database URL, a .db or a journal file)")] = None,
    storage: Storage = None,
) -> None:
    """Export a study (space, trials, metric series) as JSON or CSV, or into an Optuna storage; see docs/export.md."""
    from tuneloop._validation import check_one_of
    from tuneloop.export import study_data, to_csv, to_json

    check_one_of(format, ["json", "csv", "optuna"], "--format", "tuneloop export")
    if format == "optuna":
        from tuneloop.cli._interop import export_optuna_cmd

        export_optuna_cmd(study, output, storage)
        return
    data = study_data(open_store(storage), study, with_metrics=format == "json")
    text = to_json(data) if format == "json" else to_csv(data)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        Path(output).write_text(text)
        err.print(f"Wrote {len(data['trials'])} trials to {safe(output)}")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("trials")(trials)
    app.command("best")(best)
    app.command("show")(show)
    app.command("export")(export)
