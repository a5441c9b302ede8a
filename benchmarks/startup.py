"""What starting costs before the first trial trains: imports, the CLI, a worker process, the data.

    python benchmarks/startup.py              # 7 fresh processes each; writes benchmarks/results/startup.json
    python benchmarks/startup.py --repeat 3

Each case runs in a fresh Python process, alternated round by round so drift hits every case
alike; the median wall time is reported. The anchors are what no framework can avoid: the
interpreter alone and ``import torch``, measured in the same run. ``-X importtime`` then lists the
largest imports under ``import tuneloop.torch`` (cumulative), to say which of them are ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = tempfile.mkdtemp(prefix="tuneloop-startup-")
CASES = {
    "python alone (anchor)": [sys.executable, "-c", "pass"],
    "import torch (anchor)": [sys.executable, "-c", "import torch"],
    "import tuneloop": [sys.executable, "-c", "import tuneloop"],
    "import tuneloop.torch": [sys.executable, "-c", "import tuneloop.torch"],
    "tuneloop --help": [sys.executable, "-c", ("import sys\nfrom tuneloop.cli import app\nsys.argv = ['tuneloop', '--help']\n"
                        "try:\n    app()\nexcept SystemExit:\n    pass")],
    # what a worker process does before its first trial: imports, then the data (from the disk cache)
    "worker: tuneloop.torch + mnist1d() cached": [sys.executable, "-c",
                                                  "import tuneloop.torch\nfrom tuneloop.datasets import mnist1d\nmnist1d()"],
    # ... as a worker of `tuneloop run examples/mnist1d_cnn.py` does it: its module, then the experiment
    # file (which builds the Study), then the data; whether SQLAlchemy was loaded is printed
    "worker: the CNN example's file + mnist1d() cached": [sys.executable, "-c", (
        "import sys, tuneloop.run._worker\nfrom tuneloop._load import load_module\n"
        f"load_module({str(ROOT / 'examples' / 'mnist1d_cnn.py')!r})\nfrom tuneloop.datasets import mnist1d\nmnist1d()\n"
        "print('sqlalchemy' in sys.modules)")],
    "mnist1d() generated (no cache)": [sys.executable, "-c",
                                       ("import os, tempfile\nos.environ['TUNELOOP_CACHE'] = tempfile.mkdtemp()\n"
                                       "from tuneloop.datasets import mnist1d\nmnist1d()")],
}


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "TUNELOOP_CACHE": CACHE})
    return time.perf_counter() - start


def _largest_imports(n: int = 12) -> list[dict[str, object]]:
    """The largest packages imported under ``import tuneloop.torch``, by cumulative time where each is
    first imported (nested ones too: tuneloop's figure includes SQLAlchemy's, which it imports)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tuneloop.torch"], check=True,
                         capture_output=True, text=True).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if "." not in name.strip():  # a package, not a submodule: its cumulative time includes what it imports
            rows.append({"module": name.strip(), "ms": round(int(cumulative) / 1000, 1)})
    return sorted(rows, key=lambda r: -float(r["ms"]))[:n]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "startup.json")
    args = parser.parse_args()
    subprocess.run(CASES["worker: tuneloop.torch + mnist1d() cached"], check=True,
                   env={**os.environ, "TUNELOOP_CACHE": CACHE})  # fills the cache; warms the file cache
    worker = subprocess.run(CASES["worker: the CNN example's file + mnist1d() cached"], check=True, capture_output=True,
                            text=True, env={**os.environ, "TUNELOOP_CACHE": CACHE})
    sqlalchemy_in_worker = worker.stdout.split()[-1] == "True"
    print(f"a worker of the CNN example loads SQLAlchemy: {sqlalchemy_in_worker}")
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.repeat):
        for name, cmd in CASES.items():
            times[name].append(_timed(cmd))
    results = {name: {"median_s": round(statistics.median(t), 3), "min_s": round(min(t), 3)}
               for name, t in times.items()}
    for name, r in results.items():
        print(f"{name:45s} {r['median_s']:6.3f} s (min {r['min_s']:.3f})")
    imports = _largest_imports()
    print("largest imports under tuneloop.torch:", ", ".join(f"{r['module']} {r['ms']} ms" for r in imports))
    out = {"benchmark": "startup", "repeat": args.repeat, "results": results, "largest_imports": imports,
           "sqlalchemy_in_worker": sqlalchemy_in_worker,
           "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                       "load_before": load_before, "load_after": os.getloadavg()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
