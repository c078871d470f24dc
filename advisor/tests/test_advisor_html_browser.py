"""The HTML reports in a real browser: headless Chromium loads each without a console error,
every figure has a non-empty box, and a screenshot is kept for a person to look at.

The pages are the golden files (``golden/*.html``): the report of fixed synthetic experiments
exactly as the renderer writes it (``test_advisor_golden`` holds them equal to its output).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wattpush_testing import browser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        browser.chromium() is None,
        reason="chromium is not installed (e2e/install_system_deps.sh installs it)",
    ),
]

GOLDEN = Path(__file__).parent / "golden"
PAGES = ["quality.html", "attrib.html", "search.html", "hosts.html"]


@pytest.mark.parametrize("name", PAGES)
def test_report_loads_without_errors_and_every_figure_is_drawn(name: str, tmp_path: Path) -> None:
    page = GOLDEN / name
    load = browser.load_page(page, tmp_path)
    assert load.console == [], f"{name}: the browser's console: {load.console}"
    assert load.errors == [], f"{name}: errors while loading: {load.errors}"
    # nothing wider than the window: a table too wide for the page is cut off in print
    assert load.scroll_width_px <= load.window_width_px, (
        f"{name}: the page is {load.scroll_width_px} px wide in a {load.window_width_px} px window"
    )
    assert len(load.figures) == page.read_text(encoding="utf-8").count("<figure>")
    for fig in load.figures:
        assert not fig.box.empty, f"{name}: figure {fig.caption!r} has an empty box {fig.box}"
        assert fig.svg is not None and not fig.svg.empty, f"{name}: {fig.caption!r} draws nothing"
        # the figures fit the page (max-width 100 %): none overflows the 1400 px window
        assert fig.box.width <= browser.WIDTH_PX, f"{name}: {fig.caption!r} is {fig.box.width} px"
    png = tmp_path / f"{page.stem}.png"
    width, height = browser.screenshot(page, png, tmp_path, load.height_px)
    assert (width, height) == (browser.WIDTH_PX, min(load.height_px, browser.MAX_HEIGHT_PX))
    print(f"screenshot of {name}: {png}")


def test_the_browser_check_sees_console_errors_empty_figures_and_overflow(tmp_path: Path) -> None:
    """The check itself can fail: a page with an SVG attribute Chromium cannot parse, a figure
    that draws nothing and a table wider than the window."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<figure><figcaption>fine</figcaption><svg width='200' height='100'>"
        "<rect width='abc' height='10'/></svg></figure>"
        "<figure><figcaption>empty</figcaption><svg width='0' height='0'></svg></figure>"
        "<table><tr><td style='white-space:nowrap'>" + "x" * 400 + "</td></tr></table>"
        "</body></html>",
        encoding="utf-8",
    )
    load = browser.load_page(page, tmp_path)
    assert any("attribute width" in line for line in load.console), load.console
    fine, empty = load.figures
    assert (fine.caption, empty.caption) == ("fine", "empty")
    assert fine.svg is not None and not fine.svg.empty
    assert empty.svg is not None and empty.svg.empty
    assert load.scroll_width_px > load.window_width_px
