"""``tuneloop ask``, ``tell``, ``enqueue`` and ``worker``: a study run by shell loops and cluster jobs.

    tuneloop enqueue mlp lr=0.01 width=64          # run this first; the searcher fills the rest
    tuneloop ask mlp --json                        # {"number": 3, "params": {...}, "seed": ..., "budget": {...}}
    tuneloop tell mlp 3 --value 0.31               # or --state pruned|failed
    tuneloop worker mlp --trials 100               # one SLURM array task: trials until the study holds 100

Without ``--file`` these read the study from the store and never import code: ask, tell and enqueue
need only its space, objective and searcher; worker imports the experiment file the study ran from
when this machine signed it (as finalize does), or the ``--file`` given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneloop._text import safe
from tuneloop.cli._common import MaxRetries, Storage, StoredExperiment, StudyArg, err, open_store, out
from tuneloop.errors import ConfigError

Seeds = Annotated[int | None, typer.Option(help="Ask each configuration this many times, each with its own seed")]
LeaseSeconds = Annotated[float, typer.Option(
    help="How long an asked trial stays this client's without a tell; then a driver or ask runs it again")]


def _study(name: str, file: Path | None, storage: str | None) -> Any:
    """The study from ``file`` (which may create it), else as stored (which must exist)."""
    from tuneloop.experiment import load_study
    from tuneloop.study import Study

    if file is None:
        return Study.stored(name, storage)
    study = load_study(file, name)
    study.storage = storage or study.storage
    return study


def ask(
    study: StudyArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line: number, params, seed, budget")] = False,
    trials: Annotated[int | None, typer.Option("--trials", "-n", help="Hand out none past this many trials of the study (a shell loop's end)")] = None,
    seeds: Seeds = None,
    lease_seconds: LeaseSeconds = 3600.0,
    max_retries: MaxRetries = 1,
    file: Annotated[Path | None, typer.Option("--file", help="The experiment file that defines the study")] = None,
    storage: Storage = None,
) -> None:
    """Hand out a trial to run yourself (stored as running); end it with tuneloop tell (exit 3: none left)."""
    the_study = _study(study, file, storage)
    trial = the_study.ask(n_trials=trials, seeds=seeds, lease_seconds=lease_seconds, max_retries=max_retries)
    if trial is None:
        why = "its searcher has proposed every one" if trials is None else f"its first {trials} trials are handed out"
        err.print(f"Study {safe(repr(study))} has no trial left to hand out: {why}.")
        raise typer.Exit(3)
    if as_json:
        print(json.dumps({"number": trial.number, "params": trial.params.to_dict(), "seed": trial.seed,
                          "budget": trial.budget.to_dict()}))
        return
    params = " ".join(f"{k}={v!r}" for k, v in trial.params.items())
    objectives = the_study.objectives
    rest = [m for m in objectives.metrics if m != objectives.primary.name]  # other objectives, constrained metrics
    told = " ".join(["--value V" if not objectives.multi else f"--metric {objectives.primary.name}=V",
                     *(f"--metric {name}=V" for name in rest)])
    out.print(f"Trial {trial.number} of {safe(repr(study))}: {safe(params)} (seed {trial.seed}). When it ends: "
              f"tuneloop tell {safe(study)} {trial.number} {safe(told)}", highlight=False)


def tell(
    study: StudyArg,
    number: Annotated[int, typer.Argument(help="The trial's number (from tuneloop ask)")],
    value: Annotated[str | None, typer.Option(help="The (first) objective's final value")] = None,
    state: Annotated[str, typer.Option(help="completed, pruned or failed")] = "completed",
    metric: Annotated[list[str] | None, typer.Option(
        help="A final metric, NAME=VALUE (repeatable): every objective of a study with several, other metrics")] = None,
    error: Annotated[str | None, typer.Option(help="Why it failed (with --state failed)")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="The experiment file that defines the study")] = None,
    storage: Storage = None,
) -> None:
    """End a trial handed out by tuneloop ask: its objective (--value; several: --metric NAME=V each) or
    --state pruned|failed."""
    the_study = _study(study, file, storage)
    values: dict[str, Any] = {}
    for item in metric or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--metric takes NAME=VALUE, e.g. --metric val_acc=0.91. Got {item!r:.60} instead.")
        values[name.strip()] = text.strip()
    if value is not None:
        values[the_study.metric] = value.strip()
    record = the_study.tell(number, {k: _number(k, v) for k, v in values.items()}, state=state, error=error)
    out.print(f"Trial {record.number} of {safe(repr(study))}: {record.state}{_told(the_study.objectives, record)}.",
              highlight=False)


def _told(objectives: Any, record: Any) -> str:
    """`` (loss 0.3)``; several objectives: each one; with constraints, whether it is feasible."""
    from tuneloop.cli._fronts import feasibility

    if objectives.multi:
        shown = ", ".join(f"{safe(n)} {record.values[n]:g}" for n in objectives.names
                          if isinstance(record.values.get(n), (int, float)))
    else:
        shown = "" if record.value is None else f"{safe(objectives.primary.name)} {record.value:g}"
    if objectives.constraints and record.state == "completed":
        shown += f"; feasible: {feasibility(objectives, record)}"
    return f" ({shown})" if shown else ""


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"The value of {name!r} must be a number. Got {text!r:.60} instead.") from None


def enqueue(
    study: StudyArg,
    params: Annotated[list[str], typer.Argument(help="NAME=VALUE for each parameter to fix; the searcher fills the rest")],
    file: Annotated[Path | None, typer.Option("--file", help="The experiment file that defines the study")] = None,
    storage: Storage = None,
) -> None:
    """Run a configuration (some or all parameters) before the searcher's own proposals."""
    from tuneloop.search import parse_assignments

    the_study = _study(study, file, storage)
    number = the_study.enqueue(parse_assignments(the_study.space, params))
    out.print(f"Enqueued as trial {number} of {safe(repr(study))}: the next run, worker or ask runs it first"
              f"{'' if len(params) == len(the_study.space.names) else ', the searcher choosing the rest'}.",
              highlight=False)


def worker(
    study: StudyArg,
    trials: Annotated[int | None, typer.Option("--trials", "-n", help="Total finished trials the study should reach \\[default: the target stored by tuneloop run --trials]")] = None,
    workers: Annotated[int | None, typer.Option(help="Trials at once in this worker \\[default: the study's]")] = None,
    max_retries: MaxRetries = 1,
    timeout: Annotated[float | None, typer.Option(help="Stop launching trials after this many seconds")] = None,
    file: StoredExperiment = None,
    storage: Storage = None,
) -> None:
    """Run trials of a stored study alongside other workers (a SLURM array task) until it holds its target."""
    from tuneloop._validation import check_positive_int
    from tuneloop.cli._finalize import _experiment
    from tuneloop.experiment import load_study

    if file is not None:  # the file defines the study: the first worker on a fresh database creates it
        experiment = load_study(file, study)
        record = experiment.store(storage).get_study(study)
    else:
        store = open_store(storage)
        record = store.require_study(study)
        experiment = _experiment(store, study, None)
    target = trials if trials is not None else (None if record is None else record.config.get("n_trials"))
    if target is None:
        raise ConfigError(f"Study {study!r} stores no trial target; pass --trials N (tuneloop run --trials N "
                          f"stores one).")
    target = check_positive_int(target, "trials", "tuneloop worker")
    summary = experiment.run(target, workers=workers, max_retries=max_retries, timeout=timeout, storage=storage)
    outcomes = ", ".join(f"{n} {s}" for s, n in sorted(summary.outcomes.items())) or "none"
    out.print(f"Worker ran {summary.launched} trials in {summary.elapsed:.1f}s ({outcomes}); study "
              f"{safe(repr(study))} holds {summary.finished_total} of {target} finished ({summary.reason}).",
              highlight=False)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("enqueue")(enqueue)
    app.command("ask")(ask)
    app.command("tell")(tell)
