"""Curve summaries against curves whose answer is known by construction."""

import math

from tuneloop.analysis import direction_of, summarize_curve


def test_improving_worsening_flat_and_diverged():
    falling = [(s, 1.0 / (s + 1)) for s in range(20)]
    c = summarize_curve("val_loss", falling, "min")
    assert (c.start, c.end, c.best, c.best_step, c.trend) == (1.0, 1 / 20, 1 / 20, 19, "improving")
    assert summarize_curve("val_acc", falling, "max").trend == "worsening"
    flat = [(s, 0.5) for s in range(20)]
    assert summarize_curve("x", flat).trend == "flat"
    diverged = [(0, 1.0), (1, 2.0), (2, math.nan)]
    c = summarize_curve("loss", diverged)
    assert c.trend == "diverged" and c.best == 1.0 and math.isnan(c.end)
    assert summarize_curve("loss", [(0, 1.0), (1, 0.5)]).trend == "too short"


def test_direction_follows_the_study_for_its_objective_and_the_name_otherwise():
    assert direction_of("val_acc") == "max" and direction_of("val_loss") == "min"
    assert direction_of("score", "score", "min") == "min"
    assert direction_of("grad_norm") is None and direction_of("dead_relu/3") is None
    assert direction_of("step/train_loss") == "min"


def test_quantities_without_a_direction_rise_and_fall():
    rising = [(s, float(s)) for s in range(20)]
    c = summarize_curve("grad_norm", rising, None)
    assert c.trend == "rising" and math.isnan(c.best)
    assert summarize_curve("grad_norm", rising[::-1], None).trend == "falling"
