"""Scale-out end to end: e2e/multi_host.sh (3 hosts x every client x 2 receivers, one batch,
the advisor against VictoriaMetrics and against Prometheus) and its machine-readable verdict."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "e2e" / "multi_host.sh"
NEEDED = ("prometheus", "victoria-metrics", "ffmpeg", "curl", "jq")


@pytest.fixture(scope="module")
def multi_host(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; run e2e/install_system_deps.sh")
    work = tmp_path_factory.mktemp("multi_host")
    summary = work / "summary.json"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "E2E_WORKDIR": str(work / "run"),
        "E2E_SUMMARY": str(summary),
    }
    proc = subprocess.Popen(
        ["bash", str(SCRIPT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=360)
    except subprocess.TimeoutExpired:
        # The script's trap stops everything it started, by PID.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"multi_host.sh ran past 360 s; stderr tail:\n{err[-4000:]}")
    lines = [ln for ln in out.splitlines() if ln.startswith("MULTI_HOST_RESULT ")]
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr tail:\n{err[-6000:]}"
    assert lines, f"no MULTI_HOST_RESULT line; stdout:\n{out[-2000:]}"
    result: dict[str, object] = json.loads(summary.read_text())
    result["_line"] = json.loads(lines[-1].split(" ", 1)[1])
    return result


def test_multi_host_summary_line_matches_file(multi_host: dict[str, object]) -> None:
    line = multi_host["_line"]
    assert isinstance(line, dict)
    assert line["ok"] is True and multi_host["ok"] is True, multi_host["problems"]
    assert line["run_id"] == multi_host["run_id"]
    # 3 instances x (cpu, synthetic, gpu [, docker]) x 2 receivers, all stopped with exit 0.
    per_instance = 4 if multi_host["docker_client"] else 3
    assert multi_host["client_processes"] == 3 * per_instance * 2


def test_multi_host_rankings_identical_across_receivers(multi_host: dict[str, object]) -> None:
    prom = multi_host["ranking_prometheus"]
    vm = multi_host["ranking_victoriametrics"]
    assert prom == vm
    assert isinstance(prom, dict)
    assert list(prom.values()) and all(
        sorted(r) == ["x264-ultrafast", "x264-veryfast", "x265-ultrafast"] for r in prom.values()
    )


def test_multi_host_energies_agree(multi_host: dict[str, object]) -> None:
    windows = multi_host["windows"]
    assert isinstance(windows, list)
    # 3 scenarios x 2 repeats + 1 baseline, each with energy from both receivers.
    assert len(windows) == 7
    tol = float(multi_host["energy_tolerance_rel"])  # type: ignore[arg-type]
    for w in windows:
        assert w["prometheus_j"] > 0 and w["victoriametrics_j"] > 0
        assert abs(w["prometheus_j"] - w["victoriametrics_j"]) <= tol * max(
            w["prometheus_j"], w["victoriametrics_j"]
        ), w


def test_multi_host_advisor_keeps_hosts_apart(multi_host: dict[str, object]) -> None:
    scenarios = multi_host["scenarios"]
    assert isinstance(scenarios, list) and len(scenarios) == 3
    # host-2/3 push rapl (preferred) series; only host-1's estimate may be used.
    assert all("[estimated]" in s["power_source"] for s in scenarios)
    assert multi_host["advisor_without_instance"] == {
        "exit_code": 0,
        "took_host_1": True,
        "same_energy": True,
    }


def test_multi_host_tenant_headers_and_auth_sent(multi_host: dict[str, object]) -> None:
    auth = multi_host["auth"]
    assert isinstance(auth, dict)
    assert auth["mimir_bearer_and_orgid"] is True
    assert auth["thanos_basic_and_tenant"] is True
    assert auth["secrets_in_logs"] is False
    assert auth["exit_codes"] == [0, 0]
