"""Enqueued configurations: checked against the space when enqueued, completed by the searcher when run.

    fixed = check_partial(space, {"lr": 0.01})      # a one-line ConfigError for a bad name or value
    proposal = fill(searcher, space, fixed, seed)  # the searcher chooses the parameters not given

A searcher completes a partial configuration through :meth:`Searcher.ask_with` (Optuna's samplers
through ``enqueue_trial``, so the sampler chooses the rest knowing the fixed values); one that has
no such method gets the rest from :func:`complete`: its next proposal's values where they fit, a
seeded random grid value where they do not.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.search._base import Proposal, Searcher
from tuneloop.space import Choice, Int, Param, Space


def _where(space: Space, name: str) -> tuple[Param, list[tuple[str, Any]]] | None:
    """Parameter ``name`` anywhere in the tree and the (parent, value) choices that switch it on."""
    for top, p in space.items():
        if top == name:
            return p, []
        if isinstance(p, Choice):
            for i, child in p.children.items():
                found = _where(child, name)
                if found is not None:
                    return found[0], [(top, p.values[i]), *found[1]]
    return None


def check_partial(space: Space, params: Mapping[str, Any], owner: str = "Study.enqueue") -> dict[str, Any]:
    """``params`` (some or all parameters of ``space``) checked, with the Choice values their
    conditional parameters need added (``momentum`` given alone implies ``opt="sgd"``)."""
    if not isinstance(params, Mapping) or not params:
        raise ConfigError(f"{owner} takes a dict of parameter values, e.g. {{'lr': 0.01}}. Got {params!r:.80} instead.")
    out: dict[str, Any] = {}
    why: dict[str, str] = {}  # which given parameter needs each value
    for name, value in params.items():
        found = _where(space, name) if isinstance(name, str) else None
        if found is None:
            raise ConfigError(f"{owner}: {name!r:.60} is not a parameter of the space (it has: "
                              f"{', '.join(space.names)}).")
        param, parents = found
        if not param.contains(value):
            raise ConfigError(f"{owner}: {name}={value!r:.60} is outside {param!r}.")
        for parent, needed in [*parents, (name, value)]:
            if parent in out and not _equal(out[parent], needed):
                raise ConfigError(f"{owner}: {name!r} needs {parent}={needed!r} but {why[parent]!r} needs {parent}="
                                  f"{out[parent]!r}; give the parameters of one branch.")
            out[parent] = needed
            why.setdefault(parent, name)
    return out


def _equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def complete(space: Space, fixed: Mapping[str, Any], base: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """A point of ``space``: ``fixed`` values first, then ``base``'s where active and valid, then a
    random grid value of each parameter still missing (children after their parents)."""
    config: dict[str, Any] = {}

    def walk(sub: Space) -> None:
        for name, p in sub.items():
            for source in (fixed, base):
                if name in source and p.contains(source[name]):
                    config[name] = source[name]
                    break
            else:
                config[name] = rng.choice(p.grid_values(9))
            if isinstance(p, Choice):
                child = p.child(config[name])
                if child is not None:
                    walk(child)

    walk(space)
    return config


def parse_assignments(space: Space, items: Sequence[str], owner: str = "tuneloop enqueue") -> dict[str, Any]:
    """``["lr=0.01", "opt=adam"]`` as typed values of ``space``'s parameters (then :func:`check_partial`)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        found = _where(space, name.strip()) if sep else None
        if found is None:
            raise ConfigError(f"{owner}: {item!r:.60} is not NAME=VALUE for a parameter of the space (it has: "
                              f"{', '.join(space.names)}).")
        param, text = found[0], text.strip()
        try:
            if isinstance(param, Choice):
                matches = [v for v in param.values if text in (str(v), json.dumps(v))]
                if not matches:
                    raise ValueError
                value = matches[0]
            else:
                value = int(text) if isinstance(param, Int) else float(text)
        except ValueError:
            raise ConfigError(f"{owner}: {item!r:.60} is not a value of {param!r}.") from None
        out[name.strip()] = value
    return check_partial(space, out, owner)


def fill(searcher: Searcher, space: Space, fixed: Mapping[str, Any], seed: int) -> Proposal:
    """The configuration an enqueued trial runs: ``fixed`` (checked with :func:`check_partial`) with
    the rest chosen by ``searcher``; always a point of ``space``."""
    fixed = dict(fixed)
    try:
        proposal = searcher.ask_with(fixed)
    except TuneloopError:
        proposal = None
    if proposal is not None:
        try:
            space.validate(proposal.params)
            if all(_equal(proposal.params.get(k), v) for k, v in fixed.items()):
                return proposal
        except ConfigError:
            pass
        # the searcher did not keep the fixed values: its proposal is not what runs, so no token goes back
        return Proposal(complete(space, fixed, proposal.params, random.Random(seed)))
    return Proposal(complete(space, fixed, {}, random.Random(seed)))
