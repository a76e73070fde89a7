"""sharegraph.metrics.expansion: categories to add per merchant, and weak categories of its line."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.affinity import build_category_affinity
from sharegraph.metrics.expansion import (
    build_expansion_recommendations,
    build_weak_categories,
    expansion_problems,
)
from tests.helpers import attributed_world, insert_staging
from tests.helpers import order_line as _order

SETTINGS = Settings(min_pair_customers=5)


def _world() -> tuple[duckdb.DuckDBPyConnection, list[dict]]:
    """'big' sells a, b, c, x; 'shop' sells a, x (and lists 'listed'); b goes with a and x.

    'other' sells y to 300 customers who buy nothing else, so b is not bought by everyone.
    """
    rows: list[dict] = []

    def buy(customer: str, category: str, merchant: str, status: str = "paid") -> None:
        rows.append(_order(len(rows), customer, category, merchant=merchant, status=status,
                           amount={"b": 80.0}.get(category, 20.0), days=len(rows) % 9))

    for i in range(100):
        buy(f"ab{i}", "a", "big")
        buy(f"ab{i}", "b", "big")
    for i in range(60):
        buy(f"xb{i}", "x", "big")
        buy(f"xb{i}", "b", "big")
    for i in range(40):
        buy(f"c{i}", "c", "big")
    for i in range(50):
        buy(f"b{i}", "b", "big")
    for i in range(300):
        buy(f"y{i}", "y", "other")
    for i in range(30):
        buy(f"s{i}", "a", "shop")
        if i < 15:
            buy(f"s{i}", "x", "shop")
        if i < 3:
            buy(f"s{i}", "b", "nobody", status="refunded")
    buy("r1", "a", "refund_only", status="refunded")
    con = duckdb.connect()
    ensure_schema(con)
    insert_staging(con, "orders", rows)
    insert_staging(con, "products", [dict(product_id="p_listed", category="listed",
                                          merchant_id="shop", price=9.9)])
    return con, rows


def test_expected_buyers_take_the_best_antecedent_per_customer():
    con, rows = _world()
    build_category_affinity(con, SETTINGS)
    assert build_expansion_recommendations(con, SETTINGS) > 0
    rec = con.execute("SELECT * FROM marts.expansion_recommendations").df()
    aff = con.execute("SELECT * FROM marts.category_affinity WHERE scope = 'all' "
                      "AND basis = 'customer' AND is_significant").df()
    uplift = {(r.category_a, r.category_b): r.confidence - r.support_b for r in aff.itertuples()}
    # independent: per shop customer, max over the categories bought at shop of uplift(A -> b)
    paid = pd.DataFrame(rows).query("status == 'paid' and merchant_id == 'shop'")
    per_customer = paid.groupby("customer_id").category.apply(
        lambda cats: max(uplift.get((a, "b"), 0.0) for a in set(cats)))
    shop = rec[rec.merchant_id == "shop"].set_index("category")
    assert list(shop.index) == ["b"]  # c has no co-buyers; 'listed' is listed by shop
    b = shop.loc["b"]
    assert b.expected_buyers == pytest.approx(per_customer.sum(), rel=1e-12)
    assert b.n_merchant_customers == 30 and b.n_customers_with_uplift == 30
    assert b["rank"] == 1
    all_b = pd.DataFrame(rows).query("status == 'paid' and category == 'b'")
    assert b.avg_order_value_yuan == pytest.approx(all_b.amount.sum() / all_b.order_id.nunique())
    assert b.expected_incremental_gmv_yuan == pytest.approx(b.expected_buyers * 80.0)
    # evidence: a (15 customers with only a + those whose best is a) ranked by contribution
    best = "a" if uplift[("a", "b")] >= uplift[("x", "b")] else "x"
    assert list(b.evidence_categories)[0] == best
    assert len(b.evidence_lift) == len(b.evidence_categories) == len(b.evidence_q_value)
    assert b.evidence.startswith(f"{best} -> b: lift ")
    assert sum(b.evidence_expected_buyers) == pytest.approx(b.expected_buyers)
    # big sells everything that has affinity; refund-only merchants get nothing
    assert set(rec.merchant_id) == {"shop"}
    assert expansion_problems(con) == {"already_sold": 0, "bad_rank": 0,
                                       "bad_expected_buyers": 0, "bad_evidence": 0}


def test_weak_categories_flags_the_line_outlier():
    con, _ = _world()
    build_category_affinity(con, SETTINGS)
    build_weak_categories(con, SETTINGS)
    weak = con.execute("SELECT * FROM marts.weak_categories").df().set_index(
        ["merchant_id", "category"])
    c = weak.loc[("big", "c")]
    assert c.mean_lift_to_line == 0 and c.is_weak and c.weakness_rank == 1
    assert c.share_of_customers == pytest.approx(40 / 250)
    assert not weak.loc[("big", "b")].is_weak
    assert weak.loc[("big", "a")].n_categories == 4
    assert ("refund_only", "a") not in weak.index


def test_empty_warehouse_gives_empty_marts():
    con = duckdb.connect()
    ensure_schema(con)
    build_category_affinity(con, SETTINGS)
    assert build_expansion_recommendations(con, SETTINGS) == 0
    assert build_weak_categories(con, SETTINGS) == 0
    assert expansion_problems(con)["already_sold"] == 0


def test_world_expected_expansion_in_top_three(request):
    pytest.importorskip("sharegraph.demo.generate")  # the generator lands in parallel
    world, truth = request.getfixturevalue("small_world"), request.getfixturevalue("small_truth")
    settings = Settings()
    con = attributed_world(world, settings)
    build_category_affinity(con, settings)
    build_expansion_recommendations(con, settings)
    build_weak_categories(con, settings)
    rec = con.execute("SELECT merchant_id, category, rank FROM marts.expansion_recommendations "
                      "WHERE rank <= 3").df()
    for merchant, category in truth["expected_expansion"].items():
        top = rec[rec.merchant_id == merchant].sort_values("rank").category.tolist()
        assert category in top, (merchant, category, top)
    assert expansion_problems(con) == {"already_sold": 0, "bad_rank": 0,
                                       "bad_expected_buyers": 0, "bad_evidence": 0}
