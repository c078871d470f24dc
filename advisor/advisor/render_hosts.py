"""Output of ``advisor report --compare-hosts``: the cross-host ranking first, then each host."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from .attribution import basis_score
from .present import html as page
from .present.numbers import fmt
from .present.report import clean, host_summary, host_verdicts_json, report_dict, summary
from .present.words import describe_score
from .recommender import HostComparison
from .render import markdown_table, scenario_display, text_table


def comparison_display(cmp: HostComparison, rank_by: str) -> pd.DataFrame:
    if cmp.table.empty:
        return cmp.table
    rows = []
    for _, r in cmp.table.iterrows():
        rank = r["rank"]
        rows.append(
            {
                "scenario": r["scenario"],
                "ladder": r["ladder"],
                "rank": "-" if pd.isna(rank) else int(rank),
                "host": r["host_description"],
                rank_by: f"{fmt(r[f'{rank_by}_mean'])} ± {fmt(r[f'{rank_by}_ci95'])}",
                f"{cmp.energy_basis} energy J": fmt(
                    r.get(f"{basis_score('energy_j', cmp.energy_basis)}_mean")
                ),
                "power W": fmt(r.get("mean_power_w_mean")),
                "n": int(r["n_ok"]),
            }
        )
    return pd.DataFrame(rows)


def hosts_dict(cmp: HostComparison) -> dict[str, Any]:
    doc: dict[str, Any] = clean(
        {
            "facts": cmp.facts,
            "comparison": cmp.table,
            "verdicts": host_verdicts_json(cmp),
            "queries": cmp.queries,
            "energy_basis": cmp.energy_basis,
            "rank_by": cmp.rank_column,
        }
    )
    return doc


def render_host_comparison(cmp: HostComparison, fmt: str, rank_by: str | None = None) -> str:
    """``rank_by``: the column the table ranks by; default the comparison's own (``--rank-by``
    on its energy basis)."""
    rank_by = rank_by or cmp.rank_column
    text = host_summary(cmp, rank_by)
    table = comparison_display(cmp, rank_by)
    if fmt == "json":
        doc = {
            "hosts": hosts_dict(cmp),
            "summary": text,
            "per_host": {host: report_dict(rep) for host, rep in cmp.reports.items()},
        }
        return json.dumps(doc, indent=2, allow_nan=False)
    if fmt == "csv":
        buf = io.StringIO()
        cmp.table.to_csv(buf, index=False, lineterminator="\n")
        return buf.getvalue()
    if fmt in ("table", "markdown"):
        fmt_table = text_table if fmt == "table" else markdown_table
        head = "# " if fmt == "markdown" else ""
        parts = [f"{head}Hosts compared ({rank_by}: {describe_score(rank_by)})", text]
        parts.append(fmt_table(table))
        for host, rep in cmp.reports.items():
            parts += [f"{head}{host}", summary(rep), fmt_table(scenario_display(rep))]
        return "\n\n".join(parts) + "\n"
    if fmt == "html":
        context = {
            "css": page.CSS,
            "rank_by": rank_by,
            "rank_by_text": describe_score(rank_by),
            "summary": text,
            "table": page.table_html(table),
            "hosts": [
                {
                    "name": host,
                    "summary": summary(rep),
                    "table": page.table_html(scenario_display(rep)),
                }
                for host, rep in cmp.reports.items()
            ],
        }
        return page.render_page("hosts.html", context)
    raise ValueError(f"unknown format {fmt!r}")
