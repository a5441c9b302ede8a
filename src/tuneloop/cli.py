"""The ``tuneloop`` command: demo, run, status, trials, best, show, export, ui, report, check, baseline,
finalize, ensemble, refine, rounds, analyze, idea."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuneloop._cli_common import Storage, err, missing_database, out
from tuneloop._cli_common import friendly as _friendly
from tuneloop._cli_common import open_store as _store
from tuneloop.errors import ConfigError, TuneloopError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="tuneloop: the deep-learning optimization loop, systematic and fast.")


@app.command()
@_friendly
def run(
    file: Annotated[Path, typer.Argument(help="Experiment file that defines a tl.Study")],
    trials: Annotated[int | None, typer.Option("--trials", "-n", help="Total finished trials the study should reach")] = None,
    searcher: Annotated[str | None, typer.Option(help="grid, random, sobol, tpe, gp or cmaes [default: the study's]")] = None,
    scheduler: Annotated[str | None, typer.Option(help="none, median, asha, hyperband, sha or pbt [default: the study's]")] = None,
    workers: Annotated[int | None, typer.Option(help="Trials at once [default: the study's, 1]")] = None,
    executor: Annotated[str | None, typer.Option(help="inline, processes, population or ray [default: processes when workers > 1]")] = None,
    members: Annotated[int | None, typer.Option(help="Population executor: trials trained together [default: 64]")] = None,
    max_retries: Annotated[int, typer.Option(help="Runs of a trial again when its worker process dies")] = 1,
    address: Annotated[str | None, typer.Option(help="Ray cluster for --executor ray or population (auto, host:6379, ray://host:10001; local starts one)")] = None,
    cpus_per_trial: Annotated[float, typer.Option(help="Ray: CPUs each trial (each population bucket) reserves")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(help="Ray: GPUs each trial (each population bucket) reserves; 0.25 packs four on one")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the searcher and the trials' seeds")] = None,
    seeds: Annotated[int | None, typer.Option(help="Run each configuration over this many seeds")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop launching trials after this many seconds")] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Which study, if the file defines several")] = None,
    storage: Storage = None,
) -> None:
    """Run (or resume) the study an experiment file defines."""
    from tuneloop.experiment import load_study

    study = load_study(file, study_name)
    if executor == "ray":
        executor = {"name": "ray", "address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial}
    elif executor == "population" and address is not None:  # each bucket a Ray task with these resources
        executor = {"name": "population", "members": members or 64, "address": address,
                    "cpus_per_bucket": cpus_per_trial, "gpus_per_bucket": gpus_per_trial}
        members = None
    elif address is not None or cpus_per_trial != 1.0 or gpus_per_trial != 0.0:
        raise ConfigError("--address, --cpus-per-trial and --gpus-per-trial are for --executor ray (per trial) or "
                          "--executor population (per bucket, with --address).")
    summary = study.run(trials, searcher=searcher, scheduler=scheduler, workers=workers, executor=executor,
                        members=members, max_retries=max_retries, seed=seed, seeds=seeds, timeout=timeout, storage=storage, progress=True)
    if summary.reason == "nothing to do":
        out.print(f"Study {study.name!r} already has {summary.finished_total} finished trials; "
                  f"pass a larger --trials to add more.")
        return
    outcomes = ", ".join(f"{n} {s}" for s, n in sorted(summary.outcomes.items())) or "none"
    out.print(f"Ran {summary.launched} trials in {summary.elapsed:.1f}s ({outcomes}); "
              f"{summary.finished_total} finished in total ({summary.reason}).")
    _print_best(study.trials, study.metric, study.mode, study.name)


def _print_best(trials: Any, metric: str, mode: str, name: str) -> None:
    from tuneloop._tables import trial_detail
    from tuneloop.study import best_trial

    try:
        best = best_trial(trials, mode, name)
    except TuneloopError as exc:
        err.print(f"[yellow]{exc}[/]")
        return
    out.print(f"[bold]Best trial of {name}[/] ({mode} {metric}):")
    out.print(trial_detail(best, metric))


@app.command()
@_friendly
def status(storage: Storage = None) -> None:
    """List the studies in a store: trials by state, best value, last activity."""
    from tuneloop._tables import studies_table

    missing = missing_database(storage)
    if missing:
        out.print(missing)  # no database yet is a status, not an error
        return
    store = _store(storage)
    summaries = store.studies()
    if not summaries:
        out.print(f"No studies in {store.url} yet; start one with: tuneloop demo, or tuneloop run FILE.")
        return
    out.print(studies_table(summaries, store.url))


@app.command("trials")
@_friendly
def trials_cmd(
    study: Annotated[str, typer.Argument(help="Study name")],
    state: Annotated[str | None, typer.Option(help="Only trials in this state")] = None,
    sort: Annotated[str, typer.Option(help="number or value (best first)")] = "number",
    limit: Annotated[int | None, typer.Option(help="Show at most this many")] = None,
    storage: Storage = None,
) -> None:
    """List a study's trials."""
    from tuneloop._tables import trials_table
    from tuneloop._validation import check_one_of

    from tuneloop.store import TrialState

    check_one_of(sort, ["number", "value"], "--sort", "tuneloop trials")
    if state is not None:
        check_one_of(state, [s.value for s in TrialState], "--state", "tuneloop trials")
    store = _store(storage)
    record = store.require_study(study)
    rows = store.trials(record.id, states=[state] if state else None)
    if sort == "value":
        # completed trials first (their values are final), best first; then the rest
        sign = -1 if record.mode == "max" else 1
        rows = sorted(rows, key=lambda t: (t.state != "completed", t.value is None, sign * (t.value or 0.0)))
    out.print(trials_table(rows[:limit] if limit else rows, record.metric, f"Trials of {study} ({len(rows)})"))


@app.command()
@_friendly
def best(
    study: Annotated[str, typer.Argument(help="Study name")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the best trial as JSON")] = False,
    storage: Storage = None,
) -> None:
    """Show a study's best trial: its value, parameters and seed."""
    import json

    from tuneloop.export import strict_json
    from tuneloop.study import best_trial

    store = _store(storage)
    record = store.require_study(study)
    trials = store.trials(record.id)
    if as_json:
        b = best_trial(trials, record.mode, study)
        print(json.dumps(strict_json({"number": b.number, "value": b.value, "params": b.params, "seed": b.seed,
                                 "values": b.values}), indent=2))
        return
    best_trial(trials, record.mode, study)  # raises the clear error when there is none
    _print_best(trials, record.metric, record.mode, study)


@app.command()
@_friendly
def show(
    study: Annotated[str, typer.Argument(help="Study name")],
    trial: Annotated[int, typer.Argument(help="Trial number")],
    storage: Storage = None,
) -> None:
    """Everything about one trial: final metrics, curves, alerts, slices, samples, histograms."""
    from tuneloop import _tables as tables
    from tuneloop.analysis import direction_of, summarize_curve

    store = _store(storage)
    record = store.require_study(study)
    t = store.trial(record.id, trial)
    duration = "-" if t.duration is None else f"{t.duration:.1f}s"
    out.print(f"[bold]Trial {t.number} of {study}[/]: {t.state}, {record.metric} = {tables.fmt(t.value)}, "
              f"{duration}, attempt {t.attempt}")
    lineage = store.lineage(record.id).get(t.id)
    if lineage:  # continued by sha or pbt from another trial's checkpoint
        source = "" if lineage["parent"] is None else f" from trial {lineage['parent']}"
        out.print(f"member {lineage['member']}, generation {lineage['generation']}: {lineage['event']}{source}")
    out.print(tables.trial_detail(t, record.metric))
    curves = store.series([t.id])[t.id]
    if curves:
        # the objective first, then the other epoch metrics, then per-step values and diagnostics
        order = sorted(curves, key=lambda n: (n != record.metric, "/" in n or n.startswith(("init_", "grad_"))))
        out.print(tables.curves_table([summarize_curve(name, curves[name], direction_of(name, record.metric,
                                                                                          record.mode))
                                       for name in order]))
    for rows, render in ((store.alerts(t.id, t.attempt), tables.alerts_table),
                         (store.slices(t.id, t.attempt), tables.slices_table),
                         (store.histograms(t.id, t.attempt), tables.histograms_table)):
        if rows:
            out.print(render(rows))
    samples = store.samples(t.id, t.attempt)
    if samples:
        out.print(tables.samples_table(samples, store.artifact_dir))
        for s in samples:
            if s.kind == "table" and 0 < len(s.payload) <= 20:
                out.print(tables.sample_table(s))
    if t.error:
        out.print(f"[red]Error[/]: {t.error}", highlight=False)


@app.command()
@_friendly
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on; anything but loopback needs --token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8080,
    token: Annotated[str | None, typer.Option(help="Secret every request must carry (?token=...)")] = None,
    storage: Storage = None,
) -> None:
    """Serve the dashboard: studies, trials, plots, live while studies run."""
    import uvicorn

    from tuneloop.dashboard import create_app

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise TuneloopError(f"--host {host} exposes the dashboard beyond this machine: add --token SECRET "
                            f"(every request must then carry it), or keep the default --host 127.0.0.1.")
    app_ = create_app(storage, token=token)
    url = f"http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port}/" + (f"?token={token}" if token else "")
    out.print(f"Dashboard of {app_.state.store.url} at [bold]{url}[/] (Ctrl-C to stop)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command()
@_friendly
def report(
    study: Annotated[str, typer.Argument(help="Study name")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write")] = Path("report.html"),
    storage: Storage = None,
) -> None:
    """Write one self-contained HTML file of a study and its best trial (plots and images inside)."""
    from tuneloop.report import write_report

    path = write_report(_store(storage), study, output)
    out.print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in any browser, no server needed.")


def _load_checks(file: Path) -> Any:
    """The tl.Checks an experiment file defines (attached to its study, when it has one)."""
    from tuneloop.checks import Checks
    from tuneloop.experiment import load_module, load_study
    from tuneloop.study import Study

    module = load_module(file)
    found = [v for v in vars(module).values() if isinstance(v, Checks)]
    if not found:
        raise TuneloopError(f"{file} defines no checks: add checks = tl.Checks(lambda: Model(...), data=..., "
                            f"fit={{'lr': ...}}) at top level.")
    checks = found[0]
    if checks.study is None and any(isinstance(v, Study) for v in vars(module).values()):
        checks.study = load_study(file)
    return checks


def _print_result(r: Any) -> None:
    mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}[r.status]
    out.print(f"{mark} {r.name}: {r.message} [dim]({r.seconds:.2f}s)[/]", highlight=False)
    if r.status == "fail":
        evidence = {k: v for k, v in r.evidence.items() if k != "traceback"}
        if evidence:
            out.print(f"     evidence: {evidence}", highlight=False)
        if r.evidence.get("traceback"):
            out.print(r.evidence["traceback"], highlight=False, markup=False)
        for cause in r.causes:
            out.print(f"     likely cause: {cause}", highlight=False)
        if r.next_step:
            out.print(f"     next step: {r.next_step}", highlight=False)


def _print_baselines(scores: dict[str, float], metric: str) -> None:
    from tuneloop._tables import fmt

    table = Table(title=f"Baselines ({metric} on the validation split)")
    table.add_column("model")
    table.add_column(metric, justify="right")
    for name, score in scores.items():
        table.add_row(name, fmt(score))
    out.print(table)


@app.command()
@_friendly
def check(
    file: Annotated[Path, typer.Argument(help="Experiment file that defines checks = tl.Checks(...)")],
    storage: Storage = None,
) -> None:
    """Run the check ladder (layers, loss at init, input dependence, overfit a batch, stages) and
    the baselines; stop at the first failure with its evidence, likely causes and next step."""
    checks = _load_checks(file)
    report = checks.run(storage=storage, on_result=_print_result)
    if report.baselines:
        _print_baselines(report.baselines, report.metric)
    where = f"; stored with study {checks.study.name!r}" if checks.study is not None else ""
    if report.passed:
        out.print(f"[green]Every check passed[/] ({len(report.results)}){where}. The model can learn: tune it.")
    else:
        out.print(f"[red]Stopped at {report.failure.name!r}[/]{where}. Fix it before tuning.")
        raise typer.Exit(1)


@app.command()
@_friendly
def baseline(
    file: Annotated[Path, typer.Argument(help="Experiment file that defines checks = tl.Checks(...)")],
    storage: Storage = None,
) -> None:
    """Fit scikit-learn baselines on the experiment's data: is deep learning needed at all?"""
    checks = _load_checks(file)
    _print_baselines(checks.run_baselines(storage=storage), checks.metric)
    if checks.study is not None:
        out.print(f"Stored with study {checks.study.name!r}.")


@app.command()
@_friendly
def export(
    study: Annotated[str, typer.Argument(help="Study name")],
    format: Annotated[str, typer.Option("--format", "-f", help="json or csv")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")] = None,
    storage: Storage = None,
) -> None:
    """Export a study (space, trials, metric series) as JSON or CSV; see docs/export.md."""
    from tuneloop._validation import check_one_of
    from tuneloop.export import study_data, to_csv, to_json

    check_one_of(format, ["json", "csv"], "--format", "tuneloop export")
    data = study_data(_store(storage), study, with_metrics=format == "json")
    text = to_json(data) if format == "json" else to_csv(data)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text)
        err.print(f"Wrote {len(data['trials'])} trials to {output}")


@app.command()
@_friendly
def demo(
    minutes: Annotated[float, typer.Option(help="How long to tune")] = 2.0,
    workers: Annotated[int, typer.Option(help="Trials at once")] = 2,
    epochs: Annotated[int, typer.Option(help="Epochs per trial (the budget ASHA divides)")] = 40,
    seed: Annotated[int | None, typer.Option(help="Seed of the study (recorded at its first run)")] = None,
    storage: Storage = None,
) -> None:
    """Tune an MLP on MNIST-1D (generated offline) for a few minutes, then finalize the best one."""
    from tuneloop import Budget
    from tuneloop import demo as d

    d.study.budget = Budget(epochs=epochs)

    out.print(f"Tuning an MLP on MNIST-1D for {minutes:g} min with {workers} workers "
              f"(tpe searcher, asha scheduler); data generated offline.")
    d.study.run(timeout=minutes * 60, workers=workers, seed=seed, storage=storage, progress=True)
    trials = d.study.trials
    best_record = d.study.best
    _print_best(trials, d.study.metric, d.study.mode, d.study.name)
    out.print("Finalizing: the best configuration retrained over 3 seeds, each measured once on the test split...")
    try:
        final = d.study.finalize(top=1, seeds=3, workers=workers, storage=storage, progress=True)
    except ConfigError:  # the demo ran again and found a new best: a new look at test, recorded as one
        final = d.study.finalize(top=1, seeds=3, workers=workers, storage=storage, again=True, progress=True)
    test = final.configs[0].test
    table = Table(title="MNIST-1D test accuracy")
    table.add_column("model")
    table.add_column("test accuracy", justify="right")
    shown = "-" if test is None else f"{test.mean:.1%} ± {test.half:.1%} ({test.n} seeds)"
    table.add_row(f"[bold]this run: tuned MLP (trial {best_record.number})[/]", f"[bold]{shown}[/]")
    for name, acc in d.REFERENCE.items():
        table.add_row(f"paper: {name}", f"{acc:.0%}")
    out.print(table)
    done = sum(t.state in ("completed", "pruned") for t in trials)
    out.print(f"{done} trials stored in {_store(storage, must_exist=False).url}. Next: tuneloop status, tuneloop trials {d.study.name} "
              f"--sort value, tuneloop export {d.study.name}.")


def _register_subcommands() -> None:
    from tuneloop import _analyze_cli, _finalize_cli, _rounds_cli
    from tuneloop._idea_cli import idea_app

    _finalize_cli.register(app)
    _rounds_cli.register(app)
    _analyze_cli.register(app)

    for command in idea_app.registered_commands:  # every idea command says tuneloop's errors in one line
        command.callback = _friendly(command.callback)
    app.add_typer(idea_app, name="idea")


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    app()
if __name__ == "__main__":  # python -m tuneloop.cli
    app()
