"""Influence stage: marts.agent_influence (thin wrapper over sharegraph.metrics.influence)."""

from __future__ import annotations

import dagster as dg
import duckdb

from assets._common import check_specs, run_checks
from assets.keys import (
    AGENT_INFLUENCE,
    AGENT_UPLINE,
    ATTRIBUTED,
    CLICK_EDGES,
    PEOPLE,
    REFERRAL_EDGES,
    SHARE_NODES,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.metrics import influence


def agent_influence_scores_finite(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Every score is finite (no NaN / inf) and PageRank, reach are non-negative."""
    ok, bad = influence.scores_finite(con)
    return dg.AssetCheckResult(passed=ok, description=f"{bad} rows with a non-finite score")


@dg.asset(key=AGENT_INFLUENCE, kinds={"duckdb"}, group_name="influence",
          deps=[ATTRIBUTED, PEOPLE, REFERRAL_EDGES, SHARE_NODES, CLICK_EDGES, AGENT_UPLINE,
                STAGING["share_events"]],
          check_specs=check_specs(AGENT_INFLUENCE, [agent_influence_scores_finite]))
def agent_influence(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per sharer / credited person / agent: influence metrics (docs/influence.md)."""
    with warehouse.connect() as con:
        n = influence.build_agent_influence(con, warehouse.settings())
        top = con.execute(
            "SELECT person_id, influence_gmv FROM marts.agent_influence "
            "ORDER BY influence_gmv DESC, person_id LIMIT 5").fetchall()
        checks = run_checks(con, [agent_influence_scores_finite])
    return dg.MaterializeResult(metadata={
        "rows": n, "top_by_influence_gmv": ", ".join(f"{p} ¥{g:,.2f}" for p, g in top)},
        check_results=checks)
