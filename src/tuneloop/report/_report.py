"""``tuneloop report STUDY -o report.html``: one self-contained HTML file of a study.

The file carries Plotly.js, the drawing code and the data (images as data: URLs), so it opens
anywhere with no server and no network: the study view, the analysis and the best trial's view.
"""

from __future__ import annotations

from pathlib import Path

from tuneloop.dashboard import page_html
from tuneloop.store import Store
from tuneloop.views import analysis_view, study_view, trial_view


def build_report(store: Store, name: str) -> str:
    """The report's HTML text."""
    study = study_view(store, name)
    best = study["study"]["best"]
    data = {"study": study, "best": None if best is None else trial_view(store, name, best, inline_images=True),
            "analysis": analysis_view(store, name)}
    return page_html("report", {"name": name}, data=data, inline_assets=True, title=f"{name} - tuneloop report")


def write_report(store: Store, name: str, output: str | Path) -> Path:
    """Write the report of study ``name`` to ``output``; returns the path."""
    path = Path(output)
    path.write_text(build_report(store, name), encoding="utf-8")
    return path
