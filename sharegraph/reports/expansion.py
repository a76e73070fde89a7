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
from sharegraph.core.sql import table_exists
from sharegraph.reports import figures
from sharegraph.reports.data import query
from sharegraph.reports.notes import Notes, explain, load_notes
from sharegraph.reports.page import (
    Col,
    Text,
    figure_html,
    html_table,
    is_message,
    message,
    section,
    write_page,
)

PREFIX = "expansion-"
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")

RECOMMENDATIONS = (
    Col("rank", "排名", "Rank", "int"),
    Col("category", "候选类目", "Candidate category"),
    Col("tier_zh", "把握程度", "Confidence", en_name="tier_en"),
    Col("reason_zh", "理由", "Why", en_name="reason_en"),
    Col("expected_incremental_gmv_yuan", "预期增量 GMV", "Expected incremental GMV", "money"),
    Col("expected_buyers", "预期买家", "Expected buyers", "float"),
    Col("customers_needed", "确认所需共同客户", "Common customers needed", "int"),
    Col("n_customers_with_uplift", "有提升的客户", "Customers with uplift", "int"),
    Col("n_merchant_customers", "商家客户数", "Merchant customers", "int"),
    Col("avg_order_value_yuan", "客单价", "Avg order value", "money"),
)

TIER_NAMES = {
    "significant": ("显著", "Significant"),
    "suggestive": ("提示性（未校正显著）", "Suggestive (not significant after correction)"),
    "insufficient_data": ("数据不足", "Insufficient data"),
}
"""Reader-facing names of ``confidence_tier`` (marts.expansion_recommendations)."""

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
    Col("is_weak_zh", "弱类目", "Weak", en_name="is_weak_en"),
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
    if table_exists(con, "staging.products"):
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


def _tier_sql(lang: int) -> str:
    cases = " ".join(f"WHEN '{k}' THEN '{v[lang]}'" for k, v in TIER_NAMES.items())
    return f"CASE confidence_tier {cases} END"


def recommendations(con: duckdb.DuckDBPyConnection, merchant_id: str) -> pl.DataFrame | None:
    """The merchant's candidates, best first, with the tier and reason in both languages."""
    return query(
        con,
        f"""SELECT rank, category, confidence_tier, {_tier_sql(0)} AS tier_zh,
                  {_tier_sql(1)} AS tier_en, reason_zh, reason_en, expected_incremental_gmv_yuan,
                  expected_buyers, customers_needed, n_customers_with_uplift,
                  n_merchant_customers, avg_order_value_yuan
           FROM marts.expansion_recommendations WHERE merchant_id = ? ORDER BY rank""",
        [merchant_id],
    )


def nothing_significant(settings: Settings) -> str:
    """Why a merchant's list has no significant candidate, in words (both languages)."""
    n, alpha = settings.min_pair_customers, settings.fdr_alpha
    return message(
        f"本店还没有能确认的拓品建议：在全体客户中，本店所卖类目与这些候选类目之间的关联都没有达到显著"
        f"（至少 {n:,} 位共同客户，并且在比较了所有类目对之后 q ≤ {alpha:g}）。"
        "下表按观察到的关联列出候选，并写明确认每一条所需的共同客户数。",
        f"No recommendation for this shop can be confirmed yet: across all customers, no link between "
        f"the categories it sells and these candidates is significant (at least {n:,} common customers "
        f"and q ≤ {alpha:g} after comparing every category pair). The table lists the candidates by "
        "the observed link, with the common customers each would need to be confirmed.",
        kind="reason")


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
                  CASE WHEN is_weak THEN '是' ELSE '否' END AS is_weak_zh,
                  CASE WHEN is_weak THEN 'yes' ELSE 'no' END AS is_weak_en
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
    significant = None if recs is None else recs.filter(pl.col("confidence_tier") == "significant")
    if recs is not None and recs.height and not significant.height:
        bar = nothing_significant(settings)  # a list, but nothing confirmed: say why
    else:
        bar = explain(figures.ranked_money_bar(
            significant, "category", "expected_incremental_gmv_yuan",
            ("建议新增类目：预期增量 GMV（显著）", "Categories to add: expected incremental GMV (significant)"),
            ("预期增量 GMV（¥）", "Expected incremental GMV (¥)")), notes, recs_table)
    table = html_table(recs, RECOMMENDATIONS, row_cap=cap, table_id="recommendations")
    # an empty table is already said by the chart's message: say it once
    recs_html = figure_html(bar, "fig-recommendations", what=Text(
        "柱越长，按本店客户的购买习惯估计，新增该类目能带来的 GMV 越多；只计显著的类目对。",
        "The longer the bar, the more GMV adding that category is expected to bring, from your own "
        "customers' buying habits; significant pairs only.")) + ("" if is_message(table) else table)
    body = "".join([
        section(Text("拓品建议", "Expansion recommendations"),
                recs_html,
                Text("本商家未销售的类目（最多 10 个），按本商家客户的类目亲和度估算的预期增量 GMV 排序："
                     "先是显著的，再是提示性的和数据不足的（写明确认所需的共同客户数）。",
                     "Up to 10 categories this merchant does not sell, ranked by expected incremental GMV "
                     "from its own customers' affinity: significant ones first, then suggestive ones and "
                     "those with too little data (with the common customers needed to confirm them)."),
                "recommendations"),
        section(Text("证据", "Evidence"),
                explain(html_table(ev, EVIDENCE, row_cap=cap, table_id="evidence"), notes, recs_table),
                Text("支持每条建议的类目对：提升度、支持度、置信度、同时购买人数、p 值与 BH 校正 q 值（全体客户）。",
                     "Pairs behind each recommendation: lift, support, confidence, customers with both, "
                     "p-value and Benjamini-Hochberg q-value (all customers)."), "evidence"),
        section(Text("类目亲和度", "Category affinity"),
                figure_html(explain(affinity_heatmap(con, merchant_id), notes, aff_table), "fig-affinity",
                            height=560, what=Text(
                                "红色 > 1：买 A 的客户更常也买 B（适合搭配推荐）；蓝色 < 1：更少；灰色：没有客户同时买过。",
                                "Red > 1: A buyers buy B more often than average (good to recommend "
                                "together); blue < 1: less often; grey: nobody bought both.")), sid="affinity"),
        section(Text("分享外溢", "Spill-over from shares"),
                figure_html(explain(spillover(con, merchant_id), notes, "marts.spillover_affinity"),
                            "fig-spillover", height=560, what=Text(
                                "红色：A 类分享带动了 B 类的购买，可以用 A 去引流；< 1 不代表分享有害，只是点击 A 的人"
                                "多半买了 A 本身。",
                                "Red: shares of A lead clickers to buy B, so use A to draw traffic; < 1 does "
                                "not mean sharing hurts: A's clickers mostly buy A itself.")),
                Text(f"提升度 = 点击 A 类分享的人在 {settings.spillover_window_days} 天内买 B 的比例 ÷ 所有点击者买 B 的比例。低于 1 并不表示分享有害，"
                     "只说明这些点击者转买 B 的比一般点击者少，他们往往买的是分享的类目本身。",
                     f"Lift = share of clickers of an A share who bought B within {settings.spillover_window_days} days ÷ the same share among "
                     "all clickers. Below 1 does not mean sharing hurts: those clickers turned to B less often "
                     "than the average clicker, usually because they bought the shared category itself."),
                "spillover"),
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
