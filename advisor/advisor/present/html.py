"""The HTML report and the cross-host page, through the Jinja2 templates in ``templates/``.

The templates hold the page; Python hands them sections (a title and a text or a table) and
figures (a title and an SVG). Tables come from pandas and SVG from ``advisor.plots``, both
already HTML; every other string is escaped by ``esc`` (``html.escape``, the escaping the
report has always used, so the bytes stay those of the golden files).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

# (title, body, kind) as ``advisor.render.Section``
SectionTuple = tuple[str, pd.DataFrame | str, str]

CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table.t{border-collapse:collapse;font-size:13px;margin:.5em 0}"
    "table.t td,table.t th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
    "table.t th{background:#f0f0f0}pre{background:#f7f7f7;padding:.6em;white-space:pre-wrap}"
    # a table wider than the page (the scenarios' many columns) scrolls in its own box
    # instead of widening the page past the window
    "table.t{display:block;max-width:100%;overflow-x:auto}"
    "figure{margin:.5em 0}svg{max-width:100%;height:auto;border:1px solid #ddd}"
    "details{margin:1em 0}summary{font-size:1.3em;font-weight:bold;cursor:pointer}"
)


@dataclass(frozen=True)
class Section:
    """A titled part of the page: ``table`` (HTML) when it is a table, else ``text``."""

    title: str
    text: str = ""
    table: Markup | None = None


@dataclass(frozen=True)
class Figure:
    title: str
    svg: Markup


def esc(value: Any) -> Markup:
    return Markup(html.escape(str(value)))


def table_html(df: pd.DataFrame) -> Markup:
    """A table as the report writes it; an empty one says so."""
    if df.empty:
        return Markup("<p><em>none</em></p>")
    return Markup(df.to_html(index=False, escape=True, border=0, classes="t"))


def section(title: str, body: pd.DataFrame | str) -> Section:
    if isinstance(body, pd.DataFrame):
        return Section(title, table=table_html(body))
    return Section(title, text=body)


def sections(items: Iterable[SectionTuple]) -> list[Section]:
    return [section(title, body) for title, body, _ in items]


def figure(title: str, svg: str) -> Figure:
    return Figure(title, Markup(svg))


@cache
def environment() -> jinja2.Environment:
    """Built on first use (not at import): the templates ship inside the package."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("advisor.present", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["esc"] = esc
    return env


def render_page(template: str, context: Mapping[str, Any]) -> str:
    return environment().get_template(template).render(**context)
