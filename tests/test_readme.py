"""The README's first commands are what newcomers copy: keep them true."""

from pathlib import Path

ROOT = Path(__file__).parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.strip().splitlines() if line]


def test_readme_begins_with_the_demo_and_the_test_commands():
    demo, tests = _readme_commands()[:2]
    assert demo.endswith("pip install -e . && tuneloop demo")
    assert tests.endswith("pip install -e '.[dev]' && pytest")
    assert "pip install torch==2.13.0 &&" in demo and "pip install torch==2.13.0 &&" in tests


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci
    assert "set -euo pipefail" in ci
