"""``tuneloop run`` and ``tuneloop demo``: commands that tune."""

from __future__ import annotations

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
    StudyName,
    TrialsPerGpu,
    out,
    plugin,
    print_best,
)
from tuneloop.errors import ConfigError


def run(
    file: Annotated[Path, typer.Argument(help="Experiment file that defines a tl.Study")],
    trials: Annotated[int | None, typer.Option("--trials", "-n", help="Total finished trials the study should reach")] = None,
    searcher: Annotated[str | None, typer.Option(help="grid, random, sobol, tpe, fasttpe, gp, cmaes, nsga2 or nsga3, options after a colon (tpe:n_startup_trials=5) \\[default: the study's]")] = None,
    scheduler: Annotated[str | None, typer.Option(help="none, median, asha, hyperband, forecast, sha or pbt, options after a colon (forecast:confidence=0.9,k=5) \\[default: the study's]")] = None,
    workers: Annotated[int | None, typer.Option(help="Trials at once \\[default: the study's; one per GPU on a machine with several]")] = None,
    gpus: Gpus = None,
    trials_per_gpu: TrialsPerGpu = None,
    executor: Executor = None,
    members: Members = None,
    max_retries: MaxRetries = 1,
    address: Annotated[str | None, typer.Option(help="Ray cluster for --executor ray or population (auto, host:6379, ray://host:10001; local starts one)")] = None,
    cpus_per_trial: Annotated[float, typer.Option(help="Ray: CPUs each trial (each population bucket) reserves")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(help="Ray: GPUs each trial (each population bucket) reserves; 0.25 packs four on one")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the searcher and the trials' seeds")] = None,
    seeds: Annotated[int | None, typer.Option(help="Run each configuration over this many seeds")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop launching trials after this many seconds")] = None,
    study_name: StudyName = None,
    storage: Storage = None,
    mirror: Annotated[list[str] | None, typer.Option(help="Mirror each trial to a tracker (repeatable): tensorboard=FOLDER, mlflow=TRACKING_URI or wandb=PROJECT")] = None,
) -> None:
    """Run (or resume) the study an experiment file defines."""
    from tuneloop.experiment import load_study
    from tuneloop.run._gpus import parse_gpus

    pinned = None if gpus is None else parse_gpus(gpus)  # a bad --gpus fails before the file is imported
    from tuneloop.trackers import from_option

    mirrors = [from_option(m) for m in mirror or ()]  # so do a bad --mirror and a tracker not installed

    study = load_study(file, study_name)
    spec: str | dict[str, object] | None = executor
    if executor == "ray":
        spec = {"name": "ray", "address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial}
    elif executor == "population" and address is not None:  # each bucket a Ray task with these resources
        spec = {"name": "population", "members": members or 64, "address": address,
                "cpus_per_bucket": cpus_per_trial, "gpus_per_bucket": gpus_per_trial}
        members = None
    elif address is not None or cpus_per_trial != 1.0 or gpus_per_trial != 0.0:
        raise ConfigError("--address, --cpus-per-trial and --gpus-per-trial are for --executor ray (per trial) or "
                          "--executor population (per bucket, with --address).")
    searcher_spec, scheduler_spec = plugin(searcher, "searcher"), plugin(scheduler, "scheduler")
    _say_objectives(study, scheduler_spec)
    summary = study.run(trials, searcher=searcher_spec, scheduler=scheduler_spec, workers=workers, executor=spec,
                        gpus=pinned, trials_per_gpu=trials_per_gpu,
                        members=members, max_retries=max_retries, seed=seed, seeds=seeds, timeout=timeout,
                        storage=storage, progress=True, callbacks=mirrors)
    if summary.reason == "nothing to do":
        out.print(f"Study {safe(repr(study.name))} already has {summary.finished_total} finished trials; "
                  f"pass a larger --trials to add more.")
        _left_alone(summary.elsewhere)
        return
    if study.warm_note:  # priors: what the searcher learned from earlier studies, not trials of this one
        out.print(safe(study.warm_note))
    outcomes = ", ".join(f"{n} {s}" for s, n in sorted(summary.outcomes.items())) or "none"
    out.print(f"Ran {summary.launched} trials in {summary.elapsed:.1f}s ({outcomes}); "
              f"{summary.finished_total} finished in total ({summary.reason}).")
    print_best(study.trials, study.objectives, study.name)
    _left_alone(summary.elsewhere)


def _say_objectives(study: Any, scheduler: Any) -> None:
    """With several objectives or constraints, one line saying them; with several objectives and a
    scheduler, which metric (or weighted sum) it judges trials on."""
    from tuneloop.cli._fronts import judge_line, summary

    objectives = study.objectives
    if objectives.multi or objectives.constraints:
        out.print(f"Objectives: {summary(objectives)}", highlight=False)
    line = judge_line(objectives, scheduler if scheduler is not None else study.defaults["scheduler"])
    if line:
        out.print(line, highlight=False)


def _left_alone(elsewhere: int) -> None:
    """Say so when another live driver of the study runs some of its trials (this run never touched them)."""
    if elsewhere:
        many = elsewhere != 1
        out.print(f"{elsewhere} trial{'s are' if many else ' is'} running under another live driver; "
                  f"{'they were' if many else 'it was'} left alone.")


def demo(
    minutes: Annotated[float, typer.Option(help="How long to tune")] = 2.0,
    executor: Annotated[str, typer.Option(help="population: trials trained together as one vectorized model; "
                                          "processes: one trial per worker process")] = "population",
    members: Annotated[int, typer.Option(help="Population executor: trials trained together")] = 32,
    workers: Annotated[int, typer.Option(help="Processes executor: trials at once")] = 2,
    epochs: Annotated[int, typer.Option(help="Epochs per trial (the budget ASHA divides)")] = 40,
    seed: Annotated[int | None, typer.Option(help="Seed of the study (recorded at its first run)")] = None,
    storage: Storage = None,
) -> None:
    """Tune an MLP on MNIST-1D (generated offline) for a few minutes, re-rank the best few over
    seeds, then finalize the winner: retrained over 5 seeds, each run tested once."""
    from tuneloop import Budget
    from tuneloop import demo as d
    from tuneloop.finalize import AlreadyFinalizedError
    from tuneloop.store import TrialState, resolve_url

    if executor not in ("population", "processes"):
        raise ConfigError(f"tuneloop demo: --executor takes population or processes, not {executor!r}.")
    d.study.budget = Budget(epochs=epochs)
    how = (f"the population executor ({members} trials trained together as one vectorized model)"
           if executor == "population" else f"{workers} worker processes")
    out.print(f"Tuning an MLP on MNIST-1D for about {minutes:g} min on {how}, with the tpe searcher and the asha "
              f"scheduler; data generated offline.")
    options: dict[str, Any] = ({"executor": "population", "members": members} if executor == "population"
                               else {"executor": "processes", "workers": workers})
    d.study.run(timeout=minutes * 60, seed=seed, storage=storage, progress=True, **options)
    trials = d.study.trials
    print_best(trials, d.study.objectives, d.study.name)
    out.print(f"Re-ranking the best {d.RERANK} over {d.RERANK_SEEDS} seeds on validation (one seed flatters the "
              f"luckiest), then finalizing the winner: retrained on train+val over {d.FINAL_SEEDS} seeds, each run "
              f"measured once on the test split...")
    final_options = {"top": 1, "seeds": d.FINAL_SEEDS, "rerank": d.RERANK, "rerank_seeds": d.RERANK_SEEDS,
                     "fit_on": "train+val", "storage": storage, "progress": True, **options}
    try:
        final = d.study.finalize(**final_options)
    except AlreadyFinalizedError:  # the demo ran again and tuned further: a new look at test, recorded as one
        final = d.study.finalize(**final_options, again=True)
    chosen = final.configs[0]
    test = chosen.test
    table = Table(title="MNIST-1D test accuracy")
    table.add_column("model")
    table.add_column("test accuracy", justify="right")
    shown = "-" if test is None else f"{test.mean:.1%} ± {test.half:.1%} ({test.n} seeds)"
    first = safe(str(chosen.source[0])) if chosen.source else "-"
    table.add_row(f"[bold]this run: tuned MLP (trial {first})[/]", f"[bold]{shown}[/]")
    for name, acc in d.REFERENCE.items():
        table.add_row(f"paper: {name}", f"{acc:.0%}")
    out.print(table)
    out.print(f"Chosen by its validation accuracy over {chosen.tuned.n} seeds ({chosen.tuned.mean:.1%}: trial {first} "
              f"and its re-runs in {safe(d.study.name)}-rerank), then retrained on train+val.")
    if test is not None and test.n > 1:
        paper = d.REFERENCE["MLP"]
        verdict = ("lies above" if test.low > paper else "lies below" if test.high < paper else "includes")
        out.print(f"The 95% interval [{test.low:.1%}, {test.high:.1%}] {verdict} the paper's MLP ({paper:.0%}).")
    trials = d.study.trials
    done = sum(t.state in (TrialState.COMPLETED, TrialState.PRUNED) for t in trials)
    out.print(f"{done} trials stored in {safe(resolve_url(storage))}. Next: tuneloop status, tuneloop trials "
              f"{d.study.name} --sort value, tuneloop export {d.study.name}.")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
