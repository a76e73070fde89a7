"""Audience: who reaches whom, and what each person in that graph did.

``graph.audience_edges`` has one row per (sharer, viewer) where the viewer clicked the
sharer's shares, bought credited to the sharer, or is the sharer's direct downline agent.
``graph.person_activity`` has one row per person in those edges: shares made, clicks and
credited purchases led to, audience, share purchases and re-shares, paid lines, spend and
main category. These are the trials and successes the launch planner's model shrinks
(docs/planner.md); at 10M orders they are ~15 s of grouping over every line and event, so
they are kept, and a daily run recomputes only the people a load touched.
"""

from __future__ import annotations

import duckdb

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.warehouse import create_table_as, finish_table
from sharegraph.graph import attribution, clicks
from sharegraph.graph.shares import SHARE_EVENTS

EDGES = "graph.audience_edges"
UPLINE = "graph.agent_upline"
UPLINE_EDGES = f"SELECT upline_id, agent_id FROM {UPLINE} WHERE upline_id IS NOT NULL"
"""The agent upline as (sharer, viewer) edges: an upline reaches its direct downline."""
ACTIVITY = "graph.person_activity"
INPUTS = (*attribution.INPUTS, "agents")
"""Staging tables the two tables read, through attribution, click edges and the upline."""
RESHARE_WINDOW_DAYS = 7
"""A share-credited purchase counts as re-shared when the buyer shares the product within
this many days after it."""

EDGES_DOC = {
    "sharer_id": "Who reaches the viewer: a sharer, credited person or upline agent.",
    "viewer_id": "Who is reached: a clicker of the sharer's shares, a buyer credited to the "
                 "sharer, or a direct downline agent.",
    "clicks": "Clicks by the viewer on the sharer's shares (graph.click_edges; 0 when none).",
    "buys": "The viewer's paid orders credited to the sharer (one per order and rule).",
    "referred": "Of those, credited by the referrer rule.",
}
ACTIVITY_DOC = {
    "person_id": "Person in graph.audience_edges (as sharer or viewer).",
    "category": "Most frequent category of the person's shares and paid lines (ties by "
                "name), '(none)' without any.",
    "shares": "Share and re-share events made.",
    "clicks": "Clicks by others on the person's shares.",
    "buys": "Paid orders credited to the person (one per order, credited person and rule).",
    "referred": "Of those, credited by the referrer rule.",
    "audience": "Distinct viewers the person reaches (rows of graph.audience_edges).",
    "share_purchases": "The person's paid orders credited through a share (share_id, "
                       "last_click rules).",
    "reshared": f"Of those, the ones the person re-shared (a share of the same product within "
                f"{RESHARE_WINDOW_DAYS} days after).",
    "orders": "Paid order lines bought.",
    "spent": "¥ of those lines.",
}


def edges_sql(clicks_rel: str, od: str, upline: str, viewers: str = "") -> str:
    """SQL of one row per (sharer, viewer, clicks, buys, referred) from ``clicks_rel``
    (sharer, viewer, n), the credited paid lines of ``od`` (one buy per order, credited
    person and rule) and ``upline`` (sharer, viewer; may be empty), of the viewers whose id
    matches ``viewers`` (``IN (...)``) when given. The one definition: the planner runs it
    on its scope.

    Each part holds a pair at most once (clicks are grouped per pair, the buys below, the
    upline has one row per agent), so the parts are joined on the pair rather than stacked
    and grouped: at 10M orders grouping 21M rows into 17M pairs took 5.9 s, the joins 3.8–4.1 s.
    No part has a NULL sharer or viewer (a click's two people differ, credited lines have a
    credited person and a customer, the upline edges an upline), so plain equality joins.
    """
    buyer = f"AND customer_id {viewers}" if viewers else ""
    buys = f"""(SELECT credited_id AS sharer, customer_id AS viewer, count(*) AS b,
                       count(*) FILTER (WHERE rule = 'referrer') AS r
                FROM (SELECT order_id, credited_id, customer_id, rule FROM {od}
                      WHERE credited_id IS NOT NULL {buyer} GROUP BY ALL)
                GROUP BY credited_id, customer_id)"""
    pairs = f"""(SELECT coalesce(k.sharer, b.sharer) AS sharer,
                        coalesce(k.viewer, b.viewer) AS viewer, k.n, b.b, b.r
                 FROM (SELECT sharer, viewer, n FROM {clicks_rel}) k FULL JOIN {buys} b
                   ON k.sharer = b.sharer AND k.viewer = b.viewer)"""
    if upline:
        pairs = f"""(SELECT coalesce(e.sharer, u.sharer) AS sharer,
                            coalesce(e.viewer, u.viewer) AS viewer, e.n, e.b, e.r
                     FROM {pairs} e FULL JOIN ({upline}) AS u(sharer, viewer)
                       ON e.sharer = u.sharer AND e.viewer = u.viewer)"""
    return f"""
        SELECT sharer, viewer, coalesce(n, 0)::BIGINT AS clicks, coalesce(b, 0)::BIGINT AS buys,
               coalesce(r, 0)::BIGINT AS referred
        FROM {pairs}"""


def activity_sql(od: str, shares: str, edges: str, who: str = "") -> str:
    """SQL of one row per person of ``edges`` (:func:`edges_sql`) whose id matches
    ``who`` (``IN (...)``; everyone when empty), from their paid lines ``od`` (order_id,
    customer_id, credited_id, rule, ordered_at, product_id, category, amount) and share
    events ``shares`` (sharer, category, product_id, occurred_at). The one definition: the
    planner runs it on its scope."""
    def only(column: str) -> str:
        return f"{column} {who}" if who else "true"

    return f"""
        WITH sharer_stats AS (  -- edges hold each (sharer, viewer) once: audience = count(*)
            SELECT x.sharer AS person_id, coalesce(sh.n, 0) AS shares, x.clicks, x.buys,
                   x.referred, x.audience
            FROM (SELECT sharer, count(*) AS audience, sum(clicks)::BIGINT AS clicks,
                         sum(buys)::BIGINT AS buys, sum(referred)::BIGINT AS referred
                  FROM {edges} WHERE {only("sharer")} GROUP BY sharer) x
            LEFT JOIN (SELECT sharer, count(*) AS n FROM {shares} WHERE {only("sharer")}
                       GROUP BY sharer) sh USING (sharer)
        ),
        bought AS (  -- one row per share-credited order of a buyer: did they re-share it?
            SELECT o.customer_id AS person_id, o.order_id,
                   bool_or(e.sharer IS NOT NULL) AS reshared
            FROM {od} o LEFT JOIN (SELECT * FROM {shares} WHERE {only("sharer")}) e
              ON e.sharer = o.customer_id
             AND e.product_id = o.product_id AND e.occurred_at >= o.ordered_at
             AND e.occurred_at <= o.ordered_at + INTERVAL {RESHARE_WINDOW_DAYS} DAY
            WHERE o.rule IN ('share_id', 'last_click') AND {only("o.customer_id")} GROUP BY ALL
        ),
        everyone AS (SELECT sharer AS person_id FROM {edges} WHERE {only("sharer")}
                     UNION SELECT viewer FROM {edges} WHERE {only("viewer")}),
        main_cat AS (  -- the most frequent category, ties by name (deterministic)
            SELECT person_id, arg_min(category, (-n, category)) AS category FROM (
                SELECT person_id, category, count(*) AS n FROM (
                    SELECT sharer AS person_id, category FROM {shares} WHERE {only("sharer")}
                    UNION ALL SELECT customer_id, category FROM {od}
                    WHERE {only("customer_id")}) GROUP BY ALL)
            GROUP BY person_id
        ),
        spend AS (SELECT customer_id AS person_id, count(*) AS orders, sum(amount) AS spent
                  FROM {od} WHERE {only("customer_id")} GROUP BY ALL)
        SELECT p.person_id, coalesce(m.category, '(none)') AS category,
               coalesce(s.shares, 0) AS shares, coalesce(s.clicks, 0) AS clicks,
               coalesce(s.buys, 0) AS buys, coalesce(s.referred, 0) AS referred,
               coalesce(s.audience, 0) AS audience,
               coalesce(b.n, 0) AS share_purchases, coalesce(b.k, 0) AS reshared,
               coalesce(sp.orders, 0) AS orders, coalesce(CAST(sp.spent AS DOUBLE), 0) AS spent
        FROM everyone p
        LEFT JOIN sharer_stats s USING (person_id)
        LEFT JOIN (SELECT person_id, count(*) AS n, count(*) FILTER (WHERE reshared) AS k
                   FROM bought GROUP BY ALL) b USING (person_id)
        LEFT JOIN main_cat m USING (person_id)
        LEFT JOIN spend sp USING (person_id)
        """


PAID_LINES = """(SELECT order_id, customer_id, credited_id, rule, ordered_at, product_id,
                        category, amount
                 FROM graph.attributed_orders WHERE is_paid)"""
"""Every paid attributed line, in the columns :func:`activity_sql` reads."""
SHARES = f"""(SELECT actor_id AS sharer, category, product_id, occurred_at
             FROM staging.share_events WHERE {SHARE_EVENTS})"""
"""Every share and re-share event with its actor, in the columns :func:`activity_sql` reads."""


def _edges_of(viewers: str = "") -> str:
    """:func:`edges_sql` over the warehouse (click edges, paid lines, the upline), in the
    table's columns; of the viewers matching ``viewers`` (``IN (...)``) when given."""
    clickers = f"WHERE clicker_id {viewers}" if viewers else ""
    agents = f" AND agent_id {viewers}" if viewers else ""
    return f"""SELECT sharer AS sharer_id, viewer AS viewer_id, clicks, buys, referred FROM ({
        edges_sql(f"(SELECT sharer_id, clicker_id, clicks FROM {clicks.TABLE} {clickers})"
                  " AS k(sharer, viewer, n)", PAID_LINES,
                  f"{UPLINE_EDGES}{agents}",
                  viewers)})"""


_EDGES_AS_READ = f"(SELECT sharer_id AS sharer, viewer_id AS viewer, clicks, buys, referred FROM {EDGES})"
"""The edges table in the columns :func:`activity_sql` reads."""


def build_audience(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Build ``graph.audience_edges`` and ``graph.person_activity`` in full; returns the
    activity's row count."""
    del settings  # no tunables
    create_table_as(con, EDGES, _edges_of(), ids=("sharer_id", "viewer_id"))
    create_table_as(con, ACTIVITY, activity_sql(PAID_LINES, SHARES, _EDGES_AS_READ),
                    ids=("person_id",))
    return _finish(con)


def refresh_audience(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> int:
    """Bring both tables up to date after a load, per viewer and per person when they can.

    A viewer's edges depend only on their click edges, their credited paid lines and their
    upline: after a load only the customers attribution rewrote and the clickers the
    click edges added to (those of the new batches' clicks, and of earlier clicks on shares
    with a new share event) can have other edges. Attribution's log
    (:data:`attribution.REWRITTEN`) holds both: its touched customers include every such
    clicker, whose last click may have moved (its touched rule's version is in this
    fingerprint). Their edges are recomputed.

    A person's activity depends on their edges as sharer and viewer, their paid lines, the
    lines credited to them and their share events, so the people recomputed are: those
    viewers, the sharers of their edges before and after, and the actors of new share
    events (a customer's creditors are sharers of the customer's edges, whose buys changed).
    New agents, attribution or click edges rebuilt, or a log of another update, rebuild in
    full. Equals :func:`build_audience`.
    """
    up = (increments.rebuild_id(con, attribution.TABLE, attribution.INPUTS),
          increments.rebuild_id(con, clicks.TABLE, clicks.INPUTS))
    fp = increments.fingerprint(_edges_of(), activity_sql(PAID_LINES, SHARES, _EDGES_AS_READ),
                                _TOUCHED_VERSION, attribution.TOUCHED_VERSION,
                                f"upstream rebuilds {up}")
    with increments.maintained(con, ACTIVITY, fp, INPUTS) as build:
        delta = build.delta
        if delta and (None in up or delta.rows.get("agents") or delta.changes.get("agents")
                      or not attribution.changes_match(con, delta)):
            build.rebuilt()
        if build.how == "full":
            return build_audience(con, settings)
        if delta:
            _update(con, delta)
    return _finish(con)


_TOUCHED_VERSION = "audience: touched viewers and people v1"
"""Part of the fingerprint: change it when :func:`_update` changes meaning."""


def _update(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> None:
    """Recompute the edges of attribution's rewritten customers, then the activity of the
    people whose rows can differ: those customers, the sharers of their edges that changed
    (added, gone, other counts) and the actors of new share events."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _au_viewers AS {attribution.REWRITTEN}")
    viewers = "IN (SELECT customer_id FROM _au_viewers)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _au_was AS SELECT * FROM {EDGES} WHERE viewer_id {viewers}")
    con.execute(f"DELETE FROM {EDGES} WHERE viewer_id {viewers}")
    con.execute(f"INSERT INTO {EDGES} {_edges_of(viewers)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _au_people AS
        WITH now AS (SELECT * FROM {EDGES} WHERE viewer_id {viewers}),
        changed AS ((SELECT * FROM _au_was EXCEPT ALL SELECT * FROM now)
                    UNION ALL (SELECT * FROM now EXCEPT ALL SELECT * FROM _au_was))
        SELECT customer_id AS person_id FROM _au_viewers
        UNION SELECT sharer_id FROM changed
        UNION SELECT actor_id FROM staging.share_events
        WHERE {SHARE_EVENTS} AND actor_id IS NOT NULL AND {delta.new_rows("share_events")}""")
    people = "IN (SELECT person_id FROM _au_people)"
    # their lines, shares and edges, each read once (activity_sql reads each several times)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _au_od AS SELECT * FROM {PAID_LINES} "
                f"WHERE customer_id {people}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _au_sh AS SELECT * FROM {SHARES} WHERE sharer {people}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _au_edges AS SELECT * FROM {_EDGES_AS_READ} "
                f"WHERE sharer {people} OR viewer {people}")
    con.execute(f"DELETE FROM {ACTIVITY} WHERE person_id {people}")
    con.execute(f"INSERT INTO {ACTIVITY} {activity_sql('_au_od', '_au_sh', '_au_edges', people)}")
    for temp in ("_au_viewers", "_au_was", "_au_people", "_au_od", "_au_sh", "_au_edges"):
        con.execute(f"DROP TABLE {temp}")


def _finish(con: duckdb.DuckDBPyConnection) -> int:
    finish_table(con, EDGES, "One row per sharer and viewer: who reaches whom through clicks, "
                 "credited purchases or the agent upline (the launch planner's audience graph).",
                 EDGES_DOC)
    return finish_table(con, ACTIVITY,
                        "One row per person in graph.audience_edges: shares, clicks and credited "
                        "purchases led to, audience, re-shares, purchases, spend (¥) and main "
                        "category (the launch planner's trials and successes, docs/planner.md).",
                        ACTIVITY_DOC)
