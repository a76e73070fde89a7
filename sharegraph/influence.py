"""Influence per person: direct and downstream sales, PageRank, conversion, cascades, circle, ROI.

Grain of ``marts.agent_influence``: one row per person who made a share, was credited for a
sale (sharer or referrer) or is an agent. Every metric is defined in docs/influence.md.
Heavy kernels run on NumPy/SciPy arrays (:mod:`sharegraph.kernels`); NetworkX only computes
Louvain circles on graphs up to ``LOUVAIN_MAX_EDGES`` edges.
"""

from __future__ import annotations

import logging

import duckdb
import networkx as nx
import numpy as np
import pyarrow as pa

from sharegraph.config import Settings
from sharegraph.kernels import Forest, break_cycles, label_propagation, pagerank, subtree_sums
from sharegraph.warehouse import comment_table

log = logging.getLogger(__name__)

LOUVAIN_MAX_EDGES = 25_000
"""Above this many edges circles come from vectorised label propagation instead of Louvain
(NetworkX Louvain is pure Python: ~90 s on 20k nodes / 95k heavy-tailed edges here, ~27 s at
200k nodes in PERFORMANCE.md)."""
LOUVAIN_SEED = 42


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()


def _people_index(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """graph.people as arrays indexed by ``i`` (dense, in person_id order), built once.

    Writes temp table ``_pidx(person_id, i)`` (the one string -> int32 dictionary every
    other lookup of this stage joins to) and returns, ordered by ``i``: the network parent
    index ``p`` (-1 for a root), direct GMV / cost credited (¥), counts and flags.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _pidx AS
        SELECT person_id, (row_number() OVER (ORDER BY person_id) - 1)::INTEGER AS i,
               network_parent_id, is_agent
        FROM graph.people
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _direct AS
        -- grain: one row per credited person (graph.attributed_orders paid, credited lines)
        WITH a AS (
            SELECT credited_id, order_id, rule IN ('share_id', 'last_click') AS via_share,
                   is_first_order, amount, commission_yuan, red_packet_yuan,
                   -- orders with a line other than 1 may have several credited lines: count
                   -- them distinct below; every other order is one line (key order_id, line_no)
                   order_id IN (SELECT order_id FROM graph.attributed_orders
                                WHERE line_no <> 1) AS multi
            FROM graph.attributed_orders
            WHERE is_paid AND credited_id IS NOT NULL
        ),
        per_line AS (
            SELECT credited_id, count(*) FILTER (WHERE NOT multi) AS orders,
                   count(*) FILTER (WHERE NOT multi AND via_share) AS share_orders,
                   count(*) FILTER (WHERE is_first_order) AS new_customers,
                   sum(amount) AS gmv, sum(commission_yuan) AS commission,
                   sum(red_packet_yuan) AS red_packet
            FROM a GROUP BY 1
        ),
        per_order AS (
            SELECT credited_id, count(*) AS orders, count(*) FILTER (WHERE via_share) AS share_orders
            FROM (SELECT credited_id, order_id, bool_or(via_share) AS via_share
                  FROM a WHERE multi GROUP BY ALL)
            GROUP BY 1
        )
        SELECT x.i, l.credited_id AS person_id,
               (l.orders + coalesce(o.orders, 0))::BIGINT AS direct_orders,
               l.gmv::DECIMAL(18,2) AS direct_gmv,
               l.new_customers,
               (l.share_orders + coalesce(o.share_orders, 0))::BIGINT AS share_orders,
               l.commission::DECIMAL(18,2) AS commission_yuan,
               l.red_packet::DECIMAL(18,2) AS red_packet_yuan
        FROM per_line l JOIN _pidx x ON x.person_id = l.credited_id
        LEFT JOIN per_order o ON o.credited_id = l.credited_id
        """
    )
    return _table(
        con,
        """
        SELECT a.i, coalesce(b.i, -1)::BIGINT AS p, coalesce(d.direct_gmv, 0)::DOUBLE AS gmv,
               coalesce(d.commission_yuan + d.red_packet_yuan, 0)::DOUBLE AS cost,
               d.i IS NOT NULL AS credited, a.is_agent
        FROM _pidx a LEFT JOIN _pidx b ON b.person_id = a.network_parent_id
        LEFT JOIN _direct d ON d.i = a.i
        ORDER BY a.i
        """,
    )


def network_forest(parent: np.ndarray) -> Forest:
    """Forest over an already acyclic parent array (graph.people.network_parent_id)."""
    return break_cycles(parent)


def downstream(parent: np.ndarray, gmv: np.ndarray, decay: float) -> dict[str, np.ndarray]:
    """Downstream reach / GMV per node of the influence forest (docs/influence.md).

    ``reach[p]`` = descendants of p; ``gmv_decayed[p] = Σ_{d at generation g>=1}
    decay**(g-1) * gmv[d]``; ``gmv_total`` the same with decay 1; ``generations`` = height
    of p's subtree. Cycles (should graph.people not be acyclic) are cut deterministically.
    """
    forest = network_forest(parent)
    reach, decayed = subtree_sums(forest, gmv, decay)
    _, total = subtree_sums(forest, gmv, 1.0)
    height = np.zeros(parent.size, dtype=np.int64)
    if parent.size:
        order = np.argsort(forest.depth, kind="stable")
        bounds = np.searchsorted(forest.depth[order], np.arange(forest.depth.max() + 2))
        for level in range(int(forest.depth.max()), 0, -1):
            nodes = order[bounds[level]:bounds[level + 1]]
            np.maximum.at(height, forest.parent[nodes], height[nodes] + 1)
    return {"reach": reach, "gmv_decayed": decayed, "gmv_total": total, "generations": height,
            "forest_parent": forest.parent}


def circles(src: np.ndarray, dst: np.ndarray, n: int,
            max_louvain_edges: int = LOUVAIN_MAX_EDGES) -> np.ndarray:
    """Community label per node of the undirected graph (src, dst) over nodes 0..n-1.

    Louvain (NetworkX, seed ``LOUVAIN_SEED``, weight 1 per pair) up to ``max_louvain_edges``
    edges, else synchronous label propagation (:func:`sharegraph.kernels.label_propagation`).
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if src.size > max_louvain_edges:
        return label_propagation(src, dst, n)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist(), strict=True))
    labels = np.zeros(n, dtype=np.int64)
    comms = nx.community.louvain_communities(g, seed=LOUVAIN_SEED)
    for k, members in enumerate(comms):  # one iteration per community, not per row
        labels[np.fromiter(members, dtype=np.int64, count=len(members))] = k
    return labels


AGENT_INFLUENCE_DOC = {
    "person_id": "Person (sharer, credited referrer or agent).",
    "role": "customer | agent | both | sharer (graph.people.role).",
    "is_agent": "Listed in staging.agents.",
    "agent_level": "Agent level (1 = top), NULL if not an agent.",
    "direct_orders": "Distinct paid orders credited to this person (graph.attributed_orders.credited_id).",
    "direct_gmv": "Paid GMV credited to this person, ¥.",
    "direct_buyers": "Distinct buyers of those orders.",
    "new_customers": "Buyers whose first paid order line was credited to this person (acquired).",
    "downstream_reach": "Descendants in the influence network forest (parent = upline for agents, else acquirer); a leaf has 0.",
    "downstream_generations": "Height of this person's subtree in the network forest (0 for a leaf).",
    "downstream_gmv": "Σ over descendants d at generation g>=1 of decay^(g-1) x direct_gmv(d), ¥; decay = Settings.downstream_decay.",
    "downstream_gmv_total": "Σ of direct_gmv over all descendants (no decay), ¥.",
    "influence_gmv": "direct_gmv + downstream_gmv (decayed), ¥: the score ranked for is_top_1pct.",
    "pagerank": "GMV-weighted PageRank on buyer -> credited-person edges (alpha = Settings.pagerank_alpha), sums to 1 over the attribution graph; 0 if not in it.",
    "pagerank_rank": "Rank by pagerank over this table (1 = highest; ties by person_id).",
    "shares_made": "Shares and re-shares this person made (graph.share_nodes).",
    "clicks_received": "Clicks by other people on this person's shares.",
    "share_orders": "Paid orders credited to this person through a share (rules share_id, last_click).",
    "click_rate": "clicks_received / shares_made (NULL when no shares).",
    "conversion_rate": "share_orders / clicks_received (NULL when no clicks).",
    "cascades_rooted": "Cascades (share trees) rooted at a share by this person.",
    "max_cascade_size": "Largest rooted cascade, in shares (NULL if none).",
    "mean_cascade_size": "Mean rooted cascade size, in shares.",
    "max_cascade_depth": "Deepest rooted cascade (root = 0).",
    "mean_cascade_depth": "Mean depth (max node depth) of rooted cascades.",
    "circle_id": "Community (circle) on the undirected attribution + upline graph, named by its smallest person_id (Louvain up to 25k edges, label propagation above).",
    "circle_size": "People in the circle (whole graph).",
    "circle_rank": "Rank by pagerank within the circle among rows of this table (1 = top).",
    "commission_yuan": "Commission paid on orders credited to this person, ¥.",
    "red_packet_yuan": "Red packets paid on orders credited to this person, ¥.",
    "cost_yuan": "commission_yuan + red_packet_yuan, ¥.",
    "roi": "direct_gmv / cost_yuan: ¥ of credited GMV per ¥ of cost (NULL when cost is 0).",
    "network_roi": "(direct_gmv + downstream_gmv_total) / (cost_yuan + downstream cost), undecayed, ¥ per ¥ (NULL when cost is 0).",
    "is_top_1pct": "influence_gmv in the top 1% of this table (at least one row when any is positive).",
}


def build_agent_influence(con: duckdb.DuckDBPyConnection, settings: Settings | None = None,
                          max_louvain_edges: int = LOUVAIN_MAX_EDGES) -> int:
    """Build ``marts.agent_influence``: one row per person who shared, was credited or is an agent."""
    s = settings or Settings()
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    ppl = _people_index(con)
    n = ppl.num_rows
    parent = ppl.column("p").to_numpy().astype(np.int64)
    gmv = ppl.column("gmv").to_numpy()
    cost = ppl.column("cost").to_numpy()
    ds = downstream(parent, gmv, float(s.downstream_decay))
    _, cost_total = subtree_sums(network_forest(ds["forest_parent"]), cost, 1.0)

    # PageRank: buyer -> credited person, weight = GMV (¥), over nodes of the attribution graph
    e = _table(
        con,
        """
        SELECT b.i AS buyer, a.i AS sharer, sum(r.gmv)::DOUBLE AS gmv
        FROM graph.referral_edges r
        JOIN _pidx a ON a.person_id = r.sharer_id JOIN _pidx b ON b.person_id = r.buyer_id
        GROUP BY ALL
        """,
    )
    buyer = e.column("buyer").to_numpy().astype(np.int64)
    sharer = e.column("sharer").to_numpy().astype(np.int64)
    in_graph = np.zeros(n, dtype=bool)
    in_graph[buyer] = True
    in_graph[sharer] = True
    local = np.cumsum(in_graph) - 1
    pr = np.zeros(n)
    if in_graph.any():
        pr[in_graph] = pagerank(local[buyer], local[sharer], e.column("gmv").to_numpy(),
                                int(in_graph.sum()), alpha=float(s.pagerank_alpha))

    # circles: undirected attribution + upline edges
    up = _table(con, """SELECT a.i AS agent, u.i AS upline FROM graph.agent_upline g
                        JOIN _pidx a ON a.person_id = g.agent_id
                        JOIN _pidx u ON u.person_id = g.upline_id""")
    cs = np.concatenate([sharer, up.column("upline").to_numpy().astype(np.int64)])
    cd = np.concatenate([buyer, up.column("agent").to_numpy().astype(np.int64)])
    node = np.zeros(n, dtype=bool)
    node[cs] = True
    node[cd] = True
    loc = np.cumsum(node) - 1
    lab = np.full(n, -1, dtype=np.int64)
    if node.any():
        lab[node] = circles(loc[cs], loc[cd], int(node.sum()), max_louvain_edges)

    metrics = pa.table({  # noqa: F841 - read by DuckDB below
        "i": np.arange(n, dtype=np.int64),
        "reach": ds["reach"], "generations": ds["generations"],
        "ds_gmv": ds["gmv_decayed"], "ds_total": ds["gmv_total"], "ds_cost": cost_total,
        "pagerank": pr, "circle": lab,
    })
    con.execute(
        """
        CREATE OR REPLACE TABLE marts.agent_influence AS
        -- grain: one row per person who shared, was credited for a sale or is an agent
        WITH m AS (SELECT p.person_id, m.* FROM metrics m JOIN _pidx p ON p.i = m.i),
        circ AS (SELECT circle, min(person_id) AS circle_id, count(*) AS circle_size
                 FROM m WHERE circle >= 0 GROUP BY 1),
        direct AS (
            SELECT credited_id AS person_id, count(DISTINCT order_id) AS direct_orders,
                   sum(amount)::DECIMAL(18,2) AS direct_gmv,
                   count(DISTINCT customer_id) AS direct_buyers,
                   count(*) FILTER (WHERE is_first_order) AS new_customers,
                   count(DISTINCT order_id) FILTER (WHERE rule IN ('share_id', 'last_click'))
                       AS share_orders,
                   sum(commission_yuan)::DECIMAL(18,2) AS commission_yuan,
                   sum(red_packet_yuan)::DECIMAL(18,2) AS red_packet_yuan
            FROM graph.attributed_orders WHERE is_paid AND credited_id IS NOT NULL GROUP BY 1
        ),
        shares AS (
            SELECT n.actor_id AS person_id, count(*) AS shares_made,
                   count(c.event_id) AS clicks_received
            FROM graph.share_nodes n
            LEFT JOIN staging.share_events c
                   ON c.share_id = n.share_id AND c.event_type = 'click'
                  AND c.actor_id <> n.actor_id
            GROUP BY 1
        ),
        cascade AS (
            SELECT root_share_id, count(*) AS size, max(depth) AS depth
            FROM graph.share_nodes GROUP BY 1
        ),
        rooted AS (
            SELECT r.actor_id AS person_id, count(*) AS cascades_rooted,
                   max(c.size) AS max_cascade_size, avg(c.size) AS mean_cascade_size,
                   max(c.depth) AS max_cascade_depth, avg(c.depth) AS mean_cascade_depth
            FROM graph.share_nodes r JOIN cascade c ON c.root_share_id = r.share_id
            WHERE r.depth = 0 GROUP BY 1
        ),
        base AS (
            SELECT p.person_id, p.role, p.is_agent, p.agent_level,
                   coalesce(d.direct_orders, 0) AS direct_orders,
                   coalesce(d.direct_gmv, 0)::DECIMAL(18,2) AS direct_gmv,
                   coalesce(d.direct_buyers, 0) AS direct_buyers,
                   coalesce(d.new_customers, 0) AS new_customers,
                   m.reach AS downstream_reach, m.generations AS downstream_generations,
                   round(m.ds_gmv, 2) AS downstream_gmv,
                   round(m.ds_total, 2) AS downstream_gmv_total,
                   round(coalesce(d.direct_gmv, 0)::DOUBLE + m.ds_gmv, 2) AS influence_gmv,
                   m.pagerank,
                   coalesce(sh.shares_made, 0) AS shares_made,
                   coalesce(sh.clicks_received, 0) AS clicks_received,
                   coalesce(d.share_orders, 0) AS share_orders,
                   CASE WHEN sh.shares_made > 0 THEN sh.clicks_received / sh.shares_made END
                       AS click_rate,
                   CASE WHEN sh.clicks_received > 0
                        THEN coalesce(d.share_orders, 0) / sh.clicks_received END
                       AS conversion_rate,
                   coalesce(ro.cascades_rooted, 0) AS cascades_rooted,
                   ro.max_cascade_size, ro.mean_cascade_size, ro.max_cascade_depth,
                   ro.mean_cascade_depth,
                   circ.circle_id, circ.circle_size,
                   coalesce(d.commission_yuan, 0)::DECIMAL(18,2) AS commission_yuan,
                   coalesce(d.red_packet_yuan, 0)::DECIMAL(18,2) AS red_packet_yuan,
                   (coalesce(d.commission_yuan, 0) + coalesce(d.red_packet_yuan, 0))::DECIMAL(18,2)
                       AS cost_yuan,
                   m.ds_total, m.ds_cost
            FROM graph.people p
            JOIN m ON m.person_id = p.person_id
            LEFT JOIN direct d ON d.person_id = p.person_id
            LEFT JOIN shares sh ON sh.person_id = p.person_id
            LEFT JOIN rooted ro ON ro.person_id = p.person_id
            LEFT JOIN circ ON circ.circle = m.circle
            WHERE p.is_agent OR sh.person_id IS NOT NULL OR d.person_id IS NOT NULL
        )
        SELECT person_id, role, is_agent, agent_level, direct_orders, direct_gmv, direct_buyers,
               new_customers, downstream_reach, downstream_generations, downstream_gmv,
               downstream_gmv_total, influence_gmv, pagerank,
               row_number() OVER (ORDER BY pagerank DESC, person_id) AS pagerank_rank,
               shares_made, clicks_received, share_orders, click_rate, conversion_rate,
               cascades_rooted, max_cascade_size, mean_cascade_size, max_cascade_depth,
               mean_cascade_depth, circle_id, circle_size,
               CASE WHEN circle_id IS NOT NULL THEN row_number() OVER (
                   PARTITION BY circle_id ORDER BY pagerank DESC, person_id) END AS circle_rank,
               commission_yuan, red_packet_yuan, cost_yuan,
               CASE WHEN cost_yuan > 0 THEN direct_gmv::DOUBLE / cost_yuan::DOUBLE END AS roi,
               CASE WHEN cost_yuan::DOUBLE + ds_cost > 0
                    THEN (direct_gmv::DOUBLE + ds_total) / (cost_yuan::DOUBLE + ds_cost)
               END AS network_roi,
               influence_gmv > 0 AND row_number() OVER (ORDER BY influence_gmv DESC, person_id)
                   <= greatest(1, ceil(0.01 * count(*) OVER ()))::BIGINT AS is_top_1pct
        FROM base
        ORDER BY influence_gmv DESC, person_id
        """
    )
    con.execute("DROP TABLE _pidx")
    comment_table(
        con, "marts.agent_influence",
        "One row per person who shared, was credited for a sale or is an agent: direct and "
        f"downstream sales (decay {s.downstream_decay}), PageRank, conversion, cascades, "
        "circle, cost and ROI (¥). Definitions: docs/influence.md.",
        AGENT_INFLUENCE_DOC,
    )
    return con.execute("SELECT count(*) FROM marts.agent_influence").fetchall()[0][0]


def scores_finite(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """Asset-check helper: no NaN / ±inf in any numeric score of marts.agent_influence."""
    bad = con.execute(
        """
        SELECT count(*) FROM marts.agent_influence
        WHERE NOT (isfinite(pagerank) AND isfinite(downstream_gmv)
                   AND isfinite(downstream_gmv_total) AND isfinite(influence_gmv)
                   AND isfinite(coalesce(roi, 0)) AND isfinite(coalesce(network_roi, 0))
                   AND isfinite(coalesce(click_rate, 0)) AND isfinite(coalesce(conversion_rate, 0))
                   AND pagerank >= 0 AND downstream_reach >= 0)
        """
    ).fetchall()[0][0]
    return bad == 0, bad
