"""Curves cut down for drawing: a curve of 100,000 logged steps is drawn from a few thousand points
that keep its shape (each bucket's lowest and highest point, the first, the last, and any point that
is not finite, so a divergence still shows). Summaries and tables read the full curves."""

from __future__ import annotations

import math
from collections.abc import Sequence

CURVE_POINTS = 2000  # more than a plot's width in pixels: nothing visible is lost


def decimate(points: Sequence[tuple[int, float]], limit: int = CURVE_POINTS) -> list[tuple[int, float]]:
    """At most about ``limit`` points of ``points`` (step, value), in step order."""
    n = len(points)
    if n <= limit:
        return list(points)
    buckets = max(1, (limit - 2) // 2)
    size = (n - 2) / buckets
    out = [points[0]]
    for b in range(buckets):
        chunk = points[1 + int(b * size):1 + int((b + 1) * size)]
        finite = [p for p in chunk if isinstance(p[1], (int, float)) and math.isfinite(p[1])]
        keep = {id(p): p for p in (min(finite, key=lambda p: p[1]), max(finite, key=lambda p: p[1]))} if finite else {}
        odd = next((p for p in chunk if not (isinstance(p[1], (int, float)) and math.isfinite(p[1]))), None)
        if odd is not None:
            keep[id(odd)] = odd
        out.extend(sorted(keep.values(), key=lambda p: p[0]))
    out.append(points[-1])
    return out
