"""Dagster assets, one module per pipeline stage; each is a thin wrapper over ``sharegraph``.

Asset key prefix = DuckDB schema: ``staging/orders`` is the table ``staging.orders``.
"""
