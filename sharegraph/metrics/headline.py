"""``marts.headline_metrics``: one definition per headline number, computed once.

Every page that shows a headline (the index cards, the influence page's summary) reads it
from here, so two pages can never disagree on "the top agent" or "the group-buy success
rate". Each row carries its definition in both languages, which the pages show as the card's
"what this means".
"""

from __future__ import annotations

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.sql import count_rows, literal
from sharegraph.core.warehouse import comment_table

TABLE = "marts.headline_metrics"

#: metric -> (unit, definition zh, definition en); the SQL of each is in _METRICS_SQL
DEFINITIONS: dict[str, tuple[str, str, str]] = {
    "paid_gmv": ("¥", "已付订单行的实付金额合计（不含退款、取消）。",
                 "Sum of paid order lines' amounts (refunded and cancelled lines excluded)."),
    "paid_orders": ("orders", "含已付订单行的不同订单数。", "Distinct orders with a paid line."),
    "customers": ("people", "有已付订单的不同客户数。", "Distinct customers with a paid line."),
    "attributed_gmv": ("¥", "归因到分享者或推荐人的已付 GMV。",
                       "Paid GMV credited to a sharer or referrer."),
    "attributed_share": ("ratio", "归因 GMV ÷ 已付 GMV。", "Attributed GMV / paid GMV."),
    "agents": ("people", "代理人数（代理文件中的代理，或未提供时分享过的人）。",
               "Agents (the agents file, else people who shared)."),
    "top_agent_influence_gmv": ("¥", "影响力 GMV 最高的代理（直接 + 衰减后的下游 GMV），与排行榜第一名相同。",
                                "The agent with the highest influence GMV (direct + decayed "
                                "downstream), the leaderboard's #1."),
    "gini_credited": ("ratio", "被归因 GMV 在所有被归因者（代理和推荐了订单的客户）之间的基尼系数。",
                      "Gini of credited GMV over every credited person (agents and customers "
                      "who referred a sale)."),
    "top1_share_credited": ("ratio", "前 1% 被归因者获得的归因 GMV 占比。",
                            "Share of credited GMV earned by the top 1% of credited people."),
    "k_factor": ("ratio", "病毒系数 K：每位被获客的客户在 30 天内带来的新客数（整体）。",
                 "K-factor: new customers each acquired customer brings within 30 days (overall)."),
    "group_buy_success_rate": ("ratio", "成团率 = 成团数 ÷（成团数 + 失败数）；进行中的团不计。",
                               "Group-buy success = filled / (filled + failed); open groups "
                               "are not counted."),
    "group_buys_open": ("groups", "仍在进行中的拼团数。", "Group buys still open."),
    "incentive_cost": ("¥", "已付佣金与分享红包合计。", "Commission and share red packets paid."),
    "network_roi": ("ratio", "归因 GMV ÷ 激励成本（佣金 + 红包）。",
                    "Attributed GMV / incentive cost (commission + red packets)."),
    "quarantined_rows": ("rows", "因违反数据约定而被隔离、未载入的输入行。",
                         "Input rows quarantined (not loaded) for breaking the data contract."),
}

COLUMNS = {
    "metric": "Metric name (see definition_en).",
    "scope": "'all', or a merchant_id for the per-merchant rows.",
    "period": "'all': the whole data period.",
    "value": "The number (¥ for unit '¥'; a fraction 0..1 for unit 'ratio').",
    "unit": "¥, ratio, orders, people, groups or rows.",
    "subject": "Who or what the number is about, when it is about one (the top agent's person_id).",
    "definition_zh": "What the number means, in Chinese (shown on the pages).",
    "definition_en": "What the number means, in English (shown on the pages).",
}


def _metrics_sql() -> str:
    """One SELECT per metric: (metric, scope, value, subject)."""
    paid = "graph.attributed_orders WHERE is_paid"
    return f"""
    SELECT 'paid_gmv', 'all', sum(amount)::DOUBLE, NULL FROM {paid}
    UNION ALL SELECT 'paid_gmv', merchant_id, sum(amount)::DOUBLE, NULL FROM {paid} GROUP BY 2
    UNION ALL SELECT 'paid_orders', 'all', count(DISTINCT order_id), NULL FROM {paid}
    UNION ALL SELECT 'customers', 'all', count(DISTINCT customer_id), NULL FROM {paid}
    UNION ALL SELECT 'attributed_gmv', 'all',
        coalesce(sum(amount) FILTER (WHERE credited_id IS NOT NULL), 0)::DOUBLE, NULL FROM {paid}
    UNION ALL SELECT 'attributed_share', scope, a / nullif(p, 0), NULL FROM (
        SELECT 'all' AS scope, sum(amount) FILTER (WHERE credited_id IS NOT NULL)::DOUBLE AS a,
               sum(amount)::DOUBLE AS p FROM {paid}
        UNION ALL SELECT merchant_id, sum(amount) FILTER (WHERE credited_id IS NOT NULL)::DOUBLE,
               sum(amount)::DOUBLE FROM {paid} GROUP BY 1)
    UNION ALL SELECT 'agents', 'all', count(*) FILTER (WHERE is_agent), NULL FROM marts.agent_influence
    UNION ALL (SELECT 'top_agent_influence_gmv', 'all', influence_gmv::DOUBLE, person_id
        FROM marts.agent_influence WHERE is_agent AND influence_gmv > 0
        ORDER BY influence_gmv DESC, person_id LIMIT 1)
    UNION ALL SELECT 'gini_credited', 'all', gini, NULL FROM marts.concentration WHERE scope = 'overall'
    UNION ALL SELECT 'top1_share_credited', 'all', top1_share, NULL FROM marts.concentration
        WHERE scope = 'overall'
    UNION ALL SELECT 'k_factor', 'all', k_factor, NULL FROM marts.kfactor WHERE scope = 'overall'
    UNION ALL SELECT 'group_buy_success_rate', 'all',
        count(*) FILTER (WHERE status = 'filled')
            / nullif(count(*) FILTER (WHERE status IN ('filled', 'failed')), 0), NULL
        FROM staging.group_buys
    UNION ALL SELECT 'group_buys_open', 'all', count(*) FILTER (WHERE status = 'open'), NULL
        FROM staging.group_buys
    UNION ALL SELECT 'incentive_cost', 'all',
        coalesce(sum(cost_yuan), 0)::DOUBLE, NULL FROM marts.agent_influence
    UNION ALL SELECT 'network_roi', 'all', a.gmv / nullif(c.cost, 0), NULL
        FROM (SELECT sum(amount) FILTER (WHERE credited_id IS NOT NULL)::DOUBLE AS gmv FROM {paid}) a,
             (SELECT coalesce(sum(cost_yuan), 0)::DOUBLE AS cost FROM marts.agent_influence) c
    UNION ALL SELECT 'quarantined_rows', 'all', count(*), NULL FROM quarantine.rejected_rows
    """


def build_headline_metrics(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.headline_metrics``: one row per (metric, scope, period)."""
    del settings
    defs = " UNION ALL ".join(
        f"SELECT {literal(m)} AS metric, {literal(u)} AS unit, {literal(zh)} AS definition_zh, "
        f"{literal(en)} AS definition_en" for m, (u, zh, en) in DEFINITIONS.items())
    con.execute(f"""
        CREATE OR REPLACE TABLE {TABLE} AS
        -- grain: one row per metric per scope (all, or a merchant) for the whole period
        WITH v(metric, scope, value, subject) AS ({_metrics_sql()})
        SELECT v.metric, v.scope, 'all' AS period, v.value::DOUBLE AS value, d.unit,
               v.subject::VARCHAR AS subject, d.definition_zh, d.definition_en
        FROM v JOIN ({defs}) d USING (metric)
        ORDER BY v.metric, v.scope <> 'all', v.scope""")
    comment_table(con, TABLE, "One row per headline metric per scope and period: the single "
                  "definition every report page reads (docs/reports.md#headline-metrics).", COLUMNS)
    return count_rows(con, TABLE)


def headline(con: duckdb.DuckDBPyConnection, scope: str = "all") -> dict[str, tuple[float | None, str | None]]:
    """metric -> (value, subject) for one scope, as the pages read it."""
    rows = con.execute(f"SELECT metric, value, subject FROM {TABLE} WHERE scope = ? AND period = 'all'",
                       [scope]).fetchall()
    return {m: (v, s) for m, v, s in rows}
