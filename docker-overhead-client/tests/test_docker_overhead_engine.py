"""Engine API client: DOCKER_HOST parsing, golden answers over a real unix socket, errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from base_monitoring_client import DeviceUnavailableError, InvalidValue, MonitoringClientError
from docker_overhead_client.engine import (
    EngineClient,
    container_from_api,
    parse_docker_host,
)
from docker_overhead_client.errors import (
    DockerOverheadError,
    EngineAPIError,
    EngineUnavailableError,
)
from wattpush_testing.docker import (
    PROM_ID,
    RAPL_ID,
    TRANSCODE_ID,
    FakeEngine,
    golden_inspect,
    golden_summaries,
)


@pytest.mark.parametrize(
    ("text", "path", "host", "port"),
    [
        ("unix:///var/run/docker.sock", "/var/run/docker.sock", None, None),
        ("/run/user/1000/docker.sock", "/run/user/1000/docker.sock", None, None),
        ("", "/var/run/docker.sock", None, None),
        ("tcp://10.0.0.5:2375", None, "10.0.0.5", 2375),
        ("tcp://dockerhost", None, "dockerhost", 2375),
    ],
)
def test_parse_docker_host_accepts_cli_forms(
    text: str, path: str | None, host: str | None, port: int | None
) -> None:
    dh = parse_docker_host(text)
    assert dh.socket_path == path
    if host is not None:
        assert (dh.host, dh.port) == (host, port)


@pytest.mark.parametrize("text", ["ssh://me@host", "npipe:////./pipe/docker_engine", "unix://rel"])
def test_parse_docker_host_rejects_unsupported_forms(text: str) -> None:
    with pytest.raises(InvalidValue):
        parse_docker_host(text)


def test_list_and_inspect_over_unix_socket(fake_engine: FakeEngine) -> None:
    client = EngineClient(parse_docker_host(fake_engine.docker_host), timeout_s=2)
    try:
        listed = client.list_running()
        assert [c["Id"] for c in listed] == [PROM_ID, RAPL_ID, TRANSCODE_ID]
        inspect = client.inspect(PROM_ID)
        assert inspect is not None and inspect["State"]["Pid"] == 4101
        assert client.inspect("0" * 64) is None  # 404: gone between list and inspect
    finally:
        client.close()
    # One keep-alive connection served every request.
    assert fake_engine.requests[0] == "/containers/json"
    assert len(fake_engine.requests) == 3


def test_reconnects_after_the_engine_restarts(fake_engine: FakeEngine, short_tmp: Path) -> None:
    client = EngineClient(parse_docker_host(fake_engine.docker_host), timeout_s=2)
    try:
        assert len(client.list_running()) == 3
        fake_engine.close()
        fake_engine.socket_path.unlink()
        with pytest.raises(EngineUnavailableError):
            client.list_running()
        second = FakeEngine(fake_engine.socket_path).start()
        try:
            assert client.list_running() == []
        finally:
            second.close()
    finally:
        client.close()


def test_missing_socket_names_docker_host_and_the_mount(tmp_path: Path) -> None:
    client = EngineClient(parse_docker_host(f"unix://{tmp_path}/docker.sock"), timeout_s=1)
    with pytest.raises(EngineUnavailableError) as info:
        client.list_running()
    text = str(info.value)
    assert f"DOCKER_HOST=unix://{tmp_path}/docker.sock" in text
    assert "does not exist" in text
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in text
    assert isinstance(info.value, DeviceUnavailableError)
    assert isinstance(info.value, DockerOverheadError)
    assert info.value.exit_code == 3


def test_socket_without_listener_says_refused(short_tmp: Path) -> None:
    path = short_tmp / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # bound, never listening: connect() is refused
    try:
        client = EngineClient(parse_docker_host(f"unix://{path}"), timeout_s=1)
        with pytest.raises(EngineUnavailableError, match="refused"):
            client.list_running()
    finally:
        s.close()


def test_error_status_is_reported_with_the_engine_message(fake_engine: FakeEngine) -> None:
    client = EngineClient(parse_docker_host(fake_engine.docker_host), timeout_s=2)
    try:
        with pytest.raises(EngineAPIError, match="404") as info:
            client.get_json("/nope")
        assert info.value.status == 404
        assert isinstance(info.value, MonitoringClientError)
    finally:
        client.close()


def test_container_from_golden_answers() -> None:
    summaries = {s["Id"]: s for s in golden_summaries()}
    prom = container_from_api(summaries[PROM_ID], golden_inspect(PROM_ID))
    assert (prom.name, prom.image, prom.service, prom.pid) == (
        "wattpush-prometheus-1",
        "prom/prometheus:v2.42.0",
        "prometheus",
        4101,
    )
    assert prom.own_network
    rapl = container_from_api(summaries[RAPL_ID], golden_inspect(RAPL_ID))
    assert rapl.service == "cpu-rapl-client"
    assert not rapl.own_network  # network_mode: host shows the host's interfaces
    ffmpeg = container_from_api(summaries[TRANSCODE_ID], golden_inspect(TRANSCODE_ID))
    assert (ffmpeg.name, ffmpeg.service) == ("transcode-1", "")


def test_container_image_prefers_the_requested_reference() -> None:
    summary = golden_summaries()[0]
    summary["Image"] = "sha256:3ad6ddd6a5f3"  # what the list shows after the tag moved on
    info = container_from_api(summary, golden_inspect(PROM_ID))
    assert info.image == "prom/prometheus:v2.42.0"


def test_malformed_answer_is_an_api_error() -> None:
    with pytest.raises(EngineAPIError, match="unexpected container description"):
        container_from_api({}, {"State": {"Pid": "not a number"}, "Id": "x", "Name": "/x"})
