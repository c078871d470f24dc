"""Windows and progress pushed through the base pipeline into a real Prometheus."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner.cli import main
from wattpush_testing import PrometheusProcess

pytestmark = pytest.mark.integration

INTERVAL_S = 0.1


def stored(prom: PrometheusProcess, selector: str, start_ms: int, end_ms: int) -> list[Any]:
    return prom.raw_samples(selector, (start_ms - 60_000) / 1000, (end_ms + 60_000) / 1000)


def test_windows_are_visible_with_exact_start_end_and_a_stale_marker(tmp_path: Path) -> None:
    with PrometheusProcess(tmp_path / "prom") as prom:
        env = {
            "REMOTE_WRITE_URL": prom.write_url,
            "SAMPLE_INTERVAL_S": str(INTERVAL_S),
            "PUSH_INTERVAL_S": "0.5",
            "INSTANCE": "test-host",
        }
        code = main(
            ["multi", "--count", "2", "--ladder", "160x90@200k,96x54@100k", "--preset",
             "ultrafast", "--fps", "25", "--duration", "1.5", "--stabilization", "0.3",
             "--cooldown", "0.3", "--with-baseline", "--baseline-duration", "0.8",
             "--name", "prom", "--run-id", "prom-run", "--output-dir", str(tmp_path)],
            env=env,
        )  # fmt: skip
        assert code == 0
        manifest = json.loads((tmp_path / "prom-run.json").read_text())
        assert manifest["status"] == "completed"
        for window in manifest["windows"]:
            start, end = window["start_ms"], window["end_ms"]
            selector = (
                f'ffmpeg_scenario_info{{run_id="prom-run",scenario="prom",'
                f'phase="{window["phase"]}",job="ffmpeg-runner",instance="test-host"}}'
            )
            (series,) = stored(prom, selector, start, end)
            labels = series["metric"]
            assert labels["ladder"] == "160x90@200k+96x54@100k" and labels["bitrate"] == "200k"
            assert (labels["streams"], labels["repeat"], labels["preset"]) == (
                "2",
                "0",
                "ultrafast",
            )
            stamps = [round(float(t) * 1000) for t, _ in series["values"]]
            assert all(v == "1" for _, v in series["values"])
            # Within one sample interval is the contract; the client makes them exact.
            assert abs(stamps[0] - start) <= INTERVAL_S * 1000
            assert abs(stamps[-1] - end) <= INTERVAL_S * 1000
            assert (stamps[0], stamps[-1]) == (start, end)
            gaps = [b - a for a, b in itertools.pairwise(stamps)]
            assert max(gaps) <= 2.5 * INTERVAL_S * 1000  # one sample per tick all along
            # The stale marker: gone right after the end, not for the 5-minute lookback.
            assert prom.query(selector, at=(end - 20) / 1000)
            assert prom.query(selector, at=(end + 50) / 1000) == []
        transcode = manifest["windows"][1]
        for stream in ("0", "1"):
            for rung in ("90p", "54p"):
                selector = (
                    f'ffmpeg_frames_total{{run_id="prom-run",scenario="prom",repeat="0",'
                    f'stream="{stream}",output="{rung}"}}'
                )
                (series,) = stored(prom, selector, transcode["start_ms"], transcode["end_ms"])
                values = [float(v) for _, v in series["values"]]
                assert values == sorted(values)  # a counter
                assert values[-1] >= transcode["frames"][f"{stream}:{rung}"] > 0
                last_ms = round(float(series["values"][-1][0]) * 1000)
                assert prom.query(selector, at=(last_ms + 50) / 1000) == []
            for metric in ("ffmpeg_fps", "ffmpeg_speed_ratio"):
                assert prom.query(
                    f'{metric}{{run_id="prom-run",stream="{stream}"}}[1h]',
                    at=transcode["end_ms"] / 1000 + 30,
                )
        # Each window's accounting: one sample per scope at exactly the window's end, found
        # by its labels alone (as --since discovery finds it, without the manifest).
        for window in manifest["windows"]:
            accounting = window["accounting"]
            scopes = {"transcode": "transcode_cpu_s", "host_busy": "host_busy_cpu_s",
                      "host_total": "host_total_cpu_s", "cgroup": "cgroup_cpu_s"}  # fmt: skip
            for scope, key in scopes.items():
                selector = (
                    f'ffmpeg_window_cpu_seconds{{run_id="prom-run",scenario="prom",'
                    f'phase="{window["phase"]}",repeat="0",scope="{scope}",'
                    f'job="ffmpeg-runner",instance="test-host"}}'
                )
                found = stored(prom, selector, window["start_ms"], window["end_ms"])
                if accounting[key] is None:  # no cgroup figure outside a container
                    assert found == []
                    continue
                ((ts, value),) = found[0]["values"]
                assert round(float(ts) * 1000) == window["end_ms"]
                assert float(value) == pytest.approx(accounting[key])
        assert manifest["windows"][0]["accounting"]["transcode_cpu_s"] == 0  # the baseline
        assert manifest["windows"][1]["accounting"]["processes"] == 2
