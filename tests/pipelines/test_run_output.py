"""What `sharegraph run` prints: a short report a person can read, Dagster's events in a log
file, one sentence first when it fails, and every result beside the warehouse it was given."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.resources import WarehouseResource
from pipelines.cli import main

PRIVATE_ENV = ("DAGSTER_HOME", "SHAREGRAPH_STATE", "SHAREGRAPH_REPORTS", "SHAREGRAPH_WAREHOUSE",
               "SHAREGRAPH_INPUT", "SHAREGRAPH_CONFIG", "SHAREGRAPH_MAX_REJECT_RATE", "SHAREGRAPH_FAULT_AFTER")


def sharegraph(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a fresh process, no Dagster or sharegraph locations set."""
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    proc = sharegraph("generate", "--out", str(out), "--people", "500", "--orders", "2000", cwd=out)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def good_run(world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One successful run into a warehouse in another directory than the current one."""
    root = tmp_path_factory.mktemp("good")
    cwd, elsewhere = root / "cwd", root / "elsewhere"
    cwd.mkdir()
    proc = sharegraph("run", "--input", str(world), "--warehouse", str(elsewhere / "wh.duckdb"), cwd=cwd)
    return {"proc": proc, "cwd": cwd, "elsewhere": elsewhere, "lines": (proc.stdout + proc.stderr).splitlines()}


def broken_world(world: Path, target: Path, *, drop_column: str | None = None,
                 break_column: str | None = None, every: int = 1) -> Path:
    """A copy of ``world`` whose orders.csv lacks a column, or has the value of one column
    broken in every ``every``-th row."""
    target.mkdir(parents=True)
    for f in world.glob("*.csv"):
        shutil.copyfile(f, target / f.name)
    with (world / "orders.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    with (target / "orders.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        for i, row in enumerate(rows):
            if drop_column:
                row = [v for h, v in zip(header, row, strict=True) if h != drop_column]
            elif break_column and i and i % every == 0:
                row[header.index(break_column)] = "not a number"
            writer.writerow(row)
    return target


def log_path(lines: list[str]) -> Path:
    found = [m.group(1) for line in lines if (m := re.match(r"log: (\S+)", line))]
    assert found, "\n".join(lines)
    return Path(found[-1])


def test_a_good_run_prints_a_short_report(good_run: dict) -> None:
    proc, lines = good_run["proc"], good_run["lines"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(lines) <= 40, "\n".join(lines)
    assert not any("DEBUG" in line or "dagster - " in line for line in lines), "\n".join(lines)
    text = "\n".join(lines)
    for stage in ("ingest", "graph", "marts", "reports", "publish"):
        assert re.search(rf"^  \S+ {stage}\s+\d+ assets?\s", text, re.M), f"no stage line for {stage}:\n{text}"
    assert re.search(r"^asset checks: \d+ passed, 0 failed$", text, re.M), text
    assert "warehouse (open read-only)" in proc.stderr


def test_the_report_says_how_maintained_tables_were_brought_up_to_date(
        good_run: dict, world: Path, tmp_path: Path) -> None:
    """First run: rebuilt in full; the same files again (on a copy of that warehouse):
    nothing new, so already current."""
    maintained = ("graph.attributed_orders", "graph.click_edges", "graph.people", "graph.person_activity",
                  "graph.referral_edges", "graph.share_nodes", "marts.cascades", "marts.category_affinity",
                  "marts.directional_affinity", "marts.spillover_affinity", "quarantine.flagged_rows")
    line = next(x for x in good_run["lines"] if "maintained tables:" in x)
    assert line.strip() == "maintained tables: rebuilt in full: " + ", ".join(sorted(maintained)), line
    shutil.copytree(good_run["elsewhere"], tmp_path / "copy")
    again = sharegraph("run", "--input", str(world), "--warehouse", str(tmp_path / "copy" / "wh.duckdb"),
                       cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    line = next(x for x in again.stderr.splitlines() if "maintained tables:" in x)
    assert line.strip() == "maintained tables: already current: " + ", ".join(sorted(maintained)), line


def test_a_warehouse_moved_without_its_working_file_keeps_its_history(
        good_run: dict, world: Path, tmp_path: Path) -> None:
    """Only the published file copied elsewhere: the run says it continues from the snapshot,
    finds every file already loaded, and publishes the same rows, not an empty history."""
    published = good_run["elsewhere"] / "wh.duckdb"
    moved = tmp_path / "moved" / "wh.duckdb"
    moved.parent.mkdir()
    shutil.copyfile(published, moved)
    again = sharegraph("run", "--input", str(world), "--warehouse", str(moved), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continues from the published snapshot" in again.stderr, again.stderr[-3000:]
    assert "maintained tables: already current:" in again.stderr, again.stderr[-3000:]
    counts = "SELECT (SELECT count(*) FROM staging.orders), (SELECT count(*) FROM staging.share_events)"
    with duckdb.connect(str(published), read_only=True) as before, \
            duckdb.connect(str(moved), read_only=True) as after:
        assert after.execute(counts).fetchall() == before.execute(counts).fetchall()


def test_the_per_file_table_matches_the_warehouse(good_run: dict, world: Path) -> None:
    published = good_run["elsewhere"] / "wh.duckdb"
    con = duckdb.connect(str(published), read_only=True)
    try:
        expected = {r[0]: r[1:] for r in con.execute(
            """SELECT b.source_file, b.table_name, b.rows_read, b.rows_loaded, b.rows_updated,
                      b.rows_already_loaded, b.rows_quarantined,
                      (SELECT count(DISTINCT source_row) FROM quarantine.flagged_rows f WHERE f.batch_id = b.batch_id)
               FROM quarantine.batches b""").fetchall()}
        staged = con.execute("SELECT count(*) FROM staging.orders").fetchone()[0]
    finally:
        con.close()
    files = sorted(f.name for f in world.glob("*.csv") if f.name != "truth_circles.csv")
    assert sorted(expected) == files
    shown = {}
    for line in good_run["lines"]:
        cells = line.split()
        if cells and cells[0] in expected:
            shown[cells[0]] = (cells[1], *(int(c.replace(",", "")) for c in cells[2:]))
    assert shown == expected
    assert shown["orders.csv"][2] == staged  # loaded = what staging holds after one run


def test_dagster_events_go_to_a_log_file(good_run: dict) -> None:
    log = log_path(good_run["lines"])
    assert log.parent == good_run["elsewhere"] / "logs"
    text = log.read_text(encoding="utf-8")
    for event in ("RUN_START", "STEP_START", "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION", "RUN_SUCCESS"):
        assert event in text, event
    assert "DEBUG" in text


def test_results_land_beside_the_warehouse_not_in_the_cwd(good_run: dict) -> None:
    elsewhere = good_run["elsewhere"]
    assert (elsewhere / "reports" / "index.html").is_file()
    assert (elsewhere / "dagster" / "dagster.yaml").is_file()
    assert list(good_run["cwd"].iterdir()) == [], "the run wrote into the current directory"
    with dg.DagsterInstance.from_config(str(elsewhere / "dagster")) as instance:
        runs = instance.get_runs()
    assert [r.job_name for r in runs] == ["full_pipeline"]  # a named job, not __ephemeral_asset_job__


def test_the_run_record_reads_back_through_dagsters_own_storage(good_run: dict) -> None:
    """The run wrote through pipelines.run_instance's pooled storages; Dagster's standard
    SQLite classes (what `dagster dev` uses) read the same run, events, materializations and
    check results back."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    with dg.DagsterInstance.from_config(str(good_run["elsewhere"] / "dagster")) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        kinds = [e.dagster_event_type for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        assert dg.DagsterEventType.RUN_START in kinds and kinds[-1] == dg.DagsterEventType.RUN_SUCCESS
        materialized = instance.get_latest_materialization_event(dg.AssetKey(["marts", "agent_influence"]))
        assert materialized is not None and materialized.run_id == run.run_id
        checks = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        assert len(checks) == 30 and all(e.dagster_event.event_specific_data.passed for e in checks)
        # the fresh instance was stamped with the migration scripts read once: every storage
        # is at Dagster's head revision, as Dagster's own classes see it
        for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
            db_revision, head = storage.alembic_version()
            assert db_revision == head, type(storage).__name__


def test_opening_the_run_instance_leaves_alembic_as_it_was(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from pipelines.run import ensure_dagster_home
    from pipelines.run_instance import open_run_instance

    before = ScriptDirectory.__dict__["from_config"]
    with open_run_instance(ensure_dagster_home(tmp_path / "dagster")) as instance:
        assert instance.get_runs() == []
    assert ScriptDirectory.__dict__["from_config"] is before


def test_a_failed_run_starts_with_one_sentence(world: Path, tmp_path: Path) -> None:
    bad = broken_world(world, tmp_path / "bad", break_column="amount")
    wh = str(tmp_path / "wh" / "wh.duckdb")
    proc = sharegraph("run", "--input", str(bad), "--warehouse", wh, cwd=tmp_path)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 1, "\n".join(lines)
    assert lines[0].startswith("error: orders.csv: "), lines[0]
    assert lines[0].endswith("the published warehouse is unchanged.")
    assert len(lines) <= 8, "\n".join(lines)
    assert "Traceback" not in proc.stderr and "Stack Trace" not in proc.stderr
    assert "STEP_FAILURE" in log_path(lines).read_text(encoding="utf-8")

    verbose = sharegraph("run", "--input", str(bad), "--warehouse", wh, "--verbose", cwd=tmp_path)
    assert verbose.returncode == 1
    assert "Stack Trace" in verbose.stderr  # Dagster's trace of the failed step, live
    assert "error: orders.csv: " in verbose.stderr


def test_a_missing_required_column_names_the_file_and_column(world: Path, tmp_path: Path) -> None:
    bad = broken_world(world, tmp_path / "bad", drop_column="customer_id")
    proc = sharegraph("run", "--input", str(bad), "--warehouse", str(tmp_path / "wh.duckdb"), cwd=tmp_path)
    first = (proc.stdout + proc.stderr).splitlines()[0]
    assert proc.returncode == 1
    assert first.startswith("error: orders.csv: ") and "customer_id" in first, first
    assert "Traceback" not in proc.stderr


def test_max_reject_rate_reaches_the_run(world: Path, tmp_path: Path) -> None:
    """10% of the orders rows are broken: over the default 5% the run stops at the ingest;
    with --max-reject-rate 0.2 it loads the rest and quarantines those rows."""
    bad = broken_world(world, tmp_path / "bad", break_column="amount", every=10)
    wh = str(tmp_path / "wh.duckdb")
    strict = sharegraph("run", "--input", str(bad), "--warehouse", wh, cwd=tmp_path)
    assert strict.returncode == 1
    assert strict.stderr.startswith("error: orders.csv: "), strict.stderr
    lenient = sharegraph("run", "--input", str(bad), "--warehouse", wh, "--max-reject-rate", "0.2", cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    row = next(line.split() for line in lenient.stderr.splitlines() if line.split()[:1] == ["orders.csv"])
    assert int(row[6].replace(",", "")) == 200  # quarantined


def test_settings_overrides_apply_over_the_config() -> None:
    resource = WarehouseResource(warehouse="wh.duckdb", input_dir=".", reports_dir="r",
                                 settings_overrides='{"max_reject_rate": 0.25}')
    assert resource.settings().max_reject_rate == 0.25
    assert WarehouseResource(warehouse="wh.duckdb", input_dir=".", reports_dir="r").settings().max_reject_rate == 0.05


@pytest.mark.parametrize("command", ["run", "demo", "validate"])
def test_max_reject_rate_must_be_a_share(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = {"run": ["--input", str(tmp_path), "--warehouse", str(tmp_path / "wh.duckdb")],
            "validate": ["--input", str(tmp_path)], "demo": []}[command]
    with pytest.raises(SystemExit) as exit_info:
        main([command, *args, "--max-reject-rate", "1.5"])
    assert exit_info.value.code == 2
    assert "from 0 to 1" in capsys.readouterr().err


def test_channels_of_class_other_are_named_when_known(tmp_path: Path) -> None:
    from pipelines.console import other_channels

    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA staging")
    con.close()
    assert other_channels(db) is None  # no staging.channels (older warehouse): no line
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE staging.channels (channel VARCHAR, channel_class VARCHAR, order_lines BIGINT)")
    con.execute("INSERT INTO staging.channels VALUES ('wechat', 'social', 90), ('kuaishou', 'other', 7), ('x', 'other', 3)")
    con.close()
    assert other_channels(db) == "10 order lines in channels of class other: kuaishou, x"


def _tiny_run(fail_check: bool, error: Exception | None) -> dg.ExecuteInProcessResult:
    @dg.asset
    def a() -> dg.MaterializeResult:
        if error is not None:
            raise error
        return dg.MaterializeResult(metadata={"rows": 3})

    @dg.asset_check(asset=a, blocking=True)
    def a_ok() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=not fail_check, description="3 rows break a rule")

    @dg.asset(deps=[a])
    def b() -> None:
        pass

    return dg.materialize([a, b, a_ok], raise_on_error=False)


def test_the_failure_sentence_of_a_failed_check_and_of_an_exception(tmp_path: Path) -> None:
    from pipelines.console import failure_reason

    assert failure_reason(_tiny_run(True, None), tmp_path) == "check a_ok on a failed: 3 rows break a rule"
    try:
        raise OSError("disk gone")
    except OSError as cause:
        try:
            raise ValueError(f"{tmp_path}/orders.csv: cannot read") from cause
        except ValueError as err:
            wrapped = err
    assert failure_reason(_tiny_run(False, wrapped), tmp_path) == "ValueError: orders.csv: cannot read (OSError: disk gone)"
