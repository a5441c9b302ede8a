"""Curves cut down for drawing keep their shape: the ends, each bucket's extremes, and any
non-finite point (a divergence must still show)."""

import math

from tuneloop.views._decimate import decimate


def test_a_long_curve_keeps_its_ends_extremes_and_divergence_in_step_order():
    points = [(s, math.sin(s / 500) + (5.0 if s == 54_321 else 0.0)) for s in range(1, 100_001)]
    points[77_777] = (77_778, math.nan)
    out = decimate(points, limit=2000)
    assert len(out) <= 2000 + 2 and out[0] == points[0] and out[-1] == points[-1]
    assert [s for s, _ in out] == sorted(s for s, _ in out)
    assert (54_321, points[54_320][1]) in out  # the spike
    assert any(s == 77_778 and math.isnan(v) for s, v in out)  # the divergence
    assert max(v for _, v in out if math.isfinite(v)) == max(v for _, v in points if math.isfinite(v))


def test_a_short_curve_is_left_as_it_is():
    points = [(s, float(s)) for s in range(1, 2001)]
    assert decimate(points) == points
