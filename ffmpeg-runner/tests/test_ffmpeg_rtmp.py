"""RTMP target: a private nginx-rtmp on a free loopback port records what the runner sends."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ffmpeg_runner.runner import Runner, RunOptions
from ffmpeg_runner.scenario import Scenario
from wattpush_testing import free_port, wait_until
from wattpush_testing.ffmpeg import HOST, probe_video

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record all;
            record_path {prefix}/rec;
            record_unique off;
        }}
    }}
}}
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def nginx_rtmp(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        pytest.skip("needs nginx and libnginx-mod-rtmp (apt-get install nginx libnginx-mod-rtmp)")
    prefix = tmp_path / "nginx"
    (prefix / "rec").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(module=RTMP_MODULE, prefix=prefix, port=port))
    log = (prefix / "stdout.log").open("wb")
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    try:
        if not wait_until(lambda: _listening(port) or proc.poll() is not None, 15):
            pytest.fail("nginx did not listen: " + (prefix / "error.log").read_text()[-2000:])
        if proc.poll() is not None:
            pytest.fail("nginx exited: " + (prefix / "error.log").read_text()[-2000:])
        yield f"rtmp://127.0.0.1:{port}/live", prefix / "rec"
    finally:
        proc.terminate()  # by PID: only the nginx this fixture started
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_ladder_is_published_to_rtmp_in_real_time(
    nginx_rtmp: tuple[str, Path],
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
) -> None:
    url, recordings = nginx_rtmp
    scenario = make_scenario(
        output=url, ladder=["160x90@200k", "96x54@100k"], duration=2, stabilization=0.5,
        extra_args=["-g", "25"],
    )  # fmt: skip
    assert scenario.realtime  # live targets default to -re
    options = run_options()
    Runner([scenario], options, host=HOST).run()
    (window,) = json.loads(options.manifest_path.read_text())["windows"]
    assert window["status"] == "ok", window["error"]
    assert window["output"] == url
    assert abs(window["frames"]["0:90p"] - 25 * window["duration_s"]) <= 10
    for rung, size in (("90p", (160, 90)), ("54p", (96, 54))):
        recording = recordings / f"tiny-r0-s0-{rung}.flv"
        assert wait_until(lambda r=recording: r.exists() and r.stat().st_size > 0, 10)
        width, height, packets = probe_video(recording)
        assert (width, height) == size
        assert packets >= window["frames"][f"0:{rung}"] > 0
