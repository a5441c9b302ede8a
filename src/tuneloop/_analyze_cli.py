"""``tuneloop analyze STUDY``: the playbook's diagnostics of a study, each with a recommendation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tuneloop._cli_common import Storage, friendly, open_store, out

_STYLE = {"ok": "green", "info": "cyan", "warn": "yellow", "problem": "red"}


@friendly
def analyze_cmd(
    study: Annotated[str, typer.Argument(help="Study name")],
    output: Annotated[Path | None, typer.Option("--json", help="Also write every finding (with evidence) as JSON")] = None,
    evidence: Annotated[bool, typer.Option("--evidence", help="Print each finding's evidence table too")] = False,
    storage: Storage = None,
) -> None:
    """Check a study the way the tuning playbook asks: importance, bounds, infeasible regions,
    enough trials, training curves, step budget, optimizer budget, the next round."""
    from tuneloop._tables import fmt
    from tuneloop.analysis import analyze

    findings = analyze(open_store(storage), study)
    table = Table(title=f"Analysis of {study}")
    for col in ("check", "verdict", "what it saw", "recommendation"):
        table.add_column(col, overflow="fold")
    for f in findings:
        table.add_row(f.check, f"[{_STYLE[f.verdict]}]{f.verdict}[/]", f.summary, f.recommendation or "-")
    out.print(table)
    if evidence:
        for f in findings:
            if f.evidence:
                t = Table(title=f.check)
                for col in f.evidence[0]:
                    t.add_column(str(col), overflow="fold")
                for row in f.evidence:
                    t.add_row(*(fmt(v) for v in row.values()))
                out.print(t)
    if output is not None:
        output.write_text(json.dumps([f.to_dict() for f in findings], indent=2, default=str))
        out.print(f"Wrote {output}.")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
