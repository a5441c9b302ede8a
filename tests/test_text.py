"""Stored strings print as the text they are: Rich markup escaped, terminal control characters gone."""

import io

import pytest
from rich.console import Console
from rich.table import Table

from tuneloop._text import plain, safe

HOSTILE = ["[/x]", "[bold red]x", "\x1b[31mred", "a\x07b", "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
           "[link=https://evil.example]click", "ends with \\", "\r\x1b[2Jgone", "\u202eevil\u202c", "x" * 10_000]


def _printed(markup: str) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None, legacy_windows=False)
    table = Table(title=markup)
    table.add_column(markup)
    table.add_row(markup)
    console.print(markup, table)
    return console.file.getvalue()


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_safe_text_prints_verbatim_without_control_characters(text):
    out = _printed(safe(text))
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    expected = plain(text)
    assert "".join(expected.split())[:300] in "".join(out.split())  # the text as it reads, markup included


def test_plain_keeps_lines_only_when_asked():
    assert plain("a\nb\tc\x00d\x9be") == "a b cde"
    assert plain("a\nb\tc\x1b", lines=True) == "a\nb\tc"
    assert safe("[/x]\n", lines=True) == "\\[/x]\n"


def test_the_progress_bar_shows_a_hostile_study_and_alert_as_text():
    from types import SimpleNamespace

    from tuneloop.progress import RichProgress

    console = Console(file=io.StringIO(), width=120, color_system=None, force_terminal=False)
    bar = RichProgress("[/loss]", "min", console=console)
    bar.on_run_start(SimpleNamespace(name="[/x]\x1b[2J"), 2, 0)
    bar.on_trial_start(0, {})
    bar.on_alert(0, 1, "[bold]rule[/x]: grad \x1b]8;;http://evil\x07 is nan", "stop")
    bar.on_trial_end(SimpleNamespace(state="completed", value=0.5))
    bar.close()
    out = console.file.getvalue()
    assert "\x1b" not in out and "[bold]rule[/x]: grad" in out
