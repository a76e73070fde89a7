"""Merchant expansion reports (expansion-<merchant>.html), one per merchant.

Reads marts.category_affinity (co-purchase lift in the merchant's own customers),
marts.expansion_recommendations (categories it does not sell, ranked by expected incremental
GMV, with their evidence pairs), marts.spillover_affinity (what clicks on shares of its
categories lead people to buy) and marts.weak_categories.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.reports import figures
from sharegraph.reports.data import has_table, query
from sharegraph.reports.notes import Notes, explain, load_notes
from sharegraph.reports.page import (
    Col,
    Text,
    figure_html,
    html_table,
    is_message,
    section,
    write_page,
)

PREFIX = "expansion-"
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")

RECOMMENDATIONS = (
    Col("rank", "排名", "Rank", "int"),
    Col("category", "建议新增类目", "Category to add"),
    Col("expected_incremental_gmv_yuan", "预期增量 GMV", "Expected incremental GMV", "money"),
    Col("expected_buyers", "预期买家", "Expected buyers", "float"),
    Col("n_customers_with_uplift", "有提升的客户", "Customers with uplift", "int"),
    Col("n_merchant_customers", "商家客户数", "Merchant customers", "int"),
    Col("avg_order_value_yuan", "客单价", "Avg order value", "money"),
    Col("evidence", "证据", "Evidence"),
)

EVIDENCE = (
    Col("rank", "建议排名", "Rank", "int"),
    Col("category_a", "已售类目 A", "Sold category A"),
    Col("category_b", "建议类目 B", "Suggested category B"),
    Col("lift", "提升度", "Lift", "float"),
    Col("support", "支持度", "Support", "pct"),
    Col("confidence", "置信度", "Confidence", "pct"),
    Col("n_ab", "同时购买人数", "Customers with both", "int"),
    Col("p_value", "p 值", "p-value", "pvalue"),
    Col("q_value", "q 值（BH）", "q-value (BH)", "pvalue"),
    Col("expected_buyers", "贡献预期买家", "Expected buyers via A", "float"),
)

WEAK = (
    Col("weakness_rank", "排名", "Rank", "int"),
    Col("category", "类目", "Category"),
    Col("n_customers", "客户数", "Customers", "int"),
    Col("share_of_customers", "客户占比", "Share of customers", "pct"),
    Col("mean_lift_to_line", "与其他类目平均提升度", "Mean lift to the line", "float"),
    Col("is_weak", "弱类目", "Weak"),
)


def report_file(merchant_id: str) -> str:
    """File name of a merchant's report: the id with unsafe characters replaced, plus a short
    hash of the raw id when anything was replaced (so two ids never share a file)."""
    raw = str(merchant_id)
    safe = _SAFE.sub("_", raw)[:60].strip("_") or "merchant"
    if safe != raw:
        safe += "-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return f"{PREFIX}{safe}.html"


def merchants(con: duckdb.DuckDBPyConnection, limit: int) -> pl.DataFrame:
    """Merchants with paid GMV, largest first: merchant_id, name (products.merchant_name when
    given), gmv (¥), file. At most ``limit`` rows (Settings.report_row_cap)."""
    name_sql = "NULL::VARCHAR"
    if has_table(con, "staging.products"):
        name_sql = ("(SELECT max(p.merchant_name) FROM staging.products p "
                    "WHERE coalesce(p.merchant_id, 'default') = g.merchant_id)")
    frame = query(
        con,
        f"""WITH g AS (SELECT merchant_id, sum(amount)::DOUBLE AS gmv FROM graph.attributed_orders
                      WHERE is_paid AND merchant_id IS NOT NULL GROUP BY 1)
            SELECT merchant_id, {name_sql} AS name, gmv FROM g
            ORDER BY gmv DESC, merchant_id LIMIT {int(limit)}""",
    )
    if frame is None:
        return pl.DataFrame(schema={"merchant_id": pl.String, "name": pl.String, "gmv": pl.Float64,
                                    "file": pl.String})
    return frame.with_columns(
        pl.col("merchant_id").map_elements(report_file, return_dtype=pl.String).alias("file"))


def merchant_count(con: duckdb.DuckDBPyConnection) -> int:
    value = query(con, "SELECT count(DISTINCT merchant_id) FROM graph.attributed_orders WHERE is_paid")
    return 0 if value is None else int(value.item())


def affinity_heatmap(con: duckdb.DuckDBPyConnection, merchant_id: str) -> figures.Block:
    frame = query(
        con,
        """SELECT category_a AS a, category_b AS b, lift, n_ab AS customers
           FROM marts.category_affinity
           WHERE scope = ? AND basis = 'customer' AND category_a <> category_b""",
        [merchant_id],
    )
    return figures.pair_heatmap(
        frame, "lift",
        ("本商家客户的类目亲和度（提升度，1 = 独立）", "Category affinity among this merchant's customers (lift, 1 = independent)"),
        (("买了 A", "Bought A"), ("也买了 B", "Also bought B")),
    )


def recommendations(con: duckdb.DuckDBPyConnection, merchant_id: str) -> pl.DataFrame | None:
    return query(
        con,
        """SELECT rank, category, expected_incremental_gmv_yuan, expected_buyers,
                  n_customers_with_uplift, n_merchant_customers, avg_order_value_yuan, evidence
           FROM marts.expansion_recommendations WHERE merchant_id = ? ORDER BY rank""",
        [merchant_id],
    )


def evidence(con: duckdb.DuckDBPyConnection, merchant_id: str, limit: int) -> pl.DataFrame | None:
    """One row per recommendation per supporting pair A -> B, with the pair's support and
    p-value from marts.category_affinity (overall scope, customer basis)."""
    return query(
        con,
        f"""WITH e AS (
                SELECT r.rank, r.category AS category_b,
                       unnest(r.evidence_categories) AS category_a,
                       unnest(r.evidence_lift) AS lift,
                       unnest(r.evidence_confidence) AS confidence,
                       unnest(r.evidence_n_ab) AS n_ab,
                       unnest(r.evidence_q_value) AS q_value,
                       unnest(r.evidence_expected_buyers) AS expected_buyers
                FROM marts.expansion_recommendations r WHERE r.merchant_id = ?)
            SELECT e.rank, e.category_a, e.category_b, e.lift, a.support, e.confidence, e.n_ab,
                   a.p_value, e.q_value, e.expected_buyers
            FROM e LEFT JOIN marts.category_affinity a
              ON a.scope = 'all' AND a.basis = 'customer'
             AND a.category_a = e.category_a AND a.category_b = e.category_b
            ORDER BY e.rank, e.expected_buyers DESC, e.category_a LIMIT {int(limit)}""",
        [merchant_id],
    )


def spillover(con: duckdb.DuckDBPyConnection, merchant_id: str) -> figures.Block:
    """Spill-over from shares of the categories this merchant sells: clickers of a share in A
    who bought B within the window, lift over the base rate."""
    frame = query(
        con,
        """SELECT s.shared_category AS a, s.bought_category AS b, s.lift, s.n_a_then_b AS customers
           FROM marts.spillover_affinity s
           WHERE NOT s.same_category AND s.shared_category IN (
                 SELECT DISTINCT category FROM graph.attributed_orders
                 WHERE is_paid AND merchant_id = ? AND category IS NOT NULL)""",
        [merchant_id],
    )
    return figures.pair_heatmap(
        frame, "lift",
        ("分享外溢：点击本商家类目的分享后购买的其他类目（提升度）",
         "Spill-over: what clickers of shares in this merchant's categories bought next (lift)"),
        (("分享的类目 A", "Shared category A"), ("之后购买 B", "Then bought B")),
    )


def weak_categories(con: duckdb.DuckDBPyConnection, merchant_id: str, cap: int) -> str:
    frame = query(
        con,
        """SELECT weakness_rank, category, n_customers, share_of_customers, mean_lift_to_line,
                  CASE WHEN is_weak THEN '是 / yes' ELSE '否 / no' END AS is_weak
           FROM marts.weak_categories WHERE merchant_id = ? ORDER BY weakness_rank""",
        [merchant_id],
    )
    return html_table(frame, WEAK, row_cap=cap, table_id="weak")


def render_merchant(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                    merchant_id: str, name: str | None = None, generated_at: str = "",
                    notes: Notes | None = None) -> Path:
    """Write one merchant's expansion report; returns its path. A section whose source mart is
    empty for a recorded reason (``notes``, marts.table_notes) shows that reason in words."""
    cap = settings.report_row_cap
    notes = load_notes(con) if notes is None else notes
    recs_table, aff_table = "marts.expansion_recommendations", "marts.category_affinity"
    shown = f"{name} ({merchant_id})" if name else merchant_id
    title = Text(f"商家拓品报告：{shown}", f"Merchant expansion report: {shown}")
    recs = recommendations(con, merchant_id)
    ev = evidence(con, merchant_id, cap)
    bar = explain(figures.ranked_money_bar(
        recs, "category", "expected_incremental_gmv_yuan",
        ("建议新增类目：预期增量 GMV", "Categories to add: expected incremental GMV"),
        ("预期增量 GMV（¥）", "Expected incremental GMV (¥)")), notes, recs_table)
    # an empty bar chart means an empty table: say it once
    recs_html = figure_html(bar, "fig-recommendations") + (
        "" if is_message(bar) else html_table(recs, RECOMMENDATIONS, row_cap=cap, table_id="recommendations"))
    body = "".join([
        section(Text("拓品建议", "Expansion recommendations"),
                recs_html,
                Text("本商家未销售的类目，按本商家客户的类目亲和度（显著的 A → B 提升）估算预期增量 GMV 排序。",
                     "Categories this merchant does not sell, ranked by expected incremental GMV from its own "
                     "customers' affinity (significant A -> B uplift)."), "recommendations"),
        section(Text("证据", "Evidence"),
                explain(html_table(ev, EVIDENCE, row_cap=cap, table_id="evidence"), notes, recs_table),
                Text("支持每条建议的类目对：提升度、支持度、置信度、同时购买人数、p 值与 BH 校正 q 值（全体客户）。",
                     "Pairs behind each recommendation: lift, support, confidence, customers with both, "
                     "p-value and Benjamini-Hochberg q-value (all customers)."), "evidence"),
        section(Text("类目亲和度", "Category affinity"),
                figure_html(explain(affinity_heatmap(con, merchant_id), notes, aff_table), "fig-affinity",
                            height=560), sid="affinity"),
        section(Text("分享外溢", "Spill-over from shares"),
                figure_html(explain(spillover(con, merchant_id), notes, "marts.spillover_affinity"),
                            "fig-spillover", height=560), sid="spillover"),
        section(Text("类目契合度", "Category fit"),
                explain(weak_categories(con, merchant_id, cap), notes, "marts.weak_categories", aff_table),
                Text("弱类目：与本商家其他类目的平均提升度 < 1 且客户覆盖低于平均。",
                     "Weak: mean lift to the rest of the line < 1 and fewer customers than an average category."),
                "weak"),
    ])
    return write_page(out_dir / report_file(merchant_id), title, body, generated_at=generated_at, downloads=True)


def render_expansion(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                     generated_at: str = "") -> list[Path]:
    """Write one report per merchant (largest GMV first, at most Settings.report_row_cap) and
    remove expansion reports of merchants no longer present; returns the paths written."""
    table = merchants(con, settings.report_row_cap)
    notes = load_notes(con)
    written = [
        render_merchant(con, settings, out_dir, m["merchant_id"], m["name"], generated_at, notes)
        for m in table.iter_rows(named=True)
    ]
    keep = {p.name for p in written}
    for stale in out_dir.glob(f"{PREFIX}*.html"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return written
