"""Growth marts: viral coefficient, GMV concentration, channel migration and group buys.

Each function builds one ``marts`` table set-based in DuckDB from ``graph.attributed_orders``
(and ``graph.share_nodes`` / ``staging.*`` where said). Definitions are in
docs/growth-metrics.md; money in ¥, durations in days or hours as the column names say.
"""

from __future__ import annotations

import logging

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.contract import ENUMERATED, PLATFORM_CHANNELS, SOCIAL_CHANNELS
from sharegraph.core.vocabulary import Vocabulary
from sharegraph.core.warehouse import finish_table
from sharegraph.graph.attribution import IN_MULTI_LINE_ORDER
from sharegraph.graph.products import product_lookup_sql

log = logging.getLogger(__name__)

#: the built-in channel classes, for channels staging.channels does not list
BUILT_IN = Vocabulary.build(ENUMERATED)


def channel_class_sql(channel: str) -> str:
    """SQL for the class (platform / social / other) of the channel column ``channel``: the
    ingest's class in staging.channels (config and mapping file included), else the built-in
    one (a warehouse whose orders did not come through the ingest)."""
    return (f"COALESCE((SELECT c.channel_class FROM staging.channels c WHERE c.channel = {channel}), "
            f"{BUILT_IN.channel_class_sql(channel)})")

K_WINDOW_DAYS = 30
"""k_factor_30d counts acquisitions within this many days of the inviter's first paid order."""
KOL_TOP1_SHARE = 0.5
"""KOL-driven when the top 1% of credited people bring at least this share of attributed GMV..."""
KOL_GINI = 0.8
"""...or when the Gini coefficient of attributed GMV across credited people is at least this."""
FIRST_PAID = """(SELECT person_id AS customer_id, first_paid_order_at AS first_paid_at
                 FROM graph.people WHERE first_paid_order_at IS NOT NULL)"""
"""One row per customer who paid: the time of their first paid order, which graph.people keeps
per person (cheaper than grouping every paid line again)."""


# --------------------------------------------------------------------------------- k-factor

KFACTOR_DOC = {
    "scope": "'week' for a weekly cohort row, 'overall' for the one row over all customers.",
    "cohort_week": "Monday (ISO week start) of the week of the members' first paid order; "
                   "NULL on the overall row.",
    "cohort_size": "Customers whose first paid order falls in the week (overall: all customers "
                   "with a paid order).",
    "sharers": "Cohort members who made at least one share or re-share (at any time).",
    "invitations": "Shares and re-shares (graph.share_nodes rows) made by cohort members, at "
                   "any time.",
    "new_customers_acquired": "New customers whose first paid order line is credited "
                              "(graph.attributed_orders.credited_id) to a cohort member.",
    "new_customers_acquired_30d": "Same, counting only first orders placed before the "
                                  "inviter's first paid order + 30 days.",
    "k_factor": "Viral coefficient K = new_customers_acquired / cohort_size.",
    "k_factor_30d": "new_customers_acquired_30d / cohort_size: comparable across cohorts "
                    "observed for at least 30 days.",
    "invitations_per_member": "invitations / cohort_size.",
    "conversion": "new_customers_acquired / invitations (NULL without invitations); "
                  "K = invitations_per_member x conversion.",
    "observed_days": "Days from cohort_week to the last paid order in the data: cohorts "
                     "observed < 30 days have an incomplete K (right-censored).",
}


def build_kfactor(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.kfactor``: viral coefficient by weekly cohort plus an overall row.

    Cohort = ISO week (Monday start) of a customer's first paid order. K = new customers
    whose first paid order is credited to a cohort member / cohort size. New customers
    credited to people who never bought themselves belong to no cohort and are not counted.
    """
    del settings
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE marts.kfactor AS
        -- grain: one row per weekly cohort (scope 'week') plus one row scope 'overall'
        WITH members AS (
            SELECT customer_id AS person_id, first_paid_at,
                   date_trunc('week', first_paid_at)::DATE AS cohort_week
            FROM {FIRST_PAID}
        ),
        acquired AS (  -- one row per new customer and the person credited for their first order
            SELECT DISTINCT customer_id, credited_id, ordered_at
            FROM graph.attributed_orders
            WHERE is_first_order AND is_paid AND credited_id IS NOT NULL
        ),
        per_member AS (
            SELECT m.person_id, m.cohort_week,
                   coalesce(sh.invitations, 0) AS invitations,
                   coalesce(ac.acquired, 0) AS acquired,
                   coalesce(ac.acquired_30d, 0) AS acquired_30d
            FROM members m
            LEFT JOIN (SELECT actor_id, count(*) AS invitations
                       FROM graph.share_nodes GROUP BY actor_id) sh ON sh.actor_id = m.person_id
            LEFT JOIN (
                SELECT a.credited_id, count(DISTINCT a.customer_id) AS acquired,
                       count(DISTINCT a.customer_id) FILTER (
                           WHERE a.ordered_at < m2.first_paid_at + INTERVAL {K_WINDOW_DAYS} DAY
                       ) AS acquired_30d
                FROM acquired a JOIN members m2 ON m2.person_id = a.credited_id
                GROUP BY a.credited_id
            ) ac ON ac.credited_id = m.person_id
        ),
        horizon AS (SELECT max(ordered_at) AS last_at FROM graph.attributed_orders WHERE is_paid),
        grouped AS (
            SELECT CASE WHEN cohort_week IS NULL THEN 'overall' ELSE 'week' END AS scope,
                   cohort_week,
                   count(*)::BIGINT AS cohort_size,
                   count(*) FILTER (WHERE invitations > 0)::BIGINT AS sharers,
                   sum(invitations)::BIGINT AS invitations,
                   sum(acquired)::BIGINT AS new_customers_acquired,
                   sum(acquired_30d)::BIGINT AS new_customers_acquired_30d
            FROM per_member
            GROUP BY GROUPING SETS ((cohort_week), ())
        )
        SELECT g.scope, g.cohort_week, g.cohort_size, g.sharers, g.invitations,
               g.new_customers_acquired, g.new_customers_acquired_30d,
               g.new_customers_acquired / g.cohort_size AS k_factor,
               g.new_customers_acquired_30d / g.cohort_size AS k_factor_30d,
               g.invitations / g.cohort_size AS invitations_per_member,
               g.new_customers_acquired / nullif(g.invitations, 0) AS conversion,
               date_diff('day', coalesce(g.cohort_week, (SELECT min(cohort_week) FROM members)),
                         h.last_at::DATE)::INTEGER AS observed_days
        FROM grouped g, horizon h
        WHERE g.cohort_size > 0
        ORDER BY g.scope = 'overall', g.cohort_week
        """
    )
    return finish_table(
        con,
        "marts.kfactor",
        "One row per weekly cohort of new customers (week of first paid order) plus an overall "
        "row: the viral coefficient K = new customers credited to cohort members / cohort size, "
        "decomposed as invitations per member x conversion.",
        KFACTOR_DOC,
    )


# ---------------------------------------------------------------------------- concentration

CONCENTRATION_DOC = {
    "scope": "'overall' (all merchants) or 'merchant'.",
    "merchant_id": "Merchant of the lines (NULL on the overall row).",
    "credited_people": "People with attributed GMV in the scope (graph.attributed_orders."
                       "credited_id on paid lines).",
    "attributed_gmv": "Paid GMV with a credited person in the scope, ¥.",
    "gini": "Gini coefficient of attributed GMV across credited people: "
            "sum_i (2i - n - 1) x_i / (n sum x) with x ascending; 0 = all equal, "
            "(n-1)/n = one person holds all. NULL when attributed GMV is 0.",
    "top1_people": "ceil(1% of credited_people): how many people make the top 1%.",
    "top1_share": "Share of attributed GMV brought by the top 1% of credited people (in [0, 1]).",
    "top10_people": "ceil(10% of credited_people).",
    "top10_share": "Share of attributed GMV brought by the top 10% of credited people.",
    "top_person_id": "The credited person with the most attributed GMV in the scope.",
    "label": f"'KOL-driven' when top1_share >= {KOL_TOP1_SHARE} or gini >= {KOL_GINI}, "
             "else 'peer-driven'.",
    "label_zh": "label in Chinese: 'KOL驱动' / '素人驱动'.",
}


def build_concentration(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.concentration``: Gini and top-1% / top-10% shares of attributed GMV (¥)
    across credited people, overall and per merchant, with a KOL-driven / peer-driven label.

    Gini by the sorted-values formula (Dorfman 1979), exact for ties; top-k% takes the
    ceil(k% x n) people with the most GMV (so small scopes always have at least one).
    """
    del settings
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE marts.concentration AS
        -- grain: one row per scope: 'overall', and one per merchant ('merchant', merchant_id)
        WITH credited AS (
            SELECT merchant_id, credited_id, amount
            FROM graph.attributed_orders WHERE is_paid AND credited_id IS NOT NULL
        ),
        people AS (
            SELECT 'overall' AS scope, NULL::VARCHAR AS merchant_id, credited_id,
                   sum(amount) AS gmv
            FROM credited GROUP BY credited_id
            UNION ALL
            SELECT 'merchant', merchant_id, credited_id, sum(amount)
            FROM credited GROUP BY merchant_id, credited_id
        ),
        ranked AS (
            SELECT *, row_number() OVER w AS rank_desc, count(*) OVER (PARTITION BY scope, merchant_id) AS n
            FROM people
            -- ties need no order: tied people hold the same ¥, so every sum below is the same
            WINDOW w AS (PARTITION BY scope, merchant_id ORDER BY gmv DESC)
        ),
        agg AS (
            SELECT scope, merchant_id, any_value(n)::BIGINT AS credited_people,
                   sum(gmv)::DECIMAL(18,2) AS attributed_gmv,
                   -- sums of ¥ in DECIMAL, exact: a parallel sum of doubles depends on the
                   -- order rows arrive in, and an updated table is stored in another order
                   sum((2 * (n + 1 - rank_desc) - n - 1) * gmv)::DOUBLE
                       / nullif(any_value(n) * sum(gmv)::DOUBLE, 0) AS gini,
                   ceil(0.01 * any_value(n))::BIGINT AS top1_people,
                   coalesce((sum(gmv) FILTER (WHERE rank_desc <= ceil(0.01 * n)))::DOUBLE
                       / nullif(sum(gmv)::DOUBLE, 0), 0) AS top1_share,
                   ceil(0.10 * any_value(n))::BIGINT AS top10_people,
                   coalesce((sum(gmv) FILTER (WHERE rank_desc <= ceil(0.10 * n)))::DOUBLE
                       / nullif(sum(gmv)::DOUBLE, 0), 0) AS top10_share,
                   arg_min(credited_id, (-gmv, credited_id)) AS top_person_id
            FROM ranked GROUP BY scope, merchant_id
        )
        SELECT scope, merchant_id, credited_people, attributed_gmv,
               -- clamp float noise: the sum is exactly 0 for all-equal GMV
               CASE WHEN gini IS NULL THEN NULL ELSE greatest(gini, 0.0) END AS gini,
               top1_people, least(top1_share, 1.0) AS top1_share,
               top10_people, least(top10_share, 1.0) AS top10_share, top_person_id,
               CASE WHEN top1_share >= {KOL_TOP1_SHARE} OR gini >= {KOL_GINI}
                    THEN 'KOL-driven' ELSE 'peer-driven' END AS label,
               CASE WHEN top1_share >= {KOL_TOP1_SHARE} OR gini >= {KOL_GINI}
                    THEN 'KOL驱动' ELSE '素人驱动' END AS label_zh
        FROM agg
        ORDER BY scope = 'merchant', merchant_id
        """
    )
    return finish_table(
        con,
        "marts.concentration",
        "One row per scope (overall, and per merchant): how concentrated attributed GMV is "
        "across credited people (Gini, top-1% and top-10% shares) and whether it is KOL-driven "
        f"(top-1% share >= {KOL_TOP1_SHARE} or Gini >= {KOL_GINI}) or peer-driven.",
        CONCENTRATION_DOC,
    )


# ------------------------------------------------------------------------ channel migration

CHANNEL_MIGRATION_DOC = {
    "month": "First day of the calendar month of the order (local time).",
    "repeat_customers": "Customers with a repeat paid order line in the month.",
    "repeat_orders": "Distinct repeat paid orders: paid lines placed strictly after the "
                     "customer's first paid order.",
    "social_orders": "Repeat orders with a line on a social channel (class social in "
                     "staging.channels; built-in: " + ", ".join(SOCIAL_CHANNELS) + ").",
    "platform_orders": "Repeat orders with a line on a platform channel (class platform in "
                       "staging.channels; built-in: " + ", ".join(PLATFORM_CHANNELS) + ").",
    "social_order_share": "social_orders / (social_orders + platform_orders).",
    "repeat_gmv": "Paid GMV of repeat order lines, ¥.",
    "social_gmv": "Repeat GMV on social channels, ¥.",
    "platform_gmv": "Repeat GMV on platform channels, ¥.",
    "social_gmv_share": "social_gmv / (social_gmv + platform_gmv); NULL when both are 0.",
}


def build_channel_migration(
    con: duckdb.DuckDBPyConnection, settings: Settings | None = None
) -> int:
    """Build ``marts.channel_migration``: per month, how repeat customers' paid orders split
    between social and platform channels (counts and GMV, ¥).

    A repeat order line is a paid line placed strictly after the customer's first paid order
    (lines sharing the first order's timestamp are not repeats). Channel classes come from
    staging.channels (built by the ingest with the configured classes), else the built-ins.
    """
    del settings
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE marts.channel_migration AS
        -- grain: one row per calendar month with repeat paid orders
        WITH firsts AS (SELECT customer_id, first_paid_at FROM {FIRST_PAID}),
        repeat_lines AS (
            SELECT a.customer_id, a.order_id, date_trunc('month', a.ordered_at)::DATE AS month,
                   a.amount, {channel_class_sql('a.channel')} AS channel_group,
                   {IN_MULTI_LINE_ORDER} AS multi
            FROM graph.attributed_orders a JOIN firsts f USING (customer_id)
            WHERE a.is_paid AND a.ordered_at > f.first_paid_at
        ),
        -- distinct orders and customers per month by grouping first: cheaper than four
        -- count(DISTINCT) over every line, and the same counts. An order with only line 1 is
        -- one line (IN_MULTI_LINE_ORDER): only the others are grouped by order.
        per_order AS (
            SELECT month, channel_group = 'social' AS social,
                   channel_group = 'platform' AS platform, amount AS gmv,
                   CASE WHEN channel_group = 'social' THEN amount END AS social_gmv,
                   CASE WHEN channel_group = 'platform' THEN amount END AS platform_gmv
            FROM repeat_lines WHERE NOT multi
            UNION ALL
            SELECT month, bool_or(channel_group = 'social'), bool_or(channel_group = 'platform'),
                   sum(amount), sum(amount) FILTER (WHERE channel_group = 'social'),
                   sum(amount) FILTER (WHERE channel_group = 'platform')
            FROM repeat_lines WHERE multi GROUP BY month, order_id
        ),
        customers AS (
            SELECT month, count(*)::BIGINT AS repeat_customers
            FROM (SELECT DISTINCT month, customer_id FROM repeat_lines) GROUP BY month
        ),
        monthly AS (
            SELECT month, repeat_customers, count(*)::BIGINT AS repeat_orders,
                   count(*) FILTER (WHERE social)::BIGINT AS social_orders,
                   count(*) FILTER (WHERE platform)::BIGINT AS platform_orders,
                   sum(gmv)::DECIMAL(18,2) AS repeat_gmv,
                   coalesce(sum(social_gmv), 0)::DECIMAL(18,2) AS social_gmv,
                   coalesce(sum(platform_gmv), 0)::DECIMAL(18,2) AS platform_gmv
            FROM per_order JOIN customers USING (month)
            GROUP BY month, repeat_customers
        )
        SELECT month, repeat_customers, repeat_orders, social_orders, platform_orders,
               social_orders / nullif(social_orders + platform_orders, 0) AS social_order_share,
               repeat_gmv, social_gmv, platform_gmv,
               social_gmv::DOUBLE / nullif(social_gmv::DOUBLE + platform_gmv::DOUBLE, 0)
                   AS social_gmv_share
        FROM monthly ORDER BY month
        """
    )
    return finish_table(
        con,
        "marts.channel_migration",
        "One row per month: repeat customers' paid orders (placed after their first paid order) "
        "on social vs platform channels, counts and GMV (¥) — is repeat buying moving to social?",
        CHANNEL_MIGRATION_DOC,
    )


# ------------------------------------------------------------------------------- group buys

GROUP_BUYS_DOC = {
    "group_id": "Group buy (拼团) id (staging.group_buys).",
    "initiator_id": "Who opened the group (团长).",
    "product_id": "Product of the group buy.",
    "merchant_id": "Merchant of the group's order lines (most frequent; ties: the smallest id), "
                   "else of the product in staging.products; NULL if unknown.",
    "target_size": "Members needed to fill the group.",
    "opened_at": "When the group opened.",
    "closed_at": "When it filled or expired (NULL while open).",
    "status": "open / filled / failed (failed groups are refunded).",
    "members": "Distinct customers with a paid or refunded (not cancelled) order line in the "
               "group; the initiator counts when they ordered.",
    "fill_rate": "min(members / target_size, 1), in [0, 1].",
    "time_to_fill_hours": "Hours from opened_at to closed_at for filled groups; NULL otherwise.",
    "members_via_initiator": "Members whose group order was brought by the initiator "
                             "(inviter = initiator_id).",
    "fission_members": "Members brought by another member of the same group: the inviter of "
                       "their group order is a member too (the initiator included when a "
                       "member).",
    "fission_rate": "fission_members / members (NULL without members).",
    "paid_lines": "Paid order lines in the group.",
    "paid_gmv": "Paid GMV of the group, ¥.",
    "refunded_lines": "Refunded order lines in the group.",
    "refunded_yuan": "Amount refunded, ¥.",
}

GROUP_BUY_SUMMARY_DOC = {
    "month": "First day of the month the groups opened in.",
    "groups": "Group buys opened in the month.",
    "filled_groups": "Groups with status filled.",
    "failed_groups": "Groups with status failed.",
    "open_groups": "Groups still open.",
    "success_rate": "filled / (filled + failed): share of decided groups that filled.",
    "mean_fill_rate": "Mean fill_rate over the month's groups.",
    "median_time_to_fill_hours": "Median hours to fill over filled groups.",
    "mean_members": "Mean members per group.",
    "members": "Members over all the month's groups.",
    "fission_members": "Members brought by another member of their group.",
    "fission_rate": "fission_members / members.",
    "paid_gmv": "Paid GMV of the month's groups, ¥.",
    "failed_refunded_yuan": "Amount refunded on failed groups, ¥.",
    "failed_paid_yuan": "Paid (not refunded) amount still standing on failed groups, ¥: "
                        "should be 0; > 0 flags missing refunds.",
}


_GROUP_MEMBERS = """
        lines AS (
            SELECT o.group_id, o.customer_id, o.ordered_at, o.amount, a.merchant_id,
                   coalesce(o.status, 'paid') AS status, o.order_id, o.line_no,
                   coalesce(a.credited_id, sn.actor_id,
                            CASE WHEN o.referrer_id <> o.customer_id THEN o.referrer_id END)
                       AS inviter_id
            FROM staging.orders o
            JOIN graph.attributed_orders a
              ON a.order_id = o.order_id AND a.line_no = coalesce(o.line_no, 1)
            LEFT JOIN graph.share_nodes sn ON sn.share_id = a.share_id
            WHERE o.group_id IS NOT NULL
        ),
        members AS (
            SELECT group_id, customer_id,
                   arg_min(inviter_id, (ordered_at, order_id, line_no)) AS inviter_id
            FROM lines WHERE status <> 'cancelled'
            GROUP BY group_id, customer_id
        ),
        member_stats AS (
            SELECT m.group_id, count(*)::BIGINT AS members,
                   count(*) FILTER (WHERE m.inviter_id = g.initiator_id
                                    AND m.customer_id <> g.initiator_id)::BIGINT
                       AS members_via_initiator,
                   count(*) FILTER (WHERE m2.customer_id IS NOT NULL
                                    AND m2.customer_id <> m.customer_id)::BIGINT
                       AS fission_members
            FROM members m
            JOIN staging.group_buys g ON g.group_id = m.group_id
            LEFT JOIN members m2 ON m2.group_id = m.group_id AND m2.customer_id = m.inviter_id
            GROUP BY m.group_id
        )
"""
"""CTEs ``lines``, ``members``, ``member_stats``: who joined each group and who brought them.

A member's inviter is the attribution rules' person for their first group line (paid or
not); fission members were brought by another member.
"""

_GROUP_MONEY = """
        money AS (
            SELECT group_id,
                   -- the group's most frequent merchant, ties to the smallest id (mode()
                   -- takes the first in scan order: not the same in an updated table)
                   arg_min(merchant_id, (-n_merchant, merchant_id))
                       FILTER (WHERE merchant_id IS NOT NULL) AS merchant_id,
                   count(*) FILTER (WHERE status = 'paid')::BIGINT AS paid_lines,
                   coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0)::DECIMAL(18,2)
                       AS paid_gmv,
                   count(*) FILTER (WHERE status = 'refunded')::BIGINT AS refunded_lines,
                   coalesce(sum(amount) FILTER (WHERE status = 'refunded'), 0)::DECIMAL(18,2)
                       AS refunded_yuan
            FROM (SELECT *, count(*) OVER (PARTITION BY group_id, merchant_id) AS n_merchant
                  FROM lines)
            GROUP BY group_id
        )
"""
"""CTE ``money`` (needs ``lines``): merchant, paid and refunded lines and ¥ per group."""


def build_group_buys(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.group_buys``: one row per group buy in ``staging.group_buys``.

    Members and money from ``staging.orders.group_id`` joined to ``graph.attributed_orders``.
    A member's inviter is the person the attribution rules name for their first group line,
    applied whether or not it was paid (failed groups are refunded yet still show who
    brought whom): ``credited_id``, else the actor of the resolved share
    (``graph.share_nodes``), else a referrer_id that is not the buyer.
    """
    del settings
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE marts.group_buys AS
        -- grain: one row per group buy (staging.group_buys.group_id)
        WITH {_GROUP_MEMBERS.strip()},
        {_GROUP_MONEY.strip()},
        product_merchant AS ({product_lookup_sql()})
        SELECT g.group_id, g.initiator_id, g.product_id,
               coalesce(mo.merchant_id, pm.merchant_id) AS merchant_id,
               g.target_size, g.opened_at, g.closed_at, g.status,
               coalesce(ms.members, 0)::BIGINT AS members,
               CASE WHEN g.target_size > 0
                    THEN least(coalesce(ms.members, 0) / g.target_size, 1.0)
                    ELSE NULL END AS fill_rate,
               CASE WHEN g.status = 'filled' AND g.closed_at >= g.opened_at
                    THEN date_diff('second', g.opened_at, g.closed_at) / 3600.0 END
                   AS time_to_fill_hours,
               coalesce(ms.members_via_initiator, 0)::BIGINT AS members_via_initiator,
               coalesce(ms.fission_members, 0)::BIGINT AS fission_members,
               ms.fission_members / nullif(ms.members, 0) AS fission_rate,
               coalesce(mo.paid_lines, 0)::BIGINT AS paid_lines,
               coalesce(mo.paid_gmv, 0)::DECIMAL(18,2) AS paid_gmv,
               coalesce(mo.refunded_lines, 0)::BIGINT AS refunded_lines,
               coalesce(mo.refunded_yuan, 0)::DECIMAL(18,2) AS refunded_yuan
        FROM staging.group_buys g
        LEFT JOIN member_stats ms ON ms.group_id = g.group_id
        LEFT JOIN money mo ON mo.group_id = g.group_id
        LEFT JOIN product_merchant pm ON pm.product_id = g.product_id
        ORDER BY g.opened_at, g.group_id
        """
    )
    return finish_table(
        con,
        "marts.group_buys",
        "One row per group buy (拼团): members, fill rate, time to fill, fission (members "
        "brought by members) and money paid / refunded (¥).",
        GROUP_BUYS_DOC,
    )


def build_group_buy_summary(
    con: duckdb.DuckDBPyConnection, settings: Settings | None = None
) -> int:
    """Build ``marts.group_buy_summary`` from ``marts.group_buys``: one row per month opened."""
    del settings
    con.execute(
        """
        CREATE OR REPLACE TABLE marts.group_buy_summary AS
        -- grain: one row per calendar month of opened_at
        WITH paid_failed AS (
            SELECT group_id, paid_gmv FROM marts.group_buys WHERE status = 'failed'
        )
        SELECT date_trunc('month', g.opened_at)::DATE AS month,
               count(*)::BIGINT AS groups,
               count(*) FILTER (WHERE g.status = 'filled')::BIGINT AS filled_groups,
               count(*) FILTER (WHERE g.status = 'failed')::BIGINT AS failed_groups,
               count(*) FILTER (WHERE g.status = 'open')::BIGINT AS open_groups,
               count(*) FILTER (WHERE g.status = 'filled')
                   / nullif(count(*) FILTER (WHERE g.status IN ('filled', 'failed')), 0)
                   AS success_rate,
               avg(g.fill_rate) AS mean_fill_rate,
               median(g.time_to_fill_hours) AS median_time_to_fill_hours,
               avg(g.members) AS mean_members,
               sum(g.members)::BIGINT AS members,
               sum(g.fission_members)::BIGINT AS fission_members,
               sum(g.fission_members) / nullif(sum(g.members), 0) AS fission_rate,
               sum(g.paid_gmv)::DECIMAL(18,2) AS paid_gmv,
               coalesce(sum(g.refunded_yuan) FILTER (WHERE g.status = 'failed'), 0)
                   ::DECIMAL(18,2) AS failed_refunded_yuan,
               coalesce(sum(pf.paid_gmv), 0)::DECIMAL(18,2) AS failed_paid_yuan
        FROM marts.group_buys g LEFT JOIN paid_failed pf USING (group_id)
        GROUP BY month ORDER BY month
        """
    )
    return finish_table(
        con,
        "marts.group_buy_summary",
        "One row per month of group-buy openings: how many filled or failed, fill rate, time "
        "to fill, members, fission and refunds of failed groups (¥).",
        GROUP_BUY_SUMMARY_DOC,
    )


# ----------------------------------------------------------------------------------- checks

def check_concentration_bounds(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """Gini, top-1% and top-10% shares in [0, 1]; top-1% <= top-10%; one overall row at most."""
    bad, overall, rows = con.execute(
        """
        SELECT count(*) FILTER (WHERE NOT (gini BETWEEN 0 AND 1) OR NOT (top1_share BETWEEN 0 AND 1)
                                OR NOT (top10_share BETWEEN 0 AND 1)
                                OR top1_share > top10_share + 1e-12),
               count(*) FILTER (WHERE scope = 'overall'), count(*)
        FROM marts.concentration
        """
    ).fetchall()[0]
    if bad or overall > 1:
        return False, f"{bad} of {rows} rows with a share or Gini outside [0, 1] or top1 > top10; {overall} overall rows"
    return True, f"{rows} rows, all shares and Gini in [0, 1]"


def check_fill_rate_bounds(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """fill_rate in [0, 1]; fission and initiator-brought members never exceed members."""
    bad_fill, bad_members, rows = con.execute(
        """
        SELECT count(*) FILTER (WHERE NOT (fill_rate BETWEEN 0 AND 1)),
               count(*) FILTER (WHERE fission_members > members OR members_via_initiator > members),
               count(*)
        FROM marts.group_buys
        """
    ).fetchall()[0]
    if bad_fill or bad_members:
        return False, (f"{bad_fill} of {rows} groups with fill_rate outside [0, 1]; "
                       f"{bad_members} with more fission/initiator members than members")
    return True, f"{rows} groups, fill rates in [0, 1]"


def check_kfactor(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """Weekly cohorts partition the customers: their sizes and acquisitions sum to the overall row."""
    row = con.execute(
        """
        SELECT coalesce(sum(cohort_size) FILTER (WHERE scope = 'week'), 0),
               coalesce(sum(cohort_size) FILTER (WHERE scope = 'overall'), 0),
               coalesce(sum(new_customers_acquired) FILTER (WHERE scope = 'week'), 0),
               coalesce(sum(new_customers_acquired) FILTER (WHERE scope = 'overall'), 0),
               count(*) FILTER (WHERE k_factor < 0)
        FROM marts.kfactor
        """
    ).fetchall()[0]
    weekly, overall, acq_w, acq_o, negative = row
    ok = weekly == overall and acq_w == acq_o and negative == 0
    return ok, (f"weekly cohorts {weekly} vs overall {overall} customers; acquisitions "
                f"{acq_w} vs {acq_o}; {negative} negative K")
