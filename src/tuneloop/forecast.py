"""Learning-curve forecasts: a trial's final value, with an interval, from its partial curve.

The model averages simple parametric curve families (Domhan et al., 2015 used eleven with MCMC;
we keep the shapes that carry the weight and fit them in closed form):

    pow   y = a + b * t**-c       (power-law approach to an asymptote; c on a grid)
    exp   y = a + b * exp(-c * t) (exponential saturation; c on a grid)
    log   y = a + b * log(t)      (keeps growing: the family that is never sure of a plateau)
    flat  y = a                   (already converged)

where ``t`` is the step over the final step, so every fit extrapolates to ``t = 1``. For a fixed
``c`` each family is linear in ``(a, b)``, so every (family, c) is an ordinary least-squares fit
solved at once with NumPy; the models are averaged with BIC weights (a family's prior mass split
evenly over its grid) and the forecast is the mixture of their Gaussian predictive
distributions (parameter and noise variance, Student-t widened), so the interval carries the
uncertainty of which shape the curve has.

A model's own interval is only as good as its shapes. :class:`Calibration` makes it honest on
the study at hand: every completed trial's curve is cut at each length and forecast, and its
misses (final value minus forecast) are scored, each divided by the typical miss at that length.
A curve's score is its most extreme over all its looks; a running trial's bounds are widened to
the split-conformal quantile of these scores (times the typical miss at its length), and never
made narrower than the model's, so they hold at all of a trial's looks at once with the asked
confidence (a scheduler looks at every report: a bound that holds at each look alone is crossed
at *some* look far more often). Until enough trials completed for that confidence (19 at 0.95,
9 at 0.9) the bounds are the model's alone and marked uncalibrated.

Pure NumPy and SciPy: the scheduler and the dashboard share it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_POINTS = 5
"""Fewer points than this forecast nothing: a two-parameter fit needs 3 residual degrees of freedom."""
MAX_POINTS = 400
"""Longer curves are fitted on this many means of neighbouring reports (a fit's cost grows with its points)."""

_POW_C = np.geomspace(0.02, 5.0, 24)
_EXP_C = np.geomspace(0.3, 30.0, 24)


@dataclass(frozen=True)
class Forecast:
    """A curve's forecast value at ``step`` and one-sided bounds at ``confidence`` each."""

    step: float  # an int where the steps are
    value: float
    low: float
    high: float
    confidence: float
    sd: float
    calibrated: bool  # True when completed trials widened (or confirmed) the model's interval
    weights: dict[str, float] = field(default_factory=dict)  # each family's share of the mixture

    def to_dict(self) -> dict[str, object]:
        return {"step": self.step, "value": self.value, "low": self.low, "high": self.high,
                "confidence": self.confidence, "calibrated": self.calibrated,
                "weights": {k: round(v, 4) for k, v in self.weights.items()}}


@dataclass(frozen=True)
class _Mixture:
    """The fitted models' forecasts, in the curve's scaled units: ``value = scaled * unit + centre``."""

    mean: np.ndarray  # each model's forecast
    scale: np.ndarray  # each model's predictive sd
    weight: np.ndarray  # normalized
    family: list[str]
    unit: float = 1.0
    centre: float = 0.0

    @property
    def value(self) -> float:
        return float(self.weight @ self.mean) * self.unit + self.centre

    @property
    def sd(self) -> float:
        m = float(self.weight @ self.mean)
        return math.sqrt(max(float(self.weight @ (self.scale ** 2 + (self.mean - m) ** 2)), 0.0)) * self.unit

    def quantile(self, p: float) -> float:
        """The mixture's ``p`` quantile, by bisection on its CDF."""
        from scipy.special import ndtr

        lo = float(np.min(self.mean - 12 * self.scale))
        hi = float(np.max(self.mean + 12 * self.scale))
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if float(self.weight @ ndtr((mid - self.mean) / self.scale)) < p:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi) * self.unit + self.centre


_BASES = {  # family -> (basis g(t; c) for an array of c, shape (len(c), len(t)); its c grid)
    "pow": (lambda t, c: t[None, :] ** -c[:, None], _POW_C),
    "exp": (lambda t, c: np.exp(-c[:, None] * t[None, :]), _EXP_C),
}


def _rss(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Residual sum of squares of y on [1, g] for each row of ``g``."""
    gc = g - g.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    sxx = (gc ** 2).sum(axis=1)
    sxy = gc @ yc
    return np.where(sxx > 1e-300, float(yc @ yc) - sxy ** 2 / np.maximum(sxx, 1e-300), np.inf)


def _grid(family: str, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The family's c grid with its best point moved to the least-squares c (three zooms between
    its neighbours): a grid point near the true c still extrapolates visibly wrong on a smooth curve."""
    basis, grid = _BASES[family]
    rss = _rss(basis(t, grid), y)
    if not np.isfinite(rss).any():
        return grid
    i = int(np.nanargmin(rss))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
    best = grid[i]
    for _ in range(3):
        local = np.exp(np.linspace(lo, hi, 9))
        r = _rss(basis(t, local), y)
        if not np.isfinite(r).any():
            break
        j = int(np.nanargmin(r))
        best = local[j]
        lo, hi = math.log(local[max(j - 1, 0)]), math.log(local[min(j + 1, 8)])
    out = grid.copy()
    out[i] = best
    return out


def _fit(x: np.ndarray, y: np.ndarray, final: float) -> _Mixture | None:
    """Every (family, c) least-squares fit of ``y`` on ``x``, forecast at ``final``."""
    n = len(x)
    if n < MIN_POINTS - 1 or final <= 0:
        return None
    t = x / final
    one = np.ones(1)
    gs, g1s, family, prior = [np.log(t)[None, :]], [np.zeros(1)], ["log"], [np.ones(1)]
    if n >= 5:
        for name, (basis, _) in _BASES.items():
            cs = _grid(name, t, y)
            gs.append(basis(t, cs))
            g1s.append(basis(one, cs)[:, 0])
            family += [name] * len(cs)
            prior.append(np.full(len(cs), 1 / len(cs)))
    # basis g(t) of each two-parameter model, shape (models, n), and g at t = 1
    g, g1, prior_w = np.vstack(gs), np.concatenate(g1s), np.concatenate(prior)
    ybar = y.mean()
    syy = float(((y - ybar) ** 2).sum())
    span = float(np.ptp(y)) if n > 1 else 0.0
    floor = (1e-3 * span + 1e-12) ** 2  # a perfect fit still has a little noise (0.1% of its span)
    gbar = g.mean(axis=1)
    gc = g - gbar[:, None]
    sxx = (gc ** 2).sum(axis=1)
    ok = sxx > 1e-12 * (1.0 + np.abs(gbar) ** 2)
    sxy = gc @ (y - ybar)
    b = np.where(ok, sxy / np.where(ok, sxx, 1.0), 0.0)
    a = ybar - b * gbar
    rss = np.maximum(syy - b * sxy, 0.0)
    means, scales, logw, fam = [], [], [], []
    dof2 = n - 2
    if dof2 >= 3:
        s2 = np.maximum(rss / dof2, floor)
        widen = dof2 / (dof2 - 2)  # Student-t variance over a normal's
        var = s2 * (1 + 1 / n + (g1 - gbar) ** 2 / np.where(ok, sxx, 1.0)) * widen
        bic = n * np.log(np.maximum(rss / n, floor)) + 2 * np.log(n)
        keep = ok & np.isfinite(var) & np.isfinite(a + b * g1)
        means.append((a + b * g1)[keep])
        scales.append(np.sqrt(var[keep]))
        logw.append((-0.5 * bic + np.log(prior_w))[keep])
        fam += [f for f, k in zip(family, keep, strict=True) if k]
    dof1 = n - 1
    if dof1 >= 3:  # flat: the mean of the curve's last half is where it stays
        tail = y[n // 2:]
        s2 = max(syy / dof1, floor)
        means.append(np.array([tail.mean()]))
        scales.append(np.array([math.sqrt(s2 * (1 + 1 / len(tail)) * dof1 / (dof1 - 2))]))
        logw.append(np.array([-0.5 * (n * math.log(max(syy / n, floor)) + math.log(n))]))
        fam.append("flat")
    if not means:
        return None
    mean, scale, lw = np.concatenate(means), np.concatenate(scales), np.concatenate(logw)
    w = np.exp(lw - lw.max())
    return _Mixture(mean, np.maximum(scale, math.sqrt(floor)), w / w.sum(), fam)


def _points(points: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray] | None:
    """``points`` as sorted float arrays (steps, values), a repeated step's first value kept; None
    when a value is not finite (a diverged curve is the driver's call) or fewer than ``MIN_POINTS``."""
    try:
        pairs = [(float(s), float(v)) for s, v in points]
    except (TypeError, ValueError, OverflowError):
        return None
    if len(pairs) < MIN_POINTS or not all(math.isfinite(s) and math.isfinite(v) for s, v in pairs):
        return None
    steps = np.array([p[0] for p in pairs])
    values = np.array([p[1] for p in pairs])
    if np.any(np.diff(steps) <= 0):
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        keep = np.concatenate([[True], np.diff(steps) > 0])
        steps, values = steps[keep], values[keep]
    if len(steps) < MIN_POINTS:
        return None
    return steps, values


def _fit_steps(steps: np.ndarray, values: np.ndarray, final_step: float) -> _Mixture | None:
    """The mixture fitted to a curve at ``steps`` and forecast at ``final_step``, on a scale every
    curve shares: steps counted in reports (the first 1, the typical gap between reports 1 apart:
    epochs 0..29 and iterations 1000..30000 alike), values centred and scaled by their span (1e300
    and 1e-300 alike), and long curves thinned to ``MAX_POINTS`` means of neighbouring reports."""
    if final_step <= steps[-1]:
        return None
    first, gap = steps[0], float(np.median(np.diff(steps)))
    x, final = (steps - first) / gap + 1, (final_step - first) / gap + 1
    y = values
    if len(x) > MAX_POINTS:
        bins = np.array_split(np.arange(len(x)), MAX_POINTS)
        x = np.array([x[b].mean() for b in bins])
        y = np.array([y[b].mean() for b in bins])
    centre = float(y.mean())
    span = float(np.ptp(y))
    unit = span if span > 0 else max(abs(centre), 1e-300)
    mix = _fit(x, (y - centre) / unit, float(final))
    if mix is None:
        return None
    return _Mixture(mix.mean, mix.scale, mix.weight, mix.family, unit, centre)


class Calibration:
    """How far completed curves' forecasts missed, over all their looks at once: what widens a
    running trial's interval so that it holds at every report together, not at each one alone.

    A scheduler looks at a trial at every report; an interval that covers 95% at each look is
    crossed at *some* look far more often than 5%. Each completed curve is cut at every length
    ``n`` of ``MIN_POINTS`` points or more and forecast; its miss ``final - forecast`` is its score
    at ``n``. Early looks miss by more than late ones, so each look's scores are divided by their
    typical size at that look (the median absolute miss over the curves that reached it), and each
    curve keeps its most extreme normalized score over all its looks, one per side. The
    split-conformal quantile ``q`` of these per-curve extremes gives the bound at look ``n``:
    ``q`` times that look's typical miss (a normalized max-score band: wide where forecasts are
    poor, narrow where they are good, and holding at all looks together with the asked
    confidence, trials exchangeable)."""

    def __init__(self, limit: int | None = None) -> None:
        self._scores: collections.deque[dict[int, float]] = collections.deque(maxlen=limit)
        """Each scored curve's misses by look; with ``limit``, only the latest ``limit`` curves."""
        self._scale: dict[int, float] | None = None  # each look's typical miss, cached until a curve is added

    @property
    def curves(self) -> int:
        """How many completed curves were scored."""
        return len(self._scores)

    def add(self, points: Sequence[tuple[float, float]], final_value: float, final_step: float | None = None,
            looks: int | None = None) -> None:
        """A completed trial's curve and its final value: each prefix of ``MIN_POINTS`` points or more
        is forecast to ``final_step`` (its last step by default) and scored against ``final_value``.
        ``looks`` caps the prefixes scored (evenly spaced; a display's calibration, not a scheduler's,
        which looks at every report)."""
        prepared = _points(points)
        if prepared is None or not math.isfinite(final_value):
            return
        steps, values = prepared
        end = float(steps[-1]) if final_step is None else float(final_step)
        lengths: list[int] = list(range(MIN_POINTS, len(steps)))
        if looks is not None and len(lengths) > looks:
            lengths = sorted({round(float(x)) for x in np.linspace(MIN_POINTS, len(steps) - 1, max(looks, 1))})
        scores: dict[int, float] = {}
        for n in lengths:
            if steps[n - 1] >= end:
                break
            mix = _fit_steps(steps[:n], values[:n], end)
            if mix is not None:
                scores[n] = final_value - mix.value
        if scores:
            self._scores.append(scores)
            self._scale = None

    def _scales(self) -> dict[int, float]:
        if self._scale is None:
            by_look: dict[int, list[float]] = {}
            for scores in self._scores:
                for n, z in scores.items():
                    by_look.setdefault(n, []).append(abs(z))
            self._scale = {n: max(float(np.median(v)), 1e-12) for n, v in by_look.items()}
        return self._scale

    def scale(self, n: int) -> float | None:
        """The typical miss at look ``n`` (the nearest look the curves reached), None without curves."""
        scales = self._scales()
        if not scales:
            return None
        if n in scales:
            return scales[n]
        return scales[min(scales, key=lambda k: (abs(k - n), -k))]

    @staticmethod
    def needed(confidence: float) -> int:
        """Completed curves needed before a ``confidence`` bound exists: ceil((m + 1) c) <= m."""
        m = 1
        while math.ceil((m + 1) * confidence - 1e-9) > m:
            m += 1
        return m

    def bounds(self, confidence: float, n: int) -> tuple[float, float] | None:
        """(low, high) at look ``n`` (a curve of ``n`` points): how far below and above its forecast
        the final value lies (``low`` negative), at all looks together with ``confidence``; None
        until :meth:`needed` curves were scored."""
        m = len(self._scores)
        rank = math.ceil((m + 1) * confidence - 1e-9)
        if m == 0 or rank > m:
            return None
        scales = self._scales()
        highs = np.array([max(z / scales[k] for k, z in s.items()) for s in self._scores])
        lows = np.array([min(z / scales[k] for k, z in s.items()) for s in self._scores])
        high = float(np.partition(highs, rank - 1)[rank - 1])
        low = float(-np.partition(-lows, rank - 1)[rank - 1])
        here = self.scale(n)
        assert here is not None  # curves were scored
        return low * here, high * here


def forecast(points: Sequence[tuple[float, float]], final_step: float, *, confidence: float = 0.95,
             calibration: Calibration | None = None) -> Forecast | None:
    """The value at ``final_step`` of the curve whose first points are ``points`` [(step, value)],
    with one-sided ``confidence`` bounds (``low``, ``high``); None when fewer than
    :data:`MIN_POINTS` finite points were reported or ``final_step`` is already reached."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must lie between 0.5 and 1, got {confidence!r}")
    prepared = _points(points)
    if prepared is None:
        return None
    mix = _fit_steps(*prepared, float(final_step))
    if mix is None or not math.isfinite(mix.value):
        return None
    value, sd = mix.value, (mix.sd if mix.sd > 0 else 1e-300)
    z_hi = (mix.quantile(confidence) - value) / sd
    z_lo = (value - mix.quantile(1 - confidence)) / sd
    calibrated = False
    bounds = None if calibration is None else calibration.bounds(confidence, len(prepared[0]))
    if bounds is not None:
        z_hi, z_lo, calibrated = max(z_hi, bounds[1] / sd), max(z_lo, -bounds[0] / sd), True
    weights: dict[str, float] = {}
    for f, w in zip(mix.family, mix.weight, strict=True):
        weights[f] = weights.get(f, 0.0) + float(w)
    step = float(final_step)
    return Forecast(int(step) if step.is_integer() else step, value, value - z_lo * sd, value + z_hi * sd, confidence, sd, calibrated,
                    weights)
