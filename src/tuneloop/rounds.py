"""Rounds of a tuning goal, and the roles parameters play in each.

A playbook round asks one question. Its *scientific* parameters are what the round is about
(does GELU beat ReLU?); its *nuisance* parameters are tuned away for each scientific value, so
the comparison is fair (each activation gets its own best learning rate); its *fixed* parameters
hold still. Rounds of one goal are linked: round 2 is created from round 1 (``study.next_round``
or ``tuneloop refine``), and the chain is shown by ``tuneloop rounds``, the dashboard and reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError
from tuneloop.space import Choice, Space
from tuneloop.store import StudyRecord

if TYPE_CHECKING:
    from tuneloop.store import Store


@dataclass(frozen=True)
class Roles:
    """Which parameters a round compares, tunes away and holds still."""

    scientific: tuple[str, ...] = ()
    nuisance: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"scientific": list(self.scientific), "nuisance": list(self.nuisance), "fixed": dict(self.fixed)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Roles:
        data = data or {}
        return cls(tuple(data.get("scientific", ())), tuple(data.get("nuisance", ())), dict(data.get("fixed", {})))


def assign_roles(space: Space, scientific: Sequence[str] = (), nuisance: Sequence[str] | None = None,
                 fixed: Mapping[str, Any] | None = None) -> tuple[Space, Roles]:
    """Check the roles against ``space``; return the space with the fixed values added (each as a
    one-value Choice, so every trial records it) and the roles."""
    if isinstance(scientific, str) or (nuisance is not None and isinstance(nuisance, str)):
        raise ConfigError("scientific and nuisance take lists of parameter names, e.g. scientific=['activation'].")
    fixed = dict(fixed or {})
    for name, value in fixed.items():
        if name in space.names:
            raise ConfigError(f"Parameter {name!r} is both in the space and fixed; remove it from one of them.")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"Fixed parameter {name!r}={value!r} must be a str, int, float, bool or None, as a "
                              f"tl.Choice value can be; pass the name of a richer object and build it in the trial.")
    top = list(space)
    for name in scientific:
        if name not in top:
            raise ConfigError(f"Scientific parameter {name!r} is not a top-level parameter of the space "
                              f"(top-level ones: {', '.join(top)}).")
    if nuisance is None:
        nuisance = [n for n in top if n not in scientific]
    else:
        both = sorted(set(scientific) & set(nuisance))
        unknown = [n for n in nuisance if n not in top]
        roleless = [n for n in top if n not in scientific and n not in nuisance]
        if both:
            raise ConfigError(f"Parameters {both} are both scientific and nuisance; give each one role.")
        if unknown:
            raise ConfigError(f"Nuisance parameters {unknown} are not top-level parameters of the space.")
        if roleless:
            raise ConfigError(f"Parameters {roleless} have no role: add them to nuisance=[...] or fix them with "
                              f"fixed={{{roleless[0]!r}: value}} (and remove them from the space).")
    merged = Space({**dict(space.items()), **{n: Choice([v]) for n, v in fixed.items()}}) if fixed else space
    return merged, Roles(tuple(scientific), tuple(nuisance), fixed)


def searched_space(space: Space, roles: Roles) -> Space:
    """``space`` without the fixed parameters: what a user writes and ``refine`` narrows."""
    return Space({n: p for n, p in space.items() if n not in roles.fixed})


@dataclass(frozen=True)
class RoundInfo:
    """One study in a goal's chain."""

    goal: str
    round: int
    study: str
    parent: str | None
    roles: Roles


def round_info(record: StudyRecord) -> RoundInfo:
    """The round a stored study is (a study made without rounds is round 1 of its own goal)."""
    return _info(record.name, record.config)


def _info(study: str, cfg: dict[str, Any]) -> RoundInfo:
    """The round a stored config describes, checked: the database may have been written by hand."""
    goal, number, parent = cfg.get("goal") or study, cfg.get("round") or 1, cfg.get("parent")
    roles = cfg.get("roles") or {}
    names_ok = all(isinstance(roles.get(k, []), list) and all(isinstance(n, str) for n in roles.get(k, []))
                   for k in ("scientific", "nuisance")) if isinstance(roles, dict) else False
    for what, ok in (("goal", isinstance(goal, str)), ("round", type(number) is int and number >= 1),
                     ("parent", parent is None or isinstance(parent, str)),
                     ("roles", names_ok and isinstance(roles.get("fixed", {}), dict))):
        if not ok:
            raise ConfigError(f"Study {study!r} stores a damaged round record (its {what!r} is "
                              f"{cfg.get(what)!r:.80}); the database was changed by hand or by another program.")
    return RoundInfo(goal, number, study, parent, Roles.from_json(roles))


def chain(store: Store, name: str) -> list[RoundInfo]:
    """Every tuning round of the goal that study (or goal) ``name`` belongs to, by round."""
    configs = store.study_configs()  # one query: the dashboard asks for the chain on every poll
    goal = (configs[name].get("goal") or name) if name in configs else name
    rounds = []
    for study, cfg in configs.items():
        if cfg.get("kind") in ("final", "probe") or (cfg.get("goal") or study) != goal:
            continue
        rounds.append(_info(study, cfg))
    if not rounds:
        raise ConfigError(f"No study or goal named {name!r} in {store.url}; tuneloop status lists the studies.")
    return sorted(rounds, key=lambda r: (r.round, r.study))
