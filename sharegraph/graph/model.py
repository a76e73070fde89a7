"""The social graph: people, referral edges, share cascades, agent upline and anomalies.

Built set-based from ``graph.attributed_orders`` and staging tables; trees (share cascades,
agent upline, the influence network) are resolved with NumPy pointer doubling over parent
arrays (:mod:`sharegraph.core.kernels`), never a recursive Python walk, so a cycle cannot hang
the run: one edge per cycle is cut deterministically (at the smallest id) and flagged in
``graph.anomalies``. NetworkX views for notebooks come from :func:`load_referral_graph`,
:func:`load_cascade_tree` and :func:`load_downline`, built from Arrow/NumPy edge arrays.
"""

from __future__ import annotations

import logging

import duckdb
import networkx as nx
import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sharegraph.core.config import Settings
from sharegraph.core.kernels import break_cycles
from sharegraph.core.warehouse import comment_table, create_table_as
from sharegraph.graph.attribution import IN_MULTI_LINE_ORDER

log = logging.getLogger(__name__)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def _resolve_forest(
    con: duckdb.DuckDBPyConnection, nodes_sql: str, target: str
) -> None:
    """Resolve a parent relation into a forest and register it as view-able ``target``.

    ``nodes_sql`` yields ``(node_id, parent_id)`` one row per node; ``parent_id`` may be
    NULL, unknown (dangling), the node itself or part of a cycle. Writes a temp table
    ``target(node_id, parent_id, root_id, depth, flag)`` where ``parent_id`` is the effective
    parent and ``flag`` is NULL | 'self_loop' | 'cycle_cut' | 'dangling'.
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
    cols = con.sql("SELECT i, p, flag = 'self_loop' AS sl FROM _nodes ORDER BY i").to_arrow_table()
    parent = cols.column("p").to_numpy().astype(np.int64)
    self_loop = cols.column("sl").fill_null(False).to_numpy(zero_copy_only=False)
    parent[self_loop] = -1
    forest = break_cycles(parent)
    res = pa.table({  # noqa: F841 - read by DuckDB below
        "i": np.arange(parent.size, dtype=np.int64),
        "ep": forest.parent,
        "root": forest.root,
        "depth": forest.depth,
        "cut": forest.cut,
    })
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {target} AS
        SELECT n.node_id, n.given_parent, par.node_id AS parent_id, rt.node_id AS root_id,
               r.depth::INTEGER AS depth,
               CASE WHEN r.cut THEN 'cycle_cut' ELSE n.flag END AS flag
        FROM _nodes n JOIN res r ON r.i = n.i
        LEFT JOIN _nodes par ON par.i = r.ep AND r.ep >= 0
        JOIN _nodes rt ON rt.i = r.root
        """
    )
    con.execute("DROP TABLE _nodes")


# ---------------------------------------------------------------------------------------------
# graph.share_nodes

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
        """
        CREATE OR REPLACE TEMP TABLE _shares AS
        -- the earliest share/reshare event of each share_id (one hash aggregate, no sort)
        SELECT share_id, unnest(arg_min(
                   {'actor_id': actor_id, 'parent_share_id': parent_share_id,
                    'occurred_at': occurred_at, 'event_type': event_type,
                    'product_id': product_id, 'category': category, 'channel': channel},
                   (occurred_at, event_id)))
        FROM staging.share_events
        WHERE event_type IN ('share', 'reshare')
        GROUP BY share_id
        """
    )
    _resolve_forest(con, "SELECT share_id AS node_id, parent_share_id AS parent_id FROM _shares",
                    "_share_forest")
    create_table_as(
        con,
        "graph.share_nodes",
        """
        -- grain: one row per share_id made by a share or reshare event
        SELECT s.share_id, s.actor_id, f.parent_id AS parent_share_id,
               s.parent_share_id AS source_parent_share_id,
               f.root_id AS root_share_id, f.depth, s.occurred_at AS shared_at, s.event_type,
               s.product_id, coalesce(s.category, p.category) AS category, s.channel, f.flag
        FROM _shares s
        JOIN _share_forest f ON f.node_id = s.share_id
        LEFT JOIN (SELECT DISTINCT ON (product_id) product_id, category
                   FROM staging.products ORDER BY product_id) p ON p.product_id = s.product_id
        """,
        ids=("share_id", "actor_id", "parent_share_id", "source_parent_share_id", "root_share_id"),
    )
    con.execute("DROP TABLE _shares")
    con.execute("DROP TABLE _share_forest")
    comment_table(con, "graph.share_nodes",
                  "One row per share or re-share: its cascade tree (root, effective parent, "
                  "depth; root = 0). Cycles are cut at the smallest share id and flagged.",
                  SHARE_NODES_DOC)
    return _count(con, "graph.share_nodes")


# ---------------------------------------------------------------------------------------------
# graph.agent_upline

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
    _resolve_forest(con, "SELECT agent_id AS node_id, upline_id AS parent_id FROM _agents",
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
    comment_table(con, "graph.agent_upline",
                  "One row per agent: its upline (recruiter) edge in the agent forest, with "
                  "root and depth. Cycles cut at the smallest agent id and flagged.",
                  AGENT_UPLINE_DOC)
    return _count(con, "graph.agent_upline")


# ---------------------------------------------------------------------------------------------
# graph.people

PEOPLE_DOC = {
    "person_id": "Person id (customer, agent, sharer, clicker or referrer).",
    "role": "customer (ordered, not an agent) | agent (agent, never ordered) | both | sharer (only shared, clicked or referred).",
    "is_customer": "Has at least one order line (any status).",
    "is_agent": "Listed in staging.agents.",
    "first_seen_at": "Earliest of first order, first share event and agent joined_at.",
    "first_order_at": "First order (any status), NULL if none.",
    "first_paid_order_at": "First paid order, NULL if none.",
    "first_share_at": "First share or reshare made, NULL if none.",
    "orders": "Distinct orders placed (any status).",
    "paid_gmv": "GMV bought, ¥ (paid lines).",
    "acquired_by": "Person credited with this person's first paid order line (the acquirer), NULL if organic.",
    "upline_id": "Effective agent upline (graph.agent_upline.upline_id).",
    "agent_level": "Agent level (NULL if not an agent).",
    "network_parent_id": "Parent in the influence network forest: upline_id for agents (NULL for a top agent), acquired_by for everyone else; NULL for a root or where a cycle was cut.",
    "network_root_id": "Root of this person's tree in the influence network forest.",
    "network_depth": "Generation below the network root (root = 0).",
    "network_flag": "NULL, or cycle_cut where this person's network parent edge was cut to break a cycle.",
}


def build_people(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.people``: one row per person, with role and influence-network position.

    The influence network forest (parent = upline for agents, else acquirer) is the tree
    over which ``marts.agent_influence`` sums downstream reach and GMV (docs/influence.md).
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _people AS
        -- one pass over attributed_orders per customer; orders of more than one line
        -- are counted per order in a side aggregate (IN_MULTI_LINE_ORDER)
        WITH a AS (
            SELECT customer_id, order_id, ordered_at, is_paid, amount, credited_id,
                   is_first_order,
                   {IN_MULTI_LINE_ORDER} AS multi
            FROM graph.attributed_orders
        ),
        per_customer AS (
            SELECT customer_id AS person_id, min(ordered_at) AS first_order_at,
                   min(ordered_at) FILTER (WHERE is_paid) AS first_paid_order_at,
                   count(*) FILTER (WHERE NOT multi) AS single_line_orders,
                   coalesce(sum(amount) FILTER (WHERE is_paid), 0)::DECIMAL(18,2) AS paid_gmv,
                   max(credited_id) FILTER (WHERE is_first_order) AS acquired_by
            FROM a GROUP BY 1
        ),
        multi_line AS (
            SELECT customer_id AS person_id, count(*) AS orders
            FROM (SELECT DISTINCT customer_id, order_id FROM a WHERE multi) GROUP BY 1
        ),
        o AS MATERIALIZED (
            SELECT p.person_id, p.first_order_at, p.first_paid_order_at,
                   p.single_line_orders + coalesce(m.orders, 0) AS orders, p.paid_gmv,
                   p.acquired_by
            FROM per_customer p LEFT JOIN multi_line m ON m.person_id = p.person_id
        ),
        s AS MATERIALIZED (
            SELECT actor_id AS person_id,
                   min(occurred_at) AS first_event_at,
                   min(occurred_at) FILTER (WHERE event_type IN ('share', 'reshare')) AS first_share_at
            FROM staging.share_events WHERE actor_id IS NOT NULL GROUP BY 1
        ),
        ids AS (
            SELECT person_id FROM o
            UNION SELECT person_id FROM s
            UNION SELECT credited_id FROM graph.attributed_orders WHERE credited_id IS NOT NULL
            UNION SELECT agent_id FROM graph.agent_upline
        )
        SELECT i.person_id,
               CASE WHEN o.person_id IS NOT NULL AND a.agent_id IS NOT NULL THEN 'both'
                    WHEN a.agent_id IS NOT NULL THEN 'agent'
                    WHEN o.person_id IS NOT NULL THEN 'customer'
                    ELSE 'sharer' END AS role,
               o.person_id IS NOT NULL AS is_customer,
               a.agent_id IS NOT NULL AS is_agent,
               least(o.first_order_at, s.first_event_at, a.joined_at) AS first_seen_at,
               o.first_order_at, o.first_paid_order_at, s.first_share_at,
               coalesce(o.orders, 0) AS orders,
               coalesce(o.paid_gmv, 0)::DECIMAL(18,2) AS paid_gmv,
               o.acquired_by, a.upline_id, a.level AS agent_level
        FROM ids i
        LEFT JOIN o ON o.person_id = i.person_id
        LEFT JOIN s ON s.person_id = i.person_id
        LEFT JOIN graph.agent_upline a ON a.agent_id = i.person_id
        """
    )
    _resolve_forest(
        con,
        "SELECT person_id AS node_id, CASE WHEN is_agent THEN upline_id ELSE acquired_by END "
        "AS parent_id FROM _people",
        "_network",
    )
    create_table_as(
        con,
        "graph.people",
        """
        -- grain: one row per person
        SELECT p.*, f.parent_id AS network_parent_id, f.root_id AS network_root_id,
               f.depth AS network_depth,
               CASE WHEN f.flag = 'cycle_cut' THEN 'cycle_cut' END AS network_flag
        FROM _people p JOIN _network f ON f.node_id = p.person_id
        """,
        ids=("person_id", "acquired_by", "upline_id", "network_parent_id", "network_root_id"),
    )
    con.execute("DROP TABLE _people")
    con.execute("DROP TABLE _network")
    comment_table(con, "graph.people",
                  "One row per person seen in orders, share events, attribution or agents: "
                  "role, firsts, acquirer and position in the influence network forest.",
                  PEOPLE_DOC)
    return _count(con, "graph.people")


# ---------------------------------------------------------------------------------------------
# graph.referral_edges

REFERRAL_EDGES_DOC = {
    "merchant_id": "Merchant of the attributed order lines.",
    "sharer_id": "Credited person (sharer or referrer).",
    "buyer_id": "Customer who bought.",
    "orders": "Distinct paid orders of buyer credited to sharer at this merchant.",
    "order_lines": "Paid order lines credited.",
    "gmv": "Paid GMV credited on this edge, ¥.",
    "first_order_at": "First credited order.",
    "last_order_at": "Last credited order.",
    "is_acquisition": "True when the buyer's first paid order line is on this edge (sharer acquired the buyer).",
}


def build_referral_edges(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.referral_edges``: one row per (merchant, sharer, buyer) with credit."""
    create_table_as(
        con,
        "graph.referral_edges",
        f"""
        -- grain: one row per merchant_id, sharer_id (credited person), buyer_id
        -- orders of more than one line are grouped per order first (IN_MULTI_LINE_ORDER)
        WITH a AS (
            SELECT merchant_id, credited_id, customer_id, order_id, amount, ordered_at,
                   is_first_order,
                   {IN_MULTI_LINE_ORDER} AS multi
            FROM graph.attributed_orders
            WHERE is_paid AND credited_id IS NOT NULL
        ),
        per_order AS (
            SELECT merchant_id, credited_id, customer_id, count(*) AS lines, sum(amount) AS gmv,
                   min(ordered_at) AS first_at, max(ordered_at) AS last_at,
                   bool_or(is_first_order) AS acq
            FROM a WHERE multi GROUP BY merchant_id, credited_id, customer_id, order_id
            UNION ALL
            SELECT merchant_id, credited_id, customer_id, 1, amount, ordered_at, ordered_at,
                   is_first_order
            FROM a WHERE NOT multi
        )
        SELECT merchant_id, credited_id AS sharer_id, customer_id AS buyer_id,
               count(*) AS orders, sum(lines)::BIGINT AS order_lines,
               sum(gmv)::DECIMAL(18,2) AS gmv,
               min(first_at) AS first_order_at, max(last_at) AS last_order_at,
               bool_or(acq) AS is_acquisition
        FROM per_order
        GROUP BY ALL
        """,
        ids=("sharer_id", "buyer_id"),
    )
    comment_table(con, "graph.referral_edges",
                  "One row per merchant, sharer and buyer: paid orders and GMV (¥) credited "
                  "to the sharer (attribution graph edge sharer -> buyer).",
                  REFERRAL_EDGES_DOC)
    return _count(con, "graph.referral_edges")


# ---------------------------------------------------------------------------------------------
# graph.anomalies

ANOMALIES_DOC = {
    "kind": "self_referral | dangling_order_share | share_self_loop | share_cycle | dangling_parent_share | upline_self_loop | upline_cycle | dangling_upline | network_cycle | referral_cycle.",
    "entity": "What the id names: order, share, agent, person.",
    "id": "The flagged order / share / agent / person (for referral_cycle: the smallest member).",
    "related_id": "The other end: referrer, unknown share, cut parent, unknown upline, ...",
    "detail": "What is wrong and what the pipeline did about it.",
}


def _referral_cycles(con: duckdb.DuckDBPyConnection) -> pa.Table:
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
        return pa.table({"i": pa.array([], pa.int64()), "comp": pa.array([], pa.int64())})
    s, d = edges["s"].astype(np.int64), edges["d"].astype(np.int64)
    m = coo_matrix((np.ones(s.size), (s, d)), shape=(n_ids, n_ids)).tocsr()
    _, comp = connected_components(m, directed=True, connection="strong")
    sizes = np.bincount(comp)
    member = np.flatnonzero(sizes[comp] > 1)
    return pa.table({"i": member.astype(np.int64), "comp": comp[member].astype(np.int64)})


def build_anomalies(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.anomalies``: one row per flagged graph problem (never fatal)."""
    cyc = _referral_cycles(con)  # noqa: F841 - read by DuckDB below
    con.execute(
        """
        CREATE OR REPLACE TABLE graph.anomalies AS
        -- grain: one row per flagged graph problem
        WITH sharers AS (
            SELECT share_id, arg_min(actor_id, occurred_at) AS sharer_id
            FROM staging.share_events WHERE event_type IN ('share', 'reshare') GROUP BY 1
        ),
        scc AS (SELECT c.comp, min(ids.id) AS id, count(*) AS n,
                       string_agg(ids.id, ', ' ORDER BY ids.id) AS members
                FROM cyc c JOIN _rids ids ON ids.i = c.i GROUP BY c.comp)
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
    comment_table(con, "graph.anomalies",
                  "One row per flagged graph problem (self-referral, cycles, dangling "
                  "references) and how the pipeline handled it.", ANOMALIES_DOC)
    return _count(con, "graph.anomalies")


def upline_is_forest(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """Asset-check helper: every effective upline edge goes one level down (so no cycle).

    Returns (ok, number of violating agents).
    """
    bad = con.execute(
        """
        SELECT count(*) FROM graph.agent_upline a
        LEFT JOIN graph.agent_upline u ON u.agent_id = a.upline_id
        WHERE a.depth IS NULL
           OR (a.upline_id IS NULL AND (a.depth <> 0 OR a.root_agent_id <> a.agent_id))
           OR (a.upline_id IS NOT NULL AND (u.agent_id IS NULL OR a.depth <> u.depth + 1
               OR a.root_agent_id <> u.root_agent_id))
        """
    ).fetchall()[0][0]
    return bad == 0, bad


def share_depths_ok(con: duckdb.DuckDBPyConnection) -> tuple[bool, int]:
    """Asset-check helper: every share has a depth, roots have depth 0, children parent+1."""
    bad = con.execute(
        """
        SELECT count(*) FROM graph.share_nodes a
        LEFT JOIN graph.share_nodes u ON u.share_id = a.parent_share_id
        WHERE a.depth IS NULL OR a.root_share_id IS NULL
           OR (a.parent_share_id IS NULL AND (a.depth <> 0 OR a.root_share_id <> a.share_id))
           OR (a.parent_share_id IS NOT NULL AND (u.share_id IS NULL OR a.depth <> u.depth + 1
               OR a.root_share_id <> u.root_share_id))
        """
    ).fetchall()[0][0]
    return bad == 0, bad


# ---------------------------------------------------------------------------------------------
# NetworkX views for notebooks


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
