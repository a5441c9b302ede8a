"""Which bounds the study's best region crowds, judged from every completed trial.

A bound is crowded, and worth widening, when either holds:

1. **the objective still improves toward it, other parameters held fixed.** An additive surrogate is
   fitted to every completed trial: least squares of the trial's score (the normal score of its
   place in the ranking, so units and outliers do not matter and effects stay additive) on a
   piecewise-linear function of each numeric parameter (knots 30% in from each bound, in the
   parameter's own scale: log for log ones), one-hot Choice values, and an indicator for each
   conditional parameter (judged only where it is active). The bound counts when the parameter's
   main effect over the last 30% of its range improves toward the bound by at least ``MIN_GAIN`` of
   the scores' spread and significantly (one-sided t test on the fitted slope, ``ALPHA``, with the
   residual spread as the noise). So the other parameters that matter do not hide the trend, a
   plateau that reaches the bound (flat over its last 30%) and an optimum inside (worse toward the
   bound) do not count, and a searcher crowding a region is no evidence by itself.
2. **every one of the best trials lies in the outer 10% of the range** (the best 10% of the trials
   where the parameter is active, at least 3): the plainest sign, kept for studies too small or
   too concentrated to fit a trend.

Choice parameters have no bounds. The miss and false-alarm rates of this rule on synthetic studies
with known answers are measured by ``benchmarks/boundary_suite.py`` (docs/analyze.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneloop._validation import finite_float
from tuneloop.space import Choice, Int, LogFloat
from tuneloop.store import TrialRecord

EDGE = 0.10  # the edge band: the outer 10% of the range, in the parameter's own scale
TOP_FRACTION = 0.10
KNOT = 0.30  # the trend is read over the last 30% of the range toward a bound
ALPHA = 0.01  # one-sided, per bound
MIN_GAIN = 0.10  # in sd of the trials' scores: smaller trends are not worth a wider range
MIN_TRIALS = 10
MIN_BAND = 5  # trials needed within the last 30% to read a trend there


@dataclass(frozen=True)
class Crowding:
    """Bound ``side`` (``"low"`` or ``"high"``) of parameter ``name`` is crowded; ``evidence`` says why."""

    name: str
    side: str
    bound: float
    evidence: str

    @property
    def where(self) -> str:
        return "upper" if self.side == "high" else "lower"

    @property
    def warning(self) -> str:
        """One line: the parameter, the bound, the evidence and the fix (what ``param_effects`` shows)."""
        way = "above" if self.side == "high" else "below"
        return (f"the best region crowds the {self.where} bound of {self.name} ({self.evidence}): expand "
                f"{self.name} {way} {self.bound:g} (tuneloop refine)")


def position(param: Any, value: float) -> float:
    """Where ``value`` lies in the parameter's range, 0..1, on its own scale (log for log ones)."""
    low, high = float(param.low), float(param.high)
    if is_log(param):
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def is_log(param: Any) -> bool:
    return isinstance(param, LogFloat) or (isinstance(param, Int) and param.log)


def crowded_bounds(ranked: Sequence[TrialRecord], params: dict[str, Any]) -> list[Crowding]:
    """The crowded bounds of ``params`` (a flat name -> Param map, children included), from ``ranked``: the
    completed trials best first, ties in value next to each other."""
    n = len(ranked)
    if n < MIN_TRIALS:
        return []
    score = _scores(ranked)
    columns = {k: _column(p, k, ranked) for k, p in params.items()}
    model = _additive(columns, params, score)
    out = []
    for name, p in params.items():
        if isinstance(p, Choice):
            continue
        u = columns[name]
        active = np.flatnonzero(u >= 0)
        if len(active) < MIN_TRIALS:
            continue
        top = active[:max(3, math.ceil(TOP_FRACTION * len(active)))]  # ranked: the first active are the best
        for side in ("low", "high"):
            evidence = _evidence(u, top, side, model, name)
            if evidence:
                out.append(Crowding(name, side, float(p.high if side == "high" else p.low), evidence))
    return out


def _evidence(u: np.ndarray, top: np.ndarray, side: str, model: _Additive | None, name: str) -> str:
    if bool((_distance(u[top], side) <= EDGE + 1e-12).all()):
        return f"all {len(top)} best trials lie in the outer 10% of the range"
    if model is None:
        return ""
    got = model.gain(name, side, u)
    if got is None:
        return ""
    gain, t, df = got
    if gain >= MIN_GAIN and t >= _critical(df):
        return (f"the objective still improves over the last {KNOT:.0%} of the range toward it, other parameters "
                f"held fixed: by {gain:.2f} of the trials' spread, t={t:.1f}")
    return ""


def _critical(df: int) -> float:
    from scipy.stats import t

    return float(t.isf(ALPHA, df))


def _distance(u: np.ndarray, side: str) -> np.ndarray:
    """How far each position lies from bound ``side``, as a share of the range."""
    return 1.0 - u if side == "high" else u


@dataclass
class _Additive:
    """Least squares of the trials' scores on piecewise-linear functions of every parameter (knots
    ``KNOT`` from each bound), one-hot Choice values and an indicator per conditional parameter."""

    where: dict[str, int]  # a numeric parameter's first column
    coef: np.ndarray
    cov: np.ndarray
    df: int

    def gain(self, name: str, side: str, u: np.ndarray) -> tuple[float, float, int] | None:
        """How much better the score gets over the last ``KNOT`` of the range toward ``side`` (in sd of
        the scores), its t statistic and degrees of freedom; None where the trials cannot tell."""
        near = u[(u >= 0) & (_distance(u, side) <= KNOT + 1e-12)]
        if len(near) < MIN_BAND or len(np.unique(np.round(near, 6))) < 3:
            return None
        i = self.where[name]
        # the slope on the last segment: lin + both hinges (high side), or lin alone (low side)
        w = np.zeros(len(self.coef))
        if side == "high":
            w[i:i + 3] = 1.0
        else:
            w[i] = -1.0
        w *= KNOT  # over the segment's width; scores are "higher is worse": a better edge is a drop
        change = float(w @ self.coef)
        se = float(math.sqrt(max(w @ self.cov @ w, 1e-300)))
        return -change, -change / se, self.df


def _additive(columns: dict[str, np.ndarray], params: dict[str, Any], score: np.ndarray) -> _Additive | None:
    """The surrogate fitted to ``score``; None when there are too few trials for its columns."""
    n = len(score)
    blocks, where = [np.ones((n, 1))], {}
    width = 1
    for name, p in params.items():
        u = columns[name]
        on = u >= 0
        if isinstance(p, Choice):
            block = np.column_stack([np.ones(n)] + [np.where(u == k, 1.0, 0.0) for k in range(1, len(p.values))])[:, 1:]
        else:
            x = np.where(on, u, 0.0)
            block = np.column_stack([x, np.maximum(x - KNOT, 0), np.maximum(x - (1 - KNOT), 0)])
            where[name] = width
        if not on.all():  # a conditional parameter: its own level where it is off
            block = np.column_stack([block, on.astype(float)])
        blocks.append(block)
        width += block.shape[1]
    design = np.hstack(blocks)
    df = n - np.linalg.matrix_rank(design)
    if df < MIN_TRIALS:
        return None
    coef, *_ = np.linalg.lstsq(design, score, rcond=None)
    resid = score - design @ coef
    sigma2 = float(resid @ resid) / df
    return _Additive(where, coef, sigma2 * np.linalg.pinv(design.T @ design), int(df))


def _scores(ranked: Sequence[TrialRecord]) -> np.ndarray:
    """Each trial's normal score from its place in the ranking (best: lowest); equal values share
    their mean place. Ranks make outliers and units harmless; normal scores keep sums additive."""
    from scipy.stats import norm

    n = len(ranked)
    value = [t.value for t in ranked]
    values = [t.values for t in ranked]
    places: list[float] = []
    i = 0
    while i < n:
        j = i
        while j + 1 < n and value[j + 1] == value[i] and values[j + 1] == values[i]:
            j += 1
        places += [(i + j) / 2] * (j + 1 - i)
        i = j + 1
    return np.asarray(norm.ppf((np.array(places, dtype=float) + 0.5) / n))


_MISSING = object()


def _column(p: Any, name: str, trials: Sequence[TrialRecord]) -> np.ndarray:
    """One feature: positions 0..1 (a Choice: its value's index), -1 where the parameter is inactive."""
    stored = [t.params.get(name, _MISSING) for t in trials]
    if isinstance(p, Choice):
        return _choice_column(p, stored)
    log = is_log(p)
    try:  # the constant parts of position(), computed once: the same floats
        low, high = float(p.low), float(p.high)
        if log:
            start = math.log(low)
            span = math.log(high) - start
        else:
            start, span = low, high - low
    except (ArithmeticError, ValueError):  # a range position() cannot measure: let it say so, trial by trial
        return _column_slow(p, stored)
    fast = _positions(stored, log, start, span)
    if fast is not None:
        return fast
    out = []
    for v in stored:
        if v is _MISSING:
            out.append(-1.0)
            continue
        x = v if type(v) is float and v - v == 0.0 else finite_float(v)  # a finite float: the stored case
        if x is None:
            out.append(-1.0)
            continue
        if log:
            if not x > 0:
                out.append(-1.0)
                continue
            out.append(min(1.0, max(0.0, (math.log(x) - start) / span)))
        else:
            out.append(min(1.0, max(0.0, (x - start) / span)))
    return np.array(out, dtype=float)


def _positions(stored: list[Any], log: bool, start: float, span: float) -> np.ndarray | None:
    """The usual column at numpy's speed: every trial has the parameter as a finite number (positive for a
    log one). The same floats as the loop: logs by math.log, then one IEEE subtraction and division each,
    and the clip as min(1.0, max(0.0, p)) takes it (p when p > 0, then when p < 1; NaN: 0). None otherwise."""
    kinds = set(map(type, stored))
    if span == 0 or not kinds <= {float, int}:
        return None
    try:
        x = stored if kinds == {float} else [float(v) for v in stored]
    except OverflowError:
        return None
    a = np.array(x, dtype=float)
    if not np.isfinite(a).all() or (log and not (a > 0).all()):
        return None
    pos = ((np.array([math.log(v) for v in x], dtype=float) if log else a) - start) / span
    pos = np.where(pos > 0.0, pos, 0.0)
    return np.where(pos < 1.0, pos, 1.0)


def _column_slow(p: Any, stored: list[Any]) -> np.ndarray:
    out = np.full(len(stored), -1.0)
    for i, v in enumerate(stored):
        if v is not _MISSING and (x := finite_float(v)) is not None and (x > 0 or not is_log(p)):
            out[i] = min(1.0, max(0.0, position(p, x)))
    return out


def _choice_column(p: Choice, stored: list[Any]) -> np.ndarray:
    seen: dict[Any, float] = {}
    return np.array([-1.0 if v is _MISSING else _choice_index(p, v, seen) for v in stored], dtype=float)


def _choice_index(p: Choice, v: Any, seen: dict[Any, float]) -> float:
    """``v``'s index among the Choice's values (-1 when it is none of them), remembered by type and
    value for hashable ``v`` (the Choice's own test reads only those)."""
    try:
        key = (type(v), v)
        return seen[key]
    except KeyError:
        pass
    except TypeError:  # unhashable (a stored list or object): asked each time
        return _index_of(p, v)
    got = seen[key] = _index_of(p, v)
    return got


def _index_of(p: Choice, v: Any) -> float:
    try:
        return float(p.index(v))
    except KeyError:
        return -1.0
