"""Cascades stage: marts.cascades (thin wrapper over sharegraph.metrics.cascades)."""

from __future__ import annotations

import dagster as dg
import duckdb

from assets._common import check_specs, run_checks, verdict
from assets.keys import ATTRIBUTED, CASCADES, SHARE_NODES, STAGING
from assets.resources import WarehouseResource
from sharegraph.core import increments
from sharegraph.metrics import cascades


def cascades_well_formed(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """size >= 1, depth >= 0, virality >= 0 and 0 iff size 1 (1 at size 2), sizes sum to nodes."""
    return verdict(con, cascades.check_cascade_shape)


def cascades_gmv_within_attributed(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Sum of cascade GMV <= attributed GMV (¥)."""
    return verdict(con, cascades.check_cascade_gmv)


@dg.asset(key=CASCADES, kinds={"duckdb"}, group_name="marts",
          deps=[SHARE_NODES, ATTRIBUTED, STAGING["share_events"], STAGING["products"]],
          check_specs=check_specs(CASCADES, [cascades_well_formed, cascades_gmv_within_attributed]))
def cascades_mart(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per share cascade: size, depth, breadth, structural virality, clicks, GMV (¥).

    (Python name differs from the key so it does not shadow ``sharegraph.metrics.cascades``.)
    """
    with warehouse.connect() as con:
        n = cascades.refresh_cascades(con, warehouse.settings())
        singletons, largest, deepest, mean_nu = con.execute(
            "SELECT count(*) FILTER (WHERE size = 1), max(size), max(depth), "
            "avg(structural_virality) FILTER (WHERE size > 1) FROM marts.cascades"
        ).fetchone()
        checks = run_checks(con, [cascades_well_formed, cascades_gmv_within_attributed])
        build = increments.last_builds(con).get(cascades.TABLE)
    return dg.MaterializeResult(metadata={
        "rows": n, "build": build, "singletons": singletons, "largest": largest or 0, "deepest": deepest or 0,
        "mean_virality_non_trivial": float(mean_nu or 0.0),
    }, check_results=checks)
