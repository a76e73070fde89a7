"""Order and group-buy lifecycle across loads (sharegraph.ingest.load): a later export that changes
a status updates the staged row with history; immutable changes stay conflicts; reversals are
flagged; the marts of the next run see the change. Also the reject-rate threshold and the
"required table has rows" rule, which a run and ``validate`` apply alike."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from sharegraph.core.config import Settings
from sharegraph.ingest.load import (
    IngestError,
    RejectRateError,
    load_file,
    load_inputs,
    reconciliation_failures,
)
from sharegraph.ingest.validate import validate_inputs
from tests.helpers import ORDER, table_counts, write_csv

SETTINGS = Settings()
LENIENT = Settings(max_reject_rate=1.0)


def _orders(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, rows, header=[*ORDER, "status", "referrer_id"])


def test_refund_in_a_later_export_updates_the_line_with_history(tmp_path: Path, con) -> None:
    day1 = [dict(ORDER, order_id=f"o{i}", status="paid", referrer_id="a1") for i in range(4)]
    load_file(con, _orders(tmp_path / "d1" / "orders.csv", day1), "orders", SETTINGS)
    day2 = [dict(r) for r in day1]
    day2[1]["status"] = "已退款"  # refunded, in the words of the export
    day2[2]["status"] = "cancelled"
    day2[3]["amount"] = "99.00"  # an immutable field changed: a conflict, not an update
    day2.append(dict(ORDER, order_id="o9", status="paid"))
    r = load_file(con, _orders(tmp_path / "d2" / "orders.csv", day2), "orders", LENIENT)
    assert (r.rows_read, r.rows_loaded, r.rows_updated, r.rows_quarantined, r.rows_already_loaded) == (
        5, 1, 2, 1, 1)
    assert con.execute("SELECT list(status ORDER BY order_id) FROM staging.orders").fetchone()[0] == [
        "paid", "refunded", "cancelled", "paid", "paid"]
    assert con.execute("SELECT amount FROM staging.orders WHERE order_id = 'o3'").fetchone()[0] == 10
    history = con.execute("""SELECT natural_key, column_name, old_value, new_value, source_file,
        source_row FROM staging.status_history ORDER BY natural_key""").fetchall()
    assert history == [("o1,1", "status", "paid", "refunded", "orders.csv", 2),
                       ("o2,1", "status", "paid", "cancelled", "orders.csv", 3)]
    conflict = con.execute("""SELECT source_row, column_name, rule, raw_value, raw_record
        FROM quarantine.rejected_rows""").fetchone()
    assert conflict[:4] == (4, "amount", "conflicts_with_loaded", "99.00")
    both = json.loads(conflict[4])
    assert (both["key"], both["loaded"]["amount"], both["new"]["amount"]) == ("o3,1", 10.0, 99.0)
    assert reconciliation_failures(con) == []
    # the same export again changes nothing
    before = table_counts(con)
    r = load_file(con, _orders(tmp_path / "d3" / "orders.csv", day2[:3]), "orders", SETTINGS)
    assert (r.rows_updated, r.rows_already_loaded) == (0, 3) and table_counts(con)["staging.orders"] == before["staging.orders"]


def test_back_to_paid_is_applied_and_flagged(tmp_path: Path, con) -> None:
    load_file(con, _orders(tmp_path / "d1" / "orders.csv", [dict(ORDER, order_id="x", status="refunded")]),
              "orders", SETTINGS)
    load_file(con, _orders(tmp_path / "d2" / "orders.csv", [dict(ORDER, order_id="x", status="paid")]),
              "orders", SETTINGS)
    from sharegraph.ingest.load import flag_references

    flag_references(con)
    assert con.execute("SELECT status FROM staging.orders").fetchone()[0] == "paid"
    assert con.execute("SELECT rule, raw_value FROM quarantine.flagged_rows").fetchall() == [
        ("status_reversal", "refunded -> paid")]


def test_group_closes_in_a_later_export(tmp_path: Path, con) -> None:
    base = {"group_id": "g1", "initiator_id": "a", "target_size": "2", "opened_at": "2026-01-01 08:00"}
    g = tmp_path / "d1" / "group_buys.csv"
    g.parent.mkdir()
    write_csv(g, [dict(base, status="拼团中")], header=[*base, "status", "closed_at"])
    load_file(con, g, "group_buys", SETTINGS)
    g2 = tmp_path / "d2" / "group_buys.csv"
    g2.parent.mkdir()
    write_csv(g2, [dict(base, status="成团", closed_at="2026-01-01 09:00")])
    r = load_file(con, g2, "group_buys", SETTINGS)
    assert r.rows_updated == 1
    assert con.execute("SELECT status, closed_at::VARCHAR FROM staging.group_buys").fetchone() == (
        "filled", "2026-01-01 09:00:00")
    assert con.execute("SELECT column_name, old_value, new_value FROM staging.status_history "
                       "ORDER BY column_name").fetchall() == [
        ("closed_at", None, "2026-01-01 09:00:00"), ("status", "open", "filled")]


@pytest.mark.slow
def test_next_run_marts_reflect_a_refund(tmp_path: Path) -> None:
    """Two runs of the real pipeline: a refund in the second export removes the line's paid
    GMV and its credit from the marts (checked against plain SQL on staging)."""
    from pipelines.run import run_pipeline

    os.environ.setdefault("DAGSTER_HOME", str(tmp_path / "dagster"))
    rows = [dict(ORDER, order_id=f"o{i}", customer_id=f"c{i}", referrer_id="agent", status="paid",
                 amount="100.00") for i in range(6)]
    inbox = tmp_path / "in"
    _orders(inbox / "orders_1.csv", rows)
    wh = tmp_path / "out" / "wh.duckdb"
    run_pipeline(input_dir=inbox, warehouse=wh, reports_dir=tmp_path / "out" / "reports")

    def agent_gmv() -> float:
        with duckdb.connect(str(wh), read_only=True) as c:
            return float(c.execute("SELECT direct_gmv FROM marts.agent_influence "
                                   "WHERE person_id = 'agent'").fetchone()[0])

    assert agent_gmv() == 600.0
    rows[0]["status"] = "已退款"
    _orders(inbox / "orders_2.csv", rows)
    run_pipeline(input_dir=inbox, warehouse=wh, reports_dir=tmp_path / "out" / "reports")
    assert agent_gmv() == 500.0
    with duckdb.connect(str(wh), read_only=True) as c:
        assert c.execute("SELECT count(*) FROM staging.status_history").fetchone()[0] == 1


def test_reject_rate_over_the_limit_fails_naming_file_rate_and_rules(tmp_path: Path, con) -> None:
    d = tmp_path / "in"
    rows = [dict(ORDER, order_id=f"o{i}") for i in range(18)]
    rows += [dict(ORDER, order_id="bad1", amount="abc"), dict(ORDER, order_id="bad2", quantity="0")]
    _orders(d / "orders.csv", rows)
    with pytest.raises(RejectRateError) as info:
        load_inputs(con, d, SETTINGS)
    msg = str(info.value)
    assert str(d / "orders.csv") in msg and "2 of 20 rows rejected (10.0%" in msg
    assert "below_minimum 1, not_money 1" in msg
    assert table_counts(con)["staging.orders"] == 0 and table_counts(con)["quarantine.batches"] == 0
    assert any("10.0%" in e for e in validate_inputs(d, SETTINGS).errors)
    # at or below the limit the good rows load and the bad ones are quarantined
    results = load_inputs(con, d, SETTINGS.with_values({"max_reject_rate": 0.10}))
    assert (results[0].rows_loaded, results[0].rows_quarantined) == (18, 2)


@pytest.mark.parametrize("content", ["header_only", "all_rejected"])
def test_required_table_without_rows_is_one_sentence_in_run_and_validate(
        tmp_path: Path, con, content: str) -> None:
    d = tmp_path / "in"
    if content == "header_only":
        _orders(d / "orders.csv", [])
        expected = "orders is required but has no loadable row: it has no data rows (header only)"
    else:
        _orders(d / "orders.csv", [dict(ORDER, order_id="a", amount="x")])
        expected = "every row was rejected (top rules: not_money 1)"
    settings = SETTINGS.with_values({"max_reject_rate": 1.0})
    with pytest.raises(IngestError) as info:
        load_inputs(con, d, settings)
    assert str(d / "orders.csv") in str(info.value) and expected in str(info.value)
    report = validate_inputs(d, settings)
    assert not report.ok and any(expected in e for e in report.errors)


def test_truncated_gzip_names_the_file(tmp_path: Path, con) -> None:
    import gzip

    d = tmp_path / "in"
    d.mkdir()
    text = ",".join(ORDER) + "\n" + "".join(
        f"o{i},c1,2026-01-01,p1,food,1,1.00,jd\n" for i in range(200_000))
    data = gzip.compress(text.encode())
    (d / "orders.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match=r"orders\.csv\.gz: cannot read as csv.*GZIP"):
        load_inputs(con, d, SETTINGS)
    assert any("orders.csv.gz" in e for e in validate_inputs(d, SETTINGS).errors)
