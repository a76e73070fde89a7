"""Attribution: which share (and so which person) led to each paid order line.

Rules, in order (docs/influence.md §Attribution):

1. ``share_id`` — the order carries a share id whose sharer is known and is not the buyer;
2. ``last_click`` — else the buyer's latest click on someone else's share within
   ``Settings.attribution_window_days`` days before the order (DuckDB ASOF JOIN);
3. ``referrer`` — else the order's ``referrer_id`` when it is not the buyer;
4. ``organic`` — else nobody is credited.

Refunded and cancelled lines get rule ``unpaid``: no credit, no GMV, no cost. The sharer of a
share is the actor of its earliest share/reshare event, ties by event_id
(:func:`sharegraph.graph.shares.sharers_sql`).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.sql import literal
from sharegraph.core.warehouse import comment_table, create_table_as, finish_table
from sharegraph.graph import paid_lines
from sharegraph.graph.products import line_merchant_sql, product_lookup_sql
from sharegraph.graph.shares import SHARE_EVENTS, sharers_sql

TABLE = "graph.attributed_orders"
INPUTS = ("orders", "share_events", "products")
"""Staging tables the attribution reads (sharegraph/core/increments.py)."""

CHANGES = "meta.attribution_changes"
"""The customers whose lines the last update rewrote: a table kept per customer of
graph.attributed_orders recomputes just them (the change log between the layers)."""

REWRITTEN = f"SELECT customer_id FROM {CHANGES} WHERE customer_id IS NOT NULL"
"""SQL of the customers whose lines the last update rewrote (one row each)."""

MOVED_CREDIT = "meta.attribution_moved_credit"
"""The credited paid lines the last update removed or wrote, as (share, credited person,
buyer): a table of credit per share, per credited person or per buyer recomputes just
theirs (marts.cascades, graph.people, graph.referral_edges)."""

MOVED_SHARES = f"SELECT DISTINCT share_id FROM {MOVED_CREDIT} WHERE share_id IS NOT NULL"
"""SQL of the shares of :data:`MOVED_CREDIT` (one row each)."""

MOVED_CREDITED = f"SELECT DISTINCT credited_id FROM {MOVED_CREDIT} WHERE credited_id IS NOT NULL"
"""SQL of the credited people of :data:`MOVED_CREDIT` (one row each)."""

MOVED_BUYERS = f"SELECT DISTINCT customer_id FROM {MOVED_CREDIT} WHERE customer_id IS NOT NULL"
"""SQL of the buyers of :data:`MOVED_CREDIT` (one row each)."""

ATTRIBUTED_ORDERS_DOC = {
    "order_id": "Order number (staging.orders).",
    "line_no": "Line within the order.",
    "customer_id": "Buyer.",
    "merchant_id": "Merchant of the line: orders.merchant_id, else products.merchant_id, else 'default' (an order loaded without a merchant holds 'default', which counts as not given).",
    "product_id": "Product bought.",
    "category": "COALESCE(orders.category, products.category).",
    "ordered_at": "When the order was placed (local time, configured zone).",
    "amount": "Paid amount of the line, ¥ (counts in GMV only when is_paid).",
    "quantity": "Units bought.",
    "channel": "Sales channel of the order.",
    "status": "paid / refunded / cancelled.",
    "is_paid": "status = 'paid'; refunded or cancelled lines earn no credit and no GMV.",
    "share_id": "Resolved share: the order's share_id if its sharer is known and is not the buyer, else the buyer's last click on another person's share within the attribution window; NULL if none.",
    "sharer_id": "Person who made the resolved share (NULL when no share).",
    "click_at": "Time of the last click used by rule last_click (NULL otherwise).",
    "credited_id": "Person credited for the sale: sharer of the resolved share, else referrer_id; NULL when organic, unpaid or self-referral.",
    "rule": "Which rule attributed the line: share_id | last_click | referrer | organic | unpaid.",
    "is_first_order": "True on the customer's first paid order line overall (earliest ordered_at, then order_id, line_no): a new customer acquired by credited_id.",
    "commission_yuan": "Commission cost of the line, ¥: orders.commission when given, else commission_rate x amount for attributed paid lines; 0 when unpaid.",
    "red_packet_yuan": "Red-packet cost, ¥: orders.red_packet when given, else the configured amount once per share-attributed paid order (first line); 0 when unpaid.",
}


IN_MULTI_LINE_ORDER = ("order_id IN (SELECT order_id FROM graph.attributed_orders "
                       "WHERE line_no <> 1)")
"""SQL flag for a graph.attributed_orders row: its order has a line other than 1.

Counting distinct orders without count(DISTINCT): by the contract key (order_id, line_no) an
order with only line 1 is one row, so only rows with this flag need grouping per order.
"""


def attribute_orders(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.attributed_orders`` in full: one row per order line in ``staging.orders``.

    Set-based, in three narrow steps so the wide order rows are scanned and written once:
    the last click is an ASOF JOIN of only the orders that need it (no usable share_id, and
    placed between the buyer's first click and the window after the last one) onto clicks by
    customer and time; the customer's first paid line is one ``arg_min`` per customer; the
    first line of an order is looked up only for orders that have a line other than 1. Rows
    are matched back by ``rowid`` (integers, no string joins). Returns the number of rows
    written.
    """
    s = settings or Settings()
    con.execute("CREATE SCHEMA IF NOT EXISTS graph")
    _stage(con, s, "staging.orders", "staging.share_events")
    create_table_as(con, TABLE, _attributed_orders_sql(s, "staging.orders"),
                    ids=("order_id", "customer_id", "share_id", "sharer_id", "credited_id"))
    _drop_stages(con)
    return _finish(con, s)


def refresh_attributed_orders(con: duckdb.DuckDBPyConnection,
                              settings: Settings | None = None) -> int:
    """Bring ``graph.attributed_orders`` up to date with staging, per customer when it can.

    After a daily load only the lines of the customers the new batches touch, from the
    earliest change on, can change (:func:`_touched_customers_sql`); those are recomputed
    with the same SQL over just their rows and replace their old rows. The result equals
    :func:`attribute_orders` exactly; when the table's state does not allow an update
    (sharegraph/core/increments.py) it is rebuilt in full. Returns the number of rows in the table.
    """
    s = settings or Settings()
    fp = increments.fingerprint(_attributed_orders_sql(s, "staging.orders"),
                                last_click_ctes(int(s.attribution_window_days)), sharers_sql(),
                                TOUCHED_VERSION)
    with increments.maintained(con, TABLE, fp, INPUTS) as build:
        if build.delta is None:
            paid_lines.forget_changes(con)
            for log in (CHANGES, MOVED_CREDIT):
                con.execute(f"DROP TABLE IF EXISTS {log}")
            return attribute_orders(con, s)
        if build.delta:
            _update(con, s, build.delta)
    return _finish(con, s)


def _update(con: duckdb.DuckDBPyConnection, s: Settings, delta: increments.Delta) -> None:
    """Replace the lines ``delta`` can change with freshly attributed ones.

    Those are, per touched customer, the lines placed at or after its ``since``
    (:func:`_touched_customers_sql`). Their recomputation sees all they depend on: every line
    of their orders, the customer's clicks from ``since`` less the window on, and the share
    events of every share those lines and clicks name. Lines in scope that are not rewritten
    (other lines of the same orders) are computed but not written. The first paid line is
    the one exception to "same SQL": a customer with a paid line before ``since`` keeps it as
    the first, so none of the rewritten lines is. The paid lines the delta can change are
    logged first, as they were (:func:`paid_lines.log_changes`).
    """
    paid_lines.log_changes(con, delta)
    window = int(s.attribution_window_days)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _attr_who AS {_touched_customers_sql(delta)}")
    _log_rewritten(con, delta)
    # joins, not a correlated EXISTS: 1.7x (orders) to 2.7x (delete) faster at 10M orders
    # (_attr_who: one row per customer)
    rewritten = "w.customer_id = {t}.customer_id AND {t}.ordered_at >= w.since"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_orders AS
        SELECT * FROM staging.orders
        WHERE order_id IN (SELECT o.order_id FROM staging.orders o
                           JOIN _attr_who w ON {rewritten.format(t="o")})
        """)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_events AS
        WITH clicks AS (
            SELECT e.* FROM staging.share_events e JOIN _attr_who w ON w.customer_id = e.actor_id
            WHERE e.event_type = 'click' AND e.occurred_at >= w.since - INTERVAL {window} DAY
        ),
        named AS (
            SELECT share_id FROM clicks
            UNION SELECT share_id FROM _attr_orders WHERE share_id IS NOT NULL
        )
        SELECT * FROM clicks
        UNION ALL
        SELECT * FROM staging.share_events
        WHERE {SHARE_EVENTS} AND share_id IN (SELECT share_id FROM named)
        """)
    _stage(con, s, "_attr_orders", "_attr_events")
    con.execute(  # customers whose first paid line is before since: it stays the first
        """
        DELETE FROM _attr_first WHERE rid IN (
            SELECT o.rowid FROM _attr_orders o
            WHERE o.customer_id IN (
                SELECT p.customer_id FROM staging.orders p
                JOIN _attr_who w ON w.customer_id = p.customer_id
                WHERE p.ordered_at < w.since AND coalesce(p.status, 'paid') = 'paid'))
        """)
    credit = "share_id, credited_id, customer_id, is_paid AND credited_id IS NOT NULL AS moved"
    gone = con.sql(f"DELETE FROM {TABLE} a USING _attr_who w WHERE {rewritten.format(t='a')} "
                   f"RETURNING {credit}").to_arrow_table()
    came = con.sql(f"""INSERT INTO {TABLE}
                       SELECT q.* FROM ({_attributed_orders_sql(s, "_attr_orders")}) q
                       JOIN _attr_who w ON {rewritten.format(t="q")}
                       RETURNING {credit}""").to_arrow_table()
    _log_moved_credit(con, delta, pa.concat_tables([gone, came]))
    _drop_stages(con)
    for temp in ("_attr_who", "_attr_orders", "_attr_events"):
        con.execute(f"DROP TABLE {temp}")


def _log_rewritten(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> None:
    """Replace :data:`CHANGES` with the customers of ``_attr_who`` (their lines are rewritten)."""
    con.execute(f"""
        CREATE OR REPLACE TABLE {CHANGES} AS
        SELECT {literal(delta.key(INPUTS))} AS delta,
               NULL::VARCHAR AS customer_id  -- the update itself, even when it touches no one
        UNION ALL SELECT {literal(delta.key(INPUTS))}, customer_id FROM _attr_who""")
    comment_table(con, CHANGES,
                  "The customers whose lines the last update of graph.attributed_orders "
                  "rewrote (docs/performance.md#daily-runs).", {
                      "delta": "The load batches and status changes the update applied "
                               "(increments.Delta.key): a table whose own delta is another "
                               "rebuilds in full.",
                      "customer_id": "A customer whose lines were rewritten (NULL on the one "
                                     "row that stands for the update itself)."})


def _log_moved_credit(con: duckdb.DuckDBPyConnection, delta: increments.Delta,
                      lines: pa.Table) -> None:
    """Replace :data:`MOVED_CREDIT` with the credited paid lines the update removed or wrote
    (``lines``: share_id, credited_id, customer_id and ``moved`` of every line it removed or
    wrote; ``moved`` marks the credited paid ones)."""
    con.register("_attr_moved", lines)
    con.execute(f"""
        CREATE OR REPLACE TABLE {MOVED_CREDIT} AS
        SELECT {literal(delta.key(INPUTS))} AS delta, NULL::VARCHAR AS share_id,
               NULL::VARCHAR AS credited_id, NULL::VARCHAR AS customer_id
               -- the update itself, even when it moves nothing
        UNION ALL SELECT DISTINCT {literal(delta.key(INPUTS))}, share_id, credited_id, customer_id
        FROM _attr_moved WHERE moved""")
    con.unregister("_attr_moved")
    line = "(NULL on the one row that stands for the update itself)"
    comment_table(con, MOVED_CREDIT,
                  "The credited paid lines the last update of graph.attributed_orders removed or "
                  "wrote, one row per (share, credited person, buyer) "
                  "(docs/performance.md#daily-runs).", {
                      "delta": "The load batches and status changes the update applied "
                               "(increments.Delta.key): a table whose own delta is another "
                               "rebuilds in full.",
                      "share_id": f"The share the line named, if any {line}.",
                      "credited_id": f"The person credited {line}.",
                      "customer_id": f"The buyer {line}."})


def moved_credit_matches(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> bool:
    """True when :data:`MOVED_CREDIT` holds exactly the update of ``delta``: a table of credit
    per share, credited person or buyer may recompute just theirs."""
    return increments.log_matches(con, MOVED_CREDIT, delta.key(INPUTS))


def changes_match(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> bool:
    """True when :data:`CHANGES` holds exactly the update of ``delta`` (a table's own delta
    since it was built): it may recompute just the :data:`REWRITTEN` customers."""
    return increments.log_matches(con, CHANGES, delta.key(INPUTS))


TOUCHED_VERSION = "touched customers since v2"
"""Part of the fingerprint: change it when :func:`_touched_customers_sql` changes meaning."""


def _touched_customers_sql(delta: increments.Delta) -> str:
    """SQL of the customers whose lines a delta can change, with ``since``: the earliest
    instant from which their lines can change (one row per customer).

    A line's attribution depends on its own row, its product, the sharer of its share_id,
    its customer's earlier lines (the first paid line) and earlier clicks, the sharers of
    the shares clicked, and the line numbers of its order. So a customer is touched by: a
    new or status-changed line of one of its orders, a line naming a new product or a share
    with a new share/reshare event (its sharer may be another now), from that line's time;
    and a new click, or a click on such a share, from the click's time. A line placed before
    ``since`` sees none of these changes: no later click, and no later line can take its
    first-order flag.
    """
    return f"""
        WITH changed AS ({paid_lines.changed_order_ids_sql(delta)}),
        orders AS (
            {delta.new_keys("orders", "order_id")}
            UNION SELECT order_id FROM changed
        ),
        shares AS (
            SELECT share_id FROM staging.share_events
            WHERE {delta.new_rows("share_events")} AND {SHARE_EVENTS}
        ),
        products AS ({delta.new_keys("products", "product_id")}),
        reasons AS (
            SELECT customer_id, ordered_at AS changed_at FROM staging.orders
            WHERE order_id IN (SELECT order_id FROM orders)
               OR share_id IN (SELECT share_id FROM shares)
               OR product_id IN (SELECT product_id FROM products)
            UNION ALL
            SELECT actor_id, occurred_at FROM staging.share_events
            WHERE event_type = 'click'
              AND ({delta.new_rows("share_events")} OR share_id IN (SELECT share_id FROM shares))
        )
        SELECT customer_id, min(changed_at) AS since FROM reasons
        WHERE customer_id IS NOT NULL GROUP BY customer_id
    """


def _stage(con: duckdb.DuckDBPyConnection, s: Settings, orders: str, events: str) -> None:
    """Temp tables ``_attr_sharers``, ``_attr_click``, ``_attr_first`` over these relations."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _attr_sharers AS {sharers_sql(events)}")
    _stage_last_clicks(con, int(s.attribution_window_days), orders, events)
    _stage_first_paid_lines(con, orders)


def _drop_stages(con: duckdb.DuckDBPyConnection) -> None:
    for temp in ("_attr_sharers", "_attr_click", "_attr_first"):
        con.execute(f"DROP TABLE {temp}")


def _finish(con: duckdb.DuckDBPyConnection, s: Settings) -> int:
    return finish_table(
        con, TABLE,
        "One row per order line: the share / person credited for it and the rule used "
        f"(attribution window {int(s.attribution_window_days)} days). Paid GMV = SUM(amount) "
        "WHERE is_paid; attributed GMV = paid GMV with credited_id NOT NULL.",
        ATTRIBUTED_ORDERS_DOC,
    )


def _stage_last_clicks(con: duckdb.DuckDBPyConnection, window: int,
                       orders: str = "staging.orders", events: str = "staging.share_events") -> None:
    """Temp table ``_attr_click``: the line's winning click for every line won by rule 2.

    Needs ``_attr_sharers``. Only lines without a usable share_id whose buyer clicked
    something within reach are joined (an ASOF JOIN on customer and time).
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_click AS
        -- grain: one row per order line won by rule last_click (orders.rowid)
        WITH {last_click_ctes(window, orders, events)}
        SELECT n.rid, c.share_id, c.click_at, s.sharer_id
        FROM need n
        ASOF JOIN clicks c ON c.customer_id = n.customer_id AND n.ordered_at >= c.click_at
        JOIN _attr_sharers s ON s.share_id = c.share_id
        WHERE c.click_at >= n.ordered_at - INTERVAL {window} DAY
        """
    )


def last_click_ctes(window: int, orders: str = "staging.orders",
                    events: str = "staging.share_events") -> str:
    """CTEs ``clicks``, ``span``, ``need`` of rule 2 (needs ``_attr_sharers``): the
    candidate clicks and the lines that can be won by one. Shared with the Spark engine's
    ASOF-free form of the rule (``sharegraph.spark.engine.last_click_sql``)."""
    return f"""
        clicks AS (  -- clicks on another person's share; one per (buyer, instant)
            SELECT c.actor_id AS customer_id, c.occurred_at AS click_at,
                   max(c.share_id) AS share_id
            FROM {events} c
            JOIN _attr_sharers s ON s.share_id = c.share_id
            WHERE c.event_type = 'click' AND s.sharer_id <> c.actor_id
            GROUP BY c.actor_id, c.occurred_at
        ),
        span AS (  -- per buyer: first and last click
            SELECT customer_id, min(click_at) AS first_click, max(click_at) AS last_click
            FROM clicks GROUP BY 1
        ),
        need AS (  -- lines without a usable share_id whose buyer clicked something within
                   -- reach: no earlier click, or only clicks older than the window, cannot win
            SELECT o.rowid AS rid, o.customer_id, o.ordered_at
            FROM {orders} o
            JOIN span c ON c.customer_id = o.customer_id
            LEFT JOIN _attr_sharers s ON s.share_id = o.share_id
            WHERE coalesce(s.sharer_id <> o.customer_id, false) = false
              AND o.ordered_at >= c.first_click
              AND o.ordered_at <= c.last_click + INTERVAL {window} DAY
        )"""


def _stage_first_paid_lines(con: duckdb.DuckDBPyConnection, orders: str = "staging.orders") -> None:
    """Temp table ``_attr_first``: the rowid of each customer's first paid order line."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _attr_first AS
        -- grain: one row per customer: the rowid of its first paid line
        SELECT arg_min(rowid, (ordered_at, order_id, coalesce(line_no, 1))) AS rid
        FROM {orders}
        WHERE coalesce(status, 'paid') = 'paid'
        GROUP BY customer_id
        """
    )


def _order_lines(orders: str) -> str:
    """CTEs ``p``, ``multi``, ``r`` of :func:`_attributed_orders_sql` (one row per line of
    ``orders``)."""
    return f"""
        -- each order line with what the rules need: its product's category and merchant,
        -- the sharer of its share_id, its winning click and whether it is a first line
        p AS ({product_lookup_sql()}),
        multi AS (  -- first line of the orders that have a line other than 1
            SELECT order_id, min(coalesce(line_no, 1)) AS first_line
            FROM {orders}
            WHERE order_id IN (SELECT order_id FROM {orders}
                               WHERE coalesce(line_no, 1) <> 1)
            GROUP BY order_id
        ),
        r AS (
            SELECT o.order_id, coalesce(o.line_no, 1) AS line_no, o.customer_id,
                   {line_merchant_sql()} AS merchant_id,
                   o.product_id, coalesce(o.category, p.category) AS category,
                   o.ordered_at, o.amount, o.quantity, o.channel,
                   coalesce(o.status, 'paid') AS status,
                   coalesce(o.status, 'paid') = 'paid' AS is_paid,
                   o.referrer_id, o.commission, o.red_packet,
                   coalesce(s.sharer_id <> o.customer_id, false) AS direct,
                   o.share_id AS order_share_id, s.sharer_id AS order_sharer,
                   c.rid IS NOT NULL AS clicked, c.share_id AS click_share_id, c.click_at,
                   c.sharer_id AS click_sharer,
                   f.rid IS NOT NULL AS is_first_order,
                   m.order_id IS NULL OR coalesce(o.line_no, 1) = m.first_line AS first_line
            FROM {orders} o
            LEFT JOIN p ON p.product_id = o.product_id
            LEFT JOIN _attr_sharers s ON s.share_id = o.share_id
            LEFT JOIN _attr_click c ON c.rid = o.rowid
            LEFT JOIN _attr_first f ON f.rid = o.rowid
            LEFT JOIN multi m ON m.order_id = o.order_id
        )"""


def _attributed_orders_sql(s: Settings, orders: str) -> str:
    """SQL of ``graph.attributed_orders``: the rules applied to every order line, and its cost."""
    return f"""
        -- grain: one row per order line (order_id, line_no) of staging.orders
        WITH {_order_lines(orders).strip()},
        q AS (
            SELECT r.*,
                   CASE WHEN direct THEN 'share_id'
                        WHEN clicked THEN 'last_click'
                        WHEN referrer_id IS NOT NULL AND referrer_id <> customer_id
                            THEN 'referrer'
                        ELSE 'organic' END AS paid_rule
            FROM r
        )
        SELECT order_id, line_no, customer_id, merchant_id, product_id, category,
               ordered_at, amount, quantity, channel, status, is_paid,
               CASE WHEN direct THEN order_share_id WHEN clicked THEN click_share_id END
                   AS share_id,
               CASE WHEN direct THEN order_sharer WHEN clicked THEN click_sharer END AS sharer_id,
               CASE WHEN NOT direct AND clicked THEN click_at END AS click_at,
               CASE WHEN NOT is_paid THEN NULL
                    WHEN direct THEN order_sharer
                    WHEN clicked THEN click_sharer
                    WHEN paid_rule = 'referrer' THEN referrer_id END AS credited_id,
               CASE WHEN is_paid THEN paid_rule ELSE 'unpaid' END AS rule,
               is_first_order,
               CAST(CASE WHEN NOT is_paid THEN 0
                         WHEN commission IS NOT NULL THEN commission
                         WHEN paid_rule <> 'organic'
                              THEN round(amount * {float(s.commission_rate)!r}, 2)
                         ELSE 0 END AS DECIMAL(18,2)) AS commission_yuan,
               CAST(CASE WHEN NOT is_paid THEN 0
                         WHEN red_packet IS NOT NULL THEN red_packet
                         WHEN (direct OR clicked) AND first_line
                              THEN {float(s.red_packet_yuan)!r}
                         ELSE 0 END AS DECIMAL(18,2)) AS red_packet_yuan
        FROM q
        """


def gmv_conservation(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """Attributed + organic GMV vs total paid GMV in ¥ (exact DECIMAL sums) for the asset check."""
    paid, attributed, organic, staged = con.execute(
        """
        SELECT
          (SELECT coalesce(sum(amount), 0) FROM graph.attributed_orders WHERE is_paid),
          (SELECT coalesce(sum(amount), 0) FROM graph.attributed_orders
             WHERE is_paid AND credited_id IS NOT NULL),
          (SELECT coalesce(sum(amount), 0) FROM graph.attributed_orders
             WHERE is_paid AND credited_id IS NULL),
          (SELECT coalesce(sum(amount), 0) FROM staging.orders
             WHERE coalesce(status, 'paid') = 'paid')
        """
    ).fetchall()[0]
    return {
        "paid_gmv": paid,
        "attributed_gmv": attributed,
        "organic_gmv": organic,
        "staging_paid_gmv": staged,
        "ok": attributed + organic == paid == staged,
    }
