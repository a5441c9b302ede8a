"""The boundary check against synthetic studies whose answer is known: an optimum past a bound while
other parameters matter, an optimum inside, a plateau reaching the bound, pure noise, noisy objectives,
log-scale and conditional parameters. Objectives are closed-form (no training); trials are sampled at
random or by TPE. The miss and false-alarm rates over many more seeds are measured by
benchmarks/boundary_suite.py and reported in docs/analyze.md."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tuneloop.analysis._study import crowded
from tuneloop.search import FastTPE, Outcome
from tuneloop.space import Choice, Float, Int, LogFloat, Space
from tuneloop.store import TrialRecord, TrialState

Objective = Callable[[dict[str, Any], np.random.Generator], float]  # higher is better


@dataclass(frozen=True)
class Case:
    """A synthetic study: its space, an objective to maximize, and the bounds that truly crowd."""

    name: str
    space: Space
    objective: Objective
    truth: frozenset[tuple[str, str]]


def _u(value: float, low: float, high: float, log: bool = False) -> float:
    if log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def _bump(u: float, centre: float) -> float:
    """0 at ``centre``, -1 at the farther end of 0..1: an optimum inside the range."""
    return -((u - centre) ** 2) / max(centre, 1 - centre) ** 2


def _past(u: float, beyond: float) -> float:
    """0 at 0, 1 at 1 and still rising there: the optimum lies ``beyond`` past the bound (concave)."""
    peak = 1 + beyond
    return (peak**2 - (peak - u) ** 2) / (peak**2 - beyond**2)


def case(kind: str, seed: int) -> Case:
    """The case ``kind`` drawn with ``seed``: which side the optimum lies past, where the optima inside
    sit and how far past the bound it is vary with the seed."""
    rng = np.random.default_rng(10_000 + seed)
    side = "high" if seed % 2 == 0 else "low"
    beyond = float(rng.uniform(0.5, 2.0))
    cy, cz, cx = (float(rng.uniform(0.3, 0.7)) for _ in range(3))
    flat = float(rng.uniform(0.4, 0.7))  # where a plateau starts, toward the bound
    noise = {"noisy": 0.15, "very": 0.3}.get(kind.split()[0], 0.03)  # against a spread of about 0.45

    def toward(u: float) -> float:  # the target's position measured toward ``side``
        return u if side == "high" else 1 - u

    def others(p: dict[str, Any]) -> float:  # two more parameters that matter as much as the target
        return _bump(_u(p["y"], 1e-4, 1e-1, log=True), cy) + _bump(_u(p["z"], 1, 100), cz)

    base = {"y": LogFloat(1e-4, 1e-1), "z": Int(1, 100)}
    if kind in ("past", "noisy past", "very noisy past", "inside", "noisy inside", "plateau", "noise"):
        space = Space(x=Float(0.0, 10.0), **base)

        def objective(p: dict[str, Any], r: np.random.Generator) -> float:
            u = _u(p["x"], 0.0, 10.0)
            effect = (_past(toward(u), beyond) if kind.endswith("past") else _bump(u, cx) if kind.endswith("inside")
                      else min(toward(u), flat) / flat if kind == "plateau" else 0.0)
            rest = 0.0 if kind == "noise" else others(p)
            return effect + rest + float(r.normal(0, 1.0 if kind == "noise" else noise))

        truth = {("x", side)} if kind.endswith("past") else set()
        return Case(kind, space, objective, frozenset(truth))
    if kind in ("log past", "log inside"):
        space = Space(lr=LogFloat(1e-5, 1e-1), **base)

        def objective(p: dict[str, Any], r: np.random.Generator) -> float:
            u = _u(p["lr"], 1e-5, 1e-1, log=True)
            effect = _past(toward(u), beyond) if kind == "log past" else _bump(u, cx)
            return effect + others(p) + float(r.normal(0, noise))

        return Case(kind, space, objective, frozenset({("lr", side)} if kind == "log past" else set()))
    if kind in ("conditional past", "conditional inside"):
        space = Space(opt=Choice({"sgd": {"scale": Float(0.0, 4.0)}, "adam": {"beta": Float(0.5, 0.99)}}), **base)

        def objective(p: dict[str, Any], r: np.random.Generator) -> float:
            if p["opt"] == "sgd":
                u = _u(p["scale"], 0.0, 4.0)
                effect = _past(toward(u), beyond) if kind == "conditional past" else _bump(u, cx)
            else:
                effect = _bump(_u(p["beta"], 0.5, 0.99), 0.5) + 0.5
            return effect + others(p) + float(r.normal(0, noise))

        return Case(kind, space, objective, frozenset({("scale", side)} if kind == "conditional past" else set()))
    raise ValueError(kind)


KINDS = ("past", "noisy past", "log past", "conditional past", "inside", "noisy inside", "log inside", "plateau",
         "noise", "conditional inside")
LIMITS = ("very noisy past",)  # measured and reported (docs/analyze.md), not held to the 10% bar


def _draw(space: Space, rng: np.random.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, LogFloat):
            out[name] = float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
        elif isinstance(p, Float):
            out[name] = float(rng.uniform(p.low, p.high))
        elif isinstance(p, Int):
            out[name] = int(rng.integers(p.low, p.high + 1))
        else:
            assert isinstance(p, Choice)
            value = p.values[int(rng.integers(len(p.values)))]
            out[name] = value
            child = p.child(value)
            if child is not None:
                out.update(_draw(child, rng))
    return out


def study(kind: str, seed: int) -> tuple[Case, str, list[TrialRecord]]:
    """Case ``kind`` sampled with ``seed``: 60 to 150 trials, at random (even seeds // 2) or by TPE,
    minimized or maximized; returns the case, the mode and the trials."""
    c = case(kind, seed)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 151))
    mode = "max" if (seed // 4) % 2 == 0 else "min"
    sign = 1.0 if mode == "max" else -1.0
    tpe = FastTPE(c.space, seed=seed, mode=mode) if (seed // 2) % 2 else None
    trials = []
    for i in range(n):
        proposal = tpe.ask(1)[0] if tpe is not None else None
        params = proposal.params if proposal is not None else _draw(c.space, rng)
        value = sign * c.objective(params, rng)
        if tpe is not None and proposal is not None:
            tpe.tell(Outcome(params, "completed", value, token=proposal.token))
        trials.append(TrialRecord(id=i + 1, number=i, state=TrialState.COMPLETED, params=params, seed=i, attempt=0,
                                  value=value, values={}, error=None, created_at=0.0, started_at=0.0, finished_at=1.0))
    return c, mode, trials


def judge(kind: str, seed: int) -> tuple[bool, bool]:
    """(missed, false alarm) of the boundary check on one study of case ``kind``: missed when a bound
    that truly crowds is not found, a false alarm when any other bound is."""
    c, mode, trials = study(kind, seed)
    found = {(x.name, x.side) for x in crowded(c.space, trials, mode)}
    return bool(c.truth - found), bool(found - c.truth)


def rates(kinds: tuple[str, ...], seeds: range) -> dict[str, dict[str, float]]:
    """Per case and over all of them: the share of studies missed (cases with a crowded bound) and the
    share with a false alarm."""
    out: dict[str, dict[str, float]] = {}
    total = {"missed": 0, "positive": 0, "alarms": 0, "studies": 0}
    for kind in kinds:
        results = [judge(kind, seed) for seed in seeds]
        positive = bool(case(kind, 0).truth)
        missed, alarms = sum(m for m, _ in results), sum(a for _, a in results)
        out[kind] = {"studies": len(results), "miss_rate": missed / len(results) if positive else math.nan,
                     "false_alarm_rate": alarms / len(results)}
        total["missed"] += missed
        total["positive"] += len(results) if positive else 0
        total["alarms"] += alarms
        total["studies"] += len(results)
    out["all"] = {"studies": total["studies"], "miss_rate": total["missed"] / max(1, total["positive"]),
                  "false_alarm_rate": total["alarms"] / total["studies"]}
    return out


SEEDS = range(8)  # each side, sampler and mode once per case; the slow test and benchmarks/boundary_suite.py run more


@pytest.fixture(scope="module")
def suite() -> dict[str, dict[str, float]]:
    return rates(KINDS, SEEDS)


@pytest.mark.slow  # 10 s here: the default run keeps the case end to end (test_diagnose.py)
def test_the_boundary_check_misses_and_false_alarms_under_10_percent(suite):
    assert suite["all"]["miss_rate"] < 0.1 and suite["all"]["false_alarm_rate"] < 0.1, suite["all"]


@pytest.mark.slow
def test_over_more_seeds_too():
    more = rates(KINDS, range(8, 40))
    assert more["all"]["miss_rate"] < 0.1 and more["all"]["false_alarm_rate"] < 0.1, more["all"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_no_case_fails_often(suite, kind):
    got = suite[kind]
    assert not got["miss_rate"] > 0.2 and got["false_alarm_rate"] <= 0.1, got  # nan: no bound to miss


def test_the_generator_knows_its_answers():
    assert case("past", 0).truth == {("x", "high")} and case("past", 1).truth == {("x", "low")}
    assert case("log past", 2).truth == {("lr", "high")} and case("conditional past", 3).truth == {("scale", "low")}
    assert case("plateau", 0).truth == set() and case("noise", 0).truth == set()
    c, mode, trials = study("conditional past", 0)
    assert mode == "max" and 60 <= len(trials) <= 150 and any("scale" not in t.params for t in trials)
    assert all(c.space.validate(t.params) for t in trials)


def test_a_stored_value_too_large_for_a_float_is_skipped_not_raised():
    from tuneloop.analysis._refine import refine_space
    from tuneloop.analysis._study import param_effects

    c, mode, trials = study("past", 0)
    hostile = [TrialRecord(id=900 + i, number=900 + i, state=TrialState.COMPLETED, params={**trials[0].params, "x": v},
                           seed=0, attempt=0, value=trials[0].value, values={}, error=None, created_at=0.0,
                           started_at=0.0, finished_at=1.0)
               for i, v in enumerate((10**400, -(10**400), float("nan"), "text"))]
    everything = trials + hostile
    assert ("x", "high") in {(x.name, x.side) for x in crowded(c.space, everything, mode)}  # the rest still judged
    assert param_effects(c.space, everything, mode)
    refine_space(c.space, everything, mode)
