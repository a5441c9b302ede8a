"""``idea test``: the baseline and the variant over the same K seeds, paired, then the verdict.

The baseline configuration is the study's best trial with every adopted idea's overrides applied;
the variant adds this idea's overrides (or runs another experiment file's trial function). Both
arms run as one study (arm x seed index, a grid) so they go in parallel and everything is stored.

Before the A/B test, the variant runs the check ladder when one is given (``checks=``: the variant
file's own ``tl.Checks``, or the baseline's made for the variant with :meth:`Checks.for_config`). A
variant that fails a rung is *broken*: the idea is marked so with the evidence
(:meth:`Ledger.mark_broken`), :class:`VariantBroken` is raised and no A/B trial runs. With an
adopt-if rule (``adopt_if="better and p < 0.01"``), a verdict that satisfies it adopts the idea.
"""

from __future__ import annotations

import math
from typing import Any

from tuneloop._validation import fail
from tuneloop.errors import ConfigError, TuneloopError
from tuneloop.ideas._ledger import Idea, IdeaState, Ledger
from tuneloop.ideas._rule import AdoptRule
from tuneloop.ideas._stats import Comparison, compare
from tuneloop.space import Choice, Space
from tuneloop.store import TrialState
from tuneloop.trial import Params

SEED_BASE = 10_000  # the seeds of A/B tests, apart from the study's own trial seeds


class _ArmTrial:
    """The study's trial, seen through one arm: its configuration and the paired seed."""

    def __init__(self, inner: Any, params: dict[str, Any], seed: int) -> None:
        self._inner, self.params, self.seed = inner, Params(params), seed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Arms:
    """The A/B trial function: picks the arm's configuration and function, and the seed (picklable)."""

    def __init__(self, baseline_fn: Any, variant_fn: Any, baseline: dict[str, Any], variant: dict[str, Any],
                 seeds: list[int]) -> None:
        self.fns = {"baseline": baseline_fn, "variant": variant_fn}
        self.configs = {"baseline": baseline, "variant": variant}
        self.seeds = seeds

    def __call__(self, trial: Any) -> Any:
        arm = trial.params["arm"]
        return self.fns[arm](_ArmTrial(trial, self.configs[arm], self.seeds[trial.params["seed_index"]]))


def parse_overrides(text: str, like: dict[str, Any]) -> dict[str, Any]:
    """'lr=0.01,optimizer=adamw' -> {"lr": 0.01, "optimizer": "adamw"} (types follow the baseline's)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError(f"An override is NAME=VALUE; got {part!r} (e.g. --variant 'weight_decay=1e-4,dropout=0.1').")
        key, raw = (s.strip() for s in part.split("=", 1))
        old = like.get(key)
        try:
            value: Any = (raw.lower() in ("true", "1", "yes")) if isinstance(old, bool) else \
                int(raw) if isinstance(old, int) else float(raw) if isinstance(old, float) else _guess(raw)
        except ValueError:
            raise ConfigError(f"Override {key}={raw!r}: expected a {type(old).__name__} like {old!r}.") from None
        out[key] = value
    return out


def _guess(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(raw.lower(), raw)


class VariantBroken(TuneloopError):  # noqa: N818 - reads as what it is, like TrialFailed
    """An idea's variant failed a rung of the check ladder: the idea is marked broken, no A/B test ran."""

    def __init__(self, idea: Idea, report: Any) -> None:
        self.idea, self.report = idea, report
        failure = report.failure
        super().__init__(f"Idea {idea.id} is broken: its variant failed the check {failure.name!r} "
                         f"({failure.message}); the A/B test did not run. Fix it and test it again.")


def arms_config(ledger: Ledger, idea_id: int, study: Any,
                overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(baseline, variant, changes): the baseline is the study's best trial with every adopted idea's
    overrides; the variant adds the idea's config and ``overrides``; ``changes`` is everything applied
    on top of the study's best trial (what a check ladder written for the study must be told)."""
    idea = ledger.get(idea_id)
    try:
        best = study.best
    except Exception:  # noqa: BLE001 - explained below
        raise ConfigError(f"Study {study.name!r} has no completed trial to take the baseline from; run it first.") from None
    adopted = ledger.baseline_config()
    baseline = {**best.params, **adopted}
    changes = {**adopted, **idea.config, **(overrides or {})}
    return baseline, {**baseline, **changes}, changes


def check_variant(ledger: Ledger, idea_id: int, checks: Any, *, storage: str | None = None,
                  on_result: Any = None) -> Any:
    """Run the ladder ``checks`` (already made for the variant) and return its report; on a failing rung
    the idea is marked broken (:meth:`Ledger.mark_broken`) with the failure's evidence (an adopted idea keeps
    its state and gets only the evidence: its adoption stands). A variant whose code raises is broken too."""
    from tuneloop.checks._result import FAIL, CheckReport, CheckResult

    seen: list[Any] = []

    def note(result: Any) -> None:
        seen.append(result)
        if on_result is not None:
            on_result(result)

    try:
        report = checks.run(storage=storage, on_result=note)
    except Exception as exc:  # noqa: BLE001 - the variant's code raised (e.g. its model cannot be built): broken too
        after = seen[-1].name if seen else None
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        failed = CheckResult(
            "variant_runs", FAIL, f"the variant raised {error}",
            evidence={"error": error, "after_check": after},
            next_step="Run the variant's configuration by hand (its model builder and fit) and fix the error.")
        note(failed)
        report = CheckReport(results=[*seen], metric=getattr(checks, "metric", ""))
    failure = report.failure
    if failure is not None:  # an adopted idea stays adopted (its overrides stay in the baseline): only this variant broke
        ledger.mark_broken(idea_id, check=failure.name, message=failure.message, evidence=failure.evidence,
                           next_step=failure.next_step, keep_state=ledger.get(idea_id).state == IdeaState.ADOPTED)
    else:  # how long the ladder took: ``idea plan`` counts it in the idea's machine time
        ledger.link(idea_id, checks={"passed": len(report.results),
                                     "seconds": round(sum(r.seconds for r in report.results), 3)})
    return report


def ab_test(ledger: Ledger, idea_id: int, study: Any, *, overrides: dict[str, Any] | None = None,
            variant_fn: Any = None, seeds: int = 3, workers: int = 1, storage: str | None = None,
            checks: Any = None, on_check: Any = None, adopt_if: str | AdoptRule | None = None) -> Comparison:
    """Run the A/B test of an idea on ``study``'s trial function and store the verdict with the idea.

    ``checks``: a check ladder for the variant, run first (a failing rung raises :class:`VariantBroken`
    and no trial runs; ``on_check`` sees each rung). ``adopt_if``: a rule (see ``ideas/_rule.py``) that
    adopts the idea when the verdict satisfies it (its ``overrides`` are then stored as the idea's config,
    so the next test's baseline includes them); without one nothing is adopted. A variant *file* adopted
    this way changes no configuration: the baseline runs the study's own trial function."""
    rule = adopt_if if isinstance(adopt_if, AdoptRule) or adopt_if is None else AdoptRule.parse(adopt_if)
    idea = ledger.get(idea_id)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise fail("seeds", "ab_test", "an integer of 2 or more (3-5 is usual) to separate an effect from seed noise",
                   seeds)
    baseline, variant, _ = arms_config(ledger, idea_id, study, overrides)
    if variant == baseline and variant_fn is None:
        raise ConfigError(f"Idea {idea_id} changes nothing: give --variant NAME=VALUE overrides, a variant experiment "
                          f"file, or set the idea's config (tuneloop idea edit {idea_id} --config ...).")
    seed_list = [SEED_BASE + k for k in range(seeds)]
    from tuneloop.study import Study, objective_arguments

    if idea.state in (IdeaState.PROPOSED, IdeaState.BROKEN):
        ledger.start(idea_id)  # a broken idea tested again: its fix is being tested
    if checks is not None:
        report = check_variant(ledger, idea_id, checks, storage=storage, on_result=on_check)
        if report.failure is not None:
            raise VariantBroken(ledger.get(idea_id), report)
    tests = len(ledger.tests(idea_id))
    arms = Study(f"idea-{idea_id}-test-{tests + 1}", Space(arm=Choice(["baseline", "variant"]),
                                                            seed_index=Choice(list(range(seeds)))),
                 Arms(study.fn, variant_fn or study.fn, baseline, variant, seed_list),
                 **objective_arguments(study.objectives),  # the same objectives and constraints as the study
                 budget=study.budget, rules=study.rules, storage=storage or study.storage)
    arms.experiment_path = study.experiment_path
    arms.run(searcher={"name": "grid", "steps": 1}, workers=workers)
    values: dict[tuple[str, int], float] = {}
    for t in arms.trials:  # compared on the first objective; a run that breaks a constraint counts as failed
        ok = t.state == TrialState.COMPLETED and study.objectives.feasible(t.values)
        values[(t.params["arm"], t.params["seed_index"])] = t.value if ok and t.value is not None else math.nan
    base = [values.get(("baseline", k), math.nan) for k in range(seeds)]
    var = [values.get(("variant", k), math.nan) for k in range(seeds)]
    result = compare(base, var, study.mode, predicted_gain=idea.gain)
    ledger.record_test(idea_id, metric=study.metric, mode=study.mode, seeds=seed_list, baseline=base, variant=var,
                       result=result.to_dict(), study=arms.name)
    ledger.link(idea_id, study=arms.name, baseline_of=study.name)
    if rule is not None and rule.holds(result):
        if overrides:  # what was tested becomes the idea's config, so the baseline (baseline_config) carries it
            ledger.edit(idea_id, config={**idea.config, **overrides})
        ledger.decide(idea_id, "adopt", note=f"adopted by rule '{rule}': {result.message}")
    return result
