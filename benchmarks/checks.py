"""How long the whole check ladder takes on the MNIST-1D MLP (target: under 30 s on 2 cores).

    python benchmarks/checks.py          # writes benchmarks/results/checks.json

Times `tuneloop check examples/mnist1d_mlp.py` as a user runs it (a fresh process: imports, data
generation, every check, the four baselines), and each check's share from inside.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "tuneloop.cli", "check", str(ROOT / "examples" / "mnist1d_mlp.py"),
                              "--storage", str(Path(tmp) / "c.db")], capture_output=True, text=True)
        wall = time.perf_counter() - start
    print(run.stdout[-1500:])
    sys.path.insert(0, str(ROOT / "examples"))
    import mnist1d_mlp

    start = time.perf_counter()
    report = mnist1d_mlp.checks.run()
    inside = time.perf_counter() - start
    parts = {r.name: round(r.seconds, 3) for r in report.results}
    print(f"tuneloop check: {wall:.1f} s wall (target < 30 s); ladder and baselines alone {inside:.1f} s")
    out = Path(__file__).parent / "results" / "checks.json"
    out.write_text(json.dumps({"benchmark": "checks", "command_wall_s": wall, "ladder_and_baselines_s": inside,
                               "exit_code": run.returncode, "per_check_s": parts, "baselines": report.baselines,
                               "within_30s": wall < 30, "machine": platform.platform(),
                               "date": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
