"""Incremental builds: which load batches a derived table already reflects.

Staging only grows: a load inserts rows under a new ``batch_id`` and may update the status of
rows loaded before, writing each change to ``staging.status_history`` under the same batch
(sharegraph/ingest/load.py). A builder that can update its table per key records, in
``meta.build_state``, what it built from: the rows of every batch of its input tables, the
status changes of every batch, and a fingerprint of its SQL (so of the code and the settings
in it). The next build compares that with staging now:

- nothing new: the table is current and nothing is done;
- only new batches (and the changes they made): the builder recomputes the keys they touch;
- anything else (no state, another fingerprint, a recorded batch with other counts, more new
  input rows than ``MAX_DELTA_SHARE`` of those it was built from): a rebuild in full.

Why per batch and not per timestamp: export files arrive late and out of order, so "newer than
the last run" is not a property of the data; a batch either was seen or was not.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from sharegraph import __version__
from sharegraph.core.sql import in_list, literal, table_exists
from sharegraph.core.warehouse import comment_table, one_transaction

log = logging.getLogger(__name__)

STATE_TABLE = "meta.build_state"
MAX_DELTA_SHARE = 0.2
"""Above this share of new input rows an update would touch most keys: rebuild instead."""

_STATE_DOC = {
    "table_name": "Table maintained incrementally (schema.table).",
    "fingerprint": "SHA-256 of the SQL that builds it (its code and the settings in it); "
                   "another fingerprint means a rebuild in full.",
    "inputs": "JSON: per input table, the rows of each load batch the table reflects, and per "
              "table the status changes of each batch (staging.status_history).",
    "last_build": "How it was last brought up to date: full (rebuilt), update (the keys new "
                  "batches touch were recomputed) or current (nothing new).",
    "built_at": "When the table was last brought up to date (local time).",
    "rebuild_id": "Changes with every full rebuild: a table maintained from this one keeps it "
                  "in its fingerprint, so a rebuild upstream means a rebuild downstream.",
}


@dataclass(frozen=True)
class Inputs:
    """Rows per load batch of each input table, and status changes per batch."""

    rows: dict[str, dict[str, int]]
    changes: dict[str, dict[str, int]]

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "changes": self.changes}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Inputs:
        d = json.loads(text)
        return cls(d["rows"], d["changes"])

    def total_rows(self) -> int:
        return sum(n for batches in self.rows.values() for n in batches.values())


@dataclass(frozen=True)
class Delta:
    """What is new since a table was built: batch ids per input table."""

    rows: dict[str, tuple[str, ...]]
    changes: dict[str, tuple[str, ...]]

    def __bool__(self) -> bool:
        return any(self.rows.values()) or any(self.changes.values())

    def new_rows(self, table: str) -> str:
        """SQL predicate: the row of ``staging.<table>`` came in a new batch."""
        return _batch_in(self.rows.get(table, ()))

    def new_keys(self, table: str, key: str) -> str:
        """SQL query: ``key`` of every row of ``staging.<table>`` that came in a new batch."""
        return f"SELECT {key} FROM staging.{table} WHERE {self.new_rows(table)}"

    def changed(self, table: str) -> str:
        """SQL predicate on ``staging.status_history``: a status change of a new batch."""
        return f"table_name = {literal(table)} AND " + _batch_in(self.changes.get(table, ()))

    def key(self, tables: Sequence[str]) -> str:
        """The new batches and status changes of ``tables``, as canonical text: two builds
        that saw the same delta of those tables have the same key."""
        return json.dumps({t: [self.rows.get(t, ()), self.changes.get(t, ())]
                           for t in sorted(tables)}, sort_keys=True)


def _batch_in(batches: Sequence[str]) -> str:
    return f"batch_id IN ({in_list(list(batches))})" if batches else "false"


def fingerprint(*sql: str) -> str:
    """SHA-256 of a builder's SQL texts (its code and the settings written into them) and of
    the sharegraph version, so that a new release (new Python code around the SQL, such as
    a graph kernel) rebuilds every maintained table once."""
    h = hashlib.sha256(f"sharegraph {__version__}".encode())
    for text in sql:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


def current_inputs(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> Inputs:
    """Rows per batch of ``staging.<table>`` and status changes per batch, now."""
    rows = {t: dict(con.execute(f"SELECT batch_id, count(*) FROM staging.{t} GROUP BY 1")
                    .fetchall()) for t in tables}
    changed = con.execute(
        f"SELECT table_name, batch_id, count(*) FROM staging.status_history "
        f"WHERE table_name IN ({in_list(list(tables))}) GROUP BY 1, 2").fetchall()
    changes: dict[str, dict[str, int]] = {t: {} for t in tables}
    for table, batch, n in changed:
        changes[table][batch] = n
    return Inputs(rows, changes)


def plan(con: duckdb.DuckDBPyConnection, table: str, fp: str, now: Inputs) -> Delta | None:
    """The delta to apply to ``table``, or None when it must be rebuilt in full."""
    if not (table_exists(con, STATE_TABLE) and table_exists(con, table)):
        return None
    got = con.execute(f"SELECT fingerprint, inputs FROM {STATE_TABLE} WHERE table_name = ?",
                      [table]).fetchall()
    if not got or got[0][0] != fp:
        return None
    was = Inputs.from_json(got[0][1])
    if set(was.rows) != set(now.rows):
        return None
    new_rows: dict[str, tuple[str, ...]] = {}
    new_changes: dict[str, tuple[str, ...]] = {}
    for before, after, out in ((was.rows, now.rows, new_rows),
                               (was.changes, now.changes, new_changes)):
        for t in now.rows:
            seen, present = before.get(t, {}), after.get(t, {})
            if any(present.get(b) != n for b, n in seen.items()):
                return None  # a batch it saw lost or gained rows: staging is not what it was
            out[t] = tuple(sorted(b for b in present if b not in seen))
    added = now.total_rows() - was.total_rows()
    if added > MAX_DELTA_SHARE * max(was.total_rows(), 1):
        return None
    return Delta(new_rows, new_changes)


class Build:
    """One build of a maintained table: the delta to apply (None: rebuild in full) and how
    the table was brought up to date: ``full``, ``update`` or ``current`` (nothing new)."""

    def __init__(self, delta: Delta | None) -> None:
        self.delta = delta
        self.how = "full" if delta is None else ("update" if delta else "current")

    def rebuilt(self) -> None:
        """The builder found the delta cannot be applied per key and rebuilt in full."""
        self.how = "full"


@contextmanager
def maintained(con: duckdb.DuckDBPyConnection, table: str, fp: str,
               inputs: Sequence[str]) -> Iterator[Build]:
    """Plan and record one build of ``table``: yields the :class:`Build`.

    The state is forgotten before a full rebuild and written after it; a delta is applied
    and recorded in one transaction. A crash in between leaves no state or the old one; an
    update from the old state recomputes keys that are already current, which changes
    nothing, so either way the next build is right.
    """
    now = current_inputs(con, inputs)
    build = Build(plan(con, table, fp, now))
    _ensure_state_table(con)
    if build.delta is None:
        con.execute(f"DELETE FROM {STATE_TABLE} WHERE table_name = ?", [table])
        yield build
        _record(con, table, fp, now, build.how)
        return
    with one_transaction(con):
        yield build
        _record(con, table, fp, now, build.how)


def forget(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> None:
    """Drop the state of ``tables``: they were replaced by other means (the Spark engine's
    load), so their next build is in full."""
    if table_exists(con, STATE_TABLE):
        con.execute(f"DELETE FROM {STATE_TABLE} WHERE table_name IN ({in_list(list(tables))})")


def log_matches(con: duckdb.DuckDBPyConnection, log_table: str, key: str) -> bool:
    """True when the change log ``log_table`` (a ``delta`` column) was written by exactly the
    update of ``key`` (:meth:`Delta.key`): a table maintained from it saw every row of that
    log's upstream table as it was before that update, so it may update from the log."""
    if not table_exists(con, log_table):
        return False
    return con.execute(f"SELECT DISTINCT delta FROM {log_table}").fetchall() == [(key,)]


def last_builds(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """How each maintained table was last brought up to date: table -> full | update | current."""
    if not table_exists(con, STATE_TABLE):
        return {}
    return dict(con.execute(f"SELECT table_name, last_build FROM {STATE_TABLE} ORDER BY 1").fetchall())


def _ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    if table_exists(con, STATE_TABLE):
        return
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(f"""CREATE TABLE {STATE_TABLE} (table_name VARCHAR NOT NULL,
                    fingerprint VARCHAR NOT NULL, inputs VARCHAR NOT NULL,
                    last_build VARCHAR NOT NULL, built_at TIMESTAMP NOT NULL,
                    rebuild_id VARCHAR NOT NULL)""")
    comment_table(con, STATE_TABLE,
                  "One row per table maintained incrementally: the load batches it reflects "
                  "and the fingerprint of the SQL that built it (docs/performance.md#daily-runs).",
                  _STATE_DOC)


def rebuild_id(con: duckdb.DuckDBPyConnection, table: str,
               inputs: Sequence[str] = ()) -> str | None:
    """An id that changes with every full rebuild of ``table``; None without a state, or when
    its state does not reflect ``inputs`` as they are now (it was built by other means since).

    A table maintained from another one puts it in its fingerprint: while it is unchanged
    the upstream table has only been updated per key since, which the downstream update
    may rely on (appended rows, say); after a rebuild anything may have moved.
    """
    if not table_exists(con, STATE_TABLE):
        return None
    got = con.execute(f"SELECT rebuild_id, inputs FROM {STATE_TABLE} WHERE table_name = ?",
                      [table]).fetchone()
    if not got:
        return None
    if inputs:
        was, now = Inputs.from_json(got[1]), current_inputs(con, inputs)
        if any(was.rows.get(t) != now.rows[t] or was.changes.get(t) != now.changes[t]
               for t in inputs):
            return None
    return got[0]


def _record(con: duckdb.DuckDBPyConnection, table: str, fp: str, now: Inputs, how: str) -> None:
    rebuild = None if how == "full" else rebuild_id(con, table)
    con.execute(f"DELETE FROM {STATE_TABLE} WHERE table_name = ?", [table])
    con.execute(f"""INSERT INTO {STATE_TABLE} VALUES (?, ?, ?, ?, current_localtimestamp(),
                    coalesce(?, gen_random_uuid()::VARCHAR))""",
                [table, fp, now.to_json(), how, rebuild])
    log.info("%s: %s", table, how)
