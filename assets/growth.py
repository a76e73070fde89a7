"""Growth stage: k-factor, concentration, channel migration, group buys (over sharegraph.metrics.growth)."""

from __future__ import annotations

import dagster as dg

from assets._common import table_result, verdict_check
from assets.keys import (
    ATTRIBUTED,
    CHANNEL_MIGRATION,
    CONCENTRATION,
    GROUP_BUY_SUMMARY,
    GROUP_BUYS,
    KFACTOR,
    SHARE_NODES,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.metrics import growth


@dg.asset(key=KFACTOR, kinds={"duckdb"}, group_name="marts",
          deps=[ATTRIBUTED, SHARE_NODES])
def kfactor(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per weekly cohort of new customers plus an overall row: viral coefficient K."""
    with warehouse.connect() as con:
        n = growth.build_kfactor(con, warehouse.settings())
        k = con.execute("SELECT k_factor FROM marts.kfactor WHERE scope = 'overall'").fetchone()
    return dg.MaterializeResult(metadata={"rows": n, "overall_k": float(k[0]) if k else 0.0})


@dg.asset_check(asset=KFACTOR, blocking=True)
def kfactor_cohorts_partition(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Weekly cohorts add up to the overall row; K >= 0."""
    return verdict_check(warehouse, growth.check_kfactor)


@dg.asset(key=CONCENTRATION, kinds={"duckdb"}, group_name="marts", deps=[ATTRIBUTED])
def concentration(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per scope (overall, per merchant): Gini, top-1%/10% shares, KOL/peer label."""
    with warehouse.connect() as con:
        n = growth.build_concentration(con, warehouse.settings())
        row = con.execute(
            "SELECT gini, top1_share, label FROM marts.concentration WHERE scope = 'overall'"
        ).fetchone()
    meta: dict[str, object] = {"rows": n}
    if row:
        meta.update(gini=float(row[0] or 0.0), top1_share=float(row[1]), label=row[2])
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=CONCENTRATION, blocking=True)
def concentration_shares_in_unit_interval(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Gini, top-1% and top-10% shares in [0, 1]."""
    return verdict_check(warehouse, growth.check_concentration_bounds)


@dg.asset(key=CHANNEL_MIGRATION, kinds={"duckdb"}, group_name="marts", deps=[ATTRIBUTED])
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


@dg.asset(key=GROUP_BUYS, kinds={"duckdb"}, group_name="marts",
          deps=[ATTRIBUTED, SHARE_NODES, STAGING["orders"], STAGING["group_buys"], STAGING["products"]])
def group_buys(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per group buy: members, fill rate, time to fill, fission, refunds (¥)."""
    return table_result(warehouse, growth.build_group_buys)


@dg.asset_check(asset=GROUP_BUYS, blocking=True)
def group_buys_fill_rate_in_unit_interval(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """fill_rate in [0, 1]; fission members never exceed members."""
    return verdict_check(warehouse, growth.check_fill_rate_bounds)


@dg.asset(key=GROUP_BUY_SUMMARY, kinds={"duckdb"}, group_name="marts", deps=[GROUP_BUYS])
def group_buy_summary(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per month of group-buy openings: success rate, fill, fission, refunds (¥)."""
    return table_result(warehouse, growth.build_group_buy_summary)
