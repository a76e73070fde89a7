"""A parent relation made a forest in SQL: the step shared by share cascades, agent upline and
the influence network.

Trees are resolved with NumPy pointer doubling over parent arrays
(:func:`sharegraph.core.kernels.break_cycles`), never a recursive Python walk, so a cycle
cannot hang the run: one edge per cycle is cut deterministically (at the smallest id) and
flagged, and :mod:`sharegraph.graph.anomalies` reports it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from sharegraph.core.kernels import break_cycles


def resolve_forest(
    con: duckdb.DuckDBPyConnection, nodes_sql: str, target: str
) -> None:
    """Resolve a parent relation into a forest and register it as view-able ``target``.

    ``nodes_sql`` yields ``(node_id, parent_id)`` one row per node; ``parent_id`` may be
    NULL, unknown (dangling), the node itself or part of a cycle. Writes a temp table
    ``target(node_id, parent_id, root_id, depth, flag)`` where ``parent_id`` is the effective
    parent and ``flag`` is NULL | 'self_loop' | 'cycle_cut' | 'dangling'. Ids are numbered
    in id order, so "the smallest index" of a cycle is its smallest id.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _nodes AS
        WITH n AS ({nodes_sql}),
        idx AS (SELECT node_id, parent_id,
                       (row_number() OVER (ORDER BY node_id) - 1)::BIGINT AS i FROM n)
        SELECT a.node_id, a.parent_id AS given_parent, a.i,
               coalesce(b.i, -1)::BIGINT AS p,
               CASE WHEN a.parent_id IS NULL THEN NULL
                    WHEN a.parent_id = a.node_id THEN 'self_loop'
                    WHEN b.i IS NULL THEN 'dangling' END AS flag
        FROM idx a LEFT JOIN idx b ON b.node_id = a.parent_id
        """
    )
    cols = con.sql("SELECT p, coalesce(flag = 'self_loop', false) AS sl FROM _nodes ORDER BY i").fetchnumpy()
    parent = cols["p"].astype(np.int64)
    parent[cols["sl"]] = -1
    forest = break_cycles(parent)
    con.register("_forest", pl.DataFrame({  # the kernel's arrays (a Spark DataFrame on Spark)
        "i": np.arange(parent.size, dtype=np.int64),
        "ep": forest.parent,
        "root": forest.root,
        "depth": forest.depth,
        "cut": forest.cut,
    }))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {target} AS
        SELECT n.node_id, n.given_parent, par.node_id AS parent_id, rt.node_id AS root_id,
               r.depth::INTEGER AS depth,
               CASE WHEN r.cut THEN 'cycle_cut' ELSE n.flag END AS flag
        FROM _nodes n JOIN _forest r ON r.i = n.i
        LEFT JOIN _nodes par ON par.i = r.ep AND r.ep >= 0
        JOIN _nodes rt ON rt.i = r.root
        """
    )
    con.execute("DROP TABLE _nodes")
    con.unregister("_forest")


def forest_violations(
    con: duckdb.DuckDBPyConnection, table: str, node: str, parent: str, root: str
) -> int:
    """Rows of a resolved forest ``table`` whose edge does not go exactly one level down.

    A root has depth 0 and is its own root; any other node sits one level below its parent
    in the parent's tree. When no row violates this the parent relation has no cycle: the
    asset checks of ``graph.share_nodes`` and ``graph.agent_upline`` rest on it.
    """
    return con.execute(
        f"""
        SELECT count(*) FROM {table} a
        LEFT JOIN {table} u ON u.{node} = a.{parent}
        WHERE a.depth IS NULL OR a.{root} IS NULL
           OR (a.{parent} IS NULL AND (a.depth <> 0 OR a.{root} <> a.{node}))
           OR (a.{parent} IS NOT NULL AND (u.{node} IS NULL OR a.depth <> u.depth + 1
               OR a.{root} <> u.{root}))
        """
    ).fetchall()[0][0]
