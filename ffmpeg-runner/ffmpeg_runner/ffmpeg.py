"""The ffmpeg binary: what it is, what it can encode, and the exact command line of a stream."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import Rung
from .encoders import is_hardware, preset_args, rate_control_args
from .errors import FfmpegUnavailableError, ScenarioError
from .scenario import Scenario
from .which import which

# Content the input may deliver beyond the planned end: the runner stops ffmpeg at the window
# end ('q'); the bound only guarantees that nothing runs forever if the runner dies.
CONTENT_SLACK_S = 5.0
# Without -re ffmpeg reads as fast as it encodes; bound the content generously (tiny test
# encodes run at ~150x real time on a laptop core).
THROUGHPUT_CONTENT_FACTOR = 1000
HARDWARE_PROBE_TIMEOUT_S = 30.0

_VERSION_RE = re.compile(r"^ffmpeg version (\S+)", re.MULTILINE)
_CONFIG_RE = re.compile(r"^\s*configuration:\s*(.*)$", re.MULTILINE)
_ENCODER_RE = re.compile(r"^\s*([VAS][A-Z.]{5})\s+(\S+)\s", re.MULTILINE)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class FfmpegInfo:
    path: str
    version: str
    configuration: str
    encoders: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "version": self.version, "configuration": self.configuration}


def parse_encoders(text: str) -> frozenset[str]:
    """Names from ``ffmpeg -encoders`` (the lines after the legend)."""
    _, sep, body = text.partition("------")
    return frozenset(m.group(2) for m in _ENCODER_RE.finditer(body if sep else text))


def probe_ffmpeg(binary: str = "ffmpeg", run: Runner = subprocess.run) -> FfmpegInfo:
    path = which(binary)
    if path is None:
        raise FfmpegUnavailableError(
            f"ffmpeg not found ({binary!r}); install it (apt-get install ffmpeg) "
            "or point FFMPEG_PATH at the binary"
        )
    try:
        version = run(
            [path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
        )
        encoders = run(
            [path, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FfmpegUnavailableError(f"{path} does not run ({exc}); reinstall ffmpeg") from None
    if version.returncode != 0 or encoders.returncode != 0:
        raise FfmpegUnavailableError(
            f"{path} -version failed: {(version.stderr or encoders.stderr).strip()[-300:]}; "
            "reinstall ffmpeg"
        )
    match = _VERSION_RE.search(version.stdout)
    config = _CONFIG_RE.search(version.stdout)
    return FfmpegInfo(
        path=path,
        version=match.group(1) if match else "unknown",
        configuration=config.group(1).strip() if config else "",
        encoders=parse_encoders(encoders.stdout),
    )


def check_encoders(
    scenarios: Iterable[Scenario],
    info: FfmpegInfo,
    *,
    probe_hardware: bool = True,
    run: Runner = subprocess.run,
) -> None:
    """Every encoder exists in this ffmpeg, and each hardware encoder opens once."""
    problems: list[str] = []
    checked: dict[str, str | None] = {}
    for index, scenario in enumerate(scenarios):
        encoder = scenario.encoder
        if encoder not in checked:
            checked[encoder] = encoder_problem(encoder, info, probe=probe_hardware, run=run)
        problem = checked[encoder]
        if problem:
            problems.append(f"scenarios[{index}] {scenario.name!r}: encoder: {problem}")
    if problems:
        raise ScenarioError(problems)


def encoder_problem(
    encoder: str, info: FfmpegInfo, *, probe: bool = True, run: Runner = subprocess.run
) -> str | None:
    """Why ``encoder`` cannot be used (not in this ffmpeg, or a hardware encoder that does not
    open on a one-frame test encode), or None."""
    if encoder not in info.encoders:
        family = encoder.split("_", maxsplit=1)[0].replace("lib", "")[:3]
        similar = sorted(e for e in info.encoders if family and family in e)[:8]
        hint = f" (similar: {', '.join(similar)})" if similar else ""
        return (
            f"{encoder!r} is not in `{info.path} -encoders`{hint}; pick an encoder this ffmpeg "
            "has, or install an ffmpeg built with it"
        )
    if not (probe and is_hardware(encoder)):
        return None
    argv = [
        info.path, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
        "-i", "color=size=256x256:rate=30", "-frames:v", "1", "-c:v", encoder, "-f", "null", "-",
    ]  # fmt: skip
    try:
        done = run(argv, capture_output=True, text=True, timeout=HARDWARE_PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{encoder!r} could not be tried ({exc}); check the device and driver"
    if done.returncode != 0:
        reason = " | ".join(done.stderr.strip().splitlines()[:2]) or "no message"
        return (
            f"{encoder!r} is built into ffmpeg but does not open here ({reason}); check the "
            "GPU/driver (e.g. nvidia-smi, /dev/dri) or use a software encoder"
        )
    return None


# -- command lines -------------------------------------------------------------------------------


def content_seconds(scenario: Scenario) -> float:
    planned = scenario.stabilization_s + scenario.duration_s + CONTENT_SLACK_S
    return planned if scenario.realtime else planned * THROUGHPUT_CONTENT_FACTOR


def filter_graph(scenario: Scenario) -> str:
    chains = [
        f"scale={r.width}:{r.height},format=yuv420p[o{k}]" for k, r in enumerate(scenario.rungs)
    ]
    if len(chains) == 1:
        return "[0:v:0]" + chains[0]
    pads = "".join(f"[s{k}]" for k in range(len(chains)))
    return f"[0:v:0]split={len(chains)}{pads};" + ";".join(
        f"[s{k}]{chain}" for k, chain in enumerate(chains)
    )


def media_path(media_dir: Path, scenario: Scenario, rung: Rung, stream: int, repeat: int) -> Path:
    return media_dir / scenario.name / f"r{repeat}-s{stream}-{rung.name}.mkv"


# Where the dry run says a measured output of an ``--output null`` scenario goes.
QUALITY_DIR_PLACEHOLDER = Path("<quality-tmp>")


def measured_path(
    scenario: Scenario,
    rung: Rung,
    stream: int,
    repeat: int,
    media_dir: Path | None,
    *,
    quality_dir: Path | None,
) -> Path | None:
    """The file quality is measured on, or None when this output is not measured.

    Only stream 0 is measured: every stream encodes the same input with the same settings.
    With ``--output null`` the measured outputs go to a temporary directory instead of null.
    """
    if not scenario.quality or stream != 0:
        return None
    if scenario.output == "files" and media_dir is not None:
        return media_path(media_dir, scenario, rung, stream, repeat)
    if scenario.output == "null":
        return (quality_dir or QUALITY_DIR_PLACEHOLDER) / f"r{repeat}-s{stream}-{rung.name}.mkv"
    return None


def output_args(
    scenario: Scenario,
    rung: Rung,
    stream: int,
    repeat: int,
    media_dir: Path | None,
    *,
    quality_dir: Path | None = None,
) -> list[str]:
    measured = measured_path(scenario, rung, stream, repeat, media_dir, quality_dir=quality_dir)
    if measured is not None:
        # passthrough: one encoded frame per filtered frame, as with null (no VFR drops), so
        # frame k of the file is frame k of the looped source.
        return ["-fps_mode", "passthrough", "-f", "matroska", str(measured)]
    if scenario.output == "null":
        return ["-f", "null", "-"]
    if scenario.output == "files":
        if media_dir is None:
            raise ValueError("media_dir is required for file outputs")
        return ["-f", "matroska", str(media_path(media_dir, scenario, rung, stream, repeat))]
    key = f"{scenario.name}-r{repeat}-s{stream}-{rung.name}"
    return ["-f", "flv", scenario.output.rstrip("/") + "/" + key]


def build_command(
    scenario: Scenario,
    *,
    stream: int,
    repeat: int,
    media_dir: Path | None = None,
    ffmpeg_path: str = "ffmpeg",
    stats_period_s: float = 0.1,
    quality_dir: Path | None = None,
) -> list[str]:
    """One stream's argv: every rung encoded in this one process (split + scale)."""
    argv = [
        ffmpeg_path, "-hide_banner", "-nostats", "-loglevel", "level+verbose",
        "-stats_period", f"{stats_period_s:g}", "-progress", "pipe:1", "-y",
    ]  # fmt: skip
    if scenario.realtime:
        argv.append("-re")
    content = f"{content_seconds(scenario):g}"
    if scenario.is_testsrc:
        argv += ["-t", content, "-f", "lavfi", "-i", scenario.lavfi_graph]
    else:
        argv += ["-stream_loop", "-1", "-t", content, "-i", scenario.input]
    argv += ["-filter_complex", filter_graph(scenario)]
    codec = ["-c:v", scenario.encoder, *preset_args(scenario.encoder, scenario.preset)]
    for k, rung in enumerate(scenario.rungs):
        rate = rate_control_args(scenario.encoder, rung)
        argv += ["-map", f"[o{k}]", *codec, *rate, *scenario.extra_args]
        argv += output_args(scenario, rung, stream, repeat, media_dir, quality_dir=quality_dir)
    return argv


def stream_commands(
    scenario: Scenario,
    repeat: int,
    media_dir: Path | None,
    ffmpeg_path: str,
    stats_period_s: float,
    *,
    quality_dir: Path | None = None,
) -> Sequence[list[str]]:
    return [
        build_command(
            scenario,
            stream=stream,
            repeat=repeat,
            media_dir=media_dir,
            ffmpeg_path=ffmpeg_path,
            stats_period_s=stats_period_s,
            quality_dir=quality_dir,
        )
        for stream in range(scenario.streams)
    ]
