"""``idea test``: the baseline and the variant over the same K seeds, paired, then the verdict.

The baseline configuration is the study's best trial with every adopted idea's overrides applied;
the variant adds this idea's overrides (or runs another experiment file's trial function). Both
arms run as one study (arm x seed index, a grid) so they go in parallel and everything is stored.
"""

from __future__ import annotations

import math
from typing import Any

from tuneloop._validation import fail
from tuneloop.errors import ConfigError
from tuneloop.ideas._ledger import Ledger
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


def ab_test(ledger: Ledger, idea_id: int, study: Any, *, overrides: dict[str, Any] | None = None,
            variant_fn: Any = None, seeds: int = 3, workers: int = 1, storage: str | None = None) -> Comparison:
    """Run the A/B test of an idea on ``study``'s trial function and store the verdict with the idea."""
    idea = ledger.get(idea_id)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise fail("seeds", "ab_test", "an integer of 2 or more (3-5 is usual) to separate an effect from seed noise",
                   seeds)
    try:
        best = study.best
    except Exception:  # noqa: BLE001 - explained below
        raise ConfigError(f"Study {study.name!r} has no completed trial to take the baseline from; run it first.") from None
    baseline = {**best.params, **ledger.baseline_config()}
    variant = {**baseline, **idea.config, **(overrides or {})}
    if variant == baseline and variant_fn is None:
        raise ConfigError(f"Idea {idea_id} changes nothing: give --variant NAME=VALUE overrides, a variant experiment "
                          f"file, or set the idea's config (tuneloop idea edit {idea_id} --config ...).")
    seed_list = [SEED_BASE + k for k in range(seeds)]
    from tuneloop.study import Study, objective_arguments

    tests = len(ledger.tests(idea_id))
    arms = Study(f"idea-{idea_id}-test-{tests + 1}", Space(arm=Choice(["baseline", "variant"]),
                                                            seed_index=Choice(list(range(seeds)))),
                 Arms(study.fn, variant_fn or study.fn, baseline, variant, seed_list),
                 **objective_arguments(study.objectives),  # the same objectives and constraints as the study
                 budget=study.budget, rules=study.rules, storage=storage or study.storage)
    arms.experiment_path = study.experiment_path
    if idea.state == "proposed":
        ledger.start(idea_id)
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
    return result
