"""The proposed next space: narrowed around the best, expanded at crowded bounds, with reasons."""

import math

import numpy as np

import tuneloop as tl
from tuneloop.analysis._refine import refine_space
from tuneloop.store import TrialRecord


def records(space_fn, value_fn, n=200, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = space_fn(rng, i)
        out.append(TrialRecord(id=i, number=i, state="completed", params=params, seed=i, attempt=0,
                               value=value_fn(params), values={}, error=None, created_at=0.0, started_at=None,
                               finished_at=None, study_id=1))
    return out


SPACE = tl.Space(
    lr=tl.LogFloat(1e-5, 1e-1),
    width=tl.Int(16, 256, log=True),
    dropout=tl.Float(0.0, 0.5),
    momentum=tl.Float(0.0, 1.0),
    opt=tl.Choice({"sgd": {"nesterov": tl.Choice([True, False])}, "adam": {}, "rms": {}}),
)


def sample(rng, i):
    opt = ["sgd", "adam", "rms"][i % 3]
    p = {"lr": float(10 ** rng.uniform(-5, -1)), "width": round(2 ** rng.uniform(4, 8)),
         "dropout": float(rng.uniform(0, 0.5)), "momentum": float(rng.uniform(0, 1)), "opt": opt}
    if opt == "sgd":
        p["nesterov"] = bool(rng.integers(0, 2))
    return p


def score(p):
    """Best at lr 1e-3 (inside the range), the wider the better (a crowded upper bound), no dropout
    (crowding the natural limit 0), momentum near 1 (the natural limit 1); rms is always worse."""
    return (-10 * abs(math.log10(p["lr"]) + 3) + 2 * math.log2(p["width"]) - 40 * p["dropout"] + 10 * p["momentum"]
            - (20 if p["opt"] == "rms" else 0))


def test_refine_narrows_expands_and_drops_with_reasons():
    trials = records(sample, score)
    new, changes = refine_space(SPACE, trials, "max")
    reasons = {c.name: c.reason for c in changes}
    top = sorted(trials, key=lambda t: t.value, reverse=True)[:30]
    lr = new["lr"]
    assert lr.low >= 1e-5 and lr.high < 0.08  # narrowed (the margin keeps the lower side here)...
    assert all(lr.low <= t.params["lr"] <= lr.high for t in top)  # ...without losing a top trial
    assert "narrowed" in reasons["lr"]
    assert new["width"].low >= 16 and new["width"].high > 256 and new["width"].log and "expanded above" in reasons["width"]
    assert new["momentum"].high == 1.0 and "upper bound 1, a natural limit" in reasons["momentum"]
    assert new["opt"].values == ["sgd", "adam"] and "dropped 'rms' (0 of 66 trials in the top)" in reasons["opt"]
    assert "nesterov" in reasons  # children are refined from the trials where they were active
    assert new["opt"].child("sgd") is not None


def test_zero_and_one_are_taken_as_natural_limits():
    space = tl.Space(dropout=tl.Float(0.0, 0.5), momentum=tl.Float(0.0, 1.0), shift=tl.Float(0.0, 2.0))
    trials = records(lambda rng, i: {"dropout": float(rng.uniform(0, 0.5)), "momentum": float(rng.uniform(0, 1)),
                                     "shift": float(rng.uniform(0, 2))},
                     lambda p: -p["dropout"] + p["momentum"] - p["shift"], n=100)
    new, changes = refine_space(space, trials, "max")
    reasons = {c.name: c.reason for c in changes}
    assert new["dropout"].low == 0.0 and "natural limit" in reasons["dropout"]
    assert new["momentum"].high == 1.0 and new["momentum"].low > 0.0  # never past 1, narrowed below
    assert new["shift"].low == 0.0 and "natural limit" in reasons["shift"]  # a Float from 0: 0 holds too


def test_minimizing_and_scientific_parameters_kept():
    trials = records(sample, lambda p: -score(p))
    new, changes = refine_space(SPACE, trials, "min", keep=["opt"])
    assert new["opt"].values == SPACE["opt"].values  # rms stays: it is part of the question
    reasons = {c.name: c.reason for c in changes}
    assert "scientific" in reasons["opt"] and "nesterov" in reasons  # its children are still refined
    assert new["width"].high > 256  # the same best region, found from the other direction


def test_bounds_are_rounded_to_readable_numbers():
    new, _ = refine_space(SPACE, records(sample, score), "max")
    for name in ("lr", "dropout"):
        for bound in (new[name].low, new[name].high):
            assert len(repr(bound)) <= 8, bound  # 0.00086, not 0.0008600000000000001


def test_with_scientific_parameters_each_value_keeps_its_own_good_region():
    space = tl.Space(model=tl.Choice(["a", "b"]), lr=tl.LogFloat(1e-5, 1e-1))

    def sample_ab(rng, i):
        return {"model": "ab"[i % 2], "lr": float(10 ** rng.uniform(-5, -1))}

    def score_ab(p):  # model a is best at lr 1e-2, model b (always worse) at 1e-4
        best = -2 if p["model"] == "a" else -4
        return -abs(math.log10(p["lr"]) - best) - (0 if p["model"] == "a" else 5)

    trials = records(sample_ab, score_ab, n=120)
    pooled, _ = refine_space(space, trials, "max")
    fair, _ = refine_space(space, trials, "max", keep=["model"])
    assert pooled["lr"].low > 1e-4  # pooled, the best trials are all model a's: b's optimum is cut away
    assert fair["lr"].low <= 1e-4 and fair["lr"].high >= 1e-2  # per value, both optima stay inside


def test_a_bound_the_analysis_finds_crowded_grows_even_with_few_top_trials_using_it():
    from tuneloop.analysis._bounds import Crowding
    from tuneloop.analysis._refine import _refine

    space = tl.Space(s=tl.Float(1.0, 4.0), w=tl.Float(0.0, 1.0))
    done = records(lambda rng, i: {"s": float(rng.uniform(1, 4)), "w": float(rng.uniform(0, 1))}, lambda p: p["s"], n=40)
    top = done[:1]  # one top trial uses s: too few to narrow around
    pressed = {("s", "high"): Crowding("s", "high", 4.0, "the objective still improves toward it")}
    new, changes = _refine(space, done, top, pressed=pressed)
    reasons = {c.name: c.reason for c in changes}
    s = new["s"]
    assert isinstance(s, tl.Float) and s.high > 4.0 and "expanded above it (the objective still improves toward it)" in reasons["s"]
    assert new["w"] == space["w"] and "only 1 of the top trials" in reasons["w"]  # no evidence: kept as before
