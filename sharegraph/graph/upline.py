"""The agent upline forest: each agent's recruiter edge, made acyclic so downline sums end."""

from __future__ import annotations

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph.forest import forest_violations, resolve_forest

AGENT_UPLINE_DOC = {
    "agent_id": "Agent (staging.agents).",
    "upline_id": "Effective upline (recruiter) in the forest: the given upline unless it is unknown, the agent itself, or the edge cut to break a cycle (then NULL).",
    "source_upline_id": "upline_id as given in staging.agents.",
    "root_agent_id": "Top of this agent's upline tree.",
    "depth": "Levels below the root agent (root = 0).",
    "level": "Agent level as given (1 = top).",
    "joined_at": "When the agent joined.",
    "flag": "NULL, or self_loop | cycle_cut | dangling (upline not an agent); see graph.anomalies.",
}


def build_agent_upline(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.agent_upline``: one row per agent with its effective upline edge.

    The upline relation is made a forest (cycles cut at the smallest agent id) so downline
    sums terminate; what was cut is kept in ``source_upline_id`` and ``flag``.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS graph")
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _agents AS
        -- one row per agent_id (the earliest joined), one hash aggregate, no sort
        SELECT agent_id, unnest(arg_min({'upline_id': upline_id, 'joined_at': joined_at,
                                         'level': level}, (joined_at, upline_id, level)))
        FROM staging.agents GROUP BY agent_id
        """
    )
    resolve_forest(con, "SELECT agent_id AS node_id, upline_id AS parent_id FROM _agents",
                   "_upline_forest")
    create_table_as(
        con,
        "graph.agent_upline",
        """
        -- grain: one row per agent
        SELECT a.agent_id, f.parent_id AS upline_id, a.upline_id AS source_upline_id,
               f.root_id AS root_agent_id, f.depth, a.level, a.joined_at, f.flag
        FROM _agents a JOIN _upline_forest f ON f.node_id = a.agent_id
        """,
        ids=("agent_id", "upline_id", "source_upline_id", "root_agent_id"),
    )
    con.execute("DROP TABLE _agents")
    con.execute("DROP TABLE _upline_forest")
    return finish_table(con, "graph.agent_upline",
                        "One row per agent: its upline (recruiter) edge in the agent forest, with "
                        "root and depth. Cycles cut at the smallest agent id and flagged.",
                        AGENT_UPLINE_DOC)


def upline_is_forest(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """Asset-check helper: every effective upline edge goes one level down (so no cycle).

    Returns (ok, number of violating agents).
    """
    bad = forest_violations(con, "graph.agent_upline", "agent_id", "upline_id", "root_agent_id")
    return bad == 0, bad
