"""``tuneloop finalize`` and ``tuneloop ensemble``: the honest end of a tuning goal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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
from tuneloop.cli._tables import _differing, ensemble_table, fmt, styled
from tuneloop.errors import ConfigError


def finalize_cmd(
    study: Annotated[str, typer.Argument(help="The tuning study to finalize")],
    top: Annotated[int, typer.Option(help="How many of the best configurations to retrain")] = 3,
    seeds: Annotated[int, typer.Option(help="Seeds per configuration")] = 5,
    fit_on: Annotated[str, typer.Option("--fit-on", help="train, or train+val to refit on both")] = "train",
    epochs: Annotated[str, typer.Option(help="best: the epoch tuning selected; budget: the whole budget")] = "best",
    per: Annotated[str | None, typer.Option(help="Finalize the --top of each value of this parameter (a scientific one)")] = None,
    rounds: Annotated[str, typer.Option(help="this: this round's trials; all: every round of the goal")] = "this",
    pick: Annotated[str | None, typer.Option(help="Which front members to retrain, best first, e.g. "
                                             "'max val_acc where latency_ms <= 2'")] = None,
    rerank: Annotated[int | None, typer.Option(help="First rerun the best K on validation over --rerank-seeds seeds "
                                               "and choose among them by their mean")] = None,
    rerank_seeds: Annotated[int, typer.Option("--rerank-seeds", help="Runs per re-ranked configuration")] = 3,
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
    """Retrain the best configurations over seeds and measure each once on the test split. With
    several objectives: the members of the front, best first by the first objective, or as --pick
    orders them; every objective is reported with its interval over seeds."""
    from tuneloop.finalize import final_name, latest_final, read_final
    from tuneloop.run._gpus import parse_gpus

    pinned = None if gpus is None else parse_gpus(gpus)  # a bad --gpus fails before anything is read
    if pick is not None:
        from tuneloop.picking import Rule

        Rule.parse(pick)  # a malformed rule fails before the experiment file is imported
    store = open_store(storage)
    if show:
        latest = latest_final(store, study)
        if latest is None:
            raise ConfigError(f"{study!r} has not been finalized; run tuneloop finalize {study}.")
        out.print(final_table(read_final(store, latest.name)))
        return
    experiment = _experiment(store, study, file)
    result = experiment.finalize(top=top, seeds=seeds, fit_on=fit_on, epochs=epochs, per=per, rounds=rounds, pick=pick,
                                 rerank=rerank, rerank_seeds=rerank_seeds, workers=workers, gpus=pinned,
                                 trials_per_gpu=trials_per_gpu, executor=executor,
                                 members=members, max_retries=max_retries,
                                 storage=storage or store.url, again=again, progress=True)
    out.print(final_table(result))
    out.print(f"Stored as study {safe(repr(result.final_study))}. Next: tuneloop ensemble {safe(study)}; "
              f"tuneloop report {safe(final_name(study, result.look))}.")


def final_table(result: Any) -> Table:
    """One row per finalized configuration: its tuning value, the test mean +/- CI over seeds of
    each objective, whether it kept the constraints on test, and its difference from rank 1."""
    per = f"the best of each {result.per}, " if result.per else ""
    per += "chosen among every round, " if result.rounds == "all" else ""
    per += f"picked by {result.pick!r}, " if result.pick else ""
    per += (f"re-ranked: the best {result.rerank[0]} over {result.rerank[1]} seeds on validation, "
            if result.rerank else "")
    title = (f"{safe(result.study)}: {safe(per)}finalized on {safe(result.fit_on)}, test once over {result.seeds} seeds "
             f"({safe(result.final_study)}{', look ' + str(result.look) if result.look > 1 else ''})")
    several = len(result.objectives) > 1
    notes = (["each objective on test: mean ± 95% CI half-width over seeds, then its tuning mean"] if several else [])
    notes += ["constraints on test: " + safe(", ".join(result.constraints))] if result.constraints else []
    table = Table(title=title, caption="; ".join(notes) or None)
    shown = _differing([c.params for c in result.configs])
    rounds = result.rounds == "all"
    if several:  # one column per objective (test and tuned in one cell), no per-seed list: the table stays narrow
        scored = [f"{n} ({d})" for n, d in zip(result.objectives, result.directions, strict=True)]
        last = [f"{result.metric} vs rank 1 (95% CI, p)"]
    else:
        scored = [f"tuned {result.tuned_metric}", f"{result.metric} (95% CI)"]
        last = ["vs rank 1 (95% CI, p)", "per seed"]
    kept = ["constraints on test"] if result.constraints else []
    for col in ("rank", *(["from"] if rounds else []), *shown, "epochs", *scored, *kept, *last):
        table.add_column(safe(col), justify="right" if col not in shown else "left", overflow="fold")
    for c in result.configs:
        if several:
            tuned = list(c.tuned_objectives.values())  # in the objectives' order, under their tuning names
            scores = [(_ci(c.objectives[n]) if n in c.objectives else "-")
                      + (f"\n[dim]tuned {tuned[i].mean:.4g}[/]" if i < len(tuned) else "")
                      for i, n in enumerate(result.objectives)]
        else:
            scores = [format(c.tuned, ".4f"), "-" if c.test is None else format(c.test, ".4f")]
        d = c.versus_first
        versus = "-" if d is None else f"{d.diff:+.4f} [{d.low:+.4f}, {d.high:+.4f}], p={d.p_value:.2g}"
        seeds = [] if several else [" ".join(f"{v:.4f}" for v in c.values) or "-"]
        where = [f"{safe(c.study)} #{', '.join(map(str, c.source))}"] if rounds else []
        met = [] if not result.constraints else ["-" if not c.feasible else styled(
            f"kept {sum(c.feasible)}/{len(c.feasible)}" if c.kept else f"broken {len(c.feasible) - sum(c.feasible)}"
            f"/{len(c.feasible)}", "green" if c.kept else "red")]
        table.add_row(str(c.rank), *where, *(fmt(c.params.get(n)) for n in shown), fmt(c.epochs) if c.epochs else "budget",
                      *scores, *met, versus, *seeds)
    return table


def _ci(ci: Any) -> str:
    """A mean and its interval's half-width, short (the seeds are in the title)."""
    return f"{ci.mean:.4g}" if ci.n < 2 else f"{ci.mean:.4g} ± {ci.half:.2g}"


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
