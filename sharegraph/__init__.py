"""sharegraph: social-commerce analytics over a DuckDB warehouse.

The domain library. It imports no Dagster: every function here is plain Python over DuckDB,
Polars, NumPy and NetworkX, and the Dagster assets in ``assets/`` are thin wrappers.
"""

__version__ = "0.1.0"
