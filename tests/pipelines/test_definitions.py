"""The Dagster code location: loads as `dagster dev` loads it; keys, jobs, sensors, schedule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.publish import PUBLISHED
from pipelines.definitions import defs, load_pipeline
from pipelines.partitions import InboxResource
from pipelines.run import PROJECT_ROOT
from pipelines.schedules import daily_load_schedule
from pipelines.sensors import inbox_sensor
from sharegraph.core.warehouse import SCHEMAS

FILE_PREFIXES = {"reports", "warehouse"}  # assets that are files, not DuckDB tables


def all_keys() -> list[dg.AssetKey]:
    return list(defs.resolve_asset_graph().get_all_asset_keys())


def test_definitions_load_in_process() -> None:
    dg.Definitions.validate_loadable(defs)
    names = set(defs.get_repository_def().job_names)
    assert {"full_pipeline", "refresh_after_load", "daily_load_job"} <= names
    for stage in ("staging", "graph", "marts"):
        assert any(k.path[0] == stage for k in all_keys()), f"no {stage}/* asset"


@pytest.mark.slow
def test_definitions_load_like_dagster_dev(tmp_path: Path) -> None:
    """`dagster definitions validate` with no -m reads [tool.dagster] from pyproject, as
    `dagster dev` does, and imports the code location in a fresh process."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "SHAREGRAPH_STATE": str(tmp_path / "state")}
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "definitions", "validate"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Validation successful for code location sharegraph" in out


def test_dagster_yaml_is_a_valid_instance(tmp_path: Path) -> None:
    """Loading the instance validates every key of dagster.yaml against dagster's schema."""
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert not instance.telemetry_enabled
        assert instance.root_directory == str(tmp_path)
        assert Path(instance.storage_directory()).is_relative_to(tmp_path)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
    assert (tmp_path / "history").is_dir()  # run and event storage inside DAGSTER_HOME


def test_asset_key_prefix_is_a_duckdb_schema() -> None:
    for key in all_keys():
        assert key.path[0] in (*SCHEMAS, *FILE_PREFIXES), f"{key.to_user_string()}: prefix is no schema"
        if key.path[0] in SCHEMAS:
            assert len(key.path) == 2, f"{key.to_user_string()}: want <schema>/<table>"


def test_asset_keys_are_tables_of_the_built_warehouse(pipeline_run: dict) -> None:
    import duckdb

    con = duckdb.connect(str(pipeline_run["warehouse"]), read_only=True)
    tables = {(s, t) for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    con.close()
    for key in all_keys():
        if key.path[0] in SCHEMAS:
            assert tuple(key.path) in tables, f"asset {key.to_user_string()} has no table"


def test_publish_depends_on_every_graph_and_mart_asset() -> None:
    found, checks = load_pipeline()
    published = next(a for a in found if PUBLISHED in a.keys)
    deps = set(published.asset_deps[PUBLISHED])
    expected = {k for a in found for k in a.keys if k.path[0] in ("graph", "marts")}
    assert expected and deps == expected
    assert any(c.check_keys and next(iter(c.check_keys)).asset_key == PUBLISHED for c in checks)


def test_jobs_select_the_right_assets() -> None:
    refresh = defs.resolve_job_def("refresh_after_load").asset_layer.selected_asset_keys
    full = defs.resolve_job_def("full_pipeline").asset_layer.selected_asset_keys
    assert PUBLISHED in refresh and PUBLISHED in full
    assert not any(k.path[0] == "staging" for k in refresh)  # a day's load replaces the ingest
    assert {k for k in full if k.path[0] == "staging"} >= {dg.AssetKey(["staging", "orders"])}
    assert dg.AssetKey(["raw", "daily_exports"]) not in full  # partitioned: only its own job


def test_inbox_sensor_requests_one_run_per_new_file(tmp_path: Path) -> None:
    res = InboxResource(inbox_dir=str(tmp_path / "inbox"), archive_dir=str(tmp_path / "archive"),
                        rejected_dir=str(tmp_path / "rejected"), settle_seconds=0)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "orders_2026-01-05.csv").write_text("order_id\nO1\n")
    (inbox / "orders_2026-01-06.csv.tmp").write_text("half")
    (inbox / "orders_..csv").write_text("x")
    outside = tmp_path / "outside.csv"
    outside.write_text("secret")
    (inbox / "share_events_2026-01-05.csv").symlink_to(outside)

    def evaluate():
        return inbox_sensor(dg.build_sensor_context(resources={"inbox": res}))

    first = evaluate()
    assert [r.partition_key for r in first] == ["2026-01-05"]
    assert first[0].run_key.startswith("orders_2026-01-05.csv:")
    rejected = sorted(p.name for p in (tmp_path / "rejected").iterdir())
    assert rejected == ["orders_..csv", "orders_..csv.reason.txt", "share_events_2026-01-05.csv",
                        "share_events_2026-01-05.csv.reason.txt"]
    assert outside.read_text() == "secret"
    assert [r.run_key for r in evaluate()] == [first[0].run_key]  # same file, same key: no rerun
    os.utime(inbox / "orders_2026-01-05.csv", ns=(1, 1))  # re-delivered: new key, new load
    assert evaluate()[0].run_key != first[0].run_key
    (inbox / "orders_2026-01-05.csv").unlink()
    assert isinstance(evaluate(), dg.SkipReason)


def test_inbox_sensor_rejects_days_outside_the_partitions(tmp_path: Path) -> None:
    res = InboxResource(inbox_dir=str(tmp_path / "inbox"), archive_dir=str(tmp_path / "a"),
                        rejected_dir=str(tmp_path / "r"), settle_seconds=0)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "orders_1999-01-01.csv").write_text("order_id\nO1\n")
    result = inbox_sensor(dg.build_sensor_context(resources={"inbox": res}))
    assert isinstance(result, dg.SkipReason)
    assert "outside the partitions" in (tmp_path / "r" / "orders_1999-01-01.csv.reason.txt").read_text()


def test_daily_schedule_loads_yesterday() -> None:
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime.fromisoformat("2026-03-15T06:00:00+08:00"),
        repository_def=defs.get_repository_def(),
    )
    requests = list(daily_load_schedule.evaluate_tick(ctx).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-03-14"]
    assert daily_load_schedule.execution_timezone == "Asia/Shanghai"


@pytest.mark.slow
def test_dagster_asset_materialize_all(small_world: Path, tmp_path: Path) -> None:
    """The scripted form `dagster asset materialize --select '*'` runs and publishes."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SHAREGRAPH_STATE": str(tmp_path / "state"),
           "SHAREGRAPH_INPUT": str(small_world)}
    for k in ("SHAREGRAPH_WAREHOUSE", "SHAREGRAPH_REPORTS", "SHAREGRAPH_FAULT_AFTER"):
        env.pop(k, None)
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(dagster), "asset", "materialize", "-m", "pipelines.definitions",
                           "--select", "*"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    published = tmp_path / "state" / "sharegraph.duckdb"
    import duckdb

    con = duckdb.connect(str(published), read_only=True)
    n = con.execute("SELECT count(*) FROM graph.attributed_orders").fetchall()[0][0]
    con.close()
    assert n > 0
