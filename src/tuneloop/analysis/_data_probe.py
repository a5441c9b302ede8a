"""What ``tuneloop probe data`` measured, read back from the store: how the error of the best
configuration falls with the amount of training data, overall and per slice, and where more
data gains most per example.

Each slice's error (1 - accuracy; the objective's error overall) is fitted as a power law of the
training examples, ``error(n) = a * n**-b``, by least squares on log-log axes over every run
(seeds included). No floor term: over one decade of data a floor is not identified, so the
forecasts lean optimistic where the error is near its floor. The uncertainty is the fit's
covariance (a Student-t over the residual degrees of freedom), propagated to the forecasts at
2x and 10x the current training split by sampling (a 95% interval). A slice's gain per example
is its forecast gain at 2x over the examples of that slice doubling it takes (its count in the
training split), assuming a slice's error follows its own examples mostly.

A slice not learned yet (its error on the largest subset at or above chance, ``1 - 1/classes``) sits
in the small-data region of its learning curve, where the error stays flat until enough examples
arrive (Hestness et al., 2017): no power law forecasts it, and it is named first, fewest examples
first, as the slice to collect. A slice measured at one size only (the rarest class keeps one
example at every fraction) has no curve: it is judged from its measured error alone.

The store may come from someone else: every stored number is checked (finite, in range; counts
below 1e15) and a run that fails a check is skipped; a probe that still cannot be read becomes a
one-line finding, never an exception in ``analyze`` or the dashboard.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tuneloop.analysis._findings import Finding
from tuneloop.direction import Direction
from tuneloop.errors import StorageError
from tuneloop.store import Store, StudyRecord, TrialState

DRAWS = 4000
BIG = 1e15  # counts, steps and seeds at or above this are corrupt, not data
LARGEST = 1e100  # an error or loss beyond this (either way) is corrupt: squares of it must stay finite
EXP_LIMIT = 700.0  # exp() is clamped here: a wild fit forecasts 1e304, not an OverflowError


@dataclass
class DataRun:
    """One run of the probe: the best configuration on one subset."""

    fraction: float
    data_seed: int
    examples: int | None  # training examples it used (None: the trial function did not say)
    state: TrialState
    value: float | None  # the objective
    slices: dict[str, float]  # slice -> error (1 - accuracy) on the validation split
    counts: dict[str, int] = field(default_factory=dict)  # slice -> its training examples (fit records them)
    heldout: dict[str, int] = field(default_factory=dict)  # slice -> its validation examples


@dataclass
class Forecast:
    """The fitted error at ``examples``, with its 95% interval, and the gain against now."""

    factor: float  # times the current training split
    examples: float  # x of the forecast (examples, or fractions when no counts were recorded)
    error: float
    low: float
    high: float
    gain: float  # in points (accuracy) or the metric's units; positive is better
    gain_low: float
    gain_high: float


@dataclass
class PowerLaw:
    """error(n) = a * n**-b on one slice (or ``"overall"``), its observations and forecasts."""

    slice: str
    a: float
    b: float
    b_low: float | None  # the exponent's 95% interval (None: too few runs to say)
    b_high: float | None
    examples: float  # the slice's training examples now (the fraction 1.0 run's)
    error_now: float  # the fit at ``examples``
    forecasts: list[Forecast]  # at 2x and 10x
    gain_per_example: float | None  # the 2x gain over the slice's examples doubling takes
    unit: str = "points"  # of the gains: "points" (accuracy) or the metric's name
    fitted: bool = True  # False: measured at one size only, no curve (a, b and forecasts are placeholders)
    count_known: bool = True  # False: the slice's training examples were not recorded (``examples`` is the split's)
    small_data: bool = False  # not learned yet (error at or above chance): the curve has not started
    points: list[dict[str, float]] = field(default_factory=list)  # per fraction: n, mean, sd, runs
    cov: list[list[float]] | None = None  # of (log a, -b): what the bands are drawn from
    dof: int = 0

    def at(self, factor: float) -> Forecast | None:
        return next((f for f in self.forecasts if f.factor == factor), None)


@dataclass
class DataResult:
    study: str
    probe_study: str
    metric: str
    unit: str  # "points" (accuracy) or the metric's name
    counted: bool  # x is training examples (fit recorded them); False: fractions of the split
    examples: int | None  # the whole training split
    runs: list[DataRun]
    overall: PowerLaw | None
    slices: list[PowerLaw]  # most gain per example first
    advice: list[str] = field(default_factory=list)
    note: str = ""  # why there is no overall curve, when there is none
    unreadable: str = ""  # set when the stored probe could not be read at all (nothing else is then)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_data(store: Store, probe: StudyRecord) -> DataResult:
    """The stored data probe ``probe`` (``<study>-probe-data``), fitted and forecast. A probe that
    cannot be read comes back empty with ``unreadable`` set: ``analyze`` says so in one line."""
    config = probe.config if isinstance(probe.config, dict) else {}
    parent = config.get("parent") if isinstance(config.get("parent"), str) else ""
    try:
        return _fit_all(probe, str(parent), _runs(store, probe, config))
    except (StorageError, ArithmeticError, ValueError, TypeError, KeyError, IndexError) as e:
        # every stored field is checked on the way in: what still fails is a row corrupt past reading
        return DataResult(str(parent), str(probe.name), str(probe.metric), "", False, None, [], None, [],
                          unreadable=f"{type(e).__name__}: {e}"[:200])


def _runs(store: Store, probe: StudyRecord, config: dict[str, Any]) -> list[DataRun]:
    """The probe's runs as stored, each field checked (a run whose size is unknown is skipped)."""
    plan = _plan(config)
    runs = []
    for t in sorted(store.trials(probe.id), key=lambda t: _whole(t.number) or 0):
        number = _whole(t.number)
        attrs = t.attrs if isinstance(t.attrs, dict) else {}
        planned = plan[number] if number is not None and number < len(plan) else None
        fraction = _fraction(attrs.get("fraction"))  # what the run did, when it said
        if fraction is None and planned is not None:
            fraction = planned[0]
        if fraction is None:  # neither the run nor the plan says what it trained on
            continue
        errors: dict[str, float] = {}
        heldout: dict[str, int] = {}
        if t.state == TrialState.COMPLETED:
            last: dict[str, tuple[int, float, int]] = {}
            for s in store.slices(t.id, _whole(t.attempt)):  # the current attempt's (None: a corrupt one, all)
                step, acc, n = _whole(s.step), _real(s.value), _whole(s.n)
                if s.metric != "acc" or not isinstance(s.slice, str) or step is None or acc is None \
                        or n is None or not 0 <= acc <= 1:
                    continue
                if s.slice not in last or step >= last[s.slice][0]:  # the selected epoch's
                    last[s.slice] = (step, acc, n)
            errors = {name: max(1 - v, 0.5 / max(n, 1)) for name, (_, v, n) in last.items()}  # 0 is not on a log axis
            heldout = {name: n for name, (_, _, n) in last.items()}
        runs.append(DataRun(fraction, 0 if planned is None else planned[1], _count(attrs.get("train_examples")),
                            t.state, _real(t.value), errors, _slice_counts(attrs), heldout))
    return runs


def _fit_all(probe: StudyRecord, parent: str, runs: list[DataRun]) -> DataResult:
    done = [r for r in runs if r.state == TrialState.COMPLETED and r.value is not None]
    counted = bool(done) and all(r.examples for r in done)
    full = _now([(r.fraction, float(r.examples)) for r in done if r.examples]) if counted else None
    values = [float(r.value) for r in done if r.value is not None]
    metric = str(probe.metric)
    maximized = probe.mode == Direction.MAX
    accuracy = maximized and all(0 <= v <= 1 for v in values)
    unit = "points" if accuracy else metric
    overall, note = None, ""
    if maximized and not accuracy:
        note = (f"{metric} is maximized but is not an accuracy in [0, 1] (it reached {max(values):.4g}): a power "
                f"law fits an error, so there is no overall curve")
    elif not maximized and values and min(values) <= 0:
        note = (f"{metric} is minimized but reaches {min(values):.4g}: a power law fits an error above 0, so there "
                f"is no overall curve")
    else:
        overall = _power_law("overall", [((r.examples if counted else r.fraction), 1 - v if accuracy else v, r.fraction)
                                         for r, v in zip(done, values, strict=True)],
                             100.0 if accuracy else 1.0, full or 1.0, None, unit)
        if overall is None:
            failed = sum(r.state != TrialState.COMPLETED for r in runs)
            note = "too few finished runs to fit" + (f" ({failed} did not finish)" if failed else "")
    names = sorted({k for r in done for k in r.slices}, key=_natural)
    laws = []
    for name in names:
        mine = [r for r in done if name in r.slices]
        counts = [_slice_count(r, name) for r in mine]  # None: not recorded (a slice that is not a class)
        known = counted and all(c is not None for c in counts)
        slice_now = _now([(r.fraction, float(c)) for r, c in zip(mine, counts, strict=True) if c is not None]) \
            if known else None
        pts = [(float(c) if known and c is not None else (r.examples if counted else r.fraction), r.slices[name],
                r.fraction) for r, c in zip(mine, counts, strict=True)]
        if counted:  # doubling a slice takes as many examples as it has (unknown: no gain per example)
            now, per = (slice_now, slice_now) if slice_now is not None else (full or 1.0, None)
        else:  # its share of the validation split (of a stratified split: its share of the training split too)
            share = np.mean([r.heldout.get(name, 0) / max(sum(r.heldout.values()), 1) for r in done])
            now, per = 1.0, float(share) or None
        law = _power_law(name, pts, 100.0, now, per, "points") or _unfitted(name, pts, now)
        if law is not None:
            law.count_known = known or not counted
            laws.append(law)
    chance = 1 - 1 / len(names) if len(names) > 1 and all(n.startswith("class ") for n in names) else 0.99
    for law in laws:
        if law.points and law.points[-1]["error"] >= chance:  # as measured on the largest subset
            law.small_data, law.gain_per_example = True, None  # a flat fit says nothing of what it will gain
    laws.sort(key=_rank)
    result = DataResult(parent, str(probe.name), metric, unit, counted, None if full is None else round(full), runs,
                        overall, laws, note=note)
    result.advice = _advice(result)
    return result


def _slice_count(run: DataRun, name: str) -> int | None:
    """The slice's training examples in ``run``: recorded, 0 for a class fit recorded none of (it had no
    example), None when unknown (a slice that is not a class, or no class counts recorded)."""
    if name in run.counts:
        return run.counts[name]
    if name.startswith("class ") and any(k.startswith("class ") for k in run.counts):
        return 0
    return None


def _rank(law: PowerLaw) -> tuple[Any, ...]:
    """Not learned yet first (known counts, fewest examples first), then by gain per example."""
    if law.small_data:
        return 0, not law.count_known, law.examples, 0.0
    return 1, law.gain_per_example is None, 0.0, -(law.gain_per_example or 0.0)


def _unfitted(name: str, points: list[tuple[Any, float, float]], now: float) -> PowerLaw | None:
    """A slice measured at one size only (the rarest class, one example at every fraction): no curve, its
    measured error alone (what the "not learned yet" check reads)."""
    pts = [(float(x or 0.0), float(e), f) for x, e, f in points if math.isfinite(e)]
    if not pts:
        return None
    observed = _observed(pts)
    error = observed[-1]["error"]
    return PowerLaw(name, error, 0.0, None, None, now, error, [], None, fitted=False, points=observed)


def _power_law(name: str, points: list[tuple[Any, float, float]], scale: float, now: float,
               slice_examples: float | None, unit: str) -> PowerLaw | None:
    """The log-log least-squares fit of (x, error, fraction) points; None with fewer than two sizes."""
    pts = [(float(x), float(e), f) for x, e, f in points if x and x > 0 and e > 0 and math.isfinite(e)]
    if len({x for x, _, _ in pts}) < 2 or not now > 0:
        return None
    lx = np.log([x for x, _, _ in pts])
    le = np.log([e for _, e, _ in pts])
    design = np.column_stack([np.ones_like(lx), lx])
    coef, *_ = np.linalg.lstsq(design, le, rcond=None)
    dof = len(pts) - 2
    draws = None
    b_low = b_high = None
    if dof > 0:
        resid = le - design @ coef
        cov = float(resid @ resid) / dof * np.linalg.inv(design.T @ design)
        rng = np.random.default_rng(0)
        normal = rng.multivariate_normal(np.zeros(2), cov, size=DRAWS, method="eigh")
        draws = coef + normal / np.sqrt(rng.chisquare(dof, size=DRAWS) / dof)[:, None]  # a Student-t
        from scipy import stats

        half = float(stats.t.ppf(0.975, dof)) * math.sqrt(cov[1, 1])
        b_low, b_high = float(-coef[1] - half), float(-coef[1] + half)
    log_now = math.log(now)
    error_now = _exp(coef[0] + coef[1] * log_now)
    forecasts = []
    for factor in (2.0, 10.0):
        at = math.log(now * factor)
        error = _exp(coef[0] + coef[1] * at)
        if draws is None:
            low = high = error
            gain_low = gain_high = (error_now - error) * scale
        else:
            later = np.exp(np.clip(draws[:, 0] + draws[:, 1] * at, -EXP_LIMIT, EXP_LIMIT))
            gains = (np.exp(np.clip(draws[:, 0] + draws[:, 1] * log_now, -EXP_LIMIT, EXP_LIMIT)) - later) * scale
            low, high = (float(v) for v in np.percentile(later, [2.5, 97.5]))
            gain_low, gain_high = (float(v) for v in np.percentile(gains, [2.5, 97.5]))
        forecasts.append(Forecast(factor, now * factor, error, low, high, (error_now - error) * scale,
                                  gain_low, gain_high))
    per_example = forecasts[0].gain / slice_examples if slice_examples else None
    return PowerLaw(name, _exp(coef[0]), float(-coef[1]), b_low, b_high, now, error_now, forecasts,
                    per_example, unit, points=_observed(pts), cov=None if draws is None else cov.tolist(), dof=dof)


def _exp(x: float) -> float:
    """exp, clamped: an extreme fit forecasts a huge or tiny error instead of overflowing."""
    return math.exp(min(max(float(x), -EXP_LIMIT), EXP_LIMIT))


def _observed(pts: list[tuple[float, float, float]]) -> list[dict[str, float]]:
    """Per fraction: the mean x, the mean and sd of the error over its runs (what the plot draws)."""
    by: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for x, e, f in pts:
        by[f].append((x, e))
    out = []
    for f in sorted(by):
        xs, es = zip(*by[f], strict=True)
        out.append({"fraction": f, "n": float(np.mean(xs)), "error": float(np.mean(es)),
                    "sd": float(np.std(es, ddof=1)) if len(es) > 1 else 0.0, "runs": float(len(es))})
    return out


def _advice(r: DataResult) -> list[str]:
    out = []
    if r.overall is not None and (two := r.overall.at(2.0)) and (ten := r.overall.at(10.0)):
        more = f" (~{r.examples:,} more examples)" if r.examples else ""
        out.append(f"doubling the training data{more} forecasts {_gain(two, r.overall.unit)} overall; "
                   f"10x forecasts {_gain(ten, r.overall.unit)}")
        if two.gain_high <= (0.5 if r.overall.unit == "points" else 0.0):
            out.append("more data of the same kind gains little here: spend the effort on the model or the labels")
    for law in [law for law in r.slices if law.small_data][:3]:
        n = round(law.examples)
        if r.counted and law.count_known and n:
            size = f"~{n:,} training example{'s' * (n != 1)}"
            more = f"collect more examples of it first (~{n:,} more doubles it)"
        elif r.counted and law.count_known:
            size, more = "no training examples", "collect examples of it first"
        else:
            size = "its training examples' count unknown" if r.counted else "its share of the data"
            more = "collect more examples of it first"
        out.append(f"{law.slice} is not learned yet (error {law.error_now:.0%} with {size}, at or above chance): "
                   f"{more}; no curve forecasts it until it learns")
    ranked = [law for law in r.slices if not law.small_data and law.gain_per_example and law.gain_per_example > 0]
    for law in ranked[:3]:
        two = law.at(2.0)
        assert two is not None
        what = f"collect ~{round(law.examples):,} more examples of" if r.counted else "double the examples of"
        out.append(f"{what} {law.slice}: {_gain(two, law.unit)} expected on it")
    return out


def _gain(f: Forecast, unit: str) -> str:
    if unit == "points":
        return f"{f.gain:+.1f} points ({f.gain_low:+.1f} to {f.gain_high:+.1f})"
    return f"{f.gain:+.3g} ({f.gain_low:+.3g} to {f.gain_high:+.3g})"


def data_finding(result: DataResult | None) -> Finding:
    """The stored data probe as an ``analyze`` finding (a pointer to the command when there is none)."""
    if result is None:
        return Finding("more data", "info", "No data probe yet.",
                       "tuneloop probe data FILE: how the error falls with more data, and which slices gain most.")
    if result.unreadable:
        return Finding("more data", "warn", f"The data probe study {result.probe_study} is unreadable "
                       f"({result.unreadable}).", "Delete it or probe under a new study: tuneloop probe data FILE.")
    if result.overall is None and not result.slices:
        failed = any(r.state != TrialState.COMPLETED for r in result.runs)
        return Finding("more data", "info", f"The data probe {result.probe_study} has nothing to fit: {result.note}.",
                       "Rerun tuneloop probe data FILE after its failed runs are fixed." if failed else
                       "Log each slice's accuracy (trial.log_slice; fit does) for the probe to fit per slice.")
    first = f"the slice to collect first: {result.slices[0].slice}." if result.slices else ""
    law = result.overall
    if law is None:
        summary = f"No overall curve: {result.note}. Per slice, {first}"
    else:
        summary = (f"Error falls as n^-{law.b:.2f} with more training data" +
                   (f" ({law.b_low:.2f} to {law.b_high:.2f})" if law.b_low is not None else "") +
                   (f"; {first}" if first else "."))
    evidence = [{"slice": s.slice, "exponent": round(s.b, 3) if s.fitted else None, "error now": round(s.error_now, 4),
                 "gain at 2x": _rounded(s.forecasts[0].gain, s.unit) if s.forecasts else None,
                 "gain at 10x": _rounded(s.forecasts[1].gain, s.unit) if s.forecasts else None,
                 "unit": s.unit, "gain per example": s.gain_per_example, "not learned yet": s.small_data}
                for s in ([law] if law is not None else []) + result.slices]
    advice = "; ".join(result.advice) or "No slice gains enough to name one"
    return Finding("more data", "info", summary, advice[:1].upper() + advice[1:] + ".", evidence)


def _rounded(value: float, unit: str) -> float:
    """Accuracy points to 0.001; a metric's units to 3 significant digits (a loss gain of 1e-4 is not 0)."""
    return round(value, 3) if unit == "points" else float(f"{value:.3g}")


def curve(law: PowerLaw, n_points: int = 24) -> list[dict[str, float]]:
    """The fitted curve from the smallest subset to 10x the data, with its 95% band (of the mean):
    ``[{"n", "error", "low", "high"}]``, what the dashboard draws on log-log axes."""
    from scipy import stats

    if not law.fitted:
        return []
    start = min((p["n"] for p in law.points), default=law.examples)
    t = float(stats.t.ppf(0.975, law.dof)) if law.cov is not None and law.dof > 0 else 0.0
    out = []
    for n in np.geomspace(start, 10 * law.examples, n_points):
        x = np.array([1.0, math.log(n)])
        mid = math.log(law.a) - law.b * math.log(n)
        half = t * math.sqrt(max(float(x @ np.array(law.cov) @ x), 0.0)) if law.cov is not None else 0.0
        out.append({"n": float(n), "error": _exp(mid), "low": _exp(mid - half), "high": _exp(mid + half)})
    return out


def data_plot(result: DataResult | None, top: int = 5) -> dict[str, Any] | None:
    """What the dashboard and reports draw of a data probe: the overall curve and the ``top``
    slices' (observed mean error per fraction with its sd, the fit and its band)."""
    if result is None or result.unreadable:
        return None
    laws = [law for law in (result.overall, *[s for s in result.slices if s.fitted][:top]) if law is not None]
    return {"probe": result.probe_study, "unit": result.unit, "counted": result.counted,
            "series": [{"slice": law.slice, "b": law.b, "unit": law.unit, "small_data": law.small_data,
                        "points": law.points, "curve": curve(law), "now": law.examples} for law in laws]}


def _plan(config: dict[str, Any]) -> list[tuple[float, int] | None]:
    """(fraction, data seed) of each trial number, from the probe's stored (untrusted) config (None: corrupt)."""
    items = config.get("plan")
    out: list[tuple[float, int] | None] = []
    for item in items if isinstance(items, list) else []:
        pair = isinstance(item, (list, tuple)) and len(item) == 2
        fraction, seed = (_fraction(item[0]), _whole(item[1])) if pair else (None, None)
        out.append(None if fraction is None or seed is None else (fraction, seed))
    return out


def _real(value: Any) -> float | None:
    """A stored number as a float: finite and within +-LARGEST (text, bools, NaN, inf and 10**400: None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -LARGEST < value < LARGEST:
        return None  # NaN fails the comparison too; an int is compared exactly, never converted first
    return float(value)


def _whole(value: Any) -> int | None:
    """A stored count, step or seed: an int in [0, BIG)."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < BIG else None


def _fraction(value: Any) -> float | None:
    v = _real(value)
    return v if v is not None and 0 < v <= 1 else None


def _count(value: Any) -> int | None:
    v = _whole(value)
    return v if v else None


def _slice_counts(attrs: dict[str, Any]) -> dict[str, int]:
    """{slice: training examples} from the ``train_examples/<slice>`` attributes fit records."""
    return {k.split("/", 1)[1]: c for k, v in attrs.items()
            if isinstance(k, str) and k.startswith("train_examples/") and (c := _count(v)) is not None}


def _now(pairs: list[tuple[float, float]]) -> float | None:
    """The count at fraction 1.0 (the whole split): measured when a run had it, else scaled up."""
    whole = [c for f, c in pairs if f == 1.0]
    if whole:
        return float(np.mean(whole))
    scaled = [c / f for f, c in pairs if f > 0]
    return float(np.median(scaled)) if scaled else None


def _natural(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key: "class 2" before "class 10"; digits that are not ASCII ("²") sort as text."""
    return tuple((0, int(p), "") if p.isascii() and p.isdigit() else (1, 0, p) for p in name.split(" "))
