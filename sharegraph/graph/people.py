"""People and referral edges: who is a customer, agent or sharer, who acquired whom, and the
sharer -> buyer edges credit flows along.

``graph.people`` also places everyone in the influence network forest (parent = upline for
agents, else acquirer) over which ``marts.agent_influence`` sums downstream reach and GMV.
"""

from __future__ import annotations

import duckdb

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph import attribution
from sharegraph.graph.attribution import IN_MULTI_LINE_ORDER
from sharegraph.graph.forest import resolve_forest
from sharegraph.graph.shares import SHARE_EVENTS

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


PEOPLE = "graph.people"
PEOPLE_INPUTS = (*attribution.INPUTS, "agents")
"""Staging tables graph.people reads, through attribution and the agent upline or directly."""

_NETWORK = ("network_parent_id", "network_root_id", "network_depth", "network_flag")
"""graph.people's columns of the influence network forest (the rest are the person's own)."""


def build_people(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.people``: one row per person, with role and influence-network position.

    The influence network forest (parent = upline for agents, else acquirer) is the tree
    over which ``marts.agent_influence`` sums downstream reach and GMV (docs/influence.md).
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE _people AS {_people_sql(None)}")
    return _place_and_write(con)


def refresh_people(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Bring ``graph.people`` up to date after a load, per person when it can.

    A person's own columns depend only on their lines in graph.attributed_orders, their
    share events, their agent row, and (for their row to exist at all) on anyone's line
    crediting them. So after a load only these rows can change: the customers attribution
    rewrote (:data:`attribution.REWRITTEN`), the people credited by a line it removed or
    wrote (:data:`attribution.MOVED_CREDITED`: a line it did not touch credits as before), the
    actors of new share events, and the people seen only as credited (they may have lost it). Those
    are recomputed with the same SQL; the forest is resolved again for everyone, since a new
    acquirer moves a whole subtree. New agents, a rebuilt attribution or a log of another
    update rebuild in full. Equals :func:`build_people`.
    """
    up = increments.rebuild_id(con, attribution.TABLE, attribution.INPUTS)
    fp = increments.fingerprint(_people_sql(None), _TOUCHED_PEOPLE_VERSION,
                                f"upstream rebuild {up}")
    with increments.maintained(con, PEOPLE, fp, PEOPLE_INPUTS) as build:
        delta = build.delta
        if delta and not (up and not delta.rows.get("agents") and not delta.changes.get("agents")
                          and attribution.changes_match(con, delta)
                          and attribution.moved_credit_matches(con, delta)):
            build.rebuilt()
        if build.how == "full":
            return build_people(con, settings)
        if delta:
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _people_touched AS
                SELECT customer_id AS person_id FROM ({attribution.REWRITTEN})
                UNION {attribution.MOVED_CREDITED}
                UNION SELECT actor_id FROM staging.share_events
                WHERE actor_id IS NOT NULL AND {delta.new_rows("share_events")}
                UNION SELECT person_id FROM {PEOPLE}  -- seen only as credited
                WHERE NOT is_customer AND NOT is_agent AND first_seen_at IS NULL""")
            touched = "IN (SELECT person_id FROM _people_touched)"
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _people AS
                SELECT * EXCLUDE ({", ".join(_NETWORK)}) FROM {PEOPLE}
                WHERE person_id NOT {touched}
                UNION ALL SELECT * FROM ({_people_sql(touched)})""")
            con.execute("DROP TABLE _people_touched")
            return _place_and_write(con)
    return _finish_people(con)


_TOUCHED_PEOPLE_VERSION = "touched people v2: credited by moved lines"
"""Part of the fingerprint: change it when :func:`refresh_people`'s touched set changes meaning."""


def _place_and_write(con: duckdb.DuckDBPyConnection) -> int:
    """Resolve the influence network forest over ``_people`` and write graph.people."""
    resolve_forest(
        con,
        "SELECT person_id AS node_id, CASE WHEN is_agent THEN upline_id ELSE acquired_by END "
        "AS parent_id FROM _people",
        "_network",
    )
    create_table_as(
        con,
        PEOPLE,
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
    return _finish_people(con)


def _finish_people(con: duckdb.DuckDBPyConnection) -> int:
    return finish_table(con, PEOPLE,
                        "One row per person seen in orders, share events, attribution or agents: "
                        "role, firsts, acquirer and position in the influence network forest.",
                        PEOPLE_DOC)


def _people_sql(who: str | None) -> str:
    """SQL of one row per person with role, firsts, orders and acquirer: everyone seen as a
    customer, share event actor, credited person or agent, or only those whose id matches
    the predicate ``who`` (``IN (...)``)."""
    def only(column: str) -> str:
        return f"{column} {who}" if who else "true"

    return f"""
        -- one pass over attributed_orders per customer; orders of more than one line
        -- are counted per order in a side aggregate (IN_MULTI_LINE_ORDER)
        WITH a AS (
            SELECT customer_id, order_id, ordered_at, is_paid, amount, credited_id,
                   is_first_order,
                   {IN_MULTI_LINE_ORDER} AS multi
            FROM graph.attributed_orders WHERE {only("customer_id")}
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
                   min(occurred_at) FILTER (WHERE {SHARE_EVENTS}) AS first_share_at
            FROM staging.share_events WHERE actor_id IS NOT NULL AND {only("actor_id")}
            GROUP BY 1
        ),
        ids AS (
            SELECT person_id FROM o
            UNION SELECT person_id FROM s
            UNION SELECT credited_id FROM graph.attributed_orders
            WHERE credited_id IS NOT NULL AND {only("credited_id")}
            UNION SELECT agent_id FROM graph.agent_upline WHERE {only("agent_id")}
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


REFERRAL_EDGES = "graph.referral_edges"


def build_referral_edges(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.referral_edges``: one row per (merchant, sharer, buyer) with credit."""
    create_table_as(con, REFERRAL_EDGES, _referral_edges_sql("true"), ids=("sharer_id", "buyer_id"))
    return _finish_referral_edges(con)


def refresh_referral_edges(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Bring ``graph.referral_edges`` up to date after a load, per buyer when it can.

    An edge sums one buyer's credited paid lines, so only the buyers of the credited paid
    lines attribution's update removed or wrote (:data:`attribution.MOVED_BUYERS`) can have
    other edges: theirs are recomputed with the same SQL. Rebuilt in full when attribution
    was, or when the log is of another update.
    Equals :func:`build_referral_edges`.
    """
    up = increments.rebuild_id(con, attribution.TABLE, attribution.INPUTS)
    fp = increments.fingerprint(_referral_edges_sql("true"), f"upstream rebuild {up}")
    with increments.maintained(con, REFERRAL_EDGES, fp, attribution.INPUTS) as build:
        if build.delta and not (up and attribution.moved_credit_matches(con, build.delta)):
            build.rebuilt()
        if build.how == "full":
            return build_referral_edges(con, settings)
        if build.delta:
            who = f"IN ({attribution.MOVED_BUYERS})"
            con.execute(f"DELETE FROM {REFERRAL_EDGES} WHERE buyer_id {who}")
            con.execute(f"INSERT INTO {REFERRAL_EDGES} {_referral_edges_sql(f'customer_id {who}')}")
    return _finish_referral_edges(con)


def _referral_edges_sql(buyers: str) -> str:
    """SQL of the referral edges of the buyers ``buyers`` (a predicate on customer_id)."""
    return f"""
        -- grain: one row per merchant_id, sharer_id (credited person), buyer_id
        -- orders of more than one line are grouped per order first (IN_MULTI_LINE_ORDER)
        WITH a AS (
            SELECT merchant_id, credited_id, customer_id, order_id, amount, ordered_at,
                   is_first_order,
                   {IN_MULTI_LINE_ORDER} AS multi
            FROM graph.attributed_orders
            WHERE is_paid AND credited_id IS NOT NULL AND {buyers}
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
        """


def _finish_referral_edges(con: duckdb.DuckDBPyConnection) -> int:
    return finish_table(con, REFERRAL_EDGES,
                        "One row per merchant, sharer and buyer: paid orders and GMV (¥) credited "
                        "to the sharer (attribution graph edge sharer -> buyer).",
                        REFERRAL_EDGES_DOC)
