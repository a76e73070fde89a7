"""Reads of the warehouse for the reports.

An empty mart is a page state (its reason comes from ``marts.table_notes``); a query that
fails is a bug or a broken warehouse and fails the report with the error (ReportQueryError),
never a silent "no data". ``select_list`` still lets a page follow a renamed column.
Frames come back through Arrow (``.pl()``), already small: the SQL aggregates and caps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import duckdb
import polars as pl

from sharegraph.core.sql import table_exists

log = logging.getLogger(__name__)


def table_columns(con: duckdb.DuckDBPyConnection, qualified: str) -> list[str]:
    """Column names of ``schema.table`` (empty when the table or view does not exist)."""
    schema, name = qualified.split(".", 1)
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
        "AND NOT internal ORDER BY column_index",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]


class ReportQueryError(RuntimeError):
    """A report's query failed; the message has the query's start and DuckDB's error."""


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame | None:
    """Run a read query. Raises ReportQueryError when it fails."""
    try:
        rel = con.sql(sql, params=list(params)) if params else con.sql(sql)
        return rel.pl() if rel is not None else None
    except duckdb.Error as exc:  # CatalogException, BinderException, ...
        head = " ".join(sql.split())[:160]
        raise ReportQueryError(f"report query failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0]}): {head}") from exc


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None) -> object:
    """First value of a read query; None when it returns no row."""
    frame = query(con, sql, params)
    if frame is None or frame.height == 0:
        return None
    return frame.row(0)[0]


def select_list(con: duckdb.DuckDBPyConnection, qualified: str, wanted: Mapping[str, Sequence[str]]) -> str | None:
    """A SELECT list aliasing the first existing candidate column to each wanted name.

    ``wanted`` = {alias: [candidate column, ...]}; a missing alias becomes NULL. Lets a report
    follow small renames in a mart without crashing. None when the table is missing.
    """
    cols = set(table_columns(con, qualified))
    if not cols:
        return None
    parts = []
    for alias, candidates in wanted.items():
        found = next((c for c in candidates if c in cols), None)
        parts.append(f'"{found}" AS "{alias}"' if found else f'NULL AS "{alias}"')
    return ", ".join(parts)


def count_rows(con: duckdb.DuckDBPyConnection, qualified: str) -> int | None:
    """Rows in a table, None when it does not exist."""
    if not table_exists(con, qualified):
        return None
    value = scalar(con, f"SELECT count(*) FROM {qualified}")
    return None if value is None else int(value)
