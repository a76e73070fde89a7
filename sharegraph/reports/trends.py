"""Growth trends (trends.html): the growth team's numbers month by month.

Monthly paid GMV by channel class (staging.channels), active agents, new customers brought by
shares and group-buy success, all read from ``marts.headline_metrics`` (period 'YYYY-MM'), so
a month's number is the same row any other page or export shows. A month the data does not
cover from its first to its last day is drawn hatched: a partial month is not a decline.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.sql import table_exists
from sharegraph.reports import figures
from sharegraph.reports.data import query
from sharegraph.reports.headlines import HEADLINE, Card, cards, headline_rows, headline_value
from sharegraph.reports.notes import explain, load_notes
from sharegraph.reports.page import Text, figure_html, section, write_page

FILE = "trends.html"
TITLE = Text("增长趋势", "Growth trends")

SUMMARY: tuple[Card, ...] = (
    ("paid_gmv_social", Text("社交渠道 GMV", "Social-channel GMV"), "money"),
    ("paid_gmv_platform", Text("平台渠道 GMV", "Platform-channel GMV"), "money"),
    ("active_agents", Text("活跃代理（全期）", "Active agents (whole period)"), "count"),
    ("new_customers_via_shares", Text("经分享带来的新客", "New customers via shares"), "count"),
    ("group_buy_success_rate", Text("拼团成团率", "Group-buy success"), "percent"),
)
"""The whole-period cards above the monthly charts (rows of marts.headline_metrics)."""

CLASSES = {"paid_gmv_platform": "platform", "paid_gmv_social": "social", "paid_gmv_other": "other"}


def monthly(con: duckdb.DuckDBPyConnection, metrics: list[str]) -> pl.DataFrame | None:
    """Monthly rows of ``metrics`` (scope 'all') with ``complete``: the paid orders cover the
    month from its first to its last day."""
    if not table_exists(con, HEADLINE):
        return None
    return query(con, f"""
        WITH span AS (SELECT min(ordered_at)::DATE AS lo, max(ordered_at)::DATE AS hi
                      FROM graph.attributed_orders WHERE is_paid)
        SELECT h.metric, h.period AS month, h.value,
               strptime(h.period, '%Y-%m')::DATE >= s.lo
               AND (strptime(h.period, '%Y-%m') + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE <= s.hi
                   AS complete
        FROM {HEADLINE} h, span s
        WHERE h.scope = 'all' AND h.period <> 'all' AND list_contains(?, h.metric)
        ORDER BY h.metric, h.period""", [metrics])


def gmv_by_class(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = monthly(con, list(CLASSES))
    if frame is not None:
        frame = frame.with_columns(pl.col("metric").replace_strict(CLASSES).alias("class"),
                                   pl.col("value").alias("gmv"))
        # a class with no GMV in any month (e.g. no 'other' channel) is not drawn
        frame = frame.filter(pl.col("gmv").sum().over("class") > 0)
    return figures.monthly_gmv_by_class(frame)


def series(con: duckdb.DuckDBPyConnection, metric: str, titles: tuple[str, str], axis: tuple[str, str],
           kind: str = "count", reference: float | None = None) -> figures.Block:
    frame = monthly(con, [metric])
    return figures.monthly_series(frame, titles, axis, kind, reference)


def render_trends(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                  generated_at: str = "") -> Path:
    """Write trends.html; returns its path (an empty source says why, from marts.table_notes)."""
    notes = load_notes(con)
    rows = headline_rows(con)

    def fig(block: figures.Block, div_id: str, *tables: str, what: Text) -> str:
        return figure_html(explain(block, notes, *tables), div_id, what=what)

    body = "".join([
        section(Text("全期指标", "Whole-period figures"), cards(rows, settings, SUMMARY),
                Text("与总览页相同的口径（marts.headline_metrics）；下方图表是同一指标按月拆开。",
                     "Same definitions as the overview (marts.headline_metrics); the charts below split "
                     "each one by month."), "headline"),
        section(Text("各渠道类别的月度 GMV", "Monthly GMV by channel class"),
                fig(gmv_by_class(con), "fig-trend-gmv", "graph.attributed_orders",
                    what=Text("社交渠道的柱子变高，说明生意正从平台转到社交渠道；斜线月份数据不完整。",
                              "A growing social bar means business is moving from the platforms to social "
                              "channels; hatched months are incomplete.")),
                Text("渠道类别来自 staging.channels（平台、社交、其他）。",
                     "Channel classes come from staging.channels (platform, social, other)."), "gmv"),
        '<div class="grid2">',
        section(Text("月度活跃代理", "Active agents per month"),
                fig(series(con, "active_agents", ("每月活跃代理数", "Active agents per month"),
                           ("活跃代理", "Active agents")), "fig-trend-agents", "marts.agent_funnel",
                    what=Text("当月有分享或有已付成交的代理越多，分销网络越有活力。",
                              "The more agents share or sell in a month, the livelier the network.")),
                sid="agents"),
        section(Text("经分享带来的新客", "New customers via shares"),
                fig(series(con, "new_customers_via_shares", ("每月经分享带来的新客", "New customers via shares per month"),
                           ("新客", "New customers")), "fig-trend-new", "graph.share_nodes",
                    what=Text("首单来自别人分享的客户数：社交裂变带来的获客。",
                              "Customers whose first order came through someone's share: acquisition "
                              "by social fission.")),
                sid="new-customers"),
        "</div>",
        section(Text("月度拼团成团率", "Group-buy success per month"),
                fig(series(con, "group_buy_success_rate", ("每月拼团成团率（按开团月份）", "Group-buy success per month (month opened)"),
                           ("成团率", "Success"), "rate", headline_value(rows, "group_buy_success_rate")),
                    "fig-trend-groups", "marts.group_buys",
                    what=Text("成团 ÷（成团 + 失败），进行中的团不计；红色虚线是全期成团率。",
                              "Filled / (filled + failed), open groups not counted; the dotted red line "
                              "is the whole period's rate.")),
                sid="group-buys"),
    ])
    return write_page(out_dir / FILE, TITLE, body, generated_at=generated_at, downloads=True)
