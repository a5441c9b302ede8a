"""The one-file report: self-contained (no external reference), data inside, user text escaped."""

import json
import re

from tuneloop.report import build_report
from tuneloop.store import Store


def test_report_is_one_self_contained_file(dashboard_db, tmp_path):
    from typer.testing import CliRunner

    from tuneloop.cli import app

    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "logs", "-o", str(out), "--storage", dashboard_db])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    # nothing is fetched from anywhere: no tag loads a remote (or any external) resource
    assert not re.search(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)=(?!["']?data:)""", html)
    assert "Plotly" in html and "tuneloop.boot" in html
    boot = json.loads(re.search(r"<script type='application/json' id='boot'>(.*?)</script>", html, re.S).group(1))
    assert boot["page"] == "report" and boot["data"]["study"]["study"]["name"] == "logs"
    best = boot["data"]["best"]
    picture = next(s for s in best["samples"] if s["name"] == "picture")
    assert picture["url"].startswith("data:image/png;base64,")


def test_report_escapes_user_text(dashboard_db):
    from shared import HOSTILE

    with Store(dashboard_db) as store:
        html = build_report(store, HOSTILE)
    assert HOSTILE not in html


def test_report_of_a_multi_objective_study_carries_the_front_and_hypervolume(tmp_path):
    from fronts import FRONT, build_fronts

    storage = build_fronts(f"sqlite:///{tmp_path / 'fronts.db'}", three=False)
    with Store(storage) as store:
        html = build_report(store, "mo")
    boot = json.loads(re.search(r"<script type='application/json' id='boot'>(.*?)</script>", html, re.S).group(1))
    study = boot["data"]["study"]
    assert study["front"] == FRONT and len(study["hypervolume"]["points"]) == 10
    assert [t["number"] for t in study["trials"] if t["feasible"] is False] == [7, 8, 9]
    best = boot["data"]["best"]  # the best feasible trial's page, with every objective
    assert best["trial"]["number"] == 6 and best["on_front"] is True
    assert [o["name"] for o in best["objectives"]] == ["val_acc", "latency_ms"]
    assert "frontSections" in html  # the drawing code travels with the data
