"""Reference flags follow a load per row (sharegraph.ingest.flags, docs/ingest.md).

Three hand-made export days: the first leaves references dangling; the second brings some of
the missing shares, referrers and uplines, new dangling rows and a status reversal; the third
gives group buys for the first time. After each day the flags must be exactly those a
recomputation from scratch finds (the expected sets are written out by hand, not derived from
the pipeline's rules), flags that still hold keep their time, and the path taken is the one
each day calls for.
"""

from __future__ import annotations

from pathlib import Path

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.ingest.flags import TABLE, flag_references
from sharegraph.ingest.load import duplicate_keys, load_inputs
from tests.helpers import EVENT, ORDER, write_csv

SETTINGS = Settings(max_reject_rate=1.0)
FILLER = [dict(ORDER, order_id=f"f{i}", customer_id=f"fc{i}") for i in range(40)]
"""Orders without flags, so that a day of a few rows is well below an update's 20% bound."""


def _flags(con) -> set[tuple]:
    return set(con.execute(
        f"SELECT table_name, source_row, column_name, rule, raw_value, batch_id FROM {TABLE}").fetchall())


def _from_scratch(con) -> set[tuple]:
    """The flags recomputed in full on the same staging (the maintained state dropped)."""
    increments.forget(con, [TABLE])
    flag_references(con)
    assert increments.last_builds(con)[TABLE] == "full"
    return _flags(con)


def _batches(con, order: str, event: str, agent: str) -> tuple[str, str, str]:
    """The load batches of an order, a share event and an agent."""
    return tuple(con.execute(f"SELECT batch_id FROM staging.{t} WHERE {k} = ?", [v]).fetchone()[0]
                 for t, k, v in (("orders", "order_id", order), ("share_events", "event_id", event),
                                 ("agents", "agent_id", agent)))


def _day(d: Path, orders: list[dict], events: list[dict], agents: list[dict] | None = None,
         groups: list[dict] | None = None) -> Path:
    d.mkdir(parents=True)
    write_csv(d / "orders.csv", orders)
    write_csv(d / "share_events.csv", events)
    if agents:
        write_csv(d / "agents.csv", agents)
    if groups:
        write_csv(d / "group_buys.csv", groups)
    return d


def test_flags_follow_each_day_as_a_recomputation_would(tmp_path: Path, con) -> None:
    day1 = _day(tmp_path / "d1", [
        *FILLER,
        dict(ORDER, order_id="late_share", share_id="s-late"),
        dict(ORDER, order_id="never_share", share_id="s-never"),
        dict(ORDER, order_id="late_ref", referrer_id="r-late"),
        dict(ORDER, order_id="refunded", status="refunded", group_id="g-none"),
    ], [dict(EVENT, event_id="e1"),
        dict(EVENT, event_id="e2", event_type="click", share_id="s-late", actor_id="c1"),
        dict(EVENT, event_id="e3", event_type="reshare", share_id="s2", parent_share_id="s-parent"),
        dict(EVENT, event_id="e7", event_type="reshare", share_id="s3", parent_share_id="s-par-late"),
        dict(EVENT, event_id="e11", share_id="s5"), dict(EVENT, event_id="e12", share_id="s6")],
        agents=[{"agent_id": "a1", "upline_id": "a-late"}])
    load_inputs(con, day1, SETTINGS)
    b1, e1, a1 = _batches(con, "f0", "e1", "a1")
    first = {
        ("orders", 41, "share_id", "unknown_share", "s-late", b1),
        ("orders", 42, "share_id", "unknown_share", "s-never", b1),
        ("orders", 43, "referrer_id", "unknown_referrer", "r-late", b1),
        ("share_events", 2, "share_id", "unknown_share", "s-late", e1),
        ("share_events", 3, "parent_share_id", "unknown_parent_share", "s-parent", e1),
        ("share_events", 4, "parent_share_id", "unknown_parent_share", "s-par-late", e1),
        ("agents", 1, "upline_id", "unknown_upline", "a-late", a1),
    }
    assert _flags(con) == first
    stamp = dict(con.execute(f"SELECT raw_value, flagged_at FROM {TABLE}").fetchall())

    # day 2: the late share, referrer and upline arrive; new dangling rows; a status reversal
    day2 = _day(tmp_path / "d2", [
        dict(ORDER, order_id="refunded", status="paid", group_id="g-none"),
        dict(ORDER, order_id="by_r", customer_id="r-late"),
        dict(ORDER, order_id="new_ghost", share_id="s-ghost", referrer_id="c1", customer_id="c1"),
        dict(ORDER, order_id="on_old", share_id="s6"),
    ], [dict(EVENT, event_id="e4", share_id="s-late", actor_id="a1"),
        dict(EVENT, event_id="e8", share_id="s-par-late", actor_id="a1"),
        dict(EVENT, event_id="e9", event_type="click", share_id="s1", actor_id="c2"),
        dict(EVENT, event_id="e10", event_type="reshare", share_id="s4", parent_share_id="s5"),
        dict(EVENT, event_id="e5", event_type="click", share_id="s-ghost2", actor_id="c1")],
        agents=[{"agent_id": "a-late", "upline_id": "a-late"}])
    load_inputs(con, day2, SETTINGS)
    assert increments.last_builds(con)[TABLE] == "update"
    b2, e2, a2 = _batches(con, "by_r", "e4", "a-late")
    second = {
        ("orders", 42, "share_id", "unknown_share", "s-never", b1),
        ("share_events", 3, "parent_share_id", "unknown_parent_share", "s-parent", e1),
        ("orders", 1, "status", "status_reversal", "refunded -> paid", b2),
        ("orders", 3, "share_id", "unknown_share", "s-ghost", b2),
        ("orders", 3, "referrer_id", "self_referral", "c1", b2),
        ("share_events", 5, "share_id", "unknown_share", "s-ghost2", e2),
        ("agents", 1, "upline_id", "self_upline", "a-late", a2),
    }
    assert _flags(con) == second
    kept = dict(con.execute(f"SELECT raw_value, flagged_at FROM {TABLE}").fetchall())
    assert kept["s-never"] == stamp["s-never"] and kept["s-parent"] == stamp["s-parent"]
    assert _from_scratch(con) == second

    # day 3: group buys given for the first time: every order naming an unknown group is flagged
    day3 = _day(tmp_path / "d3", [dict(ORDER, order_id="grouped", group_id="g1")],
                [dict(EVENT, event_id="e6", share_id="s9")],
                groups=[{"group_id": "g1", "initiator_id": "c1", "target_size": "2",
                         "opened_at": "2026-01-01 08:00", "status": "open"}])
    load_inputs(con, day3, SETTINGS)
    assert increments.last_builds(con)[TABLE] == "full"
    third = second | {("orders", 44, "group_id", "unknown_group", "g-none", b1)}
    assert _flags(con) == third
    assert _from_scratch(con) == third


def test_duplicate_keys_finds_a_duplicate_in_the_whole_table_or_among_a_batch(tmp_path: Path, con) -> None:
    load_inputs(con, _day(tmp_path / "d1", FILLER, [dict(EVENT, event_id="e1")]), SETTINGS)
    load_inputs(con, _day(tmp_path / "d2", [dict(ORDER, order_id="x")], [dict(EVENT, event_id="e2")]), SETTINGS)
    batches = dict(con.execute("SELECT order_id, batch_id FROM staging.orders WHERE order_id IN ('f0', 'x')").fetchall())
    assert duplicate_keys(con, "orders") == 0
    # a row written behind the loader's back: the old order f0 again, under the new batch
    con.execute("INSERT INTO staging.orders SELECT * REPLACE (? AS batch_id) FROM staging.orders "
                "WHERE order_id = 'f0'", [batches["x"]])
    assert duplicate_keys(con, "orders") == 1
    assert duplicate_keys(con, "orders", [batches["x"]]) == 1
    assert duplicate_keys(con, "orders", [batches["f0"]]) == 1  # its key is in that batch too
    assert duplicate_keys(con, "share_events", [batches["x"]]) == 0
    assert duplicate_keys(con, "orders", []) == 0
