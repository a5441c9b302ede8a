"""A table of configurations and results -> a tuneloop study, through the CLI and the function."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.errors import ConfigError
from tuneloop.interop import import_csv
from tuneloop.store import Store

TABLE = """lr,width,opt,momentum,run id,loss
0.0001,32,sgd,0.9,a,0.80
0.001,64,adam,,b,0.55
0.01,128,sgd,0.5,c,
0.1,64,adam,,d,0.70
"""


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_space_from_data_rows_become_trials(tmp_path, storage):
    path = tmp_path / "results.csv"
    path.write_text(TABLE)
    result = _cli("import", "csv", "sweep", "--from", path, "--metric", "loss", "--mode", "min", "--space-from-data",
                  "--ignore", "run id", "--storage", storage)
    assert result.exit_code == 0, result.output
    assert "Imported 4 trials" in result.output and "3 completed" in result.output
    store = Store(storage)
    record = store.require_study("sweep")
    assert (record.metric, record.mode.value) == ("loss", "min")
    assert record.space == tl.Space(lr=tl.LogFloat(0.0001, 0.1), width=tl.Int(32, 128),
                                    opt=tl.Choice({"sgd": {"momentum": tl.Float(0.5, 0.9)}, "adam": {}}))
    trials = store.trials(record.id)
    assert [(t.number, t.state.value, t.value) for t in trials] == [
        (0, "completed", 0.8), (1, "completed", 0.55), (2, "failed", None), (3, "completed", 0.7)]
    assert trials[0].params == {"lr": 0.0001, "width": 32, "opt": "sgd", "momentum": 0.9}
    assert trials[1].params == {"lr": 0.001, "width": 64, "opt": "adam"}
    assert trials[1].values == {"loss": 0.55}

    # more rows into the same study: checked against its space, numbered after the others
    more = tmp_path / "more.csv"
    more.write_text("lr,width,opt,momentum,loss\n0.05,100,sgd,0.6,0.4\n")
    added = import_csv(store, "sweep", more, metric="loss")
    assert added.counts == {"completed": 1}
    assert store.trial(record.id, 4).params == {"lr": 0.05, "width": 100, "opt": "sgd", "momentum": 0.6}
    more.write_text("lr,width,opt,momentum,loss\n0.05,1000,sgd,0.6,0.4\n")
    refused = _cli("import", "csv", "sweep", "--from", more, "--metric", "loss", "--storage", storage)
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "Row 2" in refused.output and "width" in refused.output
    assert len(store.trials(record.id)) == 5  # nothing of the refused table was written


@pytest.mark.parametrize(("content", "words"), [
    ("a,b\n1,2\n", "no column 'loss'"),
    ("a,loss\n1,2,3\n", "Row 2"),
    ("a,a,loss\n1,2,3\n", "distinct"),
    ("a,loss\n", "no rows"),
])
def test_a_bad_table_is_refused_in_one_line(tmp_path, storage, content, words):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words):
        import_csv(Store(storage), "t", path, metric="loss", mode="min", space_from_data=True)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="UTF-8"):
        import_csv(Store(storage), "t", binary, metric="loss", mode="min", space_from_data=True)
    assert Store(storage).get_study("t") is None


def test_a_new_study_needs_a_mode_and_space_from_data(tmp_path, storage):
    path = tmp_path / "t.csv"
    path.write_text("x,loss\n1.5,2\n2.5,1\n")
    with pytest.raises(ConfigError, match="--space-from-data"):
        import_csv(Store(storage), "t", path, metric="loss", mode="min")
    with pytest.raises(ConfigError, match="--mode"):
        import_csv(Store(storage), "t", path, metric="loss", space_from_data=True)
