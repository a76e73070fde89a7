"""Referral integrity: which commissions and red packets are being farmed (docs/integrity.md).

``marts.integrity_flags`` has one row per (person, rule) with the evidence in English and
Chinese, the orders involved and the ¥ of commission and red packets paid on the flagged
activity. Rules (thresholds in :class:`~sharegraph.core.config.Settings`):

* ``self_referral`` — own paid orders with oneself as referrer or through one's own share;
* ``referral_ring`` — people who credit each other in a cycle of strong ties;
* ``refund_abuse`` — credited orders refunded far more often than the merchants' base rate
  (one-sided binomial test, Benjamini-Hochberg), and faster when refund times are known;
* ``click_burst`` — a share whose clicks arrive in a burst implausible for the sharer's
  history, with almost no orders (red-packet farming).

Everything is set-based SQL over ``graph.*`` and ``staging.*``; only the ring search (SciPy
strongly connected components, as ``graph.anomalies`` uses) and the binomial tail (SciPy)
run on NumPy arrays of per-person counts.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import finish_table
from sharegraph.metrics.affinity import bh_qvalues, binom_pvalue

TABLE = "marts.integrity_flags"
RULES = ("self_referral", "referral_ring", "refund_abuse", "click_burst")

DOC = {
    "person_id": "The flagged person (agent, sharer or customer).",
    "rule": "self_referral | referral_ring | refund_abuse | click_burst (docs/integrity.md).",
    "is_agent": "The person is in the agents file (graph.agent_upline).",
    "orders_involved": "Distinct orders of the flagged activity: own orders (self_referral), orders between ring members credited to or bought by the person (referral_ring), refunded credited orders (refund_abuse), paid orders through the burst shares (click_burst).",
    "amount_at_risk": "¥ of commission and red packets paid on the flagged activity: as exported (orders.commission, orders.red_packet), else estimated at commission_rate and red_packet_yuan (a refunded line keeps the estimate of what was paid before the refund).",
    "evidence": "The finding with its numbers, in English (no person ids).",
    "evidence_zh": "The finding with its numbers, in Chinese.",
    "ring_id": "referral_ring: the ring, named by its smallest member's id; NULL for other rules.",
    "ring_size": "referral_ring: people in the ring; NULL for other rules.",
    "q_value": "refund_abuse: Benjamini-Hochberg q-value of the one-sided binomial test; NULL for other rules.",
}
TEXT = ("One row per (person, integrity rule) that fired: self-referral, referral rings, refund "
        "abuse, click bursts, with evidence (en, zh), orders involved and ¥ of commission and red "
        "packets at risk. A review queue, not a verdict (docs/integrity.md).")


def _money(expr: str) -> str:
    """SQL text of a ¥ amount with thousands separators, e.g. ¥1,234.50."""
    return f"'¥' || format('{{:,.2f}}', ({expr})::DOUBLE)"


PAID_LINES_SQL = """
    SELECT order_id, line_no, customer_id, share_id, credited_id, amount,
           commission_yuan + red_packet_yuan AS payout
    FROM graph.attributed_orders WHERE is_paid"""
"""SQL of the paid order lines and the payout on each (commission + red packet, as attributed):
the claimant of a paid line is its credited person. Read where needed, never materialized."""


def _stage_lines(con: duckdb.DuckDBPyConnection, s: Settings) -> None:
    """Temp ``_ig_refunded``: one row per refunded order line with who claims it and what was
    paid on it; temp ``_ig_self``: the self-referral lines (graph.anomalies).

    The claimant is whom the source system pays: the credited person of a paid line
    (``PAID_LINES_SQL``), else (a refunded line) the resolved sharer or the referrer. Only
    refunded and self-referral lines, a few percent, are matched back to staging.orders for
    the referrer and the exported money (both sides filtered on the status first), so no
    full join of the order table is needed and the paid lines are never copied.
    """
    rate, packet = float(s.commission_rate), float(s.red_packet_yuan)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ig_refunded AS
        -- grain: one row per refunded order line
        SELECT a.order_id, a.line_no, a.customer_id, a.merchant_id, a.ordered_at,
               coalesce(a.sharer_id, CASE WHEN o.referrer_id <> a.customer_id THEN o.referrer_id END)
                   AS claimant,
               o.group_id IN (SELECT group_id FROM staging.group_buys WHERE status = 'failed')
                   AS failed_group,
               coalesce(o.commission, round(a.amount * {rate!r}, 2))
               + coalesce(o.red_packet, CASE WHEN a.share_id IS NOT NULL AND a.line_no = 1
                                             THEN {packet!r} ELSE 0 END) AS payout
        FROM graph.attributed_orders a
        JOIN staging.orders o ON o.order_id = a.order_id AND coalesce(o.line_no, 1) = a.line_no
        WHERE a.status = 'refunded'
          AND o.status = 'refunded'  -- the same line: attributed status = coalesce(o.status, 'paid')""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ig_self AS
        -- grain: one row per paid line of an order flagged self_referral in graph.anomalies
        SELECT o.order_id, o.customer_id, o.amount,
               o.referrer_id = o.customer_id AS own_referrer,
               coalesce(o.referrer_id <> o.customer_id, true) AS own_share,
               coalesce(o.commission, round(o.amount * {rate!r}, 2))
               + coalesce(o.red_packet, CASE WHEN coalesce(o.referrer_id <> o.customer_id, true)
                                                  AND coalesce(o.line_no, 1) = 1
                                             THEN {packet!r} ELSE 0 END) AS payout
        FROM staging.orders o
        WHERE o.order_id IN (SELECT id FROM graph.anomalies WHERE kind = 'self_referral')
          AND coalesce(o.status, 'paid') = 'paid'""")


def _self_referral(s: Settings) -> str:
    return f"""
        SELECT customer_id AS person_id, 'self_referral' AS rule,
               count(DISTINCT order_id) AS orders_involved, sum(payout) AS amount_at_risk,
               count(DISTINCT order_id) || ' own paid orders (' || {_money('sum(amount)')}
                 || ') credited to themselves: ' || count(DISTINCT order_id) FILTER (own_referrer)
                 || ' with themselves as referrer, '
                 || count(DISTINCT order_id) FILTER (own_share)
                 || ' through their own share link' AS evidence,
               '本人已付款订单 ' || count(DISTINCT order_id) || ' 笔（' || {_money('sum(amount)')}
                 || '）记在自己名下：推荐人是自己 ' || count(DISTINCT order_id) FILTER (own_referrer)
                 || ' 笔，通过自己的分享链接 '
                 || count(DISTINCT order_id) FILTER (own_share)
                 || ' 笔' AS evidence_zh,
               NULL::VARCHAR AS ring_id, NULL::INTEGER AS ring_size, NULL::DOUBLE AS q_value
        FROM _ig_self
        GROUP BY customer_id
        HAVING count(DISTINCT order_id) >= {int(s.self_referral_min_orders)}"""


def _rings(con: duckdb.DuckDBPyConnection, s: Settings) -> None:
    """Temp ``_ig_ring(person_id, ring_id, ring_size)``: strongly connected groups of 2 ..
    ring_max_size people in the graph of strong ties (credited person -> buyer with at least
    ring_min_edge_orders paid orders). Without the tie threshold a real export is one giant
    component: friends buy from each other (2,476 people on the small demo world)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ig_edges AS
        SELECT sharer_id AS src, buyer_id AS dst FROM graph.referral_edges
        WHERE sharer_id <> buyer_id
        GROUP BY ALL HAVING sum(orders) >= {int(s.ring_min_edge_orders)}""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ig_ids AS
        SELECT id, (row_number() OVER () - 1)::BIGINT AS i
        FROM (SELECT src AS id FROM _ig_edges UNION SELECT dst FROM _ig_edges)""")
    e = con.execute("""SELECT a.i AS s, b.i AS d FROM _ig_edges
                       JOIN _ig_ids a ON a.id = src JOIN _ig_ids b ON b.id = dst""").fetchnumpy()
    n = int(con.execute("SELECT count(*) FROM _ig_ids").fetchall()[0][0])
    member = comp = np.zeros(0, dtype=np.int64)
    if n:
        src, dst = e["s"].astype(np.int64), e["d"].astype(np.int64)
        m = coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n)).tocsr()
        _, c = connected_components(m, directed=True, connection="strong")
        size = np.bincount(c)
        member = np.flatnonzero((size[c] >= 2) & (size[c] <= int(s.ring_max_size)))
        comp = c[member].astype(np.int64)
    con.register("_ig_members", pl.DataFrame({"i": member.astype(np.int64), "comp": comp}))
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ig_ring AS
        SELECT ids.id AS person_id, min(ids.id) OVER (PARTITION BY r.comp) AS ring_id,
               count(*) OVER (PARTITION BY r.comp)::INTEGER AS ring_size
        FROM _ig_members r JOIN _ig_ids ids ON ids.i = r.i""")
    con.unregister("_ig_members")


def _referral_ring() -> str:
    mine = "FILTER (WHERE side = 'credited')"
    return f"""
        WITH ring_lines AS (  -- paid lines between two members of the same ring (equi-joins only)
            SELECT l.order_id, l.amount, l.payout, c.person_id AS credited, b.person_id AS buyer
            FROM ({PAID_LINES_SQL}) l
            JOIN _ig_ring c ON c.person_id = l.credited_id
            JOIN _ig_ring b ON b.person_id = l.customer_id AND b.ring_id = c.ring_id
        ),
        sides AS (
            SELECT credited AS person_id, 'credited' AS side, order_id, amount, payout FROM ring_lines
            UNION ALL
            SELECT buyer, 'bought', order_id, amount, 0 FROM ring_lines
        )
        SELECT x.person_id, 'referral_ring' AS rule,
               count(DISTINCT x.order_id) AS orders_involved,
               coalesce(sum(x.payout) {mine}, 0) AS amount_at_risk,
               'ring of ' || any_value(g.ring_size) || ' people crediting each other in a cycle: '
                 || count(DISTINCT x.order_id) {mine}
                 || ' orders from ring members credited to this person ('
                 || {_money(f"coalesce(sum(x.amount) {mine}, 0)")}
                 || '), ' || count(DISTINCT x.order_id) FILTER (WHERE side = 'bought')
                 || ' bought from ring members' AS evidence,
               any_value(g.ring_size) || ' 人互相推荐形成闭环：来自圈内成员、记在此人名下的订单 '
                 || count(DISTINCT x.order_id) {mine} || ' 笔（'
                 || {_money(f"coalesce(sum(x.amount) {mine}, 0)")}
                 || '），向圈内成员购买 '
                 || count(DISTINCT x.order_id) FILTER (WHERE side = 'bought') || ' 笔' AS evidence_zh,
               any_value(g.ring_id) AS ring_id, any_value(g.ring_size) AS ring_size,
               NULL::DOUBLE AS q_value
        FROM sides x JOIN _ig_ring g USING (person_id)
        GROUP BY x.person_id"""


def _refund_tests(con: duckdb.DuckDBPyConnection, s: Settings) -> None:
    """Temp ``_ig_refund``: per claimant, credited lines n, refunded k, expected rate from the
    merchants' base rates, one-sided binomial p and BH q over every claimant tested.

    Temp ``_ig_refund_base`` holds only the refunded claimed lines (with refund timing); the
    paid claimed lines are read straight from graph.attributed_orders, once for the
    merchants' base rates (refunded / claimed lines) and once per claimant (lines and the
    sum of each line's merchant rate: the expected refunds)."""
    del s
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ig_refund_base AS
        -- grain: one row per refunded claimed line outside failed group buys, with refund timing
        WITH hist AS (
            SELECT natural_key, min(changed_at) AS refunded_seen_at
            FROM staging.status_history
            WHERE table_name = 'orders' AND column_name = 'status' AND new_value = 'refunded'
            GROUP BY 1
        )
        SELECT l.claimant, l.merchant_id, l.order_id, l.payout,
               epoch(h.refunded_seen_at - l.ordered_at) / 3600.0 AS hours_to_refund
        FROM _ig_refunded l
        LEFT JOIN hist h ON h.natural_key = l.order_id || ',' || l.line_no
        WHERE l.claimant IS NOT NULL AND NOT coalesce(l.failed_group, false)
          AND l.claimant <> l.customer_id""")
    counts = con.sql("""
        WITH claimed AS NOT MATERIALIZED (  -- the paid claimed lines (read twice, never copied)
            SELECT credited_id AS claimant, merchant_id FROM graph.attributed_orders
            WHERE is_paid AND credited_id <> customer_id
        ),
        m AS (  -- each merchant's refund rate over its claimed lines
            SELECT merchant_id, sum(k)::DOUBLE / sum(n)::DOUBLE AS rate
            FROM (SELECT merchant_id, count(*) AS n, 0 AS k FROM claimed GROUP BY 1
                  UNION ALL
                  SELECT merchant_id, count(*), count(*) FROM _ig_refund_base GROUP BY 1)
            GROUP BY 1
        ),
        per AS (  -- per claimant: lines, refunded lines, the sum of the lines' merchant rates
            SELECT l.claimant, count(*) AS n, count(*) FILTER (WHERE l.refunded) AS k,
                   sum(m.rate) AS expected
            FROM (SELECT claimant, merchant_id, false AS refunded FROM claimed
                  UNION ALL
                  SELECT claimant, merchant_id, true FROM _ig_refund_base) l
            JOIN m USING (merchant_id)
            GROUP BY 1
        ),
        mh AS (SELECT merchant_id, median(hours_to_refund) AS m_hours
               FROM _ig_refund_base GROUP BY 1),
        hrs AS (SELECT b.claimant, median(b.hours_to_refund) AS hours,
                       median(mh.m_hours) AS merchant_hours
                FROM _ig_refund_base b JOIN mh USING (merchant_id) GROUP BY 1)
        SELECT per.claimant, per.n, per.k, per.expected, hrs.hours, hrs.merchant_hours
        FROM per LEFT JOIN hrs USING (claimant)""").pl()
    n = counts["n"].to_numpy().astype(np.int64)
    k = counts["k"].to_numpy().astype(np.int64)
    p0 = np.clip(counts["expected"].cast(pl.Float64).to_numpy() / np.maximum(n, 1), 1e-9, 1.0)
    p = binom_pvalue(k, n, p0)
    q = bh_qvalues(p)
    con.register("_ig_refund_tests", counts.with_columns(p0=p0, q_value=q))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _ig_refund AS SELECT * FROM _ig_refund_tests")
    finally:
        con.unregister("_ig_refund_tests")


def _refund_abuse(s: Settings) -> str:
    return f"""
        SELECT t.claimant AS person_id, 'refund_abuse' AS rule,
               count(DISTINCT b.order_id) AS orders_involved, sum(b.payout) AS amount_at_risk,
               any_value(t.k) || ' of ' || any_value(t.n) || ' credited order lines refunded ('
                 || round(100.0 * any_value(t.k) / any_value(t.n), 1) || '%) vs '
                 || round(100.0 * any_value(t.p0), 1) || '% expected from the merchants'' refund rates; q = '
                 || printf('%.2g', any_value(t.q_value)) || '; '
                 || CASE WHEN any_value(t.hours) IS NULL THEN 'refund times unknown'
                         ELSE 'median ' || round(any_value(t.hours), 1) || ' h to refund vs '
                              || round(any_value(t.merchant_hours), 1) || ' h for the merchants' END
                   AS evidence,
               '记在此人名下的订单行 ' || any_value(t.n) || ' 笔中退款 ' || any_value(t.k) || ' 笔（'
                 || round(100.0 * any_value(t.k) / any_value(t.n), 1) || '%），按商家退款率预期 '
                 || round(100.0 * any_value(t.p0), 1) || '%；q = ' || printf('%.2g', any_value(t.q_value))
                 || '；' || CASE WHEN any_value(t.hours) IS NULL THEN '退款时间未知'
                         ELSE '退款中位用时 ' || round(any_value(t.hours), 1) || ' 小时，商家为 '
                              || round(any_value(t.merchant_hours), 1) || ' 小时' END AS evidence_zh,
               NULL::VARCHAR AS ring_id, NULL::INTEGER AS ring_size, any_value(t.q_value) AS q_value
        FROM _ig_refund t JOIN _ig_refund_base b ON b.claimant = t.claimant
        WHERE t.q_value <= {float(s.refund_fdr)!r}
          AND t.k >= {int(s.refund_min_refunds)}
          AND t.k >= {float(s.refund_min_ratio)!r} * t.p0 * t.n
          AND coalesce(t.hours <= t.merchant_hours, true)
        GROUP BY t.claimant"""


def _stage_clicks(con: duckdb.DuckDBPyConnection, s: Settings) -> None:
    """Temp ``_ig_own`` (share_id, sharer_id): every share of a sharer with a *busy* share, one
    with at least click_burst_min_clicks clicks by anyone (self-clicks included, so a
    superset of the shares that can burst); temp ``_ig_clicks``: the clicks by others on
    those shares. Two reads of the click events: a count per share (only the share_id
    column), then the few shares' clicks with their clicker and time."""
    floor = int(s.click_burst_min_clicks)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ig_own AS
        WITH busy AS (
            SELECT share_id FROM staging.share_events WHERE event_type = 'click'
            GROUP BY 1 HAVING count(*) >= {floor}
        )
        SELECT n.share_id, n.actor_id AS sharer_id
        FROM graph.share_nodes n
        WHERE n.actor_id IN (SELECT actor_id FROM graph.share_nodes
                             WHERE share_id IN (SELECT share_id FROM busy))""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ig_clicks AS
        SELECT e.share_id, o.sharer_id, e.actor_id AS clicker_id, e.occurred_at
        FROM staging.share_events e JOIN _ig_own o USING (share_id)
        WHERE e.event_type = 'click' AND e.actor_id <> o.sharer_id""")


def _click_burst(s: Settings) -> str:
    window, floor = int(s.click_burst_window_minutes), int(s.click_burst_min_clicks)
    return f"""
        WITH ck AS (SELECT * FROM _ig_clicks),
        per_share AS (SELECT share_id, any_value(sharer_id) AS sharer_id, count(*) AS clicks
                      FROM ck GROUP BY 1),
        cand AS (SELECT share_id FROM per_share WHERE clicks >= {floor}),
        peak AS (  -- most clicks within the window and where it starts, for shares that could burst
            SELECT share_id, max(w) AS peak, arg_max(occurred_at, w) AS peak_start
            FROM (SELECT share_id, occurred_at,
                         count(*) OVER (PARTITION BY share_id ORDER BY occurred_at
                         RANGE BETWEEN CURRENT ROW AND INTERVAL {window} MINUTE FOLLOWING) AS w
                  FROM ck WHERE share_id IN (SELECT share_id FROM cand))
            GROUP BY 1 HAVING max(w) >= {floor}
        ),
        hist AS (  -- the sharer's shares: count and clicks (0 clicks included)
            SELECT o.sharer_id, count(*) AS shares, coalesce(sum(p.clicks), 0) AS clicks
            FROM _ig_own o LEFT JOIN per_share p USING (share_id)
            WHERE o.sharer_id IN (SELECT sharer_id FROM per_share
                                  WHERE share_id IN (SELECT share_id FROM peak))
            GROUP BY 1
        ),
        clickers AS (  -- who clicked inside the burst window
            SELECT DISTINCT ck.share_id, ck.clicker_id
            FROM ck JOIN peak k USING (share_id)
            WHERE ck.occurred_at BETWEEN k.peak_start
                                     AND k.peak_start + INTERVAL {window} MINUTE
        ),
        sold AS (  -- paid orders through the share by the burst's clickers
            SELECT l.share_id, l.order_id, l.amount, l.payout
            FROM ({PAID_LINES_SQL}) l JOIN clickers c
                 ON c.share_id = l.share_id AND c.clicker_id = l.customer_id
        ),
        burst AS (
            SELECT p.share_id, p.sharer_id, k.peak,
                   (SELECT count(DISTINCT order_id) FROM sold WHERE sold.share_id = p.share_id)
                       AS orders,
                   (h.clicks - p.clicks) / greatest(h.shares - 1, 1) AS usual
            FROM per_share p JOIN peak k USING (share_id) JOIN hist h USING (sharer_id)
        ),
        flagged AS (
            SELECT * FROM burst
            WHERE peak >= {float(s.click_burst_history_factor)!r} * greatest(usual, 1)
              AND orders <= {float(s.click_burst_max_conversion)!r} * peak
        ),
        money AS (SELECT f.sharer_id, count(DISTINCT sd.order_id) AS orders,
                         coalesce(sum(sd.payout), 0) AS payout
                  FROM flagged f LEFT JOIN sold sd USING (share_id) GROUP BY 1)
        SELECT f.sharer_id AS person_id, 'click_burst' AS rule,
               any_value(m.orders) AS orders_involved, any_value(m.payout) AS amount_at_risk,
               count(*) || ' share(s) with a click burst: up to ' || max(f.peak) || ' clicks within '
                 || {window} || ' minutes (their other shares average '
                 || round(min(f.usual), 1) || ' clicks each); ' || any_value(m.orders)
                 || ' paid orders by the ' || sum(f.peak) || ' burst clicks' AS evidence,
               count(*) || ' 条分享出现点击暴增：' || {window} || ' 分钟内最多 ' || max(f.peak)
                 || ' 次点击（其其他分享平均每条 ' || round(min(f.usual), 1) || ' 次）；这 '
                 || sum(f.peak) || ' 次暴增点击只带来 ' || any_value(m.orders) || ' 笔已付款订单'
                   AS evidence_zh,
               NULL::VARCHAR AS ring_id, NULL::INTEGER AS ring_size, NULL::DOUBLE AS q_value
        FROM flagged f JOIN money m USING (sharer_id)
        GROUP BY f.sharer_id"""


def build_integrity_flags(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.integrity_flags`` (one row per person and rule that fired); returns rows."""
    s = settings or Settings()
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    _stage_lines(con, s)
    _rings(con, s)
    _refund_tests(con, s)
    _stage_clicks(con, s)
    try:
        con.execute(f"""
            CREATE OR REPLACE TABLE {TABLE} AS
            -- grain: one row per (person_id, rule) that fired
            WITH f AS (
                SELECT * FROM ({_self_referral(s)})
                UNION ALL BY NAME SELECT * FROM ({_referral_ring()})
                UNION ALL BY NAME SELECT * FROM ({_refund_abuse(s)})
                UNION ALL BY NAME SELECT * FROM ({_click_burst(s)})
            )
            SELECT f.person_id, f.rule,
                   f.person_id IN (SELECT agent_id FROM graph.agent_upline) AS is_agent,
                   f.orders_involved::BIGINT AS orders_involved,
                   coalesce(f.amount_at_risk, 0)::DECIMAL(18,2) AS amount_at_risk,
                   f.evidence, f.evidence_zh, f.ring_id, f.ring_size, f.q_value
            FROM f""")
    finally:
        for t in ("_ig_refunded", "_ig_self", "_ig_edges", "_ig_ids", "_ig_ring", "_ig_refund_base",
                  "_ig_refund", "_ig_own", "_ig_clicks"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
    return finish_table(con, TABLE, TEXT, DOC)


def check_flags(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """Every flag names a known rule, has evidence in both languages and a non-negative ¥."""
    bad = con.execute(f"""SELECT count(*) FROM {TABLE}
        WHERE rule NOT IN {RULES} OR evidence IS NULL OR evidence_zh IS NULL
           OR amount_at_risk < 0 OR orders_involved < 0""").fetchall()[0][0]
    return bad == 0, f"{bad} flags without a known rule, evidence or a non-negative ¥ at risk"
