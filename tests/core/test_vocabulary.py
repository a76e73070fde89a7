"""sharegraph.core.vocabulary and how the ingest applies it: synonyms, open channels, classes,
header aliases and money as real exports write it (docs/data-contract.md#values).

The expected canonical values are written out by hand here, never derived from the
vocabulary tables under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sharegraph.core.config import Settings
from sharegraph.core.contract import ENUMERATED
from sharegraph.core.vocabulary import Vocabulary, VocabularyError
from sharegraph.core.warehouse import connect, ensure_schema
from sharegraph.ingest.load import IngestError, load_inputs
from sharegraph.ingest.validate import validate_inputs
from tests.helpers import EVENT, ORDER, write_csv

SETTINGS = Settings(max_reject_rate=1.0)

#: (case, patch of one order row, column, the exact staged value)
ACCEPTED: list[tuple[str, dict[str, str], str, object]] = [
    ("yen_sign", {"amount": "¥12.00"}, "amount", "12.00"),
    ("fullwidth_yen_thousands", {"amount": "￥1,234.50"}, "amount", "1234.50"),
    ("thousands_only", {"amount": "1,200"}, "amount", "1200.00"),
    ("yen_space", {"amount": "¥ 8"}, "amount", "8.00"),
    ("channel_taobao_zh", {"channel": "淘宝"}, "channel", "taobao"),
    ("channel_moments_zh", {"channel": "朋友圈"}, "channel", "moments"),
    ("channel_douyin_zh", {"channel": "抖音"}, "channel", "douyin"),
    ("channel_case_space", {"channel": "  WeChat "}, "channel", "wechat"),
    ("channel_unknown_kept", {"channel": "Alipay"}, "channel", "alipay"),
    ("channel_unknown_zh_kept", {"channel": "视频号"}, "channel", "视频号"),
    ("status_refunded_zh", {"status": "已退款"}, "status", "refunded"),
    ("status_refund_success_zh", {"status": "退款成功"}, "status", "refunded"),
    ("status_closed_zh", {"status": "交易关闭"}, "status", "cancelled"),
    ("status_shipped_zh", {"status": "已发货"}, "status", "paid"),
    ("status_success_en", {"status": "SUCCESS"}, "status", "paid"),
    ("status_closed_en", {"status": "closed"}, "status", "cancelled"),
]


def _amount(v: object) -> str:
    return f"{v:.2f}" if not isinstance(v, str) else v


def test_real_export_values_load_as_the_canonical_value(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    rows = [dict(ORDER, order_id=name, **patch) for name, patch, _, _ in ACCEPTED]
    write_csv(d / "orders.csv", rows, header=[*ORDER, "status"])
    con = connect(tmp_path / "wh.duckdb")
    ensure_schema(con)
    (result,) = load_inputs(con, d, SETTINGS)
    assert (result.rows_loaded, result.rows_quarantined) == (len(ACCEPTED), 0)
    for name, _, column, expected in ACCEPTED:
        got = con.execute(f"SELECT {column} FROM staging.orders WHERE order_id = ?", [name]).fetchone()[0]
        assert _amount(got) == expected, name
    classes = dict(con.execute("SELECT channel, channel_class FROM staging.channels").fetchall())
    assert classes == {"taobao": "platform", "moments": "social", "douyin": "platform",
                       "wechat": "social", "alipay": "other", "视频号": "other"}


def test_event_type_group_status_and_share_channel_synonyms(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "orders.csv", [dict(ORDER, order_id="o1", group_id="g1", status="已付款")])
    write_csv(d / "share_events.csv", [
        dict(EVENT, event_id="e1", event_type="分享", channel="朋友圈"),
        dict(EVENT, event_id="e2", event_type="转发", share_id="s2", parent_share_id="s1"),
        dict(EVENT, event_id="e3", event_type="点击", share_id="s1", actor_id="c1")])
    base = {"initiator_id": "a1", "target_size": "3", "opened_at": "2026-01-01 08:00:00"}
    write_csv(d / "group_buys.csv", [dict(base, group_id="g1", status="成团"),
                                     dict(base, group_id="g2", status="未成团"),
                                     dict(base, group_id="g3", status="拼团中"),
                                     dict(base, group_id="g4", status="success")])
    con = connect(tmp_path / "wh.duckdb")
    ensure_schema(con)
    load_inputs(con, d, SETTINGS)
    assert con.execute("SELECT list(event_type ORDER BY event_id) FROM staging.share_events"
                       ).fetchone()[0] == ["share", "reshare", "click"]
    assert con.execute("SELECT channel FROM staging.share_events WHERE event_id = 'e1'"
                       ).fetchone()[0] == "moments"
    assert con.execute("SELECT list(status ORDER BY group_id) FROM staging.group_buys"
                       ).fetchone()[0] == ["filled", "failed", "open", "filled"]
    assert con.execute("SELECT count(*) FROM quarantine.rejected_rows").fetchone()[0] == 0


def test_config_and_mapping_file_extend_synonyms_and_classes(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "orders.csv", [dict(ORDER, order_id="o1", channel="视频号", status="交易完成"),
                                 dict(ORDER, order_id="o2", channel="抖音直播", status="paid")])
    (d / "mapping.toml").write_text(
        '[orders.values.status]\n"交易完成" = "paid"\n[channel_classes]\n"视频号" = "social"\n',
        encoding="utf-8")
    settings = SETTINGS.with_values({"value_synonyms": {"orders": {"channel": {"抖音直播": "douyin"}}},
                                     "channel_classes": {"douyin": "social"}})
    con = connect(tmp_path / "wh.duckdb")
    ensure_schema(con)
    load_inputs(con, d, settings)
    assert con.execute("SELECT list(status ORDER BY order_id), list(channel ORDER BY order_id) "
                       "FROM staging.orders").fetchone() == (["paid", "paid"], ["视频号", "douyin"])
    assert dict(con.execute("SELECT channel, channel_class FROM staging.channels").fetchall()) == {
        "视频号": "social", "douyin": "social"}


@pytest.mark.parametrize(("mapping", "message"), [
    ('[orders.values.status]\n"x" = "shipped"\n', "not one of paid, refunded, cancelled"),
    ('[orders.values.customer_id]\n"x" = "y"\n', "not an enumerated column"),
    ('[channel_classes]\n"x" = "public"\n', "classes are platform, social, other"),
    ('[orders]\n"单号" = "order_no"\n', "'order_no', which is not a column of orders"),
    ('[orders.values]\n"status" = "paid"\n', "must hold one table per column"),
], ids=["status_target", "not_enumerated", "bad_class", "bad_column", "values_shape"])
def test_bad_mapping_file_is_refused_naming_it(tmp_path: Path, mapping: str, message: str) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "orders.csv", [ORDER])
    (d / "mapping.toml").write_text(mapping, encoding="utf-8")
    con = connect(tmp_path / "wh.duckdb")
    with pytest.raises(IngestError, match="mapping.toml") as info:
        load_inputs(con, d, SETTINGS)
    assert message in str(info.value)
    assert any(message in e for e in validate_inputs(d, SETTINGS).errors)


def test_unknown_status_names_the_allowed_values_in_validate(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "orders.csv", [dict(ORDER, order_id="a"), dict(ORDER, order_id="b", status="待收货X")],
              header=[*ORDER, "status"])
    report = validate_inputs(d, SETTINGS)
    assert report.rule_counts == {"unknown_value": 1}
    text = report.render()
    assert "allowed orders.status: paid (已付款" in text and "refunded (已退款, 退款成功)" in text
    assert '[orders.values.status] "<value>" = "paid"' in text


def test_chinese_export_headers_map_and_unknown_headers_are_named(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    header = ["订单编号", "买家会员名", "订单创建时间", "付款时间", "宝贝ID", "商品类目", "购买数量",
              "买家实际支付金额", "订单来源", "店铺名称", "分销员", "订单状态", "商品名称", "备注"]
    row = ["T1", "小明", "2026-03-01 10:00:00", "2026-03-01 10:05:00", "p9", "美妆", "2",
           "￥1,099.00", "淘宝", "小店", "agent-7", "已退款", "面膜", "送礼"]
    (d / "orders.csv").write_text(",".join(header) + "\n" + ",".join(f'"{v}"' for v in row) + "\n",
                                  encoding="gbk")
    con = connect(tmp_path / "wh.duckdb")
    ensure_schema(con)
    (result,) = load_inputs(con, d, SETTINGS)
    staged = con.execute("""SELECT order_id, customer_id, ordered_at::VARCHAR, product_id, category,
        quantity, amount::VARCHAR, channel, merchant_id, referrer_id, status FROM staging.orders""").fetchone()
    assert staged == ("T1", "小明", "2026-03-01 10:00:00", "p9", "美妆", 2, "1099.00", "taobao", "小店",
                      "agent-7", "refunded")
    # 付款时间 is a lower-priority alias of ordered_at: reported, not loaded
    assert result.notes == "unmapped headers (not loaded): 付款时间, 商品名称, 备注"
    notes = con.execute("SELECT notes FROM quarantine.batches").fetchone()[0]
    assert notes == result.notes
    assert "付款时间, 商品名称, 备注" in validate_inputs(d, SETTINGS).render()


def test_lookalike_header_gets_a_suggestion(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_csv(d / "orders.csv", [dict(ORDER, 佣金金额X="1.00")])
    con = connect(tmp_path / "wh.duckdb")
    ensure_schema(con)
    (result,) = load_inputs(con, d, SETTINGS)
    assert result.notes == ("unmapped headers (not loaded): 佣金金额X; header '佣金金额X' looks "
                            "like column 'commission': map it in mapping.toml if it is")


def test_vocabulary_sql_is_quoted_and_classes_default_to_other() -> None:
    vocab = Vocabulary.build(ENUMERATED, {"orders": {"channel": {"o'brien": "x'y"}}})
    import duckdb

    con = duckdb.connect()
    got = con.execute(f"SELECT {vocab.canonical_sql('orders', 'channel', 'v')}, "
                      f"{vocab.channel_class_sql(vocab.canonical_sql('orders', 'channel', 'v'))} "
                      "FROM (VALUES ('o''brien'), ('jd'), ('zzz')) t(v)").fetchall()
    assert got == [("x'y", "other"), ("jd", "platform"), ("zzz", "other")]
    with pytest.raises(VocabularyError, match="not one of open, filled, failed"):
        Vocabulary.build(ENUMERATED, {"group_buys": {"status": {"ok": "done"}}})
