"""``tuneloop analyze``: the playbook's look at a study before the next round, automated.

Each check returns a Finding: a verdict (ok, warn, problem or info), what it saw, the evidence
(table rows) and a concrete recommendation. Everything is computed from the store, so the CLI,
reports and the dashboard show the same findings.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneloop.analysis._curves import summarize_curve
from tuneloop.analysis._data_probe import DataResult, data_finding
from tuneloop.analysis._findings import VERDICTS, Finding
from tuneloop.analysis._front import front_findings
from tuneloop.analysis._probes import BatchResult, ProbeResult, stored_probes
from tuneloop.analysis._refine import infeasible, infeasible_regions
from tuneloop.analysis._study import _all_params, crowded, fanova_shares, optuna_trials
from tuneloop.direction import Direction
from tuneloop.space import Choice
from tuneloop.store import Store, StudyRecord, TrialRecord, TrialState

__all__ = ["VERDICTS", "Finding", "StudyData", "analyze", "classify_curve", "expected_best", "load"]

TOP = 5  # the best trials whose curves are read


@dataclass
class StudyData:
    record: StudyRecord
    trials: list[TrialRecord]
    curves: dict[int, dict[str, list[tuple[int, float]]]]

    @property
    def done(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == TrialState.COMPLETED and t.value is not None
                and math.isfinite(t.value)]

    @property
    def feasible(self) -> list[TrialRecord]:
        """The completed trials that keep the study's constraints (all of ``done`` without any)."""
        objectives = self.record.objectives
        return [t for t in self.done if objectives.feasible(t.values)]

    def ranked(self) -> list[TrialRecord]:
        """Completed trials best first: by the objective; with constraints or several objectives,
        feasible ones first, the front first, then the first objective (Objectives.ranked)."""
        return ranked(self.record, self.done)


def ranked(record: StudyRecord, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    return record.objectives.ranked(trials)


def load(store: Store, name: str) -> StudyData:
    record = store.require_study(name)
    trials = store.trials(record.id)
    best = ranked(record, trials)[:TOP]
    return StudyData(record, trials, store.series([t.id for t in best]) if best else {})


# -- 1. importance -------------------------------------------------------------------------
BOOTSTRAP_TREES, BOOTSTRAP_DEPTH = 8, 6
def check_importance(data: StudyData, resamples: int = 8) -> Finding:
    done = data.done
    if len(done) < 10:
        return Finding("importance", "info", f"{len(done)} completed trials: too few to apportion importance "
                       f"(10 or more).", "Run more trials before reading importance.")
    frozen = optuna_trials(data.record.space, done)
    base = fanova_shares(frozen, data.record.mode)
    rng = random.Random(0)
    draws: dict[str, list[float]] = {k: [] for k in base}
    for i in range(resamples if base else 0):  # bootstrap over trials: how much of the ranking is noise
        # small forests (8 trees of depth 6, a quarter of the base forest's cost together): the forest's
        # own noise they add errs on the side of a wider spread
        got = fanova_shares([rng.choice(frozen) for _ in frozen], data.record.mode, trees=BOOTSTRAP_TREES,
                            depth=BOOTSTRAP_DEPTH, seed=i + 1)
        for k, values in draws.items():
            values.append(got.get(k, 0.0))
    rows: list[dict[str, Any]] = [
        {"parameter": k, "importance": v, "sd": statistics.pstdev(draws[k]) if draws[k] else math.nan}
            for k, v in sorted(base.items(), key=lambda kv: -kv[1])]
    if not rows:
        return Finding("importance", "info", "Every completed trial has the same value: nothing to apportion.")
    top = rows[0]
    weak = [r["parameter"] for r in rows if r["importance"] < 0.05]
    rec = (f"Spend the next round on {top['parameter']}" + (f"; consider fixing {', '.join(weak)} (under 5% each)"
                                                             if weak else "") + ".")
    of = f" of {data.record.metric}, the first objective" if data.record.objectives.multi else ""  # trade-offs: all
    return Finding("importance", "info", f"{top['parameter']} explains {top['importance']:.0%} (±{top['sd']:.0%}) "
                   f"of the variance{of} (fANOVA, bootstrap sd over {resamples} resamples).", rec, rows)


# -- 2. boundaries -------------------------------------------------------------------------
def check_boundaries(data: StudyData) -> Finding:
    if len(data.done) < 10:
        return Finding("boundaries", "info", "Fewer than 10 completed trials: bounds cannot be judged yet.")
    found = crowded(data.record.space, data.trials, data.record.mode, objectives=data.record.objectives)
    if not found:
        return Finding("boundaries", "ok", "No parameter's best region crowds a bound: toward no bound does the "
                       "objective keep improving, nor do all the best trials sit at one.")
    rows = [{"parameter": c.name, "bound": f"{c.where} {c.bound:g}", "evidence": c.evidence} for c in found]
    summary = "; ".join(f"{c.name} crowds its {c.where} bound {c.bound:g}: {c.evidence}" for c in found) + "."
    fix = ", ".join(f"{c.name} {'above' if c.side == 'high' else 'below'} {c.bound:g}" for c in found)
    return Finding("boundaries", "warn", summary,
                   f"Expand {fix} (tuneloop refine {data.record.name} -o NEXT.py does it).", rows)


# -- 3. infeasible trials ---------------------------------------------------------------------
def check_infeasible(data: StudyData) -> Finding:
    finished = [t for t in data.trials if t.state in (TrialState.COMPLETED, TrialState.FAILED, TrialState.DIVERGED)]
    objectives = data.record.objectives
    bad = infeasible(finished, data.record.mode, objectives)
    if not finished:
        return Finding("infeasible", "info", "No finished trials yet.")
    share = len(bad) / len(finished)
    if not bad:
        return Finding("infeasible", "ok", f"No failed, diverged or very bad trials among {len(finished)}.")
    broke = sum(t.state == TrialState.COMPLETED and not objectives.feasible(t.values) for t in bad)
    outliers = sum(t.state == TrialState.COMPLETED for t in bad) - broke
    regions = infeasible_regions(data.record.space, data.trials, data.record.mode, objectives)
    rows = [{"parameter": r.name, "region": f"{r.side} {r.cut:.3g}", "infeasible": r.infeasible,
             "feasible there": r.feasible} for r in regions]
    where = [f"{r.name} {r.side} {r.cut:.3g}" for r in regions]
    verdict = "problem" if share > 0.5 else "warn"
    summary = f"{len(bad)} of {len(finished)} trials ({share:.0%}) failed, diverged" + (
        f" or were very bad ({outliers} more than 3 interquartile ranges worse than the median)" if outliers else "") + (
        f" or broke a constraint ({broke})" if broke else "")
    summary += f"; they sit {' and '.join(where)}." if where else ", spread over the space (no region explains them)."
    if where:
        rec = f"Shrink or reparameterize: cut {where[0]} from the range (tuneloop refine cuts it)."
    else:
        rec = "Read a failed trial's error (tuneloop show STUDY N)"
    if share > 0.5:
        rec += "; more than half failing usually means a bug, not a bad range"
    return Finding("infeasible", verdict, summary, rec + ".", rows)


# -- 4. sampled enough? ---------------------------------------------------------------------
def expected_best(values: Sequence[float], k: int, mode: str) -> float:
    """E[best of k draws with replacement] from the empirical distribution (exact, by order statistics)."""
    xs = sorted(values, reverse=Direction.of(mode, "expected_best") is Direction.MIN)  # ascending in goodness
    n = len(xs)
    return sum(x * (((i + 1) / n) ** k - (i / n) ** k) for i, x in enumerate(xs))


def check_sampling(data: StudyData) -> Finding:
    values = [t.value for t in data.feasible if t.value is not None]  # done trials all have one: narrows the type
    n, mode = len(values), data.record.mode
    if n < 4:
        return Finding("sampling", "problem", f"Only {n} completed trials: no conclusion rests on so few.",
                       "Run at least 20 trials (10 per searched parameter is a common floor).")
    curve = [(k, expected_best(values, k, mode)) for k in sorted({max(1, n // 4), max(1, n // 2), n})]
    (k1, b1), (k2, b2) = curve[-2], curve[-1]
    slope = (b2 - b1) / math.log(k2 / k1) if k2 > k1 else 0.0
    gain = abs(slope * math.log(2))  # the same gain per doubling again
    spread = statistics.pstdev(values) or 1e-12
    rows = [{"trials": k, "expected best": v} for k, v in curve] + [{"trials": 2 * n, "expected best":
                                                                       b2 - mode.sign * gain}]
    few = n < 10 * max(1, len(_all_params(data.record.space)))
    still = gain > 0.1 * spread
    verdict = "warn" if few or still else "ok"
    summary = (f"With {n} trials the expected best is {b2:.4g}; doubling them would move it by about {gain:.3g} "
               f"({gain / spread:.0%} of the spread between trials).")
    rec = ("Run more trials before concluding" + (f" (under 10 per parameter: {n} for "
                                                   f"{len(_all_params(data.record.space))})" if few else "") + "."
           if verdict == "warn" else "The search has levelled off: more trials of this space will not help much.")
    return Finding("sampling", verdict, summary, rec, rows)


# -- 5. isolation: is the scientific question answered? --------------------------------------
def check_isolation(data: StudyData, top: int = 3) -> Finding:
    from tuneloop.analysis._seeds import mean_ci, welch
    from tuneloop.rounds import round_info

    scientific = round_info(data.record).roles.scientific
    if not scientific:
        return Finding("isolation", "info", "No scientific parameters: this round optimizes, it asks no question.")
    groups: dict[str, list[TrialRecord]] = {}
    for t in data.feasible:  # a value's best must be usable: trials breaking a constraint do not count
        groups.setdefault(", ".join(f"{n}={t.params.get(n)}" for n in scientific), []).append(t)
    mode = data.record.mode
    rows: list[dict[str, Any]] = []
    for key, trials in groups.items():  # each value at its best over the nuisance parameters
        values = [float(t.value) for t in trials if t.value is not None]  # all of them: done trials
        sample, basis = _best_sample(trials, mode, top)
        ci = mean_ci(sample)
        rows.append({"value": key, "trials": len(values), "best": mode.best(values), "estimate": ci.mean,
                     "low": ci.low, "high": ci.high, "from": basis, "_top": sample})
    rows = mode.sorted(rows, key=lambda r: r["best"])
    if len(rows) < 2:
        return Finding("isolation", "info", "Only one scientific value has completed trials.", "", rows)
    first, second = rows[0], rows[1]
    d = welch(second["_top"], first["_top"])
    for r in rows:
        r.pop("_top")
    if d is None:
        return Finding("isolation", "warn", f"{first['value']} leads, but with fewer than 2 completed trials a value "
                       f"the gap cannot be judged.", "Run more trials per scientific value.", rows)
    gap = -mode.sign * d.diff
    answered = (d.low > 0) if mode is Direction.MAX else (d.high < 0)
    summary = (f"{first['value']} leads {second['value']} by {gap:.3g} ({first['from']} against {second['from']}; "
               f"Welch 95% CI "
               f"[{d.low:.3g}, {d.high:.3g}], p={d.p_value:.2g}).")
    if answered:
        return Finding("isolation", "ok", summary + " The question is answered for these values.",
                       f"Fix {first['value']} in the next round, or confirm on test: tuneloop finalize "
                       f"{data.record.name} --per {scientific[0]}.", rows)
    return Finding("isolation", "warn", summary + " Not yet answered: the interval includes no difference.",
                   "Run more trials per value (or --seeds) before deciding.", rows)


def _best_sample(trials: list[TrialRecord], mode: Direction, top: int) -> tuple[list[float], str]:
    """The values behind one scientific value's estimate: the seeds of its best configuration when it
    was repeated (--seeds), else its ``top`` best trials."""
    import json

    by_config: dict[str, list[float]] = {}
    for t in trials:
        if t.value is not None:  # always (completed trials): narrows the type
            by_config.setdefault(json.dumps(t.params, sort_keys=True), []).append(float(t.value))
    repeated = [v for v in by_config.values() if len(v) >= 2]
    if repeated:
        best = mode.best(repeated, key=statistics.fmean)
        return best, f"{len(best)} seeds of its best configuration"
    return mode.sorted((v for vs in by_config.values() for v in vs), key=float)[:top], f"its top {top} trials"


# -- 6. training curves -----------------------------------------------------------------------
def classify_curve(objective: list[tuple[int, float]], mode: str, train: list[tuple[int, float]] | None = None,
                   tolerance: float = 0.02) -> list[str]:
    """Labels for one trial's curves: overfitting, noisy, still improving, saturated early,
    train loss rising, diverged (none: a healthy curve)."""
    labels = []
    if any(not math.isfinite(v) for _, v in objective) or any(not math.isfinite(v) for _, v in (train or [])):
        return ["diverged"]
    if len(objective) < 4:
        return []
    s = summarize_curve("objective", objective, mode)
    values = [v for _, v in objective]
    span = (max(values) - min(values)) or 1e-12
    best_pos = (s.best_step - objective[0][0]) / max(1, objective[-1][0] - objective[0][0])
    worse_end = (s.end - s.best) * Direction.of(mode, "classify_curve").sign
    train_falls = train is not None and len(train) >= 4 and summarize_curve("t", train, "min").trend == "improving"
    if worse_end > tolerance * abs(s.best) + 0.1 * span and best_pos < 0.75 and train_falls:
        labels.append("overfitting")
    tail = values[-max(3, len(values) // 4):]
    steps = [b - a for a, b in itertools.pairwise(tail)]  # their spread, not their size: a steady climb is not noise
    if len(steps) >= 2 and statistics.pstdev(steps) > 0.25 * span:
        labels.append("noisy at the end")
    if s.trend == "improving" and best_pos >= 0.9:
        labels.append("still improving")
    if best_pos <= 0.25 and s.trend == "flat" and worse_end <= tolerance * abs(s.best):
        labels.append("saturated early")
    if train and len(train) >= 4:
        t = summarize_curve("train", train, "min")
        if t.trend == "worsening" and t.end > 1.1 * t.best:
            labels.append("training loss rising")
    return labels


def check_curves(data: StudyData) -> Finding:
    best = data.ranked()[:TOP]
    rows: list[dict[str, Any]] = []
    for t in best:
        curves = data.curves.get(t.id, {})
        objective = curves.get(data.record.metric, [])
        labels = classify_curve(objective, data.record.mode, curves.get("train_loss"))
        rows.append({"trial": t.number, "value": t.value, "labels": ", ".join(labels) or "healthy"})
    if not rows:
        return Finding("curves", "info", "No completed trials to read.")
    counts: dict[str, int] = {}
    for r in rows:
        for label in r["labels"].split(", "):
            counts[label] = counts.get(label, 0) + 1
    advice = {"overfitting": "add regularization (weight decay, dropout, augmentation) or stop earlier",
              "noisy at the end": "decay the learning rate at the end (cosine) or average more batches",
              "still improving": "train longer: the best trials were still improving",
              "saturated early": "train for less (or raise the learning rate): they stopped learning early",
              "training loss rising": "look for a bug or a too-high learning rate: training loss must not rise",
              "diverged": "lower the learning rate or add warmup and gradient clipping"}
    found = [k for k in advice if k in counts]
    verdict = "problem" if {"training loss rising", "diverged"} & set(found) else "warn" if found else "ok"
    summary = (f"Of the best {len(rows)} trials: " + ", ".join(f"{counts[k]} {k}" for k in found) + "."
               if found else f"The best {len(rows)} trials' curves look healthy.")
    return Finding("curves", verdict, summary, "; ".join(advice[k] for k in found).capitalize() + ("." if found else ""),
                   rows)


# -- 7. step budget ---------------------------------------------------------------------------
def check_step_budget(data: StudyData) -> Finding:
    rows = []
    for t in data.ranked()[:TOP]:
        curve = data.curves.get(t.id, {}).get(data.record.metric, [])
        if len(curve) < 4:
            continue
        s = summarize_curve("o", curve, data.record.mode)
        first, last = curve[0][0], curve[-1][0]
        rows.append({"trial": t.number, "best step": s.best_step, "last step": last,
                     "position": (s.best_step - first) / max(1, last - first)})
    if not rows:
        return Finding("step budget", "info", "The best trials report too few steps to place their best one.")
    positions = [r["position"] for r in rows]
    median = statistics.median(positions)
    if median < 0.1:
        return Finding("step budget", "warn", f"The best step sits in the first 10% of training (median at "
                       f"{median:.0%}).", "Training is too long: cut the budget to a few times the best step.", rows)
    if sum(p >= 0.75 for p in positions) >= 0.75 * len(positions):
        return Finding("step budget", "warn", f"The best step sits in the last 25% of training for "
                       f"{sum(p >= 0.75 for p in positions)} of {len(positions)} best trials.",
                       "Train longer: raise the budget (then re-tune the learning-rate schedule).", rows)
    return Finding("step budget", "ok", f"The best step sits at {median:.0%} of training (median): the budget fits.",
                   "", rows)


# -- 8 and 9. probes (tuneloop probe lr|batch|data FILE), when they have run ---------------------------
def probe_findings(store: Store, name: str) -> list[Finding]:
    """The stored learning-rate, batch-size and data probes of study ``name``, as findings."""
    found = stored_probes(store, name)
    out = []
    lr = found.get("lr")
    if not isinstance(lr, ProbeResult):
        out.append(Finding("instability", "info", "No learning-rate probe yet.",
                           "tuneloop probe lr FILE: where training becomes unstable, warmup and a clipping threshold."))
    else:
        where = f"unstable from {lr.unstable_from:g}x" if lr.unstable_from else "stable up to the largest multiple"
        out.append(Finding("instability", "warn" if lr.unstable_from and lr.unstable_from <= 4 else "info",
                           f"{lr.param} {lr.best_lr:.3g} probed at {', '.join(f'{r.factor:g}x' for r in lr.rows)}: "
                           f"{where}.", "; ".join(lr.advice).capitalize() + ".",
                           [{"factor": r.factor, lr.param: r.lr, "state": r.state, "unstable": r.unstable or "-"}
                            for r in lr.rows]))
    batch = found.get("batch")
    if not isinstance(batch, BatchResult):
        out.append(Finding("batch size", "info", "No batch-size probe yet.",
                           "tuneloop probe batch FILE: the largest batch size that still raises throughput."))
    else:
        out.append(Finding("batch size", "info", f"Throughput grows up to batch size {batch.recommended}.",
                           "; ".join(batch.advice).capitalize() + ".",
                           [{"batch size": r.batch_size, "seconds": r.seconds, "speedup": r.speedup} for r in batch.rows]))
    data = found.get("data")
    out.append(data_finding(data if isinstance(data, DataResult) else None))
    return out


# -- 10. budget-aware advice for Adam ---------------------------------------------------------
def check_adam_budget(data: StudyData) -> Finding:
    space = data.record.space
    params = _all_params(space)
    uses_adam = any(isinstance(p, Choice) and any(str(v).lower().startswith("adam") for v in p.values)
                    for p in params.values()) or any("beta" in n or n in ("eps", "epsilon") for n in params)
    if not uses_adam:
        return Finding("adam budget", "info", "No Adam-family optimizer in the space.")
    n = len(data.trials)
    tuned = [n for n in params if "beta" in n or n in ("eps", "epsilon")]
    if n < 10:
        plan = "tune only the learning rate"
    elif n <= 25:
        plan = "tune the learning rate and beta1"
    else:
        plan = "tune the learning rate, beta1 and epsilon, then beta2"
    return Finding("adam budget", "info", f"A budget of {n} trials with Adam: {plan}" +
                   (f" (the space tunes {', '.join(tuned)})." if tuned else "."), plan.capitalize() + ".")


# -- 11. next round -------------------------------------------------------------------------
def check_next_round(data: StudyData) -> Finding:
    from tuneloop.analysis._refine import refine_space
    from tuneloop.rounds import round_info

    if len(data.done) < 8:
        return Finding("next round", "info", "Fewer than 8 completed trials: too few to propose a narrower space.")
    roles = round_info(data.record).roles
    _, changes = refine_space(data.record.space, data.trials, data.record.mode, keep=roles.scientific,
                              objectives=data.record.objectives)
    rows = [{"parameter": c.name, "change": c.reason} for c in changes if c.changed]
    return Finding("next round", "info", f"A next round would change {len(rows)} parameter(s).",
                   f"tuneloop refine {data.record.name} -o NEXT.py writes it, with these reasons as comments.", rows)


CHECKS: list[Callable[[StudyData], Finding]] = [check_importance, check_boundaries, check_infeasible, check_sampling,
                                                check_isolation, check_curves, check_step_budget, check_adam_budget,
                                                check_next_round]


def analyze(store: Store, name: str, last: int | None = None) -> list[Finding]:
    """Every check on stored study ``name``; with several objectives or constraints, the front's and
    the constraints' checks after the sampling one (``last``: how many of the latest trials the
    front's growth is read over; a quarter of them by default)."""
    data = load(store, name)
    findings = [check(data) for check in CHECKS]
    # in the order: 8, 9 before 10; a front's checks beside "sampled enough?"
    return (findings[:4] + front_findings(data, last) + findings[4:-2] + probe_findings(store, name)
            + findings[-2:])
