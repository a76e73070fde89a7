"""Reference flags: loaded rows whose cross-table references look wrong.

A flag (``quarantine.flagged_rows``) never removes a row from staging; downstream stages decide
what to do with it. Flags follow a load per row: staging only grows and a loaded row's
references never change (only a status may), so a reference that resolved stays resolved. After
a load only two kinds of rows can change their flags: the rows of the new batches, and the rows
flagged before (their missing share, referrer or upline may have arrived). Only those are looked
at, with the reference sets narrowed to what they name; the other flags stay as they were,
``flagged_at`` included. The first load, other flag rules, a load of more than a fifth of the
rows, staging edited by other means, or a products or group-buys file given for the first time
(it switches a rule on for every order) recompute every flag (docs/ingest.md).
"""

from __future__ import annotations

import duckdb

from sharegraph.core import increments
from sharegraph.core.sql import in_list, literal
from sharegraph.core.warehouse import ensure_schema

TABLE = "quarantine.flagged_rows"
INPUTS = ("orders", "share_events", "products", "agents", "group_buys")
"""Staging tables the flags read (status changes of orders and group buys included)."""

#: rule names of quarantine.flagged_rows (rows loaded, but a reference looks wrong)
FLAG_RULES: dict[str, str] = {
    "unknown_share": "orders.share_id, or a click's share_id, has no share/reshare event in staging.share_events.",
    "unknown_referrer": "orders.referrer_id is not a known person (customer, share actor, agent or group initiator).",
    "self_referral": "orders.referrer_id equals the order's customer_id.",
    "unknown_product": "orders.product_id is not in staging.products (only when products were given).",
    "unknown_group": "orders.group_id is not in staging.group_buys (only when group buys were given).",
    "unknown_parent_share": "share_events.parent_share_id has no share/reshare event.",
    "unknown_upline": "agents.upline_id is not an agent.",
    "self_upline": "agents.upline_id equals agent_id.",
    "status_reversal": "A later export moved a status out of a final state (refunded/cancelled -> paid, filled/failed -> another state); the update was applied, review it.",
}

SUBJECTS = ("orders", "share_events", "agents", "status_history")
"""Tables whose rows are flagged: each rule reads them as ``{orders}`` etc., the whole staging
table or only the rows to look at; ``_sg_share_ids`` (share/reshare ids) and ``_sg_people``
(the referrers that are known persons) are the reference sets, built once per call."""

FLAG_SQL: dict[str, str] = {
    "unknown_share": """
        SELECT 'orders' t, o.source_file, o.source_row, o.batch_id, 'share_id' c, o.share_id v
        FROM {orders} o ANTI JOIN _sg_share_ids i ON i.share_id = o.share_id
        WHERE o.share_id IS NOT NULL
        UNION ALL
        SELECT 'share_events', e.source_file, e.source_row, e.batch_id, 'share_id', e.share_id
        FROM {share_events} e ANTI JOIN _sg_share_ids i ON i.share_id = e.share_id
        WHERE e.event_type = 'click'""",
    "unknown_referrer": """
        SELECT 'orders', o.source_file, o.source_row, o.batch_id, 'referrer_id', o.referrer_id
        FROM {orders} o
        WHERE o.referrer_id IS NOT NULL AND o.referrer_id NOT IN (
            SELECT person_id FROM _sg_people)""",
    "self_referral": """
        SELECT 'orders', source_file, source_row, batch_id, 'referrer_id', referrer_id
        FROM {orders} WHERE referrer_id = customer_id""",
    "unknown_product": """
        SELECT 'orders', o.source_file, o.source_row, o.batch_id, 'product_id', o.product_id
        FROM {orders} o
        WHERE EXISTS (SELECT 1 FROM staging.products)
          AND o.product_id NOT IN (SELECT product_id FROM staging.products)""",
    "unknown_group": """
        SELECT 'orders', o.source_file, o.source_row, o.batch_id, 'group_id', o.group_id
        FROM {orders} o
        WHERE o.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM staging.group_buys)
          AND o.group_id NOT IN (SELECT group_id FROM staging.group_buys)""",
    "unknown_parent_share": """
        SELECT 'share_events', e.source_file, e.source_row, e.batch_id, 'parent_share_id',
               e.parent_share_id
        FROM {share_events} e ANTI JOIN _sg_share_ids i ON i.share_id = e.parent_share_id
        WHERE e.parent_share_id IS NOT NULL""",
    "unknown_upline": """
        SELECT 'agents', source_file, source_row, batch_id, 'upline_id', upline_id
        FROM {agents}
        WHERE upline_id IS NOT NULL AND upline_id NOT IN (SELECT agent_id FROM staging.agents)""",
    "self_upline": """
        SELECT 'agents', source_file, source_row, batch_id, 'upline_id', upline_id
        FROM {agents} WHERE upline_id = agent_id""",
    "status_reversal": """
        SELECT table_name, source_file, source_row, batch_id, column_name,
               old_value || ' -> ' || new_value
        FROM {status_history}
        WHERE column_name = 'status' AND (
            (table_name = 'orders' AND old_value IN ('refunded', 'cancelled'))
            OR (table_name = 'group_buys' AND old_value IN ('filled', 'failed')))""",
}

_RULES = in_list(tuple(FLAG_SQL))
_VERSION = "flags of new and flagged rows v1"
"""Part of the fingerprint: change it when what a load looks at changes meaning."""


def flag_references(con: duckdb.DuckDBPyConnection) -> int:
    """Bring ``quarantine.flagged_rows`` up to date with staging (FLAG_SQL): per row after a
    load when it can, else in full. Returns the number of flags."""
    ensure_schema(con)
    fp = increments.fingerprint(*FLAG_SQL.values(), _VERSION)
    with increments.maintained(con, TABLE, fp, INPUTS) as build:
        delta = build.delta
        if delta is None or _switches_a_rule_on(con, delta):
            build.rebuilt()
            _evaluate(con, {t: f"staging.{t}" for t in SUBJECTS}, narrow=False)
            con.execute(f"DELETE FROM {TABLE} WHERE rule IN ({_RULES})")
            con.execute(f"INSERT INTO {TABLE} SELECT *, current_localtimestamp() FROM _sg_eval")
        elif delta:
            _evaluate(con, _subjects(con, delta), narrow=True)
            same = """e.rule = f.rule AND e.table_name = f.table_name AND e.batch_id = f.batch_id
                      AND e.source_row = f.source_row
                      AND e.column_name IS NOT DISTINCT FROM f.column_name"""
            con.execute(f"""DELETE FROM {TABLE} f WHERE rule IN ({_RULES})
                            AND NOT EXISTS (SELECT 1 FROM _sg_eval e WHERE {same})""")
            con.execute(f"""INSERT INTO {TABLE}
                            SELECT *, current_localtimestamp() FROM _sg_eval e
                            WHERE NOT EXISTS (SELECT 1 FROM {TABLE} f WHERE {same})""")
            for t in SUBJECTS:
                con.execute(f"DROP TABLE _sg_{t}")
        con.execute("DROP TABLE IF EXISTS _sg_eval")
    return con.execute(f"SELECT count(*) FROM {TABLE} WHERE rule IN ({_RULES})").fetchone()[0]


def _switches_a_rule_on(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> bool:
    """True when the load gives products or group buys for the first time: their rules only
    apply once the table has rows, and then to every order loaded before."""
    return any(con.execute(
        f"""SELECT count(*) FILTER (WHERE NOT {delta.new_rows(t)}) = 0 AND count(*) > 0
            FROM staging.{t}""").fetchone()[0] for t in ("products", "group_buys"))


def _subjects(con: duckdb.DuckDBPyConnection, delta: increments.Delta) -> dict[str, str]:
    """Temp tables ``_sg_<subject>``: the rows of the new batches and the rows flagged
    before, the only ones whose flags a load can change."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sg_was AS
                    SELECT DISTINCT table_name, batch_id, source_row FROM {TABLE}""")
    changes = sorted({b for t in INPUTS for b in delta.changes.get(t, ())})
    new = {"orders": delta.new_rows("orders"), "share_events": delta.new_rows("share_events"),
           "agents": delta.new_rows("agents"),
           "status_history": f"batch_id IN ({in_list(changes)})" if changes else "false"}
    for t in SUBJECTS:
        flagged_as = "s.table_name" if t == "status_history" else literal(t)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _sg_{t} AS
            SELECT * FROM staging.{t} s WHERE {new[t]} OR EXISTS (
                SELECT 1 FROM _sg_was w WHERE w.table_name = {flagged_as}
                  AND w.batch_id = s.batch_id AND w.source_row = s.source_row)""")
    con.execute("DROP TABLE _sg_was")
    return {t: f"_sg_{t}" for t in SUBJECTS}


def _evaluate(con: duckdb.DuckDBPyConnection, subject: dict[str, str], narrow: bool) -> None:
    """Temp table ``_sg_eval``: every flag of the ``subject`` rows, in flagged_rows' columns
    but the time. ``narrow`` (a few rows): the share ids are only those they name."""
    # lookups are anti/semi joins, which a repeated build key does not multiply, so the share
    # ids need no DISTINCT (half the cost) and NOT NULL share ids no NOT IN null semantics
    named = "" if not narrow else f"""
        AND share_id IN (
            SELECT share_id FROM {subject["orders"]}
            UNION ALL SELECT share_id FROM {subject["share_events"]} WHERE event_type = 'click'
            UNION ALL SELECT parent_share_id FROM {subject["share_events"]})"""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sg_share_ids AS
        SELECT share_id FROM staging.share_events
        WHERE event_type IN ('share', 'reshare'){named}""")
    # known persons among the (few distinct) referrers only: the referrers are the hash-join
    # build side and the person columns (tens of millions of rows) just probe it
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sg_people AS
        WITH r AS (SELECT DISTINCT referrer_id AS p FROM {subject["orders"]}
                   WHERE referrer_id IS NOT NULL)
        SELECT r.p AS person_id FROM r SEMI JOIN (
            SELECT customer_id AS id FROM staging.orders
            UNION ALL SELECT actor_id FROM staging.share_events
            UNION ALL SELECT agent_id FROM staging.agents
            UNION ALL SELECT initiator_id FROM staging.group_buys) k ON k.id = r.p""")
    rules = " UNION ALL ".join(
        f"SELECT batch_id, t, source_file, source_row, c, {literal(rule)}, v "
        f"FROM ({sql.format(**subject)}) AS f(t, source_file, source_row, batch_id, c, v)"
        for rule, sql in FLAG_SQL.items())
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _sg_eval AS
        SELECT * FROM ({rules})
            AS e(batch_id, table_name, source_file, source_row, column_name, rule, raw_value)""")
    con.execute("DROP TABLE _sg_share_ids")
    con.execute("DROP TABLE _sg_people")
