"""Against a real, private Docker engine: a container burns CPU, Prometheus sees it rise.

The engine is started here (vfs storage, own data/exec root, socket and pidfile, no iptables,
no bridge) and stopped by PID, also when the test fails. The base image is made with
debootstrap (minbase) from the Debian mirror apt is configured with, cached as a tarball under
<repo>/.cache/docker-overhead-client/ (git-ignored), and loaded with `docker import`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wattpush_testing import PrometheusProcess, stop_process, wait_until
from wattpush_testing.docker import client_env

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "docker-overhead-client"
ROOTFS_TAR = CACHE / "bookworm-minbase.tar"
IMAGE = "wattpush-test/minbase:bookworm"
SUITE = "bookworm"


def apt_mirror() -> str | None:
    """The main Debian archive URI apt uses (deb822 .sources or one-line .list)."""
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in {".sources", ".list"})
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (
                        line.partition(":") for line in stanza.splitlines() if ":" in line
                    )
                    if not k.startswith("#")
                )
                if SUITE in fields.get("suites", "").split() and fields.get("uris"):
                    return fields["uris"].split()[0]
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if not parts or parts[0] != "deb":
                    continue
                rest = parts[1:]
                if rest and rest[0].startswith("["):  # deb [arch=amd64 signed-by=...] URI ...
                    while rest and not rest[0].endswith("]"):
                        rest = rest[1:]
                    rest = rest[1:]
                if len(rest) >= 2 and rest[1] == SUITE:
                    return rest[0]
    return None


def ensure_rootfs_tar() -> Path:
    """Build (once) and cache a minbase root filesystem tarball; skip when impossible."""
    if ROOTFS_TAR.is_file():
        return ROOTFS_TAR
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    mirror = apt_mirror()
    if mirror is None:
        pytest.skip(f"no Debian {SUITE} mirror found in /etc/apt/sources.list*")
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE))
    try:
        rootfs = work / "rootfs"
        result = subprocess.run(
            [debootstrap, "--variant=minbase", f"--cache-dir={debs}", SUITE, str(rootfs), mirror],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(
                f"debootstrap could not build a {SUITE} rootfs from {mirror} "
                f"(rc {result.returncode}): {(result.stdout + result.stderr)[-500:]}"
            )
        # Only the shell and coreutils are needed; docs and apt lists are dead weight in vfs.
        for sub in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / sub, ignore_errors=True)
        partial = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.replace(ROOTFS_TAR)  # atomic: a crash never leaves a half tarball cached
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ROOTFS_TAR


def engine_ping(socket_path: Path) -> bool:
    conn = http.client.HTTPConnection("localhost", timeout=2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2)
        sock.connect(str(socket_path))
        conn.sock = sock
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def stop_pid(pid: int, grace: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def private_dockerd() -> Iterator[tuple[Path, dict[str, str]]]:
    if os.geteuid() != 0:
        pytest.skip("starting a Docker engine needs root")
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None:
        pytest.skip("dockerd and the docker CLI are needed (apt-get install docker.io)")
    base = Path(tempfile.mkdtemp(prefix="dkd-", dir="/tmp"))  # short: socket path limit
    sock = base / "docker.sock"
    log = (base / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [
            dockerd,
            "--storage-driver", "vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--data-root", str(base / "data"),
            "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "dockerd.pid"),
            "-H", f"unix://{sock}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        if not wait_until(lambda: proc.poll() is not None or engine_ping(sock), timeout=60):
            pytest.fail("dockerd did not answer /_ping within 60 s: " + _tail(base))
        if proc.poll() is not None:
            pytest.skip("dockerd cannot run here: " + _tail(base))
        yield sock, env
    finally:
        # By PID only: the engine we started, then what it left behind.
        stop_pid(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        containerd_pid = base / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            stop_pid(int(containerd_pid.read_text().strip()), grace=5)
        subprocess.run(["umount", "-R", str(base / "exec")], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _tail(base: Path) -> str:
    try:
        return (base / "dockerd.log").read_text(errors="replace")[-1500:]
    except OSError:
        return ""


def _docker(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr[-1000:]}")
    return result.stdout.strip()


def _value(prom: PrometheusProcess, promql: str) -> float | None:
    result = prom.query(promql)
    return float(result[0]["value"][1]) if result else None


def test_real_engine_container_cpu_rises_in_prometheus(tmp_path: Path) -> None:
    tarball = ensure_rootfs_tar()
    with private_dockerd() as (sock, denv), PrometheusProcess(tmp_path / "prom") as prom:
        _docker(denv, "import", str(tarball), IMAGE, timeout=300)
        _docker(
            denv,
            "run", "-d", "--name", "burner", "--network", "none",
            "--label", "com.docker.compose.service=burner",
            IMAGE, "timeout", "300", "sh", "-c", "while :; do :; done",
        )  # fmt: skip
        env = client_env(
            REMOTE_WRITE_URL=prom.write_url,
            DOCKER_HOST=f"unix://{sock}",
            HOST_PROC="/proc",
            HOST_CGROUP="/sys/fs/cgroup",
            SAMPLE_INTERVAL_S="0.1",
            PUSH_INTERVAL_S="0.5",
            CONTAINER_REFRESH_S="0.5",
        )
        log = (tmp_path / "client.log").open("wb")
        client = subprocess.Popen(
            [sys.executable, "-m", "docker_overhead_client"], env=env, stdout=log, stderr=log
        )
        log.close()
        try:
            cpu = 'container_cpu_seconds_total{container="burner",service="burner"}'
            first = wait_until(lambda: _value(prom, cpu), timeout=30)
            assert first, "no container CPU in Prometheus: " + (tmp_path / "client.log").read_text()
            start = time.monotonic()
            second = wait_until(lambda: (_value(prom, cpu) or 0) > first + 0.5, timeout=30)
            assert second, f"container CPU did not rise from {first} in {time.monotonic() - start}s"
            image = prom.query(cpu)[0]["metric"]["image"]
            assert image == IMAGE
            for process in ("dockerd", "containerd", "containerd-shim-runc-v2"):
                q = f'docker_engine_cpu_seconds_total{{process="{process}"}}'
                assert _value(prom, q) is not None, process
            assert _value(prom, 'container_memory_bytes{container="burner"}')
            # Stopped container: its series end with a stale marker.
            _docker(denv, "rm", "-f", "burner")
            assert wait_until(lambda: _value(prom, cpu) is None, timeout=20)
        finally:
            rc = stop_process(client)
            with contextlib.suppress(Exception):
                _docker(denv, "rm", "-f", "burner", timeout=30)
        assert rc == 0, (tmp_path / "client.log").read_text()
