"""A queued job's command imports its files only with the content the runner checked: the runner
pins each file's sha256 in the child's environment (``TUNELOOP_PINNED``), which ``_load`` enforces."""

import hashlib
import json
import textwrap

import pytest

RECORDS_ITS_PINS = """
    import os
    import tuneloop as tl

    def objective(trial):
        with open(os.environ["PINS_OUT"], "w") as f:
            f.write(os.environ.get("TUNELOOP_PINNED", ""))
        return {"loss": trial.params.x}

    study = tl.Study("pins", tl.Space(x=tl.Float(0.0, 1.0)), objective, metric="loss", mode="min",
                     searcher="random", executor="inline")
"""


@pytest.mark.slow  # a child process runs a study
def test_the_runner_pins_the_files_it_checked_for_the_job_it_starts(cli, queue, tmp_path, monkeypatch):
    path = tmp_path / "pins.py"
    path.write_text(textwrap.dedent(RECORDS_ITS_PINS))
    out = tmp_path / "pins.json"
    monkeypatch.setenv("PINS_OUT", str(out))
    db = queue(path)
    result = cli("queue", "run", "--storage", db)
    assert result.exit_code == 0 and "1 done" in result.output, result.output
    assert json.loads(out.read_text()) == {str(path.resolve()): hashlib.sha256(path.read_bytes()).hexdigest()}
