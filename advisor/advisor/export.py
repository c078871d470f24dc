"""``advisor report --format parquet --output DIR``: the report's tables as Parquet files.

Each file holds the table ``--format csv --csv-table NAME`` writes, with the column names and
types pandas reads from that CSV: code written against the CSV tables reads the Parquet files
unchanged (nested values such as per-rung quality stay the same text in both).
"""

from __future__ import annotations

import importlib.util
import io
import logging
from pathlib import Path

import pandas as pd

from .errors import AdvisorConfigError
from .recommender import AdvisorReport
from .render import render_csv

log = logging.getLogger(__name__)
PARQUET_TABLES = ("windows", "scenarios", "families", "frontier", "cost")


def require_pyarrow() -> None:
    if importlib.util.find_spec("pyarrow") is None:
        raise AdvisorConfigError(
            "--format parquet needs pyarrow: install the advisor extra (pip install "
            "'wattpush[advisor]'), or use --format csv"
        )


def csv_frame(text: str) -> pd.DataFrame | None:
    """The CSV table as pandas reads it back; None for a table without columns."""
    if not text.strip():
        return None
    return pd.read_csv(io.StringIO(text))


def write_parquet(rep: AdvisorReport, directory: Path) -> tuple[list[Path], dict[str, str]]:
    """Write ``<table>.parquet`` for every table with data; (written, skipped with why)."""
    require_pyarrow()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: dict[str, str] = {}
    for table in PARQUET_TABLES:
        frame = csv_frame(render_csv(rep, table))
        if frame is None or frame.empty:
            skipped[table] = _why_empty(rep, table)
            continue
        path = directory / f"{table}.parquet"
        tmp = path.with_name(path.name + ".tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        written.append(path)
    return written, skipped


def _why_empty(rep: AdvisorReport, table: str) -> str:
    if table == "cost":
        return "no title cost: pass --title-minutes M --views N with --target-quality"
    if table in ("families", "frontier") and not rep.quality.measured:
        return "quality was not measured"
    return "no rows"
