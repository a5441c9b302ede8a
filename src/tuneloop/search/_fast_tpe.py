"""``fasttpe``: a multivariate Tree-structured Parzen Estimator in NumPy that stays cheap at 10,000 trials.

The model is Optuna's multivariate TPE (same gamma, kernel widths, prior component, weights and
candidate count; a lattice parameter's candidates snapped to the lattice and scored by each kernel's mass
over their cell, as Optuna does), rebuilt per ask from arrays kept beside the searcher instead of from trial
objects: a ``tell`` appends one row, an ``ask`` selects the best gamma-fraction (at most 25 rows) with
``argpartition`` and scores its candidates against a bounded sample of the rest (``max_above``
rows, drawn uniformly, weights kept), so an ask costs about the same at 10,000 trials as at 1,000.

A conditional space is modelled branch by branch (Optuna's ``group``): each sub-space switched on by
a Choice value learns only from the trials in which it was active. Trials in flight are constant
liars: they count as bad until their result comes. One objective only.
"""

from __future__ import annotations

import json
import math
import secrets
from typing import Any

import numpy as np

from tuneloop._validation import check_number, check_positive_int, fail
from tuneloop.direction import Direction
from tuneloop.errors import ConfigError
from tuneloop.objectives import Objectives
from tuneloop.search._base import Outcome, Proposal, Searcher, searchers
from tuneloop.space import Choice, Float, Int, LogFloat, Param, Space
from tuneloop.store import TrialState

_SQRT2 = math.sqrt(2.0)


def _bounds(p: Param) -> tuple[float, float]:
    """The interval a numeric parameter is modelled on (a log scale for log ones; lattices padded by half a step)."""
    if isinstance(p, LogFloat):
        return math.log(p.low), math.log(p.high)
    if isinstance(p, Int):
        if p.log:
            return math.log(p.low - 0.5), math.log(p.high + 0.5)
        return p.low - p.step / 2, p.high + p.step / 2
    assert isinstance(p, Float)
    pad = 0.0 if p.step is None else p.step / 2
    return p.low - pad, p.high + pad


def _encode(p: Param, value: Any) -> float:
    if isinstance(p, Choice):
        return float(p.index(value))
    return math.log(value) if isinstance(p, LogFloat) or (isinstance(p, Int) and p.log) else float(value)


def _decode(p: Param, x: float) -> Any:
    if isinstance(p, Choice):
        return p.values[int(x)]
    if isinstance(p, LogFloat):
        return min(max(math.exp(x), p.low), p.high)
    if isinstance(p, Int):
        v = math.exp(x) if p.log else x
        return min(max(p.low + p.step * round((v - p.low) / p.step), p.low), p.high)
    assert isinstance(p, Float)
    if p.step is not None:
        x = p.low + p.step * round((x - p.low) / p.step)
    return min(max(x, p.low), p.high)


def _lattice(p: Param) -> tuple[float, float, float, bool] | None:
    """(low, high, step, log) of a parameter that takes values on a lattice (Int, stepped Float), else None."""
    if isinstance(p, Int):
        return float(p.low), float(p.high), float(p.step), p.log
    if isinstance(p, Float) and p.step is not None:
        return p.low, p.high, p.step, False
    return None


def _log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a < b, accurate in both tails (Optuna's ``_log_gauss_mass``)."""
    from scipy.special import log_ndtr, ndtr

    flip = a > 0  # the right tail, mirrored into the left one
    a, b = np.where(flip, -b, a), np.where(flip, -a, b)
    out = np.empty_like(a)
    left = b <= 0
    with np.errstate(divide="ignore"):  # an empty interval is log(0) = -inf, as in Optuna
        la, lb = log_ndtr(a[left]), log_ndtr(b[left])
        out[left] = lb + np.log1p(-np.exp(la - lb))
        mid = ~left  # a <= 0 < b: one minus both tails, without cancelling near 1
        out[mid] = np.log1p(-ndtr(a[mid]) - ndtr(-b[mid]))
    return out


def _weights(n: int) -> np.ndarray:
    """Optuna's default weights: recent observations count fully, older ones ramp down after 25."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, n - 25), np.ones(25)])


class _Group:
    """The parameters of one (sub-)space and the rows of every trial in which it was active."""

    def __init__(self, space: Space) -> None:
        self.names, self.params = list(space), list(space.values())
        self.x = np.empty((64, len(self.params)))  # encoded values, one row a trial, in the order told
        self.rank = np.empty((64, 3))  # (kind, -step, value to minimize): lower is better
        self.n = 0
        self.cat = np.array([isinstance(p, Choice) for p in self.params])
        self.lattice = {j: lat for j, p in enumerate(self.params) if (lat := _lattice(p)) is not None}
        b = [(0.0, float(len(p.values))) if isinstance(p, Choice) else _bounds(p) for p in self.params]
        self.low, self.high = np.array([v[0] for v in b]), np.array([v[1] for v in b])

    def snap(self, j: int, x: np.ndarray) -> np.ndarray:
        """Encoded values of lattice parameter ``j`` moved to their nearest lattice points."""
        low, high, step, log = self.lattice[j]
        v = np.exp(x) if log else x
        v = np.clip(low + step * np.round((v - low) / step), low, high)
        return np.log(v) if log else v

    def cell(self, j: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The encoded interval each lattice point of parameter ``j`` stands for (half a step either side)."""
        _, _, step, log = self.lattice[j]
        v = np.exp(x) if log else x
        lo, hi = v - step / 2, v + step / 2
        return (np.log(lo), np.log(hi)) if log else (lo, hi)

    def add(self, row: np.ndarray, rank: tuple[float, float, float]) -> None:
        if self.n == len(self.x):  # amortized doubling: a tell costs O(1)
            self.x = np.concatenate([self.x, np.empty_like(self.x)])
            self.rank = np.concatenate([self.rank, np.empty_like(self.rank)])
        self.x[self.n], self.rank[self.n] = row, rank
        self.n += 1


class FastTPE(Searcher):
    """Multivariate TPE over NumPy arrays; ``searcher={"name": "fasttpe", "max_above": 1024}``."""

    def __init__(self, space: Space, seed: int | None = None, mode: Direction | str = Direction.MIN, *,
                 n_startup_trials: int = 10, n_ei_candidates: int = 24, prior_weight: float = 1.0,
                 max_above: int = 1024) -> None:
        self.space = space
        self.sign = Direction.of(mode, "FastTPE").sign
        self.n_startup = check_positive_int(n_startup_trials, "n_startup_trials", "FastTPE", allow_zero=True)
        self.n_candidates = check_positive_int(n_ei_candidates, "n_ei_candidates", "FastTPE")
        self.max_above = check_positive_int(max_above, "max_above", "FastTPE")
        self.prior_weight = check_number(prior_weight, "prior_weight", "FastTPE")
        if not self.prior_weight > 0:
            raise fail("prior_weight", "FastTPE", "positive", prior_weight)
        self._rng = np.random.default_rng(seed)
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._add_groups(space, ())
        self._pending: dict[Any, dict[str, Any]] = {}  # token or trial key -> params in flight
        self._tokens = 0

    def _add_groups(self, space: Space, key: tuple[Any, ...]) -> None:
        self._groups[key] = _Group(space)
        for name, p in space.items():
            if isinstance(p, Choice):
                for i, child in p.children.items():
                    self._add_groups(child, (*key, name, i))

    # -- proposing -------------------------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Proposal]:
        return [self._propose({}) for _ in range(n)]

    def ask_with(self, fixed: dict[str, Any]) -> Proposal | None:
        return self._propose(fixed)

    def _propose(self, fixed: dict[str, Any]) -> Proposal:
        liars = list(self._pending.values())
        params: dict[str, Any] = {}
        self._sample(self.space, (), fixed, liars, params)
        self._tokens += 1
        token = ("fasttpe", self._tokens)
        self._pending[token] = params
        return Proposal(params, token)

    def _sample(self, space: Space, key: tuple[Any, ...], fixed: dict[str, Any], liars: list[dict[str, Any]],
                out: dict[str, Any]) -> None:
        group = self._groups[key]
        pinned = {j: _encode(p, fixed[name]) for j, (name, p) in enumerate(zip(group.names, group.params))
                  if name in fixed and p.contains(fixed[name])}
        row = self._sample_group(group, pinned, [c for c in liars if self._active(group, c)])
        for j, (name, p, x) in enumerate(zip(group.names, group.params, row, strict=True)):
            out[name] = fixed[name] if j in pinned else _decode(p, float(x))  # exp(log(v)) may not give v back
        for name, p in space.items():
            if isinstance(p, Choice):
                i = p.index(out[name])
                if i in p.children:
                    self._sample(p.children[i], (*key, name, i), fixed, liars, out)

    def _sample_group(self, g: _Group, pinned: dict[int, float], liars: list[dict[str, Any]]) -> np.ndarray:
        d, rng = len(g.params), self._rng
        if g.n < max(self.n_startup, 1):
            row = rng.uniform(g.low, g.high)
            row[g.cat] = np.floor(row[g.cat])
        else:
            rows, order = g.x[:g.n], g.rank[:g.n]
            n_below = min(math.ceil(0.1 * g.n), 25)  # trials in flight are not counted (Optuna's rule)
            kind0 = np.flatnonzero(order[:, 0] == 0)
            if len(kind0) >= n_below:  # the common case: completed trials fill the best fraction
                below = kind0[np.argpartition(order[kind0, 2], n_below - 1)[:n_below]]
            else:
                below = np.lexsort((order[:, 2], order[:, 1], order[:, 0]))[:n_below]
            below = np.sort(below)
            mask = np.ones(g.n, bool)
            mask[below] = False
            above = np.flatnonzero(mask)
            liar_rows = np.array([self._row(g, c) for c in liars]).reshape(-1, d)
            total = len(above) + len(liar_rows)
            w_above = _weights(total)
            if total > self.max_above:  # a uniform sample of the rest, with its weights: O(1) in the history
                keep = np.sort(rng.choice(total, self.max_above, replace=False))
                w_above, cut = w_above[keep], int(np.searchsorted(keep, len(above)))
                x_above = np.concatenate([rows[above[keep[:cut]]], liar_rows[keep[cut:] - len(above)]])
            else:
                x_above = np.concatenate([rows[above], liar_rows])
            l_model = self._model(g, rows[below], _weights(len(below)))
            g_model = self._model(g, x_above, w_above)
            cand = self._draw(g, l_model, self.n_candidates)
            for j, v in pinned.items():
                cand[:, j] = v
            score = self._logpdf(g, l_model, cand) - self._logpdf(g, g_model, cand)
            row = cand[int(np.argmax(score))]
        for j, v in pinned.items():
            row[j] = v
        return row

    def _model(self, g: _Group, mus: np.ndarray, weights: np.ndarray) -> tuple[Any, ...]:
        """Kernels at each observation plus a prior kernel (the centre, as wide as the range)."""
        m = len(mus)
        span = g.high - g.low
        mu = np.vstack([mus, (g.low + g.high) / 2])
        sig = np.vstack([self._widths(g, mus), span])
        w = np.append(weights, self.prior_weight)
        w = w / w.sum()
        cats = []
        for j in np.flatnonzero(g.cat):
            k = int(g.high[j])
            probs = np.full((m + 1, k), self.prior_weight / (m + 1))
            probs[np.arange(m), mus[:, j].astype(int)] += 1.0
            cats.append((j, probs / probs.sum(axis=1, keepdims=True)))
        from scipy.special import ndtr

        num = ~g.cat
        z = ndtr((g.high[num] - mu[:, num]) / sig[:, num]) - ndtr((g.low[num] - mu[:, num]) / sig[:, num])
        cont = num.copy()
        cont[list(g.lattice)] = False
        mu_n, sig_n = mu[:, cont], sig[:, cont]
        inv = 1.0 / (sig_n * sig_n)
        # log w + log N(x; mu, sigma) truncated, written so that scoring is two small matrix products:
        # -0.5 x^2 . inv + x . (mu inv) + base
        base = (np.log(w) - 0.5 * (mu_n * mu_n * inv).sum(axis=1) - np.log(sig_n).sum(axis=1)
                - np.log(np.maximum(z, 1e-300)).sum(axis=1) - 0.5 * cont.sum() * math.log(2 * math.pi))
        # lattice columns: many kernels share a (centre, width) pair (repeated values), so each pair's mass
        # is computed once (a complex key: a 1-D unique, ten times faster than np.unique(axis=0))
        cells = []
        for col in g.lattice:
            pairs, kernel = np.unique(mu[:, col] + 1j * sig[:, col], return_inverse=True)
            cells.append((col, pairs.real.copy(), pairs.imag.copy(), kernel.ravel()))
        return mu, sig, w, cats, (inv.T.copy(), (mu_n * inv).T.copy(), base, cont, cells)

    @staticmethod
    def _widths(g: _Group, mus: np.ndarray) -> np.ndarray:
        """Each kernel as wide as the larger gap to its neighbours on each axis (Optuna's rule, the outer
        kernels taking their inner gap), clipped to [range / min(100, kernels + 1), range]."""
        m = len(mus)
        span = g.high - g.low
        if m == 0:
            return np.empty((0, len(span)))
        order = np.argsort(mus, axis=0)
        ends = np.vstack([g.low, np.take_along_axis(mus, order, axis=0), g.high])
        gaps = np.diff(ends, axis=0)
        wide = np.maximum(gaps[:-1], gaps[1:])
        if m >= 2:
            wide[0], wide[-1] = gaps[1], gaps[-2]
        out = np.empty_like(wide)
        np.put_along_axis(out, order, wide, axis=0)
        return np.clip(out, span / min(100.0, m + 2.0), span)

    def _draw(self, g: _Group, model: tuple[Any, ...], n: int) -> np.ndarray:
        mu, sig, w, cats, _ = model
        rng = self._rng
        k = rng.choice(len(mu), size=n, p=w)
        out = np.empty((n, len(g.params)))
        num = np.flatnonzero(~g.cat)
        lo, hi = g.low[num], g.high[num]
        x = rng.normal(mu[k][:, num], sig[k][:, num])
        for _ in range(32):  # truncated normals by rejection: a kernel's centre lies inside, so most land
            bad = (x < lo) | (x > hi)
            if not bad.any():
                break
            x[bad] = rng.normal(mu[k][:, num], sig[k][:, num])[bad]
        out[:, num] = np.clip(x, lo, hi)
        for j in g.lattice:
            out[:, j] = g.snap(j, out[:, j])
        for j, probs in cats:
            cum = probs[k].cumsum(axis=1)
            u = rng.random((n, 1)) * cum[:, -1:]
            out[:, j] = np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)
        return out

    @staticmethod
    def _logpdf(g: _Group, model: tuple[Any, ...], x: np.ndarray) -> np.ndarray:
        """log of the mixture density at each row of ``x`` (candidates x kernels, then log-sum-exp)."""
        _, _, _, cats, (inv_t, a_t, base, cont, cells) = model
        xs = x[:, cont]
        lp = -0.5 * ((xs * xs) @ inv_t) + xs @ a_t + base
        for j, m, s, kernel in cells:  # log of each kernel's mass over the candidate's lattice cell
            points, at = np.unique(x[:, j], return_inverse=True)
            lo, hi = g.cell(j, points)
            lp = lp + _log_mass((lo[:, None] - m) / s, (hi[:, None] - m) / s)[np.ix_(at.ravel(), kernel)]
        for j, probs in cats:
            lp = lp + np.log(probs[:, x[:, j].astype(int)]).T
        top = lp.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(lp - top).sum(axis=1, keepdims=True)))[:, 0]

    # -- learning --------------------------------------------------------------------------------------
    @staticmethod
    def _active(g: _Group, params: dict[str, Any]) -> bool:
        return all(name in params and p.contains(params[name]) for name, p in zip(g.names, g.params))

    @staticmethod
    def _row(g: _Group, params: dict[str, Any]) -> np.ndarray:
        return np.array([_encode(p, params[name]) for name, p in zip(g.names, g.params)])

    def tell(self, outcome: Outcome) -> None:
        key = outcome.token if outcome.token is not None else _trial_key(outcome)
        if outcome.pending:
            self._pending[key] = outcome.params  # taken: a constant liar until its result comes
            return
        self._pending.pop(key, None)
        if outcome.token is not None and outcome.number is not None:
            self._pending.pop(_trial_key(outcome), None)
        self._learn(outcome)

    def observe(self, prior: Outcome) -> bool:
        """An earlier study's completed or pruned trial, modelled like one of this study's."""
        return self._learn(prior)

    def _learn(self, outcome: Outcome) -> bool:
        rank = self._rank(outcome)
        if rank is None:
            return False  # failed or diverged: Optuna's TPE leaves them out too
        for g in self._groups.values():
            if self._active(g, outcome.params):
                g.add(self._row(g, outcome.params), rank)
        return True

    def _rank(self, outcome: Outcome) -> tuple[float, float, float] | None:
        """(kind, -step, value to minimize): completed, then pruned (later steps first), then infeasible."""
        value = outcome.value if outcome.value is not None and math.isfinite(outcome.value) else None
        if outcome.state == TrialState.COMPLETED and value is not None:
            broken = sum(max(v, 0.0) for v in outcome.violations if math.isfinite(v))
            if broken > 0 or any(not math.isfinite(v) for v in outcome.violations):
                return 2.0, 0.0, broken if math.isfinite(broken) else 1e300
            return 0.0, 0.0, self.sign * value
        if outcome.state == TrialState.PRUNED:
            curve = [(s, v) for s, v in outcome.curve if math.isfinite(v)]
            if curve:
                return 1.0, -float(curve[-1][0]), self.sign * float(curve[-1][1])
            return (1.0, 0.0, math.inf) if value is None else (1.0, 0.0, self.sign * float(value))
        return None

    def reseed(self) -> bool:
        self._rng = np.random.default_rng(secrets.randbits(64))
        return True


def _trial_key(outcome: Outcome) -> Any:
    if outcome.number is not None:
        return ("number", outcome.number)
    return ("params", json.dumps(outcome.params, sort_keys=True, default=str))


@searchers.register("fasttpe", FastTPE)
def _fasttpe(options: dict[str, Any], space: Space, seed: int | None = None, mode: Direction | str = Direction.MIN,
             objectives: Objectives | None = None, **_: Any) -> FastTPE:
    if objectives is not None and objectives.multi:
        raise ConfigError(f"The fasttpe searcher optimizes one objective; with several ({', '.join(objectives.names)}) "
                          f"use tpe, nsga2, nsga3, gp, random or sobol.")
    return FastTPE(space, seed, mode, **options)
