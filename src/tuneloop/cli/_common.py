"""What every ``tuneloop`` command shares: the consoles, the options several commands take
(declared once here), one-line errors, the store a command opens, and the best trial printed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tuneloop._text import safe
from tuneloop.cli._tables import trial_detail
from tuneloop.errors import TuneloopError
from tuneloop.objectives import Objectives

out = Console()
err = Console(stderr=True)

# options and arguments more than one command group takes
Storage = Annotated[str | None, typer.Option(
    "--storage", help="Database URL or SQLite path \\[default: $TUNELOOP_STORAGE or ./tuneloop.db]")]
StudyArg = Annotated[str, typer.Argument(help="Study name")]
StudyName = Annotated[str | None, typer.Option("--study", help="Which study, if the file defines several")]
Workers = Annotated[int, typer.Option(help="Trials at once")]
StoredExperiment = Annotated[Path | None, typer.Option(
    "--file", help="The experiment file \\[default: the one the study ran]")]
# how the trials of a command that launches them run (run, finalize, probe lr|batch): as Study.run takes them
Executor = Annotated[str | None, typer.Option(
    help="inline, processes, population or ray \\[default: processes when workers > 1]")]
Members = Annotated[int | None, typer.Option(help="Population executor: trials trained together \\[default: 64]")]
MaxRetries = Annotated[int, typer.Option(help="Runs of a trial again when its worker process dies")]
Gpus = Annotated[str | None, typer.Option(
    help="Pin worker processes to these GPUs (0,1,2,3: as torch numbers the visible ones), or none")]
TrialsPerGpu = Annotated[int | None, typer.Option(
    help="Worker processes on each GPU of --gpus (every visible GPU without it) \\[default: 1]")]


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn tuneloop's errors into one red line and exit code 1; Ctrl-C into a resume hint.

    :mod:`tuneloop.cli` wraps every command with it when it builds the app."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TuneloopError as exc:
            # messages quote stored names (a study called "[/x]"): printed as text, never as markup
            err.print(f"[red]Error:[/] {safe(exc, lines=True)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]Interrupted.[/] Finished trials are stored; running ones are marked interrupted. "
                      "Run the same command again to resume.")
            raise typer.Exit(130) from None

    return wrapper


def plugin(text: str | None, kind: str) -> str | dict[str, Any] | None:
    """A ``--searcher``/``--scheduler`` value: a name (``asha``), or a name with options
    (``forecast:confidence=0.9,k=5``; numbers, true/false, else words), as the registries take it."""
    if text is None or ":" not in text:
        return text
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {"name": name.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq or not key.strip().isidentifier():
            from tuneloop.errors import ConfigError

            raise ConfigError(f"Bad --{kind} option {part!r}: write NAME:key=value,key=value "
                              f"(e.g. forecast:confidence=0.9,k=5).")
        options[key.strip()] = _scalar(raw.strip())
    return options


def _scalar(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def open_store(storage: str | None, *, read_only: bool = True) -> Any:
    """Open the store for a command; read-only unless the command writes, so reading never creates,
    converts or adds tables to a database (a missing or foreign one is a one-line error)."""
    from tuneloop.store import Store

    return Store(storage, read_only=read_only)


def print_best(trials: Sequence[Any], objectives: Objectives, name: str) -> None:
    """The best feasible completed trial's values, seed and parameters; with several objectives, the
    Pareto front (one row per trial, sorted by the first objective); a yellow line when there is none."""
    from tuneloop.cli._fronts import infeasible_note, summary
    from tuneloop.cli._tables import front_table
    from tuneloop.study import best_trial

    try:
        best = best_trial(trials, objectives, name)  # the clear error when no trial is completed (or feasible)
    except TuneloopError as exc:
        err.print(f"[yellow]{safe(exc)}[/]")
        return
    if objectives.multi:
        out.print(front_table(objectives, trials, name))
        return
    out.print(f"[bold]Best trial of {safe(name)}[/] ({summary(objectives)}):")
    out.print(trial_detail(best, objectives))
    note = infeasible_note(objectives, trials)
    if note:
        out.print(f"{note}.", highlight=False)
