"""docker-compose.yml, the privileged overlay and .env, checked on the merged configuration that
`docker-compose config` (1.29, no Docker engine needed) prints."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CLIENTS = ("cpu-rapl-client", "gpu-nvml-client", "docker-overhead-client")
PYTHON_SERVICES = (*CLIENTS, "ffmpeg-runner", "advisor")
CLIENT_PREFIX = {
    "cpu-rapl-client": "CPU_RAPL",
    "gpu-nvml-client": "GPU_NVML",
    "docker-overhead-client": "DOCKER_OVERHEAD",
    "ffmpeg-runner": "FFMPEG_RUNNER",
}
# Set by docker-compose_helper.sh from the host, not by the user in .env.
HELPER_DERIVED = {"CPU_RAPL_SECURITY_OPT"}


def env_file() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def compose_config(
    tool: Callable[[str], str], *files: str, **env: str
) -> tuple[int, dict[str, Any], str]:
    binary = tool("docker-compose")
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in env_file() and k not in HELPER_DERIVED and not k.startswith("COMPOSE_")
    }
    args = [binary]
    for f in files or ("docker-compose.yml",):
        args += ["-f", f]
    proc = subprocess.run(
        [*args, "config"],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    config = yaml.safe_load(proc.stdout) if proc.returncode == 0 else {}
    return proc.returncode, config, proc.stderr


@pytest.fixture
def base(tool: Callable[[str], str]) -> dict[str, Any]:
    rc, config, err = compose_config(tool)
    assert rc == 0, err
    return config


def volumes(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """target -> (source, mode) from the short syntax that 1.29's config prints."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *rest = entry.split(":")
        out[target] = (source, rest[0] if rest else "rw")
    return out


def apparmor(service: dict[str, Any]) -> list[str]:
    return [o for o in service.get("security_opt", []) if o.startswith("apparmor")]


# ------------------------------------------------------------------ privileged overlay


def test_default_runs_cpu_rapl_confined_by_the_apparmor_profile(base: dict[str, Any]) -> None:
    svc = base["services"]["cpu-rapl-client"]
    assert apparmor(svc) == ["apparmor=wattpush-cpu-rapl"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert not svc.get("privileged", False)
    assert svc["cap_drop"] == ["ALL"]
    assert svc["read_only"] is True
    assert "user" not in svc  # the image's non-root user
    assert svc["group_add"] == [env_file()["RAPL_GID"]]


def test_privileged_overlay_replaces_the_apparmor_option(tool: Callable[[str], str]) -> None:
    rc, config, err = compose_config(
        tool,
        "docker-compose.yml",
        "docker-compose.privileged.yml",
        CPU_RAPL_SECURITY_OPT="apparmor=unconfined",
    )
    assert rc == 0, err
    svc = config["services"]["cpu-rapl-client"]
    assert svc["privileged"] is True
    assert apparmor(svc) == ["apparmor=unconfined"]
    assert svc["user"] == "0:0"
    # Only cpu-rapl-client changes.
    assert not any(
        s.get("privileged") for name, s in config["services"].items() if name != "cpu-rapl-client"
    )


def test_privileged_overlay_without_the_variable_refuses(tool: Callable[[str], str]) -> None:
    rc, _, err = compose_config(tool, "docker-compose.yml", "docker-compose.privileged.yml")
    assert rc != 0
    assert "CPU_RAPL_SECURITY_OPT=apparmor=unconfined" in err


def test_a_plain_override_would_merge_not_replace(
    tool: Callable[[str], str], tmp_path: Path
) -> None:
    """Why the overlay works through a variable: compose keeps both apparmor entries."""
    naive = tmp_path / "naive.yml"
    naive.write_text(
        'version: "3.8"\nservices:\n  cpu-rapl-client:\n    privileged: true\n'
        '    security_opt: ["apparmor=unconfined"]\n'
    )
    rc, config, err = compose_config(tool, "docker-compose.yml", str(naive))
    assert rc == 0, err
    entries = apparmor(config["services"]["cpu-rapl-client"])
    assert sorted(entries) == ["apparmor=unconfined", "apparmor=wattpush-cpu-rapl"]
    # Docker applies the last one: 1.29 sorts the union, so the profile would win.
    assert entries[-1] == "apparmor=wattpush-cpu-rapl"


# ------------------------------------------------------------------ services


def test_every_service_is_defined(base: dict[str, Any]) -> None:
    assert set(base["services"]) == {
        "base-monitoring-client",
        "prometheus",
        "grafana",
        *PYTHON_SERVICES,
        "nginx-rtmp",
        "alertmanager",
    }


def test_profiles(base: dict[str, Any]) -> None:
    profiles = {name: svc.get("profiles", []) for name, svc in base["services"].items()}
    assert profiles == {
        "base-monitoring-client": ["build"],
        "prometheus": [],
        "grafana": [],
        "cpu-rapl-client": [],
        "docker-overhead-client": [],
        "gpu-nvml-client": ["nvidia"],
        "ffmpeg-runner": ["batch"],
        "advisor": ["report"],
        "nginx-rtmp": ["rtmp"],
        "alertmanager": ["alerts"],
    }


def test_python_services_build_from_their_dockerfile_with_base_image(
    base: dict[str, Any],
) -> None:
    for name in PYTHON_SERVICES:
        build = base["services"][name]["build"]
        assert Path(build["context"]) == REPO, name
        assert build["dockerfile"] == f"{name}/Dockerfile", name
        assert build["args"] == {"BASE_IMAGE": "wattpush/base-monitoring-client:latest"}, name
        assert base["services"][name]["image"] == f"wattpush/{name}:latest"
    root = base["services"]["base-monitoring-client"]["build"]
    assert root["dockerfile"] == "base-monitoring-client/Dockerfile"
    assert root["args"] == {"BASE_IMAGE": env_file()["PYTHON_BASE_IMAGE"]}
    assert base["services"]["base-monitoring-client"]["image"] == env_file()["WATTPUSH_BASE_IMAGE"]


def test_referenced_dockerfiles_start_with_the_base_image_arg(base: dict[str, Any]) -> None:
    missing = []
    for name, svc in base["services"].items():
        if "build" not in svc:
            continue
        dockerfile = REPO / svc["build"]["dockerfile"]
        if not dockerfile.exists():
            missing.append(str(dockerfile.relative_to(REPO)))
            continue
        text = dockerfile.read_text()
        assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M), name
        assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M), name
    assert not missing, f"Dockerfiles not written yet: {missing}"


def test_clients_wait_for_a_healthy_prometheus_and_restart(base: dict[str, Any]) -> None:
    for name in (*CLIENTS, "grafana", "ffmpeg-runner", "advisor"):
        svc = base["services"][name]
        assert svc["depends_on"] == {"prometheus": {"condition": "service_healthy"}}, name
    for name in (*CLIENTS, "prometheus", "grafana", "nginx-rtmp", "alertmanager"):
        assert base["services"][name]["restart"] == "unless-stopped", name
    for name in ("ffmpeg-runner", "advisor"):
        assert base["services"][name]["restart"] == "no"


def test_per_client_intervals_and_spool_come_from_env(tool: Callable[[str], str]) -> None:
    overrides = {}
    for i, prefix in enumerate(CLIENT_PREFIX.values()):
        overrides[f"{prefix}_SAMPLE_INTERVAL_S"] = f"0.{i + 2}"
        overrides[f"{prefix}_PUSH_INTERVAL_S"] = f"{i + 5}"
        overrides[f"{prefix}_SPOOL_MAX_BYTES"] = f"{i + 1}MiB"
    rc, config, err = compose_config(tool, **overrides, WATTPUSH_INSTANCE="host-7")
    assert rc == 0, err
    for i, name in enumerate(CLIENT_PREFIX):
        env = config["services"][name]["environment"]
        assert env["SAMPLE_INTERVAL_S"] == f"0.{i + 2}", name
        assert env["PUSH_INTERVAL_S"] == f"{i + 5}", name
        assert env["SPOOL_MAX_BYTES"] == f"{i + 1}MiB", name
        assert env["REMOTE_WRITE_URL"] == "http://prometheus:9090/api/v1/write", name
        assert env["INSTANCE"] == "host-7", name


def test_default_intervals_are_10_hz_and_4_s(base: dict[str, Any]) -> None:
    for name in CLIENT_PREFIX:
        env = base["services"][name]["environment"]
        assert (env["SAMPLE_INTERVAL_S"], env["PUSH_INTERVAL_S"]) == ("0.1", "4"), name
        # Spool on the named volume, at the base image's SPOOL_DIR (owned by uid 10001).
        if name in CLIENTS:
            assert "SPOOL_DIR" not in env, name
            assert volumes(base["services"][name])["/var/lib/wattpush/spool"][0].endswith(
                "-spool"
            ), name


def test_cpu_rapl_reads_bind_mounted_powercap_read_only(base: dict[str, Any]) -> None:
    svc = base["services"]["cpu-rapl-client"]
    vols = volumes(svc)
    # Outside /sys (docker masks the original) at the path the AppArmor profile allows.
    assert vols["/host/powercap"] == ("/sys/devices/virtual/powercap", "ro")
    assert svc["environment"]["RAPL_POWERCAP_DIR"] == "/host/powercap"
    assert "/host/powercap/{,**} r," in (REPO / "AppArmor/wattpush-cpu-rapl").read_text()
    assert vols["/var/lib/wattpush/spool"][0] == "cpu-rapl-spool"


def test_docker_overhead_mounts_socket_proc_and_cgroup_read_only(base: dict[str, Any]) -> None:
    svc = base["services"]["docker-overhead-client"]
    vols = volumes(svc)
    assert vols["/var/run/docker.sock"] == ("/var/run/docker.sock", "ro")
    assert vols["/host/proc"] == ("/proc", "ro")
    assert vols["/host/cgroup"] == ("/sys/fs/cgroup", "ro")
    env = svc["environment"]
    assert (env["HOST_PROC"], env["HOST_CGROUP"]) == ("/host/proc", "/host/cgroup")
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert svc["group_add"]


def test_gpu_client_requests_nvidia_devices(base: dict[str, Any]) -> None:
    svc = base["services"]["gpu-nvml-client"]
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    assert device["count"] == "all"


def test_prometheus_service(base: dict[str, Any]) -> None:
    svc = base["services"]["prometheus"]
    assert svc["build"]["dockerfile"] == "prometheus/Dockerfile"
    assert svc["build"]["args"] == {"BASE_IMAGE": "debian:bookworm-slim"}
    assert svc["healthcheck"]["test"] == ["CMD", "/etc/wattpush/prometheus/healthcheck.sh"]
    vols = volumes(svc)
    assert vols["/prometheus"][0] == "prometheus-data"
    assert vols["/etc/prometheus/rules"] == (str(REPO / "prometheus/rules"), "ro")
    assert (
        svc["environment"]["PROMETHEUS_RETENTION_TIME"] == env_file()["PROMETHEUS_RETENTION_TIME"]
    )
    port = svc["ports"][0]
    # 1.29 prints the short syntax, v2 the long one.
    assert (
        port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}:{port['target']}"
    ) in {"127.0.0.1:9090:9090/tcp", "127.0.0.1:9090:9090"}
    assert "prometheus-data" in base["volumes"]


def test_grafana_service(base: dict[str, Any]) -> None:
    svc = base["services"]["grafana"]
    assert svc["image"] == env_file()["GRAFANA_IMAGE"]
    vols = volumes(svc)
    assert vols["/etc/grafana/provisioning"] == (str(REPO / "grafana/provisioning"), "ro")
    assert vols["/etc/wattpush/grafana/dashboards"] == (str(REPO / "grafana/dashboards"), "ro")
    assert svc["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == (
        "/run/secrets/grafana_admin_password"
    )
    assert base["secrets"]["grafana_admin_password"]["file"] == str(REPO / "grafana/admin-password")
    assert "healthcheck" in svc
    home = svc["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "grafana/dashboards" / Path(home).name).exists()


def test_alertmanager_config_is_valid(tool: Callable[[str], str]) -> None:
    text = (REPO / "prometheus/alertmanager.yml").read_text()
    config = yaml.safe_load(text)
    assert config["route"]["receiver"] in {r["name"] for r in config["receivers"]}
    amtool = subprocess.run(["which", "amtool"], capture_output=True, check=False)
    if amtool.returncode == 0:
        check = subprocess.run(
            ["amtool", "check-config", str(REPO / "prometheus/alertmanager.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


# ------------------------------------------------------------------ .env


def test_env_file_defines_every_compose_variable() -> None:
    names: set[str] = set()
    for name in ("docker-compose.yml", "docker-compose.privileged.yml"):
        names |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (REPO / name).read_text()))
    missing = names - set(env_file()) - HELPER_DERIVED
    assert not missing


def test_every_env_setting_is_used() -> None:
    used = (
        (REPO / "docker-compose.yml").read_text()
        + (REPO / "docker-compose_helper.sh").read_text()
        + (REPO / "prometheus/entrypoint.sh").read_text()
    )
    unused = [k for k in env_file() if k != "COMPOSE_PROJECT_NAME" and k not in used]
    assert not unused


def test_env_file_has_no_secrets_and_every_block_is_commented() -> None:
    text = (REPO / ".env").read_text()
    for key, value in env_file().items():
        if re.search(r"PASSWORD|TOKEN|SECRET", key):
            assert value == "", f"{key} holds a value in .env"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = lines[max(0, i - 12) : i]
            assert any(a.startswith("#") for a in above), f"uncommented setting {line}"
    assert env_file()["PRIVILEGED"] == "false"
    assert "CPU_RAPL_SECURITY_OPT" not in env_file()
