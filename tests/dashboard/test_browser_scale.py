"""A big study in a real browser: 2,500 trials draw with WebGL markers, parallel coordinates over
a sample that keeps the best trials, and a trials table that holds a page of rows from the server;
sorting (in SQL) orders all of them and the pager walks through them. No console error."""

import math
import random

import pytest
from browser import require_chromium

import tuneloop as tl

require_chromium()

TRIALS = 2500


@pytest.fixture(scope="module")
def big(tmp_path_factory, serving):
    from tuneloop.dashboard import create_app
    from tuneloop.store import Store

    url = f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}"
    rng = random.Random(0)
    with Store(url) as store:
        record = store.create_study("big", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0), y=tl.LogFloat(1e-3, 1.0)), {})
        for n in range(TRIALS):
            p = {"x": rng.random(), "y": math.exp(rng.uniform(math.log(1e-3), 0.0))}
            trial = store.create_trial(record.id, n, p, seed=n)
            value = (p["x"] - 0.3) ** 2 + 0.01 * rng.random()
            store.finish_trial(trial, "completed", value, {"loss": value})
        top = min(store.trials(record.id), key=lambda t: t.value)
    with serving(create_app(url)) as port:
        yield f"http://127.0.0.1:{port}", top.number, top.value


@pytest.mark.slow  # 2,500 trials through Plotly in chromium
def test_a_study_of_thousands_of_trials_draws_with_webgl_a_sample_and_a_page_of_rows(page, big):
    server, best, best_value = big
    page.goto(server + "/study/big")
    page.wait_for_selector("body[data-loaded=true]", timeout=60_000)
    page.wait_for_function("document.body.dataset.plots !== 'drawing'", timeout=60_000)
    traces = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map((p) => p.data[0].type)")
    assert traces[0] == "scattergl"  # the history
    assert traces.count("scattergl") >= 3  # history and one per parameter
    assert page.get_by_text("Parallel coordinates (2000 of 2500 completed trials").count() == 1
    # headless chromium renders WebGL in software: the parallel coordinates are SVG lines, one per sampled trial,
    # the best in the last band (on top); the brushable WebGL version is a click away
    lines = page.evaluate("""(() => { const d = document.querySelector('.parcoords-lines');
        return d.data.filter((t) => t.mode === 'lines').map((t) => [t.x.filter((x) => x === null).length, t.y]); })()""")
    assert sum(n for n, _ in lines) == 2000
    best_y = min(y for y in lines[-1][1][2::4] if y is not None)  # x, y, loss, gap: the loss scaled 0..1, the best at 0
    assert best_y == 0.0
    page.click("#parcoords-webgl")
    page.wait_for_function("document.body.dataset.plots !== 'drawing' && document.querySelector('.parcoords')",
                           timeout=60_000)
    dims = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].find((p) => p.data[0].type"
                         " === 'parcoords').data[0].dimensions.map((d) => d.values)")
    assert len(dims[0]) == 2000 and min(dims[-1]) == best_value  # the sample keeps the best trial
    rows = page.locator("#trials tbody tr")
    assert rows.count() == 200 and page.locator(".pager .rows").inner_text().strip() == "rows 1-200 of 2500"
    page.locator("#trials th", has_text="loss").click()  # ascending: the best trial of all 2,500 first (sorted in SQL)
    page.wait_for_selector("#trials[data-state=ready]")
    assert page.locator("#trials tbody tr td:nth-child(2)").first.inner_text() == str(best)
    page.locator(".pager .next").click()
    page.wait_for_selector("#trials[data-state=ready]")
    assert page.locator(".pager .rows").inner_text().strip() == "rows 201-400 of 2500" and rows.count() == 200
    losses = [float(v) for v in page.locator("#trials tbody tr td:nth-child(4)").all_inner_texts()]
    assert losses == sorted(losses) and losses[0] >= best_value
    assert page.problems == []
