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
