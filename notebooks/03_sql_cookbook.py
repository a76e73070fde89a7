# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · SQL cookbook (SQL 查询手册)
#
# **Purpose.** Ready-to-adapt DuckDB SQL for the questions analysts are asked most, run
# against the *published* warehouse (read-only). Each recipe is one commented query, run and
# displayed as a polars frame; copy the SQL into `sharegraph sql "..."`, the DuckDB CLI
# (`duckdb -readonly state/sharegraph.duckdb`) or your BI tool unchanged.
#
# | # | question | reads |
# |---|---|---|
# | 1 | Paid GMV by channel by month | graph.attributed_orders |
# | 2 | Quarantine: why rows were rejected, and does every batch reconcile? | quarantine.* |
# | 3 | Top agents per circle (community) | marts.agent_influence |
# | 4 | Commission ROI ranking | marts.agent_influence |
# | 5 | Cascades that converted best | marts.cascades |
# | 6 | K-factor trend by weekly cohort | marts.kfactor |
# | 7 | Group-buy fill by target size | marts.group_buys |
# | 8 | Repeat customers' channel migration | marts.channel_migration |
# | 9 | New customers acquired by agent | graph.attributed_orders, graph.agent_upline |
# | 10 | Concentration per merchant (KOL- vs peer-driven) | marts.concentration |
# | 11 | Lineage: a mart number back to its source file and row | marts → staging → batches |
# | 12 | Refund and cancellation rate by category | graph.attributed_orders |
# | 13 | Graph anomalies the pipeline fixed | graph.anomalies |
#
# Conventions (docs/data-contract.md, docs/influence.md): money is ¥ (DECIMAL(18,2));
# timestamps are naive local wall time in the configured zone (default Asia/Shanghai);
# **paid GMV** = `SUM(amount) WHERE is_paid`, **attributed GMV** = paid GMV with
# `credited_id IS NOT NULL`. Every table and column has a `COMMENT ON`:
# `SELECT * FROM duckdb_columns() WHERE schema_name = 'marts'` lists them.
#
# **How to open.** It is a jupytext percent script:
# - as a notebook: `jupytext --to notebook notebooks/03_sql_cookbook.py`, then open it;
# - as a script: `SHAREGRAPH_WAREHOUSE=state/sharegraph.duckdb
#   .venv/bin/python notebooks/03_sql_cookbook.py`.
#
# The warehouse path comes from `SHAREGRAPH_WAREHOUSE` (default `state/sharegraph.duckdb`).
# Each recipe ends with an `assert` tying its answer to an independent number, so executing
# the notebook is a test.

# %%
import polars as pl

from sharegraph.notebook import open_published

pl.Config.set_tbl_rows(20)
pl.Config.set_tbl_cols(14)
pl.Config.set_tbl_width_chars(170)
pl.Config.set_fmt_str_lengths(70)

# The published warehouse, read-only (SHAREGRAPH_WAREHOUSE, default state/sharegraph.duckdb),
# and the run's Settings.
WAREHOUSE, settings, con = open_published()


def run(sql: str, params: list | None = None, show: int = 20) -> pl.DataFrame:
    """Run one recipe, print its first rows and return it as a polars frame (via Arrow)."""
    df = con.sql(sql, params=params).pl()
    print(df.head(show))
    return df


def scalar(sql: str, params: list | None = None):
    """The single value of a one-row, one-column query."""
    return con.execute(sql, params or []).fetchall()[0][0]


PAID_GMV = float(scalar("SELECT sum(amount) FROM graph.attributed_orders WHERE is_paid"))
ATTRIBUTED_GMV = float(scalar("SELECT sum(amount) FROM graph.attributed_orders "
                              "WHERE is_paid AND credited_id IS NOT NULL"))
print(f"paid GMV ¥{PAID_GMV:,.2f}; attributed GMV ¥{ATTRIBUTED_GMV:,.2f}")

# %% [markdown]
# ## 1. Paid GMV by channel by month
# One row per month × channel. Month is the local calendar month of `ordered_at`.
# Refunded and cancelled lines are not GMV.

# %%
gmv_by_channel = run(
    """
    -- one row per (month, channel); paid lines only
    WITH m AS (
        SELECT date_trunc('month', ordered_at)::DATE AS month,
               channel,
               count(DISTINCT order_id)                            AS paid_orders,
               sum(amount)                                         AS paid_gmv_yuan,
               sum(amount) FILTER (WHERE credited_id IS NOT NULL)  AS attributed_gmv_yuan
        FROM graph.attributed_orders
        WHERE is_paid
        GROUP BY ALL)
    SELECT *, round(100 * paid_gmv_yuan / sum(paid_gmv_yuan) OVER (PARTITION BY month), 1)
              AS pct_of_month
    FROM m
    ORDER BY month, paid_gmv_yuan DESC
    """
)
# the same as a month × channel matrix (¥)
print(gmv_by_channel.pivot(on="channel", index="month", values="paid_gmv_yuan", sort_columns=True)
      .sort("month"))
assert abs(float(gmv_by_channel["paid_gmv_yuan"].sum()) - PAID_GMV) < 0.01

# %% [markdown]
# ## 2. Quarantine: rejection reasons and batch reconciliation
# Rows that broke a contract rule are kept in `quarantine.rejected_rows` (file, row, column,
# rule, raw value); warnings that still load are in `quarantine.flagged_rows`. Every batch
# must reconcile: `rows_read = rows_loaded + rows_quarantined + rows_already_loaded`, the
# batch's rows in staging = `rows_loaded`, its distinct rejected source rows =
# `rows_quarantined` (docs/ingest.md).

# %%
reasons = run(
    """
    -- one row per (table, rule, column): what was rejected and an example value
    SELECT table_name, rule, column_name,
           count(DISTINCT (source_file, source_row)) AS rows_rejected,
           count(*)                                  AS violations,
           any_value(raw_value)                      AS example_value
    FROM quarantine.rejected_rows
    GROUP BY ALL
    UNION ALL
    -- warnings: loaded, but flagged for a look
    SELECT table_name, 'warning: ' || rule, column_name,
           count(DISTINCT (source_file, source_row)), count(*), any_value(raw_value)
    FROM quarantine.flagged_rows
    GROUP BY ALL
    ORDER BY rows_rejected DESC, table_name, rule
    """
)
if reasons.is_empty():
    print("nothing rejected or flagged in this warehouse")

# %%
reconciliation = run(
    """
    -- one row per batch: the three-way reconciliation, recomputed from the rows themselves
    WITH staged AS (
        SELECT batch_id, count(*) AS n FROM (
            SELECT batch_id FROM staging.orders       UNION ALL
            SELECT batch_id FROM staging.share_events UNION ALL
            SELECT batch_id FROM staging.products     UNION ALL
            SELECT batch_id FROM staging.agents       UNION ALL
            SELECT batch_id FROM staging.group_buys)
        GROUP BY batch_id),
    rejected AS (
        SELECT batch_id, count(DISTINCT source_row) AS n
        FROM quarantine.rejected_rows GROUP BY batch_id)
    SELECT b.table_name, b.source_file, b.rows_read, b.rows_loaded, b.rows_quarantined,
           b.rows_already_loaded,
           coalesce(s.n, 0) AS rows_in_staging,
           coalesce(r.n, 0) AS rows_in_quarantine,
           b.rows_read = b.rows_loaded + b.rows_quarantined + b.rows_already_loaded
             AND coalesce(s.n, 0) = b.rows_loaded
             AND coalesce(r.n, 0) = b.rows_quarantined AS reconciles
    FROM quarantine.batches b
    LEFT JOIN staged s USING (batch_id)
    LEFT JOIN rejected r USING (batch_id)
    ORDER BY b.started_at
    """
)
assert reconciliation.height > 0 and reconciliation["reconciles"].all()
assert int(reconciliation["rows_quarantined"].sum()) == int(scalar(
    "SELECT count(*) FROM (SELECT DISTINCT batch_id, source_row FROM quarantine.rejected_rows)"))

# %% [markdown]
# ## 3. Top agents per circle
# Circles are communities of the undirected attribution + upline graph (`circle_id`, named by
# its smallest member). `circle_rank` ranks people by PageRank within their circle.
# `QUALIFY` filters on a window function without a subquery.

# %%
per_circle = run(
    """
    -- one row per (circle, top-3 person) for the 8 largest circles
    WITH big AS (
        SELECT DISTINCT circle_id, circle_size FROM marts.agent_influence
        WHERE circle_id IS NOT NULL
        ORDER BY circle_size DESC, circle_id LIMIT 8)
    SELECT a.circle_id, a.circle_size, a.circle_rank, a.person_id, a.role,
           a.direct_gmv, round(a.downstream_gmv, 2) AS downstream_gmv,
           round(a.pagerank, 5) AS pagerank
    FROM marts.agent_influence a JOIN big USING (circle_id)
    QUALIFY row_number() OVER (PARTITION BY a.circle_id ORDER BY a.circle_rank) <= 3
    ORDER BY a.circle_size DESC, a.circle_id, a.circle_rank
    """,
    show=24,
)
# circle_rank 1 is the highest PageRank in the circle
leaders = per_circle.filter(pl.col("circle_rank") == 1)
assert leaders.height == per_circle["circle_id"].n_unique()
assert (per_circle.group_by("circle_id").agg(ok=pl.col("pagerank").is_sorted(descending=True))
        ["ok"].all())

# %% [markdown]
# ## 4. Commission ROI ranking
# `roi` = direct GMV / (commission + red packets) — ¥ of credited GMV per ¥ paid to the
# person; `network_roi` includes the downline's GMV and cost, undecayed. A minimum cost keeps
# tiny denominators out of the top.

# %%
roi = run(
    """
    -- one row per agent with at least ¥100 of cost, best network ROI first
    SELECT person_id, agent_level, direct_gmv, cost_yuan,
           round(roi, 2) AS roi, round(network_roi, 2) AS network_roi,
           downstream_reach, new_customers,
           ntile(4) OVER (ORDER BY network_roi) AS network_roi_quartile
    FROM marts.agent_influence
    WHERE is_agent AND cost_yuan >= 100
    ORDER BY network_roi DESC NULLS LAST, person_id
    """,
    show=12,
)
# roi is direct_gmv / cost by definition
assert ((roi["roi"] - (roi["direct_gmv"].cast(pl.Float64) / roi["cost_yuan"].cast(pl.Float64))
         .round(2)).abs() <= 0.011).all()
cost_total = float(scalar("SELECT sum(commission_yuan + red_packet_yuan) "
                          "FROM graph.attributed_orders WHERE credited_id IS NOT NULL"))
cost_mart = float(scalar("SELECT sum(cost_yuan) FROM marts.agent_influence"))
print(f"cost of credited lines ¥{cost_total:,.2f}; cost in agent_influence ¥{cost_mart:,.2f}")
assert abs(cost_total - cost_mart) < 0.01

# %% [markdown]
# ## 5. Cascades that converted best
# Conversion = paid orders attributed to the cascade's shares / clicks on them. Only
# cascades with enough clicks to mean something (≥ 30).

# %%
best_cascades = run(
    """
    -- one row per cascade with >= 30 clicks, best click-to-order conversion first
    SELECT root_share_id, root_actor_id, category, channel, size, depth,
           round(structural_virality, 2) AS virality, clicks, orders, buyers, gmv,
           round(orders / clicks, 3) AS orders_per_click,
           round(gmv / clicks, 2)    AS gmv_per_click_yuan
    FROM marts.cascades
    WHERE clicks >= 30
    ORDER BY orders_per_click DESC, gmv DESC, root_share_id
    LIMIT 15
    """
)
# cascade GMV never exceeds attributed GMV in total
assert float(scalar("SELECT sum(gmv) FROM marts.cascades")) <= ATTRIBUTED_GMV + 0.01
# do viral (deep) cascades convert better than broadcast ones? by depth bucket
run(
    """
    SELECT CASE WHEN depth = 0 THEN '0 (lone share)' WHEN depth <= 2 THEN '1-2'
                WHEN depth <= 5 THEN '3-5' ELSE '6+' END AS depth_bucket,
           count(*) AS cascades, sum(clicks) AS clicks, sum(orders) AS orders,
           round(sum(orders) / nullif(sum(clicks), 0), 3) AS orders_per_click,
           sum(gmv) AS gmv
    FROM marts.cascades GROUP BY 1 ORDER BY 1
    """
)

# %% [markdown]
# ## 6. K-factor trend
# K = new customers acquired by a weekly cohort / cohort size. Recent cohorts are
# right-censored (less time to invite), so compare `k_factor_30d` over cohorts observed for
# at least 30 days.

# %%
kfactor = run(
    """
    -- one row per weekly cohort observed >= 30 days, with a 4-week moving average
    SELECT cohort_week, cohort_size, sharers, invitations, new_customers_acquired_30d,
           round(k_factor_30d, 3) AS k_30d,
           round(avg(k_factor_30d) OVER (ORDER BY cohort_week ROWS 3 PRECEDING), 3) AS k_30d_ma4,
           round(conversion, 3) AS conversion
    FROM marts.kfactor
    WHERE scope = 'week' AND observed_days >= 30
    ORDER BY cohort_week
    """,
    show=50,
)
overall = con.sql("SELECT cohort_size, new_customers_acquired, k_factor FROM marts.kfactor "
                  "WHERE scope = 'overall'").pl().row(0, named=True)
print(f"overall K = {overall['k_factor']:.3f}")
# cohorts partition the customers; K is the ratio of the totals
weeks = con.sql("SELECT sum(cohort_size) AS n, sum(new_customers_acquired) AS acq "
                "FROM marts.kfactor WHERE scope = 'week'").pl().row(0, named=True)
assert weeks["n"] == overall["cohort_size"]
assert abs(overall["k_factor"] - overall["new_customers_acquired"] / overall["cohort_size"]) < 1e-12

# %% [markdown]
# ## 7. Group-buy fill by target size
# Do bigger groups (拼团) fail more? `fill_rate` = min(members / target_size, 1);
# success rate over decided groups (filled or failed).

# %%
group_fill = run(
    """
    -- one row per target size
    SELECT target_size,
           count(*)                                   AS groups,
           count(*) FILTER (WHERE status = 'filled')  AS filled,
           count(*) FILTER (WHERE status = 'failed')  AS failed,
           round(count(*) FILTER (WHERE status = 'filled')
                 / nullif(count(*) FILTER (WHERE status IN ('filled', 'failed')), 0), 3)
                                                      AS success_rate,
           round(avg(fill_rate), 3)                   AS mean_fill_rate,
           round(median(time_to_fill_hours), 1)       AS median_hours_to_fill,
           round(sum(fission_members) / nullif(sum(members), 0), 3) AS fission_rate,
           sum(paid_gmv)                              AS paid_gmv
    FROM marts.group_buys
    GROUP BY target_size ORDER BY target_size
    """
)
n_groups = int(scalar("SELECT count(*) FROM staging.group_buys"))
assert int(group_fill["groups"].sum()) == n_groups
assert group_fill.is_empty() or float(group_fill["mean_fill_rate"].max()) <= 1.0

# %% [markdown]
# ## 8. Repeat customers' channel migration
# Repeat orders (after a customer's first paid order) split between social channels
# (wechat, wechat_group, moments, miniprogram, group_buy) and platforms (taobao, tmall, jd,
# pinduoduo): are repeat buyers moving into private traffic (私域)?

# %%
migration = run(
    """
    -- one row per month
    SELECT month, repeat_customers, repeat_orders, social_orders, platform_orders,
           round(social_order_share, 3) AS social_order_share,
           repeat_gmv, round(social_gmv_share, 3) AS social_gmv_share,
           round(social_order_share - lag(social_order_share) OVER (ORDER BY month), 3)
               AS change_vs_last_month
    FROM marts.channel_migration ORDER BY month
    """
)
# an order with lines on both kinds of channel counts in both
assert (migration["social_orders"] + migration["platform_orders"]
        >= migration["repeat_orders"]).all()

# %% [markdown]
# ## 9. New customers acquired by agent
# A customer is *acquired* by whoever is credited for their first paid order line
# (`is_first_order`). Here per agent, with the agent's upline, from the order lines.

# %%
acquired = run(
    """
    -- one row per agent who acquired at least one customer
    SELECT o.credited_id AS agent_id, u.level, u.upline_id,
           count(*)                        AS new_customers,
           sum(o.amount)                   AS first_order_gmv_yuan,
           min(o.ordered_at)::DATE         AS first_acquired,
           max(o.ordered_at)::DATE         AS last_acquired,
           mode(o.channel)                 AS main_channel
    FROM graph.attributed_orders o
    JOIN graph.agent_upline u ON u.agent_id = o.credited_id
    WHERE o.is_first_order AND o.credited_id IS NOT NULL
    GROUP BY ALL
    ORDER BY new_customers DESC, agent_id
    """,
    show=10,
)
# the same count as marts.agent_influence.new_customers
check = acquired.join(con.sql("SELECT person_id AS agent_id, new_customers AS mart "
                              "FROM marts.agent_influence").pl(), on="agent_id")
assert check.height == acquired.height and (check["new_customers"] == check["mart"]).all()

# %% [markdown]
# ## 10. Concentration per merchant
# Gini and top-1% share of attributed GMV across credited people: is a merchant's social
# GMV carried by a few KOLs (label KOL-driven / KOL驱动) or by many peers (素人驱动)?

# %%
concentration = run(
    """
    -- one row per scope: the overall row first, then merchants by Gini
    SELECT coalesce(merchant_id, '(all)') AS merchant, credited_people, attributed_gmv,
           round(gini, 3) AS gini, round(top1_share, 3) AS top1_share,
           round(top10_share, 3) AS top10_share, top_person_id, label, label_zh
    FROM marts.concentration
    ORDER BY scope = 'merchant', gini DESC
    """
)
overall_gmv = concentration.filter(pl.col("merchant") == "(all)")["attributed_gmv"][0]
assert abs(float(overall_gmv) - ATTRIBUTED_GMV) < 0.01
assert ((concentration["gini"] >= 0) & (concentration["gini"] < 1)).all()

# %% [markdown]
# ## 11. Lineage: from a mart number back to the source file and row
# The best-converting cascade of recipe 5: which order lines make its GMV, and where did each
# come from? `graph.attributed_orders` (mart input) → `staging.orders` (lineage columns
# `source_file`, `source_row`, `batch_id`) → `quarantine.batches` (file hash, load time).

# %%
root = best_cascades["root_share_id"][0] if best_cascades.height else scalar(
    "SELECT root_share_id FROM marts.cascades ORDER BY gmv DESC LIMIT 1")
lineage = run(
    """
    -- one row per paid, attributed order line whose resolved share is in cascade $1
    SELECT a.order_id, a.line_no, a.customer_id, a.credited_id, a.rule, a.amount,
           s.depth AS share_depth,
           o.source_file, o.source_row, o.batch_id, o.loaded_at,
           left(b.file_sha256, 12) AS file_sha256
    FROM graph.attributed_orders a
    JOIN graph.share_nodes s ON s.share_id = a.share_id
    JOIN staging.orders o ON o.order_id = a.order_id AND o.line_no = a.line_no
    JOIN quarantine.batches b ON b.batch_id = o.batch_id
    WHERE s.root_share_id = $1 AND a.is_paid AND a.credited_id IS NOT NULL
    ORDER BY o.source_row
    """,
    [root],
    show=10,
)
mart_row = con.sql("SELECT orders, gmv FROM marts.cascades WHERE root_share_id = $1",
                   params=[root]).pl().row(0, named=True)
print(f"cascade {root}: mart says {mart_row['orders']} orders, ¥{mart_row['gmv']}; "
      f"lineage finds {lineage['order_id'].n_unique()} orders, ¥{lineage['amount'].sum()}")
assert lineage["order_id"].n_unique() == mart_row["orders"]
assert lineage["amount"].sum() == mart_row["gmv"]
# every staged row points at a batch that loaded it
assert int(scalar("SELECT count(*) FROM staging.orders o ANTI JOIN quarantine.batches b "
                  "USING (batch_id)")) == 0

# %% [markdown]
# ## 12. Refund and cancellation rate by category
# Share of order lines (and of ordered value) that were refunded or cancelled.

# %%
refunds = run(
    """
    -- one row per category
    SELECT category,
           count(*) AS lines,
           round(avg((status = 'refunded')::INT), 3)  AS refund_rate,
           round(avg((status = 'cancelled')::INT), 3) AS cancel_rate,
           sum(amount) FILTER (WHERE status = 'refunded') AS refunded_yuan,
           round(sum(amount) FILTER (WHERE NOT is_paid) / sum(amount), 3) AS unpaid_value_share
    FROM graph.attributed_orders
    GROUP BY category
    ORDER BY refund_rate DESC, category
    """,
    show=10,
)
assert int(refunds["lines"].sum()) == int(scalar("SELECT count(*) FROM staging.orders"))

# %% [markdown]
# ## 13. Graph anomalies the pipeline fixed
# Self-referrals (no credit), cycles (cut at the smallest id), dangling references (made
# roots). Never fatal; listed so nobody is surprised by a missing credit.

# %%
anomalies = run(
    """
    SELECT kind, entity, count(*) AS n, any_value(detail) AS example
    FROM graph.anomalies GROUP BY ALL ORDER BY n DESC, kind
    """
)
self_ref = int(scalar("SELECT count(*) FROM graph.anomalies WHERE kind = 'self_referral'"))
credited_self = int(scalar("SELECT count(*) FROM graph.attributed_orders "
                           "WHERE credited_id = customer_id"))
assert credited_self == 0  # a self-referral never earns credit
print(f"{self_ref} self-referral orders flagged; none credited to the buyer")

# %%
con.close()
