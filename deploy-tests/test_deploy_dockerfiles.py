"""Every Dockerfile sets its metadata before its first RUN.

The classic builder (docker-compose 1.29, ``DOCKER_BUILDKIT=0``) makes a container for every
instruction, ENV and ENTRYPOINT included, and a copying storage driver (vfs, where overlayfs is
not available: nested engines, CI) copies the whole image so far into each. An ENV after
ffmpeg's or the advisor's install copied about 1 GB: seven such instructions made ffmpeg-runner
a 310 s build, 60 s of it installing. Only what must follow the install may: COPY (so a changed
file does not redo the install), USER (the install runs as root) and VOLUME (a RUN's changes
inside a declared volume are discarded).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted(p.relative_to(REPO) for p in REPO.glob("*/Dockerfile"))
AFTER_RUN_OK = {"RUN", "COPY", "ADD", "USER", "VOLUME"}


def instructions(text: str) -> list[tuple[int, str]]:
    """(line number, keyword) of each instruction; continuation lines and comments skipped."""
    out: list[tuple[int, str]] = []
    continued = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not continued and stripped and not stripped.startswith("#"):
            out.append((number, stripped.split(None, 1)[0].upper()))
        if stripped.startswith("#") and continued:
            continue  # a comment inside a continued instruction does not end it
        continued = stripped.endswith("\\")
    return out


def test_instructions_parses_continuations_and_comments() -> None:
    text = "FROM x\n# c\nENV A=1 \\\n    B=2\nRUN a \\\n # inside\n && b\nUSER 1\n"
    assert instructions(text) == [(1, "FROM"), (3, "ENV"), (5, "RUN"), (8, "USER")]


def test_every_component_has_a_dockerfile_checked_here() -> None:
    assert len(DOCKERFILES) >= 7, DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=str)
def test_metadata_comes_before_the_first_run(path: Path) -> None:
    found = instructions((REPO / path).read_text())
    runs = [n for n, kw in found if kw == "RUN"]
    assert runs, f"{path}: no RUN"
    late = [(n, kw) for n, kw in found if n > runs[0] and kw not in AFTER_RUN_OK]
    assert not late, (
        f"{path}: {', '.join(f'{kw} (line {n})' for n, kw in late)} after the RUN on line "
        f"{runs[0]}: each is a copy of the image so far on a copying storage driver; move it "
        "above the first RUN"
    )
