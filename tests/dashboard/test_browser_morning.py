"""The morning report in a real browser: the one-file HTML opened offline draws every section, the
chart of effects and the hostile title as text; the dashboard's home page shows the "Last night"
panel under the study list. Each without a console error."""


import pytest
from browser import open_offline, open_page, require_chromium
from night import MARKUP, build_night, spoil

require_chromium()


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    return build_night(f"sqlite:///{tmp_path_factory.mktemp('night') / 'night.db'}", title=MARKUP)






def test_the_morning_report_file_draws_offline(page, night, tmp_path):
    from tuneloop.report import write_morning

    path = write_morning(night.storage, tmp_path / "morning.html")
    assert path.stat().st_size < 1_000_000
    open_offline(page, path.as_uri())  # any network request would fail the page
    assert page.locator("#night-jobs tbody tr").count() == 3
    assert page.locator("#night-verdicts tbody tr").count() == 2 and page.locator("svg.effects circle").count() == 2
    assert page.locator("#night-decisions tbody tr").count() == 3 and page.locator("#night-queued tbody tr").count() == 1
    assert page.locator("#night-failures li").count() == 2 and "CUDA out of memory" in page.locator("pre.tail").first.inner_text()
    assert page.get_by_text(MARKUP, exact=True).count() == 2  # the verdict and the decision: text, never markup
    assert page.problems == []


@pytest.fixture(scope="module")
def server(night, serving):
    from tuneloop.dashboard import create_app

    with serving(create_app(night.storage)) as port:
        yield f"http://127.0.0.1:{port}"


def test_the_home_page_shows_last_night(page, server):
    open_page(page, server + "/")
    panel = page.locator("#last-night")
    assert panel.locator("h2").inner_text() == "Last night" and panel.locator("h3").count() == 6
    assert panel.locator("#night-jobs tbody tr").count() == 3 and panel.locator("#night-queued tbody tr").count() == 1
    assert "adopted by rule" in panel.inner_text() and panel.get_by_text(MARKUP, exact=True).count() == 2
    assert page.get_by_text("No studies yet", exact=False).count() == 1
    assert page.problems == []
    page.goto("about:blank")  # stop polling before the server stops


def test_a_hostile_night_renders_as_text(page, tmp_path):
    from tuneloop.report import write_morning

    night = build_night(f"sqlite:///{tmp_path / 'hostile.db'}", title=MARKUP)
    spoil(night)
    path = write_morning(night.storage, tmp_path / "morning.html")
    open_offline(page, path.as_uri())
    assert page.get_by_text(MARKUP, exact=True).count() >= 2  # the verdict's title and verdict, the decision's title
    assert page.locator("#night-notes li").count() >= 3  # what was left out, said
    assert page.locator("#night-queued tbody tr").count() == 1  # the corrupt job is left out
    assert page.problems == []


@pytest.mark.slow  # waits for the page's next poll (every 2 s)
def test_the_panel_follows_the_queue_and_leaves_the_study_list_alone(page, server, night):
    from tuneloop.store import Store

    open_page(page, server + "/")
    page.evaluate("window.studyList = document.querySelector('main > div').firstChild")
    with Store(night.storage) as store:
        job = store.add_job("check", ["/x/later.py"], "later", files={}, signature="sig")
    try:
        page.wait_for_function("document.querySelectorAll('#night-queued tbody tr').length === 2", timeout=15_000)
        assert page.evaluate("document.body.contains(window.studyList)")  # the list was not redrawn
    finally:
        with Store(night.storage) as store:
            store.remove_job(job.id)
    page.goto("about:blank")
    assert page.problems == []
