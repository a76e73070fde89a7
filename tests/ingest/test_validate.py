"""sharegraph.ingest.validate: the report matches what a load would do, and loads nothing."""

from __future__ import annotations

from pathlib import Path

from sharegraph.core.config import Settings
from sharegraph.ingest.validate import validate_inputs
from tests.helpers import EVENT, ORDER, minimal_dir, write_csv


def test_clean_inputs_are_ok(tmp_path: Path) -> None:
    d = minimal_dir(tmp_path / "in")
    report = validate_inputs(d, Settings())
    assert report.ok and report.errors == [] and report.rule_counts == {}
    assert [(b.table, b.rows_read, b.rows_loaded) for b in report.batches] == [
        ("share_events", 1, 1), ("orders", 1, 1)]
    assert "OK" in report.render()
    assert not list(d.glob("*.duckdb"))  # nothing written next to the inputs


def test_report_counts_rules_examples_and_all_file_errors(tmp_path: Path) -> None:
    d = minimal_dir(tmp_path / "in", orders=[
        dict(ORDER, order_id="a"), dict(ORDER, order_id="b", amount="NaN"),
        dict(ORDER, order_id="c", amount="1.234"), dict(ORDER, order_id="d", amount="inf"),
        dict(ORDER, order_id="e", referrer_id="c1"),
    ], events=[dict(EVENT, event_id="e1"), dict(EVENT, event_id="e2", event_type="like")])
    (d / "orders_broken.csv").write_bytes(b"\x00\x01\x02")
    write_csv(d / "products_x.csv", [{"product_id": "p1"}])  # no category column
    report = validate_inputs(d, Settings(max_reject_rate=1.0))
    assert not report.ok
    assert report.rule_counts == {"not_money": 2, "money_precision": 1, "unknown_value": 1}
    assert len(report.errors) == 2
    assert any("orders_broken.csv" in e and "binary" in e for e in report.errors)
    assert any("products_x.csv" in e and "category" in e for e in report.errors)
    nm = next(r for r in report.rejected if r.rule == "not_money")
    assert nm.examples == [("orders.csv", 2, "amount", "NaN"), ("orders.csv", 4, "amount", "inf")]
    assert [(f.rule, f.count) for f in report.flagged] == [("self_referral", 1)]
    text = report.render()
    for needle in ("orders.not_money: 2", "orders.csv row 2 column amount: 'NaN'",
                   "orders_broken.csv", "orders.self_referral: 1", "PROBLEMS FOUND"):
        assert needle in text


def test_missing_required_table_is_reported(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "share_events.csv", [EVENT])
    report = validate_inputs(d, Settings())
    assert not report.ok and "orders" in report.errors[0]
    assert validate_inputs(tmp_path / "nope", Settings()).errors
    write_csv(d / "orders.csv", [ORDER])
    assert validate_inputs(d, Settings()).ok  # orders alone are a valid input
