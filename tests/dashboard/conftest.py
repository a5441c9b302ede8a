"""A hostile store for the dashboard's security tests: what someone else's tuneloop.db may hold.

Names with Rich and Plotly markup, HTML that would run, dot segments, a comment opener that
would blank a page, unicode and bidi overrides, a 10,000-character name, huge numbers, NaN and
inf values, and stored artifact paths that point outside the artifact folder.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dashboard_server import serve

import tuneloop as tl

LINK = '<a href="javascript:alert(1)">click</a>'
IMG = "<img src=x onerror=alert(1)>"
MARKUP = f"{LINK}<b>bold</b>[/x][bold]"  # Plotly markup, HTML, Rich markup
COMMENT = "<!--<script>"  # inside an unescaped <script> element this keeps it open: a blank page
METRIC = "<b>m</b>[/b]"
CHOICES = [LINK, "<b>b</b>", IMG]
FRONT = f"front {IMG}"  # a multi-objective study whose objective and constraint names hold markup
NAMES = [MARKUP, COMMENT, "..", ".", "%2e%2e", "../..", "a/b/../../c", "ünï 研究 🎉 \u202eevil", "x" * 10_000,
         "[/x]", "  spaced  ", "?q=1#frag", "'\"\\"]


@dataclass
class Hostile:
    """The hostile store: its URL, folder, and the names it holds."""

    storage: str
    folder: Path
    db: Path
    artifacts: Path
    names: list[str] = field(default_factory=lambda: list(NAMES))
    markup: str = MARKUP
    comment: str = COMMENT
    metric: str = METRIC
    choices: list[str] = field(default_factory=lambda: list(CHOICES))
    front: str = FRONT


def _markup_trial(trial: tl.Trial) -> dict:
    """Every kind of log, each named with markup; values near the float limits. The last trial
    logs NaN and returns inf: it diverges."""
    last = trial.number == 5
    trial.report(0, **{METRIC: 1.0})
    trial.report(1, **{METRIC: 0.5})
    trial.log(1, **{LINK: 1e308, "<i>nan</i>": math.nan if last else 0.0})
    trial.log_slice(1, f"<b>slice</b>{IMG}", "<i>acc</i>", 0.5, n=1)
    trial.log_histogram(0, f"<b>hist</b>{IMG}", [1.0, 2.0, 3.0])
    trial.log_sample(1, f"text {LINK}", f"<script>alert(1)</script>{COMMENT}")
    trial.log_sample(1, f"table {IMG}", {f"<b>k</b>{LINK}": [LINK, IMG]})
    if trial.number == 0:
        trial.log_sample(1, f"image {IMG}", [[0.0, 1.0], [1.0, 0.0]], kind="image")
    values = [0.5, 1e300, -1e300, 5e-324, 2.0, math.inf]
    return {METRIC: values[trial.number % 6], "<i>other</i>": math.nan}


def _front_trial(trial: tl.Trial) -> dict:
    """Objectives and a constraint named with markup: every trial is on the front, x > 0.5 breaks the constraint."""
    x = trial.params.x
    trial.report(0, **{METRIC: x})
    return {METRIC: x, LINK: x, IMG: x}


def _plain_trial(trial: tl.Trial) -> dict:
    trial.report(0, loss=trial.params.x)
    return {"loss": trial.params.x}


def build_hostile(folder: Path) -> Hostile:
    """Write the hostile store under ``folder``; the runs go through tuneloop, the rest is patched in SQL."""
    db = folder / "tuneloop.db"
    storage = f"sqlite:///{db}"
    space = tl.Space(ñame_研究=tl.Choice(CHOICES), x=tl.Choice([-1e300, 1e300]))  # grid: every pair, 6 trials
    tl.Study(MARKUP, space, _markup_trial, metric=METRIC, mode="min", storage=storage, searcher="grid").run(seed=0)
    for name in NAMES[1:]:
        tl.Study(name, tl.Space(x=tl.Float(0.0, 1.0)), _plain_trial, metric="loss", mode="min",
                 storage=storage).run(n_trials=2, seed=0)
    tl.Study(FRONT, tl.Space(x=tl.Float(0.0, 1.0)), _front_trial, objectives={METRIC: "min", LINK: "max"},
             constraints={IMG: ("<=", 0.5)}, storage=storage, searcher="random").run(n_trials=6, seed=0)
    from tuneloop.ideas import Ledger
    from tuneloop.store import Store

    ledger = Ledger(storage)
    for title in (MARKUP, COMMENT, "x" * 10_000):
        ledger.add(title, hours=1, complexity=1, gain=0.01, p=0.2)
    with Store(storage) as store:
        record = store.require_study(MARKUP)
        artifacts = store.artifact_dir
        big = store.create_trial(record.id, 2**62, {"ñame_研究": LINK, "x": 1e300}, seed=2**31 - 1)
        store.finish_trial(big, "completed", 1e308, {METRIC: 1e308})
    (artifacts / "evil.html").write_text(f"<script>alert(document.domain)</script>{COMMENT}")
    with sqlite3.connect(db) as conn:  # rows no tuneloop would write, as a forged database holds them
        trial_id, attempt = conn.execute(
            "SELECT id, attempt FROM trials WHERE number = 1 AND study_id = (SELECT id FROM studies WHERE name = ?)",
            (MARKUP,)).fetchone()
        for name, path in ((f"up {LINK}", "../tuneloop.db"), ("absolute", str(db)), ("page", "evil.html")):
            conn.execute("INSERT INTO samples (trial_id, attempt, step, name, kind, payload, path) "
                         "VALUES (?, ?, 1, ?, 'predictions', ?, ?)", (trial_id, attempt, name, json.dumps(None), path))
    return Hostile(storage=storage, folder=folder, db=db, artifacts=artifacts, names=[*NAMES, FRONT])


@pytest.fixture(scope="session")
def hostile(tmp_path_factory) -> Hostile:
    """The hostile store, built once per session."""
    return build_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="session")
def fronts_db(tmp_path_factory) -> str:
    """Two multi-objective studies (tests/support/fronts.py): "mo", two objectives and a constraint; "mo3", three."""
    from fronts import build_fronts

    return build_fronts(f"sqlite:///{tmp_path_factory.mktemp('fronts') / 'fronts.db'}")


@pytest.fixture(scope="session")
def serving():
    """``serving(app)``: a context manager running ``app`` on a real server, yielding its port."""
    return serve


# -- the browser the page tests drive (Debian's chromium; each test file skips itself without it) --
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.problems = []  # console errors, page errors and dialogs (an alert() would be an injection)
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("dialog", lambda d: (page.problems.append(f"dialog: {d.message}"), d.dismiss()))
    yield page
    page.close()
