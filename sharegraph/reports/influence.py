"""Influence dashboard (influence.html): who drives sales, directly and through the downline.

Reads marts.agent_influence, marts.concentration, marts.cascades, marts.kfactor,
marts.channel_migration, marts.group_buys, graph.attributed_orders and graph.people; every
headline number on the page (top agent, Gini, K, group-buy success, network ROI) comes from
marts.headline_metrics, so it equals the index's card. People appear only as pseudonyms
(:mod:`sharegraph.reports.pseudonym`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.sql import table_exists
from sharegraph.metrics.growth import K_WINDOW_DAYS
from sharegraph.metrics.headline import COMPLETE_COHORT_DAYS
from sharegraph.reports import figures
from sharegraph.reports.data import query, select_list
from sharegraph.reports.headlines import CARDS, Card, cards, headline_rows, headline_value
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
from sharegraph.reports.page import meaning as what
from sharegraph.reports.pseudonym import pseudonymize

FILE = "influence.html"
TITLE = Text("代理影响力看板", "Agent influence dashboard")
SCATTER_CAP = 1000
"""Most agents drawn in the direct-vs-downstream scatter (largest total GMV first)."""
TREE_ROOTS = 5
TREE_NODE_CAP = 400
TREE_DEPTH = 12
"""The leaderboard's top agents drawn as treemap roots, the most people drawn (shallowest
first) and the deepest generation followed."""
SUMMARY: tuple[Card, ...] = tuple(c for c in CARDS if c[0] in (
    "top_agent_influence_gmv", "gini_credited", "k_factor", "group_buy_success_rate", "network_roi"))
"""The headline cards this page shows (same rows and formats as the index)."""

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
    "network_roi": ["network_roi"],
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
    Col("network_roi", "网络 ROI（¥/¥）", "Network ROI (¥ per ¥)", "float"),
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


#: the paid GMV of every credited person: grouped from the attributed lines, or read from the
#: influence mart, which has one row per credited person (``direct_orders > 0``) with that sum
#: as ``direct_gmv`` (the same values; the mart reads in 5 ms what grouping 11M lines took 0.5 s)
LORENZ_FROM_LINES = """SELECT sum(amount)::DOUBLE AS gmv FROM graph.attributed_orders
                       WHERE is_paid AND credited_id IS NOT NULL GROUP BY credited_id"""
LORENZ_FROM_MART = "SELECT direct_gmv::DOUBLE AS gmv FROM marts.agent_influence WHERE direct_orders > 0"


def lorenz(con: duckdb.DuckDBPyConnection, gini_credited: float | None) -> figures.Block:
    """Attributed GMV per credited person (¥), all of them: the population of headline
    ``gini_credited`` (agents and customers who referred a sale), whose value is annotated."""
    frame = query(con, LORENZ_FROM_MART if table_exists(con, "marts.agent_influence")
                  else LORENZ_FROM_LINES)
    _, label = concentration_label(con)
    return figures.lorenz_curve(frame, gini_credited, label)


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
    """K within the window per weekly cohort; cohorts observed for less than
    ``COMPLETE_COHORT_DAYS`` are marked incomplete (they had less time to invite)."""
    frame = query(
        con,
        f"""SELECT strftime(cohort_week, '%Y-%m-%d') AS cohort, k_factor_30d AS k_factor, cohort_size,
                  observed_days >= {COMPLETE_COHORT_DAYS} AS complete
           FROM marts.kfactor WHERE scope = 'week' ORDER BY cohort_week""",
    )
    return figures.kfactor_by_cohort(frame, K_WINDOW_DAYS)


def channel_migration(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = query(
        con,
        """SELECT strftime(month, '%Y-%m') AS period, g.grp AS "group", g.gmv::DOUBLE AS gmv
           FROM marts.channel_migration,
                LATERAL (VALUES ('platform', platform_gmv), ('social', social_gmv)) g(grp, gmv)
           ORDER BY month, g.grp""",
    )
    return figures.channel_migration(frame)


def group_buys(con: duckdb.DuckDBPyConnection, success_rate: float | None) -> figures.Block:
    frame = query(
        con,
        """SELECT fill_rate::DOUBLE AS fill_rate, time_to_fill_hours::DOUBLE AS hours_to_fill
           FROM marts.group_buys""",
    )
    return figures.group_buy_fill(frame, success_rate)


def downline_tree(con: duckdb.DuckDBPyConnection, settings: Settings) -> figures.Block:
    """Treemap of the downlines of the leaderboard's ``TREE_ROOTS`` top agents (by
    influence GMV), through the referral network the leaderboard's downstream GMV uses
    (graph.people.network_parent_id), at most ``TREE_NODE_CAP`` people taken shallowest first
    (so every drawn person's upline is drawn) and ``TREE_DEPTH`` generations. A top agent
    inside another's downline is drawn in both trees. Node ids are row numbers and labels
    pseudonyms: no raw id reaches the page."""
    frame = query(
        con,
        f"""
        WITH RECURSIVE roots AS (
            SELECT person_id, row_number() OVER (ORDER BY influence_gmv DESC, person_id) AS root_rank
            FROM marts.agent_influence WHERE is_agent AND influence_gmv > 0
            ORDER BY influence_gmv DESC, person_id LIMIT {TREE_ROOTS}
        ), tree(root_rank, person_id, parent_id, depth, path) AS (
            SELECT root_rank, person_id, NULL::VARCHAR, 0, [person_id] FROM roots
            UNION ALL
            SELECT t.root_rank, p.person_id, t.person_id, t.depth + 1, list_append(t.path, p.person_id)
            FROM tree t JOIN graph.people p ON p.network_parent_id = t.person_id
            WHERE t.depth < {TREE_DEPTH} AND NOT list_contains(t.path, p.person_id)
        ), gmv AS (
            SELECT person_id, direct_gmv::DOUBLE AS gmv FROM marts.agent_influence
        ), picked AS (
            SELECT t.root_rank, t.person_id, t.parent_id, t.depth, coalesce(g.gmv, 0) AS gmv,
                   row_number() OVER (ORDER BY t.depth, if(t.depth = 0, t.root_rank, 0),
                                             coalesce(g.gmv, 0) DESC, t.root_rank, t.person_id)
                       AS node
            FROM tree t LEFT JOIN gmv g USING (person_id)
            QUALIFY node <= {TREE_NODE_CAP}
        )
        SELECT c.node::VARCHAR AS node, p.node::VARCHAR AS parent, c.person_id AS label,
               c.root_rank, c.gmv AS value
        FROM picked c LEFT JOIN picked p ON p.root_rank = c.root_rank AND p.person_id = c.parent_id
        ORDER BY c.node
        """,
    )
    if frame is None:
        return no_data()
    frame = pseudonymize(frame, ["label"], settings.pseudonym_key).with_columns(
        pl.when(pl.col("parent").is_null())
        .then(pl.format("#{} {}", pl.col("root_rank"), pl.col("label")))
        .otherwise(pl.col("label")).alias("label"))
    return figures.downline_treemap(frame)


def render_influence(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path, generated_at: str = "") -> Path:
    """Write influence.html; returns its path. A chart whose source table is empty for a
    recorded reason (marts.table_notes) shows that reason in words; every chart and card says
    in one line what it means."""
    notes = load_notes(con)
    rows = headline_rows(con)

    def fig(block: figures.Block, div_id: str, *tables: str, what: Text, height: int = 420) -> str:
        return figure_html(explain(block, notes, *tables), div_id, height=height, what=what)

    return write_page(out_dir / FILE, TITLE,
                      _people_sections(con, settings, rows, notes, fig)
                      + _dynamics_sections(con, settings, rows, notes, fig),
                      generated_at=generated_at, downloads=True)


def _people_sections(con: duckdb.DuckDBPyConnection, settings: Settings, rows: dict, notes: dict,
                     fig: Callable[..., str]) -> str:
    """Who drives sales: headline cards, the leaderboard, direct vs downstream, concentration."""
    cap = settings.report_row_cap
    return "".join([
        section(Text("核心指标", "Headline figures"), cards(rows, settings, SUMMARY),
                Text("与总览页相同的口径（marts.headline_metrics）。", "The same definitions as the overview "
                     "(marts.headline_metrics)."), "headline"),
        section(Text("代理排行榜", "Agent leaderboard"),
                caveat(notes, "marts.agent_influence")
                + explain(leaderboard(con, settings), notes, "marts.agent_influence")
                + what(Text("网络 ROI = （本人 + 全部下线的 GMV）÷（本人 + 全部下线的佣金和红包）：每花 1 元激励，"
                            "这位代理和其下线带来多少元 GMV。",
                            "Network ROI = (own + whole downline's GMV) / (own + whole downline's commission "
                            "and red packets): ¥ of GMV this agent and their downline bring per ¥1 of incentives.")),
                Text(f"按影响力 GMV（直接 + 衰减后的下游 GMV）排序，点击表头可排序；最多显示 {cap:,} 行。代理以化名显示。",
                     f"Ordered by influence GMV (direct + decayed downstream GMV); click a header to sort; "
                     f"at most {cap:,} rows. Agents are shown as pseudonyms."), "leaderboard"),
        '<div class="grid2">',
        section(Text("直接 vs 下游", "Direct vs downstream"),
                fig(scatter(con, settings), "fig-scatter", "marts.agent_influence",
                    what=Text("右上角的人自己卖得多、下线也卖得多；左上角的人主要靠下线。",
                              "Top right: sells a lot and so does the downline; top left: mostly through "
                              "the downline.")),
                Text(f"GMV 最高的 {SCATTER_CAP:,} 人。", f"The {SCATTER_CAP:,} people with the most GMV."),
                "scatter"),
        section(Text("集中度", "Concentration"),
                fig(lorenz(con, headline_value(rows, "gini_credited")), "fig-lorenz", "graph.attributed_orders",
                    "graph.referral_edges", "marts.concentration",
                    what=Text("曲线越向右下弯，GMV 越集中在少数人手里；基尼系数 0 = 人人相同，接近 1 = 一人独占。",
                              "The further the curve sags, the more GMV sits with a few people; Gini 0 = "
                              "everyone equal, near 1 = one person has it all.")),
                Text("所有被归因者（代理和推荐了订单的客户）；基尼系数高或头部 1% 占比高 = KOL 驱动，否则为素人驱动。",
                     "Every credited person (agents and customers who referred a sale); high Gini or "
                     "top-1% share = KOL-driven, otherwise peer-driven."), "lorenz"),
        "</div>",
    ])


def _dynamics_sections(con: duckdb.DuckDBPyConnection, settings: Settings, rows: dict, notes: dict,
                       fig: Callable[..., str]) -> str:
    """How it spreads: cascades, the viral coefficient, channels, group buys, downline trees."""
    return "".join([
        section(Text("传播链分布", "Cascade distributions"),
                fig(cascade_distribution(con), "fig-cascade-dist", "marts.cascades",
                    what=Text("绝大多数分享没有被转发；右侧长尾是少数扩散很远的传播链。",
                              "Most shares are never re-shared; the long tail on the right is the few "
                              "cascades that travel far.")), sid="cascade-dist"),
        '<div class="grid2">',
        section(Text("病毒系数", "Viral coefficient"),
                caveat(notes, "marts.kfactor") + fig(
                    kfactor(con), "fig-kfactor", "marts.kfactor",
                    what=Text(f"K > 1（红线以上）表示每位客户带来一位以上新客，可自我增长；灰色斜线批次观察不足 "
                              f"{COMPLETE_COHORT_DAYS} 天，数值还会上升，不代表下滑。",
                              f"K > 1 (above the red line) means each customer brings more than one new "
                              f"customer: growth sustains itself; grey hatched cohorts were observed for less "
                              f"than {COMPLETE_COHORT_DAYS} days and will still rise, not a decline.")),
                Text(f"K = 批次成员在首单后 {K_WINDOW_DAYS} 天内带来的新客数 / 批次人数。",
                     f"K = new customers brought by cohort members within {K_WINDOW_DAYS} days of their "
                     "first order / cohort size."),
                "kfactor"),
        section(Text("渠道迁移", "Channel migration"),
                fig(channel_migration(con), "fig-channels", "marts.channel_migration",
                    what=Text("社交渠道的份额上升，说明复购客户正从平台转到社交渠道。",
                              "A growing social share means repeat customers are moving from the "
                              "platforms to social channels.")),
                Text("复购订单的 GMV 在平台渠道与社交渠道间的占比。",
                     "Repeat orders' GMV split between platform and social channels."), "channels"),
        "</div>",
        section(Text("拼团", "Group buys"),
                fig(group_buys(con, headline_value(rows, "group_buy_success_rate")), "fig-group-buys",
                    "marts.group_buys",
                    what=Text("满员率靠近 100% 且成团时间短，说明拼团容易成团；成团率 = 成团 ÷（成团 + 失败），进行中的团不计。",
                              "Fill rates near 100% and short times to fill mean groups fill easily; "
                              "success = filled / (filled + failed), open groups not counted.")),
                sid="group-buys"),
        section(Text("下线树", "Downline tree"),
                fig(downline_tree(con, settings), "fig-downline", "graph.people", "marts.agent_influence",
                    height=560,
                    what=Text("方块越大，这位代理和其下线卖得越多；大块里的小块是由他带来的下线。",
                              "The bigger the block, the more this agent and their downline sell; the "
                              "blocks inside are the people they brought in.")),
                Text(f"排行榜前 {TREE_ROOTS} 名代理（#1 为排行榜第一）的下线，沿排行榜计算下游 GMV 的同一推荐网络；"
                     f"最多 {TREE_NODE_CAP} 人（由浅到深）、{TREE_DEPTH} 代。",
                     f"The downlines of the leaderboard's top {TREE_ROOTS} agents (#1 is the leaderboard's "
                     f"first), through the same referral network as the leaderboard's downstream GMV; at "
                     f"most {TREE_NODE_CAP} people (shallowest first) and {TREE_DEPTH} generations."),
                "downline"),
    ])
