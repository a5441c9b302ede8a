"""``tuneloop morning``: what the night shift did, in the terminal (and as one HTML file with ``--html``)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tuneloop._text import safe
from tuneloop.cli._common import Storage, open_store, out
from tuneloop.cli._tables import fmt
from tuneloop.errors import ConfigError

if TYPE_CHECKING:
    from tuneloop.views import Decision, JobLine, Morning

_STYLE = {"done": "green", "failed": "red", "running": "blue", "better": "green", "worse": "red",
          "inconclusive": "cyan", "adopted": "green", "rejected": "red", "parked": "yellow", "broken": "magenta"}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: ``HH:MM`` (its latest past occurrence, local time) or an ISO date and time (local
    unless it names its zone), as a Unix time."""
    now = time.time() if now is None else now
    now_dt = datetime.fromtimestamp(now)
    clock = _CLOCK.fullmatch(text.strip())
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise ConfigError(f"--since {text!r} is not a time of day; write HH:MM, e.g. --since 22:00.")
        start = now_dt.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return (start - timedelta(days=1) if start > now_dt else start).timestamp()
    try:
        since = datetime.fromisoformat(text.strip()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ConfigError(f"--since takes HH:MM (e.g. 22:00) or an ISO date and time (e.g. 2026-05-01T22:00), "
                          f"not {text!r}.") from None
    if since > now:
        raise ConfigError(f"--since {text.strip()!r} is in the future: the window would be empty; give a past time.")
    return since


def when(timestamp: float | None, today: float | None = None) -> str:
    """A time as local HH:MM, with the date when it is not today's; '-' when there is none (or none that reads)."""
    if timestamp is None:
        return "-"
    try:
        dt = datetime.fromtimestamp(timestamp)
        same = dt.date() == datetime.fromtimestamp(time.time() if today is None else today).date()
    except (OverflowError, OSError, ValueError):
        return "-"
    return dt.strftime("%H:%M" if same else "%Y-%m-%d %H:%M")


def took(seconds: float | None) -> str:
    """Seconds as a person reads a duration: ``40 s``, ``12 min``, ``2.1 h``."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600  # a forged time can make it 1e300 h: :.1f would print every digit
    return f"{hours:.1f} h" if hours < 1e6 else f"{hours:.3g} h"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4g}"


def _word(text: str) -> str:
    """A stored word (state, verdict) styled when it is one we know, made safe either way."""
    style = _STYLE.get(text)
    return f"[{style}]{safe(text)}[/]" if style else safe(text)


def jobs_table(jobs: list[JobLine]) -> Table:
    table = Table(title="What ran", title_justify="left")
    for col in ("id", "kind", "title", "state", "attempts", "started", "duration", "exit"):
        table.add_column(col, justify="right" if col in ("id", "attempts", "duration", "exit") else "left",
                         overflow="fold")
    for j in jobs:
        table.add_row(str(j.id), safe(j.kind), safe(j.title), _word(j.state), str(j.attempts), when(j.started_at),
                      took(j.duration_s), fmt(j.exit_code))
    return table


def verdicts_table(m: Morning) -> Table:
    table = Table(title="Verdicts of the night's idea tests (effect: positive is better)", title_justify="left")
    for col in ("idea", "title", "verdict", "effect", "95% CI", "p", "seeds", "predicted gain"):
        table.add_column(col, overflow="fold")
    for v in m.verdicts:
        table.add_row(str(v.idea_id), safe(v.title), _word(v.verdict), signed(v.effect),
                      f"[{signed(v.ci_low)}, {signed(v.ci_high)}]", fmt(v.p_value), fmt(v.seeds), fmt(v.predicted_gain))
    return table


def _decided(d: Decision) -> str:
    if d.state == "adopted":
        return "[green]adopted by rule[/]" if d.by_rule else "[green]adopted by hand[/]"
    return _word(d.state)


def decisions_table(m: Morning) -> Table:
    table = Table(title="Decisions", title_justify="left")
    for col in ("idea", "title", "decision", "why"):
        table.add_column(col, overflow="fold")
    for d in m.decisions:
        why = f"failed check {d.check}: {d.message or '-'}" if d.state == "broken" and d.check else d.note or "-"
        table.add_row(str(d.idea_id), safe(d.title), _decided(d), safe(why))
    return table


def queued_table(m: Morning) -> Table:
    table = Table(title="Queued next" + (" (the queue is paused)" if m.queue_paused else ""), title_justify="left")
    for col in ("#", "id", "kind", "title", "estimate", "reason"):
        table.add_column(col, justify="right" if col in ("#", "id", "estimate") else "left", overflow="fold")
    for n, j in enumerate(m.queued, 1):
        table.add_row(str(n), str(j.id), safe(j.kind), safe(j.title) + (" [yellow](paused)[/]" if j.paused else ""),
                      took(j.estimate_s), safe(j.reason or "-"))
    return table


def print_morning(m: Morning) -> None:
    """The night's summary as Rich sections, every stored string made safe."""
    out.print(f"[bold]Morning report[/]: {m.window}, {when(m.since)} to {when(m.until)}; {len(m.jobs)} jobs ran, "
              f"machine time {took(m.machine_s)}.", highlight=False)
    if m.empty:
        out.print("Nothing ran, was tested or decided in this window, and nothing is queued.")
    if m.jobs:
        out.print(jobs_table(m.jobs))
    if m.verdicts:
        out.print(verdicts_table(m))
    if m.decisions:
        out.print(decisions_table(m))
    c = m.calibration
    out.print(f"[bold]Gain[/]: adopted ideas add up to {signed(m.gain_total)}; this night added "
              f"{signed(m.gain_tonight)}.", highlight=False)
    if c is not None:
        apart = f"; {c['broken']} broken ideas not scored" if c.get("broken") else ""
        scored = (f"over {c['decided']} decided ideas: predicted gain {fmt(c['gain_predicted'])}, realized "
                  f"{fmt(c['gain_realized'])}; Brier score {fmt(c['brier'])} (always the base rate: "
                  f"{fmt(c['brier_base_rate'])})") if c["decided"] else "no adopted or rejected idea yet"
        out.print(f"[bold]Calibration[/]: {scored}{apart}.", highlight=False)
    if m.failed_jobs or m.broken:
        out.print("[bold]What failed and why[/]")
        for j in m.failed_jobs:
            code = "" if j.exit_code is None else f" (exit {j.exit_code})"
            out.print(f"  [red]job {j.id}[/] {safe(j.title)}: {safe(j.reason or 'failed')}{code}", highlight=False)
            for line in j.tail:
                out.print(f"    [dim]{safe(line)}[/]", highlight=False)
        for d in m.broken:
            out.print(f"  [magenta]idea {d.idea_id}[/] {safe(d.title)}: failed check {safe(d.check or '?')}: "
                      f"{safe(d.message or '-')}", highlight=False)
            if d.evidence:
                out.print(f"    evidence: {safe(_short(d.evidence))}", highlight=False)
            if d.next_step:
                out.print(f"    next step: {safe(d.next_step)}", highlight=False)
    if m.queued:
        out.print(queued_table(m))
    for note in m.notes:
        out.print(f"[yellow]Note:[/] {safe(note)}", highlight=False)


def _short(value: object, limit: int = 300) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def morning(
    since: Annotated[str | None, typer.Option(help="Start of the window: HH:MM (its latest past occurrence) or an "
                                              "ISO date and time \\[default: the start of the latest night]")] = None,
    hours: Annotated[float | None, typer.Option(help="The last N hours instead")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the report as one HTML file")] = None,
    storage: Storage = None,
) -> None:
    """What the night shift did: jobs run and failed, idea verdicts and decisions, the gain, what is queued next."""
    from tuneloop.report import build_morning
    from tuneloop.views import morning as read_morning

    if since is not None and hours is not None:
        raise ConfigError("Give --since or --hours, not both.")
    if hours is not None and not 0 < hours < 1e6:
        raise ConfigError(f"--hours takes a positive number of hours, not {hours:g}.")
    now = time.time()
    start = parse_since(since, now) if since is not None else None if hours is None else now - hours * 3600
    with open_store(storage) as store:
        summary = read_morning(store, since=start, until=now)
    print_morning(summary)
    if html is not None:
        try:
            html.write_text(build_morning(summary), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Cannot write the report to {html}: {exc.strerror or exc}.") from None
        out.print(f"Wrote {safe(html)}.", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("morning")(morning)
