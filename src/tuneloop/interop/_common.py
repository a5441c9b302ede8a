"""What every import shares: parameter names made identifiers, a space inferred from the trials
(conditional parameters included), scalar attributes, and the new study written in one go.

Every name and value here comes from someone else's file, so each is checked: names become
Python identifiers (``trial.params.NAME`` must work; the originals are kept in the study's config
so an export writes them back), attributes that are not JSON scalars are left out and counted.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import Store, StudyRecord
from tuneloop.store._import import ImportedTrial

MAX_NAME = 255  # what the store's name columns hold
_NOT_WORD = re.compile(r"\W+")


@dataclass
class ImportSummary:
    """What an import did: the new study, its trials by state, what was left out and renamed."""

    study: StudyRecord
    counts: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)  # why -> how many trials
    renamed: dict[str, str] = field(default_factory=dict)  # tuneloop name -> the source's name
    dropped_attrs: int = 0  # attributes that were not strings, numbers, bools or null


def identifiers(names: Sequence[str]) -> dict[str, str]:
    """Each source name -> a distinct Python identifier (itself when it already is one)."""
    out: dict[str, str] = {}
    taken = {n for n in names if n.isidentifier()}
    for name in names:
        if name in taken:
            out[name] = name
            continue
        base = _NOT_WORD.sub("_", name).strip("_")[:60] or "param"
        base = base if base.isidentifier() else f"p_{base}"
        candidate, i = base, 2
        while candidate in taken:
            candidate, i = f"{base}_{i}", i + 1
        taken.add(candidate)
        out[name] = candidate
    return out


def check_name(value: str, what: str, fix: str) -> str:
    """A study or metric name as the store holds it; a one-line ConfigError otherwise."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise ConfigError(f"{what} must be 1 to {MAX_NAME} characters; got {value!r:.60}. {fix}")
    return value


def scalar_attrs(attrs: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], int]:
    """The attributes that are JSON scalars with a storable name, and how many were left out."""
    kept: dict[str, Any] = {}
    for key, value in attrs.items():
        name = f"{prefix}{key}"
        if isinstance(key, str) and len(name) <= MAX_NAME and (value is None or isinstance(value, (str, int, float, bool))):
            kept[name] = value
    return kept, len(attrs) - len(kept)


def _key(value: Any) -> tuple[str, Any]:
    return type(value).__name__, value  # True and 1 stay apart


def infer_space(params: Mapping[str, Param], configs: Sequence[Mapping[str, Any]]) -> Space:
    """The space of ``params`` (each one's range over every trial) with its conditional structure
    read from ``configs``: a parameter set in only some trials becomes the child of the categorical
    parameter whose value decides when it is set. One-line ConfigError when none decides it."""
    if not params:
        raise ConfigError("There is no trial with parameters to import.")
    everywhere = frozenset(range(len(configs)))
    present = {name: frozenset(i for i, c in enumerate(configs) if name in c) for name in params}
    kids: dict[str, dict[tuple[str, Any], list[str]]] = {}
    for name, here in present.items():
        if here == everywhere:
            continue
        best: tuple[str, tuple[str, Any]] | None = None
        for parent, there in present.items():
            if not isinstance(params[parent], Choice) or not here < there:
                continue
            with_ = {_key(configs[i][parent]) for i in here}
            if len(with_) != 1 or with_ & {_key(configs[i][parent]) for i in there - here}:
                continue
            if best is None or len(there) < len(present[best[0]]):
                best = (parent, next(iter(with_)))
        if best is None:
            raise ConfigError(
                f"Parameter {name!r:.60} is set in only some trials and no single value of a categorical parameter "
                f"decides when; tuneloop's conditional spaces switch parameters on by one value of a Choice.")
        kids.setdefault(best[0], {}).setdefault(best[1], []).append(name)

    def build(name: str) -> Param:
        p = params[name]
        if name not in kids or not isinstance(p, Choice):
            return p
        return Choice({v: {k: build(k) for k in kids[name].get(_key(v), [])} for v in p.values})

    return Space({name: build(name) for name, here in present.items() if here == everywhere})


def space_code(space: Space) -> str:
    """``space`` as the Python that builds it (``tl.Space(lr=tl.LogFloat(0.0001, 0.1), ...)``), so a
    person continuing an imported study pastes its exact space into their experiment file."""
    return f"tl.Space({', '.join(f'{name}={_param_code(p)}' for name, p in space.items())})"


def _items_code(space: Space | None) -> str:
    return "" if space is None else ", ".join(f"{k!r}: {_param_code(c)}" for k, c in space.items())


def _param_code(p: Param) -> str:
    if isinstance(p, Choice):
        if not p.children:
            return f"tl.Choice({p.values!r})"
        inner = ", ".join(f"{p.values[i]!r}: {{{_items_code(p.children.get(i))}}}" for i in range(len(p.values)))
        return f"tl.Choice({{{inner}}})"
    if isinstance(p, Int):
        extra = (", log=True" if p.log else "") + (f", step={p.step}" if p.step != 1 else "")
        return f"tl.Int({p.low}, {p.high}{extra})"
    if isinstance(p, Float):
        return f"tl.Float({p.low!r}, {p.high!r}{'' if p.step is None else f', step={p.step!r}'})"
    if isinstance(p, LogFloat):
        return f"tl.LogFloat({p.low!r}, {p.high!r})"
    return repr(p)  # pragma: no cover - the four kinds above are all there are


def fits(space: Space, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` is a point of ``space`` (a trial that failed before setting them all is not)."""
    try:
        space.validate(params)
    except (ConfigError, KeyError):
        return False
    return True


def study_config(space: Space, source: dict[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """A new study's config as ``Study`` writes one (so a ``Study`` of the same name, space, metric and
    mode continues it), noting where it was imported from."""
    from tuneloop.rounds import assign_roles

    imported = {**source, "imported_at": time.time()}
    if renamed:
        imported["param_names"] = dict(renamed)
    return {"seed": random.randrange(2**31), "budget": {}, "round": 1, "parent": None,
            "roles": assign_roles(space)[1].to_json(), "imported_from": imported}


def write_study(store: Store, name: str, metric: str, mode: str, space: Space, config: dict[str, Any],
                trials: Sequence[ImportedTrial]) -> StudyRecord:
    """Create study ``name`` with its trials in one transaction; refuses a name already taken."""
    check_name(name, "A study name", "Choose another.")
    if store.get_study(name) is not None:
        raise ConfigError(f"Study {name!r} already exists in {store.url}; import into a new study name.")
    config["goal"] = name
    return store.import_study(name, metric, mode, space, config, trials)
