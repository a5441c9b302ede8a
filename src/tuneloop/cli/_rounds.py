"""``tuneloop refine`` and ``tuneloop rounds``: the chain of tuning rounds of one goal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneloop._text import safe
from tuneloop.cli._common import Storage, StoredExperiment, open_store, out
from tuneloop.cli._tables import rounds_table


def refine_cmd(
    study: Annotated[str, typer.Argument(help="The round to refine")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write \\[default: <goal>_r<N>.py]")] = None,
    file: StoredExperiment = None,
    storage: Storage = None,
) -> None:
    """Propose the next round: an experiment file with the space narrowed (or expanded) and why."""
    from tuneloop.refine import write_next_round
    from tuneloop.rounds import round_info

    store = open_store(storage)
    info = round_info(store.require_study(study))
    path = output or Path(f"{_slug(info.goal)}_r{info.round + 1}.py")
    write_next_round(store, study, path, str(file) if file else None)
    out.print(path.read_text(encoding="utf-8"), highlight=False, markup=False)
    out.print(f"Wrote {safe(path)}: edit it, then tuneloop run {safe(path)} --trials 32")


def _slug(goal: str) -> str:
    """A file name from a stored goal name: letters, digits and _ only, at most 60 (the goal may be
    anything, e.g. ``../x`` or 10,000 characters)."""
    slug = "".join(c if c.isascii() and c.isalnum() else "_" for c in goal)[:60].strip("_")
    return slug or "goal"


def rounds_cmd(
    name: Annotated[str, typer.Argument(help="A study or goal")],
    storage: Storage = None,
) -> None:
    """The rounds of a goal, in order: roles, trials, best value, what the space became."""
    from tuneloop.views import round_rows

    out.print(rounds_table(round_rows(open_store(storage), name)))


def register(app: typer.Typer) -> None:
    app.command("refine")(refine_cmd)
    app.command("rounds")(rounds_cmd)
