"""``tuneloop import optuna|csv``: studies that ran elsewhere, as tuneloop studies; and the Optuna half
of ``tuneloop export --format optuna`` (docs/export.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneloop._text import safe
from tuneloop.cli._common import Storage, StudyArg, err, open_store, out


def optuna_cmd(
    study: StudyArg,
    source: Annotated[str, typer.Option(
        "--from", help="Optuna's storage: a database URL (sqlite:///optuna.db), an SQLite file or a journal file")],
    optuna_study: Annotated[str | None, typer.Option(help="Which Optuna study, if the storage holds several")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="The objective's name; several objectives: once each, in order \\[default: Optuna's metric names, else value or objective_0, objective_1...]")] = None,
    storage: Storage = None,
) -> None:
    """Import an Optuna study (space, trials, states, values, intermediate values, user attributes; every
    objective and Optuna's constraints)."""
    from tuneloop.interop import import_optuna

    summary = import_optuna(open_store(storage, read_only=False), study, source, optuna_study=optuna_study,
                            metric=metric or None)
    _report(summary, f"Optuna study {summary.study.config['imported_from']['study']!r}")


def csv_cmd(
    study: StudyArg,
    source: Annotated[Path, typer.Option("--from", help="A CSV table: a header row, then one trial per row")],
    metric: Annotated[str, typer.Option(help="The column holding the objective's value")],
    mode: Annotated[str | None, typer.Option(help="min or max (required with --space-from-data)")] = None,
    space_from_data: Annotated[bool, typer.Option(
        "--space-from-data", help="Create the study with a space read from the table's values")] = False,
    ignore: Annotated[str | None, typer.Option(help="Columns that are neither parameters nor the metric: A,B")] = None,
    storage: Storage = None,
) -> None:
    """Import a table of configurations and results as completed trials (failed where the metric is empty)."""
    from tuneloop.interop import import_csv

    columns = [c.strip() for c in (ignore or "").split(",") if c.strip()]
    summary = import_csv(open_store(storage, read_only=False), study, source, metric=metric, mode=mode,
                         space_from_data=space_from_data, ignore=columns)
    _report(summary, str(source))


def _report(summary: Any, what: str) -> None:
    from tuneloop.cli._fronts import summary as described
    from tuneloop.interop._common import space_code
    from tuneloop.study import objective_arguments

    record = summary.study
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items())) or "no trials"
    out.print(f"Imported {sum(summary.counts.values())} trials of {safe(what)} into study {safe(record.name)} "
              f"({counts}); {described(record.objectives)}.", highlight=False, soft_wrap=True)
    for why, n in summary.skipped.items():
        err.print(f"[yellow]Skipped {n} trial{'s' if n != 1 else ''}:[/] {safe(why)}.", highlight=False)
    if summary.renamed:
        pairs = ", ".join(f"{old!r} -> {new}" for new, old in summary.renamed.items())
        err.print(f"[yellow]Renamed parameters to Python names:[/] {safe(pairs)} (export writes the originals back).",
                  highlight=False)
    if summary.dropped_attrs:
        err.print(f"[yellow]Left out {summary.dropped_attrs} attributes[/] that were not strings, numbers or bools.")
    keywords = ", ".join(f"{k}={v!r}" for k, v in objective_arguments(record.objectives).items() if v is not None)
    out.print(safe(f"Continue it with: tl.Study({record.name!r}, {space_code(record.space)}, objective, {keywords})"),
              highlight=False, soft_wrap=True)


def export_optuna_cmd(study: str, output: str | None, storage: str | None) -> None:
    """``tuneloop export STUDY --format optuna -o TARGET`` (called by the export command)."""
    from tuneloop.errors import ConfigError
    from tuneloop.interop import export_optuna
    from tuneloop.interop._optuna_storage import where

    if not output:
        raise ConfigError("--format optuna writes an Optuna storage: give it with -o sqlite:///optuna.db, "
                          "-o optuna.db or -o journal.log.")
    written, skipped = export_optuna(open_store(storage), study, output)
    note = f"; skipped {skipped} unfinished" if skipped else ""
    err.print(f"Wrote {written} trials to Optuna study {safe(study)} in {safe(where(output))}{note}", highlight=False)


def register(app: typer.Typer) -> None:
    import_app = typer.Typer(no_args_is_help=True, help="Import a study from Optuna or a CSV table.")
    import_app.command("optuna")(optuna_cmd)
    import_app.command("csv")(csv_cmd)
    app.add_typer(import_app, name="import")
