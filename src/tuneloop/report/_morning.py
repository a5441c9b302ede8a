"""``tuneloop morning --html FILE``: the morning report as one self-contained HTML file.

The file carries the dashboard's stylesheet, ``app.js`` and the night's data (``Morning.to_dict()``,
as JSON that cannot end its ``<script>`` element); it draws with ``textContent`` and SVG only, so it
needs no Plotly, no server and no network, and stays a few tens of KB.

    from tuneloop.report import write_morning
    write_morning("tuneloop.db", "morning.html")        # the latest night
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tuneloop.dashboard import page_html
from tuneloop.store import Store
from tuneloop.views import Morning, morning


def build_morning(summary: Morning) -> str:
    """The morning report's HTML text for a summary :func:`tuneloop.views.morning` read."""
    try:
        day = datetime.fromtimestamp(summary.until).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        day = "?"
    return page_html("morning", {}, data=summary.to_dict(), inline_assets=True, plotly=False,
                     title=f"Morning report {day} - tuneloop")


def write_morning(storage: str | Store | None, output: str | Path, *, since: float | None = None,
                  until: float | None = None) -> Path:
    """Read the night from ``storage`` (a URL, a path, an open Store; None: the default store), write its
    report to ``output`` and return the path."""
    if isinstance(storage, Store):
        summary = morning(storage, since=since, until=until)
    else:
        with Store(storage, read_only=True) as store:
            summary = morning(store, since=since, until=until)
    path = Path(output)
    path.write_text(build_morning(summary), encoding="utf-8")
    return path
