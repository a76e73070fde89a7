"""sharegraph.ingest.sources: discovery, encoding detection, header mapping, reading as text."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from sharegraph.core.contract import ORDERS
from sharegraph.ingest.sources import (
    IngestError,
    InputMapping,
    SourceFile,
    classify,
    detect_encoding,
    discover,
    load_mapping,
    map_headers,
    open_text_relation,
    require_tables,
    utf8_path,
)


def test_discover_matches_table_names_and_ignores_everything_else(tmp_path: Path) -> None:
    names = ["orders.csv", "orders_2026-11-24.csv", "orders_x.csv.gz", "share_events.parquet",
             "share_events_1.jsonl", "agents.ndjson", "truth.json", "README.md", "ordersx.csv",
             "orders.txt", "mapping.toml", "products.CSV", "group_buys_a.csv"]
    for n in names:
        (tmp_path / n).write_text("x\n")
    found = discover(tmp_path)
    got = {t: [s.path.name for s in srcs] for t, srcs in found.items()}
    assert got == {
        "orders": ["orders.csv", "orders_2026-11-24.csv", "orders_x.csv.gz"],
        "share_events": ["share_events.parquet", "share_events_1.jsonl"],
        "products": ["products.CSV"],
        "agents": ["agents.ndjson"],
        "group_buys": ["group_buys_a.csv"],
    }
    assert classify(tmp_path / "share_events_1.jsonl").fmt == "jsonl"
    assert classify(tmp_path / "truth.json") is None


def test_missing_required_table_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "share_events.csv").write_text("x\n")
    with pytest.raises(IngestError, match="required table.*orders"):
        require_tables(discover(tmp_path), tmp_path)
    (tmp_path / "orders.csv").write_text("x\n")
    require_tables(discover(tmp_path), tmp_path)  # orders alone are enough


def test_missing_input_dir(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        discover(tmp_path / "nope")


def _src(path: Path, fmt: str = "csv") -> SourceFile:
    return SourceFile(path=path, table="orders", fmt=fmt)


@pytest.mark.parametrize(("data", "expected"), [
    ("订单号,金额\n甲,1\n".encode(), "utf-8"),
    ("\ufeff订单号,金额\n甲,1\n".encode(), "utf-8-sig"),
    ("订单号,金额\n甲,1\n".encode("gbk"), "gb18030"),
    (b"order_id,amount\nA,1\n", "utf-8"),
])
def test_detect_encoding(tmp_path: Path, data: bytes, expected: str) -> None:
    p = tmp_path / "orders.csv"
    p.write_bytes(data)
    assert detect_encoding(_src(p)) == expected


def test_detect_encoding_errors(tmp_path: Path) -> None:
    p = tmp_path / "orders.csv"
    p.write_bytes(b"")
    with pytest.raises(IngestError, match="empty"):
        detect_encoding(_src(p))
    p.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(IngestError, match="binary"):
        detect_encoding(_src(p))
    p.write_bytes(b"order_id\n\x80\x80\xff\n")
    with pytest.raises(IngestError, match="neither UTF-8 nor GBK"):
        detect_encoding(_src(p))
    p.write_bytes(b"order_id\nA\n")
    assert detect_encoding(_src(p), "gbk") == "gbk"  # configured wins
    with pytest.raises(IngestError, match="latin-1"):
        detect_encoding(_src(p), "latin-1")


def test_gbk_transcoded_streaming_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sharegraph.ingest.sources as sources

    monkeypatch.setattr(sources, "CHUNK_BYTES", 7)  # split multi-byte characters
    text = "订单号,类目\n" + "".join(f"单{i},食品饮料\n" for i in range(50))
    p = tmp_path / "orders.csv.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(text.encode("gbk"))
    src = _src(p)
    with utf8_path(src, "gb18030") as out:
        assert out.read_text(encoding="utf-8") == text
    assert not out.exists()  # temp copy removed


def test_transcode_reports_byte_offset(tmp_path: Path) -> None:
    p = tmp_path / "orders.csv"
    p.write_bytes("订单号\n".encode("gbk") + b"\x80\n")
    with pytest.raises(IngestError, match=r"invalid gb18030 bytes at byte 7"), \
            utf8_path(_src(p), "gb18030"):
        pass


def test_map_headers_precedence_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "orders.csv"
    headers = ["订单号", "Customer_ID ", "下单时间", "商品id", "数量", "实付金额", "渠道", "extra"]
    got = map_headers(headers, ORDERS, None, p)
    assert got.columns == {"order_id": "订单号", "customer_id": "Customer_ID ",
                           "ordered_at": "下单时间", "product_id": "商品id", "quantity": "数量",
                           "amount": "实付金额", "channel": "渠道"}
    assert got.unmapped == ["extra"] and got.suggestions == {}
    # mapping file wins over alias
    got = map_headers(["单号", *headers[1:]], ORDERS, {"单号": "order_id"}, p)
    assert got.columns["order_id"] == "单号"
    # the canonical name wins over an alias; the alias header is reported, not an error
    got = map_headers(["order_id", *headers], ORDERS, None, p)
    assert got.columns["order_id"] == "order_id" and got.unmapped == ["订单号", "extra"]
    with pytest.raises(IngestError, match="both map to column 'order_id'"):
        map_headers(["a", "b", *headers[1:]], ORDERS, {"a": "order_id", "b": "order_id"}, p)
    with pytest.raises(IngestError, match=r"missing required column\(s\) amount"):
        map_headers([h for h in headers if h != "实付金额"], ORDERS, None, p)


def test_load_mapping_toml_json_and_errors(tmp_path: Path) -> None:
    (tmp_path / "mapping.toml").write_text('[orders]\n"单号" = "order_id"\n', encoding="utf-8")
    assert load_mapping(tmp_path).headers == {"orders": {"单号": "order_id"}}
    (tmp_path / "mapping.toml").unlink()
    (tmp_path / "mapping.json").write_text('{"orders": {"单号": "nope"}}', encoding="utf-8")
    with pytest.raises(IngestError, match="'nope', which is not a column of orders"):
        load_mapping(tmp_path)
    (tmp_path / "mapping.json").write_text('{"bogus": {}}', encoding="utf-8")
    with pytest.raises(IngestError, match="unknown table 'bogus'"):
        load_mapping(tmp_path)
    assert load_mapping(tmp_path / "x") == InputMapping()


HEADER = "order_id,customer_id,ordered_at,product_id,quantity,amount,channel"


def test_relation_row_numbers_follow_data_rows(tmp_path: Path) -> None:
    """source_row counts data rows (a quoted newline does not shift it)."""
    p = tmp_path / "orders.csv"
    p.write_text(HEADER + '\nA,"c\n1",2026-01-01,p,1,1,jd\nB,c2,2026-01-01,p,1,2.50,jd\n')
    con = duckdb.connect()
    cols = open_text_relation(con, _src(p), ORDERS, None, p, "v").columns
    assert set(cols) == set(HEADER.split(","))
    rows = con.execute("SELECT source_row, order_id, customer_id, amount FROM v ORDER BY 1").fetchall()
    assert rows == [(1, "A", "c\n1", "1"), (2, "B", "c2", "2.50")]
    assert {r[1] for r in con.execute("DESCRIBE v").fetchall()} == {"BIGINT", "VARCHAR"}


def test_relation_jsonl_and_parquet_are_text(tmp_path: Path) -> None:
    con = duckdb.connect()
    j = tmp_path / "orders.jsonl"
    j.write_text('{"order_id": "A", "customer_id": "c", "ordered_at": "2026-01-01", '
                 '"product_id": "p", "quantity": 2, "amount": 1.5, "channel": "jd"}\n', encoding="utf-8")
    open_text_relation(con, _src(j, "jsonl"), ORDERS, None, j, "vj")
    assert con.execute("SELECT source_row, quantity, amount FROM vj").fetchall() == [(1, "2", "1.5")]
    pq = tmp_path / "orders.parquet"
    con.execute(f"COPY (SELECT 'A' AS order_id, 'c' AS customer_id, TIMESTAMP '2026-01-01 10:00' "
                f"AS ordered_at, 'p' AS product_id, 2.5 AS quantity, 1.5 AS amount, 'jd' AS channel) "
                f"TO '{pq}' (FORMAT parquet)")
    open_text_relation(con, _src(pq, "parquet"), ORDERS, None, pq, "vp")
    assert con.execute("SELECT source_row, ordered_at, quantity FROM vp").fetchall() == [
        (1, "2026-01-01 10:00:00", "2.5")]
    j.write_text('{"order_id": "A"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(IngestError, match="line 2 is not a JSON object"):
        open_text_relation(con, _src(j, "jsonl"), ORDERS, None, j, "vj")
