"""The fast paths of the study computations give the very floats and orders of the plain ones."""

import math
import random

import numpy as np

from tuneloop.analysis._bounds import _MISSING, _column, _column_slow, _positions
from tuneloop.objectives import Objectives
from tuneloop.space import Float, Int, LogFloat
from tuneloop.store import TrialRecord, TrialState


def _trial(i, params, values, state=TrialState.COMPLETED):
    v = values.get("a")
    return TrialRecord(id=i + 1, number=i, state=state, params=params, seed=0, attempt=0,
                       value=v if isinstance(v, float) else None, values=values, error=None, created_at=0.0,
                       started_at=None, finished_at=None)


def test_numeric_columns_match_the_element_by_element_loop():
    rng = random.Random(0)
    for p in (Float(-1.0, 1.0), LogFloat(1e-4, 1.0), Int(1, 9), Int(1, 1024, log=True), Float(0.0, 0.5)):
        for _ in range(20):
            special = [p.low, p.high, -0.0, 0.0, 2 * p.high, p.low / 3, 1, 3, 7.5]
            values = [rng.choice(special) if rng.random() < 0.2 else rng.uniform(p.low, p.high) for _ in range(200)]
            trials = [_trial(i, {"x": v}, {}) for i, v in enumerate(values)]
            got = _column(p, "x", trials)
            assert got.tobytes() == _column_slow(p, values).tobytes()
            assert got.tobytes() == _column_slow(p, list(values)).tobytes()


def test_the_numpy_clip_is_pythons_min_max():
    values = [-0.0, 0.0, -1e-300, 1e-300, 1.0, 1.0000000000000002, float("nan"), -math.inf]
    a = np.array(values)
    pos = np.where(a > 0.0, a, 0.0)
    pos = np.where(pos < 1.0, pos, 1.0)
    assert [repr(x) for x in pos.tolist()] == [repr(min(1.0, max(0.0, v))) for v in values]
    assert _positions([1.0, _MISSING], False, 0.0, 1.0) is None  # an inactive trial: the loop
    assert _positions([1.0, "x"], False, 0.0, 1.0) is None
    assert _positions([0.5], False, 0.0, 0.0) is None  # an empty range: the loop raises as it did


def _ranked_plainly(obj, trials):
    """Objectives.ranked as it was written before it computed each loss once."""
    done = [t for t in trials if t.state == "completed" and obj.vector(t.values) is not None]
    feasible = [t for t in done if obj.feasible(t.values)]
    infeasible = sorted((t for t in done if not obj.feasible(t.values)),
                        key=lambda t: sum(max(v, 0.0) for v in obj.violations(t.values)))
    losses = [obj.loss(t.values) for t in feasible]
    from tuneloop.objectives import layers

    layer = layers(losses) if obj.multi else [0] * len(feasible)
    order = sorted(range(len(feasible)), key=lambda i: (layer[i], losses[i][0]))
    return [feasible[i] for i in order] + infeasible


def test_ranking_and_best_keep_their_order_and_ties():
    rng = random.Random(1)
    odd = [None, math.nan, math.inf, True, "x", 2, -0.0, 0.0]
    for obj in (Objectives.of("a", "min"), Objectives.of("a", "max"),
                Objectives.of(objectives={"a": "max"}, constraints={"b": ("<=", 0.5)}),
                Objectives.of(objectives={"a": "min", "b": "max"}),
                Objectives.of(objectives={"a": "min", "b": "max", "c": "min"}, constraints={"c": (">=", 0.2)})):
        for _ in range(10):
            trials = [_trial(i, {}, {k: rng.choice(odd) if rng.random() < 0.1 else round(rng.random(), 1)
                                     for k in "abc" if rng.random() < 0.95},
                             rng.choice(list(TrialState)) if rng.random() < 0.2 else TrialState.COMPLETED)
                      for i in range(150)]
            ranked = obj.ranked(trials)
            assert [id(t) for t in ranked] == [id(t) for t in _ranked_plainly(obj, trials)]
            pool = [t for t in obj.completed(trials) if obj.feasible(t.values)]
            expected = min(pool, key=lambda t: obj.loss(t.values)[0]) if pool else None  # type: ignore[index]
            assert obj.best(trials) is expected
            assert obj.front_sorted(trials) == sorted(obj.front(trials), key=lambda t: obj.loss(t.values))
