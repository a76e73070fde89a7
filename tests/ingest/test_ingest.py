"""sharegraph.ingest.load: validated, idempotent, transactional loads (docs/ingest.md).

The bad-input corpus is built here in tmp_path: each defect asserts the exact quarantine
rule and column, or the exact file error.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from sharegraph.core.config import Settings
from sharegraph.core.contract import TABLES
from sharegraph.core.warehouse import connect
from sharegraph.ingest.load import (
    FLAG_RULES,
    ROW_RULES,
    BatchResult,
    IngestError,
    duplicate_keys,
    flag_references,
    load_file,
    load_inputs,
    reconciliation_failures,
)
from sharegraph.ingest.sources import LINE_RULES
from tests.helpers import (
    EVENT,
    LINE_DEFECTS,
    ORDER,
    ROW_DEFECTS,
    checksum,
    minimal_dir,
    table_counts,
    write_csv,
    write_line_defects,
)

SETTINGS = Settings(max_reject_rate=1.0)  # the corpus tests quarantine most rows on purpose
def rejected(con, table: str = "orders") -> list[tuple]:
    return con.execute(
        "SELECT source_row, column_name, rule, raw_value FROM quarantine.rejected_rows "
        "WHERE table_name = ? ORDER BY source_row, rule", [table]).fetchall()


def assert_reconciled(con, results: list[BatchResult]) -> None:
    assert reconciliation_failures(con) == []
    for r in results:
        assert r.rows_read == r.rows_loaded + r.rows_quarantined + r.rows_already_loaded


# --- the bad-input corpus: one row per defect, each with its exact rule and column ---------
# ROW_DEFECTS lives in tests/helpers.py (the Spark parity tests use it too)


def test_bad_row_corpus_each_defect_gets_its_exact_rule(tmp_path: Path, con) -> None:
    d = tmp_path / "in"
    good = dict(ORDER, order_id="good")
    rows = [good] + [dict(ORDER, order_id=name, **patch) for name, patch, _, _ in ROW_DEFECTS]
    header = [*ORDER, "line_no", "status", "commission", "red_packet"]
    minimal_dir(d)
    write_csv(d / "orders.csv", rows, header=header)
    write_csv(d / "products.csv", [{"product_id": "p1", "category": "food"}])
    results = load_inputs(con, d, SETTINGS)
    got = {r[0]: r[1:] for r in rejected(con)}
    expected = {i + 2: (col, rule, {**ORDER, **patch}.get(col) or None)
                for i, (_, patch, col, rule) in enumerate(ROW_DEFECTS)}
    for row, exp in expected.items():
        exp_raw = exp[2] if exp[2] is None else {**ORDER, **ROW_DEFECTS[row - 2][1]}[exp[0]]
        if exp[1] == "category_missing":
            exp_raw = None
        assert got.get(row) == (exp[0], exp[1], exp_raw), ROW_DEFECTS[row - 2][0]
    assert set(got) == set(expected)
    assert con.execute("SELECT list(order_id) FROM staging.orders").fetchone()[0] == ["good"]
    orders = next(r for r in results if r.table == "orders")
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (
        len(rows), 1, len(ROW_DEFECTS))
    covered_elsewhere = {"duplicate_key_conflict", "conflicts_with_loaded", *LINE_RULES.values()}
    assert {rule for *_, rule in ROW_DEFECTS} | covered_elsewhere == set(ROW_RULES) - {"not_number"}
    # the raw record keeps every source value of the rejected row
    rec = json.loads(con.execute("SELECT raw_record FROM quarantine.rejected_rows "
                                 "WHERE rule = 'money_precision' AND raw_value = '12.345'").fetchone()[0])
    assert rec["order_id"] == "three_decimals" and rec["amount"] == "12.345"
    assert_reconciled(con, results)


def test_share_event_and_group_buy_defects(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in", events=[
        dict(EVENT, event_id="e1"),
        dict(EVENT, event_id="e2", event_type="like"),
        dict(EVENT, event_id="e3", occurred_at=""),
        dict(EVENT, event_id="e4", actor_id=""),
    ])
    write_csv(d / "group_buys.csv", [
        {"group_id": "g1", "initiator_id": "a", "target_size": "3", "opened_at": "2026-01-01",
         "status": "filled"},
        {"group_id": "g2", "initiator_id": "a", "target_size": "0", "opened_at": "2026-01-01",
         "status": "filled"},
        {"group_id": "g3", "initiator_id": "a", "target_size": "3", "opened_at": "2026-01-01",
         "status": "won"},
    ])
    load_inputs(con, d, SETTINGS)
    assert rejected(con, "share_events") == [
        (2, "event_type", "unknown_value", "like"), (3, "occurred_at", "required", None),
        (4, "actor_id", "required", None)]
    assert rejected(con, "group_buys") == [
        (2, "target_size", "below_minimum", "0"), (3, "status", "unknown_value", "won")]


def test_duplicates_exact_resend_vs_conflict(tmp_path: Path, con) -> None:
    """Exact copies load once (the rest count as already loaded); conflicting copies of a
    key in one file are all quarantined; a key already in staging with other values is
    quarantined and staging keeps the first version."""
    a = dict(ORDER, order_id="a")
    rows = [a, dict(a), dict(ORDER, order_id="b"), dict(ORDER, order_id="b", amount="11.00"),
            dict(a, amount="10.0")]  # same typed value as row 1: still an exact duplicate
    d = minimal_dir(tmp_path / "in", orders=rows)
    [_, r] = load_inputs(con, d, SETTINGS)
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_already_loaded) == (5, 1, 2, 2)
    assert rejected(con) == [(3, "order_id,line_no", "duplicate_key_conflict", "b,1"),
                             (4, "order_id,line_no", "duplicate_key_conflict", "b,1")]
    write_csv(d / "orders_day2.csv", [a, dict(ORDER, order_id="a", line_no="1", amount="99.00"),
                                      dict(ORDER, order_id="c")])
    res = load_inputs(con, d, SETTINGS)
    day2 = next(x for x in res if x.source_file == "orders_day2.csv")
    assert [x.skipped for x in res] == [True, True, False]
    # row 1 exact re-send, row 2 conflicts with the copy inside this very file: both quarantined
    assert (day2.rows_loaded, day2.rows_quarantined, day2.rows_already_loaded) == (1, 2, 0)
    write_csv(d / "orders_day3.csv", [dict(ORDER, order_id="a", amount="99.00"),
                                      dict(ORDER, order_id="d")])
    [*_, day3] = load_inputs(con, d, SETTINGS)
    assert (day3.rows_loaded, day3.rows_quarantined, day3.rows_already_loaded) == (1, 1, 0)
    assert con.execute("SELECT source_row, rule FROM quarantine.rejected_rows "
                       "WHERE source_file = 'orders_day3.csv'").fetchall() == [
        (1, "conflicts_with_loaded")]
    assert con.execute("SELECT amount FROM staging.orders WHERE order_id = 'a'").fetchall() == [
        (pytest.approx(10.0),)]
    assert duplicate_keys(con, "orders") == 0
    assert reconciliation_failures(con) == []


def test_load_twice_is_idempotent(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in", orders=[dict(ORDER, order_id=f"o{i}") for i in range(20)])
    first = load_inputs(con, d, SETTINGS)
    before = table_counts(con), checksum(con, "orders"), checksum(con, "share_events")
    second = load_inputs(con, d, SETTINGS)
    assert all(r.skipped for r in second) and not any(r.skipped for r in first)
    assert (table_counts(con), checksum(con, "orders"), checksum(con, "share_events")) == before
    # the same rows under another file name: all already loaded, nothing new anywhere
    (d / "orders_copy.csv").write_text((d / "orders.csv").read_text() + "\n")
    r = load_file(con, d / "orders_copy.csv", "orders", SETTINGS)
    assert (r.rows_read, r.rows_loaded, r.rows_already_loaded, r.skipped) == (20, 0, 20, False)
    assert checksum(con, "orders") == before[1]
    assert_reconciled(con, first + [r])


def test_lineage_and_offset_timestamps(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in", orders=[
        dict(ORDER, order_id="local", ordered_at="2026-01-01 10:00:00"),
        dict(ORDER, order_id="utc", ordered_at="2026-01-01T02:00:00Z"),
        dict(ORDER, order_id="tokyo", ordered_at="2026-01-01T11:00:00+09:00"),
        dict(ORDER, order_id="compact", ordered_at="2026-01-01T10:00:00+0800"),
        dict(ORDER, order_id="slash", ordered_at="2026/01/01 10:00"),
        dict(ORDER, order_id="date", ordered_at="2026-01-01"),
    ])
    load_inputs(con, d, SETTINGS)
    got = dict(con.execute("SELECT order_id, ordered_at FROM staging.orders").fetchall())
    ten = datetime(2026, 1, 1, 10)
    assert got == {"local": ten, "utc": ten, "tokyo": ten, "compact": ten, "slash": ten,
                   "date": datetime(2026, 1, 1)}
    lin = con.execute("SELECT order_id, source_file, source_row, batch_id, loaded_at, status, "
                      "merchant_id, line_no FROM staging.orders ORDER BY source_row").fetchall()
    assert [(r[0], r[1], r[2]) for r in lin][:2] == [("local", "orders.csv", 1), ("utc", "orders.csv", 2)]
    batch = con.execute("SELECT batch_id FROM quarantine.batches WHERE table_name='orders'").fetchone()[0]
    assert {r[3] for r in lin} == {batch} and all(r[4] is not None for r in lin)
    assert {(r[5], r[6], r[7]) for r in lin} == {("paid", "default", 1)}  # contract defaults
    # another zone setting converts offsets to that zone instead
    con2 = duckdb.connect()
    load_inputs(con2, d, Settings(timezone="UTC"))
    got = dict(con2.execute("SELECT order_id, ordered_at FROM staging.orders").fetchall())
    assert got["utc"] == datetime(2026, 1, 1, 2) and got["local"] == ten


def test_gbk_bom_and_chinese_headers_round_trip(tmp_path: Path, con) -> None:
    zh = {"订单号": "单1", "买家": "张三", "下单时间": "2026-01-01 10:00:00", "商品id": "p1",
          "类目": "食品饮料", "数量": "2", "实付金额": "19.90", "渠道": "wechat", "推荐人": "李四"}
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "orders_gbk.csv", [zh], encoding="gbk")
    write_csv(d / "orders_bom.csv", [dict(zh, 订单号="单2")], encoding="utf-8-sig")
    write_csv(d / "share_events.csv", [{"事件id": "事件1", "事件类型": "share", "分享id": "分享1",
                                        "用户": "王五", "时间": "2026-01-01 09:00"}], encoding="gb18030")
    res = load_inputs(con, d, SETTINGS)
    assert [r.rows_loaded for r in res] == [1, 1, 1]
    rows = con.execute("SELECT order_id, customer_id, category, referrer_id, amount, quantity "
                       "FROM staging.orders ORDER BY order_id").fetchall()
    assert [r[:4] for r in rows] == [("单1", "张三", "食品饮料", "李四"), ("单2", "张三", "食品饮料", "李四")]
    assert con.execute("SELECT actor_id, share_id FROM staging.share_events").fetchall() == [
        ("王五", "分享1")]


def test_configured_encoding_and_gzip(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in")
    (d / "orders.csv").unlink()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([list(ORDER), list(dict(ORDER, customer_id="客户").values())])
    with gzip.open(d / "orders.csv.gz", "wb") as fh:
        fh.write(buf.getvalue().encode("gbk"))
    load_inputs(con, d, Settings(encoding="gbk"))
    assert con.execute("SELECT customer_id FROM staging.orders").fetchall() == [("客户",)]


def test_mapping_file_renames_headers(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in")
    src = {"单号": "m1", "客户": "c1", "付款时间": "2026-01-01 10:00", "货号": "p1", "类目": "x",
           "件数": "1", "金额": "5", "来源": "jd"}
    write_csv(d / "orders.csv", [src])
    (d / "mapping.toml").write_text(
        '[orders]\n"单号" = "order_id"\n"客户" = "customer_id"\n"付款时间" = "ordered_at"\n'
        '"货号" = "product_id"\n"件数" = "quantity"\n"金额" = "amount"\n"来源" = "channel"\n',
        encoding="utf-8")
    load_inputs(con, d, SETTINGS)
    assert con.execute("SELECT order_id, customer_id, product_id, amount::VARCHAR, channel "
                       "FROM staging.orders").fetchall() == [("m1", "c1", "p1", "5.00", "jd")]


def test_parquet_and_jsonl_inputs(tmp_path: Path, con) -> None:
    d = tmp_path / "in"
    d.mkdir()
    tmp = duckdb.connect()
    tmp.execute(
        f"""COPY (SELECT 'o' || i AS order_id, 'c' AS customer_id,
                  TIMESTAMP '2026-01-01 10:00' AS ordered_at, 'p' AS product_id, 'cat' AS category,
                  CASE WHEN i = 3 THEN 2.5 ELSE 1 END AS quantity, 9.99 AS amount,
                  'jd' AS channel FROM range(1, 5) t(i)) TO '{d / "orders.parquet"}' (FORMAT parquet)""")
    lines = [dict(EVENT, event_id="e1"), dict(EVENT, event_id="e2", event_type="click"),
             dict(EVENT, event_id="e3", occurred_at=None)]
    (d / "share_events.ndjson").write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    res = load_inputs(con, d, SETTINGS)
    assert [(r.table, r.rows_loaded, r.rows_quarantined) for r in res] == [
        ("share_events", 2, 1), ("orders", 3, 1)]
    assert rejected(con) == [(3, "quantity", "not_integer", "2.5")]
    assert rejected(con, "share_events") == [(3, "occurred_at", "required", None)]
    assert_reconciled(con, res)


def test_reference_flags(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in", orders=[
        dict(ORDER, order_id="ok", share_id="s1", referrer_id="a1"),
        dict(ORDER, order_id="ghost_share", share_id="s-none"),
        dict(ORDER, order_id="self", referrer_id="c1"),
        dict(ORDER, order_id="stranger", referrer_id="nobody"),
    ], events=[dict(EVENT, event_id="e1"),
               dict(EVENT, event_id="e2", event_type="click", share_id="s-missing", actor_id="c1"),
               dict(EVENT, event_id="e3", event_type="reshare", share_id="s2", parent_share_id="s-x")])
    write_csv(d / "agents.csv", [{"agent_id": "a1", "upline_id": ""},
                                 {"agent_id": "a2", "upline_id": "a2"},
                                 {"agent_id": "a3", "upline_id": "zz"}])
    load_inputs(con, d, SETTINGS)
    flags = con.execute("SELECT table_name, source_row, column_name, rule, raw_value "
                        "FROM quarantine.flagged_rows ORDER BY ALL").fetchall()
    assert flags == [
        ("agents", 2, "upline_id", "self_upline", "a2"),
        ("agents", 3, "upline_id", "unknown_upline", "zz"),
        ("orders", 2, "share_id", "unknown_share", "s-none"),
        ("orders", 3, "referrer_id", "self_referral", "c1"),
        ("orders", 4, "referrer_id", "unknown_referrer", "nobody"),
        ("share_events", 2, "share_id", "unknown_share", "s-missing"),
        ("share_events", 3, "parent_share_id", "unknown_parent_share", "s-x"),
    ]
    assert {f[3] for f in flags} <= set(FLAG_RULES)
    assert con.execute("SELECT count(*) FROM staging.orders").fetchone()[0] == 4  # flags keep rows
    assert flag_references(con) == len(flags)  # recomputed, not appended


# --- malformed CSV lines: quarantined with the raw line, the rest of the file loads ---------
@pytest.mark.parametrize("inline", [True, False], ids=["row-numbers-by-case", "row-numbers-by-asof"])
def test_malformed_lines_are_rows_and_the_rest_of_the_file_loads(
        tmp_path: Path, con, monkeypatch: pytest.MonkeyPatch, inline: bool) -> None:
    """Row numbers after a malformed line are the file's data row numbers, whether mapped by an
    inline CASE (few malformed lines) or by the ASOF join (many)."""
    from sharegraph.ingest import load

    monkeypatch.setattr(load, "SHIFT_INLINE", load.SHIFT_INLINE if inline else 0)
    d = minimal_dir(tmp_path / "in")
    lines, good = write_line_defects(d / "orders.csv")
    results = load_inputs(con, d, SETTINGS)
    orders = next(r for r in results if r.table == "orders")
    assert (orders.rows_read, orders.rows_loaded, orders.rows_quarantined) == (
        len(lines), len(good) + 1, len(LINE_DEFECTS))
    got = con.execute("""SELECT rule, raw_value, raw_record::JSON->>'line' FROM
        quarantine.rejected_rows ORDER BY source_row""").fetchall()
    assert [(g[0], g[1][:60]) for g in got] == [(rule, line[:60]) for _, line, rule in LINE_DEFECTS]
    # DuckDB counts CSV records (header = 1), so a quoted line break shifts nothing
    assert [int(g[2]) for g in got] == [5, 7, 9, 11]
    staged = con.execute("SELECT order_id, source_row FROM staging.orders ORDER BY source_row").fetchall()
    assert staged == [("g0", 1), ("g-multi", 2), ("g1", 3), ("g2", 5), ("g3", 7), ("g4", 9), ("g5", 11)]
    assert_reconciled(con, results)


# --- file-level defects: IngestError naming the file and why; nothing changes -------------
FILE_DEFECTS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "file is empty"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content"),
    ("undecodable", b"order_id\n\x80\x81\xff\xfe\n", "neither UTF-8 nor GBK"),
    ("missing_column", b"order_id,customer_id,ordered_at,product_id,quantity,channel\n"
                       b"x,c,2026-01-01,p,1,jd\n", "missing required column(s) amount"),
    ("unterminated_quote", (",".join(ORDER) + '\n"z,c1,2026-01-01,p1,food,1,1.00,jd\n').encode(),
     "line 2: a quote opened on this line never closes"),
    ("status_lookalike_unmapped", (",".join(ORDER) + ",订单状态(新)\n" + ",".join(ORDER.values())
                                   + ",已退款\n").encode(), "looks like the order status"),
    # valid UTF-8 for the 1 MiB the detector samples, then a broken sequence
    ("invalid_utf8_later", (",".join(ORDER) + "\n").encode() + b"".join(
        f"u{i},c1,2026-01-01,p1,food,1,1.00,jd\n".encode() for i in range(40_000))
     + b"y,\xe4\xb8,2026-01-01,p1,food,1,1.00,jd\n", "Invalid unicode"),
]


@pytest.mark.parametrize(("name", "data", "message"), FILE_DEFECTS, ids=[f[0] for f in FILE_DEFECTS])
def test_unreadable_file_fails_and_leaves_warehouse_unchanged(
        tmp_path: Path, con, name: str, data: bytes, message: str) -> None:
    d = minimal_dir(tmp_path / "in", orders=[dict(ORDER, order_id=f"o{i}") for i in range(5)])
    load_inputs(con, d, SETTINGS)
    before = table_counts(con), checksum(con, "orders")
    bad = d / f"orders_{name}.csv"
    bad.write_bytes(data)
    write_csv(d / "products.csv", [{"product_id": "p1", "category": "food"}])  # loads before orders
    with pytest.raises(IngestError) as info:
        load_inputs(con, d, SETTINGS)
    assert str(bad) in str(info.value) and message in str(info.value)
    assert (table_counts(con), checksum(con, "orders")) == before
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_file(con, bad, "orders", SETTINGS)
    assert (table_counts(con), checksum(con, "orders")) == before


def test_other_format_errors(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in")
    (d / "orders_x.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(IngestError, match="orders_x.parquet: cannot read as parquet"):
        load_inputs(con, d, SETTINGS)
    (d / "orders_x.parquet").unlink()
    (d / "orders_y.jsonl").write_text('{"order_id": "a"}\n{"order_id": \n', encoding="utf-8")
    with pytest.raises(IngestError, match="orders_y.jsonl"):
        load_inputs(con, d, SETTINGS)
    (d / "orders_y.jsonl").unlink()
    (d / "orders.csv").unlink()
    with pytest.raises(IngestError, match="required table.*orders"):
        load_inputs(con, d, SETTINGS)
    assert table_counts(con)["quarantine.batches"] == 0


def test_category_from_products_and_truth_never_read(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in", orders=[dict(ORDER, order_id="a", category="", product_id="p1")])
    write_csv(d / "products.csv", [{"product_id": "p1", "category": "food"}])
    (d / "truth.json").write_bytes(b"\x00not even json")  # would fail if opened
    res = load_inputs(con, d, SETTINGS)
    assert [r.rows_loaded for r in res] == [1, 1, 1]
    assert con.execute("SELECT category FROM staging.orders").fetchall() == [(None,)]


def test_header_only_file_loads_zero_rows(tmp_path: Path, con) -> None:
    d = minimal_dir(tmp_path / "in")
    (d / "orders_empty_day.csv").write_text(",".join(ORDER) + "\n")
    res = load_inputs(con, d, SETTINGS)
    assert [(r.source_file, r.rows_read) for r in res][-1] == ("orders_empty_day.csv", 0)
    assert_reconciled(con, res)


def test_small_world_loads_and_reconciles(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    pytest.importorskip("sharegraph.demo.generate")
    small_world: Path = request.getfixturevalue("small_world")
    con = connect(tmp_path / "w.duckdb")
    res = load_inputs(con, small_world, SETTINGS)
    assert {r.table for r in res} >= {"orders", "share_events"}
    assert_reconciled(con, res)
    n = con.execute("SELECT count(*) FROM staging.orders").fetchone()[0]
    assert n > 0
    for t in TABLES:
        assert duplicate_keys(con, t) == 0
    again = load_inputs(con, small_world, SETTINGS)
    assert all(r.skipped for r in again)
    assert con.execute("SELECT count(*) FROM staging.orders").fetchone()[0] == n


def test_source_row_is_file_order_on_a_parallel_scan(tmp_path: Path, con) -> None:
    """source_row comes from the materialised row position (no row_number window): on a file
    large enough for a multi-threaded scan, every staged and quarantined row keeps its line,
    also when the session had insertion order switched off (restored afterwards)."""
    n = 120_000
    rows = [dict(ORDER, order_id=f"o{i}", quantity=str(1 + i % 3)) for i in range(1, n + 1)]
    for i in (7, 50_001, 119_999):  # defects spread over the file
        rows[i - 1]["amount"] = "NaN"
    rows[60_000 - 1] = dict(rows[10 - 1])  # exact copy of line 10 at line 60000
    d = minimal_dir(tmp_path / "in", orders=rows)
    con.execute("SET threads = 4")
    con.execute("SET preserve_insertion_order = false")
    [_, r] = load_inputs(con, d, SETTINGS)
    assert not con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_already_loaded) == (
        n, n - 4, 3, 1)
    wrong = con.execute(
        "SELECT count(*) FROM staging.orders WHERE order_id <> 'o' || source_row").fetchone()[0]
    assert wrong == 0
    assert [x[0] for x in rejected(con)] == [7, 50_001, 119_999]
    assert con.execute("SELECT source_row FROM staging.orders WHERE order_id = 'o10'"
                       ).fetchall() == [(10,)]


def test_large_catalogue_lookup_gives_the_same_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """orders.category_missing looks products up in a list, or (above LIST_LOOKUP_MAX
    products) by hash join with view-numbered rows: both give identical outcomes."""
    from sharegraph.ingest import load as ingest

    rows = [dict(ORDER, order_id=f"o{i}", category="", product_id=f"p{i % 4}")
            for i in range(1, 41)]
    rows += [dict(ORDER, order_id="o3"), dict(ORDER, order_id="o5", amount="1.00"),
             dict(ORDER, order_id="bad", amount="1.001")]
    d = minimal_dir(tmp_path / "in", orders=rows)
    write_csv(d / "products.csv", [{"product_id": f"p{i}", "category": "food"} for i in (1, 2)])
    out = []
    for limit in (ingest.LIST_LOOKUP_MAX, 0):
        monkeypatch.setattr(ingest, "LIST_LOOKUP_MAX", limit)
        c = connect(tmp_path / f"w{limit}.duckdb")
        res = load_inputs(c, d, SETTINGS)
        assert_reconciled(c, res)
        out.append((
            [(r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_already_loaded) for r in res],
            c.execute("SELECT order_id, source_row, category FROM staging.orders "
                      "ORDER BY rowid").fetchall(),
            rejected(c)))
        c.close()
    assert out[0] == out[1]
    assert out[0][0][-1] == (43, 20, 23, 0)  # p0/p3: 20 category_missing; o3, o5 conflicts; bad
    assert [x[2] for x in out[0][2]].count("category_missing") == 20


def test_cheap_trim_equals_trim() -> None:
    """The trim shortcut (trim only where a space or a non-ASCII character can be stripped)
    gives exactly NULLIF(trim(v), '') on spaces, Unicode spaces, tabs and CJK text."""
    from sharegraph.ingest.load import _trimmed

    vals = ["", " ", "   ", "\u3000", "\u3000x", "x\u3000", "\xa0x", "x\u2003", "\t", "\tx",
            "a b", "中文 ", " 中文", "中文", "abc", None, " abc", "abc "]
    c = duckdb.connect()
    c.execute("CREATE TABLE t (x VARCHAR)")
    c.executemany("INSERT INTO t VALUES (?)", [[v] for v in vals])
    assert c.execute(f"SELECT count(*) FROM t WHERE ({_trimmed('x')}) "
                     "IS DISTINCT FROM NULLIF(trim(x), '')").fetchone()[0] == 0


def test_ascending_keys_shortcut_is_exact() -> None:
    """_keys_ascending (which lets a sorted file skip the duplicate-key aggregate) says True
    only when valid rows' keys strictly increase (lexicographically over order_id, line_no);
    an equal or falling step, or a NULL key, sends the file to the aggregate."""
    from sharegraph.ingest.load import _keys_ascending

    c = duckdb.connect()
    cases = {
        (("a", 1, None), ("a", 2, None), ("b", 1, None)): True,
        (("a", 1, None), ("a", 1, None)): False,  # adjacent copy
        (("a", 2, None), ("a", 1, None)): False,
        (("b", 1, None), ("a", 9, None)): False,  # distinct but not sorted: aggregate decides
        (("a", 1, None), ("a", 1, "required"), ("b", 1, None)): True,  # rejected rows skipped
        (("a", 1, None), (None, 2, None)): False,
        (("a", 1, None),): True,
        (): True,
    }
    for rows, expected in cases.items():
        c.execute("CREATE OR REPLACE TABLE v (t_order_id VARCHAR, t_line_no INTEGER, "
                  "err_rule VARCHAR)")
        if rows:
            c.executemany("INSERT INTO v VALUES (?, ?, ?)", [list(r) for r in rows])
        assert _keys_ascending(c, TABLES["orders"], "v") is expected, rows


def test_sorted_file_with_adjacent_copies_matches_unsorted(tmp_path: Path) -> None:
    """A key-sorted file (shortcut tried, then the aggregate on the equal step) and the same
    rows shuffled (aggregate only) load to the same staging rows and quarantine rules."""
    rows = [dict(ORDER, order_id=f"o{i:03d}") for i in range(1, 60)]
    rows.insert(10, dict(rows[9]))  # exact copy next to its original
    rows.insert(30, dict(rows[29], amount="77.00"))  # conflicting copy
    shuffled = rows[::-1]
    out = []
    for name, data in (("sorted", rows), ("shuffled", shuffled)):
        c = connect(tmp_path / f"{name}.duckdb")
        res = load_inputs(c, minimal_dir(tmp_path / name, orders=data), SETTINGS)
        assert_reconciled(c, res)
        r = res[-1]
        out.append(((r.rows_loaded, r.rows_quarantined, r.rows_already_loaded),
                    c.execute("SELECT order_id, amount FROM staging.orders ORDER BY 1").fetchall(),
                    sorted(x[2] for x in rejected(c))))
        c.close()
    assert out[0] == out[1]
    assert out[0][0] == (58, 2, 1)  # 59 keys: o030 (conflict) quarantined twice
