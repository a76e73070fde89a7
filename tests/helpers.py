"""Small test utilities shared by the unit tests (no fixtures of our own components)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import duckdb
import polars as pl

from sharegraph.contract import TABLES


def insert_staging(con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Mapping[str, object]]) -> int:
    """Insert hand-written rows into ``staging.<table>``, filling defaults and lineage.

    Lets a unit test build a tiny warehouse without going through the ingest.
    """
    spec = TABLES[table]
    records = []
    for i, row in enumerate(rows, start=1):
        unknown = set(row) - set(spec.column_names)
        if unknown:
            raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
        rec = {c.name: row.get(c.name, c.default) for c in spec.columns}
        rec.update(source_file="test", source_row=i, batch_id="test", loaded_at=datetime(2026, 1, 1))
        records.append(rec)
    if not records:
        return 0
    frame = pl.DataFrame(records, infer_schema_length=None)  # noqa: F841 - read by DuckDB below
    cols = [*spec.column_names, "source_file", "source_row", "batch_id", "loaded_at"]
    casts = ", ".join(
        f"CAST(frame.{c} AS {spec.column(c).sql_type if c in spec.column_names else 'VARCHAR'})"
        if c not in ("source_row", "loaded_at") else f"frame.{c}"
        for c in cols
    )
    con.execute(f"INSERT INTO staging.{table} ({', '.join(cols)}) SELECT {casts} FROM frame")
    return len(records)
