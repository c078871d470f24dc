"""The HTML templates: what is text is escaped, what is already HTML (tables, SVG) is not."""

from __future__ import annotations

import pandas as pd
from advisor.present import html as page


def test_text_is_escaped_and_tables_and_figures_are_kept_as_html() -> None:
    context = {
        "css": "",
        "head": page.section("Advisor <report>", "runs: a & b"),
        "recommendation": page.section("Recommendation", "use 'x' <fast>"),
        "top_figures": [page.figure("A < B", "<svg id='s'></svg>")],
        "tables": page.sections([("T", pd.DataFrame({"a<": ["<b>"]}), "main")]),
        "time_figures": [],
        "prediction": [],
        "prediction_figure": None,
        "notes": [],
    }
    out = page.render_page("report.html", context)
    assert "<h1>wattpush advisor &lt;report&gt;</h1>" in out
    assert "<pre>use &#x27;x&#x27; &lt;fast&gt;</pre>" in out
    assert "<h3>A &lt; B</h3></figcaption><svg id='s'></svg>" in out
    # pandas escapes the cells once; the template does not escape its HTML again
    assert "<th>a&lt;</th>" in out and "<td>&lt;b&gt;</td>" in out and "&amp;lt;" not in out
    assert "Prediction" not in out  # no prediction: no collapsed section
    assert out.startswith("<!DOCTYPE html>") and out.endswith("</body></html>")


def test_an_empty_table_says_none() -> None:
    assert str(page.table_html(pd.DataFrame())) == "<p><em>none</em></p>"
