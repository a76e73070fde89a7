"""Influence per person: direct and downstream sales, PageRank, conversion, cascades, circle, ROI.

Grain of ``marts.agent_influence``: one row per person who made a share, was credited for a
sale (sharer or referrer) or is an agent. Every metric is defined in docs/influence.md.
Heavy kernels run on NumPy/SciPy arrays (:mod:`sharegraph.core.kernels`), one method at every
scale; circles come from :mod:`sharegraph.metrics.circles` (docs/influence.md#circles).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.kernels import break_cycles, pagerank, subtree_aggregates
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph.attribution import IN_MULTI_LINE_ORDER
from sharegraph.metrics.circles import Circles, person_circles

log = logging.getLogger(__name__)

def _table(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    """A query's columns, read as NumPy arrays by the kernels (polars, not pyarrow, converts:
    pyarrow's conversions import pandas, 0.2 s of a small run)."""
    return con.sql(sql).pl()


def _people_index(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """graph.people as arrays indexed by ``i`` (dense, in person_id order), built once.

    Writes temp table ``_pidx(person_id, i, ...)`` (the one string -> int32 dictionary
    every other lookup of this stage joins to) and returns, ordered by ``i``: the network parent
    index ``p`` (-1 for a root), direct GMV / cost credited (¥), counts and flags.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _pidx AS
        SELECT person_id, (row_number() OVER (ORDER BY person_id) - 1)::INTEGER AS i,
               network_parent_id, role, is_agent, agent_level
        FROM graph.people
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _direct AS
        -- grain: one row per credited person (graph.attributed_orders paid, credited lines)
        WITH a AS (
            SELECT credited_id, order_id, rule IN ('share_id', 'last_click') AS via_share,
                   is_first_order, amount, commission_yuan, red_packet_yuan,
                   -- orders with a line other than 1 may have several credited lines: count
                   -- them distinct below; every other order is one line (key order_id, line_no)
                   {IN_MULTI_LINE_ORDER} AS multi
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


def downstream(parent: np.ndarray, gmv: np.ndarray, decay: float,
               cost: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Downstream reach / GMV per node of the influence forest (docs/influence.md).

    ``reach[p]`` = descendants of p; ``gmv_decayed[p] = Σ_{d at generation g>=1}
    decay**(g-1) * gmv[d]``; ``gmv_total`` the same with decay 1 (and ``cost_total`` for
    ``cost``); ``generations`` = height of p's subtree. One leaves-up pass. Cycles (should
    graph.people not be acyclic) are cut deterministically.
    """
    cost = np.zeros(parent.size) if cost is None else cost
    reach, height, (decayed, total, cost_total) = subtree_aggregates(
        break_cycles(parent), [gmv, gmv, cost], [decay, 1.0, 1.0])
    return {"reach": reach, "gmv_decayed": decayed, "gmv_total": total, "generations": height,
            "cost_total": cost_total}


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
    "circle_id": "Community (circle) of person-to-person ties (credited sales, clicks on shares, re-shares, agent upline), by modularity-aware label propagation; named by its smallest person_id. NULL for a row with no tie.",
    "circle_size": "People in the circle (everyone with a tie, not only rows of this table).",
    "circle_rank": "Rank by pagerank within the circle among rows of this table (1 = top).",
    "commission_yuan": "Commission paid on orders credited to this person, ¥.",
    "red_packet_yuan": "Red packets paid on orders credited to this person, ¥.",
    "cost_yuan": "commission_yuan + red_packet_yuan, ¥.",
    "roi": "direct_gmv / cost_yuan: ¥ of credited GMV per ¥ of cost (NULL when cost is 0).",
    "network_roi": "(direct_gmv + downstream_gmv_total) / (cost_yuan + downstream cost), undecayed, ¥ per ¥ (NULL when cost is 0).",
    "is_top_1pct": "influence_gmv in the top 1% of this table (at least one row when any is positive).",
}


def _ranks(order: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each position of ``order`` (a sort permutation), restarting per group."""
    rank = np.empty(order.size, dtype=np.int64)
    if group is None:
        rank[order] = np.arange(1, order.size + 1)
        return rank
    g = group[order]
    start = np.ones(order.size, dtype=bool)
    start[1:] = g[1:] != g[:-1]
    first = np.flatnonzero(start)
    pos = np.arange(order.size) - np.repeat(first, np.diff(np.append(first, order.size)))
    rank[order] = pos + 1
    return rank


def _pagerank_over_graph(buyer: np.ndarray, sharer: np.ndarray, w: np.ndarray, n: int,
                         alpha: float) -> np.ndarray:
    """PageRank (buyer -> credited person, weight ¥) over the nodes of the attribution graph;
    0 for everyone else."""
    in_graph = np.zeros(n, dtype=bool)
    in_graph[buyer] = True
    in_graph[sharer] = True
    local = np.cumsum(in_graph) - 1
    pr = np.zeros(n)
    if in_graph.any():
        pr[in_graph] = pagerank(local[buyer], local[sharer], w, int(in_graph.sum()), alpha=alpha)
    return pr


def build_agent_influence(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.agent_influence``: one row per person who shared, was credited or is an agent.

    One int32 person dictionary (``_pidx``, person_id order) for the whole stage; per-person
    metrics are NumPy arrays indexed by it (downstream sums, PageRank, circles, ranks) and go
    back to DuckDB as one registered polars frame in a single CREATE TABLE AS joined on ints.
    The single-threaded kernels (downstream sums, PageRank) run in a worker thread while
    DuckDB reads the click, re-share and share tables and circles are found.
    """
    s = settings or Settings()
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    ppl = _people_index(con)
    n = ppl.height
    parent = ppl["p"].to_numpy().astype(np.int64)
    gmv = ppl["gmv"].to_numpy()
    is_agent = ppl["is_agent"].to_numpy()
    ref = _referral_arrays(con)
    with ThreadPoolExecutor(1) as pool:
        ds_job = pool.submit(downstream, parent, gmv, float(s.downstream_decay),
                             ppl["cost"].to_numpy())
        pr_job = pool.submit(_pagerank_over_graph, ref["buyer"], ref["sharer"], ref["gmv"], n,
                             float(s.pagerank_alpha))
        direct_buyers = np.bincount(ref["sharer"], minlength=n)  # edges: distinct (sharer, buyer)
        clicks_received, circle = _ties_and_circles(con, n, parent, is_agent, ref)
        del ref
        shares = _share_stats(con)
        ds, pr = ds_job.result(), pr_job.result()
    shared = np.zeros(n, dtype=bool)
    shared[shares["i"].to_numpy()] = True
    kept = np.flatnonzero(is_agent | shared | ppl["credited"].to_numpy())
    metrics = _metrics_table(kept, np.round(gmv + ds["gmv_decayed"], 2), ds, pr, circle,
                             direct_buyers, clicks_received)
    return _write_mart(con, metrics, shares, s)


def _referral_arrays(con: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    """The attribution graph over ``_pidx``: one edge per (buyer, credited person), merchants
    summed, with its GMV (¥) and credited orders."""
    e = _table(
        con,
        """
        SELECT b.i AS buyer, a.i AS sharer, sum(r.gmv)::DOUBLE AS gmv,
               sum(r.orders)::DOUBLE AS orders
        FROM graph.referral_edges r
        JOIN _pidx a ON a.person_id = r.sharer_id JOIN _pidx b ON b.person_id = r.buyer_id
        GROUP BY ALL
        """,
    )
    return {name: e[name].to_numpy() for name in ("buyer", "sharer", "gmv", "orders")}


def _ties_and_circles(con: duckdb.DuckDBPyConnection, n: int, parent: np.ndarray,
                      is_agent: np.ndarray, ref: dict[str, np.ndarray]
                      ) -> tuple[np.ndarray, Circles]:
    """Clicks received per person and everyone's circle (docs/influence.md#circles).

    Undirected person-to-person ties, weight = number of interactions: credited orders
    (sharer - buyer), clicks (clicker - sharer of the clicked share, also giving
    clicks_received), re-shares (re-sharer - parent sharer) and the effective agent upline
    (weight 1).
    """
    clk = _table(
        con,
        """
        SELECT a.i AS sharer, b.i AS clicker, c.clicks::DOUBLE AS clicks
        FROM graph.click_edges c
        JOIN _pidx a ON a.person_id = c.sharer_id JOIN _pidx b ON b.person_id = c.clicker_id
        """,
    )
    clicks_received = np.bincount(clk["sharer"].to_numpy(),
                                  weights=clk["clicks"].to_numpy(),
                                  minlength=n).astype(np.int64)
    rsh = _table(
        con,
        """
        SELECT a.i AS parent, b.i AS child, count(*)::DOUBLE AS reshares
        FROM graph.share_nodes s JOIN graph.share_nodes p ON p.share_id = s.parent_share_id
        JOIN _pidx a ON a.person_id = p.actor_id JOIN _pidx b ON b.person_id = s.actor_id
        WHERE p.actor_id <> s.actor_id
        GROUP BY ALL
        """,
    )
    up_child = np.flatnonzero(is_agent & (parent >= 0)).astype(np.int32)
    src = np.concatenate([ref["sharer"], clk["sharer"].to_numpy(),
                          rsh["parent"].to_numpy(), parent[up_child].astype(np.int32)])
    dst = np.concatenate([ref["buyer"], clk["clicker"].to_numpy(),
                          rsh["child"].to_numpy(), up_child])
    weight = np.concatenate([ref["orders"], clk["clicks"].to_numpy(),
                             rsh["reshares"].to_numpy(), np.ones(up_child.size)])
    del clk, rsh
    return clicks_received, person_circles(n, src, dst, weight)


def _share_stats(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per person ``i`` who shared: shares made and the size / depth of the cascades rooted
    (from marts.cascades, kept per cascade: 0.9 s at 10M orders against 2.1 s for grouping
    every share node by its root again)."""
    return _table(
        con,
        """
        WITH rooted AS (
            SELECT root_actor_id AS actor_id, count(*) AS cascades_rooted,
                   max(size) AS max_cascade_size, avg(size) AS mean_cascade_size,
                   max(depth) AS max_cascade_depth, avg(depth) AS mean_cascade_depth
            FROM marts.cascades GROUP BY 1
        ),
        made AS (SELECT actor_id, count(*) AS shares_made FROM graph.share_nodes GROUP BY 1)
        SELECT x.i, m.shares_made, coalesce(r.cascades_rooted, 0) AS cascades_rooted,
               r.max_cascade_size, r.mean_cascade_size, r.max_cascade_depth,
               r.mean_cascade_depth
        FROM made m JOIN _pidx x ON x.person_id = m.actor_id
        LEFT JOIN rooted r ON r.actor_id = m.actor_id
        """,
    )


def _metrics_table(kept: np.ndarray, influence_gmv: np.ndarray, ds: dict[str, np.ndarray],
                   pr: np.ndarray, circle: Circles, direct_buyers: np.ndarray,
                   clicks_received: np.ndarray) -> pl.DataFrame:
    """The array metrics of the mart's rows ``kept``, with their ranks and the top 1%.

    Ranks are over the mart's rows, ties by person_id (= by index); the top 1% is at least
    one row when any influence_gmv is positive.
    """
    n = influence_gmv.size
    pagerank_rank = np.zeros(n, dtype=np.int64)
    pagerank_rank[kept] = _ranks(np.lexsort((kept, -pr[kept])))
    circle_rank = np.zeros(n, dtype=np.int64)
    in_circle = kept[circle.label[kept] >= 0]
    named = circle.named_by[in_circle]
    circle_rank[in_circle] = _ranks(np.lexsort((in_circle, -pr[in_circle], named)), named)
    top = np.zeros(n, dtype=bool)
    top[kept[np.lexsort((kept, -influence_gmv[kept]))[:int(np.ceil(0.01 * kept.size))]]] = True
    top &= influence_gmv > 0
    return pl.DataFrame({
        "i": kept.astype(np.int32), "direct_buyers": direct_buyers[kept],
        "reach": ds["reach"][kept], "generations": ds["generations"][kept],
        "ds_gmv": np.round(ds["gmv_decayed"][kept], 2),
        "ds_total": np.round(ds["gmv_total"][kept], 2), "ds_total_raw": ds["gmv_total"][kept],
        "ds_cost": ds["cost_total"][kept], "influence_gmv": influence_gmv[kept],
        "pagerank": pr[kept], "pagerank_rank": pagerank_rank[kept],
        "clicks": clicks_received[kept], "circle_i": circle.named_by[kept].astype(np.int32),
        "circle_size": circle.size[kept], "circle_rank": circle_rank[kept],
        "is_top_1pct": top[kept],
    })


def _write_mart(con: duckdb.DuckDBPyConnection, metrics: pl.DataFrame, shares: pl.DataFrame,
                s: Settings) -> int:
    """Write ``marts.agent_influence`` from the array metrics, ``_direct`` and share stats;
    returns its row count (one row per kept person)."""
    con.register("_metrics", metrics)
    con.register("_shares", shares)
    create_table_as(con, "marts.agent_influence", _AGENT_INFLUENCE_SQL, ids=("person_id", "circle_id"))
    for view in ("_metrics", "_shares"):
        con.unregister(view)
    con.execute("DROP TABLE _pidx")
    con.execute("DROP TABLE _direct")
    return finish_table(
        con, "marts.agent_influence",
        "One row per person who shared, was credited for a sale or is an agent: direct and "
        f"downstream sales (decay {s.downstream_decay}), PageRank, conversion, cascades, "
        "circle, cost and ROI (¥). Definitions: docs/influence.md.",
        AGENT_INFLUENCE_DOC,
    )


_AGENT_INFLUENCE_SQL = """
        -- grain: one row per person who shared, was credited for a sale or is an agent
        WITH base AS (
            SELECT x.person_id, x.role, x.is_agent, x.agent_level,
                   coalesce(d.direct_orders, 0) AS direct_orders,
                   coalesce(d.direct_gmv, 0)::DECIMAL(18,2) AS direct_gmv,
                   m.direct_buyers,
                   coalesce(d.new_customers, 0) AS new_customers,
                   m.reach AS downstream_reach, m.generations AS downstream_generations,
                   -- ¥ as DECIMAL(18,2) like direct_gmv (the kernel's floats are already
                   -- rounded to the fen, so the cast changes no value)
                   m.ds_gmv::DECIMAL(18,2) AS downstream_gmv,
                   m.ds_total::DECIMAL(18,2) AS downstream_gmv_total,
                   m.influence_gmv::DECIMAL(18,2) AS influence_gmv, m.pagerank, m.pagerank_rank,
                   coalesce(sh.shares_made, 0) AS shares_made,
                   m.clicks AS clicks_received,
                   coalesce(d.share_orders, 0) AS share_orders,
                   CASE WHEN sh.shares_made > 0 THEN m.clicks / sh.shares_made END
                       AS click_rate,
                   CASE WHEN m.clicks > 0
                        THEN coalesce(d.share_orders, 0) / m.clicks END
                       AS conversion_rate,
                   coalesce(sh.cascades_rooted, 0) AS cascades_rooted,
                   sh.max_cascade_size, sh.mean_cascade_size, sh.max_cascade_depth,
                   sh.mean_cascade_depth,
                   c.person_id AS circle_id,
                   CASE WHEN m.circle_i >= 0 THEN m.circle_size END AS circle_size,
                   CASE WHEN m.circle_i >= 0 THEN m.circle_rank END AS circle_rank,
                   coalesce(d.commission_yuan, 0)::DECIMAL(18,2) AS commission_yuan,
                   coalesce(d.red_packet_yuan, 0)::DECIMAL(18,2) AS red_packet_yuan,
                   (coalesce(d.commission_yuan, 0) + coalesce(d.red_packet_yuan, 0))::DECIMAL(18,2)
                       AS cost_yuan,
                   m.ds_total_raw, m.ds_cost, m.is_top_1pct
            FROM _metrics m
            JOIN _pidx x ON x.i = m.i
            LEFT JOIN _direct d ON d.i = m.i
            LEFT JOIN _shares sh ON sh.i = m.i
            LEFT JOIN _pidx c ON c.i = m.circle_i
        )
        SELECT * EXCLUDE (ds_total_raw, ds_cost, is_top_1pct),
               CASE WHEN cost_yuan > 0 THEN direct_gmv::DOUBLE / cost_yuan::DOUBLE END AS roi,
               CASE WHEN cost_yuan::DOUBLE + ds_cost > 0
                    THEN (direct_gmv::DOUBLE + ds_total_raw) / (cost_yuan::DOUBLE + ds_cost)
               END AS network_roi,
               is_top_1pct
        FROM base
"""
"""One row per kept person: ``_metrics`` joined to ``_pidx``, ``_direct`` and ``_shares``."""


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
