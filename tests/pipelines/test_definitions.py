"""The Dagster code location: loads as `dg dev` / `dagster dev` load it; keys, jobs, sensors,
schedule, the instance configuration, and where its settings come from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from assets import keys
from assets._common import table_result
from assets.ingest import ingest_inputs
from assets.partitions import daily_partitions
from assets.resources import InboxResource, WarehouseResource
from pipelines.definitions import defs, load_pipeline
from pipelines.run import PROJECT_ROOT, STORAGE_KEYS, ensure_dagster_home
from pipelines.schedules import daily_load_schedule
from pipelines.sensors import inbox_sensor
from sharegraph.core.config import Settings
from sharegraph.core.contract import TABLES
from sharegraph.core.warehouse import SCHEMAS

PUBLISHED = keys.PUBLISHED

FILE_PREFIXES = {"reports", "warehouse"}  # assets that are files, not DuckDB tables


def all_keys() -> list[dg.AssetKey]:
    return list(defs.resolve_asset_graph().get_all_asset_keys())


def test_definitions_load_in_process() -> None:
    dg.Definitions.validate_loadable(defs)
    names = set(defs.get_repository_def().job_names)
    assert {"full_pipeline", "refresh_after_load", "daily_load_job"} <= names
    for stage in ("staging", "graph", "marts"):
        assert any(k.path[0] == stage for k in all_keys()), f"no {stage}/* asset"


def test_dg_and_dagster_name_the_same_code_location() -> None:
    """`dg dev` reads [tool.dg], the `dagster` commands [tool.dagster]: one module, one name."""
    tool = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    project = tool["dg"]["project"]
    assert tool["dg"]["directory_type"] == "project"
    assert project["code_location_target_module"] == tool["dagster"]["module_name"] == "pipelines.definitions"
    assert project["code_location_name"] == tool["dagster"]["code_location_name"] == "sharegraph"
    assert project["root_module"] == "pipelines"


def test_definitions_load_without_warnings() -> None:
    """Loading the code location and resolving its repository (what the code server does)
    emits no Dagster warning: `make dev` starts clean."""
    code = (
        "import warnings\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    from pipelines.definitions import defs\n"
        "    defs.get_repository_def().get_all_jobs()\n"
        "print('\\n'.join(f'{w.category.__name__}: {w.message}' for w in seen))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYTHONWARNINGS": "always"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "", proc.stdout


@pytest.mark.slow
def test_definitions_load_like_dagster_dev(tmp_path: Path) -> None:
    """`dagster definitions validate` with no -m reads [tool.dagster] from pyproject, and
    `dg check defs` reads [tool.dg], as `dg dev` does; both import the code location in a
    fresh process."""
    env = {**os.environ, "DAGSTER_HOME": str(ensure_dagster_home(tmp_path)),
           "SHAREGRAPH_STATE": str(tmp_path / "state"),
           "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "dagster"), "definitions", "validate"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Validation successful for code location sharegraph" in out
    proc = subprocess.run([str(bin_dir / "dg"), "check", "defs"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "warning" not in out.lower(), out


def test_dagster_yaml_is_a_valid_instance(tmp_path: Path) -> None:
    """Loading the instance validates every key of dagster.yaml against dagster's schema: as
    it stands (make dev's home, the repository root: storage under state/dagster) and as
    ensure_dagster_home writes it elsewhere (storage inside that directory)."""
    with dg.DagsterInstance.from_config(str(PROJECT_ROOT)) as instance:
        assert not instance.telemetry_enabled
        assert instance.get_ref().storage_data.config_dict == {"base_dir": "state/dagster"}
        assert instance.get_ref().compute_logs_data.config_dict == {"base_dir": "state/dagster/storage"}
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
    home = ensure_dagster_home(tmp_path / "home")
    written = (home / "dagster.yaml").read_text(encoding="utf-8")
    assert not any(line.startswith(f"{k}:") for k in STORAGE_KEYS for line in written.splitlines())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.telemetry_enabled
        assert instance.root_directory == str(home)
        assert Path(instance.storage_directory()).is_relative_to(home)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
    assert (home / "history").is_dir()  # run and event storage inside DAGSTER_HOME
    assert ensure_dagster_home(PROJECT_ROOT) == PROJECT_ROOT  # the root's file is left alone


def test_makefile_dev_runs_dg_with_the_root_as_dagster_home() -> None:
    """`dagster dev` warns when DAGSTER_HOME is not the directory holding dagster.yaml, and
    `dagster dev` itself is superseded by `dg dev`: make dev avoids both."""
    make = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = make.split("\ndev:", 1)[1].split("\n\n", 1)[0]
    assert "DAGSTER_HOME=$(CURDIR)" in recipe and "exec $(BIN)/dg dev" in recipe
    assert "dagster dev" not in recipe


def test_every_asset_key_is_declared_in_assets_keys() -> None:
    """One home for asset keys: the code location defines exactly the keys of assets/keys.py."""
    assert set(all_keys()) == keys.declared()
    assert set(keys.STAGING) == set(TABLES)  # staging keys come from the contract


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
    # the snapshot check runs inside the publish step (check_specs), not as a step of its own
    assert {k.name for k in published.check_keys} == {"published_matches_working"}


def test_checks_run_inside_their_asset_steps() -> None:
    """Every check is a check spec of the asset it checks (one step each, fixed cost); the
    blocking ones stay blocking (a failed one fails its asset's step, so downstream waits)."""
    found, checks = load_pipeline()
    assert checks == []
    specs = {s.key.to_user_string(): s for a in found for s in a.check_specs}
    assert len(specs) == 30
    assert specs["staging/orders:reconciliation"].blocking
    assert specs["graph/attributed_orders:attributed_gmv_conserved"].blocking
    assert not specs["marts/directional_affinity:directional_affinity_bounds"].blocking
    assert specs["warehouse/published:published_matches_working"].blocking


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


def test_timezone_of_the_settings_reaches_partitions_and_schedule(tmp_path: Path) -> None:
    """A timezone in sharegraph.toml is the zone of the daily partitions and the schedule,
    in the code location as `dagster dev` loads it (a fresh process, SHAREGRAPH_CONFIG)."""
    cfg = tmp_path / "sharegraph.toml"
    cfg.write_text('[sharegraph]\ntimezone = "Europe/Berlin"\ndaily_start = "2025-06-01"\n',
                   encoding="utf-8")
    part = daily_partitions(Settings.load(cfg))
    assert part.timezone == "Europe/Berlin" and part.start.date().isoformat() == "2025-06-01"
    code = ("from pipelines.definitions import defs\n"
            "from pipelines.schedules import daily_load_schedule\n"
            "job = defs.resolve_job_def('daily_load_job')\n"
            "p = job.partitions_def\n"
            "print(daily_load_schedule.execution_timezone, p.timezone, p.get_first_partition_key())\n")
    env = {k: v for k, v in os.environ.items() if k != "SHAREGRAPH_TIMEZONE"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=180, env={**env, "SHAREGRAPH_CONFIG": str(cfg)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["Europe/Berlin", "Europe/Berlin", "2025-06-01"]


def test_a_timezone_that_is_no_zone_stops_the_code_location(tmp_path: Path) -> None:
    """A value that would reach SQL is refused where the settings load, with one sentence."""
    cfg = tmp_path / "sharegraph.toml"
    cfg.write_text("[sharegraph]\ntimezone = \"Asia/Shanghai'; DROP TABLE x; --\"\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", "import pipelines.definitions"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "SHAREGRAPH_CONFIG": str(cfg)})
    assert proc.returncode != 0
    assert f"{cfg}: timezone \"Asia/Shanghai'; DROP TABLE x; --\" is not a time zone" in proc.stderr


def test_default_resources_come_from_the_settings(tmp_path: Path) -> None:
    s = Settings().with_values({"state": str(tmp_path / "st"), "inbox": str(tmp_path / "drop"),
                                "inbox_settle_s": 0.5, "input": str(tmp_path / "in")})
    wh = WarehouseResource.from_settings(s)
    assert Path(wh.warehouse) == tmp_path / "st" / "sharegraph.duckdb"
    assert Path(wh.reports_dir) == tmp_path / "st" / "reports"
    assert wh.inputs == tmp_path / "in"
    inbox = InboxResource.from_settings(s)
    assert (inbox.inbox, inbox.archive, inbox.rejected) == (
        tmp_path / "drop", tmp_path / "st" / "archive", tmp_path / "st" / "rejected")
    assert inbox.settle_seconds == 0.5


def test_settings_load_once_per_resource_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An asset opens the working file and reads the settings: one Settings.load per run."""
    calls = []
    real = Settings.load.__func__

    def counting(cls, path=None):
        calls.append(path)
        return real(cls, path)

    monkeypatch.setattr(Settings, "load", classmethod(counting))

    @dg.asset
    def probe(warehouse: WarehouseResource) -> dg.MaterializeResult:
        warehouse.settings()
        return table_result(warehouse, lambda con, settings: settings.attribution_window_days)

    wh = WarehouseResource(warehouse=str(tmp_path / "wh.duckdb"), input_dir=str(tmp_path),
                           reports_dir=str(tmp_path / "r"))
    result = dg.materialize([probe], resources={"warehouse": wh}, instance=dg.DagsterInstance.ephemeral())
    assert result.success and len(calls) == 1


def test_missing_input_is_an_error_not_a_demo(tmp_path: Path) -> None:
    """No input directory: the ingest fails with one sentence naming it; nothing is generated."""
    missing = tmp_path / "demo-input"
    wh = WarehouseResource(warehouse=str(tmp_path / "wh.duckdb"), input_dir=str(missing),
                           reports_dir=str(tmp_path / "r"))
    result = dg.materialize([ingest_inputs], resources={"warehouse": wh}, raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert any(f"input directory {missing} does not exist" in m and "sharegraph demo" in m
               for m in messages), messages
    assert not missing.exists() and not (tmp_path / "wh.working.duckdb").exists()


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


def test_checks_of_tables_built_outside_the_job_run_and_fail_loudly(
        pipeline_run: dict, tmp_path: Path) -> None:
    """``check_tables`` (what an ``--engine spark`` run does after loading Spark's tables)
    runs the assets' own checks: all pass on a good warehouse; a changed paid amount breaks
    GMV conservation and stops the run with the check named."""
    import duckdb

    from assets._common import CHECKS, ChecksFailed, check_tables
    from assets.resources import SPARK_COMPUTED

    copy = tmp_path / "wh.duckdb"
    shutil.copy(pipeline_run["warehouse"], copy)
    con = duckdb.connect(str(copy))
    expected = sum(len(CHECKS.get(k, [])) for k in SPARK_COMPUTED)
    assert expected >= 10
    assert len(check_tables(con, SPARK_COMPUTED)) == expected
    con.execute("UPDATE graph.attributed_orders SET amount = amount + 1 "
                "WHERE rowid = (SELECT min(rowid) FROM graph.attributed_orders WHERE is_paid)")
    with pytest.raises(ChecksFailed, match="attributed_gmv_conserved"):
        check_tables(con, SPARK_COMPUTED)


def test_report_pages_materialize_alone(pipeline_run: dict, tmp_path: Path) -> None:
    """The reports are one step for all pages, but each page is its own asset: selecting one
    renders only it (no index, no downloads) and records one materialization."""
    from assets.keys import REPORT_INFLUENCE
    from assets.reports import reports
    from sharegraph.core.warehouse import WarehousePaths
    from sharegraph.reports.pseudonym import KEY_FILE

    published = tmp_path / "wh.duckdb"
    shutil.copyfile(pipeline_run["warehouse"], WarehousePaths.of(published).working)
    shutil.copy2(Path(pipeline_run["warehouse"]).parent / KEY_FILE, tmp_path / KEY_FILE)  # mode 600
    wh = WarehouseResource(warehouse=str(published), input_dir=str(tmp_path),
                           reports_dir=str(tmp_path / "r"))
    result = dg.materialize([reports], selection=[REPORT_INFLUENCE], resources={"warehouse": wh},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [REPORT_INFLUENCE]
    written = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert written == ["influence.html", "plotly.min.js"]
