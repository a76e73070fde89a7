"""Share nodes: who made each share, and the cascade tree of shares and re-shares.

The sharer of a share is defined here once (:func:`sharers_sql`) and read by attribution,
``graph.share_nodes`` and ``graph.anomalies``: the actor of the share's earliest share or
re-share event, ties at one instant broken by the smallest ``event_id`` (so a repeated event
with the same timestamp cannot make the sharer depend on scan order).
"""

from __future__ import annotations

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph.forest import forest_violations, resolve_forest
from sharegraph.graph.products import product_lookup_sql

SHARE_EVENTS = "event_type IN ('share', 'reshare')"
"""SQL filter: the events that make a share (clicks only view one)."""

EARLIEST = "(occurred_at, event_id)"
"""SQL sort key of "earliest" among a share's events: time, then event id."""


def sharers_sql(events: str = "staging.share_events") -> str:
    """SQL of one row per share_id: ``sharer_id``, the actor of its earliest share event."""
    return (f"SELECT share_id, arg_min(actor_id, {EARLIEST}) AS sharer_id "
            f"FROM {events} WHERE {SHARE_EVENTS} GROUP BY share_id")


SHARE_NODES_DOC = {
    "share_id": "The share (a post or re-post of a link).",
    "actor_id": "Who shared it (actor of its earliest share/reshare event).",
    "parent_share_id": "Effective parent share in the cascade tree (NULL for a root, including a root made by cutting a cycle or an unknown parent).",
    "source_parent_share_id": "parent_share_id as given in share_events (may be unknown, itself, or part of a cycle).",
    "root_share_id": "Root of the cascade this share belongs to.",
    "depth": "Generations below the root (root = 0).",
    "shared_at": "When the share was made (local time).",
    "event_type": "share or reshare.",
    "product_id": "Product shared (optional).",
    "category": "Category shared: share_events.category, else products.category.",
    "channel": "Where it was shared (moments, wechat_group, ...).",
    "flag": "NULL, or the graph problem fixed here: self_loop | cycle_cut | dangling (parent unknown); see graph.anomalies.",
}


def build_share_nodes(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.share_nodes``: one row per share/reshare, with cascade root and depth.

    Depth and root by pointer doubling over the parent array (no recursion); cycles in
    ``parent_share_id`` are cut at their smallest share id and flagged.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS graph")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _shares AS
        -- the earliest share/reshare event of each share_id (one hash aggregate, no sort):
        -- the same event sharers_sql() takes the sharer from
        SELECT share_id, unnest(arg_min(
                   {{'actor_id': actor_id, 'parent_share_id': parent_share_id,
                    'occurred_at': occurred_at, 'event_type': event_type,
                    'product_id': product_id, 'category': category, 'channel': channel}},
                   {EARLIEST}))
        FROM staging.share_events
        WHERE {SHARE_EVENTS}
        GROUP BY share_id
        """
    )
    resolve_forest(con, "SELECT share_id AS node_id, parent_share_id AS parent_id FROM _shares",
                   "_share_forest")
    create_table_as(
        con,
        "graph.share_nodes",
        f"""
        -- grain: one row per share_id made by a share or reshare event
        SELECT s.share_id, s.actor_id, f.parent_id AS parent_share_id,
               s.parent_share_id AS source_parent_share_id,
               f.root_id AS root_share_id, f.depth, s.occurred_at AS shared_at, s.event_type,
               s.product_id, coalesce(s.category, p.category) AS category, s.channel, f.flag
        FROM _shares s
        JOIN _share_forest f ON f.node_id = s.share_id
        LEFT JOIN ({product_lookup_sql()}) p ON p.product_id = s.product_id
        """,
        ids=("share_id", "actor_id", "parent_share_id", "source_parent_share_id", "root_share_id"),
    )
    con.execute("DROP TABLE _shares")
    con.execute("DROP TABLE _share_forest")
    return finish_table(con, "graph.share_nodes",
                        "One row per share or re-share: its cascade tree (root, effective parent, "
                        "depth; root = 0). Cycles are cut at the smallest share id and flagged.",
                        SHARE_NODES_DOC)


def share_depths_ok(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """Asset-check helper: every share has a depth, roots have depth 0, children parent+1."""
    bad = forest_violations(con, "graph.share_nodes", "share_id", "parent_share_id",
                            "root_share_id")
    return bad == 0, bad
