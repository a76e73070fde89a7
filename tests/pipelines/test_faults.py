"""Crash and resource faults, for real, in subprocesses (slow).

Each test starts from a copy of the session warehouse (published + working file), delivers
new exports, breaks the run (SIGKILL at a fault point, an open reader, a full disk, an
unusable path) and checks that the published snapshot is unchanged and consistent, that a
rerun completes, with no duplicate row and every batch reconciled. Fault points are
``sharegraph.core.warehouse.fault_point`` (SHAREGRAPH_FAULT_AFTER=<name>): the process writes a
signal file and pauses there, so the kill lands exactly at that point.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from sharegraph.core.contract import ORDERS, TABLES
from sharegraph.core.warehouse import WarehousePaths, table_counts
from sharegraph.ingest import load as ingest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
NEW_ORDERS = 40


def counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return table_counts(con)
    finally:
        con.close()


def assert_consistent(working: Path) -> None:
    con = duckdb.connect(str(working))  # the ingest helpers ensure the schema: read-write
    try:
        assert ingest.reconciliation_failures(con) == []
        for t in TABLES:
            assert ingest.duplicate_keys(con, t) == 0, f"duplicate keys in staging.{t}"
    finally:
        con.close()


def new_orders_csv(working: Path, out: Path, day: date) -> None:
    """NEW_ORDERS new lines (copies of loaded ones under new ids) + 10 exact re-sends."""
    cols = ", ".join(ORDERS.column_names)
    con = duckdb.connect(str(working), read_only=True)
    new = (f"SELECT * REPLACE ('F-' || order_id AS order_id, TIMESTAMP '{day} 09:00:00' AS ordered_at) "
           f"FROM (SELECT {cols} FROM staging.orders ORDER BY order_id, line_no LIMIT {NEW_ORDERS})")
    old = f"SELECT * FROM (SELECT {cols} FROM staging.orders ORDER BY order_id DESC LIMIT 10)"
    con.execute(f"COPY (SELECT * FROM ({new}) UNION ALL {old}) TO '{out}' (HEADER)")
    con.close()


@pytest.fixture
def env(pipeline_run: dict, small_world: Path, tmp_path: Path) -> dict:
    """A private copy of the built warehouse, an input dir with one extra export, an env."""
    built = Path(pipeline_run["warehouse"])
    paths = WarehousePaths.of(tmp_path / "wh" / "wh.duckdb")
    paths.published.parent.mkdir()
    shutil.copyfile(built, paths.published)
    shutil.copyfile(built.with_name(f"{built.stem}.working.duckdb"), paths.working)
    inputs = tmp_path / "input"
    inputs.mkdir()
    for f in small_world.iterdir():
        if f.is_file() and f.name != "truth.json":
            os.symlink(f, inputs / f.name)
    new_orders_csv(paths.working, inputs / "orders_zz_extra.csv", date(2026, 1, 31))
    (tmp_path / "dagster").mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", tmp_path / "dagster" / "dagster.yaml")
    e = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "SHAREGRAPH_STATE": str(tmp_path / "state"),
         "SHAREGRAPH_FAULT_SIGNAL": str(tmp_path / "fault-reached")}
    for k in ("SHAREGRAPH_FAULT_AFTER", "SHAREGRAPH_INBOX", "SHAREGRAPH_WAREHOUSE"):
        e.pop(k, None)
    return {"paths": paths, "inputs": inputs, "env": e, "tmp": tmp_path,
            "before": counts(paths.published), "inode": paths.published.stat().st_ino}


def cli_run(env: dict, warehouse: Path | None = None, fault: str | None = None) -> subprocess.Popen:
    e = dict(env["env"])
    if fault:
        e["SHAREGRAPH_FAULT_AFTER"] = fault
    cmd = [str(BIN / "sharegraph"), "run", "--input", str(env["inputs"]),
           "--warehouse", str(warehouse or env["paths"].published), "--reports", str(env["tmp"] / "reports")]
    return subprocess.Popen(cmd, env=e, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_at_fault_point(proc: subprocess.Popen, signal_file: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not signal_file.exists():
        if proc.poll() is not None:
            pytest.fail(f"run ended (rc {proc.returncode}) before the fault point:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("fault point not reached in time")
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def assert_published_unchanged(env: dict) -> None:
    paths = env["paths"]
    assert paths.published.stat().st_ino == env["inode"]
    assert counts(paths.published) == env["before"]


def assert_rerun_publishes_new_rows(env: dict) -> None:
    rc, out = finish(cli_run(env))
    assert rc == 0, out[-3000:]
    after = counts(env["paths"].published)
    assert after["staging.orders"] == env["before"]["staging.orders"] + NEW_ORDERS
    assert after["graph.attributed_orders"] == after["staging.orders"]
    assert not env["paths"].staging_copy.exists()
    assert_consistent(env["paths"].working)


def test_sigkill_during_publish_keeps_the_snapshot(env: dict) -> None:
    proc = cli_run(env, fault="publish-copy")
    kill_at_fault_point(proc, env["tmp"] / "fault-reached")
    assert env["paths"].staging_copy.exists()  # killed with the new copy written, not renamed
    assert_published_unchanged(env)
    assert_consistent(env["paths"].working)
    assert_rerun_publishes_new_rows(env)


def test_sigkill_during_the_full_ingest_keeps_everything(env: dict) -> None:
    """Kill `sharegraph run` with every file read and validated, just before the COMMIT."""
    proc = cli_run(env, fault="ingest-commit")
    kill_at_fault_point(proc, env["tmp"] / "fault-reached")
    assert_published_unchanged(env)
    assert_consistent(env["paths"].working)
    con = duckdb.connect(str(env["paths"].working))
    staged = con.execute("SELECT count(*) FROM staging.orders").fetchall()[0][0]
    con.close()
    assert staged == env["before"]["staging.orders"]  # the killed load left nothing behind
    assert_rerun_publishes_new_rows(env)


def test_sigkill_inside_a_daily_load_transaction(env: dict) -> None:
    """Kill the daily load job inside its open transaction; rerun the partition, then refresh."""
    day = date(2026, 1, 31)
    inbox = env["tmp"] / "inbox"
    inbox.mkdir()
    os.replace(env["inputs"] / "orders_zz_extra.csv", inbox / f"orders_{day}.csv")
    e = {**env["env"], "SHAREGRAPH_WAREHOUSE": str(env["paths"].published),
         "SHAREGRAPH_INPUT": str(env["inputs"]), "SHAREGRAPH_REPORTS": str(env["tmp"] / "reports"),
         "SHAREGRAPH_INBOX": str(inbox), "SHAREGRAPH_ARCHIVE": str(env["tmp"] / "archive"),
         "SHAREGRAPH_REJECTED": str(env["tmp"] / "rejected"), "SHAREGRAPH_INBOX_SETTLE_S": "0"}
    job = [str(BIN / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j", "daily_load_job",
           "--tags", json.dumps({"dagster/partition": day.isoformat()})]
    proc = subprocess.Popen(job, env={**e, "SHAREGRAPH_FAULT_AFTER": "daily-record"}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kill_at_fault_point(proc, env["tmp"] / "fault-reached")
    assert_published_unchanged(env)
    assert_consistent(env["paths"].working)
    assert (inbox / f"orders_{day}.csv").is_file()  # not archived: the day did not finish
    rc, out = finish(subprocess.Popen(job, env=e, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    assert rc == 0, out[-3000:]
    assert (env["tmp"] / "archive" / day.isoformat() / f"orders_{day}.csv").is_file()
    assert_consistent(env["paths"].working)
    con = duckdb.connect(str(env["paths"].working))
    # the killed run committed the file's load; the rerun sees the same content and skips it
    assert con.execute("SELECT outcome FROM raw.daily_exports WHERE export_date = ?",
                       [day]).fetchall() == [("same_content",)]
    staged = con.execute("SELECT count(*) FROM staging.orders").fetchall()[0][0]
    con.close()
    assert staged == env["before"]["staging.orders"] + NEW_ORDERS
    refresh = [str(BIN / "dagster"), "job", "execute", "-m", "pipelines.definitions", "-j", "refresh_after_load"]
    rc, out = finish(subprocess.Popen(refresh, env=e, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    assert rc == 0, out[-3000:]
    after = counts(env["paths"].published)
    assert after["staging.orders"] == after["graph.attributed_orders"] == staged


def test_reader_holds_the_snapshot_open_through_a_run(env: dict) -> None:
    reader_code = (
        "import sys, time, duckdb\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "q = 'SELECT count(*), sum(amount) FROM graph.attributed_orders'\n"
        "first = con.execute(q).fetchall()\n"
        "print('ready', flush=True)\n"
        "while sys.stdin.readline().strip() != 'stop':\n"
        "    pass\n"
        "assert con.execute(q).fetchall() == first\n"
        "print('same', first[0][0], flush=True)\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", reader_code, str(env["paths"].published)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert reader.stdout.readline().strip() == "ready"
    rc, out = finish(cli_run(env))
    assert rc == 0, out[-3000:]  # the open reader never blocks the pipeline or the publish
    after = counts(env["paths"].published)
    assert after["staging.orders"] == env["before"]["staging.orders"] + NEW_ORDERS
    reader_out, _ = reader.communicate("stop\n", timeout=60)
    assert reader.returncode == 0, reader_out
    assert reader_out.split() == ["same", str(env["before"]["graph.attributed_orders"])]


def test_unusable_warehouse_path_fails_clearly(env: dict) -> None:
    blocker = env["tmp"] / "blocker"
    blocker.write_text("a file where the warehouse directory should be")
    rc, out = finish(cli_run(env, warehouse=blocker / "wh.duckdb"), timeout=120)
    assert rc != 0
    assert "cannot create the warehouse directory" in out and "blocker" in out, out[-2000:]
    assert blocker.is_file() and blocker.read_text().startswith("a file")


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A small tmpfs (needs root and mount(2)); skipped where it cannot be mounted."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    size = os.environ.get("SHAREGRAPH_TEST_TMPFS_SIZE", "24m")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_publish_publishes_nothing(env: dict, tiny_fs: Path) -> None:
    """Working file fits on the small filesystem, the snapshot copy does not: ENOSPC."""
    src = env["paths"].working
    size = src.stat().st_size
    # fill the tmpfs so that the working file (+ slack to grow) fits but a second copy not
    paths = WarehousePaths.of(tiny_fs / "wh.duckdb")
    shutil.copyfile(src, paths.working)
    free = shutil.disk_usage(tiny_fs).free
    filler = free - size // 2
    if filler > 0:
        with open(tiny_fs / "filler", "wb") as fh:
            fh.truncate(0)
            fh.write(b"\0" * filler)
    rc, out = finish(cli_run(env, warehouse=paths.published), timeout=600)
    assert rc != 0, out[-2000:]
    assert "No space left on device" in out or "disk" in out.lower(), out[-3000:]
    assert not paths.published.exists()
    assert not paths.staging_copy.exists()
