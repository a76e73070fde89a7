"""End to end: a small generated world through `sharegraph run` and the Dagster definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sharegraph.core.warehouse import WarehousePaths

pytestmark = pytest.mark.slow


def _counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables() "
            "WHERE schema_name IN ('staging','graph','marts','quarantine')"
        ).fetchall()
        return {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name, _ in rows}
    finally:
        con.close()


def test_pipeline_run_publishes_a_reconciled_warehouse_and_reports(pipeline_run: dict, small_world: Path) -> None:
    published = pipeline_run["warehouse"]
    assert published.is_file()
    counts = _counts(published)
    # every input row is either loaded or quarantined
    con = duckdb.connect(str(published), read_only=True)
    try:
        bad = con.execute(
            "SELECT count(*) FROM quarantine.batches "
            "WHERE rows_read <> rows_loaded + rows_quarantined + rows_already_loaded"
        ).fetchone()[0]
        assert bad == 0
        read = dict(con.execute("SELECT table_name, sum(rows_read) FROM quarantine.batches GROUP BY 1").fetchall())
    finally:
        con.close()
    lines = sum(1 for _ in (small_world / "orders.csv").open(encoding="utf-8")) - 1
    assert read["orders"] == lines
    assert counts["staging.orders"] + counts["quarantine.rejected_rows"] >= lines - 0  # nothing lost
    for table in ("marts.agent_influence", "marts.cascades", "marts.category_affinity",
                  "marts.expansion_recommendations", "marts.kfactor", "marts.concentration"):
        assert counts[table] > 0, f"{table} is empty"
    reports = pipeline_run["reports"]
    for name in ("index.html", "influence.html", "cascades.html", "plotly.min.js"):
        assert (reports / name).is_file(), name
    assert list(reports.glob("expansion-*.html"))


def test_sharegraph_run_cli_twice_is_idempotent(small_world: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "SHAREGRAPH_STATE": str(tmp_path)}
    wh = tmp_path / "wh.duckdb"
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--input", str(small_world),
           "--warehouse", str(wh), "--reports", str(tmp_path / "reports")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "warehouse (open read-only)" in first.stderr
    before = _counts(wh)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    after = _counts(wh)
    assert after["staging.orders"] == before["staging.orders"]
    assert after["staging.share_events"] == before["staging.share_events"]
    assert after["marts.agent_influence"] == before["marts.agent_influence"]
    assert WarehousePaths.of(wh).working.is_file()


def test_a_failed_run_leaves_the_published_warehouse_as_it_was(pipeline_run: dict, tmp_path: Path) -> None:
    """Feed a directory whose orders file is unreadable: the run fails, the snapshot stays."""
    import shutil

    wh = tmp_path / "wh.duckdb"
    shutil.copyfile(pipeline_run["warehouse"], wh)
    before = _counts(wh)
    bad = tmp_path / "bad-input"
    bad.mkdir()
    (bad / "orders.csv").write_bytes(b"\x00\x01\x02binary garbage\xff\xfe")
    (bad / "share_events.csv").write_text("event_id,event_type,share_id,actor_id,occurred_at\n", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "SHAREGRAPH_STATE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--input", str(bad),
                           "--warehouse", str(wh), "--reports", str(tmp_path / "reports")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert "published warehouse is unchanged" in proc.stderr
    assert "orders.csv" in proc.stderr
    assert _counts(wh) == before
