"""What the runner knows about encoders: how a preset is spelled on each one's command line."""

from __future__ import annotations

from base_monitoring_client import InvalidValue

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
