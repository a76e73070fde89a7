"""Paid lines: what the affinity marts count, and what the last daily update changed of them.

A paid line is a paid order line with a customer and a resolved category (one row of
``graph.attributed_orders`` narrowed to customer, merchant, order, category, time and ¥). Its
columns depend only on its own ``staging.orders`` row (status included) and its product, so
after a load only the customers with a new or status-changed line, or a line naming a new
product, can have other paid lines.

The marts that count people (``marts.category_affinity``, ``marts.directional_affinity``,
``marts.spillover_affinity``) add up over people: after a load they subtract the touched
customers' old contributions and add their new ones. The old ones are gone once attribution has rewritten those lines, so its
update keeps them first in :data:`CHANGES` (the change log between the layers), for the last
update only: a mart that missed an update, or finds another delta there, rebuilds in full.
"""

from __future__ import annotations

import duckdb

from sharegraph.core import increments
from sharegraph.core.sql import literal
from sharegraph.core.warehouse import comment_table

INPUTS = ("orders", "products")
"""Staging tables a paid line depends on."""

CHANGES = "meta.paid_line_changes"

PAID_LINES = """
    SELECT customer_id, COALESCE(merchant_id, 'default') AS merchant_id, order_id,
           category, ordered_at, amount
    FROM graph.attributed_orders
    WHERE is_paid AND category IS NOT NULL AND customer_id IS NOT NULL"""
"""SQL of the paid lines of ``graph.attributed_orders`` (refunded and cancelled lines are not
purchases)."""

_CHANGES_DOC = {
    "delta": "The load batches of orders and products, and their status changes, the update "
             "applied (increments.Delta.key): a mart whose own delta is another rebuilds in full.",
    "customer_id": "A customer whose paid lines the update may have changed (NULL on the one "
                   "row that stands for the update itself).",
    "merchant_id": "Merchant of one of the customer's paid lines before the update (NULL: none).",
    "order_id": "Order of that line (NULL when the customer had no paid line before).",
    "category": "Category of that line.",
    "ordered_at": "When it was ordered (local time).",
    "amount": "Its paid amount, ¥.",
}


def changed_order_ids_sql(delta: increments.Delta) -> str:
    """SQL of the order ids with a status change in the delta's batches (the natural key of
    an order line in ``staging.status_history`` is 'order_id,line_no')."""
    return f"""SELECT regexp_extract(natural_key, '^(.*),-?[0-9]+$', 1) AS order_id
               FROM staging.status_history WHERE {delta.changed("orders")}"""


def log_changes(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> None:
    """Replace :data:`CHANGES` with the customers ``delta`` touches and their paid lines now,
    before attribution rewrites them."""
    con.execute(f"""
        CREATE OR REPLACE TABLE {CHANGES} AS
        WITH touched AS (
            SELECT NULL::VARCHAR AS customer_id  -- the update itself, even when it touches no one
            UNION ALL
            SELECT DISTINCT customer_id FROM staging.orders
            WHERE customer_id IS NOT NULL
              AND ({delta.new_rows("orders")}
                   OR order_id IN ({changed_order_ids_sql(delta)})
                   OR product_id IN ({delta.new_keys("products", "product_id")}))
        )
        SELECT {literal(delta.key(INPUTS))} AS delta, t.customer_id, l.merchant_id,
               l.order_id, l.category, l.ordered_at, l.amount
        FROM touched t LEFT JOIN ({PAID_LINES}) l ON l.customer_id = t.customer_id""")
    comment_table(con, CHANGES,
                  "The customers whose paid lines the last update of graph.attributed_orders "
                  "may have changed, with those lines as they were before it "
                  "(docs/performance.md#daily-runs).", _CHANGES_DOC)


def forget_changes(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the log: attribution was rebuilt in full, so no update follows from it."""
    con.execute(f"DROP TABLE IF EXISTS {CHANGES}")


def changes_match(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> bool:
    """True when the log holds exactly the changes of ``delta`` (a mart's own delta since it
    was built): the mart saw every paid line as it was before that update."""
    return increments.log_matches(con, CHANGES, delta.key(INPUTS))


TOUCHED = f"SELECT DISTINCT customer_id FROM {CHANGES} WHERE customer_id IS NOT NULL"
"""SQL of the customers the last update touched."""

BEFORE = f"""SELECT customer_id, merchant_id, order_id, category, ordered_at, amount
             FROM {CHANGES} WHERE order_id IS NOT NULL"""
"""SQL of the touched customers' paid lines before the last update."""

AFTER = f"SELECT * FROM ({PAID_LINES}) WHERE customer_id IN ({TOUCHED})"
"""SQL of the touched customers' paid lines now."""
