"""``tuneloop morning``: the night's sections in the terminal, stored markup printed as text, the
window chosen with --since or --hours, and --html writing the one-file report."""

import sqlite3
import time
from datetime import datetime

import pytest
from night import build_night, spoil
from typer.testing import CliRunner

from tuneloop.cli import app
from tuneloop.cli._morning import parse_since
from tuneloop.errors import ConfigError
from tuneloop.store import Store

MARKUP = "[red]x[/red] <script>alert(1)</script>"


@pytest.fixture
def invoke(monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")  # table rows on one line each
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["morning", *map(str, args)])


def test_morning_prints_each_section_and_stored_markup_as_text(storage, invoke):
    build_night(storage, title=MARKUP)
    result = invoke("--storage", storage)
    assert result.exit_code == 0, result.output
    for heading in ("Morning report", "What ran", "Verdicts", "Decisions", "Gain", "Calibration",
                    "What failed and why", "Queued next"):
        assert heading in result.output
    assert MARKUP in result.output  # printed literally, not as red text
    assert "adopted by rule" in result.output and "failed check overfit_batch: loss stayed at 2.3" in result.output
    assert "RuntimeError: CUDA out of memory" in result.output and "estimated 2.1 h" in result.output
    assert "3.0 h" in result.output and "machine time 6.0 h" in result.output and "1 broken ideas not scored" in result.output


def test_morning_writes_the_html_file(storage, invoke, tmp_path):
    build_night(storage, title=MARKUP)
    target = tmp_path / "morning.html"
    result = invoke("--storage", storage, "--html", target)
    assert result.exit_code == 0, result.output
    html = target.read_text(encoding="utf-8")
    assert len(html) < 200_000  # no Plotly.js inlined: the chart is SVG
    assert "<script>alert(1)" not in html and "[red]x[/red]" in html
    assert "\\u003cscript\\u003ealert(1)" in html  # the title rides in the boot JSON, escaped


def test_a_hostile_store_prints_as_text_with_notes(storage, invoke):
    night = build_night(storage, title=MARKUP)
    spoil(night)
    result = invoke("--storage", storage)
    assert result.exit_code == 0, result.output
    assert MARKUP in result.output and "\x1b" not in result.output and "Note:" in result.output
    assert f"Job {night.jobs['next']} left out" in result.output


def test_an_unwritable_html_path_is_one_line(storage, invoke, tmp_path):
    Store(storage).close()
    result = invoke("--storage", storage, "--html", tmp_path / "no" / "such" / "m.html")
    assert result.exit_code == 1 and "Cannot write the report to" in result.output and "Traceback" not in result.output


def test_an_empty_store_says_so(storage, invoke):
    Store(storage).close()
    result = invoke("--storage", storage)
    assert result.exit_code == 0, result.output
    assert "Nothing ran" in result.output


def test_the_window_can_be_given(storage, invoke):
    build_night(storage)
    result = invoke("--storage", storage, "--hours", 1.5)  # jobs that started before it ran into it
    assert result.exit_code == 0 and "given" in result.output
    assert "Give --since or --hours, not both" in invoke("--storage", storage, "--hours", 1, "--since", "22:00").output
    assert "--since takes HH:MM" in invoke("--storage", storage, "--since", "yesterday").output


def test_since_reads_a_clock_time_as_its_latest_past_occurrence():
    now = datetime(2026, 5, 2, 7, 30).timestamp()
    assert parse_since("22:00", now) == datetime(2026, 5, 1, 22, 0).timestamp()
    assert parse_since("06:15", now) == datetime(2026, 5, 2, 6, 15).timestamp()
    assert parse_since("2026-04-30T21:00", now) == datetime(2026, 4, 30, 21, 0).timestamp()
    with pytest.raises(ConfigError, match="not a time of day"):
        parse_since("25:00", now)
    assert abs(parse_since("00:00") - time.time()) <= 86400


def test_a_foreign_database_is_one_line_and_left_as_it_was(invoke, tmp_path):
    path = tmp_path / "foreign.db"
    con = sqlite3.connect(path)
    con.executescript("create table users (id integer primary key, name text);")
    con.commit()
    con.close()
    before = path.read_bytes()
    result = invoke("--storage", path, "--html", tmp_path / "m.html")
    assert result.exit_code == 1 and "is not a tuneloop database" in result.output and "Traceback" not in result.output
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]


def test_a_since_in_the_future_is_one_line(storage, invoke):
    build_night(storage)
    now = datetime(2026, 5, 2, 7, 30).timestamp()
    with pytest.raises(ConfigError, match="in the future"):
        parse_since("2026-05-02T08:00", now)
    result = invoke("--storage", storage, "--since", "2999-01-01T00:00")
    assert result.exit_code == 1 and "in the future" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Morning report" not in result.output


def test_huge_durations_print_short(storage, invoke):
    """A forged finish time far in the future (finite, so the row reads) makes a duration of 1e300 s: it
    prints as a short number, not as hundreds of digits."""
    import re

    night = build_night(storage)
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute("update jobs set finished_at = 1e300 where id = ?", (night.jobs["train"],))
    con.commit()
    con.close()
    result = invoke("--storage", storage)
    assert result.exit_code == 0, result.output
    assert "train" in result.output and not re.search(r"\d{25}", result.output), result.output
