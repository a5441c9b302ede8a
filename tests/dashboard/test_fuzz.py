"""Fuzzing the dashboard: schemathesis against its OpenAPI schema, over the hostile store.

Every operation gets positive and negative cases; half of them name one of the hostile studies
(markup, dot segments, ``<!--<script>``, unicode, a 10,000-character name), so the views run over
NaN, inf and huge values too. The bar: no server error (status >= 500) in at least 1,000 requests.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tuneloop.dashboard import create_app

MIN_REQUESTS = 1_000
PER_OPERATION = 70  # 15 operations: about 1,050 generated requests, 20-30 s
SETTINGS = settings(max_examples=PER_OPERATION, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def app(hostile):
    return create_app(hostile.storage)


@pytest.mark.slow  # 1,000 generated requests (10 s): .ci/run runs it in its second pytest call
def test_no_server_error_in_a_thousand_generated_requests(app, hostile):
    import schemathesis
    from schemathesis import GenerationMode

    # the schema FastAPI generates, fetched as a browser would (the Host check refuses the client's "testserver")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "localhost"})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    names = st.sampled_from(hostile.names) | st.text(max_size=50)
    # trial numbers: the real ones, and past SQLite's 64-bit integers (the schema says only "integer")
    numbers = st.sampled_from([0, 1, 2, 3, 2**62, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]) | st.integers()
    sent: list[str] = []
    for operation in operations:
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

        @SETTINGS
        @given(case=cases, name=names, number=numbers, picked=st.lists(numbers, max_size=6), hostile=st.booleans())
        def call(case, name, number, picked, hostile):
            if hostile:  # half the cases name a hostile study and real or huge trial numbers
                params, query = case.path_parameters or {}, case.query or {}
                if "name" in params:
                    params["name"] = quote(name, safe="")
                if "number" in params:
                    params["number"] = str(number)
                if "trials" in query:
                    query["trials"] = ",".join(map(str, picked))
            response = case.call(base_url="http://localhost")
            sent.append(case.operation.label)
            assert response.status_code < 500, (case.formatted_path, case.query, response.status_code, response.text)

        call()
    assert len(sent) >= MIN_REQUESTS, f"only {len(sent)} requests generated"
    assert len(set(sent)) == len(operations)  # every operation was exercised


def test_every_route_over_every_hostile_study_answers_without_a_server_error(app, hostile):
    client = TestClient(app, base_url="http://localhost")
    paths = ["/", "/ideas", "/api/studies", "/api/ideas"]
    for name in hostile.names:
        n = quote(name, safe="")
        paths += [f"/api/studies/{n}", f"/api/studies/{n}/analysis", f"/api/studies/{n}/compare?trials=0,1",
                  f"/api/studies/{n}/curves?trials=0,1,{2**62}", f"/study/{n}", f"/study/{n}/trial/0"]
        paths += [f"/api/studies/{n}/trials/{k}" for k in (0, 1, 2, 3, 2**62, 2**63, -1)]
    statuses = {}
    for path in paths:
        response = client.get(path)
        statuses[path] = response.status_code
        if response.status_code == 200 and path.startswith("/api/studies/"):
            for sample in response.json().get("samples", []):  # every link a page would follow
                if sample.get("url"):
                    assert client.get(sample["url"]).status_code == 200
    assert all(status < 500 for status in statuses.values()), {p: s for p, s in statuses.items() if s >= 500}
    markup = quote(hostile.markup, safe="")
    assert statuses[f"/api/studies/{markup}"] == statuses[f"/api/studies/{markup}/trials/{2**62}"] == 200


def host_headers():
    printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    loopback = st.sampled_from(["localhost", "127.0.0.1", "[::1]"])
    port = st.integers(0, 65535).map(lambda p: f":{p}")
    return st.text(printable, max_size=40) | st.builds(lambda h, p, s: h + p + s, loopback, port | st.just(""),
                                                       st.text(printable, max_size=5))


@settings(max_examples=200, deadline=None, database=None)
@given(host=host_headers())
def test_only_a_loopback_host_is_answered(app, host):
    from tuneloop.dashboard._app import LOOPBACK_HOSTS, host_name

    response = TestClient(app, base_url="http://localhost").get("/static/style.css", headers={"Host": host})
    assert response.status_code == (200 if host_name(host) in LOOPBACK_HOSTS else 403)
    if response.status_code == 200:  # the name before the port is exactly a loopback one
        assert host.lower().rsplit(":", 1)[0] in LOOPBACK_HOSTS or host.lower() in LOOPBACK_HOSTS


def segments():
    dots = st.sampled_from(["..", "%2e%2e", "%2E%2e", ".%2e", "%2e.", ".", "%2e", "", "%2f", "%5c", "%00", "tuneloop.db",
                            "trial-0", "..%2f..", "%2e%2e%2f"])
    return st.lists(dots | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#?"),
                                   max_size=8), max_size=6).map("/".join)


@pytest.fixture(scope="module")
def port(app, serving):
    with serving(app) as port:
        yield port


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=segments())
def test_a_raw_artifact_path_never_reads_outside_the_artifact_folder(hostile, port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/artifacts/" + path, headers={"Host": "localhost"})
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status in (200, 400, 404, 422), (path, status)  # 400: a request line uvicorn itself refuses
    assert b"SQLite format 3" not in body
    if status == 200:  # the body is a file inside the artifact folder
        inside = [p.read_bytes() for p in Path(hostile.artifacts).rglob("*") if p.is_file()]
        assert body in inside
