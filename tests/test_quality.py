"""Style and types are part of the test run: ``ruff check`` and ``mypy`` pass clean on src/.

Both read their settings from pyproject.toml (the rules, the checked files, the third-party
packages without types) and run from this virtual environment. mypy takes ~30 s of CPU on a fresh
cache, so it is marked slow: `.ci/run` runs it in its second pytest call (`pytest -m slow`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_ruff_finds_nothing_in_src():
    done = _run("ruff", "check", "--no-cache", "--output-format", "concise", "src")
    if done.returncode:
        pytest.fail(f"ruff check src:\n{done.stdout}{done.stderr}", pytrace=False)


@pytest.mark.slow  # ~30 s of CPU on a fresh cache (torch's stubs): run by .ci/run's second call
def test_mypy_finds_nothing_in_src(tmp_path):
    # a fresh cache: a stale one from an earlier run must not hide an error
    done = _run("mypy", "--cache-dir", str(tmp_path / "mypy"), "--no-color-output")
    if done.returncode:
        pytest.fail(f"mypy (files and options from pyproject.toml):\n{done.stdout}{done.stderr}", pytrace=False)
