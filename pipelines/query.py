"""`sharegraph sql`: run each statement on the published snapshot and show every result whole.

Analysts should never lose a column to a terminal's width: a result that does not fit is shown
vertically (one line per column, psql's expanded mode); ratios are rounded for display only
(the warehouse keeps full precision); csv / json / parquet write the exact values.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import duckdb
import polars as pl

FORMATS = ("table", "vertical", "csv", "json", "parquet")
DISPLAY_DECIMALS = 4


def results(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[tuple[str, pl.DataFrame | None]]:
    """(statement text, its result frame or None for a statement without rows), in order."""
    for statement in con.extract_statements(sql):
        rel = con.sql(statement.query)
        yield statement.query.strip(), (rel.pl() if rel is not None else None)


def _display(frame: pl.DataFrame) -> pl.DataFrame:
    """Floats rounded for reading; money (DECIMAL) and everything else as stored."""
    return frame.with_columns(pl.col(pl.Float32, pl.Float64).round(DISPLAY_DECIMALS))


def _vertical(frame: pl.DataFrame, max_rows: int) -> str:
    width = max((len(c) for c in frame.columns), default=0)
    out = []
    for i, row in enumerate(frame.head(max_rows).iter_rows(named=True), start=1):
        out.append(f"-[ row {i} ]" + "-" * max(0, width - 6))
        out += [f"{name.ljust(width)} | {'NULL' if v is None else v}" for name, v in row.items()]
    return "\n".join(out)


def _table(frame: pl.DataFrame, max_rows: int) -> str:
    with pl.Config(tbl_cols=-1, tbl_rows=max_rows, tbl_width_chars=60_000,
                   fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
        return str(frame.head(max_rows))


def render(frame: pl.DataFrame, layout: str, max_rows: int, width: int | None = None) -> str:
    """Text for a terminal: ``table`` when every column fits ``width``, else ``vertical``
    (``layout`` may force either). Ends with the row count and what was left out."""
    shown = _display(frame)
    text = _table(shown, max_rows) if layout != "vertical" else ""
    width = width or shutil.get_terminal_size((120, 40)).columns
    if layout == "vertical" or (layout == "auto" and max(map(len, text.splitlines() or [""])) > width):
        text = _vertical(shown, max_rows)
    more = f", {frame.height - max_rows:,} not shown (--max-rows)" if frame.height > max_rows else ""
    return f"{text}\n({frame.height:,} rows, {frame.width} columns{more})"


def write(frame: pl.DataFrame, fmt: str, out: Path | None, stdout: IO[str]) -> None:
    """Exact values as csv / json (one array of objects) / parquet (needs ``out``)."""
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        frame.write_parquet(out)
    elif fmt == "csv":
        if out is None:
            frame.write_csv(stdout)
        else:
            frame.write_csv(out)
    else:
        text = json.dumps(frame.to_dicts(), ensure_ascii=False, default=str, indent=1)
        if out is None:
            stdout.write(text + "\n")
        else:
            Path(out).write_text(text + "\n", encoding="utf-8")
