"""sharegraph.metrics.expansion: categories to add per merchant, and weak categories of its line."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect, ensure_schema
from sharegraph.metrics.affinity import build_category_affinity
from sharegraph.metrics.expansion import (
    TIERS,
    build_expansion_recommendations,
    build_weak_categories,
    expansion_problems,
)
from tests.helpers import attributed_world, insert_staging
from tests.helpers import order_line as _order

SETTINGS = Settings(min_pair_customers=5)
NO_PROBLEMS = {"already_sold": 0, "bad_rank": 0, "bad_expected_buyers": 0, "bad_evidence": 0,
               "bad_tier": 0}


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
    # every unsold category with paid lines: b (significant), then y and c by how common
    assert list(shop.index) == ["b", "y", "c"]  # 'listed' is listed by shop, never sold
    assert list(shop.confidence_tier) == ["significant", "insufficient_data", "insufficient_data"]
    assert shop.loc["y"].expected_buyers == 0 and pd.isna(shop.loc["y"].lead_category)
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
    assert b.reason_zh.startswith(f"买{best}的客户中 ") and "位共同客户" in b.reason_zh
    # every merchant with customers gets its unsold categories; refund-only merchants nothing
    assert rec.groupby("merchant_id").size().to_dict() == {"big": 1, "other": 4, "shop": 3}
    assert expansion_problems(con) == NO_PROBLEMS


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


def _full_line_world(drop: tuple[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """Two merchants each selling categories a, b, c (except the pair ``drop``)."""
    rows: list[dict] = []
    for merchant in ("m1", "m2"):
        for i in range(40):
            for category in ("a", "b", "c")[: 1 + i % 3]:
                if (merchant, category) != drop:
                    rows.append(_order(len(rows), f"{merchant}-{i}", category, merchant=merchant,
                                       days=i % 7))
    con = duckdb.connect()
    ensure_schema(con)
    insert_staging(con, "orders", rows)
    build_category_affinity(con, SETTINGS)
    return con


def test_merchants_selling_every_category_get_no_candidates(monkeypatch):
    con = _full_line_world()
    assert build_expansion_recommendations(con, SETTINGS) == 0
    fast = con.execute("DESCRIBE marts.expansion_recommendations").fetchall()
    # the profiling path, forced, finds no candidate either and gives the same columns
    monkeypatch.setattr("sharegraph.metrics.expansion._may_have_candidates", lambda *_: True)
    assert build_expansion_recommendations(con, SETTINGS) == 0
    assert con.execute("DESCRIBE marts.expansion_recommendations").fetchall() == fast
    # one merchant without one category: that category is its one candidate
    con = _full_line_world(drop=("m2", "c"))
    assert build_expansion_recommendations(con, SETTINGS) == 1
    assert con.execute("SELECT merchant_id, category FROM marts.expansion_recommendations"
                       ).fetchall() == [("m2", "c")]


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
    assert expansion_problems(con) == NO_PROBLEMS


# ------------------------------------------------------------------ tiers against pandas

TIER_SETTINGS = Settings(min_pair_customers=5)


def _tier_rows(seed: int = 7) -> list[dict]:
    """14 categories; customers buy a home category and, with a pair-specific chance, its
    partner (strong, medium and faint links), plus a random one. m_big sells 3 categories
    (11 unsold: capped at 10), m_mid 7 (7 unsold), m_rest the rest."""
    rng = np.random.default_rng(seed)
    partner = {0: (7, 0.6), 1: (8, 0.25), 2: (9, 0.12), 3: (10, 0.5), 4: (11, 0.2),
               5: (12, 0.1), 6: (13, 0.3)}
    owner = {c: ("m_big" if c < 3 else "m_mid" if c < 7 else "m_rest") for c in range(14)}
    rows: list[dict] = []
    for i in range(700):
        home = int(rng.integers(7)) if rng.random() < 0.8 else int(rng.integers(7, 14))
        cats = {home}
        if home in partner and rng.random() < partner[home][1]:
            cats.add(partner[home][0])
        if rng.random() < 0.5:
            cats.add(int(rng.integers(14)))
        for c in sorted(cats):
            merchant = owner[c] if c >= 3 or rng.random() < 0.9 else "m_mid"
            rows.append(_order(len(rows), f"u{i}", f"k{c:02d}", merchant=merchant,
                               amount=float(rng.integers(10, 200)), days=int(rng.integers(30))))
    return rows


def _pandas_expansion(rows: list[dict], settings: Settings) -> pd.DataFrame:
    """Everything from the definition in docs/affinity.md, with pandas / NumPy / SciPy."""
    from scipy import stats

    paid = pd.DataFrame(rows).query("status == 'paid'")
    cats = sorted(paid.category.unique())
    k, n_total = len(cats), paid.customer_id.nunique()
    x = pd.crosstab(paid.customer_id, paid.category).reindex(columns=cats).gt(0).astype(int)
    c = x.T @ x
    n = np.diag(c.to_numpy())
    pairs = []
    for i, a in enumerate(cats):
        for j, b in enumerate(cats):
            if i != j and c.iloc[i, j] > 0:
                nab = int(c.iloc[i, j])
                pairs.append(dict(a=a, b=b, nab=nab, na=int(n[i]), nb=int(n[j]),
                                  conf=nab / n[i], sb=n[j] / n_total,
                                  lift=nab * n_total / (n[i] * n[j]),
                                  p=stats.hypergeom.sf(nab - 1, n_total, n[i], n[j])))
    pr = pd.DataFrame(pairs)
    m = k * (k - 1) // 2
    unordered = pr[pr.a < pr.b].set_index(["a", "b"]).p
    pvals = np.concatenate([unordered.to_numpy(), np.ones(m - len(unordered))])
    q_all = stats.false_discovery_control(pvals)
    q = dict(zip(unordered.index, q_all[: len(unordered)], strict=True))
    pr["q"] = [q[tuple(sorted((a, b)))] for a, b in zip(pr.a, pr.b, strict=True)]
    pr["uplift"] = pr.conf - pr.sb
    pr["sig"] = (pr.nab >= settings.min_pair_customers) & (pr.q <= settings.fdr_alpha) & (pr.lift > 1)
    z = stats.norm.isf(settings.fdr_alpha * ((q_all <= settings.fdr_alpha).sum() + 1) / m)
    stat = pr.set_index(["a", "b"])
    base = paid.groupby("category").customer_id.nunique() / n_total
    aov = paid.groupby("category").apply(lambda g: g.amount.sum() / g.order_id.nunique(),
                                         include_groups=False)
    out = []
    for merchant, g in paid.groupby("merchant_id"):
        bought = g.groupby("customer_id").category.apply(set)
        unsold = [b for b in cats if b not in set(g.category)]
        recs = []
        for b in unsold:
            row = dict(merchant_id=merchant, category=b)
            for kind, mask in (("sig", pr.sig), ("obs", pr.lift > 1)):
                up = pr[mask & (pr.b == b)].set_index("a").uplift
                contrib: dict[str, float] = {}
                for held in bought:
                    best = sorted((-up[a], a) for a in held if a in up.index)
                    if best:
                        contrib[best[0][1]] = contrib.get(best[0][1], 0.0) - best[0][0]
                row[kind] = sum(contrib.values())
                row[f"{kind}_lead"] = min(contrib, key=lambda a: (-contrib[a], a)) if contrib else None
            row["gmv"], row["gmv_obs"] = row["sig"] * aov[b], row["obs"] * aov[b]
            row["base"] = base[b]
            recs.append(row)
        r = pd.DataFrame(recs).sort_values(["gmv", "gmv_obs", "base", "category"],
                                           ascending=[False, False, False, True]).head(10)
        r["rank"] = range(1, len(r) + 1)
        out.append(r)
    e = pd.concat(out, ignore_index=True)
    e["lead"] = e.sig_lead.where(e.sig > 0, e.obs_lead)
    tiers, needed = [], []
    for row in e.itertuples():
        s = stat.loc[(row.lead, row.category)] if isinstance(row.lead, str) else None
        if row.sig > 0:
            tiers.append("significant")
            needed.append(None)
        elif s is not None and s.nab >= settings.min_pair_customers and s.p <= settings.fdr_alpha:
            tiers.append("suggestive")
            needed.append(None)
        else:
            tiers.append("insufficient_data")
            if s is None:
                needed.append(None)
                continue
            se = np.sqrt(1 / s.nab - 1 / s.na + 1 / s.nb - 1 / n_total)
            needed.append(max(settings.min_pair_customers, s.nab + 1,
                              int(np.ceil(s.nab * (z * se / np.log(s.lift)) ** 2))))
    e["tier"], e["needed"] = tiers, needed
    return e


def test_every_merchant_gets_ranked_candidates_with_tiers_like_pandas():
    rows = _tier_rows()
    con = duckdb.connect()
    ensure_schema(con)
    insert_staging(con, "orders", rows)
    build_category_affinity(con, TIER_SETTINGS)
    build_expansion_recommendations(con, TIER_SETTINGS)
    rec = con.execute("SELECT * FROM marts.expansion_recommendations "
                      "ORDER BY merchant_id, rank").df()
    e = _pandas_expansion(rows, TIER_SETTINGS).sort_values(["merchant_id", "rank"])
    # min(10, unsold categories) rows per merchant
    assert rec.groupby("merchant_id").size().to_dict() == {"m_big": 10, "m_mid": 7, "m_rest": 7}
    assert list(rec.category) == list(e.category) and list(rec["rank"]) == list(e["rank"])
    np.testing.assert_allclose(rec.expected_buyers, e.sig, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rec.expected_buyers_observed, e.obs, rtol=1e-9, atol=1e-12)
    assert list(rec.lead_category.fillna("-")) == list(e.lead.fillna("-"))
    assert list(rec.confidence_tier) == list(e.tier)
    assert list(rec.customers_needed.astype("Int64")) == list(pd.array(e.needed, dtype="Int64"))
    assert set(rec.confidence_tier) == set(TIERS)  # the world exercises every tier
    assert expansion_problems(con) == NO_PROBLEMS
    # the reasons say the numbers in words, in each language
    sig = rec[rec.confidence_tier == "significant"].iloc[0]
    assert sig.reason_zh == (f"买{sig.lead_category}的客户中 {100 * sig.lead_confidence:.1f}% 也买"
                             f"{sig.category}，是平均水平的 {sig.lead_lift:.{2 if sig.lead_lift < 1.1 else 1}f} 倍"
                             f"（{sig.lead_n_ab:,} 位共同客户）。")
    assert sig.reason_en.startswith(f"{100 * sig.lead_confidence:.1f}% of customers who buy ")
    low = rec[rec.customers_needed.notna()].iloc[0]
    assert f"{int(low.customers_needed):,} 位共同客户才能确认" in low.reason_zh
    assert f"about {int(low.customers_needed):,} would be needed" in low.reason_en


def test_the_mart_does_not_depend_on_the_order_the_lines_arrive_in(pipeline_run: dict,
                                                                   tmp_path: Path) -> None:
    """Rebuilt over the same paid lines stored in another order and on one thread, the mart
    is identical to the last float bit: its expected-buyer sums are compensated (fsum), so a
    daily rebuild equals a from-scratch one whatever order DuckDB's threads deliver rows in."""
    db = tmp_path / "wh.duckdb"
    shutil.copyfile(pipeline_run["warehouse"], db)
    db.chmod(0o644)
    con = connect(db)
    settings = Settings()
    assert build_expansion_recommendations(con, settings) > 0
    con.execute("CREATE TABLE ref AS SELECT * FROM marts.expansion_recommendations")
    con.execute("CREATE OR REPLACE TABLE graph.attributed_orders AS "
                "SELECT * FROM graph.attributed_orders ORDER BY hash(order_id, line_no)")
    con.execute("SET threads = 1")
    build_expansion_recommendations(con, settings)
    for a, b in (("marts.expansion_recommendations", "ref"), ("ref", "marts.expansion_recommendations")):
        extra = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]
        assert extra == 0, f"{extra} rows of {a} not in {b}"
    con.close()


def test_the_mart_does_not_depend_on_the_chunks_of_its_uplift_sums(pipeline_run: dict,
                                                                   tmp_path: Path, monkeypatch) -> None:
    """The per-customer maxima are taken in chunks of target categories (bounded memory):
    built in many chunks, the mart equals the one-pass mart to the last float bit."""
    from sharegraph.metrics import expansion

    db = tmp_path / "wh.duckdb"
    shutil.copyfile(pipeline_run["warehouse"], db)
    db.chmod(0o644)
    con = connect(db)
    settings = Settings()
    monkeypatch.setattr(expansion, "CHUNK_ROWS", 10**12)
    assert build_expansion_recommendations(con, settings) > 0
    con.execute("CREATE TABLE ref AS SELECT * FROM marts.expansion_recommendations")

    class Recording:  # the connection, noting the chunk tables it is asked to build
        chunks: set[str] = set()

        def __getattr__(self, name):
            return getattr(con, name)

        def execute(self, sql, *args):
            self.chunks.update(w for w in sql.split() if w.startswith("_exp_contrib_"))
            return con.execute(sql, *args)

    monkeypatch.setattr(expansion, "CHUNK_ROWS", 40)
    recording = Recording()
    build_expansion_recommendations(recording, settings)
    assert len(recording.chunks) > 5
    for a, b in (("marts.expansion_recommendations", "ref"), ("ref", "marts.expansion_recommendations")):
        extra = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]
        assert extra == 0, f"{extra} rows of {a} not in {b}"
    con.close()
