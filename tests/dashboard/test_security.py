"""The dashboard's trust boundaries, tried as an attacker would, over raw HTTP to a real server.

Raw requests matter: the TestClient and browsers normalise ``..`` in a path, while a request
sent by any other client reaches the server as written (``%2e%2e`` included).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tuneloop.dashboard import create_app, page_html
from tuneloop.errors import ConfigError, NotFound, NotTuneloopDatabase, StorageError, TrialFailed, TuneloopError


@pytest.fixture(scope="module")
def port(hostile, serving):
    with serving(create_app(hostile.storage)) as port:
        yield port


def raw(port: int, path: str, host: str | None = None, headers: dict[str, str] | None = None):
    """GET ``path`` exactly as written (no normalisation); the status, headers and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}" if host is None else host, **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(hostile, host: str = "localhost", **kwargs) -> TestClient:
    return TestClient(create_app(hostile.storage, **kwargs), base_url=f"http://{host}")


# -- artifact route -------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/artifacts/%2e%2e/tuneloop.db",
    "/artifacts/%2e%2e%2ftuneloop.db",
    "/artifacts/%2E%2E/tuneloop.db",
    "/artifacts/..%2ftuneloop.db",
    "/artifacts/../tuneloop.db",
    "/artifacts/.%2e/tuneloop.db",
    "/artifacts/x/%2e%2e/%2e%2e/tuneloop.db",
    "/artifacts/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/artifacts/%2fetc%2fpasswd",
    "/artifacts//etc/passwd",
    "/artifacts/tuneloop.db%00.png",
    "/artifacts/%2e",
    "/artifacts/",
])
def test_raw_dot_segments_never_leave_the_artifact_folder(port, path):
    status, headers, body = raw(port, path)
    assert status == 404, (path, status, body[:80])
    assert b"SQLite format 3" not in body and b"root:" not in body
    assert headers["content-type"] == "application/json" and "\n" not in json.loads(body)["detail"]


def test_the_database_beside_the_artifact_folder_is_never_served(hostile, port):
    # every way of naming the database from inside the artifact folder
    relative = os.path.relpath(hostile.db, hostile.artifacts)
    for path in (relative, quote(relative, safe=""), quote(str(hostile.db)), relative.replace(".", "%2e")):
        status, _, body = raw(port, "/artifacts/" + path)
        assert status == 404 and b"SQLite format 3" not in body, path


def trial_samples(hostile, number: int) -> dict[str, dict]:
    data = client(hostile).get(f"/api/studies/{quote(hostile.markup, safe='')}/trials/{number}").json()
    return {s["name"].split(" ", 1)[0]: s for s in data["samples"]}


def test_an_image_is_served_by_its_stored_path(hostile, port):
    url = trial_samples(hostile, 0)["image"]["url"]
    status, headers, body = raw(port, url)
    assert status == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
    assert headers["x-content-type-options"] == "nosniff"


def test_a_forged_sample_path_outside_the_folder_gets_no_link(hostile):
    samples = trial_samples(hostile, 1)
    assert samples["up"]["url"] is None and samples["absolute"]["url"] is None  # ../tuneloop.db and /abs/tuneloop.db


def test_a_stored_html_file_downloads_instead_of_running_in_the_dashboard(hostile, port):
    url = trial_samples(hostile, 1)["page"]["url"]
    status, headers, body = raw(port, url)
    assert status == 200 and b"<script>" in body
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment") and headers["content-security-policy"] == "sandbox"


# -- Host check (DNS rebinding) -------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "[::1]",
                                  "LOCALHOST:{port}"])
def test_loopback_names_are_answered(port, host):
    status, _, _ = raw(port, "/api/studies", host=host.format(port=port))
    assert status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "127.0.0.2:{port}", "0.0.0.0:{port}", "[::2]:{port}", "localhost:{port}:1", "",
                                  "[::1", "localhost@evil.example"])
def test_any_other_host_is_refused_with_one_line(port, host):
    for path in ("/api/studies", "/", "/artifacts/x", "/static/app.js", "/openapi.json"):
        status, _, body = raw(port, path, host=host.format(port=port))
        assert status == 403, (host, path, status)
        detail = json.loads(body)["detail"]
        assert "is not served" in detail and "--allow-host" in detail and "\n" not in detail


def test_allowed_hosts_extend_the_loopback_names(hostile):
    app = create_app(hostile.storage, allowed_hosts=["Dash.LAN", "::1"])
    assert TestClient(app, base_url="http://dash.lan:8080").get("/api/studies").status_code == 200
    assert TestClient(app, base_url="http://evil.example").get("/api/studies").status_code == 403
    assert TestClient(app, base_url="http://10.0.0.5").get("/api/studies").status_code == 403  # no token: names only


def test_with_a_token_the_host_is_checked_before_the_token(hostile):
    app = create_app(hostile.storage, token="s3cret", allowed_hosts=["dash.lan"])
    bearer = {"Authorization": "Bearer s3cret"}
    assert TestClient(app, base_url="http://dash.lan:8080").get("/api/studies", headers=bearer).status_code == 200
    assert TestClient(app, base_url="http://10.0.0.5:8080").get("/api/studies", headers=bearer).status_code == 200
    assert TestClient(app, base_url="http://[fe80::1]").get("/api/studies", headers=bearer).status_code == 200
    refused = TestClient(app, base_url="http://evil.example").get("/api/studies", headers=bearer)
    assert refused.status_code == 403  # a rebinding page never gets past the Host check, token or not
    assert TestClient(app, base_url="http://dash.lan").get("/api/studies").status_code == 401


@pytest.mark.slow  # 2.4-7.7 s here (a Ray cluster, a browser, a subprocess): keeps the default run under 5 min
def test_ui_allow_host_answers_that_name_and_refuses_others(hostile, tmp_path):
    port, log = free_port(), tmp_path / "ui.log"
    command = [sys.executable, "-c", "from tuneloop.cli import app; app()", "ui", "--port", str(port),
               "--allow-host", "dash.lan", "--allow-host", "other.lan", "--storage", hostile.storage]
    with log.open("w") as out, subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT) as proc:
        try:
            deadline = time.monotonic() + 30
            while True:  # poll until the server answers
                assert proc.poll() is None, log.read_text()
                try:
                    status, _, _ = raw(port, "/api/studies", host=f"localhost:{port}")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "tuneloop ui did not start: " + log.read_text()
                    time.sleep(0.05)
            assert status == 200
            assert raw(port, "/api/studies", host=f"dash.lan:{port}")[0] == 200
            assert raw(port, "/api/studies", host="other.lan")[0] == 200
            assert raw(port, "/api/studies", host=f"evil.example:{port}")[0] == 403
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# -- errors map to statuses, never a 500 ---------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/studies/quad/trials/99999999999999999999999",
    f"/api/studies/quad/trials/{2**63}",
    "/api/studies/quad/trials/-1",
    f"/api/studies/quad/trials/-{2**63 + 1}",
    "/api/studies/quad/compare?trials=0,99999999999999999999999",
    "/api/studies/quad/curves?trials=99999999999999999999999",
])
def test_trial_numbers_past_64_bits_are_not_found(dashboard_db, path):
    response = TestClient(create_app(dashboard_db), base_url="http://localhost").get(path)
    assert response.status_code == 404 and "\n" not in response.json()["detail"]


def test_bad_input_is_400_and_a_missing_thing_404(dashboard_db):
    c = TestClient(create_app(dashboard_db), base_url="http://localhost")
    assert c.get("/api/studies/quad/compare?trials=0").status_code == 400
    assert c.get("/api/studies/quad/compare?trials=0,1,2,3,4,5").status_code == 400
    assert c.get("/api/studies/quad/curves?trials=" + ",".join(map(str, range(5000)))).status_code == 400
    assert c.get("/api/studies/quad/compare?trials=0,77").status_code == 404
    assert c.get("/api/studies/nope").status_code == 404


def test_a_corrupt_store_row_is_503_with_one_line(storage):
    import trial_functions as tf

    import tuneloop as tl

    tl.Study("broken", tl.Space(x=tl.Float(0.0, 1.0)), tf.quadratic, metric="loss", mode="min",
             storage=storage).run(n_trials=1, seed=0)
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE studies SET space = '{' WHERE name = 'broken'")
    response = TestClient(create_app(storage), base_url="http://localhost").get("/api/studies/broken")
    assert response.status_code == 503
    assert "\n" not in response.json()["detail"] and "Traceback" not in response.text


def test_each_error_class_has_its_status():
    from tuneloop.dashboard._app import status_of

    assert status_of(NotFound("x")) == 404
    assert status_of(ConfigError("x")) == 400
    assert status_of(StorageError("x")) == 503 and status_of(NotTuneloopDatabase("x")) == 503
    assert status_of(TrialFailed("x")) == 400 and status_of(TuneloopError("x")) == 400


def test_a_non_ascii_token_is_401_not_500(hostile, port):
    c = client(hostile, token="s3cret")
    assert c.get("/api/studies?token=é").status_code == 401
    assert c.get("/api/studies?token=%FF%FE").status_code == 401
    assert c.get("/api/studies", headers={"Authorization": "Bearer é".encode()}).status_code == 401
    assert c.get("/api/studies", headers={"Cookie": "tuneloop_token=é".encode()}).status_code == 401
    assert c.get("/api/studies?token=s3cret").status_code == 200


def test_a_token_must_be_printable_ascii(hostile):
    for bad in ("", "é", "two words", "tab\there"):
        with pytest.raises(ConfigError, match="printable ASCII"):
            create_app(hostile.storage, token=bad)


# -- the boot JSON of every page ------------------------------------------------------------

def boot_of(html: str):
    return json.loads(re.search(r"<script type='application/json' id='boot'>(.*?)</script>", html, re.DOTALL).group(1))


@pytest.mark.parametrize("name", ["<!--<script>", "</script><script>alert(1)</script>", "<!--", "a</b", "&lt;"])
def test_boot_json_carries_any_name_without_markup(name):
    html = page_html("study", {"name": name}, title=name)
    boot = html[html.index("id='boot'>"):]
    boot = boot[boot.index(">") + 1:boot.index("</script>")]
    assert "<" not in boot and ">" not in boot  # no "<!--", "<script" or "</" can open or close anything
    assert html.lower().count("<script") == 5  # app.js, the boot data, its first requests, plotly.js, the boot call
    assert boot_of(html)["params"]["name"] == name


def test_the_served_page_of_a_comment_named_study_keeps_its_scripts(hostile, port):
    status, _, body = raw(port, "/study/" + quote(hostile.comment, safe=""))
    html = body.decode()
    assert status == 200 and "<!--" not in html and html.lower().count("<script") == 5
    assert boot_of(html)["params"]["name"] == hostile.comment
