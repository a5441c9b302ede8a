"""``tuneloop check`` and ``tuneloop baseline``: can the model learn at all, and is deep learning needed?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneloop._text import safe
from tuneloop.cli._common import Storage, out
from tuneloop.cli._tables import baselines_table
from tuneloop.errors import TuneloopError

ChecksFile = Annotated[Path, typer.Argument(help="Experiment file that defines checks = tl.Checks(...)")]


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
    """One rung of the ladder as it finishes; a failure with its evidence, likely causes and next step."""
    mark = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}[r.status]
    out.print(f"{mark} {safe(r.name)}: {safe(r.message)} [dim]({r.seconds:.2f}s)[/]", highlight=False)
    if r.status == "fail":
        evidence = {k: v for k, v in r.evidence.items() if k != "traceback"}
        if evidence:
            out.print(f"     evidence: {safe(evidence)}", highlight=False)
        if r.evidence.get("traceback"):
            out.print(safe(r.evidence["traceback"], lines=True), highlight=False)
        for cause in r.causes:
            out.print(f"     likely cause: {safe(cause)}", highlight=False)
        if r.next_step:
            out.print(f"     next step: {safe(r.next_step)}", highlight=False)


def check(file: ChecksFile, storage: Storage = None) -> None:
    """Run the check ladder (layers, loss at init, input dependence, overfit a batch, stages) and
    the baselines; stop at the first failure with its evidence, likely causes and next step."""
    checks = _load_checks(file)
    report = checks.run(storage=storage, on_result=_print_result)
    if report.baselines:
        out.print(baselines_table(report.baselines, report.metric))
    where = f"; stored with study {safe(repr(checks.study.name))}" if checks.study is not None else ""
    if report.passed:
        out.print(f"[green]Every check passed[/] ({len(report.results)}){where}. The model can learn: tune it.")
    else:
        out.print(f"[red]Stopped at {safe(repr(report.failure.name))}[/]{where}. Fix it before tuning.")
        raise typer.Exit(1)


def baseline(file: ChecksFile, storage: Storage = None) -> None:
    """Fit scikit-learn baselines on the experiment's data: is deep learning needed at all?"""
    checks = _load_checks(file)
    out.print(baselines_table(checks.run_baselines(storage=storage), checks.metric))
    if checks.study is not None:
        out.print(f"Stored with study {safe(repr(checks.study.name))}.")


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("baseline")(baseline)
