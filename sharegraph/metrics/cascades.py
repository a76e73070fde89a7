"""Share cascades: the tree of shares and re-shares grown from one original share.

Definitions (docs/growth-metrics.md §Cascades) follow Goel, Anderson, Hofman & Watts (2016),
"The Structural Virality of Online Diffusion", Management Science 62(1):180-196:
size = number of share nodes, depth = longest root-to-node path, max breadth = most nodes
at one depth, structural virality = mean shortest-path distance over all unordered pairs of
nodes of the undirected tree (the Wiener index divided by C(n, 2); 0 for a single node).

Cascades are mostly singletons and can number in the hundreds of thousands
(docs/performance.md), so shape metrics are set-based SQL and virality is one NumPy pass over
every non-trivial tree at once; NetworkX is only the cross-check in the tests.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.kernels import subtree_sizes
from sharegraph.core.warehouse import finish_table
from sharegraph.graph import attribution
from sharegraph.graph.products import product_lookup_sql
from sharegraph.graph.shares import NODES, NODES_INPUTS

TABLE = "marts.cascades"

CASCADES_DOC = {
    "root_share_id": "The original share the cascade grew from (graph.share_nodes depth 0).",
    "root_actor_id": "Who made the original share.",
    "product_id": "Product of the root share (NULL when the share names none).",
    "category": "Category of the root share (NULL when unknown).",
    "merchant_id": "Merchant of the root share's product: staging.products, else the merchant "
                   "that sold the product most often in graph.attributed_orders (ties: the "
                   "smallest id); NULL if unknown.",
    "channel": "Where the root share was posted (moments, wechat_group, ...).",
    "started_at": "When the root share was made (local time, configured zone).",
    "last_shared_at": "Latest share or re-share in the cascade.",
    "size": "Number of share nodes in the cascade: the root share plus every re-share (>= 1).",
    "reshares": "size - 1.",
    "sharers": "Distinct people who shared or re-shared in the cascade.",
    "depth": "Longest root-to-node path in re-share generations (0 for a lone share).",
    "max_breadth": "Largest number of share nodes at one depth (1 for a lone share).",
    "structural_virality": "Mean shortest-path distance over all unordered pairs of nodes of "
                           "the undirected cascade tree (Goel et al. 2016); 0 iff size = 1, "
                           "1 for size 2, 2 - 2/n for a star of n nodes, (n+1)/3 for a chain.",
    "clicks": "Click events on any share of the cascade (staging.share_events).",
    "clickers": "Distinct people who clicked a share of the cascade.",
    "orders": "Distinct paid orders with an attributed line whose resolved share is in the "
              "cascade (graph.attributed_orders.share_id; credited_id NOT NULL).",
    "buyers": "Distinct customers of those orders.",
    "gmv": "Paid, attributed GMV of those lines, ¥ (0 when none); sums to at most total "
           "attributed GMV.",
}


def structural_virality(
    parent: np.ndarray, depth: np.ndarray, tree: np.ndarray, n_trees: int | None = None
) -> np.ndarray:
    """Structural virality of every tree of a forest, in one vectorised pass.

    Goel et al. (2016): ν(T) = 1/(n(n-1)) Σ_i Σ_j d_ij = W(T) / C(n, 2), the mean distance
    over unordered pairs of the undirected tree, with W the Wiener index. For a tree,
    W = Σ over edges of s_e (n - s_e) where s_e is the number of nodes below the edge, i.e.
    Σ over non-root v of sub(v) (n - sub(v)). ``tree[v]`` is v's tree number in
    ``0..n_trees-1``. Returns one float per tree, 0.0 for a single node.

    Example: a root with two children (a star of 3) has distances 1, 1, 2, so ν = 4/3.
    """
    parent = np.asarray(parent, dtype=np.int64)
    tree = np.asarray(tree, dtype=np.int64)
    if n_trees is None:
        n_trees = int(tree.max()) + 1 if tree.size else 0
    sub = subtree_sizes(parent, depth)
    size = np.bincount(tree, minlength=n_trees).astype(np.int64)
    nonroot = parent >= 0
    if (tree[nonroot] != tree[parent[nonroot]]).any():
        raise ValueError("inconsistent forest: a node and its parent are in different trees")
    s = sub[nonroot]
    wiener = np.bincount(
        tree[nonroot], weights=(s * (size[tree[nonroot]] - s)).astype(np.float64),
        minlength=n_trees,
    )
    pairs = size * (size - 1) / 2.0
    return np.divide(wiener, pairs, out=np.zeros(n_trees), where=pairs > 0)


def _virality_table(con: duckdb.DuckDBPyConnection, roots: str = "") -> pl.DataFrame:
    """Structural virality per root_share_id of every cascade with more than one node (of
    those whose root is one of the query ``roots``, when given: over persistent tables,
    since the cursor does not see this connection's temp tables)."""
    # a cursor: the relation API refuses a connection holding a caller's unfinished result
    where = f"WHERE root_share_id IN ({roots})" if roots else ""
    nodes = con.cursor().sql(
        f"""
        -- one row per share node of a non-trivial cascade, with integer node/parent/root ids
        -- (row numbers in no particular order: only equality matters, and no string sort)
        WITH big AS (
            SELECT root_share_id FROM graph.share_nodes {where} GROUP BY root_share_id
            HAVING count(*) > 1
        ),
        n AS MATERIALIZED (
            SELECT s.share_id, s.parent_share_id, s.root_share_id, s.depth,
                   row_number() OVER () - 1 AS idx
            FROM graph.share_nodes s SEMI JOIN big USING (root_share_id)
        )
        SELECT c.idx, coalesce(p.idx, -1) AS parent, c.depth, r.idx AS root, c.root_share_id
        FROM n c
        LEFT JOIN n p ON p.share_id = c.parent_share_id AND c.depth > 0
        LEFT JOIN n r ON r.share_id = c.root_share_id
        """
    ).pl()
    if nodes.height == 0:
        return pl.DataFrame({"root_share_id": [], "structural_virality": []},
                            schema={"root_share_id": pl.String, "structural_virality": pl.Float64})
    idx = nodes["idx"].to_numpy()
    parent = np.empty(idx.size, dtype=np.int64)
    depth = np.empty(idx.size, dtype=np.int64)
    root = np.empty(idx.size, dtype=np.int64)
    parent[idx] = nodes["parent"].to_numpy()
    depth[idx] = nodes["depth"].to_numpy()
    root[idx] = nodes["root"].fill_null(-1).to_numpy()
    if (root < 0).any():
        raise ValueError("graph.share_nodes: a cascade's root_share_id is not one of its shares")
    roots, tree = np.unique(root, return_inverse=True)
    nu = structural_virality(parent, depth, tree, roots.size)
    position = np.empty(idx.size, dtype=np.int64)
    position[idx] = np.arange(idx.size)
    return pl.DataFrame({"root_share_id": nodes["root_share_id"].gather(position[roots]),
                         "structural_virality": nu})


def _cascade_parts(nodes: str) -> str:
    """CTEs per root_share_id of the share nodes ``nodes`` (a relation): ``shape`` (size,
    depth, max breadth; from ``levels``), ``extent`` (last share, sharers), ``clicks``, and
    ``fresh``: those with structural virality (``_virality``), one row per cascade."""
    return f"""
        levels AS (
            SELECT root_share_id, depth, count(*) AS n
            FROM {nodes} GROUP BY root_share_id, depth
        ),
        shape AS (
            SELECT root_share_id, sum(n)::BIGINT AS size, max(depth)::INTEGER AS depth,
                   max(n)::BIGINT AS max_breadth
            FROM levels GROUP BY root_share_id
        ),
        -- distinct sharers and clickers by grouping per (cascade, person) first: cheaper than
        -- count(DISTINCT) per cascade; count(actor_id) leaves out a NULL actor as DISTINCT does
        extent AS (
            SELECT root_share_id, max(last_shared_at) AS last_shared_at,
                   count(actor_id)::BIGINT AS sharers
            FROM (SELECT root_share_id, actor_id, max(shared_at) AS last_shared_at
                  FROM {nodes} GROUP BY ALL)
            GROUP BY root_share_id
        ),
        clicks AS (
            SELECT root_share_id, sum(n)::BIGINT AS clicks, count(actor_id)::BIGINT AS clickers
            FROM (SELECT n.root_share_id, e.actor_id, count(*) AS n
                  FROM staging.share_events e JOIN {nodes} n ON n.share_id = e.share_id
                  WHERE e.event_type = 'click' GROUP BY ALL)
            GROUP BY root_share_id
        ),
        fresh AS (
            SELECT s.root_share_id, e.last_shared_at, s.size, e.sharers, s.depth, s.max_breadth,
                   coalesce(v.structural_virality, 0.0)::DOUBLE AS structural_virality,
                   coalesce(c.clicks, 0)::BIGINT AS clicks,
                   coalesce(c.clickers, 0)::BIGINT AS clickers
            FROM shape s
            JOIN extent e ON e.root_share_id = s.root_share_id
            LEFT JOIN _virality v ON v.root_share_id = s.root_share_id
            LEFT JOIN clicks c ON c.root_share_id = s.root_share_id
        )"""


def _sales_sql(nodes: str) -> str:
    """CTEs ``credited`` and ``sales``: paid attributed orders, buyers and ¥ per cascade of
    the share nodes ``nodes``. Distinct orders and buyers are counted by grouping the
    cascade's lines once each way, cheaper than two count(DISTINCT) per cascade."""
    return f"""
        credited AS MATERIALIZED (
            SELECT n.root_share_id, a.customer_id, a.order_id, a.amount
            FROM graph.attributed_orders a JOIN {nodes} n ON n.share_id = a.share_id
            WHERE a.is_paid AND a.credited_id IS NOT NULL
        ),
        sales AS (
            SELECT root_share_id, o.orders::BIGINT AS orders, b.buyers::BIGINT AS buyers,
                   b.gmv::DECIMAL(18,2) AS gmv
            FROM (SELECT root_share_id, count(*) AS orders
                  FROM (SELECT DISTINCT root_share_id, order_id FROM credited)
                  GROUP BY root_share_id) o
            JOIN (SELECT root_share_id, count(*) AS buyers, sum(gmv) AS gmv
                  FROM (SELECT root_share_id, customer_id, sum(amount) AS gmv
                        FROM credited GROUP BY ALL)
                  GROUP BY root_share_id) b USING (root_share_id)
        )"""


_PRODUCT_MERCHANT = f"""
            SELECT product_id, coalesce(any_value(p_merchant), any_value(o_merchant)) AS merchant_id
            FROM (
                SELECT product_id, merchant_id AS p_merchant, NULL AS o_merchant
                FROM ({product_lookup_sql()}) WHERE merchant_id IS NOT NULL
                UNION ALL
                SELECT product_id, NULL, arg_min(merchant_id, (-n, merchant_id))
                FROM (SELECT product_id, merchant_id, count(*) AS n
                      FROM graph.attributed_orders GROUP BY product_id, merchant_id)
                GROUP BY product_id
            )
            GROUP BY product_id
"""
"""One row per product_id: its merchant in staging.products, else the merchant that sold it
most often in graph.attributed_orders, ties to the smallest id (``mode()`` would take the
first of the tied in scan order, which differs between a rebuilt and an updated table)."""


def build_cascades(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``marts.cascades`` in full: one row per cascade (root share) of ``graph.share_nodes``.

    Size, depth and breadth are GROUP BYs over (root, depth); clicks from
    ``staging.share_events``; orders and GMV (¥) from paid, attributed lines of
    ``graph.attributed_orders`` whose resolved share is in the cascade. Returns the row count.
    """
    del settings  # no tunables: the definitions are fixed (docs/growth-metrics.md)
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.register("_virality", _virality_table(con))  # a NumPy result, also on Spark
    con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS {_cascades_sql()} "
                "ORDER BY started_at, root_share_id")
    con.unregister("_virality")
    return _finish(con)


def refresh_cascades(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Bring ``marts.cascades`` up to date after a load, per cascade when it can.

    While ``graph.share_nodes`` has only been appended to since this table was built, a
    cascade's shape, extent, virality and clicks change only if one of its shares is new or
    has a new event, and its orders, buyers and ¥ only if attribution's update removed or
    wrote a credited paid line naming one of its shares (attribution logs those shares,
    :data:`attribution.MOVED_CREDIT`). Those cascades are recomputed and replace their rows;
    the others keep theirs, but for the merchant, which follows every line of the product.
    The rebuild ids of share nodes and attribution are in the fingerprint: after either is
    rebuilt (new code or settings, say, with no new batch) so is this; so is a log of another
    update. Equals :func:`build_cascades` up to the order of the rows.
    """
    upstream = (increments.rebuild_id(con, NODES, NODES_INPUTS),
                increments.rebuild_id(con, attribution.TABLE, attribution.INPUTS))
    fp = increments.fingerprint(_cascades_sql("_roots"), _UPDATE_VERSION,
                                f"upstream rebuilds {upstream}")
    with increments.maintained(con, TABLE, fp, ("share_events", "orders", "products")) as build:
        if build.delta is not None and (None in upstream or (
                build.delta and not attribution.moved_credit_matches(con, build.delta))):
            build.rebuilt()  # upstream built by other means, or updated by another delta
        if build.how == "full":
            return build_cascades(con, settings)
        if build.delta:
            _update(con, build.delta)
    return _finish(con)


_UPDATE_VERSION = "cascades of new shares, clicks and moved credit v2"
"""Part of the fingerprint: change it when :func:`_update` changes meaning."""


def _update(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> None:
    """Replace the rows of the cascades with a new share or event, or with moved credit;
    then set every row's merchant from the product's lines now."""
    roots = f"""SELECT DISTINCT root_share_id FROM graph.share_nodes
                WHERE share_id IN (SELECT share_id FROM staging.share_events
                                   WHERE {delta.new_rows("share_events")})
                   OR share_id IN ({attribution.MOVED_SHARES})"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _roots AS {roots}")
    con.register("_virality", _virality_table(con, roots))
    con.execute(f"DELETE FROM {TABLE} WHERE root_share_id IN (SELECT root_share_id FROM _roots)")
    con.execute(f"INSERT INTO {TABLE} {_cascades_sql('_roots')} ORDER BY started_at, root_share_id")
    con.unregister("_virality")
    con.execute(  # a product's merchant can move with any new line of it (products only grow)
        f"""UPDATE {TABLE} c SET merchant_id = pm.merchant_id
            FROM ({_PRODUCT_MERCHANT}) pm
            WHERE pm.product_id = c.product_id AND c.merchant_id IS DISTINCT FROM pm.merchant_id""")
    con.execute("DROP TABLE _roots")


def _cascades_sql(roots: str = "") -> str:
    """SELECT of the mart's rows: of every cascade, or of those whose root is in the
    relation ``roots`` when given."""
    nodes = (f"(SELECT * FROM graph.share_nodes WHERE root_share_id IN "
             f"(SELECT root_share_id FROM {roots}))" if roots else "graph.share_nodes")
    return f"""
        -- grain: one row per cascade = per root share (graph.share_nodes.depth = 0)
        WITH {_cascade_parts(nodes).strip()},
        {_sales_sql(nodes).strip()},
        product_merchant AS ({_PRODUCT_MERCHANT.strip()})
        SELECT r.share_id AS root_share_id, r.actor_id AS root_actor_id, r.product_id,
               r.category, pm.merchant_id, r.channel, r.shared_at AS started_at,
               x.last_shared_at, x.size, x.size - 1 AS reshares, x.sharers, x.depth,
               x.max_breadth, x.structural_virality, x.clicks, x.clickers,
               coalesce(o.orders, 0)::BIGINT AS orders,
               coalesce(o.buyers, 0)::BIGINT AS buyers,
               coalesce(o.gmv, 0)::DECIMAL(18,2) AS gmv
        FROM {nodes} r
        JOIN fresh x ON x.root_share_id = r.share_id
        LEFT JOIN sales o ON o.root_share_id = r.share_id
        LEFT JOIN product_merchant pm ON pm.product_id = r.product_id
        WHERE r.depth = 0
        """


def _finish(con: duckdb.DuckDBPyConnection) -> int:
    return finish_table(
        con,
        TABLE,
        "One row per share cascade (tree of shares and re-shares rooted at an original share): "
        "size, depth, max breadth, structural virality (Goel et al. 2016) and the clicks, "
        "orders and attributed GMV (¥) its shares led to.",
        CASCADES_DOC,
    )


def check_cascade_shape(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """size >= 1, depth >= 0, max_breadth in [1, size], virality >= 0 and 0 iff size = 1,
    virality 1 at size 2, and every share node belongs to exactly one cascade row."""
    row = con.execute(
        """
        SELECT
          count(*) FILTER (WHERE size < 1 OR size IS NULL),
          count(*) FILTER (WHERE depth < 0 OR depth IS NULL OR depth > size - 1),
          count(*) FILTER (WHERE max_breadth < 1 OR max_breadth > size),
          count(*) FILTER (WHERE NOT structural_virality >= 0 OR NOT isfinite(structural_virality)),
          count(*) FILTER (WHERE (structural_virality = 0) <> (size = 1)),
          count(*) FILTER (WHERE size = 2 AND abs(structural_virality - 1) > 1e-9),
          coalesce(sum(size), 0),
          (SELECT count(*) FROM graph.share_nodes)
        FROM marts.cascades
        """
    ).fetchall()[0]
    bad_size, bad_depth, bad_breadth, bad_nu, bad_zero, bad_two, nodes, share_nodes = row
    problems = []
    for count, what in (
        (bad_size, "size < 1"),
        (bad_depth, "depth < 0 or depth > size - 1"),
        (bad_breadth, "max_breadth outside [1, size]"),
        (bad_nu, "structural_virality negative or not finite"),
        (bad_zero, "structural_virality = 0 not exactly when size = 1"),
        (bad_two, "size 2 with structural_virality != 1"),
    ):
        if count:
            problems.append(f"{count} cascade(s) with {what}")
    if nodes != share_nodes:
        problems.append(f"cascade sizes sum to {nodes} but graph.share_nodes has {share_nodes} rows")
    if problems:
        return False, "; ".join(problems)
    return True, f"all cascades well-formed ({nodes} share nodes)"


def check_cascade_gmv(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    """Sum of cascade GMV (¥) must not exceed the attributed GMV it is a part of."""
    cascade_gmv, attributed = con.execute(
        """
        SELECT (SELECT coalesce(sum(gmv), 0) FROM marts.cascades),
               (SELECT coalesce(sum(amount), 0) FROM graph.attributed_orders
                 WHERE is_paid AND credited_id IS NOT NULL)
        """
    ).fetchall()[0]
    ok = cascade_gmv <= attributed
    return ok, (
        f"cascade GMV ¥{cascade_gmv} {'<=' if ok else '>'} attributed GMV ¥{attributed}"
    )
