"""PrometheusAPI: auth and tenant headers, query counting, chunking, errors (fake HTTP server)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from advisor.errors import QueryError
from advisor.prom import PrometheusAPI, name_selector


class FakeProm:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.status = 200
        self.body: dict[str, Any] = {
            "status": "success",
            "data": {
                "resultType": "matrix",
                "result": [
                    {
                        "metric": {"__name__": "cpu_power_watts", "zone": "package"},
                        "values": [[100.0, "1"], [100.1, "2"], [100.2, "NaN"]],
                    }
                ],
            },
        }


@pytest.fixture
def fake() -> Iterator[tuple[FakeProm, str]]:
    state = FakeProm()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            u = urlsplit(self.path)
            state.requests.append((u.path, parse_qs(u.query), dict(self.headers.items())))
            payload = json.dumps(state.body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-prom", daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_bearer_and_tenant_headers_and_raw_query(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    api = PrometheusAPI(url + "/api/v1", bearer_token="s3cret", headers={"X-Scope-OrgID": "team1"})
    series = api.fetch('{__name__=~"a"}', 99.0, 101.0, mode="raw")
    assert api.query_count == 1
    path, params, headers = state.requests[0]
    assert path == "/api/v1/query" and params["query"] == ['{__name__=~"a"}[2000ms]']
    assert headers["Authorization"] == "Bearer s3cret" and headers["X-Scope-OrgID"] == "team1"
    assert len(series) == 1 and series[0].v.tolist() == [1.0, 2.0]  # NaN dropped


def test_basic_auth(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    PrometheusAPI(url, basic_auth=("u", "p")).fetch("x", 0.0, 1.0)
    assert state.requests[0][2]["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


def test_range_mode_chunks_to_respect_the_points_limit(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    api = PrometheusAPI(url)
    api.fetch("x", 0.0, 7200.0, mode="range", step_s=0.1, max_points=10_000)
    assert api.query_count == 8  # 72,000 steps / 10,000 per query
    for path, params, _ in state.requests:
        assert path == "/api/v1/query_range"
        span = float(params["end"][0]) - float(params["start"][0])
        assert span / 0.1 + 1 <= 11_000


def test_errors_name_the_fix(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    state.status = 400
    state.body = {"status": "error", "error": "bad_data: parse error"}
    with pytest.raises(QueryError, match="parse error"):
        PrometheusAPI(url).fetch("x", 0.0, 1.0)
    state.status = 401
    with pytest.raises(QueryError, match="bearer token"):
        PrometheusAPI(url, bearer_token="tok").fetch("x", 0.0, 1.0)
    with pytest.raises(QueryError, match="cannot reach"):
        PrometheusAPI("http://127.0.0.1:1").fetch("x", 0.0, 1.0)


def test_secret_not_in_error_messages(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    state.status = 401
    with pytest.raises(QueryError) as info:
        PrometheusAPI(url, bearer_token="s3cret-token").fetch("x", 0.0, 1.0)
    assert "s3cret" not in str(info.value)


def test_name_selector() -> None:
    assert name_selector(["b", "a"], ['instance="h"']) == '{__name__=~"a|b",instance="h"}'
