"""``tuneloop analyze STUDY``: the playbook's diagnostics of a study, each with a recommendation; and
``tuneloop probe lr|batch``: short runs that measure where training breaks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from tuneloop._text import safe
from tuneloop.cli._common import Executor, MaxRetries, Members, Storage, StudyArg, StudyName, open_store, out
from tuneloop.cli._tables import fmt

_STYLE = {"ok": "green", "info": "cyan", "warn": "yellow", "problem": "red"}
ProbedFile = Annotated[Path, typer.Argument(help="The experiment file (its study must have been run)")]


def analyze_cmd(
    study: StudyArg,
    output: Annotated[Path | None, typer.Option("--json", help="Also write every finding (with evidence) as JSON")] = None,
    evidence: Annotated[bool, typer.Option("--evidence", help="Print each finding's evidence table too")] = False,
    last: Annotated[int | None, typer.Option(min=1, help="Several objectives: read the front's growth over the "
                                                         "last N trials \\[default: the last quarter]")] = None,
    storage: Storage = None,
) -> None:
    """Check a study the way the tuning playbook asks: importance, bounds, infeasible regions,
    enough trials, training curves, step budget, optimizer budget, the next round; with several
    objectives, whether the front still moves and which parameters trade one objective for another;
    with constraints, which one breaks most."""
    from tuneloop.analysis import analyze

    findings = analyze(open_store(storage), study, last=last)
    table = Table(title=f"Analysis of {safe(study)}")
    for col in ("check", "verdict", "what it saw", "recommendation"):
        table.add_column(col, overflow="fold")
    for f in findings:  # summaries quote stored parameter and metric names: text, never markup
        table.add_row(safe(f.check), f"[{_STYLE.get(f.verdict, 'red')}]{safe(f.verdict)}[/]", safe(f.summary),
                      safe(f.recommendation or "-"))
    out.print(table)
    if evidence:
        for f in findings:
            if f.evidence:
                t = Table(title=safe(f.check))
                for col in f.evidence[0]:
                    t.add_column(safe(col), overflow="fold")
                for row in f.evidence:
                    t.add_row(*(fmt(v) for v in row.values()))
                out.print(t)
    if output is not None:
        output.write_text(json.dumps([f.to_dict() for f in findings], indent=2, default=str))
        out.print(f"Wrote {safe(output)}.")


def probe_lr_cmd(
    file: ProbedFile,
    param: Annotated[str, typer.Option(help="The learning-rate parameter's name")] = "lr",
    factors: Annotated[str, typer.Option(help="Multiples of the best rate to try")] = "1,2,4,8,16",
    epochs: Annotated[int | None, typer.Option(help="Epochs per probe run \\[default: the budget, at most 5]")] = None,
    workers: Annotated[int, typer.Option(help="Runs at once")] = 1,
    executor: Executor = None,
    members: Members = None,
    max_retries: MaxRetries = 1,
    study_name: StudyName = None,
    storage: Storage = None,
) -> None:
    """Run the best configuration at 1-16x its learning rate: where does training become unstable?
    Recommends warmup and a gradient-clipping threshold."""
    from tuneloop.experiment import load_study
    from tuneloop.probe import probe_lr

    study = load_study(file, study_name)
    steps = _listed(factors, float, "--factors takes numbers separated by commas, e.g. 1,2,4,8")
    result = probe_lr(study, param=param, factors=steps, epochs=epochs, workers=workers, executor=executor,
                      members=members, max_retries=max_retries, storage=storage)
    table = Table(title=f"Probe of {safe(param)} above {safe(study.name)}'s best ({result.best_lr:.3g}), "
                        f"in {safe(result.probe_study)}")
    for col in ("factor", safe(param), "state", "value", "unstable?"):
        table.add_column(col)
    for r in result.rows:
        table.add_row(f"{r.factor:g}x", f"{r.lr:.3g}", safe(r.state), fmt(r.value), safe(r.unstable or "stable"))
    out.print(table)
    where = f"unstable from {result.unstable_from:g}x" if result.unstable_from else "stable throughout"
    out.print(f"{safe(param)}: {where}.")
    for line in result.advice:
        out.print(f"- {safe(line)}")


def probe_batch_cmd(
    file: ProbedFile,
    param: Annotated[str, typer.Option(help="The batch-size parameter's name")] = "batch_size",
    sizes: Annotated[str, typer.Option(help="Batch sizes to time")] = "16,32,64,128,256,512,1024",
    epochs: Annotated[int, typer.Option(help="Epochs per timing run")] = 1,
    executor: Executor = None,  # runs one at a time whichever it is, so the timings do not compete
    max_retries: MaxRetries = 1,
    study_name: StudyName = None,
    storage: Storage = None,
) -> None:
    """Time the best configuration at growing batch sizes: the largest that still raises throughput."""
    from tuneloop.experiment import load_study
    from tuneloop.probe import probe_batch

    study = load_study(file, study_name)
    steps = _listed(sizes, int, "--sizes takes whole numbers separated by commas, e.g. 32,64,128")
    result = probe_batch(study, param=param, sizes=steps, epochs=epochs, executor=executor, max_retries=max_retries,
                         storage=storage)
    table = Table(title=f"Throughput of {safe(study.name)}'s best configuration by {safe(param)}, "
                        f"in {safe(result.probe_study)}")
    for col in (safe(param), "seconds per run", "speedup vs half", "value"):
        table.add_column(col, justify="right")
    for r in result.rows:
        table.add_row(str(r.batch_size), fmt(r.seconds), "-" if r.speedup is None else f"{r.speedup:.2f}x", fmt(r.value))
    out.print(table)
    for line in result.advice:
        out.print(f"- {safe(line)}")


N = TypeVar("N", int, float)


def _listed(text: str, kind: Callable[[str], N], fix: str) -> list[N]:
    """A comma-separated option as numbers; a one-line BadParameter with ``fix`` otherwise."""
    try:
        return [kind(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(fix) from None


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
    probe_app = typer.Typer(no_args_is_help=True, help="Short runs that measure where training breaks.")
    probe_app.command("lr")(probe_lr_cmd)
    probe_app.command("batch")(probe_batch_cmd)
    app.add_typer(probe_app, name="probe")
