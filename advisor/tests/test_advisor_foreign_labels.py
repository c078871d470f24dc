"""Windows whose labels break the runner's contract: each says why, and keeps what it can.

Older tools wrote the ``ladder`` label as ``1280x720@30`` (frames per second where the bitrate
belongs). Such a window used to come back ``ok`` with no pixels, and the report said only that
nothing could be ranked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from advisor.present.notes import notes_text
from advisor.present.report import summary
from advisor.prom import Series
from advisor.windows import discover_windows
from base_monitoring_client import contract as series
from ffmpeg_runner.contract import FRAMES_METRIC, INFO_METRIC

from advisor import TranscodingRecommender

FPS = 25.0
CPU_W = 40.0
T0 = 1_700_000_000.0


def info(scenario: str, ladder: str, phase: str = "transcode") -> dict[str, str]:
    return {
        "__name__": INFO_METRIC,
        "run_id": "old",
        "scenario": scenario,
        "phase": phase,
        "encoder": "libx264",
        "preset": "fast",
        "ladder": ladder,
        "streams": "1",
        "bitrate": "",
        "repeat": "0",
        "fps": f"{FPS:g}",
        "instance": "h",
    }


def world(ladders: dict[str, str]) -> list[Series]:
    """One 10 s transcode window per scenario, back to back, at FPS frames per second, and a
    CPU energy counter drawing CPU_W throughout (from the series contract's names)."""
    out: list[Series] = []
    for k, (scenario, ladder) in enumerate(ladders.items()):
        t = np.arange(0.0, 10.01, 0.1) + T0 + 20.0 * k
        out.append(Series(info(scenario, ladder), t, np.ones(t.size)))
        frames = {"__name__": FRAMES_METRIC, "run_id": "old", "scenario": scenario,
                  "repeat": "0", "stream": "0", "output": "0"}  # fmt: skip
        out.append(Series(frames, t, (t - t[0]) * FPS))
    t = np.arange(T0 - 10.0, T0 + 20.0 * len(ladders) + 10.0, 0.1)
    cpu = {"__name__": series.CPU_ENERGY.name, "zone": "package", "socket": "0",
           "source": series.SOURCE_RAPL, "instance": "h"}  # fmt: skip
    out.append(Series(cpu, t, (t - t[0]) * CPU_W))
    return out


def test_a_bitrate_written_as_frames_per_second_names_label_value_and_form() -> None:
    (w,) = discover_windows(world({"fps-ladder": "1280x720@30"}))
    assert w.status == "ok" and w.rungs == ()
    assert w.problem is not None
    assert "label ladder='1280x720@30'" in w.problem
    assert "'30' is below 1k; bitrates are bits per second" in w.problem
    assert "WxH@BITRATE" in w.problem and "1280x720@2M+640x360@800k" in w.problem
    # The resolution is readable: pixels are still counted.
    assert w.frames_total == pytest.approx(10 * FPS)
    assert w.output_pixels == pytest.approx(10 * FPS * 1280 * 720)


def test_an_unreadable_ladder_has_no_pixels_and_the_report_names_the_window() -> None:
    data = world({"no-size": "720p", "good": "640x360@800k"})
    windows = discover_windows(data)
    by_name = {w.scenario: w for w in windows}
    bad, good = by_name["no-size"], by_name["good"]
    assert good.problem is None and good.output_pixels == pytest.approx(10 * FPS * 640 * 360)
    assert bad.output_pixels is None and bad.frames_total == pytest.approx(10 * FPS)
    assert bad.problem is not None and "'720p' is not WxH@BITRATE" in bad.problem
    assert "output pixels are unknown" in bad.problem

    report = TranscodingRecommender("http://127.0.0.1:9", predict=False).analyze(
        windows, series=data
    )
    notes = [w for w in notes_text(report.warnings) if bad.window_id in w]
    assert notes and "label ladder='720p'" in notes[0], report.warnings
    rows = report.windows.set_index("scenario")
    assert "label ladder='720p'" in rows.loc["no-size", "problem"]
    assert pd.isna(rows.loc["good", "problem"])
    # The good window still ranks; the bad one cannot.
    assert report.best_overall is not None and report.best_overall["scenario"] == "good"


def test_when_nothing_can_be_ranked_the_summary_says_which_window_and_why() -> None:
    data = world({"a": "720p", "b": "hd"})
    report = TranscodingRecommender("http://127.0.0.1:9", predict=False).analyze(
        discover_windows(data), series=data
    )
    line = next(x for x in summary(report).splitlines() if x.startswith("No configuration"))
    assert "2 of 2 transcode window(s) have a problem" in line
    assert "old/a/transcode/0: ffmpeg_scenario_info label ladder='720p'" in line
    assert "label ladder='hd'" in line


def test_a_baseline_window_needs_no_ladder() -> None:
    t = np.arange(0.0, 5.01, 0.1) + T0
    (w,) = discover_windows([Series(info("s", "", phase="baseline"), t, np.ones(t.size))])
    assert w.problem is None


def test_a_transcode_window_without_progress_series_says_so() -> None:
    data = [s for s in world({"s": "640x360@800k"}) if s.name != FRAMES_METRIC]
    (w,) = discover_windows(data)
    assert w.frames_total is None and w.output_pixels is None
    assert w.problem == (
        f"no {FRAMES_METRIC} series covers the window: its frames and output pixels are unknown"
    )
