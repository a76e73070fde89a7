"""Every asset key of the pipeline, in one place. Key prefix = DuckDB schema: ``staging/orders``
is the table ``staging.orders``; ``reports/*`` are HTML files, ``warehouse/published`` the
analysts' snapshot. Staging keys come from the data contract (``sharegraph.core.contract``).
"""

from __future__ import annotations

import dagster as dg

from sharegraph.core.contract import TABLES


def _key(prefix: str, name: str) -> dg.AssetKey:
    return dg.AssetKey([prefix, name])


# ingest: one key per contract table; the daily load's partitioned record
STAGING: dict[str, dg.AssetKey] = {name: _key("staging", name) for name in TABLES}
DAILY_EXPORTS = _key("raw", "daily_exports")

# graph
ATTRIBUTED = _key("graph", "attributed_orders")
SHARE_NODES = _key("graph", "share_nodes")
CLICK_EDGES = _key("graph", "click_edges")
AGENT_UPLINE = _key("graph", "agent_upline")
PEOPLE = _key("graph", "people")
REFERRAL_EDGES = _key("graph", "referral_edges")
ANOMALIES = _key("graph", "anomalies")
AUDIENCE_EDGES = _key("graph", "audience_edges")
PERSON_ACTIVITY = _key("graph", "person_activity")

# marts
AGENT_INFLUENCE = _key("marts", "agent_influence")
CASCADES = _key("marts", "cascades")
KFACTOR = _key("marts", "kfactor")
CONCENTRATION = _key("marts", "concentration")
CHANNEL_MIGRATION = _key("marts", "channel_migration")
GROUP_BUYS = _key("marts", "group_buys")
GROUP_BUY_SUMMARY = _key("marts", "group_buy_summary")
CATEGORY_AFFINITY = _key("marts", "category_affinity")
DIRECTIONAL = _key("marts", "directional_affinity")
SPILLOVER = _key("marts", "spillover_affinity")
EXPANSION = _key("marts", "expansion_recommendations")
WEAK = _key("marts", "weak_categories")
TABLE_NOTES = _key("marts", "table_notes")
AGENT_FUNNEL = _key("marts", "agent_funnel")
AGENT_COHORTS = _key("marts", "agent_cohorts")
UPLINE_QUALITY = _key("marts", "upline_quality")
INTEGRITY_FLAGS = _key("marts", "integrity_flags")
LAUNCH_PLAN = _key("marts", "launch_plan")
HEADLINE = _key("marts", "headline_metrics")

# reports (files) and the published snapshot
REPORT_INFLUENCE = _key("reports", "influence")
REPORT_CASCADES = _key("reports", "cascades")
REPORT_EXPANSION = _key("reports", "expansion")
REPORT_INDEX = _key("reports", "index")
REPORT_LIFECYCLE = _key("reports", "lifecycle")
REPORT_LAUNCH_PLAN = _key("reports", "launch_plan")
REPORT_TRENDS = _key("reports", "trends")
REPORT_GLOSSARY = _key("reports", "glossary")
PUBLISHED = _key("warehouse", "published")


def table_key(qualified: str) -> dg.AssetKey:
    """The key of the asset that builds warehouse table ``schema.table``."""
    return dg.AssetKey(qualified.split("."))


def declared() -> set[dg.AssetKey]:
    """Every key this module declares (the code location defines exactly these)."""
    keys = {v for v in globals().values() if isinstance(v, dg.AssetKey)}
    return keys | set(STAGING.values())
