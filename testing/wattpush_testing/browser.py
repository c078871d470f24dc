"""Headless Chromium for the HTML reports: load a page, measure its figures, take a screenshot.

Chromium runs with every background service off and a fresh profile, so a machine closed to the
network does not stall it (it otherwise waits on component updates, sync and field trials).
Without a DevTools client, the page is measured from inside: ``load_page`` opens a copy of the
page with two small scripts added, one at the top that records load errors, one at the end
that, once the page has loaded, writes every figure's bounding box into the DOM, which
``--dump-dom`` prints. What Chromium itself logs to the console (an SVG attribute it cannot
parse, a script error) comes from its log on stderr (``CONSOLE`` lines).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)
WIDTH_PX = 1400
MAX_HEIGHT_PX = 16000
# Enough for the page's load event on a loaded machine: virtual time, not a sleep.
VIRTUAL_TIME_BUDGET_MS = 5000
PROBE_ID = "wattpush-probe"

_ERRORS = (
    "<script>window.__wattpushErrors=[];window.addEventListener('error',function(e){"
    "window.__wattpushErrors.push(String(e.message||(e.target&&e.target.outerHTML)||e))},"
    "true);</script>"
)
_PROBE = (
    "<script>window.addEventListener('load',function(){"
    "var box=function(el){if(!el)return null;var b=el.getBoundingClientRect();"
    "return {width:b.width,height:b.height}};"
    "var figs=Array.prototype.map.call(document.querySelectorAll('figure'),function(f){"
    "var c=f.querySelector('figcaption');return {caption:c?c.textContent:'',box:box(f),"
    "svg:box(f.querySelector('svg'))}});"
    "var p=document.createElement('pre');p.id='" + PROBE_ID + "';"
    "p.textContent=JSON.stringify({figures:figs,errors:window.__wattpushErrors,"
    "height:document.documentElement.scrollHeight,"
    "scrollWidth:document.documentElement.scrollWidth,viewWidth:window.innerWidth});document.body.appendChild(p)});</script>"
)
_CONSOLE = re.compile(r":INFO:CONSOLE[^\]]*\]\s*(.*)")


class BrowserError(RuntimeError):
    """Chromium did not start, did not finish, or printed no measurement."""


@dataclass(frozen=True)
class Box:
    width: float
    height: float

    @property
    def empty(self) -> bool:
        return not (self.width > 0 and self.height > 0)


@dataclass(frozen=True)
class Figure:
    caption: str
    box: Box
    svg: Box | None


@dataclass(frozen=True)
class PageLoad:
    figures: list[Figure]
    errors: list[str]  # load and script errors the page raised
    console: list[str]  # what Chromium logged to the page's console
    height_px: int
    scroll_width_px: int  # the page's width; more than the window's: something overflows
    window_width_px: int


def chromium() -> str | None:
    """The Chromium binary (Debian package ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], workdir: Path, timeout_s: float) -> tuple[str, str]:
    """Run Chromium in its own session so that its helper processes go with it."""
    binary = chromium()
    if binary is None:
        raise BrowserError("chromium is not installed (Debian package chromium)")
    profile = workdir / f"profile-{len(list(workdir.glob('profile-*')))}"  # fresh every run
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=workdir,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this call started, by its id
        proc.communicate()
        raise BrowserError(f"chromium did not finish in {timeout_s:g} s: {cmd}") from exc
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _probed_copy(page: Path, workdir: Path) -> Path:
    text = page.read_text(encoding="utf-8")
    head = text.find("<head>")
    body_end = text.rfind("</body>")
    if head < 0 or body_end < 0:
        raise BrowserError(f"{page}: no <head> or </body> to measure the page from")
    head += len("<head>")
    probed = text[:head] + _ERRORS + text[head:body_end] + _PROBE + text[body_end:]
    copy = workdir / f"probed-{page.name}"
    copy.write_text(probed, encoding="utf-8")
    return copy


def _box(raw: dict[str, Any] | None) -> Box | None:
    return None if raw is None else Box(float(raw["width"]), float(raw["height"]))


def load_page(page: Path, workdir: Path, timeout_s: float = 120.0) -> PageLoad:
    """Open ``page`` and measure it after its load event."""
    copy = _probed_copy(page, workdir)
    out, err = _run(
        [
            f"--window-size={WIDTH_PX},900",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            "--dump-dom",
            copy.as_uri(),
        ],
        workdir,
        timeout_s,
    )
    found = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', out, re.S)
    if found is None:
        raise BrowserError(f"no measurement in chromium's DOM; its log ends: {err[-2000:]}")
    doc = json.loads(html.unescape(found.group(1)))
    figures = [
        Figure(str(f["caption"]), _box(f["box"]) or Box(0, 0), _box(f["svg"]))
        for f in doc["figures"]
    ]
    console = [m.group(1) for m in map(_CONSOLE.search, err.splitlines()) if m]
    return PageLoad(
        figures,
        [str(e) for e in doc["errors"]],
        console,
        int(doc["height"]),
        int(doc["scrollWidth"]),
        int(doc["viewWidth"]),
    )


def screenshot(
    page: Path, png: Path, workdir: Path, height_px: int, timeout_s: float = 120.0
) -> tuple[int, int]:
    """A PNG of the whole page (``height_px`` tall, at most MAX_HEIGHT_PX); its size."""
    height = max(1, min(height_px, MAX_HEIGHT_PX))
    _run(
        [
            f"--window-size={WIDTH_PX},{height}",
            f"--screenshot={png}",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            page.as_uri(),
        ],
        workdir,
        timeout_s,
    )
    return png_size(png)


def png_size(png: Path) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    head = png.read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        raise BrowserError(f"{png}: not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)
