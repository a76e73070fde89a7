"""Influence and planning: marts.agent_influence and the default launch plan, in one step.

Thin wrappers over sharegraph.metrics.influence and sharegraph.metrics.planner
(docs/influence.md, docs/planner.md). ``marts.launch_plan`` = IMM seeds on the diffusion
model learned from all past cascades; the commission simulator is a command (``sharegraph
simulate``), not an asset: its schemes are an analyst's input, not a pipeline setting.

Why one step: the two read the same graph and neither reads the other, and the plan is mostly
one NumPy thread (sampling reverse-reachable sets) while the influence kernels leave a core
idle part of the time. Side by side on a second DuckDB cursor, at 10M orders in one process,
alternating: 43.2 and 41.3 s against 47.9 and 43.6 s one after the other (whole runs,
docs/performance.md "Session 13": the step 41.6 s on a full build and 44.2 s on a 1% day,
against 47.3 s and 47.9 s for the two steps). Each is still its own asset, selectable alone; both
are in the ``influence`` group, the stage whose time the step's is.
"""

# no ``from __future__ import annotations``: Dagster reads the ``context`` annotation
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import dagster as dg
import duckdb

from assets._common import check_specs, run_checks
from assets.keys import (
    AGENT_INFLUENCE,
    AGENT_UPLINE,
    ATTRIBUTED,
    AUDIENCE_EDGES,
    CASCADES,
    CLICK_EDGES,
    LAUNCH_PLAN,
    PEOPLE,
    PERSON_ACTIVITY,
    REFERRAL_EDGES,
    SHARE_NODES,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.core.warehouse import memory_limit_at_most
from sharegraph.metrics import influence
from sharegraph.metrics.planner import DEFAULT_K, build_launch_plan

SIDE_BY_SIDE_MEMORY = "2GB"
"""DuckDB's memory limit while both run: their arrays and IMM's reverse-reachable sets sit beside
DuckDB's buffer pool, whose cached blocks give way (10M orders: the run's peak RSS 6.5 GiB
instead of 8.7 GiB with DuckDB's 5 GB, and 7.3 GiB for the two one after the other)."""


def agent_influence_scores_finite(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Every score is finite (no NaN / inf) and PageRank, reach are non-negative."""
    ok, bad = influence.scores_finite(con)
    return dg.AssetCheckResult(passed=ok, description=f"{bad} rows with a non-finite score")


@dg.multi_asset(
    specs=[dg.AssetSpec(AGENT_INFLUENCE, kinds={"duckdb"}, group_name="influence",
                        deps=[ATTRIBUTED, PEOPLE, REFERRAL_EDGES, SHARE_NODES, CLICK_EDGES,
                              AGENT_UPLINE, CASCADES, STAGING["share_events"]],
                        description="One row per sharer / credited person / agent: influence "
                                    "metrics (docs/influence.md)."),
           dg.AssetSpec(LAUNCH_PLAN, kinds={"duckdb"}, group_name="influence",
                        deps=[ATTRIBUTED, AGENT_UPLINE, SHARE_NODES, CLICK_EDGES, AUDIENCE_EDGES,
                              PERSON_ACTIVITY, STAGING["share_events"]],
                        description=f"IMM seeds (k={DEFAULT_K}) with marginal expected buyers "
                                    "and ¥, the set's reach and interval.")],
    check_specs=check_specs(AGENT_INFLUENCE, [agent_influence_scores_finite]),
    can_subset=True, name="influence_and_launch_plan")
def influence_and_launch_plan(context: dg.AssetExecutionContext,
                              warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """The selected ones of the two; the plan in a worker thread on its own cursor."""
    wanted = context.selected_asset_keys
    settings = warehouse.settings()
    both = {AGENT_INFLUENCE, LAUNCH_PLAN} <= wanted
    with warehouse.connect() as con, con.cursor() as cur, ThreadPoolExecutor(1) as pool, \
            (memory_limit_at_most(con, SIDE_BY_SIDE_MEMORY, settings.memory_limit) if both
             else nullcontext()):
        plan = pool.submit(build_launch_plan, cur, settings, DEFAULT_K) if LAUNCH_PLAN in wanted else None
        if AGENT_INFLUENCE in wanted:
            n = influence.build_agent_influence(con, settings)
            top = con.execute(
                "SELECT person_id, influence_gmv FROM marts.agent_influence "
                "ORDER BY influence_gmv DESC, person_id LIMIT 5").fetchall()
            checks = run_checks(con, [agent_influence_scores_finite])
        seeds = plan.result() if plan else 0
    if AGENT_INFLUENCE in wanted:
        yield dg.MaterializeResult(asset_key=AGENT_INFLUENCE, metadata={
            "rows": n, "top_by_influence_gmv": ", ".join(f"{p} ¥{g:,.2f}" for p, g in top)},
            check_results=checks)
    if plan:
        yield dg.MaterializeResult(asset_key=LAUNCH_PLAN, metadata={"rows": seeds})
