"""The console script as users run it: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wattpush_testing.docker import FakeHost, client_env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docker_overhead_client", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_socket_missing_exits_3_naming_docker_host_and_the_mount(fake_host: FakeHost) -> None:
    env = client_env(
        DOCKER_HOST="unix:///nonexistent/docker.sock",
        HOST_PROC=str(fake_host.proc),
        HOST_CGROUP=str(fake_host.cgroup),
        REMOTE_WRITE_URL="http://127.0.0.1:9/api/v1/write",
    )
    result = run_cli(env)
    assert result.returncode == 3, result.stderr
    assert "DOCKER_HOST=unix:///nonexistent/docker.sock" in result.stderr
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in result.stderr


def test_bad_settings_are_reported_together_with_exit_2() -> None:
    env = client_env(DOCKER_HOST="ssh://me@builder", CONTAINER_REFRESH_S="0")
    result = run_cli(env)
    assert result.returncode == 2
    # The URL's user part is hidden like any URL credentials in a message.
    assert "DOCKER_HOST='ssh://***@builder'" in result.stderr
    assert "CONTAINER_REFRESH_S='0'" in result.stderr


def test_flag_overrides_env_and_wrong_cgroup_root_exits_2(
    fake_host: FakeHost, tmp_path: Path, short_tmp: Path
) -> None:
    from wattpush_testing.docker import FakeEngine

    engine = FakeEngine(short_tmp / "docker.sock").load_golden().start()
    try:
        env = client_env(
            DOCKER_HOST="unix:///nonexistent/docker.sock",
            HOST_PROC=str(fake_host.proc),
            HOST_CGROUP=str(tmp_path / "empty"),
        )
        result = run_cli(env, "--docker-host", engine.docker_host)
    finally:
        engine.close()
    assert result.returncode == 2, result.stderr
    assert f"HOST_CGROUP={tmp_path / 'empty'}" in result.stderr


def test_help_lists_every_setting() -> None:
    result = run_cli(client_env(), "--help")
    assert result.returncode == 0
    for flag in (
        "--docker-host",
        "--host-proc",
        "--host-cgroup",
        "--container-refresh-s",
        "--docker-api-timeout-s",
        "--engine-processes",
    ):
        assert flag in result.stdout
