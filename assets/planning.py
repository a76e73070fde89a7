"""Planning stage: the configured default launch plan (docs/planner.md).

``marts.launch_plan`` = IMM seeds on the diffusion model learned from all past cascades
(sharegraph.metrics.planner). The commission simulator is a command (``sharegraph simulate``),
not an asset: its schemes are an analyst's input, not a pipeline setting.
"""

from __future__ import annotations

import dagster as dg

from assets.keys import (
    AGENT_UPLINE,
    ATTRIBUTED,
    AUDIENCE_EDGES,
    CLICK_EDGES,
    LAUNCH_PLAN,
    PERSON_ACTIVITY,
    SHARE_NODES,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.metrics.planner import DEFAULT_K, build_launch_plan


@dg.asset(key=LAUNCH_PLAN, kinds={"duckdb"}, group_name="planning",
          deps=[ATTRIBUTED, AGENT_UPLINE, SHARE_NODES, CLICK_EDGES, AUDIENCE_EDGES,
                PERSON_ACTIVITY, STAGING["share_events"]])
def launch_plan(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """IMM seeds (k=DEFAULT_K) with marginal expected buyers and ¥, the set's reach and interval."""
    with warehouse.connect() as con:
        n = build_launch_plan(con, warehouse.settings(), k=DEFAULT_K)
    return dg.MaterializeResult(metadata={"rows": n})
