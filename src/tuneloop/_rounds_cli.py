"""``tuneloop refine`` and ``tuneloop rounds``: the chain of tuning rounds of one goal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneloop._cli_common import Storage, friendly, open_store, out


@friendly
def refine_cmd(
    study: Annotated[str, typer.Argument(help="The round to refine")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write [default: <goal>_r<N>.py]")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="The experiment file [default: the one the study ran]")] = None,
    storage: Storage = None,
) -> None:
    """Propose the next round: an experiment file with the space narrowed (or expanded) and why."""
    from tuneloop.refine import write_next_round
    from tuneloop.rounds import round_info

    store = open_store(storage)
    info = round_info(store.require_study(study))
    path = output or Path(f"{info.goal.replace('-', '_').replace('/', '_')}_r{info.round + 1}.py")
    write_next_round(store, study, path, str(file) if file else None)
    out.print(path.read_text(), highlight=False, markup=False)
    out.print(f"Wrote {path}: edit it, then tuneloop run {path} --trials 32")


@friendly
def rounds_cmd(
    name: Annotated[str, typer.Argument(help="A study or goal")],
    storage: Storage = None,
) -> None:
    """The rounds of a goal, in order: roles, trials, best value, what the space became."""
    from tuneloop._tables import rounds_table
    from tuneloop.rounds import chain

    store = open_store(storage)
    out.print(rounds_table(store, chain(store, name)))


def register(app: typer.Typer) -> None:
    app.command("refine")(refine_cmd)
    app.command("rounds")(rounds_cmd)
