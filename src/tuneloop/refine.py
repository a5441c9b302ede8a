"""``tuneloop refine STUDY``: write the next round as an experiment file a user can edit and run.

The file imports the round it refines (so the trial function is the very same), declares the
proposed space with a comment per parameter saying what changed and why, keeps the roles, and
names the study ``<goal>-r<N+1>``:

    tuneloop refine mlp -o mlp_r2.py && $EDITOR mlp_r2.py && tuneloop run mlp_r2.py --trials 32
"""

from __future__ import annotations

import datetime
import keyword
import math
import os
import shlex
import unicodedata
from pathlib import Path
from typing import Any

from tuneloop.analysis._refine import Change, refine_space
from tuneloop.errors import ConfigError
from tuneloop.rounds import Roles, round_info, searched_space
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import Store, TrialState

MIN_TRIALS = 8


def literal(value: Any) -> str:
    """Python source for a stored value (str, number, bool, None, or lists and dicts of them): a
    literal that evaluates back to it, never code, whatever the strings hold (the database that
    named them may be someone else's). NaN and the infinities become ``float('nan')`` and so on."""
    if value is None or type(value) is bool:
        return repr(value)
    if type(value) is str:
        return str.__repr__(value)  # escapes quotes, backslashes, line breaks and other non-printables
    if type(value) is int:
        try:
            return int.__repr__(value)
        except ValueError:  # past Python's int-to-text digit limit
            return hex(value)
    if type(value) is float:
        return float.__repr__(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"Cannot write a {type(value).__name__} into the next round's file; only text, numbers, "
                      f"booleans, None, lists and dicts are stored values.")


def keyword_safe(name: str) -> bool:
    """Whether ``name`` can be written as a keyword argument and read back unchanged (not a keyword,
    not changed by the NFKC normalization Python applies to identifiers)."""
    return name.isidentifier() and not keyword.iskeyword(name) and unicodedata.normalize("NFKC", name) == name


def param_code(p: Param, indent: int = 4) -> str:
    """Python source that builds ``p`` (``tl.LogFloat(0.0001, 0.03)``); every value a literal."""
    if isinstance(p, LogFloat):
        return f"tl.LogFloat({literal(p.low)}, {literal(p.high)})"
    if isinstance(p, Float):
        step = f", step={literal(p.step)}" if p.step is not None else ""
        return f"tl.Float({literal(p.low)}, {literal(p.high)}{step})"
    if isinstance(p, Int):
        extra = (", log=True" if p.log else "") + (f", step={literal(p.step)}" if p.step != 1 else "")
        return f"tl.Int({literal(p.low)}, {literal(p.high)}{extra})"
    if isinstance(p, Choice):
        if not p.children:
            return f"tl.Choice({literal(list(p.values))})"
        pad = " " * (indent + 4)
        items = []
        for i, v in enumerate(p.values):
            child = p.children.get(i)
            body = "{}" if child is None else "{" + ", ".join(
                f"{literal(n)}: {param_code(c, indent + 4)}" for n, c in child.items()) + "}"
            items.append(f"{pad}{literal(v)}: {body},")
        return "tl.Choice({\n" + "\n".join(items) + "\n" + " " * indent + "})"
    raise ConfigError(f"Cannot write {p!r} as code.")


def next_round_source(store: Store, name: str, experiment: str, out_path: Path) -> str:
    """The text of the next round's experiment file for stored study ``name``. Every stored string
    (names, values, paths) is written as a literal or in a comment as one; the docstring holds
    none, so no stored text can end it."""
    record = store.require_study(name)
    trials = store.trials(record.id)
    done = [t for t in trials if t.state == TrialState.COMPLETED]
    if len(done) < MIN_TRIALS:
        raise ConfigError(f"Study {name!r} has {len(done)} completed trials; refining a space from fewer than "
                          f"{MIN_TRIALS} says more about luck than about the space. Run more first.")
    info = round_info(record)
    space = searched_space(record.space, info.roles)
    new_space, changes = refine_space(space, trials, record.mode, keep=info.roles.scientific,
                                      objectives=record.objectives)  # feasible trials and the front first
    relative = os.path.relpath(Path(experiment).resolve(), out_path.resolve().parent)
    command = shlex.quote(out_path.name) if out_path.name.isprintable() else literal(out_path.name)
    lines = [
        (f'"""Round {info.round + 1} of a tuning goal, proposed by `tuneloop refine` on '
         f'{datetime.date.today().isoformat()}'),
        f"from {len(done)} completed trials of round {info.round}. Edit the ranges, roles or searcher, then run it.",
        '"""',
        (f"# Round {info.round + 1} of goal {literal(info.goal)}, refining study {literal(name)} "
         f"({literal(record.mode.value)} {literal(record.metric)})."),
        f"# Run it: tuneloop run {command} --trials 32",
        "",
        "from pathlib import Path",
        "",
        "import tuneloop as tl",
        "from tuneloop.experiment import load_study",
        "",
        f"previous = load_study(Path(__file__).parent / {literal(relative)}, {literal(name)})",
        "",
        *_space_code(new_space, changes),
        "",
        *_roles_code(info.roles, new_space),
    ]
    return "\n".join(lines) + "\n"


def _space_code(space: Space, changes: list[Change]) -> list[str]:
    """``space = tl.Space(lr=...)``; ``tl.Space({'class': ...})`` when a name cannot be a keyword."""
    by_name = {c.name: c for c in changes}
    keywords = all(keyword_safe(n) for n in space)
    lines = ["space = tl.Space(" if keywords else "space = tl.Space({"]
    for pname, p in space.items():
        lines.extend(_comment(by_name[pname], changes, p))
        lines.append(f"    {pname}={param_code(p)}," if keywords else f"    {literal(pname)}: {param_code(p)},")
    lines.append(")" if keywords else "})")
    return lines


def _shown(name: str) -> str:
    """A parameter name in a comment: as it is when it is a plain identifier, else as a literal."""
    return name if keyword_safe(name) and name.isascii() else literal(name)


def _one_line(text: str) -> str:
    """``text`` with every non-printable character escaped: a comment it ends up in stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _comment(change: Change, changes: list[Change], p: Param) -> list[str]:
    out = [f"    # {_shown(change.name)}: {_one_line(change.reason)}"]
    if isinstance(p, Choice):
        out.extend(f"    #   {_shown(c.name)}: {_one_line(c.reason)}" for c in changes
                   if any(c.name in child for child in p.children.values()))
    return out


def _roles_code(roles: Roles, space: Space) -> list[str]:
    args = ["space"]
    scientific = [n for n in roles.scientific if n in space]
    if scientific:
        args.append(f"scientific={literal(scientific)}")
    if roles.fixed:
        args.append(f"fixed={literal(roles.fixed)}")
    searcher = '"sobol"' if scientific else '"tpe"'
    args.append(f"searcher={searcher}")
    note = ("# scientific values each get their own search over the nuisance parameters; quasi-random explores"
            if scientific else "# no scientific parameter left: this round optimizes, so a model-based searcher")
    warm = "# warm start: the searcher first learns from earlier rounds' trials in this space (warm_start=[]: cold)"
    return [note, warm, f"study = previous.next_round({', '.join(args)})"]


def write_next_round(store: Store, name: str, out_path: Path, experiment: str | None = None) -> Path:
    """Write the next round's experiment file for ``name``; return its path."""
    from tuneloop.experiment import trusted_experiment

    record = store.require_study(name)
    # the file the next round imports: the one named, or the stored one only if this machine ran it as it is now
    experiment = experiment or trusted_experiment(record.config, name)
    if not experiment:
        raise ConfigError(f"Study {name!r} was not run from an experiment file, so the next round cannot import "
                          f"its trial function; pass --file EXPERIMENT.py.")
    if out_path.exists():
        raise ConfigError(f"{out_path} exists; pass another -o, or delete it to propose again.")
    text = next_round_source(store, name, experiment, out_path)
    out_path.write_text(text, encoding="utf-8")  # Python reads source as UTF-8, whatever the locale
    return out_path
