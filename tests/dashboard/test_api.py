"""The dashboard's JSON API and its safety rules, through FastAPI's TestClient on a real store."""

import pytest
from shared import HOSTILE
from fastapi.testclient import TestClient

from tuneloop.dashboard import create_app


@pytest.fixture(scope="module")
def client(dashboard_db):
    return TestClient(create_app(dashboard_db), base_url="http://localhost")  # the Host the dashboard answers


def test_studies_list_counts_states_and_best(client):
    studies = {s["name"]: s for s in client.get("/api/studies").json()["studies"]}
    assert set(studies) == {"quad", "logs", "seeds", HOSTILE}
    assert studies["quad"]["counts"] == {"completed": 12} and studies["quad"]["n_trials"] == 12
    assert studies["logs"]["counts"] == {"completed": 1, "diverged": 1}


def settled(client, url):
    """The study's response once its background importance is in (the first answer never waits for it)."""
    import time

    deadline = time.monotonic() + 60
    while (data := client.get(url).json())["importance_status"]["state"] != "ready":
        assert data["importance_status"]["state"] in ("computing", "stale") and time.monotonic() < deadline
        time.sleep(0.05)
    return data


@pytest.mark.slow  # 2-5 s in the default run: .ci/run runs it in its second pytest call
def test_study_view_holds_every_plot(client):
    data = settled(client, "/api/studies/quad")
    assert "trials" not in data and data["counts"] == {"total": 12, "states": {"completed": 12}}  # rows: a page at a time
    trials = client.get("/api/trials/quad").json()["rows"]
    assert data["done"]["number"] == [t["number"] for t in trials] and data["done"]["value"] == [t["value"] for t in trials]
    assert data["done"]["params"]["x"] == [t["params"]["x"] for t in trials]
    assert len(trials) == 12 and data["history"]["number"] == sorted(data["history"]["number"])
    best = min(t["value"] for t in trials)
    assert data["history"]["best"][-1] == best and data["study"]["best"] == next(
        t["number"] for t in trials if t["value"] == best)
    effects = {e["name"]: e for e in data["effects"]}
    assert (effects["y"]["low"], effects["y"]["high"], effects["y"]["log"]) == (1e-3, 1.0, True)
    assert "x" not in effects["x"] and len(data["done"]["params"]["x"]) == 12  # the points: the done columns'
    assert data["done"]["absent"] == {}
    assert set(data["importance"]) == {"x", "y"} and abs(sum(data["importance"].values()) - 1) < 1e-6
    ranked = [c["number"] for c in data["curves"]]
    values = {t["number"]: t["value"] for t in trials}
    assert len(ranked) == 10 and [values[n] for n in ranked] == sorted(values[n] for n in ranked)
    assert all(len(c["points"]) == 3 for c in data["curves"])
    picked = client.get("/api/studies/quad/curves?trials=0,5").json()["curves"]
    assert [c["number"] for c in picked] == [0, 5] and all(len(c["points"]) == 3 for c in picked)


def test_trials_differing_only_by_seed_are_grouped_with_a_band(client):
    groups = client.get("/api/studies/seeds").json()["groups"]
    assert groups and all(len(g["trials"]) >= 2 for g in groups)
    b = groups[0]["band"]
    assert b["step"] == [0, 1, 2, 3] and b["n"] == len(groups[0]["trials"])
    assert all(lo <= m <= hi for lo, m, hi in zip(b["low"], b["mean"], b["high"], strict=True))


def test_trial_view_has_curves_histograms_alerts_slices_samples(client):
    trials = {t["params"]["x"]: t["number"] for t in client.get("/api/trials/logs").json()["rows"]}
    good = client.get(f"/api/studies/logs/trials/{trials[0.5]}").json()
    assert set(good["curves"]) == {"loss", "grad_norm"} and good["system"] == {}  # sys/ metrics: a panel of their own
    assert good["trial"]["attrs"]["host"] and good["trial"]["device"] == good["trial"]["attrs"]["device"]  # where it ran
    assert good["histograms"]["act/fc1"]["step"] == [0] and sum(good["histograms"]["act/fc1"]["counts"][0]) == 100
    assert {s["slice"] for s in good["slices"]} == {"class 0", "class 1"}
    samples = {s["name"]: s for s in good["samples"]}
    assert samples["picture"]["url"].startswith("/artifacts/") and samples["picture"]["url"].endswith(".png")
    assert client.get(samples["picture"]["url"]).headers["content-type"] == "image/png"
    bad = client.get(f"/api/studies/logs/trials/{trials[2.0]}").json()
    assert bad["trial"]["state"] == "diverged" and bad["alerts"][0]["rule"] == "non-finite"


def test_compare_lists_differences(client):
    data = client.get("/api/studies/quad/compare?trials=0,1,2").json()
    assert [t["number"] for t in data["trials"]] == [0, 1, 2] and data["differ"] == ["x", "y"]
    assert client.get("/api/studies/quad/compare?trials=0").status_code == 400  # bad input, not a missing thing
    assert client.get("/api/studies/quad/compare?trials=a,b").status_code == 400
    assert client.get("/api/studies/quad/compare?trials=0,99").status_code == 404


@pytest.mark.parametrize("path", [
    "/artifacts/logs/../../dash.db",
    "/artifacts/logs/..%2F..%2Fdash.db",
    "/artifacts/..%2Fdash.db",
    "/artifacts/%2Fetc%2Fpasswd",
    "/artifacts//etc/passwd",
    "/artifacts/logs/%2Fetc%2Fpasswd",
    "/artifacts/logs//etc/passwd",
    "/artifacts/quad/trial-0/nothing.png",
    "/artifacts/",
    "/static/../_app.py",
])
def test_files_outside_a_studys_artifact_folder_are_not_found(client, path):
    assert client.get(path).status_code == 404


def test_unknown_study_or_trial_is_404_with_a_reason(client):
    r = client.get("/api/studies/nope")
    assert r.status_code == 404 and "No study named 'nope'" in r.json()["detail"]
    assert client.get("/api/studies/quad/trials/99").status_code == 404


def test_a_token_is_required_when_set(dashboard_db):
    client = TestClient(create_app(dashboard_db, token="s3cret"), base_url="http://localhost")
    assert client.get("/api/studies").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/api/studies", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/studies", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    first = client.get("/?token=s3cret")
    assert first.status_code == 200
    assert client.get("/api/studies").status_code == 200  # the page set a cookie


def test_pages_embed_user_text_only_as_json(client):
    from urllib.parse import quote

    html = client.get(f"/study/{quote(HOSTILE, safe='')}").text
    assert "<script>alert(1)</script>" not in html
    assert "\\u003c/script\\u003e" in html  # inside the JSON boot data, no "<" at all: the tag cannot close it


def test_ui_refuses_a_public_host_without_a_token():
    from typer.testing import CliRunner

    from tuneloop.cli import app

    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "add --token SECRET" in " ".join(result.output.split())


def test_study_view_states_how_far_it_is_from_the_best_baseline(client):
    checks = client.get("/api/studies/quad").json()["checks"]
    assert [c["status"] for c in checks["checks"]] == ["pass", "fail"]
    versus = checks["versus"]
    assert versus["baseline"] == "ridge regression" and versus["baseline_score"] == 1.5  # an MSE: lower is better
    assert versus["margin"] == pytest.approx(versus["study_best"] - 1.5)


def test_ideas_view_ranks_and_calibrates(client):
    data = client.get("/api/ideas").json()
    # AdamW 0.3 * 0.01 / 0.5 = 0.006; Bigger batch 0.5 * 0.01 / (1 * 1.25) = 0.004; the third 0.2 * 0.01 / 1
    assert [i["title"] for i in data["ideas"]][:2] == ["AdamW", "Bigger batch"]
    assert data["chain"][0]["cumulative"] == 0.015 and data["calibration"]["decided"] == 2
    assert data["calibration"]["brier"] == pytest.approx(((0.3 - 1) ** 2 + 0.5 ** 2) / 2)


def test_study_view_shows_the_rounds_chain_and_the_finalized_result(storage):
    import trial_functions as tf

    import tuneloop as tl

    first = tl.Study("act", tl.Space(act=tl.Choice(["relu", "gelu"]), lr=tl.LogFloat(1e-4, 1.0)), tf.activation_bowl,
                     metric="val_acc", mode="max", storage=storage, scientific=["act"], fixed={"width": 64})
    first.run(n_trials=4, seed=0)
    second = first.next_round(searcher="random")
    second.run(n_trials=4, seed=0)
    final = second.finalize(top=2, seeds=2)
    client = TestClient(create_app(storage), base_url="http://localhost")
    data = client.get("/api/studies/act-r2").json()
    assert data["rounds"]["goal"] == "act" and data["rounds"]["roles"]["fixed"] == {"width": 64}
    assert [(r["round"], r["study"], r["current"]) for r in data["rounds"]["items"]] == [
        (1, "act", False), (2, "act-r2", True)]
    shown = data["final"]
    assert shown["study"] == "act-r2-final" and shown["seeds"] == 2 and len(shown["configs"]) == 2
    assert shown["configs"][0]["test"]["mean"] == pytest.approx(final.configs[0].test.mean)
    of_final = client.get("/api/studies/act-r2-final").json()
    assert of_final["rounds"]["final_of"] == "act-r2" and of_final["final"]["study"] == "act-r2-final"
    assert client.get("/api/studies/act").json()["final"] is None


def test_analysis_endpoint_lists_every_finding(client):
    data = client.get("/api/studies/quad/analysis").json()
    checks = [f["check"] for f in data["findings"]]
    assert checks[:4] == ["importance", "boundaries", "infeasible", "sampling"] and "next round" in checks
    assert all(f["verdict"] in ("ok", "info", "warn", "problem") for f in data["findings"])
    assert client.get("/api/studies/nope/analysis").status_code == 404


@pytest.fixture(scope="module")
def fronts(fronts_db):
    return TestClient(create_app(fronts_db), base_url="http://localhost")


def test_a_multi_objective_study_carries_its_front_feasibility_and_hypervolume(fronts):
    from fronts import FRONT, INFEASIBLE

    data = fronts.get("/api/studies/mo").json()
    assert [o["name"] for o in data["objectives"]] == ["val_acc", "latency_ms"] and data["front"] == FRONT
    assert data["constraints"] == [{"metric": "latency_ms", "op": "<=", "bound": 3.0}]
    done = data["done"]
    assert [n for n, ok in zip(done["number"], done["feasible"], strict=True) if ok is False] == INFEASIBLE
    assert list(done["values"]) == ["val_acc", "latency_ms"] and len(done["values"]["latency_ms"]) == len(done["number"])
    rows = fronts.get("/api/trials/mo?state=completed&sort=metric:latency_ms&order=desc&limit=1000").json()["rows"]
    assert [t["number"] for t in rows if t["feasible"] is False] == sorted(INFEASIBLE, key=lambda n: -next(
        t["values"]["latency_ms"] for t in rows if t["number"] == n))
    latency = [t["values"]["latency_ms"] for t in rows]
    assert latency == sorted(latency, reverse=True)
    assert data["study"]["best"] == 6  # not 8, the most accurate: it breaks latency_ms <= 3
    hv = data["hypervolume"]
    assert len(hv["reference"]) == 2 and len(hv["points"]) == 10 and hv["numbers"] == list(range(10))
    trial = fronts.get("/api/studies/mo/trials/8").json()
    assert trial["feasible"] is False and trial["broken"] == ["latency_ms <= 3"] and trial["on_front"] is False
    assert [o["name"] for o in fronts.get("/api/studies").json()["studies"][0]["objectives"]] == ["val_acc", "latency_ms"]


def test_malformed_stored_objectives_answer_503_with_one_line(fronts_db, tmp_path):
    import json
    import sqlite3
    from pathlib import Path

    copy = tmp_path / "forged.db"
    with sqlite3.connect(Path(fronts_db.removeprefix("sqlite:///"))) as a, sqlite3.connect(copy) as b:
        a.backup(b)
        b.execute("UPDATE studies SET config = ? WHERE name = 'mo'",
                  (json.dumps({"objectives": {"<b>x</b>": 1}, "prune_on": [["a", "b", "c"]]}),))
    client = TestClient(create_app(f"sqlite:///{copy}"), base_url="http://localhost")
    for path in ("/api/studies/mo", "/api/studies/mo/trials/0"):
        response = client.get(path)
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert "malformed" in detail and "repair or delete that row" in detail and "\n" not in detail
        assert "Traceback" not in response.text
    assert client.get("/api/studies").status_code == 200 and client.get("/study/mo").status_code == 200


def test_an_unchanged_study_is_answered_not_modified_and_a_finished_trial_changes_it(tmp_path):
    """A poll sends the ETag back: 304 without a body while nothing changed; a trial that finishes
    (a new row state in the store) changes the tag and the trials."""
    import time

    import tuneloop as tl
    from tuneloop.store import Store

    url = f"sqlite:///{tmp_path / 'etag.db'}"
    with Store(url) as store:
        record = store.create_study("e", "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
        first = store.create_trial(record.id, 0, {"x": 0.5}, seed=0)
        store.finish_trial(first, "completed", 0.25, {"loss": 0.25})
        running = store.create_trial(record.id, 1, {"x": 0.1}, seed=1)
        client = TestClient(create_app(url), base_url="http://localhost")
        settled(client, "/api/studies/e")  # the background importance in: it changes the view too
        answer = client.get("/api/studies/e")
        tag = answer.headers["etag"]
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-cache"
        again = client.get("/api/studies/e", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
        store.finish_trial(running, "completed", 0.01, {"loss": 0.01})
        # the poll that sees the change starts recomputing and answers with what it had (304 here);
        # a later poll brings the new trials
        deadline = time.monotonic() + 60
        while (changed := client.get("/api/studies/e", headers={"If-None-Match": tag})).status_code == 304:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert changed.status_code == 200 and changed.headers["etag"] != tag
        assert changed.json()["counts"]["states"] == {"completed": 2}
        assert [t["state"] for t in client.get("/api/trials/e").json()["rows"]] == ["completed", "completed"]
        assert changed.json()["study"]["best"] == 1


def test_the_trials_table_comes_a_page_at_a_time_sorted_and_filtered_by_the_server(client):
    page = client.get("/api/trials/quad?sort=param:x&order=desc&limit=5&offset=2").json()
    xs = [t["params"]["x"] for t in client.get("/api/trials/quad?sort=param:x&order=desc").json()["rows"]]
    assert [t["params"]["x"] for t in page["rows"]] == xs[2:7] and xs == sorted(xs, reverse=True)
    assert (page["matched"], page["total"], page["offset"], page["limit"]) == (12, 12, 2, 5)
    diverged = client.get("/api/trials/logs?state=diverged").json()
    assert [t["state"] for t in diverged["rows"]] == ["diverged"] and (diverged["matched"], diverged["total"]) == (1, 2)
    for query, cause in [("sort=param:nope", "Cannot sort by 'param:nope'"), ("order=up", "order must be asc or desc"),
                         ("state=done", "No trial state 'done'"), ("limit=5000", "1 to 1000 rows"),
                         ("sort=" + "x" * 10_000, "Cannot sort by")]:
        answer = client.get(f"/api/trials/quad?{query}")
        assert answer.status_code == 400 and cause in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    assert client.get("/api/trials/nope").status_code == 404


def test_a_study_named_like_a_route_is_still_its_own_study(tmp_path):
    """Names hold any character, "/" included: the table's route does not hide a study named "a/trials"."""
    import tuneloop as tl
    from tuneloop.store import Store

    url = f"sqlite:///{tmp_path / 'routes.db'}"
    with Store(url) as store:
        for name, x in (("a", 0.1), ("a/trials", 0.7)):
            record = store.create_study(name, "loss", "min", tl.Space(x=tl.Float(0.0, 1.0)), {})
            trial = store.create_trial(record.id, 0, {"x": x}, seed=0)
            store.finish_trial(trial, "completed", x, {"loss": x})
    client = TestClient(create_app(url), base_url="http://localhost")
    assert client.get("/api/studies/a%2Ftrials").json()["study"]["name"] == "a/trials"
    assert [t["params"]["x"] for t in client.get("/api/trials/a%2Ftrials").json()["rows"]] == [0.7]
    assert [t["params"]["x"] for t in client.get("/api/trials/a").json()["rows"]] == [0.1]


def test_static_files_are_cached_by_version_gzipped_on_request_and_revalidated(client):
    import gzip
    import re

    page = client.get("/study/quad").text
    url = re.search(r'src="(/static/plotly\.min\.js\?v=[0-9a-f]{12})"', page).group(1)
    packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and "immutable" in packed.headers["cache-control"]
    assert packed.content.startswith(b"//# allFunctionsCalledOnLoad\n")  # decoded by the client: V8's compile hint
    plain = client.get(url, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in plain.headers and plain.content == packed.content
    assert plain.headers["etag"] != packed.headers["etag"]  # one tag per encoding
    assert len(gzip.compress(plain.content)) < len(plain.content) / 2
    unversioned = client.get("/static/app.js", headers={"Accept-Encoding": "identity"})
    assert unversioned.headers["cache-control"] == "no-cache"  # not the page's URL: checked again at each use
    again = client.get("/static/app.js", headers={"Accept-Encoding": "identity",
                                                  "If-None-Match": f'W/{unversioned.headers["etag"]}, "other"'})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/static/../_app.py").status_code == 404 and client.get("/static/plotly.js").status_code == 404


def test_a_study_page_holds_the_importance_fit_until_it_says_it_has_drawn(client):
    import json
    import re

    from tuneloop.views import _worker
    from tuneloop.views._holds import HOLDS

    html = client.get("/study/quad").text
    boot = json.loads(re.search(r"<script type='application/json' id='boot'>(.*?)</script>", html).group(1))
    assert boot["page"] == "study" and re.fullmatch(r"[A-Za-z0-9_-]{16,}", boot["hold"])
    assert HOLDS.paused and _worker._paused  # the worker is stopped while the page draws
    assert client.delete(f"/api/holds/{boot['hold']}").status_code == 204
    assert not HOLDS.paused and not _worker._paused
    HOLDS.clear()  # its free time over
    # another site's request (an <img> pointed here) takes no hold; the browser's own navigation does
    html = client.get("/study/quad", headers={"Sec-Fetch-Site": "cross-site"}).text
    assert "hold" not in json.loads(re.search(r"id='boot'>(.*?)</script>", html).group(1)) and not HOLDS.paused
    html = client.get("/study/quad", headers={"Sec-Fetch-Site": "none"}).text
    assert "hold" in json.loads(re.search(r"id='boot'>(.*?)</script>", html).group(1)) and HOLDS.paused
    HOLDS.clear()
    assert client.delete("/api/holds/forged").status_code == 204  # an unknown or lapsed hold changes nothing
    # only the study page draws enough to hold: the others do not
    assert "hold" not in json.loads(re.search(r"id='boot'>(.*?)</script>", client.get("/").text).group(1))
    assert not HOLDS.paused
