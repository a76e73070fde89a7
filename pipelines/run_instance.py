"""The Dagster instance a ``sharegraph run`` records its run in: Dagster's SQLite storage, same
files and schema, with each database file opened once per process instead of once per event.

Why: Dagster's SQLite storages create a SQLAlchemy engine and a new SQLite connection for every
read or write, and close it after (about four per event, ~300 events in a run). On a small
input that bookkeeping cost ~1.9 s of a ~6 s run (docs/performance.md, "Fixed cost"). Here
one engine per file keeps its connection in its pool until the instance is disposed, and
commits use ``synchronous = NORMAL``, which SQLite documents as corruption-safe in WAL mode:
a power cut can lose the last events of the run log, never the warehouse (DuckDB syncs its
own commits). ``dagster dev`` and the daemon read the same files with Dagster's own classes.
The event log also keeps the schema facts it has seen, and a fresh instance reads Dagster's
migration scripts once (docs/performance.md, session 11).

Only this process's instance uses these classes (:func:`open_run_instance`); the project's
``dagster.yaml`` is left as it is. They override methods of dagster 1.13's SQLite storages
(``_connect``, ``connect``, ``has_table``, ``has_asset_key_col``, ``has_secondary_index``) and,
while the instance opens, alembic's ``ScriptDirectory.from_config``; dagster is pinned by
``pyproject.toml``. Tests read a run back through Dagster's own classes and check the
storages' revisions (``tests/pipelines/test_run_output.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS


def _engine(conn_string: str) -> sa.Engine:
    """An engine whose pool keeps its SQLite connection open, committing with NORMAL sync."""
    engine = sa.create_engine(conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    sa.event.listen(engine, "connect",
                    lambda dbapi_connection, _record: dbapi_connection.execute(
                        "PRAGMA synchronous = NORMAL"))
    return engine


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log (one file per run plus the index), one engine per file."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: dict[str, sa.Engine] = {}  # before super(): it may connect already
        self._present: set[tuple[str, str]] = set()
        super().__init__(base_dir, inst_data=inst_data)

    # Schema facts Dagster looks up again for every event or step (a new engine per table
    # lookup, a reflection of the asset key table per column): ~0.15 s a run. Only a
    # migration adds them and none runs during a run, so a fact once seen is kept.
    def _seen(self, kind: str, name: str, look: Callable[[str], bool]) -> bool:
        if (kind, name) not in self._present:
            if not look(name):
                return False
            self._present.add((kind, name))
        return True

    def has_table(self, table_name: str) -> bool:
        return self._seen("table", table_name, super().has_table)

    def has_asset_key_col(self, column_name: str) -> bool:
        return self._seen("column", column_name, super().has_asset_key_col)

    def has_secondary_index(self, name: str) -> bool:
        return self._seen("index", name, super().has_secondary_index)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = self._engines[shard] = _engine(self.conn_string_for_shard(shard))
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (``runs.db``) through one engine."""

    def __init__(self, conn_string: str, inst_data: Any = None) -> None:
        super().__init__(conn_string, inst_data=inst_data)
        self._engine: sa.Engine | None = None

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        if self._engine is None:
            self._engine = _engine(self._conn_string)
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def open_run_instance(home: str | os.PathLike[str]) -> dg.DagsterInstance:
    """The persistent instance of ``home`` (its ``dagster.yaml``) with the pooled storages in
    Dagster's default SQLite layout under ``home`` (``history/runs.db``,
    ``history/runs/<run>.db``, ``schedules/``), as the standard classes would use them."""
    base = os.fspath(home)
    module = __name__

    def storage(cls: type, sub: str) -> dict[str, object]:
        return {"module": module, "class": cls.__name__,
                "config": {"base_dir": os.path.join(base, sub, "")}}

    ref = InstanceRef.from_dir(base, overrides={
        "run_storage": storage(PooledSqliteRunStorage, "history"),
        "event_log_storage": storage(PooledSqliteEventLogStorage, os.path.join("history", "runs")),
        "schedule_storage": {"module": "dagster._core.storage.schedules",
                             "class": "SqliteScheduleStorage",
                             "config": {"base_dir": os.path.join(base, "schedules")}},
    })
    with _revisions_read_once():
        return dg.DagsterInstance.from_ref(ref)


@contextmanager
def _revisions_read_once() -> Iterator[None]:
    """While the storages open, one alembic ``ScriptDirectory`` per location. Dagster builds a
    new one for every revision check and stamp, seven on a fresh instance, and each parses
    Dagster's ~90 migration scripts again: 0.2 s of a first run. The revisions are the same
    files each time, so reading them once changes nothing else."""
    original = ScriptDirectory.__dict__["from_config"]
    read: dict[str, ScriptDirectory] = {}

    def from_config(config: Any) -> ScriptDirectory:
        location = config.get_alembic_option("script_location")
        if location not in read:
            read[location] = original.__get__(None, ScriptDirectory)(config)
        return read[location]

    ScriptDirectory.from_config = staticmethod(from_config)
    try:
        yield
    finally:
        ScriptDirectory.from_config = original
