"""Graph stage: attribution and the graph.* tables (thin wrappers over sharegraph.graph)."""

from __future__ import annotations

import dagster as dg
import duckdb

from assets._common import check_specs, run_checks, table_result
from assets.keys import (
    AGENT_UPLINE,
    ANOMALIES,
    ATTRIBUTED,
    AUDIENCE_EDGES,
    CLICK_EDGES,
    PEOPLE,
    PERSON_ACTIVITY,
    REFERRAL_EDGES,
    SHARE_NODES,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.core import increments
from sharegraph.graph import attribution, audience
from sharegraph.graph.anomalies import build_anomalies
from sharegraph.graph.clicks import TABLE as CLICK_EDGES_TABLE
from sharegraph.graph.clicks import refresh_click_edges
from sharegraph.graph.people import PEOPLE as PEOPLE_TABLE
from sharegraph.graph.people import REFERRAL_EDGES as REFERRAL_EDGES_TABLE
from sharegraph.graph.people import refresh_people, refresh_referral_edges
from sharegraph.graph.shares import NODES, refresh_share_nodes, share_depths_ok
from sharegraph.graph.upline import build_agent_upline, upline_is_forest


def attributed_gmv_conserved(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Attributed GMV + organic GMV = total paid GMV (exact DECIMAL ¥)."""
    c = attribution.gmv_conservation(con)
    return dg.AssetCheckResult(
        passed=bool(c["ok"]),
        description=(f"attributed ¥{c['attributed_gmv']} + organic ¥{c['organic_gmv']} vs paid "
                     f"¥{c['paid_gmv']} (staging paid ¥{c['staging_paid_gmv']})"),
        metadata={k: str(v) for k, v in c.items()},
    )


@dg.asset(key=ATTRIBUTED, kinds={"duckdb"}, group_name="graph",
          deps=[STAGING["orders"], STAGING["share_events"], STAGING["products"]],
          check_specs=check_specs(ATTRIBUTED, [attributed_gmv_conserved]))
def attributed_orders(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per order line: credited person and attribution rule (docs/influence.md)."""
    with warehouse.connect() as con:
        n = attribution.refresh_attributed_orders(con, warehouse.settings())
        by_rule = dict(con.execute(
            "SELECT rule, count(*) FROM graph.attributed_orders GROUP BY 1").fetchall())
        checks = run_checks(con, [attributed_gmv_conserved])
        build = increments.last_builds(con).get(attribution.TABLE)
    return dg.MaterializeResult(metadata={"rows": n, "build": build,
                                          **{f"rule_{k}": v for k, v in by_rule.items()}},
                                check_results=checks)


def share_nodes_depths(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Every share has a depth and root; roots depth 0; children = parent depth + 1."""
    ok, bad = share_depths_ok(con)
    return dg.AssetCheckResult(passed=ok, description=f"{bad} shares with inconsistent root/depth")


@dg.asset(key=SHARE_NODES, kinds={"duckdb"}, group_name="graph",
          deps=[STAGING["share_events"], STAGING["products"]],
          check_specs=check_specs(SHARE_NODES, [share_nodes_depths]))
def share_nodes(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per share/reshare with cascade root and depth."""
    with warehouse.connect() as con:
        n = refresh_share_nodes(con, warehouse.settings())
        roots, flagged = con.execute(
            "SELECT count(*) FILTER (WHERE depth = 0), count(flag) FROM graph.share_nodes"
        ).fetchall()[0]
        checks = run_checks(con, [share_nodes_depths])
        build = increments.last_builds(con).get(NODES)
    return dg.MaterializeResult(metadata={"rows": n, "build": build, "cascades": roots, "flagged": flagged},
                                check_results=checks)


@dg.asset(key=CLICK_EDGES, kinds={"duckdb"}, group_name="graph",
          deps=[SHARE_NODES, STAGING["share_events"]])
def click_edges(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per sharer and clicker: clicks on the sharer's shares."""
    return table_result(warehouse, refresh_click_edges, lambda con: {
        "build": increments.last_builds(con).get(CLICK_EDGES_TABLE)})


def upline_forest_acyclic(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """After cycle breaking every upline edge goes exactly one level down (hence acyclic)."""
    ok, bad = upline_is_forest(con)
    return dg.AssetCheckResult(passed=ok, description=f"{bad} agents violate depth(upline)+1")


@dg.asset(key=AGENT_UPLINE, kinds={"duckdb"}, group_name="graph", deps=[STAGING["agents"]],
          check_specs=check_specs(AGENT_UPLINE, [upline_forest_acyclic]))
def agent_upline(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per agent: effective upline edge in the agent forest."""
    return table_result(warehouse, build_agent_upline, checks=[upline_forest_acyclic])


@dg.asset(key=PEOPLE, kinds={"duckdb"}, group_name="graph",
          deps=[ATTRIBUTED, AGENT_UPLINE, STAGING["share_events"]])
def people(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per person: role, firsts, acquirer, influence-network position."""
    return table_result(warehouse, refresh_people, lambda con: {
        **_counts_by(con, PEOPLE_TABLE, "role"), "build": increments.last_builds(con).get(PEOPLE_TABLE)})


@dg.asset(key=REFERRAL_EDGES, kinds={"duckdb"}, group_name="graph", deps=[ATTRIBUTED])
def referral_edges(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per merchant, sharer and buyer with credited orders and GMV (¥)."""
    return table_result(warehouse, refresh_referral_edges, lambda con: {
        "build": increments.last_builds(con).get(REFERRAL_EDGES_TABLE)})


@dg.multi_asset(
    specs=[dg.AssetSpec(AUDIENCE_EDGES, kinds={"duckdb"}, group_name="graph",
                        deps=[CLICK_EDGES, ATTRIBUTED, AGENT_UPLINE],
                        description="One row per sharer and viewer: who reaches whom (clicks, "
                                    "credited purchases, agent upline)."),
           dg.AssetSpec(PERSON_ACTIVITY, kinds={"duckdb"}, group_name="graph",
                        deps=[AUDIENCE_EDGES, ATTRIBUTED, STAGING["share_events"]],
                        description="One row per person in the audience graph: shares, clicks, "
                                    "credited purchases, audience, re-shares, spend (¥).")],
    name="audience")
def audience_tables(warehouse: WarehouseResource):
    """The launch planner's audience graph and per-person activity, kept per person."""
    with warehouse.connect() as con:
        n = audience.refresh_audience(con, warehouse.settings())
        edges = con.execute(f"SELECT count(*) FROM {audience.EDGES}").fetchone()[0]
        build = increments.last_builds(con).get(audience.ACTIVITY)
    yield dg.MaterializeResult(asset_key=AUDIENCE_EDGES, metadata={"rows": edges, "build": build})
    yield dg.MaterializeResult(asset_key=PERSON_ACTIVITY, metadata={"rows": n, "build": build})


@dg.asset(key=ANOMALIES, kinds={"duckdb"}, group_name="graph",
          deps=[STAGING["orders"], STAGING["share_events"], SHARE_NODES, AGENT_UPLINE, PEOPLE,
                REFERRAL_EDGES])
def anomalies(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per flagged graph problem (self-referral, cycles, dangling references)."""
    return table_result(warehouse, build_anomalies,
                        lambda con: _counts_by(con, "graph.anomalies", "kind"))


def _counts_by(con, table: str, column: str) -> dict[str, int]:
    """Row counts per value of ``column``, as metadata ``<column>_<value>``."""
    rows = con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY 1").fetchall()
    return {f"{column}_{value}": n for value, n in rows}
