"""sharegraph/ingest/inbox.py: complete-file detection, path confinement, day loads."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect
from sharegraph.ingest import load as ingest
from sharegraph.ingest.inbox import (
    InboxError,
    archive,
    confine,
    load_day,
    parse_name,
    reject,
    scan,
)

ORDER_HEADER = "order_id,customer_id,ordered_at,product_id,category,quantity,amount,channel\n"


def order_rows(ids: range, day: str) -> str:
    return "".join(
        f"O{i},C{i % 7},{day} 10:{i % 60:02d}:00,P{i % 5},cat{i % 3},1,{i}.50,wechat\n" for i in ids
    )


def write(path: Path, text: str, age_s: float = 3600) -> Path:
    path.write_text(text, encoding="utf-8")
    t = path.stat().st_mtime - age_s
    os.utime(path, (t, t))
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    d = {k: tmp_path / k for k in ("inbox", "archive", "rejected")}
    d["inbox"].mkdir()
    return d


def test_parse_name() -> None:
    assert parse_name("orders_2026-03-14.csv") == ("orders", date(2026, 3, 14))
    assert parse_name("share_events_2026-03-14_part2.csv.gz") == ("share_events", date(2026, 3, 14))
    assert parse_name("products_2026-01-02.parquet") == ("products", date(2026, 1, 2))
    assert parse_name("orders.csv") is None
    assert parse_name("orders_2026-02-30.csv") is None  # not a date
    assert parse_name("orders_latest.csv") is None
    assert parse_name("invoices_2026-03-14.csv") is None


def test_confine_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    for bad in ("..", "../x", "a/b", ".", "", "x\x00"):
        with pytest.raises(InboxError):
            confine(root, bad)
    with pytest.raises(InboxError, match="outside"):
        confine(root, "link")
    assert confine(root, "orders_2026-01-01.csv") == root.resolve() / "orders_2026-01-01.csv"
    assert confine(root, "link", follow_links=False) == root.resolve() / "link"


def test_scan_classifies_complete_temp_young_and_bad_files(dirs: dict[str, Path], tmp_path: Path) -> None:
    inbox = dirs["inbox"]
    write(inbox / "orders_2026-01-01.csv", ORDER_HEADER + order_rows(range(3), "2026-01-01"))
    write(inbox / "orders_2026-01-02.csv.part", "partial")
    write(inbox / ".orders_2026-01-02.csv", "hidden temp")
    write(inbox / "orders_2026-01-03.csv", ORDER_HEADER, age_s=0)  # still being written
    write(inbox / "orders_2026-01-04.csv", ORDER_HEADER, age_s=0)
    write(inbox / "orders_2026-01-04.csv.ready", "", age_s=0)  # ... but marked complete
    write(inbox / "notes.txt", "hello")
    write(inbox / "orders_2026-01-05.csv", "")
    secret = write(tmp_path / "secret_2026-01-01.csv", "do not read")
    (inbox / "orders_2026-01-06.csv").symlink_to(secret)
    found = scan(inbox, settle_seconds=60)
    assert [f.path.name for f in found.ready] == ["orders_2026-01-01.csv", "orders_2026-01-04.csv"]
    assert [p.name for p in found.waiting] == ["orders_2026-01-03.csv"]
    reasons = {r.path.name: r.reason for r in found.rejected}
    assert set(reasons) == {"notes.txt", "orders_2026-01-05.csv", "orders_2026-01-06.csv"}
    assert "does not match" in reasons["notes.txt"]
    assert "empty" in reasons["orders_2026-01-05.csv"]
    assert "outside" in reasons["orders_2026-01-06.csv"]
    first = found.ready[0]
    assert first.table == "orders" and first.day == date(2026, 1, 1)
    assert first.run_key.startswith("orders_2026-01-01.csv:")


def test_reject_moves_the_link_not_its_target(dirs: dict[str, Path], tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.csv", "keep me")
    link = dirs["inbox"] / "orders_2026-01-06.csv"
    link.symlink_to(secret)
    moved = reject(link, dirs["inbox"], dirs["rejected"], "symlink resolves outside the inbox")
    assert moved.is_symlink() and moved.parent == dirs["rejected"].resolve()
    assert secret.read_text() == "keep me" and secret.parent == tmp_path
    note = dirs["rejected"] / "orders_2026-01-06.csv.reason.txt"
    assert "outside the inbox" in note.read_text(encoding="utf-8")
    with pytest.raises(InboxError):  # a path not directly inside the inbox is refused
        reject(secret, dirs["inbox"], dirs["rejected"], "x")


def test_archive_never_overwrites(dirs: dict[str, Path]) -> None:
    day = date(2026, 1, 1)
    a = write(dirs["inbox"] / "orders_2026-01-01.csv", "v1")
    first = archive(a, dirs["inbox"], dirs["archive"], day)
    b = write(dirs["inbox"] / "orders_2026-01-01.csv", "v2")
    second = archive(b, dirs["inbox"], dirs["archive"], day)
    assert first.parent == second.parent == dirs["archive"].resolve() / "2026-01-01"
    assert first.read_text() == "v1" and second.read_text() == "v2" and first != second


def staged_ids(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT order_id FROM staging.orders ORDER BY order_id").fetchall()]


def test_load_day_redelivery_out_of_order_and_overlap(dirs: dict[str, Path], tmp_path: Path) -> None:
    """The same export twice, days out of order, overlapping days: no duplicates, none lost."""
    settings = Settings()
    kw = {"inbox": dirs["inbox"], "archive_dir": dirs["archive"], "rejected_dir": dirs["rejected"],
          "settings": settings}
    con = connect(tmp_path / "w.duckdb")
    # day 2 arrives first and overlaps day 1 (rows O5..O9 are in both files)
    write(dirs["inbox"] / "orders_2026-01-02.csv", ORDER_HEADER + order_rows(range(5, 15), "2026-01-02"))
    r2 = load_day(con, date(2026, 1, 2), **kw)
    assert [f["outcome"] for f in r2.files] == ["loaded"] and r2.total("rows_loaded") == 10
    write(dirs["inbox"] / "orders_2026-01-01.csv",
          ORDER_HEADER + order_rows(range(0, 10), "2026-01-02"))  # late day, same rows for O5..O9
    r1 = load_day(con, date(2026, 1, 1), **kw)
    assert r1.total("rows_loaded") == 5 and r1.total("rows_already_loaded") == 5
    # the day-2 export delivered again (identical bytes): skipped as same content
    write(dirs["inbox"] / "orders_2026-01-02.csv", ORDER_HEADER + order_rows(range(5, 15), "2026-01-02"))
    again = load_day(con, date(2026, 1, 2), **kw)
    assert {f["outcome"] for f in again.files} == {"same_content"}
    assert again.total("rows_loaded") == 0
    assert staged_ids(con) == sorted(f"O{i}" for i in range(15))
    assert ingest.reconciliation_failures(con) == []
    assert ingest.duplicate_keys(con, "orders") == 0
    # raw.daily_exports: one row per file per day, replaced on a re-run of the day
    per_day = dict(con.execute(
        "SELECT export_date::VARCHAR, count(*) FROM raw.daily_exports GROUP BY 1").fetchall())
    assert per_day == {"2026-01-01": 1, "2026-01-02": 2}  # archived copy + re-delivered copy
    assert not any(dirs["inbox"].iterdir())
    assert len(list((dirs["archive"] / "2026-01-02").iterdir())) == 2
    con.close()


def test_load_day_rejects_unreadable_file_and_keeps_the_rest(dirs: dict[str, Path], tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    write(dirs["inbox"] / "orders_2026-01-03.csv", ORDER_HEADER + order_rows(range(3), "2026-01-03"))
    write(dirs["inbox"] / "share_events_2026-01-03.csv", "this is,not\n\"an export")
    result = load_day(con, date(2026, 1, 3), inbox=dirs["inbox"], archive_dir=dirs["archive"],
                      rejected_dir=dirs["rejected"], settings=Settings())
    outcomes = {f["file_name"]: f["outcome"] for f in result.files}
    assert outcomes == {"orders_2026-01-03.csv": "loaded", "share_events_2026-01-03.csv": "rejected"}
    assert (dirs["rejected"] / "share_events_2026-01-03.csv").is_file()
    reason = (dirs["rejected"] / "share_events_2026-01-03.csv.reason.txt").read_text(encoding="utf-8")
    assert "share_events_2026-01-03.csv" in reason
    assert staged_ids(con) == ["O0", "O1", "O2"]
    con.close()
