"""Bodies the stage modules share: build a table and run its checks on the working DuckDB file.

Not a stage: it defines no asset or check, only the few lines every thin wrapper repeated
(open the working file, call the ``sharegraph`` function, wrap its result for Dagster).

Checks run inside their asset's step (``check_specs`` on the asset, ``check_results`` in its
``MaterializeResult``), on the connection that just built the table: a check of its own
step cost ~0.1-0.3 s of Dagster and connection overhead for a query of milliseconds. A
blocking check that fails still fails the step, so downstream assets do not run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import dagster as dg
import duckdb

from assets.resources import WarehouseResource
from sharegraph.core.config import Settings

Build = Callable[[duckdb.DuckDBPyConnection, Settings], int]
"""A ``sharegraph`` table builder: (connection, settings) -> rows written."""

Check = Callable[[duckdb.DuckDBPyConnection], dg.AssetCheckResult]
"""An asset check run in its asset's step; its name is the function's, its description the
first paragraph of its docstring."""


#: every asset's checks, by asset key, as declared by ``check_specs``
CHECKS: dict[dg.AssetKey, list[Check]] = {}


def check_specs(asset: dg.AssetKey, checks: Sequence[Check], *, blocking: bool = True
                ) -> list[dg.AssetCheckSpec]:
    """The ``check_specs`` of an asset whose step runs ``checks`` (see ``run_checks``)."""
    CHECKS[asset] = list(checks)
    return [dg.AssetCheckSpec(c.__name__, asset=asset, blocking=blocking,
                              description=(c.__doc__ or "").strip().split("\n\n")[0] or None)
            for c in checks]


def run_checks(con: duckdb.DuckDBPyConnection, checks: Sequence[Check]) -> list[dg.AssetCheckResult]:
    """Each check's result, named after its function (for ``check_results``)."""
    return [c(con)._replace(check_name=c.__name__) for c in checks]


class ChecksFailed(RuntimeError):
    """A table built outside the Dagster job (the Spark engine's) failed one of its checks."""


def check_tables(con: duckdb.DuckDBPyConnection, keys: Sequence[dg.AssetKey]) -> list[str]:
    """Run the checks of the assets ``keys`` on tables that were built outside their steps
    (``--engine spark`` loads them): the same checks, and a failure stops the run as a failed
    step would. Returns one line per check that passed, for the log."""
    passed, failed = [], []
    for key in keys:
        for check in CHECKS.get(key, []):
            result = check(con)
            line = f"{key.to_user_string()} {check.__name__}: {result.description}"
            (passed if result.passed else failed).append(line)
    if failed:
        raise ChecksFailed("checks failed on the Spark engine's tables:\n" + "\n".join(failed))
    return passed


def table_result(
    warehouse: WarehouseResource,
    build: Build,
    extra: Callable[[duckdb.DuckDBPyConnection], Mapping[str, object]] | None = None,
    checks: Sequence[Check] = (),
) -> dg.MaterializeResult:
    """Run ``build`` on the working file; metadata ``rows`` (its row count) plus ``extra(con)``,
    read on the same connection right after the build, then ``checks`` (the asset's
    ``check_specs``)."""
    with warehouse.connect() as con:
        n = build(con, warehouse.settings())
        more = dict(extra(con)) if extra is not None else {}
        results = run_checks(con, checks)
    return dg.MaterializeResult(metadata={"rows": n, **more}, check_results=results)


def check_from_problems(problems: dict[str, int], what: str) -> dg.AssetCheckResult:
    """Passed when every count of ``problems`` (rule -> offending rows) is 0; the description
    lists them all after ``what`` (e.g. "rows breaking a bound")."""
    return dg.AssetCheckResult(
        passed=not any(problems.values()),
        description=f"{what}: " + ", ".join(f"{k}={v}" for k, v in problems.items()),
        metadata=problems,
    )


def verdict(
    con: duckdb.DuckDBPyConnection, check: Callable[[duckdb.DuckDBPyConnection], tuple[bool, str]]
) -> dg.AssetCheckResult:
    """The result of a ``sharegraph`` check returning (passed, description)."""
    ok, text = check(con)
    return dg.AssetCheckResult(passed=ok, description=text)
