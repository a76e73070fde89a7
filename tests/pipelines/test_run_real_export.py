"""A merchant's real export, end to end through the command line: a GBK Taobao-style orders
file with Chinese headers and values, refunds in `订单状态`, a channel nobody configured, an
unmapped column and one ragged line. Nothing is lost, no status changes silently, and both
`validate` and `run` say what they did. Expected figures are computed here from the rows as
written, not with the pipeline's definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

HEADER = ["订单编号", "买家会员名", "订单创建时间", "宝贝ID", "商品类目", "购买数量", "实付款",
          "订单来源", "订单状态", "备注"]
STATUS = {"交易成功": "paid", "已退款": "refunded", "交易关闭": "cancelled"}
CHANNEL = {"淘宝": "taobao", "微信": "wechat", "视频号": "视频号"}


def _rows() -> list[list[str]]:
    rows = []
    statuses, channels = list(STATUS), list(CHANNEL)
    for i in range(120):
        amount = f"￥{(i % 7) * 1000 + 12.5:,.2f}"  # e.g. ￥1,012.50
        rows.append([f"T{i:04d}", f"买家{i % 40}", f"2026-0{1 + i % 6}-1{i % 9} 10:00:00",
                     f"p{i % 11}", ["服装", "面膜", "零食"][i % 3], str(1 + i % 2), amount,
                     channels[i % 3], statuses[0] if i % 5 else statuses[1 + (i // 5) % 2],
                     "无"])
    return rows


def _amount(text: str) -> Decimal:
    return Decimal(text.lstrip("￥").replace(",", ""))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHAREGRAPH_", "DAGSTER_HOME"))}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_gbk_taobao_export_with_refunds_and_a_ragged_line(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    rows = _rows()
    lines = [",".join(HEADER), *(",".join(f'"{v}"' for v in r) for r in rows)]
    lines.insert(50, '"T9999","买家1","2026-01-01 10:00:00","p1"')  # ragged: 4 of 10 fields
    (inbox / "orders.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))

    checked = _cli("validate", "--input", str(inbox), cwd=tmp_path)
    assert checked.returncode == 1  # one row would be quarantined
    assert "orders.field_count: 1" in checked.stdout
    assert "unmapped headers (not loaded): 备注" in checked.stdout

    wh = tmp_path / "out" / "wh.duckdb"
    ran = _cli("run", "--input", str(inbox), "--warehouse", str(wh), cwd=tmp_path)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out[-3000:]
    assert "orders.csv: unmapped headers (not loaded): 备注" in out
    other = sum(1 for r in rows if r[7] == "视频号")
    assert f"{other:,} order lines in channels of class other: 视频号" in out

    with duckdb.connect(str(wh), read_only=True) as con:
        got = dict(con.execute("SELECT status, count(*) FROM staging.orders GROUP BY 1").fetchall())
        want: dict[str, int] = {}
        for r in rows:
            want[STATUS[r[8]]] = want.get(STATUS[r[8]], 0) + 1
        assert got == want
        paid_gmv = sum(_amount(r[6]) for r in rows if STATUS[r[8]] == "paid")
        assert con.execute("SELECT sum(amount) FROM graph.attributed_orders WHERE is_paid"
                           ).fetchone()[0] == paid_gmv
        assert con.execute("SELECT rule, source_row FROM quarantine.rejected_rows").fetchall() == [
            ("field_count", 50)]  # lines[0] is the header
        read, loaded, quarantined = con.execute(
            "SELECT rows_read, rows_loaded, rows_quarantined FROM quarantine.batches").fetchone()
        assert (read, loaded, quarantined) == (len(rows) + 1, len(rows), 1)
        assert dict(con.execute("SELECT channel, channel_class FROM staging.channels").fetchall()) == {
            CHANNEL[c]: k for c, k in (("淘宝", "platform"), ("微信", "social"), ("视频号", "other"))}
