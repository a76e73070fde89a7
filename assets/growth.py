"""Growth stage: k-factor, concentration, channel migration, group buys (over sharegraph.metrics.growth)."""

from __future__ import annotations

import dagster as dg
import duckdb

from assets._common import check_specs, run_checks, table_result, verdict
from assets.keys import (
    ATTRIBUTED,
    CHANNEL_MIGRATION,
    CONCENTRATION,
    GROUP_BUY_SUMMARY,
    GROUP_BUYS,
    KFACTOR,
    PEOPLE,
    SHARE_NODES,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.metrics import growth


def kfactor_cohorts_partition(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Weekly cohorts add up to the overall row; K >= 0."""
    return verdict(con, growth.check_kfactor)


@dg.asset(key=KFACTOR, kinds={"duckdb"}, group_name="marts",
          deps=[ATTRIBUTED, PEOPLE, SHARE_NODES],
          check_specs=check_specs(KFACTOR, [kfactor_cohorts_partition]))
def kfactor(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per weekly cohort of new customers plus an overall row: viral coefficient K."""
    with warehouse.connect() as con:
        n = growth.build_kfactor(con, warehouse.settings())
        k = con.execute("SELECT k_factor FROM marts.kfactor WHERE scope = 'overall'").fetchone()
        checks = run_checks(con, [kfactor_cohorts_partition])
    return dg.MaterializeResult(metadata={"rows": n, "overall_k": float(k[0]) if k else 0.0},
                                check_results=checks)


def concentration_shares_in_unit_interval(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Gini, top-1% and top-10% shares in [0, 1]."""
    return verdict(con, growth.check_concentration_bounds)


@dg.asset(key=CONCENTRATION, kinds={"duckdb"}, group_name="marts", deps=[ATTRIBUTED],
          check_specs=check_specs(CONCENTRATION, [concentration_shares_in_unit_interval]))
def concentration(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per scope (overall, per merchant): Gini, top-1%/10% shares, KOL/peer label."""
    with warehouse.connect() as con:
        n = growth.build_concentration(con, warehouse.settings())
        row = con.execute(
            "SELECT gini, top1_share, label FROM marts.concentration WHERE scope = 'overall'"
        ).fetchone()
        checks = run_checks(con, [concentration_shares_in_unit_interval])
    meta: dict[str, object] = {"rows": n}
    if row:
        meta.update(gini=float(row[0] or 0.0), top1_share=float(row[1]), label=row[2])
    return dg.MaterializeResult(metadata=meta, check_results=checks)


@dg.asset(key=CHANNEL_MIGRATION, kinds={"duckdb"}, group_name="marts", deps=[ATTRIBUTED, PEOPLE])
def channel_migration(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per month: repeat customers' paid orders on social vs platform channels."""
    with warehouse.connect() as con:
        n = growth.build_channel_migration(con, warehouse.settings())
        first, last = con.execute(
            "SELECT arg_min(social_order_share, month), arg_max(social_order_share, month) "
            "FROM marts.channel_migration"
        ).fetchone()
    return dg.MaterializeResult(metadata={
        "rows": n, "social_share_first_month": float(first or 0.0),
        "social_share_last_month": float(last or 0.0),
    })


def group_buys_fill_rate_in_unit_interval(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """fill_rate in [0, 1]; fission members never exceed members."""
    return verdict(con, growth.check_fill_rate_bounds)


@dg.asset(key=GROUP_BUYS, kinds={"duckdb"}, group_name="marts",
          deps=[ATTRIBUTED, SHARE_NODES, STAGING["orders"], STAGING["group_buys"], STAGING["products"]],
          check_specs=check_specs(GROUP_BUYS, [group_buys_fill_rate_in_unit_interval]))
def group_buys(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per group buy: members, fill rate, time to fill, fission, refunds (¥)."""
    return table_result(warehouse, growth.build_group_buys,
                        checks=[group_buys_fill_rate_in_unit_interval])


@dg.asset(key=GROUP_BUY_SUMMARY, kinds={"duckdb"}, group_name="marts", deps=[GROUP_BUYS])
def group_buy_summary(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per month of group-buy openings: success rate, fill, fission, refunds (¥)."""
    return table_result(warehouse, growth.build_group_buy_summary)
