"""Click edges: who clicks whose shares, counted once for every reader.

``graph.click_edges`` holds one row per sharer and clicker: the clicks by that person on the
shares that sharer made (the sharer of a share as in ``graph.share_nodes``; clicks on one's
own shares left out). Influence (circle ties, clicks received), the launch planner (the
audience graph) and the agent funnel (clicks received, first click) all need these counts;
at 10M orders the join of ~20M click events to their shares is seconds each time, so it is
made once and, on a daily run, only what is new is counted and added.
"""

from __future__ import annotations

import duckdb

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph.shares import NODES, NODES_INPUTS, SHARE_EVENTS

TABLE = "graph.click_edges"
INPUTS = ("share_events",)
"""Staging tables graph.click_edges reads (besides graph.share_nodes)."""

CLICK_EDGES_DOC = {
    "sharer_id": "Who made the shares clicked (graph.share_nodes.actor_id).",
    "clicker_id": "Who clicked them (share_events.actor_id of a click); never the sharer.",
    "clicks": "Click events by the clicker on the sharer's shares and re-shares.",
    "first_click_at": "The clicker's first click on one of them (local time).",
}


def click_edges_sql(events: str = "staging.share_events", shares: str = NODES) -> str:
    """SQL of one row per (sharer_id, clicker_id) from the click rows of ``events``
    (event_type, share_id, actor_id, occurred_at) on the shares of ``shares``
    (share_id, actor_id = the sharer). The one definition of a click edge: the planner
    runs it on its scope."""
    return f"""
        SELECT s.actor_id AS sharer_id, c.actor_id AS clicker_id, count(*)::BIGINT AS clicks,
               min(c.occurred_at) AS first_click_at
        FROM {events} c JOIN {shares} s ON s.share_id = c.share_id
        WHERE c.event_type = 'click' AND c.actor_id <> s.actor_id
        GROUP BY ALL"""


def build_click_edges(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.click_edges`` in full. Returns the number of rows."""
    del settings  # no tunables
    con.execute("CREATE SCHEMA IF NOT EXISTS graph")
    create_table_as(con, TABLE, click_edges_sql(), ids=("sharer_id", "clicker_id"))
    return _finish(con)


def refresh_click_edges(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Bring ``graph.click_edges`` up to date after a load by adding what is new.

    While ``graph.share_nodes`` has only been appended to, a share keeps its sharer, so the
    counts of before stay right and only grow: by the clicks of the new batches, and by the
    earlier clicks on the shares first seen now (they named a share not known then). Those
    clicks are counted alone and merged in (counts add up, first clicks take the earlier).
    A rebuilt share_nodes table (its rebuild id is in the fingerprint) or a status change of
    a share event rebuilds in full. Equals :func:`build_click_edges`.
    """
    up = increments.rebuild_id(con, NODES, NODES_INPUTS)
    fp = increments.fingerprint(click_edges_sql(), _ADD_VERSION, f"upstream rebuild {up}")
    with increments.maintained(con, TABLE, fp, INPUTS) as build:
        delta = build.delta
        if delta and (up is None or delta.changes.get("share_events")):
            build.rebuilt()
        if build.how == "full":
            return build_click_edges(con, settings)
        if delta:
            new = delta.new_rows("share_events")
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _ce_new_shares AS
                SELECT share_id FROM staging.share_events WHERE {SHARE_EVENTS} AND {new}
                EXCEPT SELECT share_id FROM staging.share_events WHERE {SHARE_EVENTS} AND NOT {new}""")
            clicks = (f"(SELECT * FROM staging.share_events WHERE {new} "
                      f"OR share_id IN (SELECT share_id FROM _ce_new_shares))")
            con.execute(f"""
                MERGE INTO {TABLE} t USING ({click_edges_sql(clicks)}) d
                ON t.sharer_id = d.sharer_id AND t.clicker_id = d.clicker_id
                WHEN MATCHED THEN UPDATE SET clicks = t.clicks + d.clicks,
                     first_click_at = least(t.first_click_at, d.first_click_at)
                WHEN NOT MATCHED THEN INSERT VALUES (d.sharer_id, d.clicker_id, d.clicks,
                                                     d.first_click_at)""")
            con.execute("DROP TABLE _ce_new_shares")
    return _finish(con)


_ADD_VERSION = "add the clicks of new batches and on new shares v1"
"""Part of the fingerprint: change it when :func:`refresh_click_edges` changes meaning."""


def _finish(con: duckdb.DuckDBPyConnection) -> int:
    return finish_table(con, TABLE,
                        "One row per sharer and clicker: clicks by the clicker on the sharer's "
                        "shares (own clicks left out).", CLICK_EDGES_DOC)
