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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sharegraph.core.config import MEMORY_SIZE
from sharegraph.core.contract import TABLES, staging_ddl
from sharegraph.core.sql import count_rows, literal

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
        finished_at TIMESTAMP NOT NULL,
        rows_updated BIGINT NOT NULL DEFAULT 0,
        notes VARCHAR
    )""",
    # warehouses made before these columns existed
    "ALTER TABLE quarantine.batches ADD COLUMN IF NOT EXISTS rows_updated BIGINT DEFAULT 0",
    "ALTER TABLE quarantine.batches ADD COLUMN IF NOT EXISTS notes VARCHAR",
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


STATUS_HISTORY_DDL = """CREATE TABLE IF NOT EXISTS staging.status_history (
    table_name VARCHAR NOT NULL,
    natural_key VARCHAR NOT NULL,
    column_name VARCHAR NOT NULL,
    old_value VARCHAR,
    new_value VARCHAR,
    batch_id VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_row BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL
)"""

STATUS_HISTORY_TEXT = (
    "One row per change of a mutable column (orders.status; group_buys.status, closed_at) "
    "by a later export: the staged row was updated, its old value is kept here.")

STATUS_HISTORY_COMMENTS = {
    "table_name": "Contract table of the row (orders, group_buys).",
    "natural_key": "The row's natural key, comma-joined (order_id,line_no or group_id).",
    "column_name": "Column that changed.",
    "old_value": "Value before the update, as text.",
    "new_value": "Value after the update, as text.",
    "batch_id": "Load batch that brought the change; see quarantine.batches.",
    "source_file": "Export file that brought the change.",
    "source_row": "1-based data row number of the changing row in that file.",
    "changed_at": "When the update was applied (local time).",
}

CHANNELS_TEXT = ("One row per channel value of staging.orders: its class (platform / social / "
                 "other) and line count; rebuilt at every load (docs/data-contract.md).")
CHANNELS_COMMENTS = {
    "channel": "Channel value as loaded into staging.orders.channel (canonical after synonyms).",
    "channel_class": "platform (marketplaces, 公域), social (WeChat private domain, 私域) or other "
                     "(a value no built-in, sharegraph.toml or mapping-file class names).",
    "order_lines": "Order lines in staging.orders with this channel.",
}

CHANNELS_DDL = """CREATE TABLE IF NOT EXISTS staging.channels (
    channel VARCHAR, channel_class VARCHAR, order_lines BIGINT)"""

DAILY_EXPORTS_DDL = """CREATE TABLE IF NOT EXISTS raw.daily_exports (
    export_date DATE NOT NULL,
    table_name VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    batch_id VARCHAR,
    outcome VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_already_loaded BIGINT NOT NULL,
    reason VARCHAR,
    processed_at TIMESTAMP NOT NULL
)"""

DAILY_EXPORTS_COMMENTS = {
    "export_date": "Export day (the date in the file name), the Dagster partition key.",
    "table_name": "Contract table the file feeds.",
    "file_name": "Delivered file name.",
    "batch_id": "Load batch in quarantine.batches (the earlier batch when the same content was loaded before).",
    "outcome": "loaded | same_content (identical file loaded before, skipped) | rejected (moved to rejected/).",
    "rows_read": "Data rows read from the file in this load (0 when skipped or rejected).",
    "rows_loaded": "Rows inserted into staging (new natural keys).",
    "rows_quarantined": "Rows rejected into quarantine.rejected_rows.",
    "rows_already_loaded": "Rows whose natural key was already loaded (re-delivery, overlapping days).",
    "reason": "Why the file was rejected (NULL otherwise).",
    "processed_at": "When the partition load handled the file (local time).",
}


DAILY_EXPORTS_TEXT = (
    "One row per delivered export file per export day: what the daily partition load did "
    "with it (see docs/operations.md)."
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


def connect(path: str | os.PathLike[str], *, read_only: bool = False, timezone: str = "Asia/Shanghai",
            memory_limit: str = "") -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file with the session settings every stage relies on (``memory_limit``:
    the setting of that name, empty for DuckDB's default)."""
    path = Path(path)
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"cannot create the directory of {path}: {exc.strerror or exc}") from None
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = ?", [timezone])  # bound, never pasted into the SQL text
    _apply_memory_limit(con, memory_limit)
    return con


def _apply_memory_limit(con: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
    """The setting ``memory_limit`` (empty: DuckDB's default), never above DuckDB's default."""
    if memory_limit:
        default = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        if size_bytes(memory_limit) < size_bytes(default):
            con.execute("SET memory_limit = ?", [memory_limit])


@contextmanager
def memory_limit_at_most(con: duckdb.DuckDBPyConnection, limit: str,
                         configured: str) -> Iterator[None]:
    """Lower DuckDB's ``memory_limit`` to ``limit`` for the block (never raise it), then set
    it back as :func:`connect` set it from ``configured`` (the run's setting; DuckDB shows the
    current limit rounded, so it cannot be read back exactly). Why: while NumPy kernels hold
    large arrays beside DuckDB, the buffer pool's cached blocks are what can give way; DuckDB
    evicts them to meet the lower limit."""
    now = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    lowered = False
    if size_bytes(limit) < size_bytes(now):
        try:
            con.execute("SET memory_limit = ?", [limit])
            lowered = True
        except duckdb.Error as exc:  # more than ``limit`` pinned right now: keep the limit
            log.info("memory limit stays %s: %s", now, exc)
    try:
        yield
    finally:
        if lowered:
            con.execute("RESET memory_limit")
            _apply_memory_limit(con, configured)


_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def size_bytes(text: str) -> float:
    """Bytes of a size as DuckDB reads or writes it ("5GB", "19.0 GiB"); inf if unreadable."""
    m = MEMORY_SIZE.fullmatch(text)
    return float(m[1]) * _UNITS[m[2].lower()] if m else float("inf")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schemas, staging and quarantine tables if missing (idempotent)."""
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table in TABLES.values():
        con.execute(staging_ddl(table))
    for ddl in QUARANTINE_DDL:
        con.execute(ddl)
    con.execute(STATUS_HISTORY_DDL)
    con.execute(CHANNELS_DDL)
    con.execute(DAILY_EXPORTS_DDL)
    _comment_base_tables(con)


LINEAGE_COLUMNS = {
    "source_file": "Lineage: the export file the row was loaded from.",
    "source_row": "Lineage: 1-based data row number in that file.",
    "batch_id": "Lineage: the load batch (one per file per run); see quarantine.batches.",
    "loaded_at": "Lineage: when the row was loaded (local time).",
}

QUARANTINE_COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "rejected_rows": (
        "One row per rejected (row, rule): input rows that broke the data contract and were not loaded.",
        {
            "batch_id": "Load batch that read the row; see quarantine.batches.",
            "table_name": "Contract table the file feeds (orders, share_events, ...).",
            "source_file": "Export file the row came from.",
            "source_row": "1-based data row number in that file.",
            "column_name": "Column that broke the rule (NULL for a whole-row rule).",
            "rule": "The rule broken, e.g. required, type, allowed values, duplicate key.",
            "raw_value": "The offending value as text, exactly as read.",
            "raw_record": "The whole input row as JSON text.",
            "rejected_at": "When the row was rejected (local time).",
        },
    ),
    "batches": (
        "One row per load batch (one file loaded once): the reconciliation "
        "rows_read = rows_loaded + rows_updated + rows_quarantined + rows_already_loaded.",
        {
            "batch_id": "Load batch id.",
            "table_name": "Contract table the file feeds.",
            "source_file": "Export file loaded.",
            "file_sha256": "SHA-256 of the file's bytes.",
            "rows_read": "Data rows read from the file.",
            "rows_loaded": "Rows inserted into staging (new natural keys).",
            "rows_quarantined": "Rows rejected into quarantine.rejected_rows.",
            "rows_already_loaded": "Valid rows whose natural key was already in staging (re-delivery, overlap).",
            "started_at": "When the batch started (local time).",
            "finished_at": "When the batch finished (local time).",
            "rows_updated": "Rows whose natural key was loaded before and whose status changed (paid -> refunded, open -> filled, ...): the staged row was updated and the change kept in staging.status_history.",
            "notes": "Headers of the file that mapped to no column, and look-alike headers with the column they resemble (NULL when every header mapped).",
        },
    ),
    "flagged_rows": (
        "One row per (loaded row, warning rule): rows loaded but flagged for review.",
        {
            "batch_id": "Load batch that read the row.",
            "table_name": "Contract table the file feeds.",
            "source_file": "Export file the row came from.",
            "source_row": "1-based data row number in that file.",
            "column_name": "Column the flag is about.",
            "rule": "The warning rule.",
            "raw_value": "The flagged value as text.",
            "flagged_at": "When the row was flagged (local time).",
        },
    ),
}


def _comment_base_tables(con: duckdb.DuckDBPyConnection) -> None:
    """COMMENT ON the staging and quarantine tables, from the contract, once per file.

    Skipped when every such table already has a comment, so opening the working file stays
    cheap; columns added by the ingest beyond the contract get a generic lineage note.
    """
    known = [f"staging.{t}" for t in TABLES] + [f"quarantine.{t}" for t in QUARANTINE_COMMENTS]
    known += ["raw.daily_exports", "staging.status_history", "staging.channels"]
    missing = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name IN "
        "(SELECT unnest($1::VARCHAR[])) AND (comment IS NULL OR comment = '')",
        [known],
    ).fetchall()[0][0]
    if not missing:
        return
    for table in TABLES.values():
        cols = {c.name: c.description or c.name for c in table.columns} | LINEAGE_COLUMNS
        actual = [r[0] for r in con.execute(f"DESCRIBE staging.{table.name}").fetchall()]
        cols = {k: v for k, v in cols.items() if k in actual}
        cols |= {c: f"Ingest bookkeeping column {c}." for c in actual if c not in cols}
        comment_table(con, f"staging.{table.name}", f"{table.description} Typed and deduplicated by "
                      f"natural key ({', '.join(table.key)}).", cols)
    present = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'quarantine'").fetchall()}
    for name, (text, cols) in QUARANTINE_COMMENTS.items():
        if name not in present:
            continue
        actual = [r[0] for r in con.execute(f"DESCRIBE quarantine.{name}").fetchall()]
        cols = {k: v for k, v in cols.items() if k in actual}
        cols |= {c: f"Ingest bookkeeping column {c}." for c in actual if c not in cols}
        comment_table(con, f"quarantine.{name}", text, cols)
    comment_table(con, "raw.daily_exports", DAILY_EXPORTS_TEXT, DAILY_EXPORTS_COMMENTS)
    comment_table(con, "staging.status_history", STATUS_HISTORY_TEXT, STATUS_HISTORY_COMMENTS)
    comment_table(con, "staging.channels", CHANNELS_TEXT, CHANNELS_COMMENTS)


def _copy_synced(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` and fsync it, so a rename that follows never exposes a file whose
    data a crash could still lose."""
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


def restore_working(paths: WarehousePaths) -> bool:
    """Copy the published snapshot to the working file when only the snapshot exists.

    The working file is where every run continues from. Without this, a lost working file
    (deleted to save space, or a warehouse moved by copying the published file alone) would
    start an empty one, and the next publish would replace the snapshot's history with the
    new batches only. The copy goes through a temporary name, so a crash leaves no partial
    working file. Returns True when it copied.
    """
    if paths.working.exists() or not paths.published.is_file():
        return False
    tmp = paths.working.with_name(f".{paths.working.name}.restoring")
    _copy_synced(paths.published, tmp)
    os.chmod(tmp, 0o644)  # the snapshot is read-only (0444); the working file is written
    os.replace(tmp, paths.working)
    return True


def open_working(paths: WarehousePaths, timezone: str = "Asia/Shanghai",
                 memory_limit: str = "") -> duckdb.DuckDBPyConnection:
    """A read-write connection to the working file (restored from the snapshot when lost,
    :func:`restore_working`) with the schema in place."""
    if restore_working(paths):
        log.warning("%s: no working file; continuing from the published snapshot %s",
                    paths.working, paths.published)
    con = connect(paths.working, timezone=timezone, memory_limit=memory_limit)
    try:
        ensure_schema(con)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def working(paths: WarehousePaths, timezone: str = "Asia/Shanghai",
            memory_limit: str = "") -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`open_working`, closed at the end of the block."""
    con = open_working(paths, timezone=timezone, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


class WarehouseError(Exception):
    """The warehouse cannot be written or published; the message names the path and why."""


class PublishError(WarehouseError):
    """Publishing failed; the previously published snapshot is unchanged."""


FAULT_ENV = "SHAREGRAPH_FAULT_AFTER"
FAULT_SIGNAL_ENV = "SHAREGRAPH_FAULT_SIGNAL"
FAULT_PAUSE_ENV = "SHAREGRAPH_FAULT_PAUSE_S"


def fault_point(name: str) -> None:
    """Fault-injection hook for the crash tests: pause here when SHAREGRAPH_FAULT_AFTER names it.

    The test sets ``SHAREGRAPH_FAULT_AFTER=<name>`` (comma-separated for several) and
    ``SHAREGRAPH_FAULT_SIGNAL=<file>``; on reaching the point the process writes the file and
    sleeps ``SHAREGRAPH_FAULT_PAUSE_S`` seconds (default 120), so the test can SIGKILL it at
    exactly that moment. Unset (always, in production) it costs one dict lookup.
    """
    wanted = os.environ.get(FAULT_ENV)
    if not wanted or name not in {w.strip() for w in wanted.split(",")}:
        return
    log.warning("fault point %s reached (pid %d), pausing", name, os.getpid())
    signal_file = os.environ.get(FAULT_SIGNAL_ENV)
    if signal_file:
        Path(signal_file).write_text(f"{name} {os.getpid()}\n", encoding="utf-8")
    time.sleep(float(os.environ.get(FAULT_PAUSE_ENV, "120")))


def check_writable(paths: WarehousePaths) -> None:
    """Fail early, with the path and the reason, when the warehouse directory is unusable.

    Catches a missing or read-only location, or a file where the directory should be,
    before any stage has done work.
    """
    parent = paths.published.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WarehouseError(
            f"cannot create the warehouse directory {parent}: {exc.strerror or exc}"
        ) from None
    if not parent.is_dir():
        raise WarehouseError(f"the warehouse directory {parent} is not a directory")
    probe = parent / f".{paths.published.name}.probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WarehouseError(f"cannot write in the warehouse directory {parent}: {exc.strerror or exc}") from None
    for existing in (paths.published, paths.working):
        if existing.exists() and not existing.is_file():
            raise WarehouseError(f"{existing} exists and is not a file")


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Exact row count of every table, keyed ``schema.table`` (one UNION ALL query)."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY ALL"
    ).fetchall()
    if not tables:
        return {}
    union = " UNION ALL ".join(
        f"SELECT '{s}.{t}' AS name, count(*) AS n FROM \"{s}\".\"{t}\"" for s, t in tables
    )
    return dict(con.execute(union).fetchall())


def publish(paths: WarehousePaths) -> Path:
    """Publish the working file as the analysts' snapshot, atomically.

    The working file is checkpointed and held open (DuckDB's file lock keeps every other
    writer out while it is copied), copied to a temporary name in the same directory,
    fsynced, verified (it opens read-only with the same tables and row counts), made
    read-only, then renamed over the published name and the directory fsynced. A reader
    holding the old snapshot keeps its inode; a crash or error at any point leaves the
    previous snapshot intact and removes the temporary copy. Raises PublishError.
    """
    if not paths.working.is_file():
        raise PublishError(f"nothing to publish: the working file {paths.working} does not exist")
    tmp = paths.staging_copy
    try:
        con = duckdb.connect(str(paths.working))
    except duckdb.Error as exc:
        raise PublishError(f"cannot open the working file {paths.working} to publish it: {exc}") from None
    try:
        con.execute("CHECKPOINT")
        expected = table_counts(con)
        tmp.unlink(missing_ok=True)  # left by a publish that was killed
        _copy_synced(paths.working, tmp)
        fault_point("publish-copy")
        check = duckdb.connect(str(tmp), read_only=True)
        try:
            got = table_counts(check)
        finally:
            check.close()
        if got != expected:
            raise PublishError(f"the copy {tmp} does not match the working file (tables or row counts differ)")
        os.chmod(tmp, 0o444)
        os.replace(tmp, paths.published)
        dir_fd = os.open(paths.published.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except PublishError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, duckdb.Error) as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PublishError(
            f"publishing {paths.published} failed: {reason}; the previously published "
            "snapshot (if any) is unchanged"
        ) from None
    finally:
        con.close()
    log.info("published %s (%d tables)", paths.published, len(expected))
    return paths.published


def create_table_as(con: duckdb.DuckDBPyConnection, table: str, query: str,
                    ids: Sequence[str] = ()) -> None:
    """``CREATE OR REPLACE TABLE table AS query``, storing the ``ids`` columns with ZSTD.

    Why: on near-unique id strings (order, person, share ids) DuckDB's default string
    compression (dictionary + FSST) is the slowest part of writing a large table and saves
    little; ZSTD writes them about twice as fast and smaller (docs/warehouse.md#storage).
    Other columns keep DuckDB's choice. The query must not rely on Python variables of the
    caller (replacement scans): register those first.
    """
    if not ids:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {query}")
        return
    columns = con.execute(f"DESCRIBE {query}").fetchall()
    unknown = set(ids) - {c[0] for c in columns}
    if unknown:
        raise ValueError(f"{table}: no column(s) {', '.join(sorted(unknown))} to store as ZSTD")
    ddl = ", ".join(f'"{name}" {kind}' + (" USING COMPRESSION zstd" if name in ids else "")
                    for name, kind, *_ in columns)
    con.execute(f"CREATE OR REPLACE TABLE {table} ({ddl})")
    con.execute(f"INSERT INTO {table} {query}")


@contextmanager
def one_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: the caller's if one is open, else a new one.

    Why: in autocommit mode every catalog statement is its own commit, and each commit syncs
    DuckDB's write-ahead log to disk (COMMENT ON a 20-column table: ~40 ms of syncs vs ~5 ms).
    """
    def txid() -> int:
        return con.execute("SELECT txid_current()").fetchone()[0]

    if txid() == txid():  # the same id twice: inside the caller's transaction (a failed
        yield             # BEGIN would abort it, so ask instead of trying)
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def comment_table(con: duckdb.DuckDBPyConnection, table: str, text: str, columns: dict[str, str]) -> None:
    """Attach COMMENT ON TABLE / COLUMN documentation; every column must be described."""
    actual = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    missing = [c for c in actual if c not in columns]
    if missing:
        raise ValueError(f"{table}: columns without a description: {', '.join(missing)}")
    with one_transaction(con):
        con.execute(f"COMMENT ON TABLE {table} IS {literal(text)}")
        for name, desc in columns.items():
            con.execute(f"COMMENT ON COLUMN {table}.{name} IS {literal(desc)}")


def finish_table(con: duckdb.DuckDBPyConnection, table: str, text: str, columns: dict[str, str]) -> int:
    """Document a table a builder has just written, log it and return its row count.

    Why one helper: every graph and mart builder ends the same way (COMMENT ON the table and
    each column, count, one log line), so the documentation rule is kept in one place.
    """
    comment_table(con, table, text, columns)
    n = count_rows(con, table)
    log.info("%s: %d rows", table, n)
    return n
