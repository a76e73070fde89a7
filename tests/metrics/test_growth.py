"""sharegraph.metrics.growth: k-factor, concentration, channel migration and group buys."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import numpy as np
import polars as pl
import pytest
from helpers import graph_contract_db, insert_staging

from sharegraph.graph.people import build_people
from sharegraph.graph.upline import build_agent_upline
from sharegraph.metrics.growth import (
    KOL_GINI,
    KOL_TOP1_SHARE,
    build_channel_migration,
    build_concentration,
    build_group_buy_summary,
    build_group_buys,
    build_kfactor,
    check_concentration_bounds,
    check_fill_rate_bounds,
    check_kfactor,
)

HAS_WORLD = importlib.util.find_spec("sharegraph.demo.generate") is not None


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    """graph.* tables of exactly the shared contract's shape, built by hand for unit tests."""
    c = graph_contract_db()
    build_people_of(c)
    yield c
    c.close()


def add_orders(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """Insert attributed order lines; is_paid and is_first_order derived as attribution does."""
    frame = pl.DataFrame([{  # noqa: F841 - read by DuckDB
        "order_id": r["order_id"], "line_no": r.get("line_no", 1),
        "customer_id": r["customer_id"], "merchant_id": r.get("merchant_id", "m1"),
        "ordered_at": r["ordered_at"], "amount": str(r.get("amount", 10)),
        "channel": r.get("channel", "wechat"), "status": r.get("status", "paid"),
        "share_id": r.get("share_id"), "credited_id": r.get("credited_id"),
    } for r in rows], infer_schema_length=None)
    con.execute("""
        INSERT INTO graph.attributed_orders
        SELECT order_id, line_no, customer_id, merchant_id, 'p1', 'tea', ordered_at,
               amount::DECIMAL(18,2), 1, channel, status, status = 'paid', share_id,
               CASE WHEN status = 'paid' THEN credited_id END,
               CASE WHEN status <> 'paid' THEN 'unpaid' WHEN credited_id IS NULL THEN 'organic'
                    ELSE 'referrer' END,
               status = 'paid' AND row_number() OVER (
                   PARTITION BY customer_id, status = 'paid' ORDER BY ordered_at, order_id,
                   line_no) = 1,
               0, 0
        FROM frame
    """)
    build_people_of(con)


def build_people_of(con: duckdb.DuckDBPyConnection) -> None:
    """graph.people of the lines so far: k-factor and channel migration read each customer's
    first paid order from it."""
    build_agent_upline(con)
    build_people(con)


def add_shares(con: duckdb.DuckDBPyConnection, actors: list[str], at: datetime) -> None:
    frame = pl.DataFrame({"actor_id": actors})  # noqa: F841 - read by DuckDB
    con.execute("""
        INSERT INTO graph.share_nodes
        SELECT 'sh' || (row_number() OVER () + (SELECT count(*) FROM graph.share_nodes)),
               actor_id, NULL, NULL, 0, ?, 'p1', 'tea', 'moments' FROM frame
    """, [at])
    con.execute("UPDATE graph.share_nodes SET root_share_id = share_id WHERE root_share_id IS NULL")


# ---------------------------------------------------------------------------- concentration

def gini_reference(x: np.ndarray) -> float:
    """Gini as mean absolute difference over all ordered pairs / (2 mean) (Kendall & Stuart)."""
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean()))


def credited_gmv(con: duckdb.DuckDBPyConnection, gmv: dict[str, float], merchant: str = "m1",
                 prefix: str = "o") -> None:
    add_orders(con, [{"order_id": f"{prefix}{i}", "customer_id": f"buyer{prefix}{i}",
                      "credited_id": person, "amount": amount, "merchant_id": merchant,
                      "ordered_at": datetime(2025, 3, 1) + timedelta(hours=i)}
                     for i, (person, amount) in enumerate(gmv.items())])


def test_gini_all_equal_and_one_holds_all(con: duckdb.DuckDBPyConnection) -> None:
    credited_gmv(con, {f"p{i}": 50 for i in range(10)}, merchant="equal", prefix="e")
    credited_gmv(con, {"kol": 1000, **{f"q{i}": 0 for i in range(9)}}, merchant="kol", prefix="k")
    build_concentration(con)
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT merchant_id, credited_people, gini, top1_share, top10_share, label, label_zh, "
        "top_person_id FROM marts.concentration WHERE scope = 'merchant'").fetchall()}
    people, gini, top1, top10, label, label_zh, top = rows["equal"]
    assert people == 10 and gini == pytest.approx(0, abs=1e-12)
    assert top == "p0"  # ten tied at the top: the smallest id
    assert top1 == pytest.approx(0.1) and top10 == pytest.approx(0.1)
    assert (label, label_zh) == ("peer-driven", "素人驱动")
    people, gini, top1, top10, label, label_zh, top = rows["kol"]
    assert gini == pytest.approx((10 - 1) / 10) and top1 == 1.0 and top10 == 1.0
    assert (label, label_zh, top) == ("KOL-driven", "KOL驱动", "kol")
    assert check_concentration_bounds(con)[0]


def test_concentration_vs_numpy_on_random_data(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(5)
    amounts = np.round(rng.lognormal(3, 1.2, 250), 2)
    credited_gmv(con, {f"p{i:03d}": float(a) for i, a in enumerate(amounts)}, merchant="mA")
    credited_gmv(con, {"p000": 100.0, "zed": 300.0}, merchant="mB", prefix="b")
    build_concentration(con)
    overall = con.execute(
        "SELECT credited_people, attributed_gmv, gini, top1_people, top1_share, top10_people, "
        "top10_share, label FROM marts.concentration WHERE scope = 'overall'").fetchone()
    x = amounts.copy()
    x[0] += 100.0  # p000 sells for both merchants
    x = np.append(x, 300.0)
    desc = np.sort(x)[::-1]
    assert overall[0] == 251 and overall[1] == Decimal(str(round(x.sum(), 2)))
    assert overall[2] == pytest.approx(gini_reference(x), abs=1e-9)
    assert overall[3] == 3 and overall[4] == pytest.approx(desc[:3].sum() / x.sum())
    assert overall[5] == 26 and overall[6] == pytest.approx(desc[:26].sum() / x.sum())
    expected = ("KOL-driven" if overall[4] >= KOL_TOP1_SHARE or overall[2] >= KOL_GINI
                else "peer-driven")
    assert overall[7] == expected
    mb = con.execute("SELECT gini, top1_share FROM marts.concentration "
                     "WHERE merchant_id = 'mB'").fetchone()
    assert mb[0] == pytest.approx(gini_reference(np.array([100.0, 300.0])))
    assert mb[1] == pytest.approx(0.75)


def test_concentration_ignores_unpaid_and_organic(con: duckdb.DuckDBPyConnection) -> None:
    add_orders(con, [
        {"order_id": "a", "customer_id": "c1", "credited_id": "p", "amount": 10,
         "ordered_at": datetime(2025, 3, 1)},
        {"order_id": "b", "customer_id": "c2", "credited_id": "q", "amount": 500,
         "status": "refunded", "ordered_at": datetime(2025, 3, 1)},
        {"order_id": "c", "customer_id": "c3", "amount": 900, "ordered_at": datetime(2025, 3, 1)},
    ])
    build_concentration(con)
    assert con.execute("SELECT credited_people, attributed_gmv, gini FROM marts.concentration "
                       "WHERE scope = 'overall'").fetchone() == (1, Decimal("10.00"), 0.0)


def test_concentration_bounds_check_fails_on_bad_rows(con: duckdb.DuckDBPyConnection) -> None:
    credited_gmv(con, {"a": 1, "b": 2})
    build_concentration(con)
    con.execute("UPDATE marts.concentration SET top1_share = 1.5 WHERE scope = 'overall'")
    ok, text = check_concentration_bounds(con)
    assert not ok and "outside [0, 1]" in text


# --------------------------------------------------------------------------------- k-factor

def test_kfactor_handcrafted(con: duckdb.DuckDBPyConnection) -> None:
    w1 = datetime(2025, 3, 3, 10)  # Monday of ISO week 2025-03-03
    w2 = datetime(2025, 3, 10, 10)
    add_orders(con, [
        # week 1 cohort: alice, bob, carol
        {"order_id": "a1", "customer_id": "alice", "ordered_at": w1},
        {"order_id": "b1", "customer_id": "bob", "ordered_at": w1 + timedelta(days=1),
         "credited_id": "alice"},
        {"order_id": "c1", "customer_id": "carol", "ordered_at": w1 + timedelta(days=6)},
        # bob's refunded order earlier does not make him a customer earlier
        {"order_id": "b0", "customer_id": "bob", "ordered_at": w1 - timedelta(days=10),
         "status": "refunded", "credited_id": "kol"},
        # week 2 cohort: dan (by alice), erin (by bob), fay (by kol, not a customer), gus organic
        {"order_id": "d1", "customer_id": "dan", "ordered_at": w2, "credited_id": "alice"},
        {"order_id": "e1", "customer_id": "erin", "ordered_at": w2 + timedelta(hours=1),
         "credited_id": "bob"},
        {"order_id": "f1", "customer_id": "fay", "ordered_at": w2 + timedelta(hours=2),
         "credited_id": "kol"},
        {"order_id": "g1", "customer_id": "gus", "ordered_at": w2 + timedelta(hours=3)},
        # a repeat order credited to alice is not an acquisition
        {"order_id": "c2", "customer_id": "carol", "ordered_at": w2, "credited_id": "alice"},
        # hana acquired by dan 40 days after dan's first order: counts in K, not in K_30d
        {"order_id": "h1", "customer_id": "hana", "ordered_at": w2 + timedelta(days=40),
         "credited_id": "dan"},
    ])
    add_shares(con, ["alice"] * 4 + ["bob"] * 2 + ["kol"] * 5 + ["dan"], datetime(2025, 3, 5))
    build_kfactor(con)
    rows = {(r[0], r[1]): r[2:] for r in con.execute(
        "SELECT scope, cohort_week, cohort_size, sharers, invitations, new_customers_acquired, "
        "new_customers_acquired_30d, k_factor, k_factor_30d, invitations_per_member, conversion "
        "FROM marts.kfactor").fetchall()}
    assert rows[("week", date(2025, 3, 3))] == (3, 2, 6, 3, 3, 1.0, 1.0, 2.0, 0.5)
    assert rows[("week", date(2025, 3, 10))] == (4, 1, 1, 1, 0, 0.25, 0.0, 0.25, 1.0)
    hana_week = date(2025, 4, 14)
    assert rows[("week", hana_week)] == (1, 0, 0, 0, 0, 0.0, 0.0, 0.0, None)
    assert rows[("overall", None)] == (8, 3, 7, 4, 3, 0.5, 0.375, 7 / 8, 4 / 7)
    ok, text = check_kfactor(con)
    assert ok, text


# ------------------------------------------------------------------------ channel migration

def test_channel_migration_handcrafted(con: duckdb.DuckDBPyConnection) -> None:
    add_orders(con, [
        {"order_id": "x1", "customer_id": "x", "ordered_at": datetime(2025, 1, 5), "channel": "jd"},
        {"order_id": "x2", "customer_id": "x", "ordered_at": datetime(2025, 1, 20),
         "channel": "taobao", "amount": 30},
        {"order_id": "x3", "customer_id": "x", "ordered_at": datetime(2025, 2, 3),
         "channel": "moments", "amount": 40},
        {"order_id": "y1", "customer_id": "y", "ordered_at": datetime(2025, 1, 25),
         "channel": "wechat"},
        {"order_id": "y2", "customer_id": "y", "ordered_at": datetime(2025, 2, 10),
         "channel": "group_buy", "amount": 20},
        {"order_id": "y2", "line_no": 2, "customer_id": "y", "ordered_at": datetime(2025, 2, 10),
         "channel": "group_buy", "amount": 5},
        {"order_id": "y3", "customer_id": "y", "ordered_at": datetime(2025, 2, 11),
         "channel": "tmall", "amount": 60, "status": "refunded"},
        {"order_id": "z1", "customer_id": "z", "ordered_at": datetime(2025, 2, 12),
         "channel": "tmall"},  # first order only: not a repeat
    ])
    assert build_channel_migration(con) == 2
    rows = con.execute(
        "SELECT month, repeat_customers, repeat_orders, social_orders, platform_orders, "
        "social_order_share, repeat_gmv, social_gmv, platform_gmv, social_gmv_share "
        "FROM marts.channel_migration ORDER BY month").fetchall()
    assert rows[0] == (date(2025, 1, 1), 1, 1, 0, 1, 0.0, Decimal("30.00"), Decimal("0.00"),
                       Decimal("30.00"), 0.0)
    assert rows[1] == (date(2025, 2, 1), 2, 2, 2, 0, 1.0, Decimal("65.00"), Decimal("65.00"),
                       Decimal("0.00"), 1.0)


@pytest.mark.skipif(not HAS_WORLD, reason="the demo generator is not there yet")
def test_channel_migration_rises_on_generated_world(pipeline_run: dict) -> None:
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as c:
        rows = c.execute("SELECT month, social_order_share, repeat_orders "
                         "FROM marts.channel_migration ORDER BY month").fetchall()
        paid_repeat = c.execute("""
            SELECT count(DISTINCT order_id) FROM graph.attributed_orders a
            WHERE is_paid AND ordered_at > (SELECT min(ordered_at) FROM graph.attributed_orders b
                                            WHERE b.is_paid AND b.customer_id = a.customer_id)
        """).fetchone()[0]
    assert len(rows) >= 2
    assert rows[-1][1] > rows[0][1], rows
    assert sum(r[2] for r in rows) >= paid_repeat  # an order is counted in its month


@pytest.mark.skipif(not HAS_WORLD, reason="the demo generator is not there yet")
def test_growth_checks_pass_on_generated_world(pipeline_run: dict) -> None:
    result = pipeline_run["result"]
    mine = {("marts", "kfactor"), ("marts", "concentration"), ("marts", "group_buys")}
    evals = [e for e in result.get_asset_check_evaluations() if tuple(e.asset_key.path) in mine]
    assert len(evals) == 3 and all(e.passed for e in evals), [e.description for e in evals]
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as c:
        k = c.execute("SELECT k_factor FROM marts.kfactor WHERE scope = 'overall'").fetchone()[0]
        assert k > 0
        for table in ("kfactor", "concentration", "channel_migration", "group_buys",
                      "group_buy_summary"):
            missing = c.execute("SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'marts' "
                                "AND table_name = ? AND comment IS NULL", [table]).fetchone()[0]
            assert missing == 0, table


# ------------------------------------------------------------------------------- group buys

def test_group_buys_handcrafted(con: duckdb.DuckDBPyConnection) -> None:
    t = datetime(2025, 3, 1, 12)
    insert_staging(con, "group_buys", [
        {"group_id": "g1", "initiator_id": "ann", "product_id": "p1", "target_size": 3,
         "opened_at": t, "closed_at": t + timedelta(hours=5), "status": "filled"},
        {"group_id": "g2", "initiator_id": "bea", "product_id": "p1", "target_size": 4,
         "opened_at": t, "closed_at": t + timedelta(days=1), "status": "failed"},
        {"group_id": "g3", "initiator_id": "cid", "product_id": "p9", "target_size": 2,
         "opened_at": datetime(2025, 4, 2), "status": "open"},
    ])
    insert_staging(con, "products", [{"product_id": "p9", "category": "tea", "merchant_id": "m9"}])
    # g1: ann opens, bo joins via ann's share, cy via bo (fission), dee organically, eve cancels
    # g2 (failed, refunded): bea opens, fin joins via bea's share, gil by referrer fin
    orders = [
        ("o1", "ann", "g1", "paid", None, None, 0, 30),
        ("o2", "bo", "g1", "paid", "s_ann", None, 1, 30),
        ("o3", "cy", "g1", "paid", None, "bo", 2, 30),
        ("o4", "dee", "g1", "paid", None, None, 3, 30),
        ("o5", "eve", "g1", "cancelled", "s_ann", None, 4, 30),
        ("o6", "bea", "g2", "refunded", None, None, 0, 25),
        ("o7", "fin", "g2", "refunded", "s_bea", None, 1, 25),
        ("o8", "gil", "g2", "refunded", None, "fin", 2, 25),
    ]
    insert_staging(con, "orders", [
        {"order_id": o, "customer_id": c, "group_id": g, "status": s, "share_id": sh,
         "referrer_id": ref, "ordered_at": t + timedelta(hours=h), "product_id": "p1",
         "category": "tea", "quantity": 1, "amount": a, "channel": "group_buy"}
        for o, c, g, s, sh, ref, h, a in orders
    ])
    con.execute("""INSERT INTO graph.share_nodes VALUES
        ('s_ann', 'ann', NULL, 's_ann', 0, '2025-03-01 12:10', 'p1', 'tea', 'wechat_group'),
        ('s_bea', 'bea', NULL, 's_bea', 0, '2025-03-01 12:10', 'p1', 'tea', 'wechat_group')""")
    # attribution as the contract says: credit only on paid lines, share kept on unpaid ones
    add_orders(con, [
        {"order_id": o, "customer_id": c, "status": s, "share_id": sh,
         "credited_id": {"s_ann": "ann", "s_bea": "bea"}.get(sh, ref),
         "ordered_at": t + timedelta(hours=h), "amount": a, "channel": "group_buy"}
        for o, c, g, s, sh, ref, h, a in orders
    ])
    assert build_group_buys(con) == 3
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT group_id, merchant_id, members, fill_rate, time_to_fill_hours, "
        "members_via_initiator, fission_members, fission_rate, paid_lines, paid_gmv, "
        "refunded_lines, refunded_yuan FROM marts.group_buys").fetchall()}
    assert rows["g1"] == ("m1", 4, 1.0, 5.0, 1, 2, 0.5, 4, Decimal("120.00"), 0,
                          Decimal("0.00"))
    assert rows["g2"] == ("m1", 3, 0.75, None, 1, 2, pytest.approx(2 / 3), 0, Decimal("0.00"),
                          3, Decimal("75.00"))
    assert rows["g3"] == ("m9", 0, 0.0, None, 0, 0, None, 0, Decimal("0.00"), 0,
                          Decimal("0.00"))
    assert check_fill_rate_bounds(con)[0]
    assert build_group_buy_summary(con) == 2
    march = con.execute(
        "SELECT groups, filled_groups, failed_groups, open_groups, success_rate, mean_fill_rate, "
        "median_time_to_fill_hours, members, fission_members, fission_rate, paid_gmv, "
        "failed_refunded_yuan, failed_paid_yuan FROM marts.group_buy_summary "
        "WHERE month = DATE '2025-03-01'").fetchone()
    assert march == (2, 1, 1, 0, 0.5, pytest.approx(0.875), 5.0, 7, 4, pytest.approx(4 / 7),
                     Decimal("120.00"), Decimal("75.00"), Decimal("0.00"))
    con.execute("UPDATE marts.group_buys SET fill_rate = 1.2 WHERE group_id = 'g1'")
    assert not check_fill_rate_bounds(con)[0]


def test_group_buys_empty(con: duckdb.DuckDBPyConnection) -> None:
    assert build_group_buys(con) == 0
    assert build_group_buy_summary(con) == 0
    assert build_kfactor(con) == 0
    assert build_concentration(con) == 0
    assert build_channel_migration(con) == 0
    assert check_fill_rate_bounds(con)[0] and check_concentration_bounds(con)[0]
    assert check_kfactor(con)[0]
