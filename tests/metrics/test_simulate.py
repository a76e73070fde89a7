"""Commission simulator (sharegraph.metrics.simulate) against an independent computation.

The reference walks the upline with NetworkX and computes every payout line by line in
Python Decimal (ROUND_HALF_UP to the cent), from graph.attributed_orders, staging.agents and
staging.products; the simulator's set-based SQL must agree to the cent for every person.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import networkx as nx
import pytest

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect, ensure_schema
from sharegraph.graph.attribution import attribute_orders
from sharegraph.metrics.simulate import (
    Scheme,
    depth_warnings,
    load_schemes,
    parse_schemes,
    simulate,
)
from tests.helpers import attributed_world, insert_staging

try:  # the graph package is being split into modules; use whichever holds the builder
    from sharegraph.graph.upline import build_agent_upline
except ImportError:  # pragma: no cover
    from sharegraph.graph.model import build_agent_upline

CENT = Decimal("0.01")
SCHEMES_TOML = """
[[scheme]]
name = "current"
commission_rate = 0.05
red_packet = 2.0

[[scheme]]
name = "two_level"
commission_rate = 0.05
levels = [0.02]

[[scheme]]
name = "tiered"
tiers = [[0, 0.03], [100, 0.05], [500, 0.08]]

[[scheme]]
name = "deep"
commission_rate = 0.015
levels = [0.013, 0.007, 0.005]
agent_price_differential = true
red_packet = 1.5
"""


def _half_up(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def reference(con: duckdb.DuckDBPyConnection, scheme: Scheme, start: str | None = None,
              end: str | None = None) -> dict[str, Decimal]:
    """Payout per person, line by line in Python: the independent computation."""
    lines = con.execute(
        """SELECT a.order_id, a.credited_id, a.amount, coalesce(a.quantity, 1), a.rule,
                  a.ordered_at, a.product_id
           FROM graph.attributed_orders a
           WHERE a.is_paid AND a.credited_id IS NOT NULL"""
    ).fetchall()
    if start:
        lines = [r for r in lines if r[5] >= datetime.fromisoformat(start)]
    if end:
        lines = [r for r in lines if r[5].date() <= datetime.fromisoformat(end).date()]
    agents = con.execute("SELECT agent_id, upline_id FROM staging.agents").fetchall()
    tree = nx.DiGraph()
    tree.add_nodes_from(a for a, _ in agents)
    tree.add_edges_from((u, a) for a, u in agents if u is not None and u != a and u in tree)
    price = dict(con.execute("SELECT product_id, agent_price FROM staging.products").fetchall())
    month_gmv: dict[tuple[str, tuple[int, int]], Decimal] = defaultdict(Decimal)
    for _, who, amount, _, _, at, _ in lines:
        month_gmv[who, (at.year, at.month)] += amount
    pay: dict[str, Decimal] = defaultdict(Decimal)
    red_orders = set()
    for order, who, amount, qty, rule, at, product in lines:
        if scheme.tiers:
            gmv = month_gmv[who, (at.year, at.month)]
            rate = max(((t, r) for t, r in scheme.tiers if t <= gmv), default=(0, Decimal(0)))[1]
        else:
            rate = scheme.commission_rate
        pay[who] += _half_up(amount * rate)
        if rule in ("share_id", "last_click") and scheme.red_packet and order not in red_orders:
            red_orders.add(order)
            pay[who] += scheme.red_packet
        if who in tree:
            node = who
            for rate in scheme.levels:  # walk up the upline, one level per rate
                ups = list(tree.predecessors(node))
                if not ups:
                    break
                node = ups[0]
                pay[node] += _half_up(amount * rate)
            if scheme.agent_price_differential and price.get(product) is not None:
                pay[who] += _half_up(max(amount - price[product] * qty, Decimal(0)))
    return {k: v for k, v in pay.items() if v > 0}


def simulated(con: duckdb.DuckDBPyConnection, scheme: Scheme) -> dict[str, Decimal]:
    rows = con.execute(
        "SELECT person_id, sum(yuan) FROM _sim_payout WHERE scheme = ? GROUP BY 1 HAVING sum(yuan) > 0",
        [scheme.name]).fetchall()
    return dict(rows)


def hand_world(con: duckdb.DuckDBPyConnection) -> None:
    """Four agents in a chain a1 <- a2 <- a3 <- a4 (a1 top), a customer sharer, awkward cents."""
    insert_staging(con, "agents", [
        {"agent_id": "a1", "joined_at": datetime(2025, 1, 1), "level": 1},
        {"agent_id": "a2", "upline_id": "a1", "joined_at": datetime(2025, 1, 2), "level": 2},
        {"agent_id": "a3", "upline_id": "a2", "joined_at": datetime(2025, 1, 3), "level": 3},
        {"agent_id": "a4", "upline_id": "a3", "joined_at": datetime(2025, 1, 4), "level": 4},
    ])
    insert_staging(con, "products", [
        {"product_id": "p1", "category": "茶叶", "merchant_id": "m1", "price": Decimal("99.90"),
         "agent_price": Decimal("69.93")},
        {"product_id": "p2", "category": "水果", "merchant_id": "m1", "price": Decimal("10.10"),
         "agent_price": Decimal("12.00")},  # agent price above the sale price: differential 0
    ])
    insert_staging(con, "share_events", [
        {"event_id": "e1", "event_type": "share", "share_id": "s1", "actor_id": "a4",
         "occurred_at": datetime(2025, 1, 31, 20)},
        {"event_id": "e2", "event_type": "share", "share_id": "s2", "actor_id": "c9",
         "occurred_at": datetime(2025, 2, 1, 8)},
    ])
    o = []
    # a4 sells through share s1 on Jan 31 23:30 and Feb 1 00:10 (local time: two months)
    o += [{"order_id": "o1", "line_no": 1, "customer_id": "c1", "ordered_at": datetime(2025, 1, 31, 23, 30),
           "product_id": "p1", "quantity": 1, "amount": Decimal("99.90"), "share_id": "s1"},
          {"order_id": "o1", "line_no": 2, "customer_id": "c1", "ordered_at": datetime(2025, 1, 31, 23, 30),
           "product_id": "p2", "quantity": 3, "amount": Decimal("30.30"), "share_id": "s1"},
          {"order_id": "o2", "line_no": 1, "customer_id": "c2", "ordered_at": datetime(2025, 2, 1, 0, 10),
           "product_id": "p1", "quantity": 5, "amount": Decimal("499.50"), "share_id": "s1"},
          {"order_id": "o3", "line_no": 1, "customer_id": "c3", "ordered_at": datetime(2025, 2, 3, 9),
           "product_id": "p1", "quantity": 1, "amount": Decimal("10.10"), "share_id": "s1"}]
    # referral orders to a2 and a3; a refunded one to a1 (excluded); a sale by a customer sharer
    o += [{"order_id": "o4", "customer_id": "c4", "ordered_at": datetime(2025, 2, 10, 12),
           "product_id": "p1", "quantity": 2, "amount": Decimal("199.80"), "referrer_id": "a2"},
          {"order_id": "o5", "customer_id": "c5", "ordered_at": datetime(2025, 2, 11, 12),
           "product_id": "p2", "quantity": 1, "amount": Decimal("0.30"), "referrer_id": "a3"},
          {"order_id": "o6", "customer_id": "c6", "ordered_at": datetime(2025, 2, 12, 12),
           "product_id": "p1", "quantity": 1, "amount": Decimal("99.90"), "referrer_id": "a1",
           "status": "refunded"},
          {"order_id": "o7", "customer_id": "c7", "ordered_at": datetime(2025, 2, 13, 12),
           "product_id": "p1", "quantity": 1, "amount": Decimal("99.90"), "share_id": "s2"},
          {"order_id": "o8", "customer_id": "c8", "ordered_at": datetime(2025, 2, 14, 12),
           "product_id": "p2", "quantity": 1, "amount": Decimal("10.10")}]  # organic
    for r in o:
        r.setdefault("category", "茶叶" if r["product_id"] == "p1" else "水果")
        r.setdefault("channel", "wechat")
    insert_staging(con, "orders", o)
    attribute_orders(con)
    build_agent_upline(con)


@pytest.fixture
def hand_con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    hand_world(con)
    yield con
    con.close()


def test_schemes_parse_and_warn_on_deep(tmp_path: Path) -> None:
    path = tmp_path / "schemes.toml"
    path.write_text(SCHEMES_TOML, encoding="utf-8")
    schemes = load_schemes(path)
    assert [s.name for s in schemes] == ["current", "two_level", "tiered", "deep"]
    assert schemes[2].tiers[1] == (Decimal(100), Decimal("0.05"))
    warns = depth_warnings(schemes)
    assert len(warns) == 1 and "deep" in warns[0] and "传销" in warns[0]
    with pytest.raises(ValueError, match="not both"):
        parse_schemes({"scheme": [{"name": "x", "commission_rate": 0.1, "tiers": [[0, 0.1]]}]})
    with pytest.raises(ValueError, match="0..1"):
        parse_schemes({"scheme": [{"name": "x", "commission_rate": 5}]})
    with pytest.raises(ValueError, match="unknown keys"):
        parse_schemes({"scheme": [{"name": "x", "comission_rate": 0.1}]})


def test_hand_world_to_the_cent(hand_con: duckdb.DuckDBPyConnection) -> None:
    schemes = parse_schemes({"scheme": [
        {"name": "current", "commission_rate": 0.05, "red_packet": 2.0},
        {"name": "two_level", "commission_rate": 0.05, "levels": [0.02]},
        {"name": "tiered", "tiers": [[0, 0.03], [100, 0.05], [500, 0.08]]},
        {"name": "deep", "commission_rate": 0.015, "levels": [0.013, 0.007, 0.005],
         "agent_price_differential": True, "red_packet": 1.5},
    ]})
    with pytest.warns(UserWarning, match="传销"):
        result = simulate(hand_con, schemes)
    for s in schemes:
        assert simulated(hand_con, s) == reference(hand_con, s), s.name
    by = {r["name"]: r for r in result.schemes}
    # hand-computed anchors: a4's January line 99.90 * 5% = 4.995 -> 5.00 (half up), 30.30 -> 1.52
    cur = reference(hand_con, schemes[0])
    assert cur["a4"] == Decimal("5.00") + Decimal("1.52") + Decimal("24.98") + Decimal("0.51") + 3 * 2
    assert "a1" not in cur  # the refunded referral is not paid
    # tiers by month: a4 has 130.20 in January (5%) and 509.60 in February (8%)
    tiered = reference(hand_con, schemes[2])
    assert tiered["a4"] == Decimal("5.00") + Decimal("1.52") + Decimal("39.96") + Decimal("0.81")
    assert by["current"]["is_current"] and by["current"]["vs_current"]["winners"] == 0
    assert by["two_level"]["total_payout"] == sum(reference(hand_con, schemes[1]).values())
    assert by["deep"]["depth"] == 4 and len(result.warnings) == 1
    paid_gmv = Decimal("99.90") + Decimal("30.30") + Decimal("499.50") + Decimal("10.10") \
        + Decimal("199.80") + Decimal("0.30") + Decimal("99.90") + Decimal("10.10")
    assert by["current"]["gmv"] == paid_gmv
    assert by["current"]["payout_to_gmv"] == pytest.approx(float(by["current"]["total_payout"] / paid_gmv))
    months = {(m["scheme"], m["month"]): m["payout"] for m in result.monthly}
    assert months["tiered", "2025-01-01"] == Decimal("6.52")
    assert sum(v for (s, _), v in months.items() if s == "deep") == by["deep"]["total_payout"]
    assert result.assumptions and "Replay" in result.assumptions[0]


def test_period_and_winners(hand_con: duckdb.DuckDBPyConnection) -> None:
    schemes = parse_schemes({"scheme": [
        {"name": "flat", "commission_rate": 0.05},
        {"name": "two_level", "commission_rate": 0.04, "levels": [0.02], "current": True},
    ]})
    result = simulate(hand_con, schemes, period=("2025-02-01", "2025-02-28"))
    for s in schemes:
        assert simulated(hand_con, s) == reference(hand_con, s, "2025-02-01", "2025-02-28")
    assert result.current == "two_level"
    flat = next(r for r in result.schemes if r["name"] == "flat")
    vs = flat["vs_current"]
    # flat pays sellers 1% more and no upline: a1 (upline of a2) and a3 (upline of a4, who
    # sells 509.60) lose; a2, a4 and the customer sharer c9 win
    assert (vs["winners"], vs["losers"]) == (3, 2)
    assert vs["gained"] - vs["lost"] == vs["net"]
    assert {m["month"] for m in result.monthly} == {"2025-02-01"}


def test_elasticity_is_labelled(hand_con: duckdb.DuckDBPyConnection) -> None:
    schemes = parse_schemes({"scheme": [{"name": "a", "commission_rate": 0.05},
                                        {"name": "b", "commission_rate": 0.10}]})
    result = simulate(hand_con, schemes, elasticity=0.5)
    b = result.schemes[1]
    assert b["elastic"]["label"].startswith("assumption")
    assert b["elastic"]["gmv"] > float(b["gmv"])  # doubled pay -> more activity under the assumption
    assert any(a.startswith("ASSUMPTION elasticity") for a in result.assumptions)
    assert "elastic" not in simulate(hand_con, schemes).schemes[1]


def test_generated_world_to_the_cent(small_world: Path) -> None:
    con = attributed_world(small_world, Settings())
    build_agent_upline(con)
    schemes = parse_schemes({"scheme": [
        {"name": "current", "commission_rate": 0.05, "red_packet": 2.0},
        {"name": "three", "commission_rate": 0.04, "levels": [0.02, 0.01]},
        {"name": "tiered", "tiers": [[0, 0.03], [1000, 0.05], [5000, 0.08]]},
        {"name": "diff", "agent_price_differential": True},
    ]})
    result = simulate(con, schemes, period=("2026-02-01", "2026-07-31"))
    for s in schemes:
        ref = reference(con, s, "2026-02-01", "2026-07-31")
        got = simulated(con, s)
        assert got == ref, s.name
        assert len(ref) > 50
    by = {r["name"]: r for r in result.schemes}
    assert 0 < by["current"]["payout_to_gmv"] < 0.2
    assert 0 <= by["current"]["gini"] < 1 and 0 < by["current"]["top10_share"] <= 1
    con.close()


def test_cli_json(tmp_path: Path) -> None:
    from pipelines.cli import main

    wh = tmp_path / "wh.duckdb"
    con = connect(wh)
    ensure_schema(con)
    hand_world(con)
    con.close()
    schemes = tmp_path / "schemes.toml"
    schemes.write_text(SCHEMES_TOML, encoding="utf-8")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.warns(UserWarning):
        rc = main(["simulate", "--warehouse", str(wh), "--scheme", str(schemes), "--json"])
    assert rc == 0
    out = json.loads(buf.getvalue())
    assert [s["name"] for s in out["schemes"]] == ["current", "two_level", "tiered", "deep"]
    assert {"name", "total_payout", "agents_paid", "payout_to_gmv"} <= set(out["schemes"][0])
    buf = io.StringIO()
    report = tmp_path / "sim.html"
    with contextlib.redirect_stdout(buf), pytest.warns(UserWarning):
        rc = main(["simulate", "--warehouse", str(wh), "--scheme", str(schemes),
                   "--period", "2025-02-01:2025-02-28", "--report", str(report)])
    assert rc == 0 and "two_level" in buf.getvalue() and report.is_file()
    assert "传销" in report.read_text(encoding="utf-8")
