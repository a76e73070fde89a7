"""The report index (index.html): what was run, the headline numbers, links to every report
with its file size. Written last, after the other reports exist."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.reports import cascades, expansion, influence
from sharegraph.reports.data import count_rows, query
from sharegraph.reports.headlines import cards, headline_rows
from sharegraph.reports.notes import load_notes, quarantine_banner, unavailable
from sharegraph.reports.page import (
    PLOTLY_JS,
    Col,
    Text,
    esc,
    file_size,
    html_table,
    number,
    section,
    t,
    write_page,
)

FILE = "index.html"
TITLE = Text("sharegraph 报告总览", "sharegraph reports")
STAGING = ("orders", "share_events", "products", "agents", "group_buys")


def run_facts(con: duckdb.DuckDBPyConnection, generated_at: str) -> str:
    """Data period, staging row counts, quarantine, run time, as a two-column table."""
    period = query(con, "SELECT min(ordered_at) AS lo, max(ordered_at) AS hi FROM staging.orders")
    lo, hi = period.row(0) if period is not None and period.height else (None, None)
    rows: list[tuple[str, str, str]] = [
        ("数据区间（下单时间）", "Data period (ordered_at)",
         f"{lo:%Y-%m-%d} – {hi:%Y-%m-%d}" if lo is not None and hi is not None else "–"),
    ]
    for name in STAGING:
        n = count_rows(con, f"staging.{name}")
        rows.append((f"staging.{name} 行数", f"staging.{name} rows", number(n)))
    rows.append(("隔离行数（quarantine.rejected_rows）", "Quarantined rows (quarantine.rejected_rows)",
                 number(count_rows(con, "quarantine.rejected_rows"))))
    rows.append(("加载批次（quarantine.batches）", "Load batches (quarantine.batches)",
                 number(count_rows(con, "quarantine.batches"))))
    rows.append(("报告生成时间", "Reports generated at", generated_at or "–"))
    body = "".join(f"<tr><th>{t(zh, en)}</th><td>{esc(v)}</td></tr>" for zh, en, v in rows)
    return f'<div class="table-wrap"><table id="run-facts"><tbody>{body}</tbody></table></div>'


def links(out_dir: Path, merchant_rows: pl.DataFrame, merchants_total: int, cap: int) -> str:
    """Links to every report with its size (the index's own size is not known while writing)."""
    fixed = [
        (influence.FILE, "代理影响力看板", "Agent influence dashboard"),
        (cascades.FILE, "传播链浏览", "Cascade explorer"),
        ("lifecycle.html", "代理生命周期与推荐合规", "Agent lifecycle and referral integrity"),
        ("launch-plan.html", "新品投放种子计划", "Launch seed plan"),
        ("trends.html", "增长趋势", "Growth trends"),
        ("glossary.html", "指标释义", "Glossary"),
    ]
    items = []
    for file, zh, en in fixed:
        p = out_dir / file
        size = file_size(p.stat().st_size) if p.is_file() else "–"
        items.append(f'<li><a href="{esc(file)}">{t(zh, en)}</a> <span class="size">({esc(size)})</span></li>')
    js = out_dir / PLOTLY_JS
    if js.is_file():
        items.append(f"<li>{esc(PLOTLY_JS)} {t('（本地 Plotly，所有页面共用）', '(local Plotly, shared by all pages)')} "
                     f'<span class="size">({esc(file_size(js.stat().st_size))})</span></li>')
    existing = merchant_rows.filter(
        pl.col("file").map_elements(lambda f: (out_dir / f).is_file(), return_dtype=pl.Boolean))
    sized = existing.with_columns(
        pl.col("file").map_elements(lambda f: file_size((out_dir / f).stat().st_size), return_dtype=pl.String)
        .alias("size"),
        pl.coalesce(pl.col("name"), pl.col("merchant_id")).alias("merchant"),
    )
    table = html_table(sized, (
        Col("merchant", "商家", "Merchant", href="file"), Col("merchant_id", "商家编号", "Merchant id"),
        Col("gmv", "已付 GMV", "Paid GMV", "money"), Col("size", "文件大小", "File size"),
    ), row_cap=cap, table_id="merchant-reports", total_rows=merchants_total)
    merchants_block = (
        f'<h3>{t("商家拓品报告", "Merchant expansion reports")}</h3>{table}' if sized.height else ""
    )
    return f'<ul class="report-links">{"".join(items)}</ul>{merchants_block}'


def render_index(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path, generated_at: str = "") -> Path:
    """Write index.html (after the other reports, whose sizes it lists); returns its path.

    It opens with the quarantine banner when input rows were rejected, and lists the
    analyses without data and why (marts.table_notes). Its downloads are written by
    ``site.render_pages`` (the workbooks in other processes, while the pages render)."""
    merchant_rows = expansion.merchants(con, settings.report_row_cap)
    body = "".join([
        quarantine_banner(con),
        section(Text("核心指标", "Headline figures"), cards(headline_rows(con), settings), sid="headline"),
        section(Text("缺少数据的分析", "Unavailable or limited analyses"), unavailable(load_notes(con)),
                Text("哪些表为空（或因缺少输入而不完整）以及原因（marts.table_notes）。",
                     "Which tables are empty (or thinner for a missing input) and why (marts.table_notes)."),
                "coverage"),
        section(Text("报告", "Reports"),
                links(out_dir, merchant_rows, expansion.merchant_count(con), settings.report_row_cap),
                Text("所有报告均可离线打开（Plotly 为本地文件，无网络请求）。",
                     "Every report opens offline (Plotly is a local file; no network requests)."), "reports"),
        section(Text("本次运行", "This run"), run_facts(con, generated_at), sid="run"),
    ])
    return write_page(out_dir / FILE, TITLE, body, generated_at=generated_at, downloads=True)
