"""``tuneloop finalize`` and ``tuneloop ensemble``: the honest end of a tuning goal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneloop._text import safe
from tuneloop.cli._common import (
    Executor,
    Gpus,
    MaxRetries,
    Members,
    Storage,
    StoredExperiment,
    TrialsPerGpu,
    open_store,
    out,
)
from tuneloop.cli._tables import ensemble_table, final_table
from tuneloop.errors import ConfigError


def finalize_cmd(
    study: Annotated[str, typer.Argument(help="The tuning study to finalize")],
    top: Annotated[int, typer.Option(help="How many of the best configurations to retrain")] = 3,
    seeds: Annotated[int, typer.Option(help="Seeds per configuration")] = 5,
    fit_on: Annotated[str, typer.Option("--fit-on", help="train, or train+val to refit on both")] = "train",
    epochs: Annotated[str, typer.Option(help="best: the epoch tuning selected; budget: the whole budget")] = "best",
    per: Annotated[str | None, typer.Option(help="Finalize the --top of each value of this parameter (a scientific one)")] = None,
    rounds: Annotated[str, typer.Option(help="this: this round's trials; all: every round of the goal")] = "this",
    workers: Annotated[int | None, typer.Option(help="Runs at once \\[default: the study's]")] = None,
    gpus: Gpus = None,
    trials_per_gpu: TrialsPerGpu = None,
    executor: Executor = None,
    members: Members = None,
    max_retries: MaxRetries = 1,
    again: Annotated[bool, typer.Option("--again", help="Finalize again with new choices (a second look at test)")] = False,
    show: Annotated[bool, typer.Option("--show", help="Only show the stored result of the latest finalize")] = False,
    file: StoredExperiment = None,
    storage: Storage = None,
) -> None:
    """Retrain the best configurations over seeds and measure each once on the test split."""
    from tuneloop.finalize import final_name, latest_final, read_final
    from tuneloop.run._gpus import parse_gpus

    pinned = None if gpus is None else parse_gpus(gpus)  # a bad --gpus fails before anything is read
    store = open_store(storage)
    if show:
        latest = latest_final(store, study)
        if latest is None:
            raise ConfigError(f"{study!r} has not been finalized; run tuneloop finalize {study}.")
        out.print(final_table(read_final(store, latest.name)))
        return
    experiment = _experiment(store, study, file)
    result = experiment.finalize(top=top, seeds=seeds, fit_on=fit_on, epochs=epochs, per=per, rounds=rounds,
                                 workers=workers, gpus=pinned, trials_per_gpu=trials_per_gpu, executor=executor,
                                 members=members, max_retries=max_retries,
                                 storage=storage or store.url, again=again, progress=True)
    out.print(final_table(result))
    out.print(f"Stored as study {safe(repr(result.final_study))}. Next: tuneloop ensemble {safe(study)}; "
              f"tuneloop report {safe(final_name(study, result.look))}.")


def _experiment(store: Any, name: str, file: Path | None) -> Any:
    """The Study (with its trial function) from ``file``, or from the experiment file it was run from
    when this machine recorded that run and the file is unchanged (the database may be someone else's)."""
    from tuneloop.experiment import load_study, trusted_experiment

    record = store.require_study(name)
    path = file or trusted_experiment(record.config, name)
    if not path:
        raise ConfigError(f"Study {name!r} was not run from an experiment file, so its trial function is unknown; "
                          f"pass --file EXPERIMENT.py, or call study.finalize() in Python.")
    return load_study(path, name)


def ensemble_cmd(
    study: Annotated[str, typer.Argument(help="A finalized study (or its -final study)")],
    method: Annotated[list[str] | None, typer.Option("--method", help="vote, average, stack (repeatable)")] = None,
    output: Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON here")] = None,
    storage: Storage = None,
) -> None:
    """Vote, average and stack the finalized models; each gain over the best single one with its CI."""
    from tuneloop.finalize import METHODS, ensemble

    result = ensemble(open_store(storage), study, tuple(method or METHODS))
    if result.warning:
        out.print(f"[yellow]Warning:[/] {safe(result.warning)}", highlight=False)
    out.print(ensemble_table(result))
    if output is not None:
        output.write_text(json.dumps(result.to_dict(), indent=2))
        out.print(f"Wrote {safe(output)}.")


def register(app: typer.Typer) -> None:
    app.command("finalize")(finalize_cmd)
    app.command("ensemble")(ensemble_cmd)
