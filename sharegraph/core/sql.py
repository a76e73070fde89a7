"""SQL text helpers: quoting identifiers and literals, counting rows, finding tables.

Every value that reaches SQL text from a file header, a setting or a mapping file goes
through these (or is bound as a parameter), so no input can change a statement's meaning.
"""

from __future__ import annotations

import duckdb


def ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str | None) -> str:
    """A single-quoted SQL string literal (NULL for None)."""
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def in_list(values: tuple[str, ...] | list[str]) -> str:
    """Comma-separated literals for ``IN (...)``."""
    return ", ".join(literal(v) for v in values)


def fixed(expr: str, digits: int) -> str:
    """SQL text of ``expr`` (a number) with ``digits`` decimals, rounded half away from zero
    first: printing a rounded value gives the same text on DuckDB (fmt, exact binary value)
    and on Spark (Java's Formatter, shortest decimal), which differ at a tie such as 12.25."""
    scale = 10 ** digits
    return f"format('{{:.{digits}f}}', round(({expr}) * {scale}) / {scale})"


def q_text(expr: str) -> str:
    """SQL text of a q-value for a sentence: three decimals, or ``<0.001``."""
    return f"CASE WHEN ({expr}) < 0.001 THEN '<0.001' ELSE {fixed(expr, 3)} END"


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows in ``table`` (a qualified name the caller wrote, not user input)."""
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    """True when ``schema.table`` exists as a table or view in the current database."""
    if hasattr(con, "has_table"):  # sharegraph.spark.sql.SparkCon
        return con.has_table(qualified)
    schema, name = qualified.split(".")
    row = con.execute(
        """SELECT count(*) FROM (
               SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary
               UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT temporary)
           WHERE schema_name = ? AND table_name = ?""",
        [schema, name],
    ).fetchall()
    return bool(row[0][0])
