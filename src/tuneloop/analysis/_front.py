"""``tuneloop analyze`` on a study with several objectives or constraints: is the front still
moving, which parameters trade one objective for another, which constraint breaks most.

Each check is a :class:`Finding` like the single-objective ones (``_diagnose.py``); a study with one
objective and no constraints gets none of them.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

from tuneloop.analysis._findings import Finding
from tuneloop.analysis._study import _all_params
from tuneloop.objectives import Objectives, finite, hypervolume_history
from tuneloop.space import Choice
from tuneloop.store import TrialRecord, TrialState

if TYPE_CHECKING:
    from tuneloop.analysis._diagnose import StudyData

MOVING = 0.05  # the front is still moving when the last stretch of trials added 5% or more of its hypervolume
MIN_TRIALS = 8  # fewer feasible completed trials: too few to read a front's growth or a correlation
ASSOCIATED = 0.05  # a Spearman correlation counts when its p-value is below this...
STRONG = 0.3  # ...and its size at least this


# -- is the front still moving? -----------------------------------------------------------------
def check_front_moving(data: StudyData, last: int | None = None) -> Finding:
    """The hypervolume (reference: each objective's worst feasible value plus 10% of its range) the
    last quarter of the trials (or the ``last`` ones) added, as a share of the whole."""
    objectives = data.record.objectives
    trials = sorted((t for t in data.trials if t.state.finished), key=lambda t: t.number)
    reference = objectives.reference(trials)
    feasible = [t for t in objectives.completed(trials) if objectives.feasible(t.values)]
    if reference is None or len(feasible) < MIN_TRIALS:
        return Finding("front moving", "info", f"{len(feasible)} feasible completed trials: too few to tell whether "
                       f"the front has settled ({MIN_TRIALS} or more).", "Run more trials.")
    n = len(trials)
    window = max(1, min(n - 1, last if last is not None else n // 4))
    history = hypervolume_history(objectives, trials, reference)
    total, before = history[-1], history[-1 - window]
    share = (total - before) / total if total > 0 else 0.0
    marks = sorted({max(1, n // 4), max(1, n // 2), max(1, 3 * n // 4), n - window, n})
    front = objectives.front(trials)
    rows: list[dict[str, Any]] = [{"after trials": k, "hypervolume": history[k - 1], "share of the end": (
        history[k - 1] / total if total > 0 else 0.0)} for k in marks]
    ref = ", ".join(f"{o.name} {r:.4g}" for o, r in zip(objectives.items, reference, strict=True))
    summary = (f"The last {window} of {n} finished trials added {share:.0%} of the front's hypervolume "
               f"(reference point {ref}); the front has {len(front)} members.")
    if share >= MOVING:
        return Finding("front moving", "warn", summary + " The front is still moving.",
                       f"Run more trials: the last {window} still pushed the front out (a settled front gains under "
                       f"{MOVING:.0%}).", rows)
    return Finding("front moving", "ok", summary + " The front has settled.",
                   "More trials of this space are unlikely to move the front much (a search can still find a new "
                   "region later): pick on it (tuneloop finalize STUDY --pick 'max METRIC where METRIC <= BOUND') "
                   "or change the space.", rows)


# -- which parameters trade one objective for another? ------------------------------------------------
def check_tradeoffs(data: StudyData) -> Finding:
    """Per numeric parameter, Spearman's rank correlation with each objective over the feasible
    completed trials: a parameter that improves one objective while worsening another sets where a
    configuration sits on the front; one that improves every objective it moves is simply good."""
    from scipy.stats import spearmanr

    objectives = data.record.objectives
    done = [t for t in objectives.completed(data.trials) if objectives.feasible(t.values)]
    if len(done) < MIN_TRIALS:
        return Finding("trade-offs", "info", f"{len(done)} feasible completed trials: too few to relate parameters "
                       f"to objectives ({MIN_TRIALS} or more).", "Run more trials.")
    rows: list[dict[str, Any]] = []
    for name, param in _all_params(data.record.space).items():
        used = [t for t in done if finite(t.params.get(name)) is not None]
        if isinstance(param, Choice) and len(used) < len(done):  # a Choice of words has no order to correlate
            continue
        xs = [finite(t.params[name]) for t in used]
        if len(used) < MIN_TRIALS or len(set(xs)) < 2:
            continue
        row: dict[str, Any] = {"parameter": name}
        better: list[str] = []
        worse: list[str] = []
        for o in objectives.items:
            ys = [float(t.values[o.name]) for t in used]
            if len(set(ys)) < 2:
                row[f"rho: {o.name} ({o.direction})"] = None
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ties everywhere: a nan correlation, read as none
                rho, p = spearmanr(xs, ys)
            rho, p = float(rho), float(p)
            row[f"rho: {o.name} ({o.direction})"] = None if math.isnan(rho) else round(rho, 3)
            if math.isnan(rho) or p >= ASSOCIATED or abs(rho) < STRONG:
                continue
            (better if rho * -o.direction.sign > 0 else worse).append(o.name)  # raising it improves o: better
        row["raising it"] = _effect(better, worse)
        row["kind"] = "trade-off" if better and worse else "helps" if better else "hurts" if worse else "no clear effect"
        rows.append(row)
    if not rows:
        return Finding("trade-offs", "info", "No numeric parameter varies over the feasible completed trials.")
    trade = [r for r in rows if r["kind"] == "trade-off"]
    good = [r for r in rows if r["kind"] in ("helps", "hurts")]
    idle = [r["parameter"] for r in rows if r["kind"] == "no clear effect"]
    parts = [f"{r['parameter']} trades: raising it {r['raising it']}" for r in trade]
    parts += [f"{r['parameter']} {r['kind']} ({r['raising it']})" for r in good]
    summary = ("; ".join(parts) if parts else "No parameter moves an objective clearly") + (
        f" (Spearman over {len(done)} feasible completed trials; |rho| >= {STRONG}, p < {ASSOCIATED}).")
    rec = []
    if trade:
        rec.append(f"Keep searching {_names(trade)}: where a configuration sits on the front comes down to "
                   f"{_it(trade, 'it', 'them')}; decide with tuneloop finalize STUDY --pick")
    if good:
        rec.append(f"Move {_names(good)} toward the end that improves the objectives {_it(good, 'it touches', 'they touch')} "
                   f"(tuneloop refine narrows the range)")
    if idle:
        rec.append(f"Fix {', '.join(idle)} or search {_it(idle, 'it', 'them')} less: "
                   f"{_it(idle, 'it moves', 'they move')} no objective clearly")
    return Finding("trade-offs", "info", summary, ". ".join(rec) + ".", rows)


def _names(rows: list[dict[str, Any]]) -> str:
    return ", ".join(r["parameter"] for r in rows)


def _it(items: list[Any], one: str, several: str) -> str:
    return one if len(items) == 1 else several


def _effect(better: list[str], worse: list[str]) -> str:
    words = [f"improves {', '.join(better)}"] if better else []
    words += [f"worsens {', '.join(worse)}"] if worse else []
    return " and ".join(words) or "moves no objective clearly"


# -- which constraint broke most? ---------------------------------------------------------------
def check_constraints(data: StudyData) -> Finding:
    """How many completed trials broke a constraint (or never reported its metric), and which
    constraint broke most often."""
    objectives = data.record.objectives
    done = [t for t in data.trials if t.state == TrialState.COMPLETED]
    if not done:
        return Finding("constraints", "info", "No completed trials yet.")
    broken = [t for t in done if not objectives.feasible(t.values)]
    counts = Counter(str(c) for t in broken for c in objectives.broken(t.values))
    rows: list[dict[str, Any]] = [
        {"constraint": str(c), "broken by": counts.get(str(c), 0), "share": counts.get(str(c), 0) / len(done),
         "worst": _worst(c, done)} for c in objectives.constraints]
    metric_of = {str(c): c.metric for c in objectives.constraints}
    rows.sort(key=lambda r: -r["broken by"])
    if not broken:
        return Finding("constraints", "ok", f"All {len(done)} completed trials kept "
                       f"{', '.join(str(c) for c in objectives.constraints)}.", "", rows)
    share = len(broken) / len(done)
    top = rows[0]
    summary = (f"{len(broken)} of {len(done)} completed trials ({share:.0%}) broke a constraint; "
               f"{top['constraint']} broke most ({top['broken by']} trial{'s' if top['broken by'] != 1 else ''}).")
    verdict = "problem" if len(broken) == len(done) or share > 0.5 else "warn"
    metric = metric_of[top["constraint"]]
    rec = (f"Most of the budget goes to configurations that cannot be used: narrow the parameters that drive "
           f"{metric} (see trade-offs) or loosen {top['constraint']}" if share > 0.5 else
           f"Infeasible trials never reach the front or finalize; if {top['constraint']} keeps breaking, narrow "
           f"the parameters that drive {metric}")
    if any(math.isinf(c.violation(t.values)) for t in broken for c in objectives.constraints):
        rec += "; some trials never reported a constrained metric (a missing metric counts as broken)"
    return Finding("constraints", verdict, summary, rec + ".", rows)


def _worst(constraint: Any, trials: list[TrialRecord]) -> float | None:
    """The worst finite value of the constrained metric among ``trials`` (None when none reported it)."""
    values = [float(v) for t in trials if (v := finite(t.values.get(constraint.metric))) is not None]
    if not values:
        return None
    return max(values) if constraint.op == "<=" else min(values)


def front_findings(data: StudyData, last: int | None = None) -> list[Finding]:
    """The checks a study's objectives call for: the front's two with several objectives, the
    constraints' with constraints; none for one objective without constraints."""
    objectives: Objectives = data.record.objectives
    out = []
    if objectives.multi:
        out += [check_front_moving(data, last), check_tradeoffs(data)]
    if objectives.constraints:
        out.append(check_constraints(data))
    return out
