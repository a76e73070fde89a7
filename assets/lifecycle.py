"""Lifecycle and integrity stage: agent funnel, cohorts, upline quality and referral-integrity
flags (thin wrappers over sharegraph.metrics.lifecycle and sharegraph.metrics.integrity)."""

from __future__ import annotations

import dagster as dg
import duckdb

from assets._common import check_specs, table_result, verdict
from assets.keys import (
    AGENT_COHORTS,
    AGENT_FUNNEL,
    AGENT_UPLINE,
    ANOMALIES,
    ATTRIBUTED,
    CLICK_EDGES,
    INTEGRITY_FLAGS,
    PEOPLE,
    REFERRAL_EDGES,
    SHARE_NODES,
    STAGING,
    UPLINE_QUALITY,
)
from assets.resources import WarehouseResource
from sharegraph.metrics import integrity, lifecycle


def agent_funnel_stages_nested(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """A click needs a share; active months are not negative."""
    return verdict(con, lifecycle.check_funnel_order)


@dg.asset(key=AGENT_FUNNEL, kinds={"duckdb"}, group_name="lifecycle",
          deps=[ATTRIBUTED, SHARE_NODES, CLICK_EDGES, AGENT_UPLINE],
          check_specs=check_specs(AGENT_FUNNEL, [agent_funnel_stages_nested]))
def agent_funnel(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per agent: joined -> first share -> first click -> first sale, churn."""
    return table_result(warehouse, lifecycle.build_agent_funnel, lambda con: dict(zip(
        ("sold", "churned"), con.execute(
            "SELECT count(first_sale_at), count(*) FILTER (WHERE churned) FROM marts.agent_funnel"
        ).fetchone(), strict=True)), checks=[agent_funnel_stages_nested])


def agent_cohorts_retention_in_unit_interval(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Retention in [0, 1]; active agents never exceed the cohort."""
    return verdict(con, lifecycle.check_cohort_bounds)


@dg.asset(key=AGENT_COHORTS, kinds={"duckdb"}, group_name="lifecycle",
          deps=[AGENT_FUNNEL, ATTRIBUTED, SHARE_NODES],
          check_specs=check_specs(AGENT_COHORTS, [agent_cohorts_retention_in_unit_interval]))
def agent_cohorts(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per (recruitment month, months since joining): retention, GMV per agent."""
    return table_result(warehouse, lifecycle.build_agent_cohorts,
                        checks=[agent_cohorts_retention_in_unit_interval])


@dg.asset(key=UPLINE_QUALITY, kinds={"duckdb"}, group_name="lifecycle",
          deps=[AGENT_FUNNEL, AGENT_UPLINE, ATTRIBUTED, SHARE_NODES])
def upline_quality(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per upline with enough recruits: recruits' activation and retention."""
    return table_result(warehouse, lifecycle.build_upline_quality)


def integrity_flags_have_evidence(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """Every flag has a known rule, evidence in both languages and a ¥ at risk >= 0."""
    return verdict(con, integrity.check_flags)


@dg.asset(key=INTEGRITY_FLAGS, kinds={"duckdb"}, group_name="lifecycle",
          deps=[ATTRIBUTED, SHARE_NODES, AGENT_UPLINE, PEOPLE, REFERRAL_EDGES, ANOMALIES,
                STAGING["orders"], STAGING["share_events"], STAGING["group_buys"]],
          check_specs=check_specs(INTEGRITY_FLAGS, [integrity_flags_have_evidence]))
def integrity_flags(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per (person, rule): self-referral, rings, refund abuse, click bursts, ¥ at risk."""
    return table_result(warehouse, integrity.build_integrity_flags, lambda con: {
        rule: n for rule, n in con.execute(
            "SELECT rule, count(*) FROM marts.integrity_flags GROUP BY 1").fetchall()},
        checks=[integrity_flags_have_evidence])
