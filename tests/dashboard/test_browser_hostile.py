"""A hostile study's pages in a real browser (Debian's chromium via Playwright, a real server):
every stored string renders as text, in the page and in the Plotly plots; nothing runs, nothing
is injected, no page is blank.
"""

import os
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM = "/usr/bin/chromium"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (apt-get install chromium): .ci/run does.")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

# elements a stored string would create if any part of a page parsed it as HTML or Plotly markup
INJECTED = ("img[src='x'], a[href^='javascript'], svg a, #app script, #app b, #app i, #app iframe, "
            "#app img:not([src^='/artifacts/'])")


@pytest.fixture(scope="module")
def server(hostile, serving):
    from tuneloop.dashboard import create_app

    with serving(create_app(hostile.storage)) as port:
        yield f"http://127.0.0.1:{port}"


def open_page(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)  # a blank page never gets there
    page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)  # every plot, off-screen ones included
    return page


def texts(page, selector):
    return page.evaluate(f"[...document.querySelectorAll({selector!r})].map((e) => e.textContent)")


def assert_rendered_as_text(page):
    assert page.locator(INJECTED).count() == 0
    assert page.locator("#app h1, #app table").count() >= 1  # not blank
    assert page.problems == []


def study_url(server, name, tail=""):
    return f"{server}/study/{quote(name, safe='')}{tail}"


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_studies_list_shows_every_hostile_name_as_text(page, server, hostile):
    open_page(page, server + "/")
    assert sorted(texts(page, "#studies tbody td a")) == sorted(hostile.names)
    assert_rendered_as_text(page)


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_study_page_shows_markup_as_text_in_the_page_and_the_plots(page, server, hostile):
    open_page(page, study_url(server, hostile.markup))
    assert page.locator("h1 .name").text_content() == hostile.markup
    svg = texts(page, ".js-plotly-plot svg text")
    for choice in hostile.choices:  # tick labels of the parameter's plot and of the parallel coordinates
        assert svg.count(choice) >= 2, (choice, svg)
    assert hostile.metric in svg  # axis title and dimension label
    assert hostile.metric in texts(page, ".legendtext")  # the history's legend
    page.click("#parcoords-webgl")  # the brushable WebGL version: its tick text is drawn as plain text
    page.wait_for_function("document.body.dataset.plots !== 'drawing' && document.querySelector('.parcoords')",
                           timeout=60_000)
    ticks = texts(page, ".parcoords text")
    assert all(choice in ticks for choice in hostile.choices), ticks
    assert_rendered_as_text(page)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_hover_text_of_a_choice_value_is_text(page, server, hostile):
    open_page(page, study_url(server, hostile.markup))
    plot = page.locator(".param-plot").first
    assert plot.evaluate("(d) => d.layout.title.text.includes('ñame_研究')")
    plot.evaluate("(d) => Plotly.Fx.hover(d, [{curveNumber: 0, pointNumber: 0}])")
    page.wait_for_selector(".hoverlayer .hovertext", timeout=5_000)
    hover = " ".join(texts(page, ".hoverlayer .hovertext text"))
    assert hostile.choices[0] in hover  # the link's markup, as text
    assert_rendered_as_text(page)


@pytest.mark.slow  # the same escaping as every page above; test_fuzz sends this study's routes by default
def test_a_front_whose_objectives_and_constraint_hold_markup_renders_text(page, server, hostile):
    link, img = hostile.choices[0], hostile.choices[2]
    open_page(page, study_url(server, hostile.front))
    svg = texts(page, ".front-plot svg text")
    assert f"{hostile.metric} (min)" in svg and f"{link} (max)" in svg  # the axis titles
    assert f"min {hostile.metric}, max {link} subject to {img} <= 0.5" in page.locator(".meta").first.text_content()
    assert {hostile.metric, link} <= set(texts(page, "#trials th"))
    assert f"no: breaks {img} <= 0.5" in texts(page, "#trials td")
    plot = page.locator(".front-plot")
    plot.evaluate("(d) => Plotly.Fx.hover(d, [{curveNumber: 1, pointNumber: 0}])")  # an infeasible point
    page.wait_for_selector(".hoverlayer .hovertext", timeout=5_000)
    assert f"breaks {img} <= 0.5" in " ".join(texts(page, ".hoverlayer .hovertext text"))
    assert_rendered_as_text(page)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_a_study_named_like_a_comment_opener_renders(page, server, hostile):
    open_page(page, study_url(server, hostile.comment))
    assert page.locator("h1 .name").text_content() == hostile.comment
    assert page.locator("#trials tbody tr").count() == 2
    assert_rendered_as_text(page)


# unicode, 10k characters, Rich markup, spaces, URL parts, quotes: the 10k name by default, all in the slow run
@pytest.mark.parametrize("index", [pytest.param(i, marks=[] if i == 8 else [pytest.mark.slow]) for i in range(7, 13)])
def test_other_hostile_names_render(page, server, hostile, index):
    name = hostile.names[index]
    open_page(page, study_url(server, name))
    assert page.locator("h1 .name").text_content() == name
    assert_rendered_as_text(page)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_trial_page_shows_every_log_name_as_text(page, server, hostile):
    open_page(page, study_url(server, hostile.markup, "/trial/0"))
    assert page.locator("h1 .name").text_content() == hostile.markup
    body = page.locator("#app").text_content()
    for stored in ("<script>alert(1)</script><!--<script>", "<b>k</b>", "<b>slice</b><img src=x onerror=alert(1)>",
                   hostile.choices[0]):
        assert stored in body, stored
    svg = texts(page, ".js-plotly-plot svg text")
    assert "<b>slice</b><img src=x onerror=alert(1)>" in svg and "<i>acc</i>" in svg  # the slices plot's tick and title
    image = page.locator("#samples img")
    assert image.count() == 1 and image.evaluate("img => img.naturalWidth") == 2
    assert_rendered_as_text(page)


def test_forged_artifact_paths_get_no_link(page, server, hostile):
    open_page(page, study_url(server, hostile.markup, "/trial/1"))
    links = page.evaluate("[...document.querySelectorAll('#samples a')].map((a) => a.getAttribute('href'))")
    assert links == ["/artifacts/evil.html"]  # ../tuneloop.db and the absolute path show no link
    assert_rendered_as_text(page)


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_compare_analysis_and_ideas_pages_render_text(page, server, hostile):
    for url in (study_url(server, hostile.markup, "/compare?trials=0,2,4"), study_url(server, hostile.markup, "/analysis"),
                server + "/ideas"):
        open_page(page, url)
        assert_rendered_as_text(page)
    assert hostile.markup in texts(page, "#ideas tbody td") and hostile.comment in texts(page, "#ideas tbody td")
