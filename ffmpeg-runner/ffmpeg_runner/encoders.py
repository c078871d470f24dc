"""What the runner knows about encoders: how a preset is spelled on each one's command line,
and which rate controls each has (a bitrate always; CRF or CQ, with its valid range, for the
encoders in ``QUALITY_SCALES``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from base_monitoring_client import InvalidValue

from .contract import Rung, format_quality_value

X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip
NVENC_PRESETS = (
    "default", "slow", "medium", "fast", "hp", "hq", "bd", "ll", "llhq", "llhp",
    "lossless", "losslesshp", "p1", "p2", "p3", "p4", "p5", "p6", "p7",
)  # fmt: skip
VP9_DEADLINES = ("realtime", "good", "best")
# Encoders that need a device; the runner opens them once before a batch starts.
HARDWARE_MARKERS = ("_nvenc", "_qsv", "_vaapi", "_amf", "_videotoolbox", "_v4l2m2m", "_omx")
# FLV (what RTMP carries in ffmpeg 5.1) holds H.264 video only.
RTMP_ENCODER_MARKER = "264"


def is_hardware(encoder: str) -> bool:
    return any(marker in encoder for marker in HARDWARE_MARKERS)


def _int_in(text: str, low: int, high: int, what: str) -> str:
    try:
        value = int(text)
    except ValueError:
        raise InvalidValue(f"{what}: expected a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise InvalidValue(f"{what}: expected a whole number from {low} to {high}")
    return str(value)


def preset_args(encoder: str, preset: str | None) -> list[str]:
    """The ffmpeg options that select ``preset`` on ``encoder``; InvalidValue names the fix."""
    if preset is None:
        return []
    if encoder in ("libx264", "libx264rgb", "libx265"):
        if preset not in X26X_PRESETS:
            raise InvalidValue(
                f"{preset!r} is not a {encoder} preset; use one of " + ", ".join(X26X_PRESETS)
            )
        return ["-preset", preset]
    if encoder == "libsvtav1":
        return ["-preset", _int_in(preset, -1, 13, f"libsvtav1 preset {preset!r}")]
    if encoder == "libaom-av1":
        return ["-cpu-used", _int_in(preset, 0, 8, f"libaom-av1 preset (cpu-used) {preset!r}")]
    if encoder == "libvpx-vp9":
        deadline, _, cpu_used = preset.partition(":")
        if deadline not in VP9_DEADLINES:
            raise InvalidValue(
                f"{preset!r} is not a libvpx-vp9 preset; use realtime, good or best, "
                "optionally with :CPU_USED (-8..8), e.g. good:4"
            )
        args = ["-deadline", deadline]
        if cpu_used:
            args += ["-cpu-used", _int_in(cpu_used, -8, 8, f"libvpx-vp9 cpu-used {cpu_used!r}")]
        return args
    if encoder.endswith("_nvenc"):
        if preset not in NVENC_PRESETS:
            raise InvalidValue(
                f"{preset!r} is not an NVENC preset; use one of p1..p7 (or fast, medium, slow)"
            )
        return ["-preset", preset]
    # Anything else: ffmpeg itself judges the value (a bad one fails that window, not the batch).
    return ["-preset", preset]


# -- rate control ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityScale:
    """One encoder's constant-quality rate control: its name (``crf`` or ``cq``), the valid
    values (lower is better quality) and the ffmpeg options that select it."""

    rate_control: str
    low: float
    high: float
    whole: bool  # only whole numbers (libx264/libx265 accept fractions)
    args: tuple[str, ...]  # ``{value}`` is replaced by the value

    @property
    def search_step(self) -> float:
        """The step of a target-quality search: half a point where fractions are accepted
        (a CRF step moves VMAF by 1-2 points in the range people target), else 1."""
        return 1.0 if self.whole else 0.5

    def command_args(self, value: float) -> list[str]:
        text = format_quality_value(value)
        return [a.replace("{value}", text) for a in self.args]

    @property
    def range_text(self) -> str:
        kind = "whole numbers" if self.whole else "numbers"
        return f"{kind} from {self.low:g} to {self.high:g}"


_X26X_CRF = QualityScale("crf", 0, 51, False, ("-crf", "{value}"))
# libvpx and libaom need -b:v 0 for pure constant quality (else the CRF only caps the bitrate).
_VPX_CRF = QualityScale("crf", 0, 63, True, ("-crf", "{value}", "-b:v", "0"))
# NVENC: constant quality is VBR with a CQ target and no bitrate limit; cq 0 means "automatic".
_NVENC_CQ = QualityScale("cq", 1, 51, False, ("-rc", "vbr", "-cq", "{value}", "-b:v", "0"))
QUALITY_SCALES: dict[str, QualityScale] = {
    "libx264": _X26X_CRF,
    "libx264rgb": _X26X_CRF,
    "libx265": _X26X_CRF,
    "libsvtav1": QualityScale("crf", 1, 63, True, ("-crf", "{value}")),
    "libvpx-vp9": _VPX_CRF,
    "libaom-av1": _VPX_CRF,
    "h264_nvenc": _NVENC_CQ,
    "hevc_nvenc": _NVENC_CQ,
    "av1_nvenc": QualityScale("cq", 1, 63, False, ("-rc", "vbr", "-cq", "{value}", "-b:v", "0")),
}


def rate_controls(encoder: str) -> tuple[str, ...]:
    """The rate controls the runner can drive ``encoder`` with: every encoder has a bitrate;
    those in ``QUALITY_SCALES`` also their constant-quality mode."""
    scale = QUALITY_SCALES.get(encoder)
    return ("bitrate",) if scale is None else ("bitrate", scale.rate_control)


def quality_scale(encoder: str, rate_control: str) -> QualityScale:
    """The constant-quality scale of ``encoder``; InvalidValue names the fix when it has none
    of that name."""
    scale = QUALITY_SCALES.get(encoder)
    if scale is not None and scale.rate_control == rate_control:
        return scale
    have = " or ".join(rate_controls(encoder))
    which = ", ".join(e for e, s in QUALITY_SCALES.items() if s.rate_control == rate_control)
    raise InvalidValue(
        f"{encoder} has no {rate_control} rate control here (it has {have}); use "
        f"rate_control {rate_controls(encoder)[-1]}, or an encoder with {rate_control}: {which}"
    )


def check_quality_value(encoder: str, rate_control: str, value: Any) -> float:
    """``value`` as a valid CRF/CQ of ``encoder``; InvalidValue names the range."""
    scale = quality_scale(encoder, rate_control)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue(f"{value!r} is not a number; {encoder} {rate_control} takes "
                           f"{scale.range_text} (lower is better quality)")  # fmt: skip
    number = float(value)
    if not scale.low <= number <= scale.high or (scale.whole and not number.is_integer()):
        raise InvalidValue(
            f"{format_quality_value(number)} is out of range: {encoder} {rate_control} takes "
            f"{scale.range_text} "
            "(lower is better quality)"
        )
    return number


def rate_control_args(encoder: str, rung: Rung) -> list[str]:
    """The ffmpeg options that set ``rung``'s rate on ``encoder``: ``-b:v`` with a bitrate,
    the encoder's constant-quality options with crf or cq."""
    if rung.rate_control == "bitrate":
        return ["-b:v", rung.bitrate]
    assert rung.quality_value is not None  # Rung guarantees it
    return quality_scale(encoder, rung.rate_control).command_args(rung.quality_value)
