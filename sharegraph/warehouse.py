"""The DuckDB warehouse: the working file the pipeline writes and the snapshot analysts read.

``sharegraph run --warehouse FILE`` names the *published* file. The pipeline writes a
working file beside it (``<stem>.working.duckdb``) and, at the end of a good run, publishes
an immutable copy atomically (write a temporary file, fsync, rename over FILE). A reader
holding FILE open keeps its old inode; the pipeline never opens FILE for writing.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sharegraph.contract import TABLES, staging_ddl

log = logging.getLogger(__name__)

SCHEMAS = ("raw", "staging", "quarantine", "graph", "marts")

QUARANTINE_DDL = (
    """CREATE TABLE IF NOT EXISTS quarantine.rejected_rows (
        batch_id VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL,
        column_name VARCHAR,
        rule VARCHAR NOT NULL,
        raw_value VARCHAR,
        raw_record VARCHAR,
        rejected_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine.batches (
        batch_id VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL,
        file_sha256 VARCHAR NOT NULL,
        rows_read BIGINT NOT NULL,
        rows_loaded BIGINT NOT NULL,
        rows_quarantined BIGINT NOT NULL,
        rows_already_loaded BIGINT NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine.flagged_rows (
        batch_id VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        source_file VARCHAR NOT NULL,
        source_row BIGINT NOT NULL,
        column_name VARCHAR,
        rule VARCHAR NOT NULL,
        raw_value VARCHAR,
        flagged_at TIMESTAMP NOT NULL
    )""",
)


@dataclass(frozen=True)
class WarehousePaths:
    """Where one warehouse lives: the published snapshot and the working file beside it."""

    published: Path

    @property
    def working(self) -> Path:
        return self.published.with_name(f"{self.published.stem}.working.duckdb")

    @property
    def staging_copy(self) -> Path:
        return self.published.with_name(f".{self.published.name}.publishing")

    @classmethod
    def of(cls, published: str | os.PathLike[str]) -> WarehousePaths:
        return cls(Path(published).expanduser().resolve())


def connect(path: str | os.PathLike[str], *, read_only: bool = False, timezone: str = "Asia/Shanghai") -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file with the session settings every stage relies on."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute(f"SET TimeZone = '{timezone}'")
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas, staging and quarantine tables if missing (idempotent)."""
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table in TABLES.values():
        con.execute(staging_ddl(table))
    for ddl in QUARANTINE_DDL:
        con.execute(ddl)


@contextmanager
def working(paths: WarehousePaths, timezone: str = "Asia/Shanghai") -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the working file with the schema in place."""
    con = connect(paths.working, timezone=timezone)
    try:
        ensure_schema(con)
        yield con
    finally:
        con.close()


def publish(paths: WarehousePaths) -> Path:
    """Publish the working file as the analysts' snapshot, atomically.

    The copy is written under a temporary name in the same directory, fsynced, then renamed
    over the published name; a crash at any point leaves the previous snapshot intact.
    The working file must be closed by every writer (DuckDB checkpoints on close).
    """
    con = duckdb.connect(str(paths.working))
    con.execute("CHECKPOINT")
    con.close()
    tmp = paths.staging_copy
    shutil.copyfile(paths.working, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, paths.published)
    dir_fd = os.open(paths.published.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("published %s", paths.published)
    return paths.published


def comment_table(con: duckdb.DuckDBPyConnection, table: str, text: str, columns: dict[str, str]) -> None:
    """Attach COMMENT ON TABLE / COLUMN documentation; every column must be described."""
    con.execute(f"COMMENT ON TABLE {table} IS {_sql_str(text)}")
    actual = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    missing = [c for c in actual if c not in columns]
    if missing:
        raise ValueError(f"{table}: columns without a description: {', '.join(missing)}")
    for name, desc in columns.items():
        con.execute(f"COMMENT ON COLUMN {table}.{name} IS {_sql_str(desc)}")


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
