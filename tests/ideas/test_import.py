"""Importing an ideas file from anyone: bounded, validated entry by entry, all or nothing (issue 15)."""

import json
import math
import time

import pytest
from typer.testing import CliRunner

import tuneloop as tl
from tuneloop.cli import app
from tuneloop.ideas import Ledger, import_yaml
from tuneloop.ideas._io import MAX_BYTES

GOOD = "  - {title: good one, hours: 1, complexity: 2, gain: 0.01, p: 0.3, tags: [opt], config: {lr: 0.01}}\n"


@pytest.fixture
def ledger(storage):
    return Ledger(storage)


def write(tmp_path, text, name="ideas.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def laughs(levels, width=10):
    """Nested aliases: a few hundred bytes that stand for width ** levels strings."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nideas:\n{GOOD}  - {{title: bomb, hours: 1, complexity: 1, gain: 0, p: 0.1, " \
                              f"config: {{x: *l{levels - 1}}}}}\n"


def test_aliases_that_expand_into_megabytes_are_refused_and_nothing_is_written(ledger, tmp_path):
    text = laughs(6)  # about 400 bytes standing for a million strings (7 MB as JSON)
    assert len(text) < 600
    with pytest.raises(tl.ConfigError, match="aliases that expand past 1024 KiB"):
        import_yaml(ledger, write(tmp_path, text))
    assert ledger.ideas() == []


def test_a_billion_laughs_is_refused_at_once(ledger, tmp_path):
    start = time.perf_counter()
    with pytest.raises(tl.ConfigError, match="aliases that expand"):
        import_yaml(ledger, write(tmp_path, laughs(9)))
    assert time.perf_counter() - start < 5  # measured on the node graph, never expanded
    assert ledger.ideas() == []


def test_aliases_within_the_limit_still_work_and_a_self_reference_does_not(ledger, tmp_path):
    text = ("base: &base {optimizer: adamw, lr: 0.001}\nideas:\n"
            "  - {title: a, hours: 1, complexity: 1, gain: 0.01, p: 0.2, config: *base}\n"
            "  - {title: b, hours: 2, complexity: 1, gain: 0.01, p: 0.2, config: {<<: *base, lr: 0.01}}\n")
    assert import_yaml(ledger, write(tmp_path, text)) == 2
    assert {i.title: i.config for i in ledger.ideas()} == {"a": {"optimizer": "adamw", "lr": 0.001},
                                                           "b": {"optimizer": "adamw", "lr": 0.01}}
    other = Ledger(f"sqlite:///{tmp_path / 'other.db'}")
    loop = "ideas:\n  - &me {title: a, hours: 1, complexity: 1, gain: 0.01, p: 0.2, config: {me: *me}}\n"
    with pytest.raises(tl.ConfigError, match="refers to itself"):
        import_yaml(other, write(tmp_path, loop))
    assert other.ideas() == []


def test_a_file_past_the_size_limit_is_refused_unread(ledger, tmp_path):
    path = write(tmp_path, "# " + "x" * MAX_BYTES + f"\nideas:\n{GOOD}")
    with pytest.raises(tl.ConfigError, match="larger than 1024 KiB"):
        import_yaml(ledger, path)
    assert ledger.ideas() == []


@pytest.mark.parametrize("field, value", [
    ("hours", ".nan"), ("hours", ".inf"), ("hours", "-1"), ("hours", "0"), ("hours", "'1'"), ("hours", "true"),
    ("gain", "-0.1"), ("gain", ".nan"), ("gain", "-.inf"), ("p", "1.5"), ("p", ".nan"), ("p", "'0.2'"),
    ("complexity", "2.5"), ("complexity", "true"), ("complexity", "0"),
    ("actual_hours", "-1"), ("actual_hours", ".nan"), ("title", "''"), ("title", "[a]"), ("title", "2024-01-01"),
    ("state", "done"), ("tags", "opt"), ("tags", "[1]"), ("note", "[x]"),
    ("config", "{x: .nan}"), ("config", "[1]"), ("config", "{1: x}"), ("config", "{d: 2024-01-01}"),
])
def test_a_bad_value_names_the_entry_and_the_field_and_writes_nothing(ledger, tmp_path, field, value):
    entry = {"title": "'bad one'", "hours": "1", "complexity": "1", "gain": "0.01", "p": "0.2", field: value}
    text = "ideas:\n" + GOOD + "  - {" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}\n"
    with pytest.raises(tl.ConfigError) as caught:
        import_yaml(ledger, write(tmp_path, text))
    message = str(caught.value)
    assert message.startswith("Idea 2 ") and f"{field!r} must be" in message and "\n" not in message
    assert ledger.ideas() == []  # the good first entry was not written either


@pytest.mark.parametrize("entry, message", [
    ("{hours: 1, complexity: 1, gain: 0.01, p: 0.2}", "it has no 'title'"),
    ("{title: x, hour: 1, hours: 1, complexity: 1, gain: 0.01, p: 0.2}", "unknown field 'hour'"),
    ("just a title", "is str 'just a title', not a mapping"),
])
def test_missing_unknown_and_malformed_entries(ledger, tmp_path, entry, message):
    with pytest.raises(tl.ConfigError, match=message):
        import_yaml(ledger, write(tmp_path, f"ideas:\n{GOOD}  - {entry}\n"))
    assert ledger.ideas() == []


def test_a_title_alone_imports_with_the_default_estimates(ledger, tmp_path):
    assert import_yaml(ledger, write(tmp_path, "ideas:\n  - {title: only a title}\n")) == 1
    (idea,) = ledger.ideas()
    assert (idea.title, idea.hours, idea.complexity, idea.gain, idea.p, idea.state) == (
        "only a title", 1.0, 1, 0.0, 0.2, "proposed")


def test_json_files_are_read_as_json_and_checked_the_same(ledger, tmp_path):
    good = {"title": "j", "hours": 1e-1, "complexity": 1, "gain": 1e-2, "p": 0.5, "state": "adopted", "note": "n"}
    assert import_yaml(ledger, write(tmp_path, json.dumps({"ideas": [good]}), "ideas.json")) == 1
    (idea,) = ledger.ideas()
    assert (idea.hours, idea.state, idea.note) == (0.1, "adopted", "n") and idea.decided_at is not None
    bad = json.dumps({"ideas": [good, {**good, "hours": math.inf}]})  # Python writes Infinity
    with pytest.raises(tl.ConfigError, match=r"Idea 2 \('j'\) in .*'hours' must be a positive number"):
        import_yaml(ledger, write(tmp_path, bad, "bad.json"))
    assert len(ledger.ideas()) == 1


def test_one_transaction_rolls_back_every_idea_when_a_write_fails(ledger):
    ok = {"title": "a", "state": "proposed", "hours": 1, "complexity": 1, "gain": 0.0, "p": 0.2}
    with pytest.raises(tl.StorageError, match="NOT NULL"):
        ledger.add_all([ok, {**ok, "state": None}])  # the database refuses the second insert, after the first
    assert ledger.ideas() == []


def test_estimates_reject_nan_infinite_and_negative_values_everywhere(ledger):
    for kwargs in ({"hours": math.nan}, {"hours": math.inf}, {"gain": math.nan}, {"gain": -0.5}, {"complexity": True}):
        with pytest.raises(tl.ConfigError, match="argument of idea must be"):
            ledger.add("x", **{"hours": 1, "complexity": 1, "gain": 0.01, "p": 0.2, **kwargs})
    idea = ledger.add("x", hours=1, complexity=1, gain=0.01, p=0.2)
    with pytest.raises(tl.ConfigError, match="'actual_hours' argument of idea decide"):
        ledger.decide(idea.id, "adopt", actual_hours=math.nan)
    with pytest.raises(tl.ConfigError, match="'actual_hours' argument of idea"):
        ledger.edit(idea.id, actual_hours=-2.0)
    assert ledger.get(idea.id).state == "proposed"


def test_cli_import_says_what_is_wrong_in_one_line(storage, tmp_path):
    path = write(tmp_path, f"ideas:\n{GOOD}  - {{title: y, hours: .nan, complexity: 1, gain: 0, p: 0.1}}\n")
    result = CliRunner().invoke(app, ["idea", "import", str(path), "--storage", storage])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Idea 2 ('y')" in result.output and "'hours' must be a positive number" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert Ledger(storage).ideas() == []
    bomb = CliRunner().invoke(app, ["idea", "import", str(write(tmp_path, laughs(9), "b.yaml")), "--storage", storage])
    assert bomb.exit_code == 1 and "aliases that expand" in bomb.output
