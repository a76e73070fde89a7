"""``marts.headline_metrics``: one definition per headline number, computed once.

Every page that shows a headline (the index cards, the influence page's summary) reads it
from here, so two pages can never disagree on "the top agent" or "the group-buy success
rate". Each row carries its definition in both languages, which the pages show as the card's
"what this means".
"""

from __future__ import annotations

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.sql import literal
from sharegraph.core.warehouse import finish_table
from sharegraph.graph.attribution import IN_MULTI_LINE_ORDER
from sharegraph.metrics.growth import FIRST_PAID, K_WINDOW_DAYS, channel_class_sql

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
    "k_factor": ("ratio", f"病毒系数 K：每位客户在首单后 {K_WINDOW_DAYS} 天内带来的新客数，只计已观察满 "
                 f"{K_WINDOW_DAYS} 天的周批次；K > 1 表示可自我增长。",
                 f"K-factor: new customers each customer brings within {K_WINDOW_DAYS} days of their "
                 f"first order, over weekly cohorts observed for the full {K_WINDOW_DAYS} days; K > 1 "
                 "grows by itself."),
    "group_buy_success_rate": ("ratio", "成团率 = 成团数 ÷（成团数 + 失败数）；进行中的团不计。",
                               "Group-buy success = filled / (filled + failed); open groups "
                               "are not counted."),
    "group_buys_open": ("groups", "仍在进行中的拼团数。", "Group buys still open."),
    "incentive_cost": ("¥", "已付佣金与分享红包合计。", "Commission and share red packets paid."),
    "network_roi": ("ratio", "网络 ROI = 归因 GMV ÷ 激励成本（佣金 + 红包）：每花 1 元激励带来的已付 GMV。",
                    "Network ROI = attributed GMV / incentive cost (commission + red packets): paid "
                    "GMV per ¥1 of incentives."),
    "paid_gmv_platform": ("¥", "平台渠道（淘宝、天猫、京东、拼多多等）的已付 GMV。",
                          "Paid GMV on platform channels (Taobao, Tmall, JD, Pinduoduo, ...)."),
    "paid_gmv_social": ("¥", "社交渠道（微信、朋友圈、微信群、小程序、拼团）的已付 GMV。",
                        "Paid GMV on social channels (WeChat, Moments, groups, mini-programs, group buys)."),
    "paid_gmv_other": ("¥", "其他渠道（未归入平台或社交）的已付 GMV。",
                       "Paid GMV on other channels (neither platform nor social)."),
    "active_agents": ("people", "活跃代理：该期内有分享或有记在其名下的已付订单的代理数。",
                      "Active agents: agents with a share or a credited paid sale in the period."),
    "new_customers_via_shares": ("people", "经分享带来的新客：首笔已付订单通过某次分享归因给他人的客户数。",
                                 "New customers brought by shares: customers whose first paid "
                                 "order is credited to someone through a share."),
    "quarantined_rows": ("rows", "因违反数据约定而被隔离、未载入的输入行。",
                         "Input rows quarantined (not loaded) for breaking the data contract."),
}

COLUMNS = {
    "metric": "Metric name (see definition_en).",
    "scope": "'all', or a merchant_id for the per-merchant rows.",
    "period": "'all': the whole data period; 'YYYY-MM': one calendar month (trend metrics, "
              "scope 'all').",
    "value": "The number (¥ for unit '¥'; a fraction 0..1 for unit 'ratio').",
    "unit": "¥, ratio, orders, people, groups or rows.",
    "subject": "Who or what the number is about, when it is about one (the top agent's person_id).",
    "definition_zh": "What the number means, in Chinese (shown on the pages).",
    "definition_en": "What the number means, in English (shown on the pages).",
}


COMPLETE_COHORT_DAYS = K_WINDOW_DAYS + 7
"""A weekly cohort is complete when every member (joined Monday to Sunday) has had the full
K window: ``observed_days >= K_WINDOW_DAYS + 7``. Younger cohorts look like a decline only
because they had less time to invite."""


def _metrics_sql() -> str:
    """One SELECT per metric for the whole period: (metric, scope, value, subject)."""
    paid = "graph.attributed_orders WHERE is_paid"
    return f"""
    SELECT 'paid_gmv', 'all', sum(amount)::DOUBLE, NULL FROM {paid}
    UNION ALL SELECT 'paid_gmv', merchant_id, sum(amount)::DOUBLE, NULL FROM {paid} GROUP BY 2
    -- distinct orders without count(DISTINCT) over every line: an order with only line 1 is
    -- one line (IN_MULTI_LINE_ORDER)
    UNION ALL SELECT 'paid_orders', 'all', count(*) FILTER (WHERE NOT multi)
        + count(DISTINCT order_id) FILTER (WHERE multi), NULL
        FROM (SELECT order_id, {IN_MULTI_LINE_ORDER} AS multi FROM {paid})
    UNION ALL SELECT 'customers', 'all', count(*), NULL FROM {FIRST_PAID}
    UNION ALL SELECT 'attributed_gmv', 'all',
        coalesce(sum(amount) FILTER (WHERE credited_id IS NOT NULL), 0)::DOUBLE, NULL FROM {paid}
    UNION ALL SELECT 'attributed_share', scope, a / nullif(p, 0), NULL FROM (
        SELECT 'all' AS scope,
               coalesce(sum(amount) FILTER (WHERE credited_id IS NOT NULL), 0)::DOUBLE AS a,
               sum(amount)::DOUBLE AS p FROM {paid}
        UNION ALL SELECT merchant_id,
               coalesce(sum(amount) FILTER (WHERE credited_id IS NOT NULL), 0)::DOUBLE,
               sum(amount)::DOUBLE FROM {paid} GROUP BY 1)
    UNION ALL SELECT 'agents', 'all', count(*) FILTER (WHERE is_agent), NULL FROM marts.agent_influence
    UNION ALL (SELECT 'top_agent_influence_gmv', 'all', influence_gmv::DOUBLE, person_id
        FROM marts.agent_influence WHERE is_agent AND influence_gmv > 0
        ORDER BY influence_gmv DESC, person_id LIMIT 1)
    UNION ALL SELECT 'gini_credited', 'all', gini, NULL FROM marts.concentration WHERE scope = 'overall'
    UNION ALL SELECT 'top1_share_credited', 'all', top1_share, NULL FROM marts.concentration
        WHERE scope = 'overall'
    UNION ALL SELECT 'k_factor', 'all',
        sum(new_customers_acquired_30d)::DOUBLE / nullif(sum(cohort_size), 0), NULL
        FROM marts.kfactor WHERE scope = 'week' AND observed_days >= {COMPLETE_COHORT_DAYS}
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


def _trend_sql() -> str:
    """The trend metrics, for the whole period ('all') and per calendar month ('YYYY-MM'):
    (metric, period, value). Months come from GROUPING SETS so both grains share one query."""
    return f"""
    WITH lines AS (
        SELECT a.amount, a.ordered_at, {channel_class_sql('a.channel')} AS channel_class
        FROM graph.attributed_orders a WHERE a.is_paid
    ), acts AS (  -- one row per agent act: a share or a credited paid line (as lifecycle.py)
        SELECT n.actor_id AS agent_id, n.shared_at AS act_at FROM graph.share_nodes n
        SEMI JOIN marts.agent_funnel f ON f.agent_id = n.actor_id WHERE n.shared_at IS NOT NULL
        UNION ALL SELECT a.credited_id, a.ordered_at FROM graph.attributed_orders a
        SEMI JOIN marts.agent_funnel f ON f.agent_id = a.credited_id WHERE a.is_paid
    ), firsts AS (
        SELECT DISTINCT customer_id, ordered_at FROM graph.attributed_orders
        WHERE is_paid AND is_first_order AND credited_id IS NOT NULL AND share_id IS NOT NULL
    ), groups AS (SELECT status, opened_at FROM staging.group_buys WHERE opened_at IS NOT NULL)
    SELECT metric, coalesce(strftime(month, '%Y-%m'), 'all') AS period, value FROM (
        SELECT date_trunc('month', ordered_at) AS month,
               coalesce(sum(amount) FILTER (WHERE channel_class = 'platform'), 0)::DOUBLE AS platform,
               coalesce(sum(amount) FILTER (WHERE channel_class = 'social'), 0)::DOUBLE AS social,
               coalesce(sum(amount) FILTER (WHERE channel_class NOT IN ('platform', 'social')), 0)
                   ::DOUBLE AS other
        FROM lines GROUP BY GROUPING SETS ((date_trunc('month', ordered_at)), ())
    ) UNPIVOT (value FOR metric IN (platform AS 'paid_gmv_platform', social AS 'paid_gmv_social',
                                    other AS 'paid_gmv_other'))
    UNION ALL SELECT 'paid_gmv', strftime(month, '%Y-%m'), gmv FROM (  -- the text per month only
        SELECT date_trunc('month', ordered_at) AS month, sum(amount)::DOUBLE AS gmv
        FROM lines GROUP BY 1)
    UNION ALL SELECT 'active_agents', coalesce(strftime(date_trunc('month', act_at), '%Y-%m'), 'all'),
        count(DISTINCT agent_id)::DOUBLE FROM acts GROUP BY GROUPING SETS ((date_trunc('month', act_at)), ())
    UNION ALL SELECT 'new_customers_via_shares',
        coalesce(strftime(date_trunc('month', ordered_at), '%Y-%m'), 'all'),
        count(DISTINCT customer_id)::DOUBLE FROM firsts
        GROUP BY GROUPING SETS ((date_trunc('month', ordered_at)), ())
    UNION ALL SELECT 'group_buy_success_rate', strftime(date_trunc('month', opened_at), '%Y-%m'),
        count(*) FILTER (WHERE status = 'filled')
            / nullif(count(*) FILTER (WHERE status IN ('filled', 'failed')), 0)
        FROM groups GROUP BY 2
    """


def build_headline_metrics(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.headline_metrics``: one row per (metric, scope, period)."""
    del settings
    defs = " UNION ALL ".join(
        f"SELECT {literal(m)} AS metric, {literal(u)} AS unit, {literal(zh)} AS definition_zh, "
        f"{literal(en)} AS definition_en" for m, (u, zh, en) in DEFINITIONS.items())
    con.execute(f"""
        CREATE OR REPLACE TABLE {TABLE} AS
        -- grain: one row per metric per scope (all, or a merchant) per period (all, or a month)
        WITH v(metric, scope, period, value, subject) AS (
            SELECT metric, scope, 'all', value, subject FROM ({_metrics_sql()}) x(metric, scope, value, subject)
            UNION ALL SELECT metric, 'all', period, value, NULL FROM ({_trend_sql()}))
        SELECT v.metric, v.scope, v.period, v.value::DOUBLE AS value, d.unit,
               v.subject::VARCHAR AS subject, d.definition_zh, d.definition_en
        FROM v JOIN ({defs}) d USING (metric)
        WHERE v.period IS NOT NULL
        ORDER BY v.metric, v.scope <> 'all', v.scope, v.period <> 'all', v.period""")
    return finish_table(con, TABLE, "One row per headline metric per scope and period: the single "
                        "definition every report page reads (docs/reports.md#headline-metrics).", COLUMNS)

