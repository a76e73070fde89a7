"""Bodies the stage modules share: build a table, or run a check, on the working DuckDB file.

Not a stage: it defines no asset or check, only the few lines every thin wrapper repeated
(open the working file, call the ``sharegraph`` function, wrap its result for Dagster).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dagster as dg
import duckdb

from assets.resources import WarehouseResource
from sharegraph.core.config import Settings

Build = Callable[[duckdb.DuckDBPyConnection, Settings], int]
"""A ``sharegraph`` table builder: (connection, settings) -> rows written."""


def table_result(
    warehouse: WarehouseResource,
    build: Build,
    extra: Callable[[duckdb.DuckDBPyConnection], Mapping[str, object]] | None = None,
) -> dg.MaterializeResult:
    """Run ``build`` on the working file; metadata ``rows`` (its row count) plus ``extra(con)``,
    read on the same connection right after the build."""
    with warehouse.connect() as con:
        n = build(con, warehouse.settings())
        more = dict(extra(con)) if extra is not None else {}
    return dg.MaterializeResult(metadata={"rows": n, **more})


def check_from_problems(problems: dict[str, int], what: str) -> dg.AssetCheckResult:
    """Passed when every count of ``problems`` (rule -> offending rows) is 0; the description
    lists them all after ``what`` (e.g. "rows breaking a bound")."""
    return dg.AssetCheckResult(
        passed=not any(problems.values()),
        description=f"{what}: " + ", ".join(f"{k}={v}" for k, v in problems.items()),
        metadata=problems,
    )


def verdict_check(
    warehouse: WarehouseResource, check: Callable[[duckdb.DuckDBPyConnection], tuple[bool, str]]
) -> dg.AssetCheckResult:
    """Run a ``sharegraph`` check returning (passed, description) on the working file."""
    with warehouse.connect() as con:
        ok, text = check(con)
    return dg.AssetCheckResult(passed=ok, description=text)
