"""Fakes for docker-overhead-client tests: an Engine API on a real unix socket, host trees.

``FakeEngine`` serves golden Engine API answers (golden/docker) from a real HTTP server bound to
a unix socket; tests change its state (start, stop, restart, rename) like a user with the
docker CLI would. ``FakeHost`` writes procfs and cgroup v1/v2 trees in tmp_path that the
client reads through HOST_PROC / HOST_CGROUP.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import shutil
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

from wattpush_testing import process_env

GOLDEN = Path(__file__).parent / "golden" / "docker"
PROM_ID = "4f2a9c1e7b3d5a8c0e6f1b2d4a7c9e3f5b8d0a2c4e6f8b1d3a5c7e9f0b2d4a6c"
RAPL_ID = "9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d"
TRANSCODE_ID = "c7e9a1b3d5f7c9e1a3b5d7f9c1e3a5b7d9f1c3e5a7b9d1f3c5e7a9b1d3f5c7e9"
GOLDEN_PIDS = {PROM_ID: 4101, RAPL_ID: 4202, TRANSCODE_ID: 4303}


def golden_summaries() -> list[dict[str, Any]]:
    return list(json.loads((GOLDEN / "containers.json").read_text()))


def golden_inspect(container_id: str) -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "inspect" / f"{container_id}.json").read_text()))


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    engine: FakeEngine


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like dockerd
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.engine.connections.add(self.request)

    def do_GET(self) -> None:
        engine = self.server.engine
        engine.requests.append(self.path)
        if engine.delay_s:
            time.sleep(engine.delay_s)
        status, body = engine.answer(self.path)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", "1.43")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # unix peers have no address
        pass


class FakeEngine:
    """Docker Engine API subset on a unix socket; state starts as the golden answers."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.requests: list[str] = []
        self.connections: set[socket.socket] = set()
        self.delay_s = 0.0
        self.containers: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    def load_golden(self) -> FakeEngine:
        for summary in golden_summaries():
            self.containers[summary["Id"]] = (summary, golden_inspect(summary["Id"]))
        return self

    # -- what a user does with the docker CLI ---------------------------------------------------
    def stop(self, cid: str) -> None:
        del self.containers[cid]

    def rename(self, cid: str, new_name: str) -> None:
        summary, inspect = self.containers[cid]
        summary["Names"] = ["/" + new_name]
        inspect["Name"] = "/" + new_name

    def restart(self, cid: str, new_pid: int) -> None:
        """`docker restart`: same id, new init pid."""
        self.containers[cid][1]["State"]["Pid"] = new_pid

    def recreate(self, old_id: str, new_id: str, new_pid: int) -> None:
        """`docker compose up` after a change: same name, new id."""
        summary, inspect = copy.deepcopy(self.containers.pop(old_id))
        summary["Id"] = inspect["Id"] = new_id
        inspect["State"]["Pid"] = new_pid
        self.containers[new_id] = (summary, inspect)

    def run(self, cid: str, name: str, image: str, pid: int, service: str = "") -> None:
        summary, inspect = copy.deepcopy(self.containers.get(TRANSCODE_ID) or self._template())
        labels = {"com.docker.compose.service": service} if service else {}
        summary.update(Id=cid, Names=["/" + name], Image=image, Labels=labels)
        inspect.update(Id=cid, Name="/" + name)
        inspect["Config"].update(Image=image, Labels=labels)
        inspect["State"]["Pid"] = pid
        self.containers[cid] = (summary, inspect)

    def _template(self) -> tuple[dict[str, Any], dict[str, Any]]:
        summary = next(s for s in golden_summaries() if s["Id"] == TRANSCODE_ID)
        return summary, golden_inspect(TRANSCODE_ID)

    # -- the API -----------------------------------------------------------------------------
    def answer(self, path: str) -> tuple[int, Any]:
        path = path.split("?", 1)[0]
        if path == "/containers/json":
            return 200, [copy.deepcopy(s) for s, _ in self.containers.values()]
        if path.startswith("/containers/") and path.endswith("/json"):
            cid = path[len("/containers/") : -len("/json")]
            if cid in self.containers:
                return 200, copy.deepcopy(self.containers[cid][1])
            return 404, {"message": f"No such container: {cid}"}
        return 404, {"message": "page not found"}

    def start(self) -> FakeEngine:
        server = _Server(str(self.socket_path), _Handler)
        server.engine = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-engine",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self.connections):  # like a dying dockerd: kept-alive peers see EOF
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.connections.clear()
        if self._thread is not None:
            self._thread.join(5)


class FakeHost:
    """procfs + cgroup trees for HOST_PROC / HOST_CGROUP (cgroup v1 or v2, cgroupfs driver)."""

    def __init__(self, root: Path, cgroup_version: int) -> None:
        self.proc = root / "proc"
        self.cgroup = root / "cgroup"
        self.version = cgroup_version
        self.proc.mkdir(parents=True)
        self.cgroup.mkdir(parents=True)
        if cgroup_version == 2:
            (self.cgroup / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
            (self.cgroup / "cpu.stat").write_text("usage_usec 1\n")
        else:
            for d in ("cpu,cpuacct", "memory", "pids"):
                (self.cgroup / d).mkdir()
            (self.cgroup / "cpu,cpuacct" / "cpuacct.usage").write_text("1\n")
            (self.cgroup / "cpuacct").symlink_to("cpu,cpuacct")
        self.set_host_cpu(user=1000, system=500, idle=8000)

    def set_host_cpu(self, **ticks: int) -> None:
        modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
        values = [ticks.get(m, 10) for m in modes]
        line = "cpu  " + " ".join(str(v) for v in values) + " 0 0\n"
        per_cpu = "cpu0 " + " ".join(str(v // 2) for v in values) + " 0 0\n"
        (self.proc / "stat").write_text(
            line + per_cpu + "intr 12345 0 0\nctxt 987654\nbtime 1716200000\nprocesses 4321\n"
        )

    # -- containers ------------------------------------------------------------------------------
    def _cg_dirs(self, cid: str) -> tuple[Path, Path]:
        if self.version == 2:
            d = self.cgroup / "system.slice" / f"docker-{cid}.scope"
            return d, d
        return self.cgroup / "cpu,cpuacct" / "docker" / cid, self.cgroup / "memory" / "docker" / cid

    def add_container(
        self,
        cid: str,
        pid: int,
        *,
        cpu_ns: int = 0,
        memory: int = 50_000_000,
        inactive: int = 10_000_000,
        net: dict[str, tuple[int, int]] | None = None,
        write_proc_cgroup: bool = True,
    ) -> None:
        cpu_dir, mem_dir = self._cg_dirs(cid)
        cpu_dir.mkdir(parents=True, exist_ok=True)
        mem_dir.mkdir(parents=True, exist_ok=True)
        self.set_cpu(cid, cpu_ns)
        self.set_memory(cid, memory, inactive)
        pdir = self.proc / str(pid)
        (pdir / "net").mkdir(parents=True, exist_ok=True)
        self.set_net(pid, net if net is not None else {"eth0": (1000, 500)})
        (pdir / "comm").write_text("sleep\n")
        (pdir / "cmdline").write_bytes(b"sleep\0infinity\0")
        self.write_stat(pid, "sleep", cpu_ticks=1, start=500, rss_pages=100)
        if write_proc_cgroup:
            if self.version == 2:
                text = f"0::/system.slice/docker-{cid}.scope\n"
            else:
                text = (
                    "".join(
                        f"{n}:{c}:/docker/{cid}\n"
                        for n, c in enumerate(["cpu,cpuacct", "memory", "pids", "name=systemd"])
                    )
                    + f"0::/docker/{cid}\n"
                )
            (pdir / "cgroup").write_text(text)

    def set_cpu(self, cid: str, cpu_ns: int) -> None:
        cpu_dir, _ = self._cg_dirs(cid)
        if self.version == 2:
            usec = cpu_ns // 1000
            (cpu_dir / "cpu.stat").write_text(
                f"usage_usec {usec}\nuser_usec {usec * 3 // 4}\nsystem_usec {usec // 4}\n"
                "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
            )
        else:
            (cpu_dir / "cpuacct.usage").write_text(f"{cpu_ns}\n")

    def set_memory(self, cid: str, usage: int, inactive: int) -> None:
        _, mem_dir = self._cg_dirs(cid)
        if self.version == 2:
            (mem_dir / "memory.current").write_text(f"{usage}\n")
            (mem_dir / "memory.stat").write_text(
                f"anon {usage - inactive - 4096}\nfile {inactive + 4096}\nkernel 4096\n"
                f"active_anon 0\ninactive_anon {usage - inactive - 4096}\n"
                f"active_file 4096\ninactive_file {inactive}\nunevictable 0\n"
            )
        else:
            (mem_dir / "memory.usage_in_bytes").write_text(f"{usage}\n")
            (mem_dir / "memory.stat").write_text(
                f"cache {inactive}\nrss {usage - inactive}\ninactive_file {inactive // 2}\n"
                f"active_file 0\ntotal_cache {inactive}\ntotal_rss {usage - inactive}\n"
                f"total_inactive_anon 0\ntotal_active_anon {usage - inactive}\n"
                f"total_inactive_file {inactive}\ntotal_active_file 0\n"
            )

    def set_net(self, pid: int, ifaces: dict[str, tuple[int, int]]) -> None:
        lines = [
            "Inter-|   Receive                                                |  Transmit",
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
            "errs drop fifo colls carrier compressed",
            "    lo:    4242      42    0    0    0     0          0         0     4242      42"
            "    0    0    0     0       0          0",
        ]
        for name, (rx, tx) in ifaces.items():
            lines.append(
                f"{name:>6}: {rx:>8} {rx // 1000:>7}    0    0    0     0          0         0"
                f" {tx:>8} {tx // 1000:>7}    0    0    0     0       0          0"
            )
        (self.proc / str(pid) / "net" / "dev").write_text("\n".join(lines) + "\n")

    def remove_container(self, cid: str, pid: int) -> None:
        for d in self._cg_dirs(cid):
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(self.proc / str(pid), ignore_errors=True)

    # -- processes -------------------------------------------------------------------------------
    def write_stat(
        self, pid: int, comm: str, *, cpu_ticks: int, start: int, rss_pages: int
    ) -> None:
        utime, stime = cpu_ticks - cpu_ticks // 3, cpu_ticks // 3
        fields = ["S", "1", str(pid), str(pid), "0", "-1", "4194560", "1000", "0", "0", "0"]
        fields += [str(utime), str(stime), "7", "3", "20", "0", "12", "0", str(start)]
        fields += ["1300000000", str(rss_pages), "18446744073709551615"] + ["0"] * 28
        (self.proc / str(pid)).mkdir(parents=True, exist_ok=True)
        (self.proc / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")

    def add_process(
        self,
        pid: int,
        comm: str,
        argv: list[str],
        *,
        cpu_ticks: int = 100,
        start: int = 1000,
        rss_pages: int = 1000,
    ) -> None:
        pdir = self.proc / str(pid)
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / "comm").write_text(comm[:15] + "\n")
        (pdir / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        self.write_stat(pid, comm[:15], cpu_ticks=cpu_ticks, start=start, rss_pages=rss_pages)

    def remove_process(self, pid: int) -> None:
        shutil.rmtree(self.proc / str(pid), ignore_errors=True)

    def add_golden_containers(self) -> None:
        for cid, pid in GOLDEN_PIDS.items():
            self.add_container(cid, pid, cpu_ns=5_000_000_000)


def client_env(**overrides: str) -> dict[str, str]:
    """Environment for running the console script as a subprocess from this checkout."""
    env = process_env("docker-overhead-client", drop_prefixes=("DOCKER_", "HOST_"))
    env.update(overrides)
    return env
