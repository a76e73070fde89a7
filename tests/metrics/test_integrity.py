"""Referral integrity (marts.integrity_flags): hand-made worlds checked against plain Python,
and the demo generator's planted patterns recovered on worlds of several seeds and scales."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from scipy import stats

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.integrity import build_integrity_flags
from tests.helpers import build_graph, insert_staging

T0 = datetime(2026, 3, 1, 10, 0)


def _order(i: int, customer: str, *, days: float = 0, referrer: str | None = None,
           share: str | None = None, status: str = "paid", amount: float = 100.0,
           merchant: str = "m1", commission: float | None = None) -> dict:
    return dict(order_id=f"o{i}", line_no=1, customer_id=customer, ordered_at=T0 + timedelta(days=days),
                product_id="p1", category="food", quantity=1, amount=amount, channel="wechat",
                merchant_id=merchant, status=status, referrer_id=referrer, share_id=share,
                commission=commission)


def _flags(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> dict[tuple[str, str], dict]:
    build_integrity_flags(con, settings or Settings())
    rows = con.execute("SELECT * FROM marts.integrity_flags").fetchall()
    cols = [d[0] for d in con.description]
    return {(r[0], r[1]): dict(zip(cols, r, strict=True)) for r in rows}


def _world(orders: list[dict], events: list[dict] | None = None, agents: list[dict] | None = None):
    con = duckdb.connect()
    ensure_schema(con)
    insert_staging(con, "orders", orders)
    insert_staging(con, "share_events", events or [])
    insert_staging(con, "agents", agents or [])
    build_graph(con)
    return con


def test_self_referral_counts_and_money() -> None:
    orders = [_order(1, "a1", referrer="a1", commission=5.0), _order(2, "a1", referrer="a1"),
              _order(3, "a1", share="s1", days=1), _order(4, "a1", days=2),  # organic: not counted
              _order(5, "a2", referrer="a2"), _order(6, "a2", referrer="a2")]  # only 2 < 3
    events = [dict(event_id="e1", event_type="share", share_id="s1", actor_id="a1", occurred_at=T0)]
    con = _world(orders, events, [dict(agent_id="a1"), dict(agent_id="a2")])
    f = _flags(con)
    assert set(f) == {("a1", "self_referral")}
    row = f[("a1", "self_referral")]
    assert row["orders_involved"] == 3
    # exported commission 5.00 on o1; o2 estimated 5% of 100; o3 5% + red packet 2
    assert float(row["amount_at_risk"]) == pytest.approx(5.0 + 5.0 + 5.0 + 2.0)
    assert "2 with themselves as referrer, 1 through their own share link" in row["evidence"]
    assert "推荐人是自己 2 笔" in row["evidence_zh"]


def test_ring_members_and_size_match_a_plain_cycle_search() -> None:
    # a -> b -> c -> a with 3 orders per tie (a ring); d <-> e with 2 orders each (too weak);
    # f -> g 5 orders one way only (no cycle)
    orders, i = [], 0
    for credited, buyer, n in [("a", "b", 3), ("b", "c", 3), ("c", "a", 3), ("d", "e", 2),
                               ("e", "d", 2), ("f", "g", 5)]:
        for _ in range(n):
            i += 1
            orders.append(_order(i, buyer, referrer=credited, days=i / 10))
    con = _world(orders)
    f = _flags(con)
    ring = {p: r for (p, rule), r in f.items() if rule == "referral_ring"}
    assert set(ring) == {"a", "b", "c"}
    assert {r["ring_size"] for r in ring.values()} == {3} and {r["ring_id"] for r in ring.values()} == {"a"}
    # each member: 3 orders credited to it from the ring + 3 bought from the ring
    assert all(r["orders_involved"] == 6 for r in ring.values())
    assert all(float(r["amount_at_risk"]) == pytest.approx(3 * 5.0) for r in ring.values())
    # the weak pair becomes a ring when the tie threshold allows it
    f2 = _flags(con, Settings(ring_min_edge_orders=2))
    assert {p for (p, rule) in f2 if rule == "referral_ring"} == {"a", "b", "c", "d", "e"}


def test_refund_abuse_binomial_against_merchant_base_rate() -> None:
    # 40 agents with 10 credited orders each, 1 refunded each (10% base); 'bad' has 10 of 12 refunded
    orders, i = [], 0
    for a in range(40):
        for j in range(10):
            i += 1
            orders.append(_order(i, f"c{i}", referrer=f"g{a}", days=j,
                                 status="refunded" if j == 0 else "paid"))
    for j in range(12):
        i += 1
        orders.append(_order(i, f"c{i}", referrer="bad", days=j, status="refunded" if j < 10 else "paid"))
    con = _world(orders)
    f = _flags(con)
    flagged = {p for (p, rule) in f if rule == "refund_abuse"}
    assert flagged == {"bad"}
    row = f[("bad", "refund_abuse")]
    base = (40 + 10) / (400 + 12)  # the merchant's refund rate over claimed lines
    p = stats.binom.sf(10 - 1, 12, base)
    m = 41  # claimants tested; BH: bad has the smallest p
    assert row["q_value"] == pytest.approx(min(p * m, 1.0), rel=1e-6)
    assert row["orders_involved"] == 10
    assert float(row["amount_at_risk"]) == pytest.approx(10 * 5.0)  # 5% of ¥100, no red packet
    assert "10 of 12" in row["evidence"] and "refund times unknown" in row["evidence"]


def test_click_burst_needs_burst_history_and_no_orders() -> None:
    events = [dict(event_id="e0", event_type="share", share_id="s_burst", actor_id="a1", occurred_at=T0),
              dict(event_id="e1", event_type="share", share_id="s_slow", actor_id="a2", occurred_at=T0)]
    for k in range(25):  # 25 clicks in 4 minutes on a1's share; 25 clicks over 25 hours on a2's
        events.append(dict(event_id=f"b{k}", event_type="click", share_id="s_burst", actor_id=f"x{k}",
                           occurred_at=T0 + timedelta(hours=1, seconds=10 * k)))
        events.append(dict(event_id=f"s{k}", event_type="click", share_id="s_slow", actor_id=f"y{k}",
                           occurred_at=T0 + timedelta(hours=1 + k)))
    for k in range(3):  # a1's ordinary shares: 1 click each
        events.append(dict(event_id=f"o{k}", event_type="share", share_id=f"s_a1_{k}", actor_id="a1",
                           occurred_at=T0 + timedelta(days=k + 1)))
        events.append(dict(event_id=f"oc{k}", event_type="click", share_id=f"s_a1_{k}", actor_id="z",
                           occurred_at=T0 + timedelta(days=k + 1, hours=1)))
    orders = [_order(1, "x3", share="s_burst", days=0.2), _order(2, "w", days=3)]
    con = _world(orders, events)
    f = _flags(con)
    assert {p for (p, rule) in f if rule == "click_burst"} == {"a1"}
    row = f[("a1", "click_burst")]
    assert row["orders_involved"] == 1
    assert float(row["amount_at_risk"]) == pytest.approx(5.0 + 2.0)
    assert "up to 25 clicks within 10 minutes" in row["evidence"]
    assert "average 1.0 clicks" in row["evidence"]
    # two orders by burst clickers: 2 > 5% of 25 clicks, no longer a burst with almost no orders
    orders.append(_order(3, "x4", share="s_burst", days=0.2))
    assert not {p for (p, rule) in _flags(_world(orders, events)) if rule == "click_burst"}


def test_click_burst_counts_only_clicks_by_others() -> None:
    # 19 clicks by others plus 10 by the sharer within 3 minutes: 29 clicks on the share, but
    # only 19 by others, below click_burst_min_clicks (20); one more click by another makes it
    events = [dict(event_id="e0", event_type="share", share_id="s1", actor_id="a1", occurred_at=T0)]
    for k in range(19):
        events.append(dict(event_id=f"b{k}", event_type="click", share_id="s1", actor_id=f"x{k}",
                           occurred_at=T0 + timedelta(hours=1, seconds=5 * k)))
    for k in range(10):
        events.append(dict(event_id=f"own{k}", event_type="click", share_id="s1", actor_id="a1",
                           occurred_at=T0 + timedelta(hours=1, seconds=5 * k + 2)))
    orders = [_order(1, "w", days=3)]
    assert not {p for (p, rule) in _flags(_world(orders, events)) if rule == "click_burst"}
    events.append(dict(event_id="b19", event_type="click", share_id="s1", actor_id="x19",
                       occurred_at=T0 + timedelta(hours=1, minutes=2)))
    f = _flags(_world(orders, events))
    assert {p for (p, rule) in f if rule == "click_burst"} == {"a1"}
    assert "up to 20 clicks within 10 minutes" in f[("a1", "click_burst")]["evidence"]
    assert "their other shares average 0.0 clicks" in f[("a1", "click_burst")]["evidence"]


def test_refund_abuse_expected_rate_mixes_merchants() -> None:
    # merchant m1 refunds ~10% of claimed lines, m2 ~40%; 'bad' sells 10 lines at each and has
    # 18 refunded: p̄ is the mean of its lines' merchant rates, (10 * r1 + 10 * r2) / 20
    orders, i = [], 0
    for a in range(30):
        for m, refunded in (("m1", 1), ("m2", 4)):
            for j in range(10):
                i += 1
                orders.append(_order(i, f"c{i}", referrer=f"g{a}", days=j, merchant=m,
                                     status="refunded" if j < refunded else "paid"))
    for m in ("m1", "m2"):
        for j in range(10):
            i += 1
            orders.append(_order(i, f"c{i}", referrer="bad", days=j, merchant=m,
                                 status="refunded" if j < 9 else "paid"))
    f = _flags(_world(orders))
    assert {p for (p, rule) in f if rule == "refund_abuse"} == {"bad"}
    r1, r2 = (30 + 9) / (300 + 10), (120 + 9) / (300 + 10)
    p_bar = (10 * r1 + 10 * r2) / 20
    p = stats.binom.sf(18 - 1, 20, p_bar)
    ps = [stats.binom.sf(5 - 1, 20, p_bar) for _ in range(30)] + [p]  # every good agent: 5 of 20
    m = len(ps)  # BH: bad has the smallest p, rank 1
    row = f[("bad", "refund_abuse")]
    assert row["q_value"] == pytest.approx(min(p * m, 1.0), rel=1e-9)
    assert f"18 of 20 credited order lines refunded (90.0%) vs {round(100 * p_bar, 1)}% expected" in row["evidence"]
    assert row["orders_involved"] == 18


# --- planted truth on generated worlds -------------------------------------------------------

def _pipeline(world: Path) -> duckdb.DuckDBPyConnection:
    from sharegraph.graph.anomalies import build_anomalies
    from sharegraph.graph.people import build_people, build_referral_edges
    from sharegraph.graph.shares import build_share_nodes
    from sharegraph.graph.upline import build_agent_upline
    from tests.helpers import attributed_world

    s = Settings()
    con = attributed_world(world, s)
    for build in (build_share_nodes, build_agent_upline, build_people, build_referral_edges,
                  build_anomalies):
        build(con, s)
    build_integrity_flags(con, s)
    return con


def planted_recall(world: Path) -> dict[str, float]:
    """Recall per rule over the planted people and the share of clean agents flagged."""
    truth = json.loads((world / "truth.json").read_text(encoding="utf-8"))
    con = _pipeline(world)
    # the older ring's members refer themselves at random (half their orders): count them
    # where the written orders hold enough such orders (plain csv, not the mart's SQL)
    import csv

    own: dict[str, int] = {}
    with open(world / "orders.csv", newline="", encoding="utf-8") as fh:
        for o in csv.DictReader(fh):
            if o["referrer_id"] == o["customer_id"] and o["status"] == "paid":
                own[o["customer_id"]] = own.get(o["customer_id"], 0) + 1
    ring_self = {p for p in truth["ring_members"] if own.get(p, 0) >= Settings().self_referral_min_orders}
    expected = {
        "self_referral": set(truth["self_referrers"]) | ring_self,
        "referral_ring": set(truth["referral_ring"]) | set(truth["ring_members"]),
        "refund_abuse": set(truth["refund_abusers"]),
        "click_burst": set(truth["click_bursters"]),
    }
    got: dict[str, set[str]] = {r: set() for r in expected}
    for person, rule in con.execute("SELECT person_id, rule FROM marts.integrity_flags").fetchall():
        got[rule].add(person)
    planted = set().union(*expected.values())
    agents = {r[0] for r in con.execute("SELECT agent_id FROM graph.agent_upline").fetchall()}
    clean = agents - planted
    flagged_clean = set().union(*got.values()) & clean
    out = {rule: len(got[rule] & want) / len(want) for rule, want in expected.items()}
    out["clean_agents_flagged"] = len(flagged_clean) / len(clean)
    return out


def _assert_recovered(result: dict[str, float]) -> None:
    for rule in ("self_referral", "referral_ring", "refund_abuse", "click_burst"):
        assert result[rule] == 1.0, (rule, result)
    assert result["clean_agents_flagged"] <= 0.01, result


def test_planted_patterns_small_world(small_world: Path) -> None:
    _assert_recovered(planted_recall(small_world))


@pytest.mark.parametrize("world", [
    {"seed": 23, "people": 4000, "orders": 30_000},   # another seed
    {"seed": 5, "people": 1000, "orders": 8000},      # smaller
])
def test_planted_patterns_other_worlds(world: dict, tmp_path: Path) -> None:
    from sharegraph.demo.generate import generate_world

    generate_world(tmp_path, **world)
    _assert_recovered(planted_recall(tmp_path))


@pytest.mark.slow
def test_planted_patterns_larger_world(tmp_path: Path) -> None:
    from sharegraph.demo.generate import generate_world

    generate_world(tmp_path, seed=31, people=30_000, orders=300_000)
    _assert_recovered(planted_recall(tmp_path))
