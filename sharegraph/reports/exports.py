"""Downloads of the report tables: one CSV per table and one Excel workbook per page and language.

Growth managers and merchants take numbers into their own sheets. Every page links to
``exports/zh/<page>.xlsx`` and ``exports/en/<page>.xlsx`` (one sheet per table, headers in
that language, ¥ number formats on money, frozen header row), and each table is also written
as ``exports/csv/<page>/<table>.csv`` with the warehouse's column names (UTF-8 with BOM, so
Excel opens Chinese text correctly). People are pseudonymised exactly as on the pages.
Workbooks are written by ``sharegraph.reports.xlsx``, which renders each sheet column-wise
in polars (about 13x faster than xlsxwriter cell by cell, so no second process is needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.sql import table_exists
from sharegraph.reports.data import query
from sharegraph.reports.pseudonym import pseudonymize
from sharegraph.reports.xlsx import Sheet, write_workbooks

#: rows per exported table at most: the downloads are the pages' tables in a sheet, not a dump
#: of the warehouse (writing 200k-row sheets made the reports stage minutes long at 1M
#: orders); whole marts come out exact with ``sharegraph sql --format parquet --out``
MAX_ROWS = 10_000
#: columns holding person ids, pseudonymised like the pages
PERSON_COLUMNS = ("person_id", "agent_id", "upline_id", "sharer_id", "buyer_id", "customer_id",
                  "referrer_id", "credited_id", "root_actor_id", "initiator_id", "top_person_id",
                  "circle_id")
MONEY_FORMAT = "¥#,##0.00"
RATIO_FORMAT = "0.0000"

#: zh header of common columns; others keep their warehouse name in both languages
ZH: dict[str, str] = {
    "person_id": "人员（化名）", "agent_id": "代理（化名）", "upline_id": "上级（化名）",
    "merchant_id": "商家", "category": "类目", "candidate_category": "候选类目",
    "is_agent": "是否代理", "direct_gmv": "直接 GMV（¥）", "direct_orders": "直接订单数",
    "direct_buyers": "直接买家数", "new_customers": "新客数", "downstream_gmv": "下游 GMV（¥）",
    "downstream_reach": "下游人数", "downstream_generations": "下游代数",
    "influence_gmv": "影响力 GMV（¥）", "pagerank": "PageRank", "pagerank_rank": "PageRank 排名",
    "commission_cost": "佣金成本（¥）", "red_packet_cost": "红包成本（¥）", "roi": "ROI",
    "network_roi": "网络 ROI", "circle_id": "圈子", "circle_rank": "圈内排名",
    "shares": "分享数", "clicks": "点击数", "orders": "订单数", "gmv": "GMV（¥）",
    "size": "规模", "depth": "深度", "max_breadth": "最大宽度",
    "structural_virality": "结构病毒性", "k_factor": "K 因子", "week": "周", "month": "月",
    "lift": "提升度", "confidence": "置信度", "support": "支持度", "q_value": "q 值",
    "p_value": "p 值", "common_customers": "共同客户数", "rank": "排名",
    "expected_gmv": "预期增量 GMV（¥）", "confidence_tier": "可信度", "table_name": "表",
    "rows": "行数", "reason_zh": "原因", "reason_en": "reason", "source_file": "文件",
    "rows_read": "读取行数", "rows_loaded": "载入行数", "rows_quarantined": "隔离行数",
    "rows_updated": "更新行数", "rows_already_loaded": "已载入行数", "gini": "基尼系数",
    "top_1pct_share": "前 1% 占比",
}


@dataclass(frozen=True)
class Export:
    """One table of a page: its sheet/file name and the query behind it."""

    name: str
    sql: str
    params: tuple[object, ...] = ()


def page_exports(con: duckdb.DuckDBPyConnection) -> dict[str, list[Export]]:
    """The tables behind each page (page file stem -> exports), for the marts that exist."""
    def available(*tables: str) -> bool:
        return all(table_exists(con, t) for t in tables)

    pages: dict[str, list[Export]] = {"index": [], "influence": [], "cascades": []}
    if available("marts.table_notes"):
        pages["index"].append(Export("table_notes", "SELECT * FROM marts.table_notes ORDER BY table_name"))
    pages["index"].append(Export("load_batches", "SELECT * EXCLUDE (file_sha256) FROM "
                                 "quarantine.batches ORDER BY started_at"))
    for name, order in (("agent_influence", "downstream_gmv DESC NULLS LAST, person_id"),
                        ("kfactor", "ALL"), ("concentration", "ALL")):
        if available(f"marts.{name}"):
            pages["influence"].append(Export(name, f"SELECT * FROM marts.{name} ORDER BY {order}"))
    for page, names in (("lifecycle", ("integrity_flags", "agent_funnel", "agent_cohorts",
                                        "upline_quality")), ("launch-plan", ("launch_plan",))):
        pages[page] = [Export(n, f"SELECT * FROM marts.{n} ORDER BY ALL")
                       for n in names if available(f"marts.{n}")]
    # trends.html: the headline rows (monthly and whole period; subject holds a person id, so
    # it stays out) and the monthly marts behind the group-buy and channel charts
    pages["trends"] = [e for e, t in (
        (Export("headline_metrics", "SELECT * EXCLUDE (subject) FROM marts.headline_metrics "
                "WHERE scope = 'all' ORDER BY metric, period"), "marts.headline_metrics"),
        (Export("group_buy_summary", "SELECT * FROM marts.group_buy_summary ORDER BY ALL"),
         "marts.group_buy_summary"),
        (Export("channel_migration", "SELECT * FROM marts.channel_migration ORDER BY ALL"),
         "marts.channel_migration")) if available(t)]
    if available("marts.cascades"):
        pages["cascades"].append(Export("cascades", "SELECT * FROM marts.cascades ORDER BY ALL"))
    if available("marts.expansion_recommendations", "marts.weak_categories"):
        from sharegraph.reports.expansion import report_file

        merchants = query(con, "SELECT DISTINCT merchant_id FROM marts.weak_categories "
                               "UNION SELECT DISTINCT merchant_id FROM marts.expansion_recommendations "
                               "ORDER BY 1")
        for (m,) in ([] if merchants is None else merchants.iter_rows()):
            pages[Path(report_file(m)).stem] = [
                Export("expansion", "SELECT * FROM marts.expansion_recommendations "
                       "WHERE merchant_id = ? ORDER BY ALL", (m,)),
                Export("weak_categories", "SELECT * FROM marts.weak_categories "
                       "WHERE merchant_id = ? ORDER BY ALL", (m,)),
            ]
    return pages


Table = tuple[Export, pl.DataFrame, dict[str, str]]
"""One export's rows and its column kinds (:func:`_frames`)."""


def _frames(con: duckdb.DuckDBPyConnection, exports: list[Export], key: str) -> Iterator[Table]:
    """Each export's rows (pseudonymised, capped) and its column kinds (money / ratio)."""
    for e in exports:
        rel = con.sql(f"SELECT * FROM ({e.sql}) LIMIT {MAX_ROWS}", params=list(e.params))
        nested = [c for c, t in zip(rel.columns, rel.types, strict=True)
                  if str(t).endswith("]") or str(t).startswith(("STRUCT", "MAP"))]
        if nested:  # lists and structs as JSON text: CSV and sheets hold flat values
            rel = rel.select(", ".join(
                f'to_json("{c}")::VARCHAR AS "{c}"' if c in nested else f'"{c}"'
                for c in rel.columns))
        kinds = {c: ("money" if str(t).startswith("DECIMAL") else
                     "ratio" if str(t) in ("DOUBLE", "FLOAT") else "")
                 for c, t in zip(rel.columns, rel.types, strict=True)}
        frame = rel.pl()
        yield e, pseudonymize(frame, [c for c in PERSON_COLUMNS if c in frame.columns], key), kinds


def _headers(columns: list[str], lang: str) -> list[str]:
    """A sheet's header row in ``lang``: zh names where known, kept unique after translation."""
    names = [ZH.get(c, c) if lang == "zh" else c for c in columns]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seen[n] = seen.get(n, 0) + 1
        names[i] = n if seen[n] == 1 else f"{n} ({columns[i]})"
    return names


def _workbooks(paths: dict[str, Path], tables: list[Table]) -> None:
    """The tables as one workbook per language (``paths``: language -> file)."""
    sheets = [Sheet(e.name[:31], frame, {c: MONEY_FORMAT if k == "money" else RATIO_FORMAT
                                         for c, k in kinds.items() if k})
              for e, frame, kinds in tables]
    write_workbooks(sheets, {path: [_headers(s.frame.columns, lang) for s in sheets]
                             for lang, path in paths.items()})


def write_exports(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path) -> list[Path]:
    """Write every page's tables under ``out_dir/exports``: ``csv/<page>/<table>.csv`` and
    ``{zh,en}/<page>.xlsx``; returns the files written. ``settings.pseudonym_key`` must be
    resolved (see pseudonym.resolve_key)."""
    root = Path(out_dir) / "exports"
    written: list[Path] = []
    for page, exports in page_exports(con).items():
        tables = list(_frames(con, exports, settings.pseudonym_key))
        for e, frame, _ in tables:
            path = root / "csv" / page / f"{e.name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\xef\xbb\xbf" + frame.write_csv().encode("utf-8"))
            written.append(path)
        if tables:
            books = {lang: root / lang / f"{page}.xlsx" for lang in ("zh", "en")}
            _workbooks(books, tables)
            written.extend(books.values())
    return written

