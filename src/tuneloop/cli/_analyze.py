"""``tuneloop analyze STUDY``: the playbook's diagnostics of a study, each with a recommendation; and
``tuneloop probe lr|batch|data``: runs of the best configuration that measure where training breaks and
what more data would buy."""

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


def probe_data_cmd(
    file: ProbedFile,
    fractions: Annotated[str, typer.Option(help="Shares of the training split to retrain on")] = "0.1,0.2,0.4,0.7,1.0",
    seeds: Annotated[int, typer.Option(min=1, help="Data seeds per fraction (each a different subset and training seed)")] = 3,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs on the whole split \\[default: the budget]")] = None,
    same_epochs: Annotated[bool, typer.Option("--same-epochs", help="Train every subset for the same epochs "
                                              "(default: the same steps, epochs / fraction, at most 10x)")] = False,
    top: Annotated[int, typer.Option(min=1, help="Slices to show, most gain per example first")] = 10,
    workers: Annotated[int, typer.Option(help="Runs at once")] = 1,
    executor: Executor = None,
    members: Members = None,
    max_retries: MaxRetries = 1,
    study_name: StudyName = None,
    storage: Storage = None,
) -> None:
    """Retrain the best configuration on nested subsets of the training split: how the error falls
    with more data (a power law per slice) and which slices gain most per extra example."""
    from tuneloop.experiment import load_study
    from tuneloop.probe import probe_data

    study = load_study(file, study_name)
    steps = _listed(fractions, float, "--fractions takes numbers in (0, 1] separated by commas, e.g. 0.1,0.2,0.4,1")
    result = probe_data(study, fractions=steps, seeds=seeds, epochs=epochs, same_steps=not same_epochs,
                        workers=workers, executor=executor, members=members, max_retries=max_retries, storage=storage)
    if result.unreadable:
        out.print(f"The data probe {safe(result.probe_study)} is unreadable ({safe(result.unreadable)}): delete it or "
                  "probe under a new study.")
        return
    size = "examples" if result.counted else "fraction"
    table = Table(title=f"More data for {safe(study.name)}'s best configuration, in {safe(result.probe_study)}: "
                        f"error = a * n^-b, forecasts with 95% intervals")
    per = "gain per example" if result.counted else "gain per split"  # uncounted: per the slice's share of the data
    for col in ("slice", size, "b", "error now", "error at 2x", "gain at 2x", "gain at 10x", per):
        table.add_column(col, justify="left" if col == "slice" else "right")
    shown = [law for law in (result.overall, *result.slices[:top]) if law is not None]
    for law in shown:
        two, ten = law.at(2.0), law.at(10.0)
        spec = "+.1f" if law.unit == "points" else "+.3g"
        count = "1" if not result.counted else f"{law.examples:,.0f}" if law.count_known else "count unknown"
        table.add_row(safe(law.slice), count, _range(law.b, law.b_low, law.b_high) if law.fitted else "-",
                      f"{law.error_now:.3g}", "-" if two is None else _range(two.error, two.low, two.high, ".3g"),
                      "-" if two is None else _range(two.gain, two.gain_low, two.gain_high, spec),
                      "-" if ten is None else _range(ten.gain, ten.gain_low, ten.gain_high, spec),
                      "-" if law.gain_per_example is None else f"{law.gain_per_example:.2g}")
    out.print(table)
    if len(result.slices) > top:
        out.print(f"({len(result.slices) - top} more slices: --top {len(result.slices)} shows them all)")
    if result.note:
        out.print(f"No overall curve: {safe(result.note)}.")
    overall = result.overall.unit if result.overall is not None else "points"
    units = "points" if overall == "points" else f"{safe(overall)} overall, accuracy points per slice"
    flat = "; '-': measured at one size, no curve" if any(not law.fitted for law in shown) else ""
    out.print(f"Gains in {units}; n: training examples{'' if result.counted else ' as a fraction of the split'}{flat}.")
    for line in result.advice:
        out.print(f"- {safe(line)}")


def _range(value: float, low: float | None, high: float | None, spec: str = ".2f") -> str:
    """``value [low, high]`` (the value alone when no interval was fitted)."""
    if low is None or high is None or low == high:
        return format(value, spec)
    return f"{format(value, spec)} \\[{format(low, spec)}, {format(high, spec)}]"


N = TypeVar("N", int, float)


def _listed(text: str, kind: Callable[[str], N], fix: str) -> list[N]:
    """A comma-separated option as numbers; a one-line BadParameter with ``fix`` otherwise."""
    try:
        return [kind(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(fix) from None


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
    probe_app = typer.Typer(no_args_is_help=True, help="Runs of the best configuration: where training breaks, "
                                                       "what more data would buy.")
    probe_app.command("lr")(probe_lr_cmd)
    probe_app.command("batch")(probe_batch_cmd)
    probe_app.command("data")(probe_data_cmd)
    app.add_typer(probe_app, name="probe")
