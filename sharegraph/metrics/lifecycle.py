"""Agent lifecycle: which recruits become sellers, how fast, and which uplines recruit agents
who stay (docs/integrity.md, "Agent lifecycle").

Three marts, set-based in DuckDB: ``marts.agent_funnel`` (one row per agent: joined ->
first share -> first click -> first sale, activity and churn), ``marts.agent_cohorts``
(recruitment month x months since joining: retention and GMV per agent) and
``marts.upline_quality`` (one row per upline with enough recruits: activation and retention
of its recruits). Zero-threshold agents (零门槛代理) join for free, so most never sell: the
funnel says where they stop, the upline table says whose recruits go further.
"""

from __future__ import annotations

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import finish_table

FUNNEL = "marts.agent_funnel"
COHORTS = "marts.agent_cohorts"
UPLINE_QUALITY = "marts.upline_quality"

_Z95 = 1.959963984540054

DATA_END_SQL = """(SELECT greatest(
        (SELECT max(ordered_at) FROM graph.attributed_orders),
        (SELECT max(occurred_at) FROM staging.share_events)))"""
"""SQL scalar: the last timestamp in the data (orders or share events); churn and
observability are measured back from it, not from today. Each builder reads it once
(:func:`data_end`) and binds it as a parameter: both maxima are full column scans."""

AGENT_MONTHS_SQL = """
    SELECT agent_id, m, sum(gmv) AS gmv
    FROM (SELECT n.actor_id AS agent_id, date_trunc('month', n.shared_at)::DATE AS m,
                 0::DECIMAL(18,2) AS gmv
          FROM graph.share_nodes n SEMI JOIN marts.agent_funnel f ON f.agent_id = n.actor_id
          UNION ALL
          SELECT a.credited_id, date_trunc('month', a.ordered_at)::DATE, a.amount
          FROM graph.attributed_orders a SEMI JOIN marts.agent_funnel f ON f.agent_id = a.credited_id
          WHERE a.is_paid)
    GROUP BY 1, 2"""
"""SQL of one row per (agent of marts.agent_funnel, calendar month ``m``) with any activity: a
share or re-share made, or a credited paid order line; ``gmv`` is that month's credited paid
GMV. Cohorts and upline retention count these rows: an agent is active in a month once,
however many acts it had (no count(DISTINCT) over agent ids)."""


ACTS_SQL = """
    SELECT n.actor_id AS agent_id, n.shared_at AS act_at
    FROM graph.share_nodes n SEMI JOIN marts.agent_funnel f ON f.agent_id = n.actor_id
    UNION ALL
    SELECT a.credited_id, a.ordered_at
    FROM graph.attributed_orders a SEMI JOIN marts.agent_funnel f ON f.agent_id = a.credited_id
    WHERE a.is_paid"""
"""SQL of every act of an agent of marts.agent_funnel: a share or re-share made, or a credited
paid order line. Upline retention keeps the acts of one month after joining before it
dedups (cheaper than grouping every (agent, month) first)."""


def data_end(con: duckdb.DuckDBPyConnection):
    """The last timestamp in the data (``DATA_END_SQL``), or None without data."""
    return con.execute(DATA_END_SQL).fetchone()[0]


FUNNEL_DOC = {
    "agent_id": "The agent: every agent of the agents file; without an agents file, every person who shared.",
    "upline_id": "Effective upline (recruiter) from graph.agent_upline; NULL for a top agent or without an agents file.",
    "joined_at": "When the agent joined: agents.joined_at, else the agent's first share (see joined_at_source).",
    "joined_at_source": "Where joined_at comes from: agents_file | first_share | first_sale (no join time and no share) ; NULL when unknown.",
    "first_share_at": "First share or re-share the agent made (graph.share_nodes), NULL if none.",
    "first_click_at": "First click by another person on any of the agent's shares, NULL if none.",
    "first_sale_at": "First paid order line credited to the agent (graph.attributed_orders), NULL if none.",
    "days_to_first_share": "Days from joined_at to first_share_at (negative when the agent shared before the recorded join).",
    "days_share_to_click": "Days from first_share_at to first_click_at.",
    "days_click_to_sale": "Days from first_click_at to first_sale_at (a sale may come through a referral link before any click: then negative).",
    "days_to_first_sale": "Days from joined_at to first_sale_at: time to first sale.",
    "shares": "Shares and re-shares made.",
    "clicks_received": "Clicks by other people on the agent's shares.",
    "sales": "Distinct paid orders credited to the agent.",
    "gmv": "Paid GMV credited to the agent, ¥.",
    "active_months": "Calendar months with at least one share or credited paid sale.",
    "last_active_at": "Last share or credited paid sale, NULL if never active.",
    "churned": "No share and no credited sale in the last churn_days (Settings, default 30) days of the data (never active counts as churned).",
    "stage": "Furthest funnel stage reached: joined | shared | clicked | sold.",
}
FUNNEL_TEXT = ("One row per agent: the lifecycle funnel joined -> first share -> first click -> "
               "first credited sale, days between stages, active months and churn "
               "(docs/integrity.md, Agent lifecycle).")

COHORTS_DOC = {
    "cohort_month": "Recruitment cohort: the month the agents joined (marts.agent_funnel.joined_at).",
    "months_since_join": "Months after the joining month (0 = the joining month itself); only months inside the data.",
    "cohort_size": "Agents who joined in cohort_month.",
    "active_agents": "Cohort agents with a share or a credited paid sale in that month.",
    "retention": "active_agents / cohort_size: the share of the cohort still active.",
    "gmv": "Paid GMV credited to cohort agents in that month, ¥.",
    "gmv_per_agent": "gmv / cohort_size, ¥ per recruited agent (inactive ones included).",
}
COHORTS_TEXT = ("One row per (recruitment month, months since joining): the share of the "
                "cohort's agents still active and the GMV per agent (docs/integrity.md).")

UPLINE_DOC = {
    "upline_id": "The recruiter: an agent that is the effective upline of at least min_recruits agents.",
    "recruits": "Direct recruits (agents whose effective upline this is).",
    "activated": "Recruits with at least one credited paid sale, ever.",
    "activation_rate": "activated / recruits.",
    "activation_lower": "Wilson 95% lower bound of activation_rate: ranks small and large recruiters fairly.",
    "retention_eligible": "Recruits whose joining month + retention_month is inside the data.",
    "retained": "Eligible recruits active (share or credited sale) in month retention_month after joining (Settings, default 3).",
    "retention_rate": "retained / retention_eligible (NULL when none is eligible): the 3-month retention.",
    "median_days_to_first_sale": "Median days from joining to first sale over the activated recruits.",
    "recruits_gmv": "Paid GMV credited to the recruits, ¥.",
    "quality_rank": "1 = best recruiter: by activation_lower, then retention_rate, then recruits_gmv, then upline_id.",
}
UPLINE_TEXT = ("One row per upline with at least min_recruits direct recruits: the recruits' "
               "activation (ever sold) and retention, to rank recruiters by (docs/integrity.md).")


def _days(later: str, earlier: str) -> str:
    return f"round(epoch({later} - {earlier}) / 86400.0, 3)"


def build_agent_funnel(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.agent_funnel``; returns its row count. Without an agents file the people
    who shared are the agents (their first share is their join).

    Each source is read once: the agents' share nodes (first and last share, count, months),
    the clicks on their shares (graph.click_edges), and the agents' credited paid lines
    (first and last sale, orders, GMV, months); active months are the distinct months of
    both lists.
    """
    s = settings or Settings()
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    has_file = con.execute("SELECT EXISTS (SELECT 1 FROM graph.agent_upline)").fetchone()[0]
    agents = ("SELECT agent_id, upline_id, joined_at FROM graph.agent_upline" if has_file else
              "SELECT DISTINCT actor_id AS agent_id, NULL::VARCHAR AS upline_id, "
              "NULL::TIMESTAMP AS joined_at FROM graph.share_nodes")
    con.execute(f"""
        CREATE OR REPLACE TABLE {FUNNEL} AS
        -- grain: one row per agent
        WITH agents AS ({agents}),
        sn AS (  -- the agents' shares and re-shares
            SELECT n.actor_id AS agent_id, n.share_id, n.shared_at
            FROM graph.share_nodes n SEMI JOIN agents a ON a.agent_id = n.actor_id
        ),
        sh AS (SELECT agent_id, min(shared_at) AS first_share_at, count(*) AS shares,
                      max(shared_at) AS last_share_at,
                      list(DISTINCT date_trunc('month', shared_at)) AS months
               FROM sn GROUP BY 1),
        ck AS (SELECT c.sharer_id AS agent_id, min(c.first_click_at) AS first_click_at,
                      sum(c.clicks)::BIGINT AS clicks_received
               FROM graph.click_edges c SEMI JOIN agents a ON a.agent_id = c.sharer_id
               GROUP BY 1),
        sl AS (SELECT a.credited_id AS agent_id, min(a.ordered_at) AS first_sale_at,
                      count(DISTINCT a.order_id) AS sales, sum(a.amount) AS gmv,
                      max(a.ordered_at) AS last_sale_at,
                      list(DISTINCT date_trunc('month', a.ordered_at)) AS months
               FROM graph.attributed_orders a SEMI JOIN agents g ON g.agent_id = a.credited_id
               WHERE a.is_paid
               GROUP BY 1),
        j AS (
            SELECT a.agent_id, a.upline_id,
                   coalesce(a.joined_at, sh.first_share_at, sl.first_sale_at) AS joined_at,
                   CASE WHEN a.joined_at IS NOT NULL THEN 'agents_file'
                        WHEN sh.first_share_at IS NOT NULL THEN 'first_share'
                        WHEN sl.first_sale_at IS NOT NULL THEN 'first_sale' END AS joined_at_source,
                   sh.first_share_at, ck.first_click_at, sl.first_sale_at,
                   coalesce(sh.shares, 0) AS shares,
                   coalesce(ck.clicks_received, 0) AS clicks_received,
                   coalesce(sl.sales, 0) AS sales,
                   coalesce(sl.gmv, 0)::DECIMAL(18,2) AS gmv,
                   len(list_distinct(coalesce(sh.months, []) || coalesce(sl.months, [])))
                       AS active_months,
                   greatest(sh.last_share_at, sl.last_sale_at) AS last_active_at
            FROM agents a
            LEFT JOIN sh USING (agent_id) LEFT JOIN ck USING (agent_id)
            LEFT JOIN sl USING (agent_id)
        )
        SELECT agent_id, upline_id, joined_at, joined_at_source, first_share_at,
               first_click_at, first_sale_at,
               {_days('first_share_at', 'joined_at')} AS days_to_first_share,
               {_days('first_click_at', 'first_share_at')} AS days_share_to_click,
               {_days('first_sale_at', 'first_click_at')} AS days_click_to_sale,
               {_days('first_sale_at', 'joined_at')} AS days_to_first_sale,
               shares, clicks_received, sales, gmv, active_months, last_active_at,
               coalesce(last_active_at < $end::TIMESTAMP - INTERVAL {int(s.churn_days)} DAY, true)
                   AS churned,
               CASE WHEN first_sale_at IS NOT NULL THEN 'sold'
                    WHEN first_click_at IS NOT NULL THEN 'clicked'
                    WHEN first_share_at IS NOT NULL THEN 'shared'
                    ELSE 'joined' END AS stage
        FROM j""", {"end": data_end(con)})
    return finish_table(con, FUNNEL, FUNNEL_TEXT, FUNNEL_DOC)


def build_agent_cohorts(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.agent_cohorts`` from marts.agent_funnel; returns its row count. Every
    observable (cohort, month) cell is a row, also when nobody was active (retention 0)."""
    del settings
    con.execute(f"""
        CREATE OR REPLACE TABLE {COHORTS} AS
        -- grain: one row per (cohort_month, months_since_join)
        WITH cohort AS (
            SELECT agent_id, date_trunc('month', joined_at)::DATE AS cohort_month
            FROM marts.agent_funnel WHERE joined_at IS NOT NULL
        ),
        size AS (SELECT cohort_month, count(*) AS cohort_size FROM cohort GROUP BY 1),
        grid AS (
            SELECT cohort_month, cohort_size, unnest(range(0, greatest(
                       date_diff('month', cohort_month, date_trunc('month', $end::TIMESTAMP)::DATE) + 1,
                       1))) AS months_since_join
            FROM size
        ),
        cell AS (  -- an agent is active in a month once (one row of AGENT_MONTHS_SQL)
            SELECT c.cohort_month, date_diff('month', c.cohort_month, x.m) AS k,
                   count(*) AS active_agents, sum(x.gmv) AS gmv
            FROM ({AGENT_MONTHS_SQL}) x JOIN cohort c USING (agent_id)
            WHERE x.m >= c.cohort_month
            GROUP BY 1, 2
        )
        SELECT g.cohort_month, g.months_since_join::INTEGER AS months_since_join, g.cohort_size,
               coalesce(cell.active_agents, 0) AS active_agents,
               coalesce(cell.active_agents, 0) / g.cohort_size AS retention,
               coalesce(cell.gmv, 0)::DECIMAL(18,2) AS gmv,
               round(coalesce(cell.gmv, 0) / g.cohort_size, 2)::DECIMAL(18,2) AS gmv_per_agent
        FROM grid g
        LEFT JOIN cell ON cell.cohort_month = g.cohort_month AND cell.k = g.months_since_join""",
                {"end": data_end(con)})
    return finish_table(con, COHORTS, COHORTS_TEXT, COHORTS_DOC)


def build_upline_quality(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.upline_quality`` from marts.agent_funnel; returns its row count."""
    s = settings or Settings()
    z, month = _Z95, int(s.retention_month)
    con.execute(f"""
        CREATE OR REPLACE TABLE {UPLINE_QUALITY} AS
        -- grain: one row per upline with at least min_recruits direct recruits
        WITH r AS (
            SELECT agent_id, upline_id, first_sale_at, days_to_first_sale, gmv,
                   date_trunc('month', joined_at)::DATE AS cohort_month
            FROM marts.agent_funnel WHERE upline_id IS NOT NULL
        ),
        big AS (SELECT upline_id FROM r GROUP BY 1 HAVING count(*) >= {int(s.min_recruits)}),
        ret AS (  -- recruits active in month `month` after their joining month
            SELECT DISTINCT x.agent_id
            FROM ({ACTS_SQL}) x JOIN r USING (agent_id)
            WHERE r.upline_id IN (SELECT upline_id FROM big)
              AND date_diff('month', r.cohort_month, date_trunc('month', x.act_at)::DATE) = {month}
        ),
        q AS (
            SELECT r.upline_id, count(*) AS recruits,
                   count(r.first_sale_at) AS activated,
                   count(*) FILTER (WHERE date_diff('month', r.cohort_month,
                        date_trunc('month', $end::TIMESTAMP)::DATE) >= {month}) AS retention_eligible,
                   count(ret.agent_id) FILTER (WHERE date_diff('month', r.cohort_month,
                        date_trunc('month', $end::TIMESTAMP)::DATE) >= {month}) AS retained,
                   median(r.days_to_first_sale) FILTER (WHERE r.first_sale_at IS NOT NULL)
                       AS median_days_to_first_sale,
                   sum(r.gmv)::DECIMAL(18,2) AS recruits_gmv
            FROM r LEFT JOIN ret USING (agent_id)
            WHERE r.upline_id IN (SELECT upline_id FROM big)
            GROUP BY 1
        ),
        w AS (
            SELECT *, activated / recruits AS activation_rate,
                   (activated / recruits + {z}^2 / (2 * recruits)
                    - {z} * sqrt(activated / recruits * (1 - activated / recruits) / recruits
                                 + {z}^2 / (4 * recruits^2)))
                   / (1 + {z}^2 / recruits) AS activation_lower,
                   CASE WHEN retention_eligible > 0 THEN retained / retention_eligible END
                       AS retention_rate
            FROM q
        )
        SELECT upline_id, recruits, activated, activation_rate,
               greatest(activation_lower, 0) AS activation_lower,
               retention_eligible, retained, retention_rate, median_days_to_first_sale,
               recruits_gmv,
               row_number() OVER (ORDER BY activation_lower DESC, retention_rate DESC NULLS LAST,
                                  recruits_gmv DESC, upline_id) AS quality_rank
        FROM w""", {"end": data_end(con)})
    return finish_table(con, UPLINE_QUALITY, UPLINE_TEXT, UPLINE_DOC)


def check_funnel_order(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """Funnel stages are nested: a click needs a share; active months are not negative."""
    bad = con.execute(f"""SELECT count(*) FROM {FUNNEL}
        WHERE (first_click_at IS NOT NULL AND first_share_at IS NULL)
           OR active_months < 0""").fetchall()[0][0]
    return bad == 0, f"{bad} funnel rows out of stage order"


def check_cohort_bounds(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """Cohort retention is in [0, 1]: active agents never exceed the cohort."""
    bad = con.execute(f"""SELECT count(*) FROM {COHORTS}
        WHERE retention < 0 OR retention > 1 OR active_agents > cohort_size""").fetchall()[0][0]
    return bad == 0, f"{bad} cohort cells with retention outside [0, 1]"
