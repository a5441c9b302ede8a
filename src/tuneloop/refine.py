"""``tuneloop refine STUDY``: write the next round as an experiment file a user can edit and run.

The file imports the round it refines (so the trial function is the very same), declares the
proposed space with a comment per parameter saying what changed and why, keeps the roles, and
names the study ``<goal>-r<N+1>``:

    tuneloop refine mlp -o mlp_r2.py && $EDITOR mlp_r2.py && tuneloop run mlp_r2.py --trials 32
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from tuneloop.analysis._refine import Change, refine_space
from tuneloop.errors import ConfigError
from tuneloop.rounds import Roles, round_info, searched_space
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import Store

MIN_TRIALS = 8


def param_code(p: Param, indent: int = 4) -> str:
    """Python source that builds ``p`` (``tl.LogFloat(0.0001, 0.03)``)."""
    if isinstance(p, LogFloat):
        return f"tl.LogFloat({p.low!r}, {p.high!r})"
    if isinstance(p, Float):
        return f"tl.Float({p.low!r}, {p.high!r}" + (f", step={p.step!r})" if p.step is not None else ")")
    if isinstance(p, Int):
        extra = (", log=True" if p.log else "") + (f", step={p.step}" if p.step != 1 else "")
        return f"tl.Int({p.low}, {p.high}{extra})"
    if isinstance(p, Choice):
        if not p.children:
            return f"tl.Choice({list(p.values)!r})"
        pad = " " * (indent + 4)
        items = []
        for i, v in enumerate(p.values):
            child = p.children.get(i)
            body = "{}" if child is None else "{" + ", ".join(
                f"{n!r}: {param_code(c, indent + 4)}" for n, c in child.items()) + "}"
            items.append(f"{pad}{v!r}: {body},")
        return "tl.Choice({\n" + "\n".join(items) + "\n" + " " * indent + "})"
    raise ConfigError(f"Cannot write {p!r} as code.")


def next_round_source(store: Store, name: str, experiment: str, out_path: Path) -> str:
    """The text of the next round's experiment file for stored study ``name``."""
    record = store.require_study(name)
    trials = store.trials(record.id)
    done = [t for t in trials if t.state == "completed"]
    if len(done) < MIN_TRIALS:
        raise ConfigError(f"Study {name!r} has {len(done)} completed trials; refining a space from fewer than "
                          f"{MIN_TRIALS} says more about luck than about the space. Run more first.")
    info = round_info(record)
    space = searched_space(record.space, info.roles)
    new_space, changes = refine_space(space, trials, record.mode, keep=info.roles.scientific)
    relative = os.path.relpath(Path(experiment).resolve(), out_path.resolve().parent)
    by_name = {c.name: c for c in changes}
    lines = [
        (f'"""Round {info.round + 1} of goal {info.goal!r}, proposed by `tuneloop refine {name}` on '
         f'{datetime.date.today().isoformat()}'),
        f"from {len(done)} completed trials of round {info.round} ({name}, {record.mode} {record.metric}).",
        "",
        "Edit the ranges, roles or searcher, then run it:",
        "",
        f"    tuneloop run {out_path.name} --trials 32",
        '"""',
        "",
        "from pathlib import Path",
        "",
        "import tuneloop as tl",
        "from tuneloop.experiment import load_study",
        "",
        f"previous = load_study(Path(__file__).parent / {relative!r}, {name!r})",
        "",
        "space = tl.Space(",
    ]
    for pname, p in new_space.items():
        lines.extend(_comment(by_name[pname], changes, p))
        lines.append(f"    {pname}={param_code(p)},")
    lines.append(")")
    lines.append("")
    lines.extend(_roles_code(info.roles, new_space))
    return "\n".join(lines) + "\n"


def _comment(change: Change, changes: list[Change], p: Param) -> list[str]:
    out = [f"    # {change.name}: {change.reason}"]
    if isinstance(p, Choice):
        for c in changes:
            if any(c.name in child for child in p.children.values()):
                out.append(f"    #   {c.name}: {c.reason}")
    return out


def _roles_code(roles: Roles, space: Space) -> list[str]:
    args = ["space"]
    scientific = [n for n in roles.scientific if n in space]
    if scientific:
        args.append(f"scientific={scientific!r}")
    if roles.fixed:
        args.append(f"fixed={roles.fixed!r}")
    searcher = '"sobol"' if scientific else '"tpe"'
    args.append(f"searcher={searcher}")
    note = ("# scientific values each get their own search over the nuisance parameters; quasi-random explores"
            if scientific else "# no scientific parameter left: this round optimizes, so a model-based searcher")
    return [note, f"study = previous.next_round({', '.join(args)})"]


def write_next_round(store: Store, name: str, out_path: Path, experiment: str | None = None) -> Path:
    """Write the next round's experiment file for ``name``; return its path."""
    record = store.require_study(name)
    experiment = experiment or record.config.get("experiment")
    if not experiment:
        raise ConfigError(f"Study {name!r} was not run from an experiment file, so the next round cannot import "
                          f"its trial function; pass --file EXPERIMENT.py.")
    if out_path.exists():
        raise ConfigError(f"{out_path} exists; pass another -o, or delete it to propose again.")
    text = next_round_source(store, name, experiment, out_path)
    out_path.write_text(text)
    return out_path
