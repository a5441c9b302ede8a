"""Stored artifact paths are untrusted: a report, `tuneloop show` and ensembles read a sample's file
only inside the artifact folder; a row naming any other file shows as missing, never embedded."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import trial_functions as tf

import tuneloop as tl
from tuneloop.errors import NotFound
from tuneloop.report import build_report, write_report
from tuneloop.store import Store

SECRET = b"a secret beside the database"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def hostile_db(tmp_path):
    """One trial with a genuine picture, plus sample rows (as a hostile database holds them)
    naming files outside the artifact folder: an absolute path, and ``..`` out to the database's
    folder, where a secret, a database copy and a valid predictions file lie."""
    storage = f"sqlite:///{tmp_path / 'tuneloop.db'}"
    tl.Study("logs", tl.Space(x=tl.Choice([0.5])), tf.logs_everything, metric="loss", mode="min",
             storage=storage).run(searcher="grid")
    (tmp_path / "x.db").write_bytes(SECRET)
    np.savez(tmp_path / "secret.npz", outputs=np.eye(2), targets=np.arange(2))
    with Store(storage) as store:
        (t,) = store.trials(store.require_study("logs").id)
        rows = [("etc", "image", "/etc/hostname"), ("db", "image", "../x.db"), ("deep", "image", "a/../../x.db"),
                ("predictions/val", "predictions", "../secret.npz"), ("abs", "predictions", str(tmp_path / "x.db"))]
        store.write_batch({"samples": [{"trial_id": t.id, "attempt": t.attempt, "step": 1, "name": name, "kind": kind,
                                        "path": path, "payload": None} for name, kind, path in rows]})
    return storage


def encoded(data: bytes) -> list[str]:
    """``data`` as it would appear base64-encoded at any of the three alignments."""
    return [base64.b64encode(data[i:]).decode()[4:-4] for i in range(3)]


def test_a_report_never_embeds_a_file_outside_the_artifact_folder(hostile_db):
    with Store(hostile_db) as store:
        html = build_report(store, "logs")
    boot = json.loads(re.search(r"<script type='application/json' id='boot'>(.*?)</script>", html, re.DOTALL).group(1))
    samples = {s["name"]: s for s in boot["data"]["best"]["samples"]}
    assert samples["picture"]["url"].startswith("data:image/png;base64,")  # the genuine one still travels
    assert all(samples[n]["url"] is None for n in ("etc", "db", "deep", "predictions/val", "abs"))
    hostname = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").is_file() else b""
    for secret in (SECRET, hostname):
        assert len(secret) < 4 or not any(chunk in html for chunk in encoded(secret))


def test_show_lists_a_refused_sample_path_as_missing(hostile_db, monkeypatch):
    from typer.testing import CliRunner

    from tuneloop.cli import app

    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(app, ["show", "logs", "0", "--storage", hostile_db])
    assert result.exit_code == 0, result.output
    assert result.output.count("missing (its stored path leaves the artifact folder)") == 5
    assert "/etc/hostname" not in result.output and "x.db" not in result.output
    assert "picture-step1.png" in result.output  # the genuine file, resolved inside the folder


def test_ensembles_refuse_predictions_outside_the_artifact_folder(hostile_db):
    from tuneloop.finalize._ensemble import _predictions

    with Store(hostile_db) as store:
        (t,) = store.trials(store.require_study("logs").id)
        with pytest.raises(NotFound, match="leaves the artifact folder"):
            _predictions(store, t, "val")


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_the_report_of_a_hostile_database_renders_the_refused_rows_as_missing(hostile_db, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with Store(hostile_db) as store:
        path = write_report(store, "logs", tmp_path / "report.html")
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
            deadline = time.monotonic() + 10  # poll: the gallery is drawn after the data loads
            while page.locator("#samples figure").count() < 8 and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            assert page.locator("#samples img").count() == 1  # the genuine picture only
            assert page.get_by_text("image missing (no file in the artifact folder)").count() == 3
            assert not [u for u in requested if u.startswith("file:") and u != path.as_uri()]  # nothing else read
        finally:
            browser.close()
    assert problems == []
