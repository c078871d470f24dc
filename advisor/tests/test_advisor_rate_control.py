"""Constant-quality windows in the advisor: a CRF family apart from the bitrate family of the
same encoder, one point per CRF value, the curve on the achieved bitrate."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd
import pytest
from advisor.present.numbers import point_setting
from advisor.present.quality import families_table
from advisor.quality import QualityTarget, analyze_quality
from ffmpeg_runner.contract import MetricScore, OutputQuality, Rung, WindowRecord, ladder_key


def crf_window(crf: float, achieved_bps: float, repeat: int = 0) -> WindowRecord:
    rung = Rung("360p", 640, 360, 0, "crf", crf)
    return WindowRecord(
        scenario=f"crf{crf:g}",
        phase="transcode",
        repeat=repeat,
        start_ms=1,
        end_ms=2,
        rate_control="crf",
        quality_value=crf,
        ladder=ladder_key([rung]),
        rungs=(rung,),
        quality=(
            OutputQuality(
                rung=rung.key,
                name="360p",
                stream=0,
                target_bitrate_bps=None,
                achieved_bitrate_bps=achieved_bps,
                scores={"vmaf": MetricScore(90.0)},
            ),
        ),
    )


def test_a_crf_windows_bitrate_is_the_achieved_one() -> None:
    window = crf_window(23, 412_000.0)
    assert window.top_bitrate_bps == 412_000.0
    assert window.rung_quality("vmaf") == 90.0
    # Not measured: no bitrate at all (constant quality has no target).
    assert math.isnan(dataclasses.replace(window, quality=()).top_bitrate_bps)


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Transcode windows as the analysis sees them (the columns analyze_quality reads)."""
    out = []
    for r in rows:
        crf = r.get("crf")
        setting = f"crf{crf:g}" if crf is not None else f"{int(r['bps'] / 1000)}k"
        rung = f"640x360@{setting}"
        out.append(
            {
                "phase": "transcode",
                "status": "ok",
                "scenario": r["scenario"],
                "ladder": rung,
                "encoder": "libx264",
                "preset": "fast",
                "streams": 1,
                "rungs": 1,
                "resolution": "640x360",
                "bitrate_bps": r["bps"],
                "rate_control": "crf" if crf is not None else "bitrate",
                "quality_value": math.nan if crf is None else float(crf),
                "realtime": False,
                "quality": {rung: {"vmaf": r["q"]}},
                "quality_error": None,
                "quality_vmaf": r["q"],
                "quality_psnr": math.nan,
                "quality_ssim": math.nan,
                "achieved_bitrate_bps": r["bps"],
                "energy_per_output_minute_j": r["e"] + 100.0,
                "net_energy_per_output_minute_j": r["e"],
            }
        )
    return pd.DataFrame(out)


def test_crf_windows_make_their_own_family_with_one_point_per_crf() -> None:
    rows = [
        # two repeats of crf 28 whose achieved bitrates differ: still one point
        {"scenario": "crf28", "crf": 28, "bps": 300e3, "q": 84.0, "e": 90.0},
        {"scenario": "crf28", "crf": 28, "bps": 310e3, "q": 86.0, "e": 92.0},
        {"scenario": "crf22", "crf": 22, "bps": 700e3, "q": 94.0, "e": 120.0},
        {"scenario": "abr-500k", "bps": 500e3, "q": 88.0, "e": 100.0},
        {"scenario": "abr-1M", "bps": 1e6, "q": 93.0, "e": 130.0},
    ]
    qa = analyze_quality(table(rows), QualityTarget("vmaf", 90.0), basis="net")
    names = {f.name: f for f in qa.families}
    assert set(names) == {"libx264/fast/640x360", "libx264/fast/640x360/crf"}
    crf = names["libx264/fast/640x360/crf"]
    assert [(p.quality_value, p.n) for p in crf.points] == [(28.0, 2), (22.0, 1)]
    low, _ = crf.curve
    assert low.bitrate_bps == pytest.approx(305e3) and low.quality == pytest.approx(85.0)
    assert point_setting(low) == "crf 28 (305 kb/s)"
    at = crf.at_target
    assert at is not None
    # vmaf 90 lies halfway in quality between 85 and 94 is 5/9 of the way
    assert at.energy == pytest.approx(91.0 + 5 / 9 * (120.0 - 91.0))
    assert at.bitrate_bps == pytest.approx(305e3 + 5 / 9 * (700e3 - 305e3))
    shown = families_table(qa).set_index("family")
    assert shown.loc["libx264/fast/640x360/crf", "measured bitrates"] == (
        "crf 28 (305 kb/s), crf 22 (700 kb/s)"
    )
