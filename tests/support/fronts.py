"""Small stored multi-objective studies for the view, dashboard and report tests.

"mo": val_acc (max) against latency_ms (min) with latency_ms <= 3, a 10-trial grid of
``trial_functions.accuracy_latency``: width in 0.1..0.9, padding 0 or 0.5 (padding only hurts).
Trials 0, 2, 4, 6 (padding 0, width up to 0.7) are the front; 7, 8 and 9 break the constraint
(8 is the most accurate of all, yet never the best). "mo3" adds params_m (min), no constraints:
the front is every padding-0 trial, 0, 2, 4, 6 and 8.
"""

from __future__ import annotations

import trial_functions as tf

import tuneloop as tl

SPACE = {"width": [0.1, 0.3, 0.5, 0.7, 0.9], "padding": [0.0, 0.5]}
FRONT = [6, 4, 2, 0]  # best first by val_acc
INFEASIBLE = [7, 8, 9]  # by how far they break latency_ms <= 3
FRONT3 = [8, 6, 4, 2, 0]


def build_fronts(storage: str, three: bool = True) -> str:
    """Write "mo" (and "mo3" unless ``three`` is false) into ``storage``; returns it."""
    space = tl.Space(**{name: tl.Choice(values) for name, values in SPACE.items()})
    tl.Study("mo", space, tf.accuracy_latency, objectives={"val_acc": "max", "latency_ms": "min"},
             constraints={"latency_ms": ("<=", 3.0)}, storage=storage, searcher="grid").run(seed=0)
    if three:
        tl.Study("mo3", space, tf.accuracy_latency, objectives={"val_acc": "max", "latency_ms": "min", "params_m": "min"},
                 storage=storage, searcher="grid").run(seed=0)
    return storage
