"""sharegraph.metrics.affinity: co-purchase, directional and spill-over affinity.

Cross-checked against mlxtend's association_rules and a plain pandas computation, SciPy's
Fisher exact test and Benjamini-Hochberg, and hand-counted tiny worlds; the demo world's
planted pairs must be recovered.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.affinity import (
    affinity_bounds_problems,
    affinity_count_mismatches,
    bh_qvalues,
    build_category_affinity,
    build_directional_affinity,
    build_spillover_affinity,
    hypergeom_pvalue,
    rate_mart_problems,
)
from tests.helpers import attributed_world, insert_staging
from tests.helpers import order_line as _order

T0 = datetime(2025, 3, 1, 10, 0)


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    return con


def _random_orders(seed: int, n_lines: int = 600, n_customers: int = 120,
                   cats: str = "abcdefg") -> list[dict]:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(cats)))
    rows = []
    for i in range(n_lines):
        c = int(rng.integers(n_customers))
        # planted dependence: even customers prefer a and b
        p = weights if c % 2 else np.r_[[0.3, 0.3], weights[2:] / weights[2:].sum() * 0.4]
        rows.append(_order(i, f"c{c}", cats[rng.choice(len(cats), p=p)],
                           days=float(rng.integers(60)), merchant=f"m{c % 3}",
                           status="refunded" if rng.random() < 0.05 else "paid",
                           amount=float(rng.integers(5, 300))))
    return rows


def _mart(con: duckdb.DuckDBPyConnection, scope: str = "all", basis: str = "customer"
          ) -> pd.DataFrame:
    return con.execute(
        "SELECT * FROM marts.category_affinity WHERE scope = ? AND basis = ? "
        "ORDER BY category_a, category_b", [scope, basis]).df()


# ----------------------------------------------------------------- statistics


def test_hypergeom_pvalue_equals_one_sided_fisher():
    cases = [(3, 50, 10, 8), (0, 20, 5, 5), (5, 30, 5, 9), (12, 400, 40, 30)]
    got = hypergeom_pvalue(*map(np.array, zip(*cases, strict=True)))
    for (k, n, a, b), p in zip(cases, got, strict=True):
        table = [[k, a - k], [b - k, n - a - b + k]]
        assert p == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue,
                                  rel=1e-9, abs=1e-15)


def test_bh_matches_scipy_per_family_and_counts_untested_hypotheses():
    rng = np.random.default_rng(3)
    p = rng.random(300) ** 3
    fam = rng.integers(0, 7, size=300)
    q = bh_qvalues(p, fam)
    for f in np.unique(fam):
        sel = fam == f
        np.testing.assert_allclose(q[sel], stats.false_discovery_control(p[sel]), rtol=1e-12)
    # family of 50 with 20 tested: same as testing the other 30 with p = 1
    p20 = rng.random(20) ** 4
    q_m = bh_qvalues(p20, m=np.full(20, 50))
    full = stats.false_discovery_control(np.r_[p20, np.ones(30)])[:20]
    np.testing.assert_allclose(q_m, full, rtol=1e-12)
    assert bh_qvalues(np.zeros(0)).size == 0


# ----------------------------------------------------------------- cross-checks


def _paid_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df[df.status == "paid"]


def test_customer_basis_matches_mlxtend_and_pandas():
    from mlxtend.frequent_patterns import apriori, association_rules

    rows = _random_orders(seed=5)
    con = _con()
    insert_staging(con, "orders", rows)
    build_category_affinity(con, Settings(min_pair_customers=1))
    mart = _mart(con).set_index(["category_a", "category_b"])

    paid = _paid_frame(rows)
    onehot = pd.crosstab(paid.customer_id, paid.category).gt(0)
    freq = apriori(onehot, min_support=1e-9, max_len=2, use_colnames=True)
    rules = association_rules(freq, num_itemsets=len(onehot), metric="support",
                              min_threshold=0.0)
    rules["a"] = rules.antecedents.map(lambda s: next(iter(s)))
    rules["b"] = rules.consequents.map(lambda s: next(iter(s)))
    rules = rules.rename(columns={"a": "category_a", "b": "category_b"})
    rules = rules.set_index(["category_a", "category_b"]).sort_index()
    assert len(rules) == len(mart) > 20
    joined = mart.join(rules, how="inner", suffixes=("", "_mlx"))
    assert len(joined) == len(mart)
    for ours, theirs in [("support", "support_mlx"), ("confidence", "confidence_mlx"),
                         ("lift", "lift_mlx"), ("leverage", "leverage_mlx"),
                         ("support_a", "antecedent support"),
                         ("support_b", "consequent support")]:
        np.testing.assert_allclose(joined[ours], joined[theirs], rtol=0, atol=1e-9)
    conv = joined[["conviction", "conviction_mlx"]]
    inf = np.isinf(conv.conviction_mlx)
    assert conv.conviction[inf].isna().all()
    np.testing.assert_allclose(conv.conviction[~inf], conv.conviction_mlx[~inf], atol=1e-9)
    assert (~inf).sum() > 20

    # plain pandas: customers per pair from a self-merge
    cc = paid[["customer_id", "category"]].drop_duplicates()
    pairs = cc.merge(cc, on="customer_id")
    pairs = pairs[pairs.category_x != pairs.category_y]
    n_ab = pairs.groupby(["category_x", "category_y"]).size()
    n_c = cc.groupby("category").size()
    n = cc.customer_id.nunique()
    a, b = zip(*n_ab.index, strict=True)
    exp = pd.DataFrame({"n_ab": n_ab.values, "n_a": n_c[list(a)].values,
                        "n_b": n_c[list(b)].values}, index=n_ab.index)
    exp["confidence"] = exp.n_ab / exp.n_a
    exp["lift"] = exp.n_ab * n / (exp.n_a * exp.n_b)
    exp["leverage"] = exp.n_ab / n - exp.n_a * exp.n_b / n**2
    exp = exp.sort_index()
    assert list(exp.index) == list(mart.index)
    np.testing.assert_array_equal(exp.n_ab.values, mart.n_ab.values)
    np.testing.assert_array_equal(exp.n_a.values, mart.n_a.values)
    assert (mart.n_total == n).all()
    for col in ("confidence", "lift", "leverage"):
        np.testing.assert_allclose(exp[col].values, mart[col].values, atol=1e-9)
    # significance: one-sided Fisher per pair, symmetric in A and B
    for (ca, cb), r in mart.head(16).iterrows():
        t = [[r.n_ab, r.n_a - r.n_ab], [r.n_b - r.n_ab, r.n_total - r.n_a - r.n_b + r.n_ab]]
        assert r.p_value == pytest.approx(stats.fisher_exact(t, alternative="greater").pvalue,
                                          rel=1e-9, abs=1e-15)
        assert r.p_value == pytest.approx(mart.loc[(cb, ca), "p_value"], rel=1e-12)
    assert affinity_bounds_problems(con) == dict.fromkeys(
        ("support_out_of_range", "confidence_out_of_range", "n_ab_too_large",
         "marginal_above_total", "bad_lift", "q_below_p"), 0)
    assert affinity_count_mismatches(con) == {"n_a_mismatch": 0, "n_total_mismatch": 0}


def test_basket_and_merchant_scopes_match_pandas():
    rows = _random_orders(seed=8, n_lines=800)
    con = _con()
    insert_staging(con, "orders", rows)
    build_category_affinity(con, Settings(min_pair_customers=1))
    paid = _paid_frame(rows).assign(day=lambda d: pd.to_datetime(d.ordered_at).dt.date)
    cases = [("all", "basket", paid, ["customer_id", "day"]),
             ("m1", "customer", paid[paid.merchant_id == "m1"], ["customer_id"]),
             ("m2", "basket", paid[paid.merchant_id == "m2"], ["customer_id", "day"])]
    for scope, basis, frame, unit in cases:
        mart = _mart(con, scope, basis).set_index(["category_a", "category_b"])
        cc = frame[[*unit, "category"]].drop_duplicates()
        pairs = cc.merge(cc, on=unit)
        pairs = pairs[pairs.category_x != pairs.category_y]
        n_ab = pairs.groupby(["category_x", "category_y"]).size().sort_index()
        assert list(n_ab.index) == list(mart.index), (scope, basis)
        np.testing.assert_array_equal(n_ab.values, mart.n_ab.values)
        assert (mart.n_total == len(cc[unit].drop_duplicates())).all()


def test_confidence_one_gives_null_conviction_and_ci_brackets_lift():
    con = _con()
    rows = [_order(1, "c1", "a"), _order(2, "c1", "b"), _order(3, "c2", "b"),
            _order(4, "c3", "c"), _order(5, "c3", "b"), _order(6, "c4", "c")]
    insert_staging(con, "orders", rows)
    build_category_affinity(con, Settings(min_pair_customers=1))
    mart = _mart(con).set_index(["category_a", "category_b"])
    ab = mart.loc[("a", "b")]
    assert ab.confidence == 1.0 and pd.isna(ab.conviction)
    assert ab.lift == pytest.approx(4 / 3)
    assert mart.loc[("b", "a")].conviction == pytest.approx((1 - 0.25) / (1 - 1 / 3))
    assert (mart.lift_ci_low <= mart.lift).all() and (mart.lift <= mart.lift_ci_high).all()


# ----------------------------------------------------------------- edge cases


def test_edge_cases_refunds_single_category_one_buyer_empty_merchant():
    con = _con()
    rows = [
        _order(1, "c1", "a"), _order(2, "c1", "b"),          # a pair
        _order(3, "c2", "a"), _order(4, "c2", "b"),
        _order(5, "c3", "a"),                                 # single-category customer
        _order(6, "c4", "lonely"), _order(7, "c4", "a"),      # category with one buyer
        _order(8, "c5", "a"), _order(9, "c5", "zz", status="refunded"),  # refunded excluded
        _order(10, "c6", "b", merchant="m_refund_only", status="refunded"),
        _order(11, "c7", "c", merchant="m_cancel", status="cancelled"),
    ]
    insert_staging(con, "orders", rows)
    build_category_affinity(con, Settings(min_pair_customers=2))
    mart = _mart(con).set_index(["category_a", "category_b"])
    assert "zz" not in set(mart.reset_index().category_b)
    assert mart.loc[("a", "b"), "n_ab"] == 2 and mart.loc[("a", "b"), "n_total"] == 5
    assert mart.loc[("a", "b"), "n_a"] == 5
    assert mart.loc[("lonely", "a"), "confidence"] == 1.0
    assert bool(mart.loc[("a", "b"), "meets_min_count"])
    assert not bool(mart.loc[("lonely", "a"), "meets_min_count"])
    scopes = set(con.execute("SELECT DISTINCT scope FROM marts.category_affinity").fetchall())
    assert scopes == {("all",), ("m1",)}
    assert affinity_count_mismatches(con) == {"n_a_mismatch": 0, "n_total_mismatch": 0}
    build_directional_affinity(con, Settings(min_pair_customers=1))
    build_spillover_affinity(con, Settings())
    assert con.execute("SELECT count(*) FROM marts.spillover_affinity").fetchall()[0][0] == 0


def test_empty_tables_give_empty_marts():
    con = _con()
    s = Settings()
    assert build_category_affinity(con, s) == 0
    assert build_directional_affinity(con, s) == 0
    assert build_spillover_affinity(con, s) == 0
    for t in ("category_affinity", "directional_affinity", "spillover_affinity"):
        comment = con.execute(
            "SELECT comment FROM duckdb_tables() WHERE schema_name = 'marts' AND table_name = ?",
            [t]).fetchall()[0][0]
        assert comment
        undocumented = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'marts' "
            "AND table_name = ? AND (comment IS NULL OR comment = '')", [t]).fetchall()[0][0]
        assert undocumented == 0
    assert affinity_bounds_problems(con)["n_ab_too_large"] == 0


def test_reads_attributed_orders_when_present():
    """graph.attributed_orders (the shared contract) wins over staging when it exists."""
    from sharegraph.graph.attribution import attribute_orders

    rows = _random_orders(seed=2, n_lines=300)
    con = _con()
    insert_staging(con, "orders", rows)
    build_category_affinity(con, Settings(min_pair_customers=1))
    before = _mart(con)
    attribute_orders(con, Settings())
    con.execute("UPDATE graph.attributed_orders SET is_paid = false WHERE category = 'g'")
    build_category_affinity(con, Settings(min_pair_customers=1))
    after = _mart(con)
    assert "g" in set(before.category_a) and "g" not in set(after.category_a)


# ----------------------------------------------------------------- directional, spill-over


def test_directional_counts_by_hand():
    con = _con()
    rows = [
        _order(1, "c1", "a", days=0), _order(2, "c1", "b", days=5),      # a then b in window
        _order(3, "c2", "a", days=0), _order(4, "c2", "b", days=40),     # too late
        _order(5, "c3", "b", days=0), _order(6, "c3", "a", days=3),      # b then a
        _order(7, "c4", "a", days=0), _order(8, "c4", "a", days=2),
        _order(9, "c4", "b", days=31),                                   # 31 d after first a
        _order(10, "c5", "c", days=0), _order(11, "c5", "b", days=1),
        _order(12, "c6", "a", days=0), _order(13, "c6", "b", days=0),   # same instant: no
        _order(14, "c1", "a", days=0), _order(15, "c1", "b", days=5),   # c1 again: no change
    ]
    insert_staging(con, "orders", rows)
    build_directional_affinity(con, Settings(affinity_window_days=30, min_pair_customers=1))
    d = con.execute("SELECT * FROM marts.directional_affinity WHERE scope = 'all'").df()
    d = d.set_index(["category_a", "category_b"])
    ab = d.loc[("a", "b")]
    assert ab.n_a == 5 and ab.n_a_then_b == 1 and ab.n_total == 6
    # base: B within 30 d after a first purchase: c1 (day 5), c5 (day 1) -> 2 of 6
    assert ab.n_b_base == 2 and ab.base_rate_b == pytest.approx(2 / 6)
    assert ab.lift == pytest.approx((1 / 5) / (2 / 6))
    assert ab.p_value == pytest.approx(stats.binom.sf(0, 5, 2 / 6))
    assert d.loc[("b", "a")].n_a_then_b == 1
    assert rate_mart_problems(con, "marts.directional_affinity", "n_a") == {
        "rate_out_of_range": 0, "n_a_then_b_too_large": 0, "bad_p": 0}


def _share_events(clicks: list[tuple[str, str, float]]) -> list[dict]:
    """One share per category by 'kol', and the given (clicker, category, day) clicks."""
    rows, cats = [], sorted({c for _, c, _ in clicks})
    for c in cats:
        rows.append(dict(event_id=f"s_{c}", event_type="share", share_id=f"sh_{c}",
                         actor_id="kol", occurred_at=T0 - timedelta(days=1),
                         product_id=f"p_{c}", category=c, channel="moments"))
    for i, (who, c, day) in enumerate(clicks):
        rows.append(dict(event_id=f"k{i}", event_type="click", share_id=f"sh_{c}",
                         actor_id=who, occurred_at=T0 + timedelta(days=day),
                         channel="moments"))
    return rows


def test_spillover_counts_by_hand():
    con = _con()
    insert_staging(con, "share_events", _share_events([
        ("u1", "skirt", 0), ("u2", "skirt", 0), ("u3", "skirt", 0), ("u4", "shoes", 0),
        ("u5", "shoes", 0), ("u6", "shoes", 10), ("u1", "skirt", 0),  # u1 twice: no change
    ]))
    insert_staging(con, "orders", [
        _order(1, "u1", "mask", days=2), _order(2, "u2", "mask", days=6.5),
        _order(3, "u3", "mask", days=9),                  # outside the 7-day window
        _order(4, "u4", "mask", days=1), _order(5, "u5", "skirt", days=3),
        _order(6, "u6", "mask", days=1),                  # before the click
        _order(7, "stranger", "mask", days=1),            # never clicked
        _order(8, "u1", "mask", days=2),                  # a second order, same instant
    ])
    build_spillover_affinity(con, Settings(spillover_window_days=7, min_pair_customers=1))
    sp = con.execute("SELECT * FROM marts.spillover_affinity").df()
    sp = sp.set_index(["shared_category", "bought_category"])
    r = sp.loc[("skirt", "mask")]
    assert (r.n_clickers_a, r.n_a_then_b, r.n_clickers, r.n_b_base) == (3, 2, 6, 3)
    assert r.lift == pytest.approx((2 / 3) / (3 / 6))
    assert r.p_value == pytest.approx(stats.binom.sf(1, 3, 0.5))
    assert not r.same_category
    assert sp.loc[("shoes", "mask")].n_a_then_b == 1
    assert ("skirt", "skirt") not in sp.index  # u5 clicked shoes, not skirt
    assert sp.loc[("shoes", "skirt")].n_a_then_b == 1


# ----------------------------------------------------------------- the demo world


@pytest.fixture(scope="module")
def world_con(request):
    pytest.importorskip("sharegraph.demo.generate")  # the generator lands in parallel
    small_world = request.getfixturevalue("small_world")
    from sharegraph.graph.shares import build_share_nodes

    settings = Settings()
    con = attributed_world(small_world, settings)
    build_share_nodes(con, settings)
    build_category_affinity(con, settings)
    build_directional_affinity(con, settings)
    build_spillover_affinity(con, settings)
    return con


def test_world_planted_pairs_top_lift_and_null_pairs_near_one(world_con, request):
    small_truth = request.getfixturevalue("small_truth")
    mart = _mart(world_con)
    planted = {(p["a"], p["b"]) for p in small_truth["category_pairs"]}
    planted |= {(b, a) for a, b in planted}
    ok = mart[mart.meets_min_count].sort_values("lift", ascending=False)
    top = set(zip(ok.category_a.head(len(planted)), ok.category_b.head(len(planted)),
                  strict=True))
    assert planted <= top, (planted - top, ok.head(len(planted) + 4))
    is_planted = [(a, b) in planted for a, b in zip(mart.category_a, mart.category_b,
                                                    strict=True)]
    null = mart[~np.array(is_planted) & mart.meets_min_count.to_numpy()]
    assert 0.8 <= null.lift.median() <= 1.25
    assert mart.set_index(["category_a", "category_b"]).loc[list(planted)].is_significant.all()
    assert affinity_count_mismatches(world_con) == {"n_a_mismatch": 0, "n_total_mismatch": 0}


def test_world_spillover_pairs_recovered(world_con, request):
    small_truth = request.getfixturevalue("small_truth")
    sp = world_con.execute(
        "SELECT * FROM marts.spillover_affinity WHERE NOT same_category AND meets_min_count "
        "ORDER BY lift DESC").df()
    planted = {(p["shared"], p["bought"]) for p in small_truth["spillover_pairs"]}
    top = set(zip(sp.shared_category.head(2 * len(planted)),
                  sp.bought_category.head(2 * len(planted)), strict=True))
    assert planted <= top, (planted, sp.head(10))
    assert math.isfinite(sp.lift.median())
