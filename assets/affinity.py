"""Affinity stage: category affinity, directional, spill-over, expansion, weak categories.

Thin wrappers over ``sharegraph.metrics.affinity`` and ``sharegraph.metrics.expansion`` (docs/affinity.md).
"""

from __future__ import annotations

import dagster as dg
import duckdb

from assets._common import check_from_problems, check_specs, table_result
from assets.keys import (
    ATTRIBUTED,
    CATEGORY_AFFINITY,
    DIRECTIONAL,
    EXPANSION,
    SHARE_NODES,
    SPILLOVER,
    STAGING,
    WEAK,
)
from assets.resources import WarehouseResource
from sharegraph.core import increments
from sharegraph.metrics import affinity, expansion

PRODUCTS = STAGING["products"]
SHARE_EVENTS = STAGING["share_events"]


def _counts(con, table: str, by: str) -> dict[str, int]:
    return {f"rows_{k}": int(v) for k, v in
            con.execute(f"SELECT {by}, count(*) FROM {table} GROUP BY 1 ORDER BY 1").fetchall()}


def category_affinity_bounds(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """support and confidence in [0, 1]; n_ab <= min(n_a, n_b) <= n_total; q >= p."""
    bad = affinity.affinity_bounds_problems(con)
    return check_from_problems(bad, "rows breaking a bound")


def category_affinity_counts_match_orders(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """n_a and n_total (scope all, customers) equal COUNT(DISTINCT customer_id) of paid lines."""
    bad = affinity.affinity_count_mismatches(con)
    return dg.AssetCheckResult(
        passed=not any(bad.values()),
        description=(f"{bad['n_a_mismatch']} categories with n_a != direct count, "
                     f"{bad['n_total_mismatch']} rows with n_total != direct count"),
        metadata=bad,
    )


@dg.asset(key=CATEGORY_AFFINITY, kinds={"duckdb"}, group_name="affinity",
          deps=[ATTRIBUTED, PRODUCTS],
          check_specs=check_specs(CATEGORY_AFFINITY, [category_affinity_bounds, category_affinity_counts_match_orders]))
def category_affinity(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per ordered category pair per scope (all | merchant) per basis."""
    return table_result(warehouse, affinity.refresh_category_affinity, lambda con: {
        **_counts(con, "marts.category_affinity", "basis"),
        "build": increments.last_builds(con).get("marts.category_affinity"),
        "significant_pairs_all": int(con.execute(
            "SELECT count(*) FROM marts.category_affinity WHERE is_significant AND scope = 'all'"
        ).fetchone()[0])}, checks=[category_affinity_bounds, category_affinity_counts_match_orders])


def directional_affinity_bounds(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Rates and p-values in [0, 1]; n_a_then_b <= n_a."""
    bad = affinity.rate_mart_problems(con, "marts.directional_affinity", "n_a")
    return check_from_problems(bad, "rows breaking a bound")


@dg.asset(key=DIRECTIONAL, kinds={"duckdb"}, group_name="affinity",
          deps=[ATTRIBUTED, PRODUCTS],
          check_specs=check_specs(DIRECTIONAL, [directional_affinity_bounds], blocking=False))
def directional_affinity(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per ordered category pair (A then B within N days) per scope."""
    return table_result(warehouse, affinity.refresh_directional_affinity, lambda con: {
        "build": increments.last_builds(con).get("marts.directional_affinity")},
        checks=[directional_affinity_bounds])


def spillover_affinity_bounds(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Rates and p-values in [0, 1]; n_a_then_b <= n_clickers_a."""
    bad = affinity.rate_mart_problems(con, "marts.spillover_affinity", "n_clickers_a")
    return check_from_problems(bad, "rows breaking a bound")


@dg.asset(key=SPILLOVER, kinds={"duckdb"}, group_name="affinity",
          deps=[ATTRIBUTED, SHARE_NODES, SHARE_EVENTS, PRODUCTS],
          check_specs=check_specs(SPILLOVER, [spillover_affinity_bounds], blocking=False))
def spillover_affinity(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per (shared category, bought category): click on A, then a B purchase."""
    return table_result(warehouse, affinity.refresh_spillover_affinity, lambda con: {
        "build": increments.last_builds(con).get("marts.spillover_affinity")},
        checks=[spillover_affinity_bounds])


def expansion_recommendations_consistent(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Recommended categories are not sold yet; ranks 1..n; expected buyers bounded."""
    bad = expansion.expansion_problems(con)
    return check_from_problems(bad, "rows breaking a rule")


@dg.asset(key=EXPANSION, kinds={"duckdb"}, group_name="affinity",
          deps=[CATEGORY_AFFINITY, ATTRIBUTED, PRODUCTS],
          check_specs=check_specs(EXPANSION, [expansion_recommendations_consistent], blocking=False))
def expansion_recommendations(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per merchant per category it does not sell, ranked by expected GMV (¥)."""
    return table_result(warehouse, expansion.build_expansion_recommendations, lambda con: {
        "merchants": int(con.execute(
            "SELECT count(DISTINCT merchant_id) FROM marts.expansion_recommendations"
        ).fetchone()[0])}, checks=[expansion_recommendations_consistent])


@dg.asset(key=WEAK, kinds={"duckdb"}, group_name="affinity",
          deps=[CATEGORY_AFFINITY, ATTRIBUTED])
def weak_categories(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per merchant per category it sells, with its fit to the rest of the line."""
    return table_result(warehouse, expansion.build_weak_categories, lambda con: {
        "weak": int(con.execute(
            "SELECT count(*) FROM marts.weak_categories WHERE is_weak").fetchone()[0])})
