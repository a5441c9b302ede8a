"""What the browser tests share: Debian's chromium required (CI) or the module skipped, opening a
page until it has drawn, and opening a report file offline."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def require_chromium():
    """Skip the calling test module without chromium; on CI its absence is an error (.ci/run installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError("CI must install Debian's chromium (apt-get install chromium): .ci/run does.")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def open_page(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)  # every plot, off-screen ones included
    return page


def open_offline(page, uri):
    """Open a report file with every request but file: and data: refused.

    The dashboard page the test may be on still polls the server: it is left for about:blank
    first (its problems already asserted), so a poll in flight is not counted against the report.
    """
    assert page.problems == []
    page.goto("about:blank")
    page.problems.clear()
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("file:", "data:"))
               else route.continue_())
    return open_page(page, uri)
