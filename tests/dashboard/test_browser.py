"""The dashboard in a real browser: Debian's chromium driven by Playwright against a real server.

Each page loads without console errors and draws its plots; the trials table sorts; the live
view picks up a trial added after the page loaded; hostile names stay text; the report file
draws offline. CI installs chromium (.ci/run); elsewhere these tests skip when it is missing.
"""

import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
import trial_functions as tf
from browser import open_offline, open_page, require_chromium
from shared import HOSTILE

import tuneloop as tl

require_chromium()


@pytest.fixture(scope="module")
def live_db(dashboard_db, tmp_path_factory):
    """A copy of the dashboard store, so this module can add trials without disturbing others."""
    folder = tmp_path_factory.mktemp("live")
    import sqlite3

    src = Path(dashboard_db.removeprefix("sqlite:///"))
    with sqlite3.connect(src) as a, sqlite3.connect(folder / "dash.db") as b:
        a.backup(b)  # WAL mode: a plain file copy would miss what is still in the -wal file
    shutil.copytree(src.with_name("dash-artifacts"), folder / "dash-artifacts")
    return f"sqlite:///{folder / 'dash.db'}"


@pytest.fixture(scope="module")
def server(live_db, serving):
    from tuneloop.dashboard import create_app

    with serving(create_app(live_db)) as port:
        yield f"http://127.0.0.1:{port}"






def plots(page):
    return page.locator(".js-plotly-plot").count()


def test_studies_page_lists_studies_and_shows_a_hostile_name_as_text(page, server):
    open_page(page, server + "/")
    assert page.locator("#studies tbody tr").count() == 4
    assert page.get_by_text(HOSTILE, exact=True).count() == 1
    assert page.problems == []


# records each plot's draw (Plotly.react) with where the plot was on the screen at that moment
RECORD_DRAWS = """(() => { let plotly; Object.defineProperty(window, "Plotly", { configurable: true, get: () => plotly,
  set: (v) => { const react = v.react; v.react = function (gd, ...rest) {
    (window.drawn = window.drawn || []).push({ top: gd.getBoundingClientRect().top, screen: innerHeight });
    return react.call(this, gd, ...rest); }; plotly = v; } }); })()"""


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_study_page_draws_every_plot_those_on_the_screen_first(page, server):
    open_page(page, server + "/study/quad")
    # the importance computes in the background: the page draws without it, a later poll brings it
    page.wait_for_selector("#importance-status:text-is('From 12 completed trials.')", timeout=60_000)
    page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)
    # history, parallel coordinates, importance, one per parameter (2), learning curves
    assert plots(page) == 6
    assert page.locator("#trials tbody tr").count() == 12
    assert page.locator("#checks tbody tr").count() == 2 and page.locator("#baselines tbody tr").count() == 2
    assert "best baseline: ridge regression 1.5" in page.locator(".versus").inner_text()
    # opened again (its importance ready): the plots on the screen draw first, the rest after them
    page.add_init_script(RECORD_DRAWS)
    open_page(page, server + "/study/quad")
    on_screen = [d["top"] < d["screen"] * 1.1 for d in page.evaluate("window.drawn")]
    assert len(on_screen) == 6 and on_screen[0] and not on_screen[-1]
    assert on_screen == sorted(on_screen, reverse=True)  # every one on the screen before any below it


def test_a_study_page_pauses_the_importance_fit_until_its_plots_have_drawn(page, server):
    """Serving the page takes a hold (the worker stops); the page releases it once every plot has drawn."""
    from tuneloop.views._holds import HOLDS

    while_loading = []

    def study_asked(route):  # the page's first request for its data: the hold is on
        while_loading.append(HOLDS.paused)
        route.continue_()

    page.route("**/api/studies/seeds", study_asked)
    with page.expect_response(lambda r: r.request.method == "DELETE", timeout=60_000) as released:
        page.goto(server + "/study/seeds")
    assert page.evaluate("document.body.dataset.plots") == "drawn"  # released once every plot had drawn
    hold = page.evaluate("JSON.parse(document.getElementById('boot').textContent).hold")
    assert released.value.url == f"{server}/api/holds/{hold}" and released.value.status == 204
    assert while_loading[:1] == [True] and not HOLDS.paused
    assert page.problems == []


def test_a_study_page_that_cannot_load_releases_its_hold_at_once(page, server):
    from tuneloop.views._holds import HOLDS

    with page.expect_response(lambda r: r.request.method == "DELETE", timeout=60_000) as released:
        page.goto(server + "/study/no-such-study")
    assert released.value.status == 204 and not HOLDS.paused
    assert page.evaluate("document.body.dataset.loaded") == "error"
    assert "No study named 'no-such-study'" in page.locator(".error").inner_text()


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_trials_table_sorts_by_a_header(page, server):
    open_page(page, server + "/study/quad")
    header = page.locator("#trials th", has_text="loss")
    values = lambda: [float(v) for v in page.locator("#trials tbody tr td:nth-child(4)").all_inner_texts()]
    header.click()  # the server sorts: the table says "loading", then "ready" once the sorted page is drawn
    page.wait_for_selector("#trials[data-state=ready]")
    ascending = values()
    assert ascending == sorted(ascending) and len(ascending) == 12
    header.click()
    page.wait_for_selector("#trials[data-state=ready]")
    assert values() == sorted(ascending, reverse=True)


@pytest.mark.slow  # waits for a poll (2 s): .ci/run runs it in its second pytest call
def test_a_poll_while_a_sorted_page_is_on_its_way_keeps_the_sort(page, server):
    """The page polls every 2 s: a poll that comes while the user's sorted page is still on its way must
    neither drop that page nor leave the table loading (the answer is held until the poll has answered)."""
    open_page(page, server + "/study/quad")
    held = []
    page.route("**/api/trials/quad?*sort=value*", lambda route: held.append(route))  # the sorted page waits here
    with page.expect_request(lambda r: "sort=value" in r.url):
        page.locator("#trials th", has_text="loss").click()
    with page.expect_response(lambda r: r.url.endswith("/api/studies/quad")):
        pass  # the next poll, answered while the sorted page is held
    held[0].continue_()
    page.wait_for_selector("#trials[data-state=ready]")
    values = [float(v) for v in page.locator("#trials tbody tr td:nth-child(4)").all_inner_texts()]
    assert values == sorted(values) and len(values) == 12


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_checking_a_trial_overlays_its_learning_curve(page, server):
    open_page(page, server + "/study/quad")
    curves = "document.querySelector('.curves').data.length"
    assert page.evaluate(curves) == 5  # the five best at first
    page.locator("#trials input[type=checkbox]:not(:checked)").first.check()
    page.wait_for_function(f"{curves} === 6", timeout=10_000)
    assert page.problems == []


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_trial_page_draws_curves_histograms_slices_and_samples(page, server):
    open_page(page, server + "/study/logs/trial/0")
    assert plots(page) >= 3  # loss curve, histogram heatmap, slices bar (+ nothing else needed)
    assert page.locator("#slices tbody tr").count() == 2
    image = page.locator("#samples img")
    assert image.count() == 1 and image.evaluate("img => img.naturalWidth") == 4
    assert page.get_by_text("hello", exact=True).count() == 1
    assert page.problems == []


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_compare_page_highlights_differences(page, server):
    open_page(page, server + "/study/quad/compare?trials=0,1,2")
    assert page.locator("#compare-params tr.differs").count() == 2
    assert plots(page) >= 1 and page.problems == []


def test_hostile_study_page_renders_text_and_runs_nothing(page, server):
    open_page(page, server + "/study/" + quote(HOSTILE, safe=""))
    assert page.locator("h1 .name").inner_text() == HOSTILE
    assert page.problems == []


@pytest.mark.slow  # waits for a live poll to bring a new trial (6 s): .ci/run runs it in its second pytest call
def test_live_view_picks_up_a_trial_added_after_load(page, server, live_db):
    study = tl.Study("live", tl.Space(x=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss", mode="min",
                     storage=live_db, searcher="random")
    study.run(n_trials=2, seed=0)
    open_page(page, server + "/study/live")
    assert page.locator("#trials tbody tr").count() == 2
    study.run(n_trials=3)
    page.wait_for_function("document.querySelectorAll('#trials tbody tr').length === 3", timeout=15_000)
    assert page.problems == []


@pytest.mark.slow  # waits for a live poll (every 2 s)
def test_a_poll_keeps_the_plots_it_did_not_change_and_updates_the_others_in_place(page, server, live_db):
    from tuneloop.store import Store

    study = tl.Study("polled", tl.Space(x=tl.Float(0.0, 1.0), y=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss",
                     mode="min", storage=live_db, searcher="random")
    study.run(n_trials=6, seed=0)
    open_page(page, server + "/study/polled")
    page.wait_for_selector("#importance-status:text-is('From 6 completed trials.')", timeout=60_000)
    page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)
    # mark each plot's element and its drawing (Plotly.react makes a new _fullLayout when it draws)
    kinds = page.evaluate("""[...document.querySelectorAll('.js-plotly-plot')].map((d) => {
        d.tlMark = true; d._fullLayout.tlMark = true;
        return d.classList.contains('parcoords-lines') ? 'parcoords' : d.data[0].type || 'scatter'; })""")
    assert "parcoords" in kinds and "bar" in kinds  # parallel coordinates: SVG lines in headless chromium
    with Store(live_db) as store:  # a pruned trial: a new point in the history, none in the completed-only plots
        record = store.require_study("polled")
        trial = store.create_trial(record.id, 6, {"x": 0.5, "y": 0.5}, seed=6)
        store.finish_trial(trial, "pruned", 0.9, {"loss": 0.9})
    page.wait_for_function("document.querySelectorAll('#trials tbody tr').length === 7", timeout=15_000)
    page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)
    after = page.evaluate("""[...document.querySelectorAll('.js-plotly-plot')].map((d) => [
        d.classList.contains('parcoords-lines') ? 'parcoords' : d.data[0].type || 'scatter',
        d.tlMark === true, d._fullLayout.tlMark === true, d.data[0].x ? d.data[0].x.length : null])""")
    by_kind = {kind: (same_node, same_drawing, points) for kind, same_node, same_drawing, points in after}
    assert by_kind["parcoords"][:2] == (True, True) and by_kind["bar"][:2] == (True, True)  # not drawn again
    history = after[0]  # the first plot: the optimization history, now with the pruned trial
    assert history[1:] == [True, False, 7]  # the same element, drawn again with the new point
    assert page.problems == []


def test_ideas_page_lists_the_chain_and_calibration(page, server):
    open_page(page, server + "/ideas")
    assert page.locator("#ideas tbody tr").count() == 3 and page.get_by_text(HOSTILE, exact=True).count() == 1
    assert plots(page) == 1 and page.locator("#calibration tbody tr").count() == 7
    assert page.problems == []


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_report_file_draws_offline(page, live_db, tmp_path):
    from tuneloop.report import write_report
    from tuneloop.store import Store

    with Store(live_db) as store:
        path = write_report(store, "logs", tmp_path / "report.html")
    open_offline(page, path.as_uri())  # any network request would fail the page
    assert plots(page) >= 4 and page.locator("#samples img").count() == 1
    assert page.locator("#findings tbody tr").count() == 12  # the analysis travels with the report
    assert page.problems == []


@pytest.mark.slow  # long end to end: .ci/run runs it in its second pytest call
def test_rounds_chain_and_finalized_table_render(page, server, live_db):
    first = tl.Study("act", tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(1e-4, 1.0)), tf.activation_bowl,
                     metric="val_acc", mode="max", storage=live_db, scientific=["act"], fixed={"width": 64})
    first.run(n_trials=4, seed=0)
    second = first.next_round(searcher="random")
    second.run(n_trials=4, seed=0)
    second.finalize(top=2, seeds=2)
    open_page(page, server + "/study/act-r2")
    chain = page.locator("#rounds")
    assert chain.inner_text() == "goal act: round 1 (act) → round 2 (act-r2)"
    assert chain.locator("a").get_attribute("href") == "/study/act"
    assert "scientific: act · nuisance: lr · fixed: width=64" in page.locator("#roles").inner_text()
    assert page.locator("#final tbody tr").count() == 2 and "±" in page.locator("#final tbody tr").first.inner_text()
    open_page(page, server + "/study/act-r2-final")
    assert page.locator("#rounds a").inner_text() == "act-r2"
    assert page.problems == []


def test_a_continued_trial_links_to_the_trial_it_continued(page, server, live_db):
    tl.Study("sha", tl.Space(lr=tl.LogFloat(0.01, 1.0)), tf.stepper, metric="score", mode="max",
             budget={"epochs": 3}, storage=live_db, searcher="random",
             scheduler={"name": "sha", "n": 3, "reduction_factor": 3}).run(seed=0)
    open_page(page, server + "/study/sha/trial/3")
    lineage = page.locator("#lineage")
    assert lineage.inner_text().startswith("member ") and "generation 1 · promote from trial" in lineage.inner_text()
    parent = lineage.locator("a")
    assert parent.get_attribute("href").startswith("/study/sha/trial/")
    assert page.problems == []


@pytest.mark.slow  # analyze on the page (3 s): .ci/run runs it in its second pytest call
def test_the_analysis_tab_lists_findings_with_evidence(page, server):
    open_page(page, server + "/study/quad")
    page.locator("#analysis-link").click()
    page.wait_for_selector("#findings tbody tr", timeout=30_000)
    assert page.locator("#findings tbody tr").count() == 12
    assert page.locator("#findings .check.info").count() >= 1
    assert page.locator("#app a[href^='/study/quad/trial/']").count() >= 1  # evidence rows link to their trials
    assert page.problems == []


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_the_isolation_plot_draws_each_scientific_value(page, server, live_db):
    tl.Study("iso", tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(5e-3, 2e-2)), tf.activation_bowl,
             metric="val_acc", mode="max", storage=live_db, scientific=["act"]).run(n_trials=8, seed=0)
    open_page(page, server + "/study/iso/analysis")
    iso = page.locator(".isolation")
    assert iso.count() == 1 and page.evaluate("document.querySelector('.isolation').data[0].x.length") == 2
    assert page.problems == []


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_the_trial_page_shows_where_it_ran_and_its_system_metrics_apart(page, server, live_db):
    def sampled(trial):  # logs what the system sampler would, and an attribute with markup in it
        for second in (0, 5, 10):
            trial.log(second, **{"sys/cpu_percent": 90.0 + second, "sys/rss_mb": 300.0 + second})
        trial.set_attr("note", "<b>bold</b>[/x]")
        trial.report(0, loss=1.0)
        return {"loss": 1.0}

    tl.Study("system", tl.Space(x=tl.Float(0.0, 1.0)), sampled, metric="loss", mode="min", storage=live_db,
             executor="inline").run(n_trials=1)
    open_page(page, server + "/study/system/trial/0")
    assert page.locator("#device").inner_text().startswith("device ")  # "device cpu on host ..." here
    assert page.locator("#attrs").get_by_text("<b>bold</b>[/x]", exact=True).count() == 1  # text, not markup
    system = "document.querySelector('.system-plot').data"
    assert page.evaluate(f"{system}.map(t => t.name).sort()") == ["sys/cpu_percent", "sys/rss_mb"]
    assert page.evaluate(f"{system}[0].x") == [0, 5, 10]  # seconds since the trial started
    assert page.locator(".curve-plot").count() == 1  # the loss alone: sys/ metrics stay in their panel
    assert page.problems == []


@pytest.fixture(scope="module")
def fronts_server(fronts_db, serving):
    from tuneloop.dashboard import create_app

    with serving(create_app(fronts_db)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.slow  # two pages and a click (3 s): .ci/run runs it in its second pytest call
def test_the_front_plot_draws_and_a_click_on_a_front_point_opens_its_trial(page, fronts_server):
    from fronts import FRONT, INFEASIBLE

    open_page(page, fronts_server + "/study/mo")
    traces = {t["name"]: t for t in page.evaluate(
        "document.querySelector('.front-plot').data.map((t) => ({name: t.name, numbers: t.customdata, "
        "symbol: t.marker.symbol, shape: t.line && t.line.shape}))")}
    assert traces["Pareto front"]["numbers"] == sorted(FRONT)  # along val_acc: the staircase's order
    assert traces["Pareto front"]["shape"] == "vh"  # val_acc is maximized: up, then across
    assert sorted(traces["infeasible"]["numbers"]) == INFEASIBLE and traces["infeasible"]["symbol"] == "circle-open"
    assert page.evaluate("document.querySelector('.hypervolume').data[0].x.length") == 10
    assert page.locator("#trials th").all_inner_texts()[3:6] == ["val_acc", "latency_ms", "feasible"]
    assert page.locator("#trials tr.infeasible").count() == 3 and page.locator("#front tbody tr").count() == 4
    page.locator(".front-plot").scroll_into_view_if_needed()
    x, y = page.evaluate("""() => {  // where Plotly drew trial 4's point
        const gd = document.querySelector('.front-plot'), L = gd._fullLayout, box = gd.getBoundingClientRect();
        const t = gd.data.find((d) => d.name === 'Pareto front'), i = t.customdata.indexOf(4);
        return [box.left + L._size.l + L.xaxis.l2p(t.x[i]), box.top + L._size.t + L.yaxis.l2p(t.y[i])]; }""")
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_url("**/study/mo/trial/4", timeout=10_000)
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    assert page.locator("#feasibility").inner_text() == "feasible · on the Pareto front"
    assert page.locator("#objectives tbody tr").count() == 2
    assert page.problems == []


@pytest.mark.slow  # three more pages (two with WebGL parallel coordinates): .ci/run runs it in its second pytest call
def test_infeasible_trials_three_objectives_and_the_report_draw_their_fronts(page, fronts_server, fronts_db, tmp_path):
    from fronts import FRONT3

    from tuneloop.report import write_report
    from tuneloop.store import Store

    open_page(page, fronts_server + "/study/mo/trial/8")
    assert page.locator("#feasibility").inner_text() == "infeasible: breaks latency_ms <= 3"
    assert page.locator("#constraints tbody td").all_inner_texts() == ["latency_ms <= 3", "4.24", "no"]
    open_page(page, fronts_server + "/study/mo3")
    front = page.evaluate("document.querySelector('.front-plot').data[0]")
    assert [d["label"] for d in front["dimensions"]] == ["val_acc (max)", "latency_ms (min)", "params_m (min)"]
    assert front["line"]["color"].count(2) == len(FRONT3)  # the front in its own colour
    assert page.locator("#front tbody tr").count() == len(FRONT3)
    with Store(fronts_db) as store:
        report = write_report(store, "mo", tmp_path / "report.html")
    open_offline(page, report.as_uri())
    assert page.evaluate("document.querySelector('.front-plot').data.find((t) => t.name === 'Pareto front').x.length") == 4
    assert page.evaluate("document.querySelector('.hypervolume').data[0].x.length") == 10
    assert page.locator("#feasibility").inner_text() == "feasible · on the Pareto front"  # the best trial: 6
    assert page.problems == []


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_the_data_probe_draws_each_slice_on_log_log_axes_with_bands(page, server, live_db):
    from tuneloop.probe import probe_data

    def curve(trial):  # errors on known power laws of the fraction; one slice named with markup
        n = round(1000 * trial.fraction)
        for name, b in ((HOSTILE, 0.5), ("class 1", 0.3)):
            trial.log_slice(1, name, "acc", 1 - 2 * n ** -b, 50)
        return {"val_acc": 1 - n ** -0.4}

    study = tl.Study("more-data", tl.Space(u=tl.Choice([0])), curve, metric="val_acc", mode="max", storage=live_db)
    study.run(searcher="grid")
    probe_data(study, seeds=2)
    open_page(page, server + "/study/more-data/analysis")
    assert page.locator(".more-data").count() == 1
    traces = page.evaluate("document.querySelector('.more-data').data.map((t) => [t.name || '', t.fill || ''])")
    assert len(traces) == 12 and sum(fill == "tonexty" for _, fill in traces) == 3  # a band per series
    assert page.evaluate("document.querySelector('.more-data').layout.yaxis.type") == "log"
    assert page.problems == []


@pytest.mark.slow  # waits for a live poll (3 s): .ci/run runs it in its second pytest call
def test_a_running_trial_page_draws_its_forecast_and_updates_it_with_the_curve(page, server, live_db):
    import math

    from tuneloop.store import Store

    def curve(top, rate, n):
        return [top - 0.4 * math.exp(-rate * s) for s in range(1, n + 1)]

    with Store(live_db) as store:  # completed trials calibrate; trial 20 runs, with 8 of its 20 epochs reported
        record = store.create_study("forecast", "val_acc", "max", tl.Space(x=tl.Float(0.0, 1.0)), {"budget": {"epochs": 20}})
        for number in range(20):
            trial = store.create_trial(record.id, number, {"x": number / 20}, seed=number)
            values = curve(0.8 + number / 200, 0.15 + number / 100, 20)
            store.add_points([(trial, 0, s + 1, "val_acc", v) for s, v in enumerate(values)])
            store.finish_trial(trial, "completed", values[-1], {"val_acc": values[-1]})
        running = store.create_trial(record.id, 20, {"x": 0.5}, seed=20)
        values = curve(0.85, 0.2, 20)
        store.add_points([(running, 0, s + 1, "val_acc", v) for s, v in enumerate(values[:8])])
    open_page(page, server + "/study/forecast/trial/20")
    names = "document.querySelector('.curve-plot').data.map(t => t.name)"
    assert page.evaluate(names)[0] == "val_acc" and page.evaluate(names)[2].startswith("forecast ")
    marker = page.evaluate("document.querySelector('.curve-plot').data[2]")
    assert marker["x"] == [20] and marker["error_y"]["array"][0] > 0 and marker["error_y"]["arrayminus"][0] > 0
    note = page.locator("#forecast").inner_text()
    assert "at step 20 (95% one-sided bounds; calibrated on 20 trials)" in note
    with Store(live_db) as store:  # two more epochs: the page's poll redraws the forecast from the new last point
        store.add_points([(running, 0, s + 1, "val_acc", values[s]) for s in (8, 9)])
    page.wait_for_function("document.querySelector('.curve-plot').data[1].x[0] === 10", timeout=15_000)
    assert page.problems == []
