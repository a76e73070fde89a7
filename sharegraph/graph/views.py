"""NetworkX views of the graph tables for notebooks and small subgraphs.

Built from Arrow/NumPy columns (no loop over rows in our code); the heavy metrics never go
through NetworkX (docs/performance.md).
"""

from __future__ import annotations

import duckdb
import networkx as nx
import numpy as np
import pyarrow as pa


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    return con.sql(sql, params=params or None).to_arrow_table()


def load_referral_graph(
    con: duckdb.DuckDBPyConnection, merchant: str | None = None
) -> nx.DiGraph:
    """The attribution graph as a NetworkX DiGraph: edge sharer -> buyer.

    Edge attributes ``orders`` (distinct paid orders) and ``gmv`` (¥, float), summed over
    merchants unless ``merchant`` is given; node attribute ``role`` from ``graph.people``.
    Built from Arrow/NumPy arrays (no loop over rows in our code).
    """
    edges = _arrow(
        con,
        """
        SELECT sharer_id, buyer_id, sum(orders)::BIGINT AS orders, sum(gmv)::DOUBLE AS gmv
        FROM graph.referral_edges WHERE ($1 IS NULL OR merchant_id = $1)
        GROUP BY ALL ORDER BY sharer_id, buyer_id
        """,
        [merchant],
    )
    nodes = _arrow(
        con,
        """
        SELECT p.person_id, p.role FROM graph.people p
        WHERE p.person_id IN (SELECT sharer_id FROM graph.referral_edges
                              WHERE ($1 IS NULL OR merchant_id = $1)
                              UNION SELECT buyer_id FROM graph.referral_edges
                              WHERE ($1 IS NULL OR merchant_id = $1))
        ORDER BY p.person_id
        """,
        [merchant],
    )
    g = nx.DiGraph()
    ids = nodes.column("person_id").to_pylist()
    g.add_nodes_from(ids)
    nx.set_node_attributes(g, dict(zip(ids, nodes.column("role").to_pylist(), strict=True)), "role")
    src = edges.column("sharer_id").to_pylist()
    dst = edges.column("buyer_id").to_pylist()
    g.add_weighted_edges_from(zip(src, dst, edges.column("gmv").to_pylist(), strict=True), weight="gmv")
    nx.set_edge_attributes(
        g, dict(zip(zip(src, dst, strict=True), edges.column("orders").to_pylist(), strict=True)),
        "orders")
    return g


def load_cascade_tree(con: duckdb.DuckDBPyConnection, root_share_id: str) -> nx.DiGraph:
    """One share cascade as a tree: edge parent share -> re-share; node attrs actor_id, depth."""
    t = _arrow(con, "SELECT share_id, parent_share_id, actor_id, depth FROM graph.share_nodes "
                    "WHERE root_share_id = ? ORDER BY depth, share_id", [root_share_id])
    g = nx.DiGraph()
    ids = t.column("share_id").to_pylist()
    g.add_nodes_from(ids)
    nx.set_node_attributes(g, dict(zip(ids, t.column("actor_id").to_pylist(), strict=True)), "actor_id")
    nx.set_node_attributes(g, dict(zip(ids, t.column("depth").to_pylist(), strict=True)), "depth")
    par = t.column("parent_share_id").to_pylist()
    has = t.column("parent_share_id").is_valid().to_numpy(zero_copy_only=False)
    g.add_edges_from(zip(np.asarray(par, dtype=object)[has], np.asarray(ids, dtype=object)[has],
                         strict=True))
    return g


def load_downline(con: duckdb.DuckDBPyConnection, agent_id: str) -> nx.DiGraph:
    """An agent and everyone below it in the upline forest: edge upline -> agent.

    Node attribute ``depth`` = generations below ``agent_id`` (0 for the agent). The forest
    is acyclic after cycle breaking, so the recursive CTE terminates.
    """
    t = _arrow(
        con,
        """
        WITH RECURSIVE d(agent_id, upline_id, gen) AS (
            SELECT agent_id, NULL::VARCHAR, 0 FROM graph.agent_upline WHERE agent_id = ?
            UNION ALL
            SELECT a.agent_id, a.upline_id, d.gen + 1
            FROM graph.agent_upline a JOIN d ON a.upline_id = d.agent_id
        )
        SELECT agent_id, upline_id, gen FROM d ORDER BY gen, agent_id
        """,
        [agent_id],
    )
    g = nx.DiGraph()
    ids = t.column("agent_id").to_pylist()
    g.add_nodes_from(ids)
    nx.set_node_attributes(g, dict(zip(ids, t.column("gen").to_pylist(), strict=True)), "depth")
    up = np.asarray(t.column("upline_id").to_pylist(), dtype=object)
    has = t.column("upline_id").is_valid().to_numpy(zero_copy_only=False)
    g.add_edges_from(zip(up[has], np.asarray(ids, dtype=object)[has], strict=True))
    return g
