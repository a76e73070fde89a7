"""Influence dashboard (influence.html): who drives sales, directly and through the downline.

Reads marts.agent_influence, marts.concentration, marts.cascades, marts.kfactor,
marts.channel_migration, marts.group_buys, graph.attributed_orders and graph.agent_upline.
People appear only as pseudonyms (:mod:`sharegraph.reports.pseudonym`).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.reports import figures
from sharegraph.reports.data import query, select_list
from sharegraph.reports.notes import caveat, explain, load_notes
from sharegraph.reports.page import (
    Col,
    Text,
    figure_html,
    html_table,
    no_data,
    section,
    write_page,
)
from sharegraph.reports.pseudonym import pseudonymize

FILE = "influence.html"
TITLE = Text("代理影响力看板", "Agent influence dashboard")
SCATTER_CAP = 1000
"""Most agents drawn in the direct-vs-downstream scatter (largest total GMV first)."""
TREE_ROOTS = 5
TREE_NODE_CAP = 400
"""Top agents (upline roots) and most agents drawn in the downline treemap."""

# Column candidates in marts.agent_influence: the first that exists is used.
INFLUENCE_COLUMNS: dict[str, list[str]] = {
    "agent": ["agent_id", "person_id", "credited_id"],
    "direct_gmv": ["direct_gmv_yuan", "direct_gmv"],
    "downstream_gmv": ["downstream_gmv_yuan", "downstream_gmv"],
    "direct_orders": ["direct_orders"],
    "influence_gmv": ["influence_gmv"],
    "new_customers": ["new_customers", "new_customers_acquired"],
    "pagerank": ["pagerank", "page_rank"],
    "conversion": ["conversion", "order_conversion", "share_to_order_conversion", "conversion_rate"],
    "roi": ["roi"],
    "circle": ["circle_id", "circle", "community_id"],
    "cost": ["cost_yuan"],
    "circle_rank": ["rank_in_circle", "circle_rank", "community_rank"],
}

LEADERBOARD = (
    Col("rank", "排名", "Rank", "int"),
    Col("agent", "代理（化名）", "Agent (pseudonym)"),
    Col("direct_gmv", "直接 GMV", "Direct GMV", "money"),
    Col("downstream_gmv", "下游 GMV", "Downstream GMV", "money"),
    Col("direct_orders", "直接订单", "Direct orders", "int"),
    Col("new_customers", "新客", "New customers", "int"),
    Col("pagerank", "PageRank（‰）", "PageRank (‰)", "float"),
    Col("conversion", "转化率", "Conversion", "pct"),
    Col("cost", "佣金+红包", "Commission + red packets", "money"),
    Col("roi", "ROI（¥/¥）", "ROI (¥ per ¥)", "float"),
    Col("circle", "圈子", "Circle"),
    Col("circle_rank", "圈内排名", "Rank in circle", "int"),
)


def influence_frame(con: duckdb.DuckDBPyConnection, limit: int) -> tuple[pl.DataFrame | None, int]:
    """Top agents by direct + downstream GMV (¥), with the total number of agents."""
    cols = select_list(con, "marts.agent_influence", INFLUENCE_COLUMNS)
    if cols is None:
        return None, 0
    frame = query(
        con,
        f"""SELECT * FROM (SELECT {cols} FROM marts.agent_influence)
            ORDER BY coalesce(influence_gmv, coalesce(direct_gmv, 0) + coalesce(downstream_gmv, 0)) DESC,
                     agent
            LIMIT {int(limit)}""",
    )
    total = query(con, "SELECT count(*) AS n FROM marts.agent_influence")
    return frame, int(total.item()) if total is not None else 0


def leaderboard(con: duckdb.DuckDBPyConnection, settings: Settings) -> str:
    frame, total = influence_frame(con, settings.report_row_cap)
    if frame is None or frame.height == 0:
        return no_data()
    # circle_id is named after a member's id: pseudonymise it like a person.
    frame = pseudonymize(frame, ["agent", "circle"], settings.pseudonym_key).with_columns(
        pl.int_range(1, pl.len() + 1).alias("rank"),
        pl.col("pagerank") * 1000,  # shares of a unit total are tiny: show per mille
    )
    return html_table(frame, LEADERBOARD, row_cap=settings.report_row_cap, table_id="leaderboard",
                      total_rows=total)


def scatter(con: duckdb.DuckDBPyConnection, settings: Settings) -> figures.Block:
    frame, _ = influence_frame(con, SCATTER_CAP)
    if frame is None:
        return no_data()
    return figures.direct_downstream_scatter(pseudonymize(frame, ["agent"], settings.pseudonym_key))


def concentration_label(con: duckdb.DuckDBPyConnection) -> tuple[float | None, tuple[str, str] | None]:
    """(Gini, (label_zh, label_en)) of the overall row of marts.concentration."""
    cols = select_list(con, "marts.concentration", {
        "scope": ["scope"], "gini": ["gini"], "label": ["label"], "label_zh": ["label_zh"]})
    if cols is None:
        return None, None
    row = query(con, f"SELECT * FROM (SELECT {cols} FROM marts.concentration) WHERE scope = 'overall' LIMIT 1")
    if row is None or row.height == 0:
        return None, None
    r = row.row(0, named=True)
    label = None
    if r["label"] is not None:
        en = str(r["label"])
        label = (str(r["label_zh"]) if r["label_zh"] is not None else en, en)
    return (float(r["gini"]) if r["gini"] is not None else None), label


def lorenz(con: duckdb.DuckDBPyConnection) -> figures.Block:
    """Attributed GMV per credited person (¥), all of them: the Lorenz curve needs the whole
    distribution, not the capped leaderboard (numpy sorts a few million floats in < 1 s)."""
    frame = query(
        con,
        """SELECT sum(amount)::DOUBLE AS gmv FROM graph.attributed_orders
           WHERE is_paid AND credited_id IS NOT NULL GROUP BY credited_id""",
    )
    g, label = concentration_label(con)
    return figures.lorenz_curve(frame, g, label)


def cascade_distribution(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = query(
        con,
        """SELECT 'size' AS kind, size::BIGINT AS value, count(*)::BIGINT AS n
           FROM marts.cascades GROUP BY size
           UNION ALL
           SELECT 'depth', depth::BIGINT, count(*) FROM marts.cascades GROUP BY depth""",
    )
    return figures.cascade_distributions(frame)


def kfactor(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = query(
        con,
        """SELECT strftime(cohort_week, '%Y-%m-%d') AS cohort, k_factor, cohort_size
           FROM marts.kfactor WHERE scope = 'week' ORDER BY cohort_week""",
    )
    return figures.kfactor_by_cohort(frame)


def channel_migration(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = query(
        con,
        """SELECT strftime(month, '%Y-%m') AS period, g.grp AS "group", g.gmv::DOUBLE AS gmv
           FROM marts.channel_migration,
                LATERAL (VALUES ('platform', platform_gmv), ('social', social_gmv)) g(grp, gmv)
           ORDER BY month, g.grp""",
    )
    return figures.channel_migration(frame)


def group_buys(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = query(
        con,
        """SELECT fill_rate::DOUBLE AS fill_rate, time_to_fill_hours::DOUBLE AS hours_to_fill
           FROM marts.group_buys""",
    )
    return figures.group_buy_fill(frame)


def downline_tree(con: duckdb.DuckDBPyConnection, settings: Settings) -> figures.Block:
    """Treemap of the ``TREE_ROOTS`` upline trees with the most direct GMV, at most
    ``TREE_NODE_CAP`` agents taken shallowest first (so every drawn agent's upline is drawn).
    Node ids are row numbers and labels pseudonyms: no raw agent id reaches the page."""
    frame = query(
        con,
        f"""
        WITH gmv AS (
            SELECT credited_id AS agent_id, sum(amount)::DOUBLE AS gmv
            FROM graph.attributed_orders WHERE is_paid AND credited_id IS NOT NULL GROUP BY 1
        ), u AS (
            SELECT u.agent_id, u.upline_id, u.root_agent_id, u.depth, coalesce(g.gmv, 0) AS gmv
            FROM graph.agent_upline u LEFT JOIN gmv g USING (agent_id)
        ), roots AS (
            SELECT root_agent_id FROM u GROUP BY 1 ORDER BY sum(gmv) DESC, 1 LIMIT {TREE_ROOTS}
        ), picked AS (
            SELECT u.*, row_number() OVER (ORDER BY depth, gmv DESC, agent_id) AS node
            FROM u JOIN roots USING (root_agent_id)
            QUALIFY node <= {TREE_NODE_CAP}
        )
        SELECT c.node::VARCHAR AS node, p.node::VARCHAR AS parent, c.agent_id AS label, c.gmv AS value
        FROM picked c LEFT JOIN picked p ON p.agent_id = c.upline_id
        ORDER BY c.node
        """,
    )
    if frame is None:
        return no_data()
    return figures.downline_treemap(pseudonymize(frame, ["label"], settings.pseudonym_key))


def render_influence(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path, generated_at: str = "") -> Path:
    """Write influence.html; returns its path. A chart whose source table is empty for a
    recorded reason (marts.table_notes) shows that reason in words."""
    cap = settings.report_row_cap
    notes = load_notes(con)

    def fig(block: figures.Block, div_id: str, *tables: str, height: int = 420) -> str:
        return figure_html(explain(block, notes, *tables), div_id, height=height)

    body = "".join([
        section(Text("代理排行榜", "Agent leaderboard"),
                caveat(notes, "marts.agent_influence")
                + explain(leaderboard(con, settings), notes, "marts.agent_influence"),
                Text(f"按直接 + 下游 GMV 排序，点击表头可排序；最多显示 {cap:,} 行。代理以化名显示。",
                     f"Ordered by direct + downstream GMV; click a header to sort; at most {cap:,} rows. "
                     "Agents are shown as pseudonyms."), "leaderboard"),
        '<div class="grid2">',
        section(Text("直接 vs 下游", "Direct vs downstream"),
                fig(scatter(con, settings), "fig-scatter", "marts.agent_influence"),
                Text(f"GMV 最高的 {SCATTER_CAP:,} 人。", f"The {SCATTER_CAP:,} people with the most GMV."),
                "scatter"),
        section(Text("集中度", "Concentration"),
                fig(lorenz(con), "fig-lorenz", "graph.attributed_orders", "graph.referral_edges",
                    "marts.concentration"),
                Text("基尼系数高、头部 1% 占比高 = KOL 驱动；否则为素人（同伴）驱动。",
                     "High Gini or top-1% share = KOL-driven; otherwise peer-driven."), "lorenz"),
        "</div>",
        section(Text("传播链分布", "Cascade distributions"),
                fig(cascade_distribution(con), "fig-cascade-dist", "marts.cascades"), sid="cascade-dist"),
        '<div class="grid2">',
        section(Text("病毒系数", "Viral coefficient"),
                caveat(notes, "marts.kfactor") + fig(kfactor(con), "fig-kfactor", "marts.kfactor"),
                Text("K = 批次成员带来的新客数 / 批次人数；K > 1 可自我增长。",
                     "K = new customers brought by cohort members / cohort size; K > 1 grows by itself."),
                "kfactor"),
        section(Text("渠道迁移", "Channel migration"),
                fig(channel_migration(con), "fig-channels", "marts.channel_migration"),
                Text("复购订单的 GMV 在平台渠道与社交渠道间的占比。",
                     "Repeat orders' GMV split between platform and social channels."), "channels"),
        "</div>",
        section(Text("拼团", "Group buys"), fig(group_buys(con), "fig-group-buys", "marts.group_buys"),
                sid="group-buys"),
        section(Text("下线树", "Downline tree"),
                fig(downline_tree(con, settings), "fig-downline", "graph.agent_upline", height=560),
                Text(f"GMV 最高的 {TREE_ROOTS} 个代理树，最多 {TREE_NODE_CAP} 名代理（由浅到深）。",
                     f"The {TREE_ROOTS} agent trees with the most GMV, at most {TREE_NODE_CAP} agents "
                     "(shallowest first)."), "downline"),
    ])
    return write_page(out_dir / FILE, TITLE, body, generated_at=generated_at, downloads=True)
