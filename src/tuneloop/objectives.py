"""What a study optimizes: one or more objectives, constraints on metrics, and what a scheduler judges.

    objectives = Objectives.of(objectives={"val_acc": "max", "latency_ms": "min"},
                               constraints={"params_m": ("<=", 1.0)})
    objectives.front(trials)        # the feasible completed trials no other one dominates
    objectives.feasible(trial.values)

A study with one objective is the old ``metric=``/``mode=`` pair: ``Objectives.of("val_loss", "min")``.
Every objective is a metric the trial reports (or returns); a constraint bounds a metric (an objective
or any other) and a trial that breaks one, or never reports it, is infeasible: it is never on a front,
never ``best``, and ranks after every feasible trial.

What a scheduler judges (``prune_on``) is one metric, the first objective by default, or a weighted sum
of objectives (each turned so that higher is better): ASHA, median and Hyperband compare one number.

This is a bottom module: it knows directions and errors, never the store or a run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tuneloop._validation import fail
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError

_OPS = ("<=", ">=")
_SYSTEM = "sys/"  # the metrics tuneloop samples itself (run/_system.py) are never optimized


class Scored(Protocol):
    """What the ranking functions read of a trial: its state and its final values."""

    @property
    def state(self) -> Any: ...

    @property
    def values(self) -> dict[str, float]: ...


S = TypeVar("S", bound=Scored)


@dataclass(frozen=True)
class Objective:
    """A metric and the way it improves."""

    name: str
    direction: Direction

    def __str__(self) -> str:
        return f"{_cut(self.name)} ({self.direction})"


@dataclass(frozen=True)
class Constraint:
    """``metric <= bound`` or ``metric >= bound``; a trial breaking it is infeasible."""

    metric: str
    op: str
    bound: float

    def violation(self, values: Mapping[str, Any]) -> float:
        """How far ``values`` break it: 0 or less when kept (Optuna's ``constraints_func`` convention),
        infinity when the metric is missing or not a finite number."""
        value = finite(values.get(self.metric))
        if value is None:
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{_cut(self.metric)} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Judge:
    """What a scheduler compares between trials: one metric, or a weighted sum of objectives
    (each weight times the objective turned so that higher is better)."""

    weights: tuple[tuple[str, float], ...]
    direction: Direction
    scalarized: bool = False

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.weights]

    def score(self, metrics: Mapping[str, Any]) -> float | None:
        """The judged number for a report or a trial's final values; None when a metric it needs is
        not there or not a number (that report is not judged: stored values may come from anyone). A
        NaN or infinite metric gives a non-finite score."""
        total = 0.0
        for name, weight in self.weights:
            value = metrics.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            if not self.scalarized:
                return float(value)
            total += weight * float(value)
        return total

    def __str__(self) -> str:
        if not self.scalarized:
            return f"{_cut(self.weights[0][0])} ({self.direction})"
        terms = " ".join(f"{'-' if w < 0 else '+'} {abs(w):g}·{_cut(n)}" for n, w in self.weights).lstrip("+ ")
        return f"{terms} (higher is better)"


@dataclass(frozen=True)
class Objectives:
    """A study's objectives (the first one is the primary: ``study.metric``), its constraints and
    what its scheduler judges."""

    items: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    judge: Judge | None = None

    def __post_init__(self) -> None:
        if self.judge is None:
            first = self.items[0]
            object.__setattr__(self, "judge", Judge(((first.name, 1.0),), first.direction))

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def of(cls, metric: str | None = None, mode: Any = None, objectives: Any = None, constraints: Any = None,
           prune_on: Any = None, owner: str = "Study") -> Objectives:
        """From what a user writes: ``metric``/``mode`` (one objective) or ``objectives`` (a dict of
        name -> "min"/"max", in order), ``constraints`` (a dict of metric -> ("<=", bound)) and
        ``prune_on`` (an objective's name, or a dict of objective -> weight). Every mistake is a
        one-line ConfigError saying what to write instead."""
        if objectives is not None:
            if metric is not None or mode is not None:
                raise ConfigError(f"{owner}: give objectives={{...}} or metric=/mode=, not both (the first "
                                  f"objective is the study's metric).")
            if not isinstance(objectives, Mapping) or not objectives:
                raise ConfigError(f"{owner}: objectives= takes a dict of metric name -> 'min' or 'max', e.g. "
                                  f"{{'val_acc': 'max', 'latency_ms': 'min'}}; got {short(objectives)}.")
            items = tuple(Objective(_name(name, owner, "objectives"), Direction.of(d, owner, f"objectives[{short(name)}]"))
                          for name, d in objectives.items())
        else:
            if metric is None or mode is None:
                raise ConfigError(f"{owner} needs what to optimize: metric='val_loss', mode='min' (one objective) "
                                  f"or objectives={{'val_acc': 'max', 'latency_ms': 'min'}}.")
            items = (Objective(_name(metric, owner, "metric"), Direction.of(mode, owner)),)
        result = cls(items, _constraints(constraints, owner))
        judge = _judge(prune_on, result, owner)
        return result if judge is None else cls(items, result.constraints, judge)

    # -- reading -------------------------------------------------------------------------------
    @property
    def primary(self) -> Objective:
        return self.items[0]

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.items]

    @property
    def directions(self) -> list[Direction]:
        return [o.direction for o in self.items]

    @property
    def multi(self) -> bool:
        """Whether there is more than one objective (a front, not one best trial)."""
        return len(self.items) > 1

    @property
    def judged(self) -> Judge:
        assert self.judge is not None  # set in __post_init__
        return self.judge

    @property
    def metrics(self) -> list[str]:
        """Every metric the objectives, constraints and judge read, each once."""
        seen = dict.fromkeys([*self.names, *(c.metric for c in self.constraints), *self.judged.names])
        return list(seen)

    def vector(self, values: Mapping[str, Any]) -> tuple[float, ...] | None:
        """The objectives' values in order; None when one is missing or not finite."""
        out = tuple(finite(values.get(name)) for name in self.names)
        return None if any(v is None for v in out) else out  # type: ignore[return-value]

    def violations(self, values: Mapping[str, Any]) -> tuple[float, ...]:
        """Each constraint's violation (0 or less: kept)."""
        return tuple(c.violation(values) for c in self.constraints)

    def feasible(self, values: Mapping[str, Any]) -> bool:
        return all(v <= 0 for v in self.violations(values))

    def broken(self, values: Mapping[str, Any]) -> list[Constraint]:
        """The constraints ``values`` break (missing metrics included)."""
        return [c for c in self.constraints if c.violation(values) > 0]

    def loss(self, values: Mapping[str, Any]) -> tuple[float, ...] | None:
        """The objectives turned into quantities to minimize (max objectives negated)."""
        vec = self.vector(values)
        return None if vec is None else tuple(o.direction.sign * v for o, v in zip(self.items, vec, strict=True))

    # -- ranking -------------------------------------------------------------------------------
    def _scored(self, trials: Iterable[S]) -> list[tuple[S, tuple[float, ...]]]:
        """The completed trials with every objective finite, each with its :meth:`loss`, computed once
        (a study page ranks 10,000 trials: reading each one's values once is most of the work)."""
        names = self.names
        signs = [o.direction.sign for o in self.items]
        out: list[tuple[S, tuple[float, ...]]] = []
        if len(names) == 1:
            name, sign = names[0], signs[0]
            for t in trials:
                state = t.state
                state = getattr(state, "value", state)
                if (state if type(state) is str else str(state)) != "completed":
                    continue
                v = t.values.get(name)
                if type(v) is float:  # the stored case; others go through finite() (ints, bools, text)
                    if v - v != 0.0:  # NaN or an infinity
                        continue
                else:
                    v = finite(v)
                    if v is None:
                        continue
                out.append((t, (sign * v,)))
            return out
        for t in trials:
            if _state(t) != "completed":
                continue
            vec = self.vector(t.values)
            if vec is not None:
                out.append((t, tuple(sign * v for sign, v in zip(signs, vec, strict=True))))
        return out

    def _pool(self, trials: Iterable[S]) -> list[tuple[S, tuple[float, ...]]]:
        """The feasible completed trials with their losses (without constraints: every completed one)."""
        scored = self._scored(trials)
        if not self.constraints:
            return scored
        return [(t, loss) for t, loss in scored if self.feasible(t.values)]

    def completed(self, trials: Iterable[S]) -> list[S]:
        """Completed trials with every objective finite."""
        return [t for t, _ in self._scored(trials)]

    def front(self, trials: Iterable[S]) -> list[S]:
        """The feasible completed trials that no other feasible completed trial dominates (with one
        objective: every trial tied at the best value), in their input order."""
        return [t for t, _ in self._front(trials)]

    def _front(self, trials: Iterable[S]) -> list[tuple[S, tuple[float, ...]]]:
        pool = self._pool(trials)
        return [pool[i] for i in pareto_indices([loss for _, loss in pool])]

    def ranked(self, trials: Iterable[S]) -> list[S]:
        """Completed trials best first: feasible ones before infeasible ones (those by how far they
        break their constraints); among feasible ones, by Pareto layer (the front first), then by the
        primary objective. With one objective the layers are the values themselves: a plain sort."""
        scored = self._scored(trials)
        infeasible: list[S] = []
        if self.constraints:
            feasible, broken = [], []
            for t, loss in scored:
                violations = self.violations(t.values)
                if all(v <= 0 for v in violations):
                    feasible.append((t, loss))
                else:
                    broken.append((sum(max(v, 0.0) for v in violations), t))
            broken.sort(key=_first)  # stable: ties keep their input order
            infeasible = [t for _, t in broken]
        else:
            feasible = scored
        firsts = [loss[0] for _, loss in feasible]
        if self.multi:
            layer = layers([loss for _, loss in feasible])
            order = sorted(range(len(feasible)), key=lambda i: (layer[i], firsts[i]))
        else:  # every layer is 0: the primary objective alone orders them, ties in input order
            order = sorted(range(len(feasible)), key=firsts.__getitem__)
        return [feasible[i][0] for i in order] + infeasible

    def best(self, trials: Iterable[S]) -> S | None:
        """The feasible completed trial with the best primary objective; None when there is none."""
        pool = self._pool(trials)
        if not pool:
            return None
        firsts = [loss[0] for _, loss in pool]
        return pool[firsts.index(min(firsts))][0]  # the first of the best, as min() picks

    def front_sorted(self, trials: Iterable[S]) -> list[S]:
        """The front best first: by the first objective, then the next ones (one order for every page)."""
        return [t for t, _ in sorted(self._front(trials), key=_second)]

    def hypervolume(self, trials: Iterable[S], reference: Sequence[float]) -> float:
        """The volume the feasible completed trials dominate up to ``reference`` (a point in the
        objectives' own units and directions, worse than every trial that counts)."""
        ref = [o.direction.sign * float(r) for o, r in zip(self.items, reference, strict=True)]
        return hypervolume([loss for _, loss in self._front(trials)], ref)

    def reference(self, trials: Iterable[S], margin: float = 0.1) -> list[float] | None:
        """A reference point for hypervolumes: each objective's worst feasible completed value, moved
        a ``margin`` of its range further (in the objectives' own units); None without such trials."""
        losses = [loss for _, loss in self._pool(trials)]
        if not losses:
            return None
        worst = [max(col) for col in zip(*losses, strict=True)]
        best = [min(col) for col in zip(*losses, strict=True)]
        ref = [w + margin * max(w - b, abs(w) * 1e-9, 1e-12) for w, b in zip(worst, best, strict=True)]
        return [o.direction.sign * r for o, r in zip(self.items, ref, strict=True)]

    # -- stored form -----------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The JSON a study's config keeps (its metric/mode columns keep the primary objective)."""
        return {
            "objectives": [[o.name, o.direction.value] for o in self.items],
            "constraints": [[c.metric, c.op, c.bound] for c in self.constraints],
            "prune_on": ([[n, abs(w)] for n, w in self.judged.weights] if self.judged.scalarized
                         else self.judged.weights[0][0]),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], metric: str, mode: Any, what: str = "this study") -> Objectives:
        """A stored study's objectives (an older study holds only its metric and mode). The database
        may come from anyone: a malformed entry is a ValueError naming it."""
        try:
            stored = config.get("objectives")
            objectives = None if stored is None else dict(_pairs(stored))
            rows = config.get("constraints") or []
            if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) != 3 for r in rows):
                raise ValueError("constraints must be a list of [metric, op, bound]")
            constraints = dict(_pairs([[m, [op, b]] for m, op, b in rows]))
            prune_on = config.get("prune_on")
            if isinstance(prune_on, list):
                prune_on = dict(_pairs(prune_on))
            if objectives is None:
                return cls.of(metric, mode, None, constraints, prune_on, what)
            result = cls.of(None, None, objectives, constraints, prune_on, what)
            if (result.primary.name, result.primary.direction) != (metric, Direction.of(mode, what)):
                raise ValueError(f"the first objective {result.primary} is not the study's metric and mode "
                                 f"({short(metric)}, {mode})")
            return result
        except (ConfigError, TypeError, ValueError) as e:
            raise ValueError(f"the objectives stored for {what} are malformed ({e})") from None

    def describe(self) -> str:
        """One line, as the CLI and messages say it: ``max val_acc, min latency_ms; subject to latency_ms <= 2``."""
        text = ", ".join(f"{o.direction.value} {_cut(o.name)}" for o in self.items)
        if self.constraints:
            text += "; subject to " + ", ".join(str(c) for c in self.constraints)
        return text

    def to_json(self) -> dict[str, Any]:
        """What views, exports and ``--json`` show: the objectives, constraints and ``prune_on`` (as
        ``Study(prune_on=)`` takes it: a name, or a dict of objective -> weight)."""
        judge = self.judged
        return {
            "objectives": [{"name": o.name, "direction": o.direction.value} for o in self.items],
            "constraints": [{"metric": c.metric, "op": c.op, "bound": c.bound} for c in self.constraints],
            "prune_on": {n: abs(w) for n, w in judge.weights} if judge.scalarized else judge.names[0],
        }


# -- Pareto fronts and hypervolume, on points to minimize ------------------------------------------
def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every coordinate and better in one (minimizing)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def _dominators(p: Any, rows: Any = None, chunk: int = 1024) -> Any:
    """For each point of ``p`` (minimizing), how many of ``rows`` (default: all of ``p``) dominate it;
    in row chunks, so 10,000 points need megabytes, not the n x n matrix at once."""
    import numpy as np

    rows = p if rows is None else rows
    count = np.zeros(len(p), dtype=np.int64)
    for start in range(0, len(rows), chunk):
        r = rows[start:start + chunk][:, None, :]
        count += ((r <= p[None, :, :]).all(axis=2) & (r < p[None, :, :]).any(axis=2)).sum(axis=0)
    return count


def pareto_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates, in order (duplicates all kept). Swept in
    lexicographic order, where no later point can dominate an earlier one, so each point is compared
    with the front found so far only: fast while fronts are small, as they are."""
    import numpy as np

    if not len(points):
        return []
    p = np.asarray(points, dtype=float)
    order = np.lexsort(p.T[::-1])
    front = np.empty((0, p.shape[1]))
    keep = []
    for i in order:
        q = p[i]
        if not ((front <= q).all(axis=1) & (front < q).any(axis=1)).any():
            front = np.vstack([front, q])
            keep.append(int(i))
    return sorted(keep)


def layers(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's non-domination layer: 0 for the front, 1 for the front once it is removed...
    Two objectives: one sweep in sorted order with a binary search per point (O(n log n)); more: Deb's
    fast non-dominated sort, its dominance counts taken in chunks."""
    import numpy as np

    if not len(points):
        return []
    p = np.asarray(points, dtype=float)
    if p.shape[1] == 2:
        return _layers_2d(p)
    count = _dominators(p)
    layer = np.full(len(p), -1, dtype=np.int64)
    current, depth = np.flatnonzero(count == 0), 0
    while current.size:
        layer[current] = depth
        count -= _dominators(p, p[current])
        count[current] = -1  # placed: never picked again
        current, depth = np.flatnonzero(count == 0), depth + 1
    return [int(v) for v in layer]


def _layers_2d(p: Any) -> list[int]:
    """Layers of 2-D points: in order of x (then y), each layer's lowest y so far (with its x) is all
    that can dominate a later point; those lowest y rise from layer to layer, so a binary search finds
    the first layer that does not dominate the point."""
    import bisect

    import numpy as np

    lowest: list[tuple[float, float]] = []  # per layer: (lowest y, the x it came with)
    ys: list[float] = []
    layer = [0] * len(p)
    for i in np.lexsort((p[:, 1], p[:, 0])):
        x, y = float(p[i, 0]), float(p[i, 1])
        k = bisect.bisect_left(ys, y)  # layers whose lowest y is below y dominate the point
        while k < len(ys) and ys[k] == y and lowest[k][1] < x:
            k += 1  # an equal y with a smaller x dominates too
        layer[int(i)] = k
        if k == len(ys):
            ys.append(y)
            lowest.append((y, x))
        elif y < ys[k] or (y == ys[k] and x < lowest[k][1]):
            ys[k], lowest[k] = y, (y, x)
    return layer


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` up to ``reference`` (minimizing; points not better than
    the reference in every coordinate add nothing). Optuna's WFG implementation does the work."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    ref = np.asarray(reference, dtype=float)
    inside = [p for p in points if all(x < r for x, r in zip(p, ref, strict=True))]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.asarray(inside, dtype=float), ref))


def hypervolume_history(objectives: Objectives, trials: Sequence[S], reference: Sequence[float],
                        order: Callable[[S], Any] | None = None, at: Sequence[int] | None = None) -> list[float]:
    """The hypervolume after each trial (in ``order``, by default as given): how the front grew. With
    ``at`` (ascending indices), only after those trials: a long study's page draws a hundred points, not
    one per trial. The front is kept as it grows and measured again only when it changed (each
    measurement is a full WFG, seconds for a large 3-objective front)."""
    import numpy as np

    seq = sorted(trials, key=order) if order is not None else list(trials)
    ref = [o.direction.sign * float(r) for o, r in zip(objectives.items, reference, strict=True)]
    wanted = set(range(len(seq))) if at is None else set(at)
    front = np.empty((0, len(ref)))
    out: list[float] = []
    last, changed = 0.0, False
    for i, t in enumerate(seq):
        point = objectives.loss(t.values) if _state(t) == "completed" and objectives.feasible(t.values) else None
        if point is not None and not (front <= np.asarray(point)).all(axis=1).any():  # neither dominated nor a repeat
            p = np.asarray(point)
            front = np.vstack([front[~((p <= front).all(axis=1) & (p < front).any(axis=1))], p])
            changed = True
        if i in wanted:
            if changed:
                last, changed = hypervolume(front.tolist(), ref), False
            out.append(last)
    return out


# -- checking what users write -------------------------------------------------------------------------
def _constraints(value: Any, owner: str) -> tuple[Constraint, ...]:
    if value is None:
        return ()
    example = "{'latency_ms': ('<=', 2.0), 'params_m': ('<=', 1.0)}"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{owner}: constraints= takes a dict of metric -> ('<=' or '>=', bound), e.g. {example}; "
                          f"got {short(value)}.")
    out = []
    for metric, rule in value.items():
        name = _name(metric, owner, "constraints")
        if (not isinstance(rule, (tuple, list)) or len(rule) != 2 or rule[0] not in _OPS
                or finite(rule[1]) is None or isinstance(rule[1], bool)):
            raise ConfigError(f"{owner}: constraints[{short(name)}] must be ('<=', bound) or ('>=', bound) with a "
                              f"finite number, e.g. {example}; got {short(rule)}.")
        out.append(Constraint(name, str(rule[0]), float(rule[1])))
    return tuple(out)


def _judge(value: Any, objectives: Objectives, owner: str) -> Judge | None:
    if value is None:
        return None
    names = objectives.names
    listed = ", ".join(short(n) for n in names)  # stored or hostile names: quoted, cut, one line
    if isinstance(value, str):
        name = _name(value, owner, "prune_on")
        match = [o for o in objectives.items if o.name == name]
        if not match:
            raise ConfigError(f"{owner}: prune_on={short(name)} is not an objective; name one of {listed} "
                              f"(or weights over them, e.g. {{{short(names[0])}: 1.0}}).")
        return Judge(((name, 1.0),), match[0].direction)
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{owner}: prune_on= takes an objective's name or a dict of objective -> weight, e.g. "
                          f"{{{short(names[0])}: 1.0}}; got {short(value)}.")
    weights = []
    for name, weight in value.items():
        match = [o for o in objectives.items if o.name == name]
        if not match:
            raise ConfigError(f"{owner}: prune_on weighs {short(name)}, which is not an objective; weigh "
                              f"{listed}.")
        if isinstance(weight, bool) or finite(weight) is None or float(weight) <= 0:
            raise ConfigError(f"{owner}: prune_on[{short(name)}] must be a positive number (how much that objective "
                              f"counts; its direction is the objective's own); got {short(weight)}.")
        weights.append((str(name), -match[0].direction.sign * float(weight)))  # higher is better
    return Judge(tuple(weights), Direction.MAX, scalarized=True)


def _name(value: Any, owner: str, argument: str) -> str:
    if not isinstance(value, str) or not value:
        raise fail(argument, owner, "the name of a reported metric, e.g. 'val_loss'", _Shown(value))
    if value.startswith(_SYSTEM):
        raise ConfigError(f"{owner}: {value[:80]!r} is a system metric tuneloop samples (names starting with 'sys/'), "
                          f"never an objective or constraint; use a metric the trial reports.")
    return value


def _pairs(value: Any) -> list[tuple[str, Any]]:
    """Stored [name, value] pairs: each name a string, each once."""
    if not isinstance(value, list) or any(not isinstance(p, list) or len(p) != 2 or not isinstance(p[0], str)
                                          for p in value):
        raise ValueError("expected a list of [name, value] pairs with string names")
    names = [p[0] for p in value]
    if len(set(names)) != len(names):
        raise ValueError("a name appears twice")
    return [(p[0], p[1]) for p in value]


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool, string or NaN); else None. Stored
    values may come from anyone, so every reading of a metric goes through it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _second(pair: tuple[Any, Any]) -> Any:
    return pair[1]


def _state(trial: Any) -> str:
    state = trial.state
    return str(getattr(state, "value", state))


def _cut(name: str) -> str:
    """A name as messages show it: at most 80 characters."""
    return name if len(name) <= 80 else name[:77] + "..."


def short(value: Any) -> str:
    """``repr(value)`` cut to 80 characters: a message stays one readable line whatever a name holds."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Shown:
    """A value whose repr is cut (for ``fail``, which shows ``repr(got)``)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return short(self.value)
