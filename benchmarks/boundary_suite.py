"""Miss and false-alarm rates of ``tuneloop analyze``'s boundary check on synthetic studies with
known answers, over many seeds; beside them, the rule it replaced (all of the best 10% in the outer
10% of the range).

    python benchmarks/boundary_suite.py                 # 100 seeds per case
    python benchmarks/boundary_suite.py --seeds 20      # quicker

The cases and their generator are the test suite's (tests/analysis/test_boundary_suite.py): an
optimum past a bound while two other parameters matter as much (plain, noisy, very noisy, on a
log-scale parameter, on a conditional one), an optimum inside (plain, noisy, log-scale,
conditional), a plateau reaching the bound, and pure noise. 60 to 150 trials a study, sampled at
random or by TPE, minimized or maximized, with the side past which the optimum lies alternating.
A study is missed when its crowded bound is not found, and has a false alarm when any other bound
is. Writes benchmarks/results/boundary_suite.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _suite() -> Any:
    """The test module that holds the cases (tests are not a package: loaded from its path)."""
    path = ROOT / "tests" / "analysis" / "test_boundary_suite.py"
    spec = importlib.util.spec_from_file_location("boundary_suite_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def old_rule(space: Any, trials: list[Any], mode: str) -> set[tuple[str, str]]:
    """The rule before issue 21: the best 10% (at least 3) all in the outer 10% of the range."""
    from tuneloop.analysis._bounds import position
    from tuneloop.analysis._study import _all_params, _done, _ranked
    from tuneloop.space import Choice

    done = _done(trials)
    ranked = _ranked(done, mode, None, "old_rule")
    top = ranked[:max(3, len(ranked) // 10)]
    out = set()
    for name, p in _all_params(space).items():
        if isinstance(p, Choice):
            continue
        positions = [position(p, t.params[name]) for t in top if name in t.params]
        if len(positions) >= 3 and len(done) >= 10:
            if all(u >= 0.9 for u in positions):
                out.add((name, "high"))
            elif all(u <= 0.1 for u in positions):
                out.add((name, "low"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="studies per case")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "boundary_suite.json")
    args = parser.parse_args()
    suite = _suite()
    from tuneloop.analysis._study import crowded

    started = time.perf_counter()
    cases: dict[str, dict[str, Any]] = {}
    for kind in (*suite.KINDS, *suite.LIMITS):
        counts = {"studies": 0, "missed": 0, "false_alarms": 0, "old_missed": 0, "old_false_alarms": 0}
        positive = bool(suite.case(kind, 0).truth)
        for seed in range(args.seeds):
            c, mode, trials = suite.study(kind, seed)
            new = {(x.name, x.side) for x in crowded(c.space, trials, mode)}
            old = old_rule(c.space, trials, mode)
            counts["studies"] += 1
            counts["missed"] += bool(c.truth - new)
            counts["false_alarms"] += bool(new - c.truth)
            counts["old_missed"] += bool(c.truth - old)
            counts["old_false_alarms"] += bool(old - c.truth)
        n = counts["studies"]
        cases[kind] = {**counts, "gated": kind in suite.KINDS, "has_crowded_bound": positive,
                       "miss_rate": counts["missed"] / n if positive else None,
                       "false_alarm_rate": counts["false_alarms"] / n,
                       "old_miss_rate": counts["old_missed"] / n if positive else None,
                       "old_false_alarm_rate": counts["old_false_alarms"] / n}
        print(f"{kind:20s} miss {cases[kind]['miss_rate']}  false alarm {cases[kind]['false_alarm_rate']:.3f}  "
              f"(old rule: miss {cases[kind]['old_miss_rate']}, false alarm {cases[kind]['old_false_alarm_rate']:.3f})",
              flush=True)
    gated = [v for k, v in cases.items() if v["gated"]]
    positives = [v for v in gated if v["has_crowded_bound"]]

    def share(key: str, among: list[dict[str, Any]]) -> float:
        return sum(v[key] for v in among) / max(1, sum(v["studies"] for v in among))

    overall = {"miss_rate": share("missed", positives), "false_alarm_rate": share("false_alarms", gated),
               "old_miss_rate": share("old_missed", positives),
               "old_false_alarm_rate": share("old_false_alarms", gated),
               "studies": sum(v["studies"] for v in gated)}
    print(json.dumps(overall, indent=2))
    import numpy
    import scipy

    import tuneloop as tl

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "boundary_suite", "seeds": args.seeds, "command": f"python benchmarks/boundary_suite.py --seeds "
        f"{args.seeds}", "overall": overall, "cases": cases,
        "note": "overall rates are over the gated cases (every case but 'very noisy past'); a study is missed when its "
                "crowded bound is not found and has a false alarm when any other bound is",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "numpy": numpy.__version__, "scipy": scipy.__version__, "tuneloop": tl.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
