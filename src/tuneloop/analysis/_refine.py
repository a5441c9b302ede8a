"""A proposed space for the next round: narrowed around the good region, expanded at crowded
bounds, with the reason for every change.

The good region is the best 15% of completed trials (at least 3), taken within each value of the
scientific parameters when there are any (each value's nuisance optimum may lie elsewhere). A numeric range shrinks to
what they span plus a margin (a quarter of their span and 5% of the old range, in the parameter's
own scale: log for log parameters), never beyond the old bounds, unless the best trials crowd a
bound (the best one, or half of the top, in its outer 10%), or ``tuneloop analyze`` finds the
objective still improving toward it with the other parameters held fixed
(:mod:`tuneloop.analysis._bounds`): then that side grows by half the old range, except past 0 (or 1
for a Float on [0, 1]), which are taken as natural limits. A Choice value that never made the top
in 3 or more trials is dropped. Conditional children are refined from the trials where they were
active. Fewer than 3 top trials using a parameter leaves it as it is, unless one of its bounds is
crowded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from tuneloop.analysis._bounds import Crowding
from tuneloop.direction import Direction
from tuneloop.objectives import Objectives
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import TrialRecord, TrialState

_Numeric = Float | LogFloat | Int  # every kind of Param but Choice

EDGE = 0.10
TOP_FRACTION = 0.15


@dataclass(frozen=True)
class Change:
    """What happened to one parameter and why (``after`` is None for the unchanged)."""

    name: str
    before: Param
    after: Param
    reason: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class Region:
    """Where failed and diverged trials sit: ``name`` above (or below) ``cut``, where few others did."""

    name: str
    side: str  # above | below
    cut: float
    infeasible: int
    feasible: int


def infeasible(trials: Sequence[TrialRecord], mode: str, objectives: Objectives | None = None) -> list[TrialRecord]:
    """Failed and diverged trials, completed ones that break the study's constraints, and (with one
    objective) completed ones so bad they are outliers: more than three interquartile ranges worse than
    the median of the completed. With several objectives no value is an outlier: the cheap end of a
    front is as wanted as its accurate end."""
    import statistics

    way = Direction.of(mode, "infeasible")
    broken = {t.id for t in trials if objectives is not None and objectives.constraints
              and t.state == TrialState.COMPLETED and not objectives.feasible(t.values)}
    if objectives is not None and objectives.multi:
        return [t for t in trials if t.state in (TrialState.FAILED, TrialState.DIVERGED) or t.id in broken]
    values = sorted(t.value for t in trials if t.state == TrialState.COMPLETED and t.value is not None
                    and math.isfinite(t.value))
    limit = None
    if len(values) >= 8:
        q1, median, q3 = statistics.quantiles(values, n=4)
        spread = q3 - q1
        if spread > 0:
            limit = median + 3 * spread * way.sign  # three interquartile ranges on the worse side
    def very_bad(t: TrialRecord) -> bool:
        if limit is None or t.state != TrialState.COMPLETED or t.value is None:
            return False
        return way.better(limit, t.value)

    return [t for t in trials if t.state in (TrialState.FAILED, TrialState.DIVERGED) or very_bad(t) or t.id in broken]


def infeasible_regions(space: Space, trials: Sequence[TrialRecord], mode: str = "min",
                       objectives: Objectives | None = None) -> list[Region]:
    """One region per numeric parameter that explains the infeasible trials (:func:`infeasible`):
    every one of them lies on one side of a cut, where at most a quarter as many others lie."""
    from tuneloop.analysis._study import _all_params, _position

    bad_ids = {t.id for t in infeasible(trials, mode, objectives)}
    bad = [t for t in trials if t.id in bad_ids]
    good = [t for t in trials if t.state == TrialState.COMPLETED and t.id not in bad_ids]
    out = []
    for name, p in _all_params(space).items():
        if isinstance(p, Choice):
            continue
        b = [t.params[name] for t in bad if name in t.params]
        g = [t.params[name] for t in good if name in t.params]
        if len(b) < 2:
            continue
        for side, cut in (("above", min(b)), ("below", max(b))):
            there = [v for v in g if (v >= cut if side == "above" else v <= cut)]
            if len(there) <= 0.25 * len(b) and _position(p, cut) not in (0.0, 1.0):
                out.append(Region(name, side, float(cut), len(b), len(there)))
                break
    return out


def refine_space(space: Space, trials: Sequence[TrialRecord], mode: str, keep: Sequence[str] = (),
                 top_fraction: float = TOP_FRACTION, objectives: Objectives | None = None) -> tuple[Space, list[Change]]:
    """The proposed space and one Change per parameter (children included). Parameters in
    ``keep`` (the round's scientific ones: its question) stay as they are. With ``objectives``
    holding constraints or several objectives, the top trials are ranked by them: feasible first,
    the front first (a constrained study's good region is where the feasible best trials are)."""
    from tuneloop.analysis._study import _ranked, crowded

    Direction.of(mode, "refine_space")  # a wrong mode fails even without trials
    done = [t for t in trials if t.state == TrialState.COMPLETED and t.value is not None and math.isfinite(t.value)]
    groups: dict[str, list[TrialRecord]] = {}
    for t in done:  # with scientific parameters, each value's own best: its nuisance optimum may differ
        groups.setdefault(json.dumps([t.params.get(n) for n in keep], default=str), []).append(t)
    top: list[TrialRecord] = []
    for group in groups.values():
        ranked = _ranked(group, mode, objectives, "refine_space")
        top.extend(ranked[:max(3, math.ceil(top_fraction * len(ranked)))])
    top = _ranked(top, mode, objectives, "refine_space")
    pressed = {(c.name, c.side): c for c in crowded(space, done, mode, objectives)}
    new, changes = _refine(space, done, top, set(keep), pressed)
    return _cut(new, changes, infeasible_regions(space, trials, mode, objectives))


def _cut(space: Space, changes: list[Change], regions: list[Region]) -> tuple[Space, list[Change]]:
    """Keep the proposed ranges out of the regions where trials failed or diverged."""
    if not regions:
        return space, changes
    by_name = {r.name: r for r in regions}
    params = dict(space.items())
    out = []
    for c in changes:
        r = by_name.get(c.name)
        p = params.get(c.name)
        if r is None or p is None or not isinstance(p, _Numeric):
            out.append(c)
            continue
        low, high = (p.low, min(p.high, r.cut)) if r.side == "above" else (max(p.low, r.cut), p.high)
        if low < high and (low, high) != (p.low, p.high):
            p = _exact(p, low, high)
            params[c.name] = p
            c = Change(c.name, c.before, p, f"{c.reason}; cut {r.side} {r.cut:.3g}, where {r.infeasible} trials "
                                           f"failed or diverged")
        out.append(c)
    return Space(params), out


def _refine(space: Space, done: list[TrialRecord], top: list[TrialRecord], keep: AbstractSet[str] = frozenset(),
            pressed: Mapping[tuple[str, str], Crowding] | None = None) -> tuple[Space, list[Change]]:
    pressed = pressed or {}
    params: dict[str, Param] = {}
    changes: list[Change] = []
    for name, p in space.items():
        top_values = [t.params[name] for t in top if name in t.params]
        if name in keep:  # every value stays (the round's question); a value's children are refined
            new, reason = p, "kept: a scientific parameter, the question of this round"
            if isinstance(p, Choice) and p.children:
                new, _, child_changes = _choice(name, p, done, top, pressed, drop=False)
                changes.extend(child_changes)
        elif isinstance(p, Choice):
            new, reason, child_changes = _choice(name, p, done, top, pressed)
            changes.extend(child_changes)
        else:
            sides = {side: c for (n, side), c in pressed.items() if n == name}
            if len(top_values) < 3 and not sides:
                new, reason = p, f"kept: only {len(top_values)} of the top trials use it"
            else:  # too few top trials but a crowded bound: grow it, keep the rest of the range
                assert isinstance(p, _Numeric), p  # a Choice was handled above
                values = top_values if len(top_values) >= 3 else [t.params[name] for t in done if name in t.params]
                best = top[0].params.get(name) if top else None
                new, reason = _numeric(p, values, best, sides)
        params[name] = new
        changes.append(Change(name, p, new, reason))
    return Space(params), changes


def _choice(name: str, p: Choice, done: list[TrialRecord], top: list[TrialRecord],
            pressed: Mapping[tuple[str, str], Crowding], drop: bool = True) -> tuple[Choice, str, list[Change]]:
    keep: list[tuple[Any, int, int]] = []
    dropped: list[tuple[Any, int, int]] = []
    for value in p.values:
        tried = sum(1 for t in done if name in t.params and p.contains(t.params[name]) and p.index(t.params[name]) == p.index(value))
        in_top = sum(1 for t in top if name in t.params and p.contains(t.params[name]) and p.index(t.params[name]) == p.index(value))
        (dropped if drop and in_top == 0 and tried >= 3 else keep).append((value, tried, in_top))
    if not keep:  # cannot happen with a non-empty top, but never propose an empty Choice
        keep, dropped = [(v, 0, 0) for v in p.values], []
    children_changes: list[Change] = []
    values: dict[Any, Any] = {}
    for value, _, _ in keep:
        child = p.child(value)
        if child is None:
            values[value] = {}
            continue
        sub_done = [t for t in done if t.params.get(name) == value]
        sub_top = [t for t in top if t.params.get(name) == value]
        new_child, sub_changes = _refine(child, sub_done, sub_top, pressed=pressed)
        values[value] = dict(new_child.items())
        children_changes.extend(sub_changes)
    new = Choice(values) if p.children else Choice(list(values))
    if dropped:
        names = ", ".join(f"{v!r} (0 of {n} trials in the top)" for v, n, _ in dropped)
        reason = f"dropped {names}"
    else:
        share = ", ".join(f"{v!r} {k}/{n}" for v, n, k in keep)
        reason = f"kept every value (in the top / tried: {share})"
    return new, reason, children_changes


def _numeric(p: _Numeric, values: list[Any], best: Any,
             pressed: Mapping[str, Crowding] | None = None) -> tuple[Param, str]:
    """``p`` narrowed around the top ``values`` (best first: ``best``), or grown past a crowded bound:
    one the top trials crowd, or one in ``pressed`` (side -> the analysis' evidence)."""
    pressed = pressed or {}
    log = isinstance(p, LogFloat) or (isinstance(p, Int) and p.log)
    to = math.log if log else float
    back = math.exp if log else float
    low, high = to(p.low), to(p.high)
    span = high - low
    lo, hi = min(to(v) for v in values), max(to(v) for v in values)
    near_low = [v for v in values if to(v) - low <= EDGE * span]
    near_high = [v for v in values if high - to(v) <= EDGE * span]
    best_pos = None if best is None else (to(best) - low) / span
    crowd_low = (best_pos is not None and best_pos <= EDGE) or len(near_low) * 2 >= len(values)
    crowd_high = (best_pos is not None and best_pos >= 1 - EDGE) or len(near_high) * 2 >= len(values)
    crowd_low, crowd_high = crowd_low or "low" in pressed, crowd_high or "high" in pressed  # the analysis' trend
    why = {side: f" ({c.evidence})" if c is not None else "" for side, c in
           (("low", pressed.get("low")), ("high", pressed.get("high")))}
    margin = 0.25 * (hi - lo) + 0.05 * span
    new_lo = max(low, lo - margin)
    new_hi = min(high, hi + margin)
    notes = []
    if crowd_low:
        new_lo = low - 0.5 * span
        floor = _natural_floor(p)
        if floor is not None and back(new_lo) < floor:
            new_lo = to(floor) if floor > 0 or not log else new_lo
            notes.append(f"the best trials crowd the lower bound {p.low:g}, which looks like a natural limit: "
                         f"kept{why['low']}")
        else:
            notes.append(f"the best trials crowd the lower bound {p.low:g}: expanded below it{why['low']}")
    if crowd_high:
        new_hi = high + 0.5 * span
        ceiling = 1.0 if isinstance(p, Float) and p.low >= 0 and p.high == 1.0 else None
        if ceiling is not None:
            new_hi = to(ceiling)
            notes.append(f"the best trials crowd the upper bound 1, a natural limit: kept{why['high']}")
        else:
            notes.append(f"the best trials crowd the upper bound {p.high:g}: expanded above it{why['high']}")
    new = _rebuild(p, back(new_lo), back(new_hi))
    spread = f"the top {len(values)} trials span {_g(min(values))}..{_g(max(values))}"
    if new == p:
        return p, f"kept: {spread}" + (f"; {'; '.join(notes)}" if notes else "")
    if not notes:
        notes.append("narrowed around them")
    return new, f"{spread}; {'; '.join(notes)} (was {_g(p.low)}..{_g(p.high)})"


def _exact(p: _Numeric, low: float, high: float) -> Param:
    """The same kind of parameter on [low, high] without outward rounding (a cut must stay a cut)."""
    if isinstance(p, Int):
        lo, hi = math.ceil(low), math.floor(high)
        return Int(lo, max(hi, lo + 1), log=p.log) if p.step == 1 else p
    if isinstance(p, LogFloat):
        return LogFloat(low, high)
    return Float(low, high) if p.step is None else p


def _natural_floor(p: _Numeric) -> float | None:
    if isinstance(p, Float) and p.low >= 0:
        return 0.0
    if isinstance(p, Int) and p.low >= 1:
        return 1.0
    return None


def _rebuild(p: _Numeric, low: float, high: float) -> Param:
    """The same kind of parameter on [low, high], bounds rounded outward to 2 significant digits
    (to whole steps for stepped ones)."""
    tol = 1e-9 * (abs(p.high) + abs(p.low))  # exp(log(x)) is not quite x: rounding must not cross a kept bound
    if isinstance(p, Int):
        first, last = math.floor(low + tol), math.ceil(high - tol)
        if p.step > 1:
            first = p.low + p.step * math.floor((first - p.low) / p.step)
            last = first + p.step * math.ceil((last - first) / p.step)
        first, last = max(first, 1) if p.log else first, max(last, first + p.step)
        return Int(first, last, log=p.log, step=p.step)
    lo, hi = _round(low, down=True), _round(high, down=False)
    if low >= p.low - tol:
        lo = max(lo, p.low)
    if high <= p.high + tol:
        hi = min(hi, p.high)
    if isinstance(p, LogFloat):
        return LogFloat(lo, hi) if lo < hi else p
    if p.step is not None:
        lo = p.low + p.step * math.floor((low - p.low) / p.step + 1e-9)
        hi = lo + p.step * max(1, math.ceil((high - lo) / p.step - 1e-9))
        return Float(round(lo, 12), round(hi, 12), step=p.step)
    if isinstance(p, Float) and p.low >= 0 and lo < 0 <= low:
        lo = 0.0
    return Float(lo, hi) if lo < hi else p


def _round(x: float, down: bool) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    exponent = math.floor(math.log10(abs(x))) - 1
    steps = (math.floor if down else math.ceil)(x / 10**exponent)
    return float(f"{steps}e{exponent}")  # exact decimal text: 0.00086, not 0.0008600000000000001


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else repr(x) if isinstance(x, str) else str(x)
