"""PrometheusAPI: auth and tenant headers, query counting, chunking, errors (fake HTTP server)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from advisor.cli import build_api, build_parser, main
from advisor.errors import QueryError
from advisor.prom import PrometheusAPI, name_selector
from base_monitoring_client.httpauth import HttpAuth
from wattpush_testing.receivers import serve_get


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

    def answer(
        path: str, query: dict[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, str]:
        state.requests.append((path, query, dict(headers)))
        return state.status, json.dumps(state.body)

    with serve_get(answer, "fake-prom") as url:
        yield state, url


def test_bearer_and_tenant_headers_and_raw_query(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    api = PrometheusAPI(
        url + "/api/v1", auth=HttpAuth(bearer_token="s3cret", headers={"X-Scope-OrgID": "team1"})
    )
    series = api.fetch('{__name__=~"a"}', 99.0, 101.0, mode="raw")
    assert api.query_count == 1
    path, params, headers = state.requests[0]
    assert path == "/api/v1/query" and params["query"] == ['{__name__=~"a"}[2000ms]']
    assert headers["Authorization"] == "Bearer s3cret" and headers["X-Scope-OrgID"] == "team1"
    assert len(series) == 1 and series[0].v.tolist() == [1.0, 2.0]  # NaN dropped


def test_basic_auth(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    auth = HttpAuth(basic_auth_user="u", basic_auth_password="p")
    PrometheusAPI(url, auth=auth).fetch("x", 0.0, 1.0)
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
        PrometheusAPI(url, auth=HttpAuth(bearer_token="tok")).fetch("x", 0.0, 1.0)
    with pytest.raises(QueryError, match="cannot reach"):
        PrometheusAPI("http://127.0.0.1:1").fetch("x", 0.0, 1.0)


def test_secret_not_in_error_messages(fake: tuple[FakeProm, str]) -> None:
    state, url = fake
    state.status = 401
    with pytest.raises(QueryError) as info:
        PrometheusAPI(url, auth=HttpAuth(bearer_token="s3cret-token")).fetch("x", 0.0, 1.0)
    assert "s3cret" not in str(info.value)


def test_name_selector() -> None:
    assert name_selector(["b", "a"], ['instance="h"']) == '{__name__=~"a|b",instance="h"}'


# -- the command line's settings reach the API ----------------------------------------------


def test_cli_env_and_flags_configure_the_api(
    fake: tuple[FakeProm, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fake
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    env = {
        "ADVISOR_PROMETHEUS_URL": url,
        "ADVISOR_BEARER_TOKEN_FILE": str(token),
        "ADVISOR_HEADERS": "X-Scope-OrgID=team1",
        "ADVISOR_QUERY_MODE": "range",
        "ADVISOR_TIMEOUT_S": "7",
    }
    args = build_parser().parse_args(
        ["report", "--since", "1h", "--header", "X-Extra=1", "--http-compression"]
    )
    api = build_api(args, env)
    assert (api.url, api.timeout_s) == (url, 7.0)
    api.fetch("x", 0.0, 1.0)
    headers = state.requests[-1][2]
    assert headers["Authorization"] == "Bearer s3cret"
    assert (headers["X-Scope-OrgID"], headers["X-Extra"]) == ("team1", "1")
    assert headers["Accept-Encoding"] == "gzip"
    # A whole run: the query mode comes from ADVISOR_QUERY_MODE, a flag wins over a variable.
    state.requests.clear()
    argv = ["--log-level", "WARNING", "report", "--since", "1h", "--no-predict"]
    main([*argv, "--timeout", "5", "--header", "X-Scope-OrgID=team2"], env=env)
    assert state.requests, capsys.readouterr().err
    # First how far back --since may reach (the receiver's retention), then the query.
    assert state.requests[0][0] == "/api/v1/status/runtimeinfo"
    path, _, headers = next(r for r in state.requests if r[0] != "/api/v1/status/runtimeinfo")
    assert path == "/api/v1/query_range"
    assert headers["Authorization"] == "Bearer s3cret" and headers["X-Scope-OrgID"] == "team2"


@pytest.mark.parametrize(
    ("argv", "env", "expect"),
    [
        (
            [],
            {},
            "no Prometheus URL: pass --prometheus-url or set ADVISOR_PROMETHEUS_URL",
        ),
        (
            ["--prometheus-url", "localhost:9090"],
            {},
            "--prometheus-url='localhost:9090': expected an http:// or https:// URL with a host; "
            "pass the Prometheus-compatible query root",
        ),
        (
            [],
            {"ADVISOR_BEARER_TOKEN": "t", "ADVISOR_BASIC_AUTH_USER": "u"},
            "ADVISOR_BEARER_TOKEN and ADVISOR_BASIC_AUTH_USER are both set",
        ),
        (
            [],
            {"ADVISOR_BASIC_AUTH_PASSWORD": "pw"},
            "ADVISOR_BASIC_AUTH_PASSWORD is set without ADVISOR_BASIC_AUTH_USER",
        ),
        (
            ["--bearer-token-file", "/nonexistent/token"],
            {},
            "ADVISOR_BEARER_TOKEN_FILE=/nonexistent/token: cannot read the file",
        ),
        (
            ["--ca-file", "/nonexistent/ca.pem"],
            {},
            "ADVISOR_CA_FILE=/nonexistent/ca.pem: no such file",
        ),
        (
            [],
            {"ADVISOR_QUERY_MODE": "fast"},
            "ADVISOR_QUERY_MODE='fast': expected one of raw, range; use raw or range",
        ),
        (
            ["--timeout", "0"],
            {},
            "--timeout='0': expected a number greater than 0",
        ),
        (
            ["--header", "X-Scope-OrgID"],
            {},
            # Headers carry API keys: the item is named by its place, its text not shown.
            "--header=<hidden>: header number 1 has no '=' (the value is not shown)",
        ),
        (
            [],
            {"LOG_LEVEL": "loud"},
            "LOG_LEVEL='loud': expected one of debug, info, warning, error, critical",
        ),
    ],
)
def test_cli_settings_errors_exit_2_naming_the_setting(
    argv: list[str], env: dict[str, str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"ADVISOR_PROMETHEUS_URL": "http://127.0.0.1:1", **env}
    if "no Prometheus URL" in expect:
        del env["ADVISOR_PROMETHEUS_URL"]
    assert main(["report", "--since", "1h", *argv], env=env) == 2
    err = capsys.readouterr().err
    assert err.startswith("advisor: ") and expect in err, err
    assert "cannot reach" not in err  # stopped before any query


def test_predict_reads_no_query_settings(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "ADVISOR_QUERY_MODE": "fast",
        "ADVISOR_BEARER_TOKEN": "t",
        "ADVISOR_BASIC_AUTH_USER": "u",
    }
    assert main(["predict", "--model", "/nonexistent/model"], env=env) == 1
    assert "ADVISOR_" not in capsys.readouterr().err
