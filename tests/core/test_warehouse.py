"""sharegraph/core/warehouse.py: atomic publish, readers on old snapshots, comments, preflight."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import duckdb
import pytest

from sharegraph.core import warehouse as wh
from sharegraph.core.contract import TABLES


def make_working(paths: wh.WarehousePaths, rows: int) -> None:
    with wh.working(paths) as con:
        con.execute("CREATE OR REPLACE TABLE marts.t AS SELECT range AS id, md5(range::VARCHAR) AS h "
                    f"FROM range({rows})")


def test_publish_is_a_verified_read_only_copy(tmp_path: Path) -> None:
    paths = wh.WarehousePaths.of(tmp_path / "wh.duckdb")
    make_working(paths, 1000)
    assert wh.publish(paths) == paths.published
    assert not paths.staging_copy.exists()
    assert not stat.S_IMODE(paths.published.stat().st_mode) & 0o222  # immutable snapshot
    con = wh.connect(paths.published, read_only=True)
    assert con.execute("SELECT count(*), sum(id) FROM marts.t").fetchall() == [(1000, 499500)]
    with pytest.raises(duckdb.Error):
        con.execute("CREATE TABLE marts.x (a INT)")
    con.close()


def test_reader_on_old_snapshot_survives_republish(tmp_path: Path) -> None:
    """os.replace keeps the reader's inode: its queries keep working and see the old data."""
    paths = wh.WarehousePaths.of(tmp_path / "wh.duckdb")
    make_working(paths, 200_000)
    wh.publish(paths)
    reader = wh.connect(paths.published, read_only=True)
    old_inode = paths.published.stat().st_ino
    make_working(paths, 300_000)
    wh.publish(paths)  # never blocked by the open reader
    assert paths.published.stat().st_ino != old_inode
    # the old connection reads its (unlinked) file: full scans, not cached metadata
    assert reader.execute("SELECT count(*), sum(id), count(DISTINCT h) FROM marts.t").fetchall() == [
        (200_000, 199_999 * 200_000 // 2, 200_000)]
    reader.close()
    fresh = wh.connect(paths.published, read_only=True)
    assert fresh.execute("SELECT count(*) FROM marts.t").fetchall() == [(300_000,)]
    fresh.close()


def test_publish_without_working_file_fails_clearly(tmp_path: Path) -> None:
    paths = wh.WarehousePaths.of(tmp_path / "wh.duckdb")
    with pytest.raises(wh.PublishError, match="does not exist"):
        wh.publish(paths)
    assert not paths.published.exists()


def test_a_lost_working_file_is_restored_from_the_snapshot(tmp_path: Path) -> None:
    """Without its working file a run goes on from the published snapshot, never from an
    empty file whose publish would drop the snapshot's history."""
    paths = wh.WarehousePaths.of(tmp_path / "wh.duckdb")
    make_working(paths, 1000)
    wh.publish(paths)
    paths.working.unlink()
    with wh.working(paths) as con:
        con.execute("INSERT INTO marts.t SELECT range + 1000, 'new' FROM range(5)")
    assert stat.S_IMODE(paths.working.stat().st_mode) & 0o200  # the restored copy is writable
    assert not stat.S_IMODE(paths.published.stat().st_mode) & 0o222  # the snapshot is not
    work = wh.connect(paths.working, read_only=True)
    assert work.execute("SELECT count(*) FROM marts.t").fetchall() == [(1005,)]
    work.close()
    assert wh.restore_working(paths) is False  # an existing working file is never replaced
    assert not list(tmp_path.glob(".*restoring"))


def test_stale_temporary_copy_is_replaced(tmp_path: Path) -> None:
    """A publish killed after the copy leaves .wh.duckdb.publishing; the next one overwrites it."""
    paths = wh.WarehousePaths.of(tmp_path / "wh.duckdb")
    make_working(paths, 10)
    paths.staging_copy.write_bytes(b"garbage from a killed publish")
    wh.publish(paths)
    assert not paths.staging_copy.exists()
    con = wh.connect(paths.published, read_only=True)
    assert con.execute("SELECT count(*) FROM marts.t").fetchall() == [(10,)]
    con.close()


def test_check_writable_names_the_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the warehouse directory should be")
    with pytest.raises(wh.WarehouseError, match="not-a-dir"):
        wh.check_writable(wh.WarehousePaths.of(blocker / "wh.duckdb"))
    with pytest.raises(wh.WarehouseError, match="cannot create"):
        wh.connect(blocker / "wh.duckdb")
    (tmp_path / "dir.duckdb").mkdir()
    with pytest.raises(wh.WarehouseError, match="is not a file"):
        wh.check_writable(wh.WarehousePaths.of(tmp_path / "dir.duckdb"))
    wh.check_writable(wh.WarehousePaths.of(tmp_path / "ok" / "wh.duckdb"))


def test_ensure_schema_comments_every_staging_and_quarantine_column(tmp_path: Path) -> None:
    con = wh.connect(tmp_path / "w.duckdb")
    wh.ensure_schema(con)
    wh.ensure_schema(con)  # idempotent
    missing = con.execute(
        "SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
        "WHERE schema_name IN ('staging', 'quarantine') AND (comment IS NULL OR comment = '')"
    ).fetchall()
    assert missing == []
    tables = con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'staging'").fetchall()
    assert {t for t, _ in tables} == set(TABLES) | {"status_history", "channels"}
    assert all(c for _, c in tables)
    con.close()


def test_fault_point_signals_and_pauses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signal = tmp_path / "reached"
    wh.fault_point("publish-copy")  # unset: no-op
    assert not signal.exists()
    monkeypatch.setenv(wh.FAULT_ENV, "daily-load, publish-copy")
    monkeypatch.setenv(wh.FAULT_SIGNAL_ENV, str(signal))
    monkeypatch.setenv(wh.FAULT_PAUSE_ENV, "0")
    wh.fault_point("publish-copy")
    assert signal.read_text().split() == ["publish-copy", str(os.getpid())]


def test_create_table_as_stores_id_columns_with_zstd(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    query = ("SELECT 'o' || i AS order_id, 'shop' || (i % 3) AS merchant_id, i::DOUBLE AS amount "
             "FROM range(300000) t(i)")
    wh.create_table_as(con, "t", query, ids=("order_id",))
    con.execute("CHECKPOINT")
    used = dict(con.execute("SELECT column_name, string_agg(DISTINCT compression, ',') "
                            "FROM pragma_storage_info('t') WHERE segment_type = 'VARCHAR' "
                            "GROUP BY 1").fetchall())
    assert "ZSTD" in used["order_id"] and "ZSTD" not in used["merchant_id"]
    assert con.execute("SELECT * FROM t ORDER BY amount DESC LIMIT 1").fetchall() == \
        [("o299999", "shop2", 299999.0)]
    with pytest.raises(ValueError, match="customer_id"):
        wh.create_table_as(con, "t", query, ids=("customer_id",))


def test_one_transaction_joins_an_open_transaction_and_rolls_back_its_own(tmp_path) -> None:
    """Inside the caller's transaction it neither commits nor aborts it; alone it commits,
    and an error inside rolls back what the block did."""
    import duckdb
    import pytest

    from sharegraph.core.warehouse import one_transaction

    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("BEGIN TRANSACTION")
    with one_transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
    con.execute("INSERT INTO t VALUES (2)")  # the caller's transaction is still usable
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    with one_transaction(con):
        con.execute("INSERT INTO t VALUES (3)")
    with pytest.raises(ZeroDivisionError), one_transaction(con):
        con.execute("INSERT INTO t VALUES (4)")
        raise ZeroDivisionError
    assert con.execute("SELECT list(x) FROM t").fetchone()[0] == [3]


def test_the_memory_limit_setting_reaches_the_runs_connection(tmp_path: Path) -> None:
    """Setting memory_limit bounds DuckDB's buffer pool on the run's working connection;
    a size DuckDB cannot read fails when the settings load, not in a step."""
    import json

    from assets.resources import WarehouseResource
    from sharegraph.core.config import Settings

    resource = WarehouseResource(warehouse=str(tmp_path / "wh.duckdb"), input_dir=str(tmp_path),
                                 reports_dir=str(tmp_path / "r"),
                                 settings_overrides=json.dumps({"memory_limit": "1GiB"}))
    with resource.connect() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "1.0 GiB"
    default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    with wh.connect(tmp_path / "big.duckdb", memory_limit="1000TB") as con:  # never above DuckDB's default
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == default
    assert wh.size_bytes("5GB") == 5e9 and wh.size_bytes("19.0 GiB") == 19 * 2**30
    with pytest.raises(ValueError, match="memory_limit '80%' is not a size"):
        Settings().with_values({"memory_limit": "80%"})


def test_memory_limit_at_most_lowers_for_the_block_and_restores(tmp_path: Path) -> None:
    con = wh.connect(tmp_path / "m.duckdb", memory_limit="3GB")

    def limit() -> float:
        return wh.size_bytes(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])

    before = limit()
    with wh.memory_limit_at_most(con, "1GB", "3GB"):
        assert limit() < 1.01e9
    assert limit() == before
    with wh.memory_limit_at_most(con, "8GB", "3GB"):  # never raised
        assert limit() == before
    with pytest.raises(duckdb.Error), wh.memory_limit_at_most(con, "1GB", "3GB"):
        con.execute("SELECT * FROM no_such_table")
    assert limit() == before  # restored after an error too
    con.close()
