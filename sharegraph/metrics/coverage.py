"""Why a graph or mart table is empty or thin: ``marts.table_notes`` (docs/reports.md).

Orders alone are a valid input (share events, products, agents and group buys may be
missing or header-only), so some tables legitimately come out empty. This module records,
for every ``graph.*`` and ``marts.*`` table, its row count and, when it is empty, a reason
code plus one plain sentence in zh-CN and English that the reports show instead of an empty
chart. A table that has rows but was built without an input that enriches it (e.g. influence
without share events) gets a caveat instead.

The reasons come from :data:`DEPENDENCIES`, a documented map table -> what it needs: facts
about the inputs (:data:`FACTS`, e.g. "staging.share_events has rows") and upstream tables.
The first need that fails names the reason; an empty upstream table passes on its own
reason. Everything is one set-based SQL statement over the map; no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import finish_table

TABLE = "marts.table_notes"
SCHEMAS = ("graph", "marts")
UPSTREAM = "table:"
"""Prefix of a need that is an upstream table (``table:marts.category_affinity``)."""


@dataclass(frozen=True)
class Fact:
    """Something about the inputs a table may need: ``sql`` is true when it holds; when it
    does not, ``code`` is the reason and ``zh`` / ``en`` the cause, completed by the table's
    subject ("..., so cascade analysis is empty.")."""

    sql: str
    zh: str
    en: str
    tables: tuple[str, ...] = ()
    """Tables ``sql`` reads; the fact counts as failed when one of them does not exist."""


_PAID = "graph.attributed_orders"
FACTS: dict[str, Fact] = {
    "no_orders": Fact("EXISTS (SELECT 1 FROM staging.orders)",
                      "没有提供订单（orders）", "No orders were given", ("staging.orders",)),
    "no_paid_orders": Fact(f"EXISTS (SELECT 1 FROM {_PAID} WHERE is_paid)",
                           "没有已付款的订单", "No paid orders were loaded", (_PAID,)),
    "no_share_events": Fact("EXISTS (SELECT 1 FROM staging.share_events)",
                            "没有提供分享事件（share_events）", "No share events were given",
                            ("staging.share_events",)),
    "no_share_clicks": Fact("EXISTS (SELECT 1 FROM staging.share_events WHERE event_type = 'click')",
                            "分享事件中没有点击（click）", "The share events hold no clicks",
                            ("staging.share_events",)),
    "no_products": Fact("EXISTS (SELECT 1 FROM staging.products)",
                        "没有提供商品表（products）", "No products were given", ("staging.products",)),
    "no_agents": Fact("EXISTS (SELECT 1 FROM staging.agents)",
                      "没有提供代理表（agents）", "No agents were given", ("staging.agents",)),
    "no_group_buys": Fact("EXISTS (SELECT 1 FROM staging.group_buys)",
                          "没有提供拼团表（group_buys）", "No group buys were given",
                          ("staging.group_buys",)),
    "no_attributed_orders": Fact(
        f"EXISTS (SELECT 1 FROM {_PAID} WHERE is_paid AND credited_id IS NOT NULL)",
        "没有已付款订单归因到分享者或推荐人", "No paid order is credited to a sharer or referrer", (_PAID,)),
    "no_categories": Fact(
        f"(SELECT count(DISTINCT category) FROM {_PAID} WHERE is_paid) >= 2",
        "已付款订单的类目（category）少于两个", "Paid orders have fewer than two categories", (_PAID,)),
    "below_min_support": Fact(
        "EXISTS (SELECT 1 FROM marts.category_affinity "
        "WHERE scope = 'all' AND basis = 'customer' AND is_significant)",
        "没有类目对达到最少共同客户数（min_pair_customers）并且显著",
        "No category pair is both bought together by enough customers (min_pair_customers) "
        "and significant", ("marts.category_affinity",)),
}
"""Facts about the inputs, by the reason code used when the fact does not hold."""

OTHER_REASONS: dict[str, tuple[str, str]] = {
    "no_repeat_orders": ("没有客户在首单之后再次下单", "No customer ordered again after their first paid order"),
    "no_candidates": ("每个商家都已经在卖所有有销售的类目，没有可拓展的类目", "Every merchant already sells every category with sales: there is nothing to expand into"),
    "nothing_found": ("没有发现图中的问题", "No graph problem was found"),
    "no_rows": ("这次的输入没有产生任何行", "This input produced no rows"),
}
"""Reasons a table is empty although every need holds (a table's ``otherwise``)."""


@dataclass(frozen=True)
class Needs:
    """What one table is built from and what its emptiness means.

    ``needs``: fact codes or ``table:<upstream>`` in the order they are checked; the first
    that fails is why the table is empty. ``otherwise``: the reason when all hold.
    ``caveats``: fact code -> (zh, en) consequence when the table has rows but the fact
    fails. ``subject``: what is empty, as the reason sentence names it.
    """

    subject: tuple[str, str]
    needs: tuple[str, ...] = ()
    otherwise: str = "no_rows"
    caveats: dict[str, tuple[str, str]] = field(default_factory=dict)


DEPENDENCIES: dict[str, Needs] = {
    "graph.attributed_orders": Needs(
        ("订单归因", "order attribution"), ("no_orders",),
        caveats={"no_share_events": ("订单只能按推荐人（referrer_id）归因",
                                     "orders are credited through referrers (referrer_id) only"),
                 "no_products": ("类目只来自订单自己的 category 列",
                                 "categories come from the orders' own category column only")}),
    "graph.share_nodes": Needs(("分享传播图", "the share cascade graph"), ("no_share_events",)),
    "graph.click_edges": Needs(("点击关系", "who clicks whose shares"),
                               ("no_share_events", "no_share_clicks")),
    "graph.agent_upline": Needs(("代理上下级树", "the agent upline tree"), ("no_agents",)),
    "graph.people": Needs(("人员表", "the people table"), ("no_orders",)),
    "graph.referral_edges": Needs(
        ("推荐关系", "the referral graph"), ("no_orders", "no_paid_orders", "no_attributed_orders")),
    "graph.audience_edges": Needs(("受众关系（谁触达谁）", "who reaches whom"), ("no_orders",)),
    "graph.person_activity": Needs(("人员活动统计", "per-person activity"),
                                   ("no_orders", f"{UPSTREAM}graph.audience_edges")),
    "graph.anomalies": Needs(("异常列表", "the anomaly list"), ("no_orders",), "nothing_found"),
    "marts.agent_influence": Needs(
        ("影响力分析", "influence analysis"), ("no_share_events", "no_attributed_orders"),
        caveats={
            "no_share_events": ("影响力只来自推荐人带来的订单，分享转化率和传播链指标为空",
                                "influence comes from referred orders only; share conversion and "
                                "cascade metrics are empty"),
            "no_agents": ("没有代理等级和上下级，下游 GMV 只沿推荐关系计算",
                          "there are no agent levels or uplines; downstream GMV follows referrals only"),
        }),
    "marts.cascades": Needs(("影响力和裂变分析", "influence and cascade analysis"),
                            ("no_share_events", f"{UPSTREAM}graph.share_nodes")),
    "marts.kfactor": Needs(
        ("病毒系数 K", "the viral coefficient K"), ("no_orders", "no_paid_orders"),
        caveats={"no_share_events": ("病毒系数 K 只计推荐人带来的新客，邀请数为 0",
                                     "K counts new customers brought by referrers only; invitations are 0")}),
    "marts.concentration": Needs(
        ("GMV 集中度", "GMV concentration"), ("no_orders", "no_paid_orders", "no_attributed_orders")),
    "marts.channel_migration": Needs(
        ("渠道迁移", "channel migration"), ("no_orders", "no_paid_orders"), "no_repeat_orders"),
    "marts.group_buys": Needs(("拼团分析", "group-buy analysis"), ("no_group_buys",)),
    "marts.launch_plan": Needs(
        ("新品投放种子计划", "the launch seed plan"),
        ("no_share_events", "no_share_clicks", "no_attributed_orders")),
    "marts.group_buy_summary": Needs(
        ("拼团月度汇总", "the monthly group-buy summary"), ("no_group_buys", f"{UPSTREAM}marts.group_buys")),
    "marts.category_affinity": Needs(
        ("类目亲和度", "category affinity"), ("no_orders", "no_paid_orders", "no_categories")),
    "marts.directional_affinity": Needs(
        ("先后购买亲和度", "sequential (A then B) affinity"),
        ("no_orders", "no_paid_orders", "no_categories"), "no_repeat_orders"),
    "marts.spillover_affinity": Needs(
        ("分享外溢分析", "share spill-over analysis"),
        ("no_share_events", "no_share_clicks", "no_paid_orders", "no_categories")),
    "marts.expansion_recommendations": Needs(
        ("拓品建议", "expansion recommendations"),
        ("no_orders", "no_paid_orders", "no_categories", f"{UPSTREAM}marts.category_affinity"),
        "no_candidates"),
    "marts.weak_categories": Needs(
        ("类目契合度", "category fit"),
        ("no_orders", "no_paid_orders", "no_categories", f"{UPSTREAM}marts.category_affinity")),
    "marts.agent_funnel": Needs(
        ("代理生命周期", "the agent lifecycle"), ("no_share_events",),
        caveats={"no_agents": ("代理就是做过分享的人，加入时间取首次分享",
                               "agents are the people who shared, joined at their first share"),
                 "no_share_clicks": ("漏斗中没有点击这一步", "the funnel has no click stage")}),
    "marts.agent_cohorts": Needs(
        ("代理留存分析", "agent cohort retention"), ("no_share_events", f"{UPSTREAM}marts.agent_funnel")),
    "marts.upline_quality": Needs(
        ("上级招募质量", "upline (recruiter) quality"), ("no_agents", f"{UPSTREAM}marts.agent_funnel")),
    "marts.headline_metrics": Needs(("核心指标", "the headline figures"), ("no_orders",)),
    "marts.integrity_flags": Needs(
        ("推荐合规审查", "the referral-integrity review"), ("no_orders", "no_paid_orders"),
        "nothing_found",
        caveats={"no_share_events": ("只能检查自购、推荐闭环和退款，不能检查点击暴增",
                                     "only self-referral, rings and refunds are checked, not click bursts")}),
}
"""Every graph/marts table -> what it needs (docs/reports.md, "Why a table is empty").
A table missing here still gets a row: reason ``no_rows`` when it is empty."""

DEFAULT_SUBJECT = ("这张表", "this table")

COLUMNS = {
    "table_name": "A graph.* or marts.* table (schema.table); every one of them except this one.",
    "rows": "Rows in that table when the notes were written.",
    "reason_code": "Why the table is empty (NULL when it has rows): no_share_events, no_group_buys, "
                   "no_agents, no_products, no_orders, no_paid_orders, no_attributed_orders, "
                   "no_categories, no_share_clicks, below_min_support, no_repeat_orders, "
                   "no_candidates, nothing_found or no_rows.",
    "reason_zh": "The reason as one plain sentence in Chinese, shown by the reports (NULL when the table has rows).",
    "reason_en": "The reason as one plain sentence in English, shown by the reports (NULL when the table has rows).",
    "caveat_code": "For a table with rows: the missing input that makes it thinner than usual "
                   "(e.g. no_share_events for marts.agent_influence), else NULL.",
    "caveat_zh": "The caveat as one plain sentence in Chinese (NULL when none).",
    "caveat_en": "The caveat as one plain sentence in English (NULL when none).",
}
TEXT = ("One row per graph.* and marts.* table: its row count and, when it is empty, why "
        "(from which inputs are missing or empty), in words the reports show. Built last, "
        "after every graph and mart table; see docs/reports.md.")


def _existing(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
    return {r[0] for r in rows}


def _map_relations(con: duckdb.DuckDBPyConnection) -> None:
    """Register the dependency map, the causes and the subjects as small polars frames."""
    causes = {code: (f.zh, f.en) for code, f in FACTS.items()} | OTHER_REASONS
    needs = [(t, i, n) for t, d in DEPENDENCIES.items() for i, n in enumerate(d.needs)]
    caveats = [(t, i, c, zh, en) for t, d in DEPENDENCIES.items()
               for i, (c, (zh, en)) in enumerate(d.caveats.items())]
    text, pos = pl.String, pl.Int32
    con.register("_tn_causes", pl.DataFrame(
        {"code": list(causes), "zh": [v[0] for v in causes.values()],
         "en": [v[1] for v in causes.values()]}, schema={"code": text, "zh": text, "en": text}))
    con.register("_tn_tables", pl.DataFrame({
        "table_name": list(DEPENDENCIES),
        "subject_zh": [d.subject[0] for d in DEPENDENCIES.values()],
        "subject_en": [d.subject[1] for d in DEPENDENCIES.values()],
        "otherwise": [d.otherwise for d in DEPENDENCIES.values()]}))
    con.register("_tn_needs", pl.DataFrame(
        needs, schema={"table_name": text, "pos": pos, "need": text}, orient="row"))
    con.register("_tn_caveats", pl.DataFrame(
        caveats, schema={"table_name": text, "pos": pos, "code": text, "zh": text, "en": text},
        orient="row"))


def build_table_notes(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.table_notes``: one row per graph/marts table with its rows and, when it is
    empty, the reason in words (see the module docstring). Returns the row count."""
    del settings
    existing = _existing(con)
    described = sorted(t for t in existing if t.split(".")[0] in SCHEMAS and t != TABLE)
    facts = " UNION ALL ".join(
        f"SELECT '{code}' AS code, "
        + (f"coalesce(({f.sql}), false)" if set(f.tables) <= existing else "false")
        + " AS ok"
        for code, f in FACTS.items())
    counts = " UNION ALL ".join(
        f"SELECT '{t}' AS table_name, count(*)::BIGINT AS rows FROM {t}" for t in described
    ) or "SELECT NULL::VARCHAR AS table_name, NULL::BIGINT AS rows WHERE false"
    _map_relations(con)
    try:
        con.execute(f"""
            CREATE OR REPLACE TABLE {TABLE} AS
            -- grain: one row per graph.* / marts.* table
            WITH RECURSIVE
            counts AS ({counts}),
            facts AS ({facts}),
            failed AS (   -- needs that do not hold: a failed fact or an empty upstream table
                SELECT n.table_name, n.pos, n.need
                FROM _tn_needs n
                LEFT JOIN facts f ON f.code = n.need
                LEFT JOIN counts u ON '{UPSTREAM}' || u.table_name = n.need
                WHERE f.ok = false OR u.rows = 0
            ),
            own AS (      -- why each empty table is empty, before following upstream tables
                SELECT c.table_name,
                       coalesce(arg_min(fl.need, fl.pos), any_value(t.otherwise), 'no_rows') AS blame
                FROM counts c
                LEFT JOIN failed fl USING (table_name)
                LEFT JOIN _tn_tables t USING (table_name)
                WHERE c.rows = 0
                GROUP BY c.table_name
            ),
            chain AS (    -- an empty upstream table passes on its own reason
                SELECT table_name, blame, 0 AS hops FROM own
                UNION ALL
                SELECT chain.table_name, o.blame, chain.hops + 1
                FROM chain JOIN own o ON chain.blame = '{UPSTREAM}' || o.table_name
                WHERE chain.hops < 20
            ),
            reason AS (
                SELECT table_name, arg_max(blame, hops) AS code FROM chain GROUP BY table_name
            ),
            caveat AS (   -- first enriching input missing from a table that has rows
                SELECT cv.table_name, arg_min(cv.code, cv.pos) AS code,
                       arg_min(cv.zh, cv.pos) AS zh, arg_min(cv.en, cv.pos) AS en
                FROM _tn_caveats cv JOIN facts f ON f.code = cv.code AND NOT f.ok
                GROUP BY cv.table_name
            )
            SELECT c.table_name, c.rows,
                   r.code AS reason_code,
                   CASE WHEN r.code IS NOT NULL THEN
                       rc.zh || '，所以' || coalesce(t.subject_zh, '{DEFAULT_SUBJECT[0]}') || '为空。' END
                       AS reason_zh,
                   CASE WHEN r.code IS NOT NULL THEN
                       rc.en || ', so ' || coalesce(t.subject_en, '{DEFAULT_SUBJECT[1]}') || ' is empty.' END
                       AS reason_en,
                   CASE WHEN c.rows > 0 THEN cv.code END AS caveat_code,
                   CASE WHEN c.rows > 0 THEN cc.zh || '，所以' || cv.zh || '。' END AS caveat_zh,
                   CASE WHEN c.rows > 0 THEN cc.en || ', so ' || cv.en || '.' END AS caveat_en
            FROM counts c
            LEFT JOIN reason r USING (table_name)
            LEFT JOIN _tn_causes rc ON rc.code = r.code
            LEFT JOIN _tn_tables t USING (table_name)
            LEFT JOIN caveat cv USING (table_name)
            LEFT JOIN _tn_causes cc ON cc.code = cv.code
            ORDER BY c.table_name""")
    finally:
        for name in ("_tn_causes", "_tn_tables", "_tn_needs", "_tn_caveats"):
            con.unregister(name)
    return finish_table(con, TABLE, TEXT, COLUMNS)
