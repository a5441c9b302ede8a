"""The ideas ledger: ideas with estimates, a state, their tests and their outcome, in the store.

    from tuneloop.ideas import Ledger

    ledger = Ledger()                         # the default store, or Ledger("runs.db")
    idea = ledger.add("AdamW instead of Adam", hours=0.5, complexity=1, gain=0.01, p=0.3)
    ledger.start(idea.id); ledger.record_test(idea.id, ...); ledger.decide(idea.id, "adopt", note="+1.2%")
"""

from __future__ import annotations

import enum
import json
import math
import numbers
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from tuneloop._validation import check_one_of, fail
from tuneloop.errors import ConfigError, NotFound, StorageError
from tuneloop.store import Store, schema


class IdeaState(str, enum.Enum):
    """Where an idea is: ``proposed``, ``testing`` (its A/B test started), decided (``adopted``,
    ``rejected``, ``parked``), or ``broken``: its variant failed a rung of the check ladder before the
    A/B test, so the implementation needs fixing; testing it again moves it back to ``testing``.
    Stored as its text."""

    PROPOSED = "proposed"
    TESTING = "testing"
    ADOPTED = "adopted"
    REJECTED = "rejected"
    PARKED = "parked"
    BROKEN = "broken"

    def __str__(self) -> str:
        return self.value


STATES = tuple(s.value for s in IdeaState)
DECISIONS = {"adopt": "adopted", "reject": "rejected", "park": "parked"}
COMPLEXITY_PENALTY = 0.25  # each complexity point above 1 divides the priority by another 1.25


def priority(p: float, gain: float, hours: float, complexity: int) -> float:
    """Expected gain per hour, discounted for added complexity:
    p * gain / (hours * (1 + 0.25 * (complexity - 1)))."""
    return p * gain / (max(hours, 1e-9) * (1 + COMPLEXITY_PENALTY * (complexity - 1)))


PRIORITY_FORMULA = "priority = p x gain / (hours x (1 + 0.25 x (complexity - 1))); ties: cheapest first"


@dataclass
class Idea:
    """One idea and everything known about it."""

    id: int
    title: str
    state: IdeaState
    hours: float
    complexity: int
    gain: float
    p: float
    tags: list[str] = field(default_factory=list)
    actual_hours: float | None = None
    note: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    links: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    decided_at: float | None = None

    @property
    def priority(self) -> float:
        return priority(self.p, self.gain, self.hours, self.complexity)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the state as its text), for YAML and JSON."""
        return {**asdict(self), "state": str(self.state)}


ESTIMATES = {  # field -> (what it must be, the check); NaN and infinities fail every one
    "hours": ("a positive number of hours", lambda v: finite(v) and v > 0),
    "complexity": ("an integer from 1 (trivial) to 5 (much new code)",
                   lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5),
    "gain": ("a number of 0 or more (the predicted improvement of the objective)", lambda v: finite(v) and v >= 0),
    "p": ("a probability between 0 and 1", lambda v: finite(v) and 0 <= v <= 1),
    "actual_hours": ("a number of hours, 0 or more", lambda v: v is None or (finite(v) and v >= 0)),
}


def finite(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool), neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def validate_estimates(hours: float, complexity: int, gain: float, p: float, actual_hours: float | None = None) -> None:
    for name, value in (("hours", hours), ("complexity", complexity), ("gain", gain), ("p", p),
                        ("actual_hours", actual_hours)):
        expected, ok = ESTIMATES[name]
        if not ok(value):
            raise fail(name, "idea", expected, value)


class Ledger:
    """The ideas of one store, ranked by priority."""

    def __init__(self, storage: str | Store | None = None) -> None:
        self.store = storage if isinstance(storage, Store) else Store(storage)

    # -- writing ----------------------------------------------------------------------------
    def add(self, title: str, *, hours: float, complexity: int, gain: float, p: float, tags: list[str] | None = None,
            config: dict[str, Any] | None = None) -> Idea:
        """Propose an idea with its estimates."""
        if not isinstance(title, str) or not title.strip():
            raise fail("title", "idea", "a non-empty string", title)
        validate_estimates(hours, complexity, gain, p)
        with self.store._write() as conn:
            result = conn.execute(insert(schema.ideas).values(
                title=title.strip(), state="proposed", hours=float(hours), complexity=int(complexity), gain=float(gain),
                p=float(p), tags=json.dumps(list(tags or [])), config=json.dumps(config or {}), links="[]",
                created_at=time.time()))
            new_id = int(result.inserted_primary_key[0])
        return self.get(new_id)  # after the commit: another connection reads it

    def add_all(self, entries: list[dict[str, Any]]) -> list[int]:
        """Add checked ideas (title, state, estimates, tags, config, note, actual_hours) in one
        transaction: all of them or, on any failure, none. Returns their ids."""
        now, ids = time.time(), []
        with self.store._write() as conn:
            for e in entries:
                decided = e["state"] in DECISIONS.values()
                result = conn.execute(insert(schema.ideas).values(
                    title=e["title"].strip(), state=e["state"], hours=float(e["hours"]), complexity=int(e["complexity"]),
                    gain=float(e["gain"]), p=float(e["p"]), tags=json.dumps(list(e.get("tags") or [])),
                    config=json.dumps(e.get("config") or {}, allow_nan=False), links="[]", created_at=now,
                    note=e.get("note"), decided_at=now if decided else None,
                    actual_hours=None if e.get("actual_hours") is None else float(e["actual_hours"])))
                ids.append(int(result.inserted_primary_key[0]))
        return ids

    def edit(self, idea_id: int, **changes: Any) -> Idea:
        """Change estimates, title, tags, config or actual hours."""
        idea = self.get(idea_id)
        allowed = {"title", "hours", "complexity", "gain", "p", "tags", "config", "actual_hours"}
        unknown = set(changes) - allowed
        if unknown:
            raise ConfigError(f"An idea has no field {min(unknown)!r}; editable: {', '.join(sorted(allowed))}.")
        merged = {**idea.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        validate_estimates(merged["hours"], merged["complexity"], merged["gain"], merged["p"], merged["actual_hours"])
        values = {k: (json.dumps(v) if k in ("tags", "config") else v) for k, v in changes.items() if v is not None}
        if values:
            with self.store._write() as conn:
                conn.execute(update(schema.ideas).where(schema.ideas.c.id == idea_id).values(**values))
        return self.get(idea_id)

    def start(self, idea_id: int) -> Idea:
        """Mark an idea as being tested. A broken one too (its fix is tested again): its note and decision
        time are cleared; its ``broken`` links stay, as history."""
        if self.get(idea_id).state == IdeaState.BROKEN:
            self._set(idea_id, state=IdeaState.TESTING.value, note=None, decided_at=None)
        else:
            self._set(idea_id, state=IdeaState.TESTING.value)
        return self.get(idea_id)

    def decide(self, idea_id: int, decision: str, *, note: str | None = None, actual_hours: float | None = None) -> Idea:
        """adopt, reject or park an idea, with a note saying why (its evidence)."""
        check_one_of(decision, list(DECISIONS), "decision", "idea decide")
        if not ESTIMATES["actual_hours"][1](actual_hours):
            raise fail("actual_hours", "idea decide", ESTIMATES["actual_hours"][0], actual_hours)
        values: dict[str, Any] = {"state": DECISIONS[decision], "note": note, "decided_at": time.time()}
        if actual_hours is not None:
            values["actual_hours"] = float(actual_hours)
        self._set(idea_id, **values)
        return self.get(idea_id)

    def mark_broken(self, idea_id: int, *, check: str, message: str, evidence: dict[str, Any] | None = None,
                    next_step: str = "", keep_state: bool = False) -> Idea:
        """The idea's variant failed the rung ``check`` of the check ladder: state ``broken``, the note
        ``failed check <check>: <message>``, and a link ``{"broken": {"check", "message", "evidence",
        "next_step"}}`` with the evidence (the morning report reads exactly these)."""
        idea = self.get(idea_id)
        entry = {"check": check, "message": message, "evidence": _plain_json(evidence or {}), "next_step": next_step}
        if keep_state:  # ``keep_state``: only the link (an adopted idea's new variant broke; the adoption stands)
            self._set(idea_id, links=json.dumps([*idea.links, {"broken": entry}]))
            return self.get(idea_id)
        self._set(idea_id, state=IdeaState.BROKEN.value, note=f"failed check {check}: {message}",
                  decided_at=time.time(), links=json.dumps([*idea.links, {"broken": entry}]))
        return self.get(idea_id)

    def link(self, idea_id: int, **link: Any) -> None:
        """Remember a study (and trials) that tested the idea."""
        idea = self.get(idea_id)
        self._set(idea_id, links=json.dumps([*idea.links, link]))

    def record_test(self, idea_id: int, *, metric: str, mode: str, seeds: list[int], baseline: list[float],
                    variant: list[float], result: dict[str, Any], study: str | None = None) -> None:
        """Store an A/B test's outcomes and verdict with the idea."""
        self.get(idea_id)
        with self.store._write() as conn:
            conn.execute(insert(schema.idea_tests).values(
                idea_id=idea_id, created_at=time.time(), study=study, metric=metric, mode=mode, seeds=json.dumps(seeds),
                baseline=json.dumps(baseline), variant=json.dumps(variant), result=json.dumps(result)))

    def _set(self, idea_id: int, **values: Any) -> None:
        self.get(idea_id)
        with self.store._write() as conn:
            conn.execute(update(schema.ideas).where(schema.ideas.c.id == idea_id).values(**values))

    # -- reading ----------------------------------------------------------------------------
    def get(self, idea_id: int) -> Idea:
        with self.store._read() as conn:
            row = conn.execute(select(schema.ideas).where(schema.ideas.c.id == idea_id)).first()
        if row is None:
            raise NotFound(f"No idea {idea_id} in {self.store.url}; see tuneloop idea list.")
        return _idea(row)

    def ideas(self, state: str | None = None) -> list[Idea]:
        """Every idea, highest priority first (ties: cheapest first)."""
        if state is not None:
            check_one_of(state, STATES, "state", "idea list")
        stmt = select(schema.ideas)
        if state is not None:
            stmt = stmt.where(schema.ideas.c.state == state)
        with self.store._read() as conn:
            found = [_idea(r) for r in conn.execute(stmt)]
        return sorted(found, key=lambda i: (-i.priority, i.hours, i.id))

    def tests(self, idea_id: int) -> list[dict[str, Any]]:
        t = schema.idea_tests
        with self.store._read() as conn:
            rows = conn.execute(select(t).where(t.c.idea_id == idea_id).order_by(t.c.id)).all()
        try:
            return [{"created_at": r.created_at, "study": r.study, "metric": r.metric, "mode": r.mode,
                     "seeds": json.loads(r.seeds), "baseline": json.loads(r.baseline), "variant": json.loads(r.variant),
                     "result": json.loads(r.result)} for r in rows]
        except (TypeError, ValueError, RecursionError):  # someone else's database: one line, not a traceback
            raise StorageError(f"Corrupt row: an A/B test of idea {idea_id} is not JSON; repair or delete that row "
                               f"(table idea_tests) in the database.") from None

    def baseline_chain(self) -> list[dict[str, Any]]:
        """Adopted ideas in the order they were adopted, each with its measured effect and the
        cumulative gain: the baseline's history."""
        chain, total = [], 0.0
        for idea in sorted(self.ideas("adopted"), key=lambda i: i.decided_at or 0):
            tests = self.tests(idea.id)
            effect = tests[-1]["result"]["effect"] if tests else None
            total += effect or 0.0
            chain.append({"id": idea.id, "title": idea.title, "effect": effect, "cumulative": total,
                          "config": idea.config, "decided_at": idea.decided_at})
        return chain

    def baseline_config(self) -> dict[str, Any]:
        """The current baseline: every adopted idea's overrides, applied in adoption order."""
        config: dict[str, Any] = {}
        for step in self.baseline_chain():
            config.update(step["config"])
        return config


def _plain_json(value: Any) -> Any:
    """``value`` as JSON can hold it: non-finite numbers and other objects become text."""
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return str(value)


def _state(row: Any) -> IdeaState:
    try:
        return IdeaState(row.state)
    except ValueError:
        raise StorageError(f"Corrupt row: idea {row.id} has the state {str(row.state)[:40]!r}; expected one of "
                           f"{', '.join(STATES)}.") from None


def _json_column(row: Any, column: str, kind: type, default: str | None = None) -> Any:
    """A JSON column of an idea's row, which must hold a ``kind``; a corrupt one (someone else's database)
    is a one-line StorageError naming the row, never a traceback."""
    raw = getattr(row, column)
    try:
        value = json.loads(raw if raw is not None or default is None else default)
    except (TypeError, ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        raise StorageError(f"Corrupt row: the {column} of idea {row.id} is not a JSON {kind.__name__}; repair or "
                           f"delete that row in the database.")
    return value


def _estimates(row: Any) -> None:
    """The row's estimates as :data:`ESTIMATES` checks them on the way in; text or a number out of range (someone
    else's database) is a one-line StorageError naming the row, not a TypeError deep in the ranking."""
    for name, (what, ok) in ESTIMATES.items():
        value = getattr(row, name)
        if not ok(value):
            raise StorageError(f"Corrupt row: the {name} of idea {row.id} is {str(value)[:40]!r}, not {what}; repair or "
                               f"delete that row in the database.")


def _idea(row: Any) -> Idea:
    _estimates(row)
    return Idea(id=row.id, title=row.title, state=_state(row), hours=row.hours, complexity=row.complexity, gain=row.gain,
                p=row.p, tags=_json_column(row, "tags", list), actual_hours=row.actual_hours, note=row.note,
                config=_json_column(row, "config", dict, "{}"), links=_json_column(row, "links", list),
                created_at=row.created_at, decided_at=row.decided_at)
