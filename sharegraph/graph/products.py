"""Product -> category and merchant: the one lookup of ``staging.products`` every stage joins.

``product_id`` is the contract key of ``staging.products`` (the load merges on it and an
asset check asserts it is unique), so the GROUP BY only guards against a hand-made warehouse
with repeated ids.
"""

from __future__ import annotations


def product_lookup_sql() -> str:
    """SQL of one row per product_id: its ``category`` and ``merchant_id`` (either may be NULL)."""
    return ("SELECT product_id, any_value(category) AS category, "
            "any_value(merchant_id) AS merchant_id FROM staging.products GROUP BY product_id")


def line_merchant_sql(order: str = "o", product: str = "p") -> str:
    """SQL of an order line's merchant: the order's own, else its product's, else 'default'.

    Why ``nullif``: the loader stores the contract's default ``'default'`` when an export has
    no merchant column, so on the order it means "not given", and a products file's merchants
    must still apply (before, every such line went to 'default').
    """
    return f"coalesce(nullif({order}.merchant_id, 'default'), {product}.merchant_id, 'default')"

