"""assets/daily.py + the refresh: a new export day loads and everything downstream recomputes."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from assets.resources import InboxResource, WarehouseResource
from pipelines.definitions import load_pipeline
from pipelines.jobs import daily_load_job, refresh_job
from pipelines.sensors import refresh_after_daily_load
from sharegraph.core.contract import ORDERS
from sharegraph.ingest import load as ingest


def export_day() -> date:
    return min(date(2026, 2, 1), date.today())


def test_new_day_loads_and_downstream_recomputes(pipeline_run: dict, tmp_path: Path) -> None:
    built = Path(pipeline_run["warehouse"])
    wh = WarehouseResource(warehouse=str(tmp_path / "wh.duckdb"), input_dir=str(tmp_path / "none"),
                           reports_dir=str(tmp_path / "reports"))
    # the published snapshot alone, as when a warehouse is moved by copying its file: the
    # run restores the working file from it (warehouse.restore_working), history included
    shutil.copyfile(built, wh.paths.published)
    os.chmod(wh.paths.published, 0o444)
    inbox = InboxResource(inbox_dir=str(tmp_path / "inbox"), archive_dir=str(tmp_path / "archive"),
                          rejected_dir=str(tmp_path / "rejected"), settle_seconds=0)
    inbox.inbox.mkdir()
    day = export_day()
    cols = ", ".join(ORDERS.column_names)
    con = duckdb.connect(str(wh.paths.published), read_only=True)
    before = con.execute("SELECT count(*), sum(amount) FILTER (WHERE status = 'paid') "
                         "FROM staging.orders").fetchall()[0]
    # 40 new order lines (30 of the export day, 10 late ones from 11 days earlier) plus 10
    # lines re-sent exactly as already loaded (overlap with an earlier export)
    new = f"""SELECT * REPLACE ('D-' || order_id AS order_id,
                   CASE WHEN row_number() OVER () <= 10 THEN DATE '{day}' - 11 ELSE DATE '{day}' - 1 END
                   + INTERVAL 9 HOUR AS ordered_at)
              FROM (SELECT {cols} FROM staging.orders ORDER BY order_id, line_no LIMIT 40)"""
    old = f"SELECT * FROM (SELECT {cols} FROM staging.orders ORDER BY order_id DESC, line_no LIMIT 10)"
    added_paid = con.execute(f"SELECT sum(amount) FILTER (WHERE status = 'paid') FROM ({new})").fetchall()[0][0]
    con.execute(f"COPY (SELECT * FROM ({new}) UNION ALL {old}) TO '{inbox.inbox / f'orders_{day}.csv'}' (HEADER)")
    con.close()
    assert not wh.paths.working.exists()

    instance = dg.DagsterInstance.ephemeral()
    assets_, checks = load_pipeline()
    defs = dg.Definitions(assets=assets_, asset_checks=checks, jobs=[daily_load_job, refresh_job],
                          resources={"warehouse": wh, "inbox": inbox}, executor=dg.in_process_executor)
    load = defs.resolve_job_def("daily_load_job").execute_in_process(
        partition_key=day.isoformat(), instance=instance)
    assert load.success
    evals = {e.event_specific_data.check_name: e.event_specific_data.passed
             for e in load.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert evals == {"batches_reconcile": True, "natural_keys_unique": True, "no_rejected_files": True}
    assert (inbox.archive / day.isoformat() / f"orders_{day}.csv").is_file()

    # the run-status sensor asks for the refresh after this successful load
    run = instance.get_run_by_id(load.run_id)
    success = next(r.event_log_entry.dagster_event for r in instance.get_records_for_run(
        load.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records)
    ctx = dg.build_run_status_sensor_context(sensor_name="refresh_after_daily_load", dagster_instance=instance,
                                             dagster_run=run, dagster_event=success)
    request = refresh_after_daily_load(ctx)
    assert request.run_key == f"refresh-after-{load.run_id}"

    refresh = defs.resolve_job_def("refresh_after_load").execute_in_process(instance=instance)
    assert refresh.success
    pub = duckdb.connect(str(wh.paths.published), read_only=True)
    n, paid = pub.execute("SELECT count(*), sum(amount) FILTER (WHERE status = 'paid') "
                          "FROM staging.orders").fetchall()[0]
    assert n == before[0] + 40 and paid == before[1] + added_paid
    attributed = pub.execute("SELECT count(*), sum(amount) FILTER (WHERE is_paid), "
                             "count(*) FILTER (WHERE order_id LIKE 'D-%') FROM graph.attributed_orders").fetchall()[0]
    assert attributed == (n, paid, 40)  # recomputed over the new day, late rows included
    daily = pub.execute("SELECT outcome, rows_read, rows_loaded, rows_already_loaded "
                        "FROM raw.daily_exports").fetchall()
    assert daily == [("loaded", 50, 40, 10)]
    pub.close()
    work = duckdb.connect(str(wh.paths.working))
    assert ingest.reconciliation_failures(work) == []
    assert ingest.duplicate_keys(work, "orders") == 0
    work.close()


def test_a_day_on_top_equals_a_rebuild_in_every_table(tmp_path: Path) -> None:
    """The issue's exactness goal, whole pipeline: a generated world cut at the 97th
    percentile of order time, the base run, then the day run on top. In one warehouse the
    maintained tables are updated per key; in the other their state is dropped first, so
    everything is rebuilt. Every graph.* and marts.* table must be equal (EXCEPT ALL)."""
    from pipelines.run import run_pipeline
    from sharegraph.core.increments import STATE_TABLE
    from sharegraph.demo.generate import generate_world

    generate_world(tmp_path / "world", seed=23, people=1500, orders=8000)
    con = duckdb.connect()
    orders = f"read_csv('{tmp_path / 'world' / 'orders.csv'}', all_varchar = true)"
    cut = con.execute(f"SELECT quantile_disc(ordered_at, 0.97) FROM {orders}").fetchone()[0]
    for part, keep in (("base", "<="), ("day", ">")):
        (tmp_path / part).mkdir()
        for name, col in (("orders", "ordered_at"), ("share_events", "occurred_at")):
            con.execute(f"COPY (SELECT * FROM read_csv('{tmp_path / 'world' / name}.csv', "
                        f"all_varchar = true) WHERE {col} {keep} '{cut}') "
                        f"TO '{tmp_path / part / name}.csv' (HEADER)")
    for name in ("products", "agents", "group_buys"):
        shutil.copy(tmp_path / "world" / f"{name}.csv", tmp_path / "base" / f"{name}.csv")
    con.close()
    os.environ.setdefault("DAGSTER_HOME", str(tmp_path / "dagster"))
    kept, rebuilt = tmp_path / "kept" / "wh.duckdb", tmp_path / "rebuilt" / "wh.duckdb"
    for wh in (kept, rebuilt):
        assert run_pipeline(input_dir=tmp_path / "base", warehouse=wh).success
    work = duckdb.connect(str(rebuilt.with_name("wh.working.duckdb")))
    work.execute(f"DROP TABLE {STATE_TABLE}")
    work.close()
    for wh in (kept, rebuilt):
        assert run_pipeline(input_dir=tmp_path / "day", warehouse=wh).success
    a = duckdb.connect(str(kept), read_only=True)
    assert {r[0] for r in a.execute(f"SELECT last_build FROM {STATE_TABLE}").fetchall()} == {"update"}
    a.execute(f"ATTACH '{rebuilt}' AS rebuilt (READ_ONLY)")
    tables = [r[0] for r in a.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = 'wh' AND schema_name IN ('graph', 'marts') ORDER BY 1").fetchall()]
    assert len(tables) > 20
    differing = {t: a.execute(
        f"SELECT (SELECT count(*) FROM (FROM {t} EXCEPT ALL FROM rebuilt.{t})), "
        f"(SELECT count(*) FROM (FROM rebuilt.{t} EXCEPT ALL FROM {t}))").fetchone()
        for t in tables}
    assert {t: d for t, d in differing.items() if d != (0, 0)} == {}
    a.close()
