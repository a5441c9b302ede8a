"""``/api/morning``: the home page's "Last night" panel reads the night's summary as strict JSON,
from a store with a night, an empty store and one from before the queue."""

import json
import sqlite3

from fastapi.testclient import TestClient
from night import build_night

from tuneloop.dashboard import create_app
from tuneloop.store import Store

MARKUP = "[red]x[/red] <script>alert(1)</script>"


def get(storage):
    with TestClient(create_app(storage), base_url="http://localhost") as client:
        response = client.get("/api/morning")
    assert response.status_code == 200, response.text
    json.loads(response.text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # no NaN or Infinity
    return response.json()


def test_the_night_as_json(storage):
    night = build_night(storage, title=MARKUP)
    data = get(storage)
    assert [j["title"] for j in data["jobs"]] == ["train", "probe", "crash"] and data["failed_jobs"] == [night.jobs["crash"]]
    assert [v["title"] for v in data["verdicts"]] == [MARKUP, "label smoothing"]  # as stored: the page escapes it
    assert [d["state"] for d in data["decisions"]] == ["adopted", "rejected", "broken"] and not data["empty"]
    assert data["queued"][0]["estimate_s"] == 7560.0 and data["window"] == "latest night"


def test_an_empty_store_and_one_from_before_the_queue(storage):
    Store(storage).close()
    assert get(storage)["empty"] is True
    con = sqlite3.connect(storage.removeprefix("sqlite:///"))
    con.execute("drop table jobs")
    con.execute("update tuneloop_meta set value = '7' where key = 'schema_version'")
    con.commit()
    con.close()
    data = get(storage)
    assert data["empty"] is True and "before the queue" in data["notes"][0]
