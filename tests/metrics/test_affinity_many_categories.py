"""Many categories: the affinity and expansion marts against a dense brute force.

300 categories are few enough for a dense units x categories incidence matrix, whose
Gram matrix gives n_ab for *every* pair, zeros included. That independent computation
(NumPy / pandas / SciPy, nothing shared with the marts' SQL) must reproduce
``marts.category_affinity``, ``marts.weak_categories`` and
``marts.expansion_recommendations`` row for row: the marts only ever touch co-bought pairs,
and this checks that the pairs they skip are exactly the ones that contribute nothing.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.affinity import build_category_affinity
from sharegraph.metrics.expansion import (
    MAX_CANDIDATES,
    build_expansion_recommendations,
    build_weak_categories,
)
from tests.helpers import insert_staging
from tests.helpers import order_line as _order

N_CATEGORIES, GROUP, N_CUSTOMERS, MERCHANTS = 300, 10, 600, 4
SETTINGS = Settings(min_pair_customers=3)


def _rows(seed: int = 13) -> list[dict]:
    """Customers with a home group of 10 categories (70% of their lines), 4 merchants.

    A merchant mostly sells the groups g with g % 4 = its number, so each merchant has
    ~100 categories and lacks others: weak-category means run over many zero pairs, and
    expansion has candidates.
    """
    rng = np.random.default_rng(seed)
    groups = N_CATEGORIES // GROUP
    rows = []
    for c in range(N_CUSTOMERS):
        home = int(rng.integers(groups))
        for _ in range(int(rng.integers(2, 14))):
            cat = (home * GROUP + int(rng.integers(GROUP)) if rng.random() < 0.7
                   else int(rng.integers(N_CATEGORIES)))
            merchant = (cat // GROUP) % MERCHANTS if rng.random() < 0.85 else int(rng.integers(4))
            rows.append(_order(len(rows), f"c{c:03d}", f"k{cat:03d}", days=int(rng.integers(20)),
                               merchant=f"m{merchant}", amount=float(rng.integers(5, 300)),
                               status="refunded" if rng.random() < 0.04 else "paid"))
    return rows


@pytest.fixture(scope="module")
def world() -> tuple[duckdb.DuckDBPyConnection, pd.DataFrame]:
    rows = _rows()
    con = duckdb.connect()
    ensure_schema(con)
    insert_staging(con, "orders", rows)
    build_category_affinity(con, SETTINGS)
    build_expansion_recommendations(con, SETTINGS)
    build_weak_categories(con, SETTINGS)
    paid = pd.DataFrame(rows).query("status == 'paid'").copy()
    paid["day"] = pd.to_datetime(paid.ordered_at).dt.date.astype(str)
    return con, paid


def _dense(frame: pd.DataFrame, basis: str) -> dict:
    """Dense counts of one family: C[a, b] = units with both a and b, zeros included."""
    unit = frame.customer_id if basis == "customer" else frame.customer_id + "|" + frame.day
    items = pd.DataFrame({"unit": unit, "category": frame.category}).drop_duplicates()
    cats = np.sort(items.category.unique())
    u_codes, _ = pd.factorize(items.unit)
    x = np.zeros((u_codes.max() + 1, len(cats)))
    x[u_codes, np.searchsorted(cats, items.category)] = 1.0
    c = (x.T @ x).round().astype(np.int64)
    return {"cats": cats, "C": c, "n": np.diag(c).copy(), "N": x.shape[0]}


def _brute_affinity(paid: pd.DataFrame) -> pd.DataFrame:
    """Every family's ordered pairs with n_ab > 0, statistics and BH over all k(k-1)/2 pairs."""
    out = []
    scopes = [("all", paid), *((m, g) for m, g in paid.groupby("merchant_id"))]
    for scope, frame in scopes:
        for basis in ("customer", "basket"):
            d = _dense(frame, basis)
            k, big_n, c, n = len(d["cats"]), d["N"], d["C"], d["n"]
            iu, ju = np.triu_indices(k, 1)          # every unordered pair, co-bought or not
            n_ab = c[iu, ju]
            p = np.ones(n_ab.size)
            hit = n_ab > 0
            p[hit] = stats.hypergeom.sf(n_ab[hit] - 1, big_n, n[iu[hit]], n[ju[hit]])
            q = stats.false_discovery_control(p)    # zero pairs enter with p = 1
            for a, b in ((iu, ju), (ju, iu)):
                out.append(pd.DataFrame({
                    "scope": scope, "basis": basis, "category_a": d["cats"][a[hit]],
                    "category_b": d["cats"][b[hit]], "n_a": n[a[hit]], "n_b": n[b[hit]],
                    "n_ab": n_ab[hit], "n_total": big_n, "p_value": p[hit],
                    "q_value": q[hit]}))
    e = pd.concat(out, ignore_index=True)
    e["support"] = e.n_ab / e.n_total
    e["confidence"] = e.n_ab / e.n_a
    e["support_b"] = e.n_b / e.n_total
    e["lift"] = e.confidence / e.support_b
    e["leverage"] = e.support - (e.n_a / e.n_total) * e.support_b
    e["conviction"] = np.where(e.n_ab < e.n_a, (1 - e.support_b) / (1 - e.confidence), np.nan)
    e["meets_min_count"] = e.n_ab >= SETTINGS.min_pair_customers
    e["is_significant"] = (e.meets_min_count & (e.q_value <= SETTINGS.fdr_alpha)
                           & (e.lift > 1))
    return e


@pytest.fixture(scope="module")
def brute(world) -> pd.DataFrame:
    return _brute_affinity(world[1])


KEY = ["scope", "basis", "category_a", "category_b"]


def test_category_affinity_equals_dense_brute_force(world, brute):
    con, _ = world
    mart = con.execute("SELECT * FROM marts.category_affinity").df()
    assert len(mart) == len(brute) > 10_000
    assert mart.scope.nunique() == MERCHANTS + 1
    m = mart.sort_values(KEY).reset_index(drop=True)
    e = brute.sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(m[KEY], e[KEY])
    for col in ("n_a", "n_b", "n_ab", "n_total", "meets_min_count", "is_significant"):
        np.testing.assert_array_equal(m[col].to_numpy(), e[col].to_numpy(), err_msg=col)
    for col in ("support", "confidence", "lift", "leverage", "conviction", "p_value",
                "q_value"):
        np.testing.assert_allclose(m[col].to_numpy(dtype=float), e[col].to_numpy(dtype=float),
                                   rtol=1e-9, atol=1e-15, err_msg=col)
    assert e.is_significant.sum() > 20
    # the stored order: scope 'all' first, then merchants; customer before basket
    order = mart[KEY].assign(all_last=mart.scope != "all").sort_values(
        ["all_last", "scope", "basis", "category_a", "category_b"],
        ascending=[True, True, False, True, True])
    assert order.index.tolist() == list(range(len(mart)))


def test_weak_categories_equal_dense_brute_force(world, brute):
    con, paid = world
    weak = con.execute("SELECT * FROM marts.weak_categories").df()
    lifts = brute[brute.basis == "customer"].set_index(["scope", "category_a", "category_b"]).lift
    exp = []
    for merchant, g in paid.groupby("merchant_id"):
        n_cust = g.groupby("category").customer_id.nunique()
        cats, k, n_all = n_cust.index.to_numpy(), len(n_cust), g.customer_id.nunique()
        row = pd.DataFrame({"merchant_id": merchant, "category": cats, "n_categories": k,
                            "n_customers": n_cust.to_numpy(),
                            "share_of_customers": n_cust.to_numpy() / n_all})
        for scope, col in (("all", "mean_lift_to_line"), (merchant, "mean_lift_merchant")):
            # dense k x k lift matrix over the merchant's categories, 0 where never co-bought
            full = pd.MultiIndex.from_product([cats, cats])
            mat = lifts.loc[scope].reindex(full).fillna(0.0).to_numpy().reshape(k, k)
            row[col] = mat.sum(axis=1) / (k - 1) if k > 1 else np.nan
        exp.append(row)
    e = pd.concat(exp, ignore_index=True)
    e["is_weak"] = ((e.mean_lift_to_line < 1) & (e.share_of_customers < 1 / e.n_categories))
    m = weak.sort_values(["merchant_id", "category"]).reset_index(drop=True)
    e = e.sort_values(["merchant_id", "category"]).reset_index(drop=True)
    assert len(m) == len(e) and (m.n_categories > 50).all()
    for col in ("merchant_id", "category", "n_categories", "n_customers", "is_weak"):
        np.testing.assert_array_equal(m[col].to_numpy(), e[col].to_numpy(), err_msg=col)
    for col in ("share_of_customers", "mean_lift_to_line", "mean_lift_merchant"):
        np.testing.assert_allclose(m[col].to_numpy(dtype=float), e[col].to_numpy(dtype=float),
                                   rtol=1e-12, err_msg=col)
    assert e.is_weak.any() and (e.mean_lift_merchant == 0).any()
    # rank: by mean lift (equal up to rounding counts as a tie), then customers, category
    e["mean_key"] = e.mean_lift_to_line.round(9)
    e["rank"] = e.sort_values(["merchant_id", "mean_key", "n_customers", "category"]).groupby(
        "merchant_id").cumcount() + 1
    np.testing.assert_array_equal(m.weakness_rank.to_numpy(), e["rank"].to_numpy())


def test_expansion_equals_brute_force(world, brute):
    con, paid = world
    rec = con.execute("SELECT * FROM marts.expansion_recommendations").df()
    sig = brute[(brute.scope == "all") & (brute.basis == "customer") & brute.is_significant]
    uplift = (sig.confidence - sig.support_b).to_numpy()
    up = pd.DataFrame({"a": sig.category_a.to_numpy(), "b": sig.category_b.to_numpy(),
                       "u": uplift})
    aov = paid.groupby("category").apply(
        lambda g: g.amount.sum() / g.order_id.nunique(), include_groups=False)
    exp = []
    for merchant, g in paid.groupby("merchant_id"):
        sold = set(g.category)
        cc = g[["customer_id", "category"]].drop_duplicates().merge(
            up, left_on="category", right_on="a")
        cc = cc[~cc.b.isin(sold)]
        best = cc.groupby(["customer_id", "b"]).u.max().groupby("b").sum()
        best = best[best > 0]
        exp.append(pd.DataFrame({"merchant_id": merchant, "category": best.index,
                                 "expected_buyers": best.to_numpy(),
                                 "gmv": best.to_numpy() * aov[best.index].to_numpy()}))
    e = pd.concat(exp, ignore_index=True)
    e["rank"] = e.sort_values(["merchant_id", "gmv", "category"],
                              ascending=[True, False, True]).groupby("merchant_id").cumcount() + 1
    e = e[e["rank"] <= MAX_CANDIDATES]  # the mart lists a merchant's best 10
    assert len(e) > 20
    rec = rec[rec.confidence_tier == "significant"]
    m = rec.sort_values(["merchant_id", "category"]).reset_index(drop=True)
    e = e.sort_values(["merchant_id", "category"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(m[["merchant_id", "category"]], e[["merchant_id", "category"]])
    np.testing.assert_allclose(m.expected_buyers, e.expected_buyers, rtol=1e-12)
    np.testing.assert_allclose(m.expected_incremental_gmv_yuan, e.gmv, rtol=1e-12)
    np.testing.assert_array_equal(m["rank"].to_numpy(), e["rank"].to_numpy())
