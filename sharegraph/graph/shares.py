"""Share nodes: who made each share, and the cascade tree of shares and re-shares.

The sharer of a share is defined here once (:func:`sharers_sql`) and read by attribution,
``graph.share_nodes`` and ``graph.anomalies``: the actor of the share's earliest share or
re-share event, ties at one instant broken by the smallest ``event_id`` (so a repeated event
with the same timestamp cannot make the sharer depend on scan order).
"""

from __future__ import annotations

import duckdb

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph.forest import forest_violations, resolve_forest
from sharegraph.graph.products import product_lookup_sql

NODES = "graph.share_nodes"
NODES_INPUTS = ("share_events", "products")
"""Staging tables graph.share_nodes is built from (sharegraph/core/increments.py)."""
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
    """Build ``graph.share_nodes`` in full: one row per share/reshare, with cascade root and depth.

    Depth and root by pointer doubling over the parent array (no recursion); cycles in
    ``parent_share_id`` are cut at their smallest share id and flagged.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS graph")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _shares AS {_earliest_events_sql('true')}")
    resolve_forest(con, "SELECT share_id AS node_id, parent_share_id AS parent_id FROM _shares",
                   "_share_forest")
    create_table_as(
        con,
        NODES,
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
    return _finish(con)


def refresh_share_nodes(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Bring ``graph.share_nodes`` up to date with staging: append the new shares when it can.

    New shares usually hang below shares already in the table, whose rows they cannot change,
    so they are resolved alone and attached (:func:`_append`). When the new events can change
    an existing row, it is rebuilt in full; either way the table equals
    :func:`build_share_nodes`. Returns the number of rows in the table.
    """
    fp = increments.fingerprint(_earliest_events_sql("true"), product_lookup_sql(),
                                _APPEND_VERSION)
    with increments.maintained(con, NODES, fp, NODES_INPUTS) as build:
        if build.delta is None:
            return build_share_nodes(con, settings)
        if build.delta and not _append(con, build.delta):
            build.rebuilt()
            return build_share_nodes(con, settings)
    return _finish(con)


_APPEND_VERSION = "append new shares v1"
"""Part of the fingerprint: change it when :func:`_append` changes meaning."""


def _append(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> bool:
    """Insert the shares first seen in ``delta``'s batches; False (nothing written) when the
    batches can change rows already in the table.

    An existing row changes when a new event of its share is as early as its earliest one
    (another sharer, parent or product), when its parent was unknown and is a new share (the
    subtree moves under it; only such a link could close a cycle through old shares), or when
    it names a product of a new batch (its category). Otherwise the new shares form trees of
    their own whose roots either hang below an existing share (depth and root continue from
    it) or are roots; their cycles, self-loops and unknown parents resolve as in a full build.
    """
    # the earliest new event per share: for a share first seen now, its earliest event
    con.execute("CREATE OR REPLACE TEMP TABLE _sn_new AS "
                + _earliest_events_sql(delta.new_rows("share_events")))
    blocked = con.execute(
        f"""
        SELECT
          (SELECT count(*) FROM _sn_new n JOIN {NODES} o USING (share_id)
            WHERE n.occurred_at <= o.shared_at)
          + (SELECT count(*) FROM {NODES}
             WHERE flag = 'dangling' AND source_parent_share_id IN (SELECT share_id FROM _sn_new))
          + (SELECT count(*) FROM {NODES} WHERE product_id IN
               ({delta.new_keys('products', 'product_id')}))
        """).fetchone()[0]
    if blocked:
        con.execute("DROP TABLE _sn_new")
        return False
    con.execute(f"DELETE FROM _sn_new WHERE share_id IN (SELECT share_id FROM {NODES})")
    resolve_forest(con, "SELECT share_id AS node_id, parent_share_id AS parent_id FROM _sn_new",
                   "_sn_forest")
    con.execute(
        f"""
        INSERT INTO {NODES}
        WITH attach AS (  -- new trees whose root's parent is an existing share
            SELECT f.node_id AS local_root, o.share_id AS parent_share_id, o.root_share_id,
                   o.depth + 1 AS below
            FROM _sn_forest f JOIN {NODES} o ON o.share_id = f.given_parent
            WHERE f.flag = 'dangling'
        )
        SELECT s.share_id, s.actor_id, coalesce(self.parent_share_id, f.parent_id),
               s.parent_share_id, coalesce(tree.root_share_id, f.root_id),
               f.depth + coalesce(tree.below, 0), s.occurred_at, s.event_type, s.product_id,
               coalesce(s.category, p.category), s.channel,
               CASE WHEN self.local_root IS NULL THEN f.flag END
        FROM _sn_new s
        JOIN _sn_forest f ON f.node_id = s.share_id
        LEFT JOIN attach tree ON tree.local_root = f.root_id
        LEFT JOIN attach self ON self.local_root = f.node_id
        LEFT JOIN ({product_lookup_sql()}) p ON p.product_id = s.product_id
        """)
    con.execute("DROP TABLE _sn_new")
    con.execute("DROP TABLE _sn_forest")
    return True


def _earliest_events_sql(where: str) -> str:
    """SQL of the earliest share/reshare event of each share_id (one hash aggregate, no sort)
    among the events matching ``where``: the same event sharers_sql() takes the sharer from."""
    return f"""
        SELECT share_id, unnest(arg_min(
                   {{'actor_id': actor_id, 'parent_share_id': parent_share_id,
                    'occurred_at': occurred_at, 'event_type': event_type,
                    'product_id': product_id, 'category': category, 'channel': channel}},
                   {EARLIEST}))
        FROM staging.share_events
        WHERE {SHARE_EVENTS} AND ({where})
        GROUP BY share_id"""


def _finish(con: duckdb.DuckDBPyConnection) -> int:
    return finish_table(con, NODES,
                        "One row per share or re-share: its cascade tree (root, effective parent, "
                        "depth; root = 0). Cycles are cut at the smallest share id and flagged.",
                        SHARE_NODES_DOC)


def share_depths_ok(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """Asset-check helper: every share has a depth, roots have depth 0, children parent+1."""
    bad = forest_violations(con, "graph.share_nodes", "share_id", "parent_share_id",
                            "root_share_id")
    return bad == 0, bad
