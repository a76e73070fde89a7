"""Graph anomalies: self-referrals, dangling references, cycles cut in the forests and
referral cycles (people who refer each other), each flagged with what the pipeline did.

Never fatal: the forests were already made acyclic (:mod:`sharegraph.graph.forest`); this
table says where and why.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import finish_table
from sharegraph.graph.shares import NODES

ANOMALIES_DOC = {
    "kind": "self_referral | dangling_order_share | share_self_loop | share_cycle | dangling_parent_share | upline_self_loop | upline_cycle | dangling_upline | network_cycle | referral_cycle.",
    "entity": "What the id names: order, share, agent, person.",
    "id": "The flagged order / share / agent / person (for referral_cycle: the smallest member).",
    "related_id": "The other end: referrer, unknown share, cut parent, unknown upline, ...",
    "detail": "What is wrong and what the pipeline did about it.",
}


def _referral_cycles(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Strongly connected components of size > 1 in the sharer -> buyer graph (SciPy).

    Writes temp table ``_rids(id, i)``, a dense numbering of graph.people (every sharer and
    buyer is a person; the caller maps members back through it), and returns the members'
    ``i`` and component.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _rids AS
        SELECT person_id AS id, (row_number() OVER () - 1)::BIGINT AS i FROM graph.people
        """
    )
    edges = con.execute(
        """
        SELECT a.i AS s, b.i AS d FROM graph.referral_edges e  -- repeats (merchants) are harmless
        JOIN _rids a ON a.id = e.sharer_id JOIN _rids b ON b.id = e.buyer_id
        """
    ).fetchnumpy()
    n_ids = con.execute("SELECT count(*) FROM _rids").fetchall()[0][0]
    if n_ids == 0:
        return pl.DataFrame({"i": [], "comp": []}, schema={"i": pl.Int64, "comp": pl.Int64})
    s, d = edges["s"].astype(np.int64), edges["d"].astype(np.int64)
    m = coo_matrix((np.ones(s.size), (s, d)), shape=(n_ids, n_ids)).tocsr()
    _, comp = connected_components(m, directed=True, connection="strong")
    sizes = np.bincount(comp)
    member = np.flatnonzero(sizes[comp] > 1)
    return pl.DataFrame({"i": member.astype(np.int64), "comp": comp[member].astype(np.int64)})


def build_anomalies(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.anomalies``: one row per flagged graph problem (never fatal)."""
    con.register("_cycles", _referral_cycles(con))
    con.execute(
        f"""
        CREATE OR REPLACE TABLE graph.anomalies AS
        -- grain: one row per flagged graph problem
        -- graph.share_nodes' actor is each share's sharer (sharers_sql), already resolved
        WITH sharers AS (SELECT share_id, actor_id AS sharer_id FROM {NODES}),
        scc AS (SELECT c.comp, min(ids.id) AS id, count(*) AS n,
                       string_agg(ids.id, ', ' ORDER BY ids.id) AS members
                FROM _cycles c JOIN _rids ids ON ids.i = c.i GROUP BY c.comp)
        SELECT 'self_referral' AS kind, 'order' AS entity, o.order_id AS id,
               o.customer_id AS related_id,
               CASE WHEN o.referrer_id = o.customer_id
                    THEN 'referrer_id is the buyer; no credit for the referral'
                    ELSE 'order share_id ' || o.share_id || ' was shared by the buyer; no credit for the share' END AS detail
        FROM (SELECT DISTINCT ON (o.order_id) o.*, s.sharer_id
              FROM staging.orders o LEFT JOIN sharers s ON s.share_id = o.share_id
              WHERE o.referrer_id = o.customer_id OR s.sharer_id = o.customer_id
              ORDER BY o.order_id, o.line_no) o
        UNION ALL
        SELECT DISTINCT 'dangling_order_share', 'order', o.order_id, o.share_id,
               'order share_id not found among share/reshare events; attribution fell back to last click / referrer'
        FROM staging.orders o LEFT JOIN sharers s ON s.share_id = o.share_id
        WHERE o.share_id IS NOT NULL AND s.share_id IS NULL
        UNION ALL
        SELECT CASE flag WHEN 'self_loop' THEN 'share_self_loop'
                         WHEN 'cycle_cut' THEN 'share_cycle'
                         ELSE 'dangling_parent_share' END,
               'share', share_id, source_parent_share_id,
               CASE flag WHEN 'self_loop' THEN 'share is its own parent; made a cascade root'
                         WHEN 'cycle_cut' THEN 'parent_share_id cycle; cut here (smallest share id), made a cascade root'
                         ELSE 'parent share unknown; made a cascade root' END
        FROM graph.share_nodes WHERE flag IS NOT NULL
        UNION ALL
        SELECT CASE flag WHEN 'self_loop' THEN 'upline_self_loop'
                         WHEN 'cycle_cut' THEN 'upline_cycle' ELSE 'dangling_upline' END,
               'agent', agent_id, source_upline_id,
               CASE flag WHEN 'self_loop' THEN 'agent is its own upline; made a top agent'
                         WHEN 'cycle_cut' THEN 'upline cycle; cut here (smallest agent id), made a top agent'
                         ELSE 'upline is not a known agent; made a top agent' END
        FROM graph.agent_upline WHERE flag IS NOT NULL
        UNION ALL
        SELECT 'network_cycle', 'person', person_id,
               CASE WHEN is_agent THEN upline_id ELSE acquired_by END,
               'influence network cycle (upline / acquirer); edge to parent cut here (smallest id)'
        FROM graph.people WHERE network_flag = 'cycle_cut'
        UNION ALL
        SELECT 'referral_cycle', 'person', id, NULL,
               n || ' people refer each other in a cycle (strongly connected): '
                 || CASE WHEN n <= 20 THEN members ELSE left(members, 400) || ', ...' END
        FROM scc
        ORDER BY 1, 3
        """
    )
    con.execute("DROP TABLE _rids")
    con.unregister("_cycles")
    return finish_table(con, "graph.anomalies",
                        "One row per flagged graph problem (self-referral, cycles, dangling "
                        "references) and how the pipeline handled it.", ANOMALIES_DOC)
