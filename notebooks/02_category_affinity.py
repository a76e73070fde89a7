# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Category affinity and expansion (品类关联与扩品)
#
# **Purpose.** What do a category's buyers also buy, what do they buy *next*, what do shares
# of one category lead people to buy — and so which categories should a merchant add and
# which of its own fit its line badly? This notebook reads the affinity marts of the
# *published* warehouse (read-only): top pairs by lift with their significance, the
# directional (A then B) and social spill-over (clicked a share of A, bought B) marts, one
# merchant's expansion recommendations with the evidence behind them, weak categories, and
# a polars pivot of lift as a category × category matrix. Definitions: `docs/affinity.md`.
#
# **How to open.** It is a jupytext percent script:
# - as a notebook: `jupytext --to notebook notebooks/02_category_affinity.py`
#   then open the `.ipynb` in Jupyter;
# - as a script: `SHAREGRAPH_WAREHOUSE=state/sharegraph.duckdb
#   .venv/bin/python notebooks/02_category_affinity.py`.
#
# The warehouse path comes from `SHAREGRAPH_WAREHOUSE` (default `state/sharegraph.duckdb`);
# set `SHAREGRAPH_MERCHANT` to look at one merchant (default: the merchant whose best
# recommendation is worth the most). The `assert`s recompute metrics from their counts and
# from the order lines, so executing this notebook is a test.

# %%
import os

import polars as pl

from sharegraph.notebook import open_published

pl.Config.set_tbl_rows(20)
pl.Config.set_tbl_cols(12)
pl.Config.set_tbl_width_chars(160)
pl.Config.set_fmt_str_lengths(80)

# The published warehouse, read-only (SHAREGRAPH_WAREHOUSE, default state/sharegraph.duckdb),
# and the run's Settings.
WAREHOUSE, settings, con = open_published()


def q(sql: str, params: list | None = None) -> pl.DataFrame:
    """Run SQL on the warehouse and return a polars frame (via Arrow)."""
    return con.sql(sql, params=params).pl()


# %% [markdown]
# ## 1. Top pairs by lift (customer basis, all merchants)
# `lift = n_ab · n_total / (n_a · n_b)`: how much more often A's buyers buy B than customers
# at large (1 = independence). `lift_ci_low/high` is its 95% interval; `q_value` the
# Benjamini–Hochberg adjusted one-sided Fisher p-value; `is_significant` = at least
# `min_pair_customers` co-buyers, q ≤ `fdr_alpha` and lift > 1. A customer pair is
# symmetric, so we show each unordered pair once (A < B).

# %%
affinity = q(
    """
    SELECT category_a, category_b, n_a, n_b, n_ab, n_total, support, confidence, lift,
           lift_ci_low, lift_ci_high, leverage, conviction, p_value, q_value,
           meets_min_count, is_significant
    FROM marts.category_affinity WHERE scope = 'all' AND basis = 'customer'
    """
)
top_pairs = (
    affinity.filter(pl.col("category_a") < pl.col("category_b"), pl.col("meets_min_count"))
    .sort(["lift", "category_a", "category_b"], descending=[True, False, False])
    .select("category_a", "category_b", "n_ab", "lift", "lift_ci_low", "lift_ci_high",
            "q_value", "is_significant")
)
print(f"{affinity.height} ordered pairs co-bought; {affinity['is_significant'].sum()} significant")
print(top_pairs.head(12))

# %%
# Invariants: lift from its counts; symmetry of the customer basis; significance rule.
recomputed = affinity.with_columns(
    lift_check=pl.col("n_ab") * pl.col("n_total") / (pl.col("n_a") * pl.col("n_b")),
    conf_check=pl.col("n_ab") / pl.col("n_a"),
)
assert ((recomputed["lift"] - recomputed["lift_check"]).abs() < 1e-9).all()
assert ((recomputed["confidence"] - recomputed["conf_check"]).abs() < 1e-12).all()
mirror = affinity.join(affinity, left_on=["category_a", "category_b"],
                       right_on=["category_b", "category_a"], suffix="_rev")
assert mirror.height == affinity.height
assert ((mirror["lift"] - mirror["lift_rev"]).abs() < 1e-9).all()
sig = affinity.filter("is_significant")
assert sig.height == 0 or (
    (sig["q_value"] <= settings.fdr_alpha).all() and (sig["lift"] > 1).all()
    and (sig["n_ab"] >= settings.min_pair_customers).all()
)
assert affinity.select(pl.col("lift").is_between(pl.col("lift_ci_low"), pl.col("lift_ci_high"))
                       .all()).item()

# %%
# Cross-check the top pair against the order lines themselves (customers who bought both).
best = top_pairs.row(0, named=True)
direct = q(
    """
    WITH lines AS (SELECT DISTINCT customer_id, category FROM graph.attributed_orders
                   WHERE is_paid AND category IS NOT NULL)
    SELECT (SELECT count(DISTINCT customer_id) FROM lines) AS n_total,
           count(*) FILTER (WHERE has_a) AS n_a, count(*) FILTER (WHERE has_b) AS n_b,
           count(*) FILTER (WHERE has_a AND has_b) AS n_ab
    FROM (SELECT customer_id, bool_or(category = $1) AS has_a, bool_or(category = $2) AS has_b
          FROM lines GROUP BY customer_id)
    """,
    [best["category_a"], best["category_b"]],
).row(0, named=True)
print(f"top pair {best['category_a']} × {best['category_b']}: from order lines {direct}")
assert direct["n_ab"] == best["n_ab"]
lift_direct = direct["n_ab"] * direct["n_total"] / (direct["n_a"] * direct["n_b"])
assert abs(lift_direct - best["lift"]) < 1e-9

# %% [markdown]
# ## 2. Lift as a matrix (polars pivot)
# Rows = category A, columns = category B, cells = lift over customers (blank = never
# co-bought, diagonal blank by definition). Restricted to the 10 categories with the most
# buyers to stay readable.

# %%
top_cats = (
    affinity.group_by("category_a").agg(n=pl.col("n_a").first())
    .sort(["n", "category_a"], descending=[True, False]).head(10)["category_a"].to_list()
)
matrix = (
    affinity.filter(pl.col("category_a").is_in(top_cats), pl.col("category_b").is_in(top_cats))
    .pivot(on="category_b", index="category_a", values="lift", sort_columns=True)
    .sort("category_a")
    .with_columns(pl.exclude("category_a").round(2))
)
print(matrix)
# symmetric: cell (A, B) equals cell (B, A)
long = matrix.unpivot(index="category_a", variable_name="category_b", value_name="lift")
sym = long.join(long, left_on=["category_a", "category_b"], right_on=["category_b", "category_a"])
assert (sym["lift"].fill_null(-1) == sym["lift_right"].fill_null(-1)).all()

# %% [markdown]
# ## 3. Directional affinity: A first, then B within N days
# `rate_b_after_a` = share of A's customers who buy B within `window_days` of their first A;
# `base_rate_b` = share of all customers who buy B within N days of any first purchase;
# `lift` = their ratio, with a one-sided binomial test (BH-adjusted).

# %%
directional = q(
    """
    SELECT category_a, category_b, window_days, n_a, n_a_then_b, rate_b_after_a, base_rate_b,
           lift, q_value, is_significant
    FROM marts.directional_affinity WHERE scope = 'all'
    ORDER BY is_significant DESC, lift DESC, category_a, category_b
    """
)
print(directional.head(10))
assert ((directional["rate_b_after_a"] - directional["n_a_then_b"] / directional["n_a"]).abs()
        < 1e-12).all()
assert ((directional["lift"] - directional["rate_b_after_a"] / directional["base_rate_b"]).abs()
        < 1e-9).all()

# %%
# Is the order asymmetric? Compare A -> B with B -> A for the significant directional pairs.
asym = (
    directional.filter("is_significant")
    .join(directional.select("category_a", "category_b", pl.col("lift").alias("lift_b_then_a")),
          left_on=["category_a", "category_b"], right_on=["category_b", "category_a"], how="left")
    .select("category_a", "category_b", "lift", "lift_b_then_a")
)
print(asym.head(10))

# %% [markdown]
# ## 4. Social spill-over: clicked a share of A, then bought B
# Among people who clicked a shared A product, how many bought B within `window_days`,
# compared with clickers in general. `same_category` rows are plain conversion; the
# cross-category rows are the spill-over.

# %%
spill = q(
    """
    SELECT shared_category, bought_category, same_category, n_clickers_a, n_a_then_b,
           rate_b_after_a, base_rate_b, lift, q_value, is_significant
    FROM marts.spillover_affinity
    ORDER BY is_significant DESC, lift DESC, shared_category, bought_category
    """
)
print(spill.group_by("same_category")
      .agg(pairs=pl.len(), significant=pl.col("is_significant").sum(),
           median_lift=pl.col("lift").median())
      .sort("same_category"))
print(spill.filter(~pl.col("same_category")).head(10))
assert ((spill["rate_b_after_a"] - spill["n_a_then_b"] / spill["n_clickers_a"]).abs() < 1e-12).all()
assert (spill["same_category"] == (spill["shared_category"] == spill["bought_category"])).all()

# %% [markdown]
# ## 5. Expansion recommendations for one merchant
# Categories the merchant does not sell, ranked by expected incremental GMV from its own
# customers: `expected_buyers` (Σ over its customers of the best significant uplift
# confidence(A→B) − support(B)) × `avg_order_value_yuan` (¥). The evidence columns name the
# pairs A → B that carry the recommendation.

# %%
recs = q(
    """
    SELECT merchant_id, rank, category, n_merchant_customers, n_customers_with_uplift,
           expected_buyers, avg_order_value_yuan, expected_incremental_gmv_yuan, evidence,
           evidence_categories, evidence_lift, evidence_confidence, evidence_n_ab,
           evidence_q_value
    FROM marts.expansion_recommendations ORDER BY merchant_id, rank
    """
)
print(recs.group_by("merchant_id").agg(recommendations=pl.len(),
                                       best=pl.col("expected_incremental_gmv_yuan").max())
      .sort("merchant_id"))
merchant = os.environ.get("SHAREGRAPH_MERCHANT") or (
    recs.sort(["expected_incremental_gmv_yuan", "merchant_id"], descending=[True, False])
    ["merchant_id"][0] if recs.height else None
)
print(f"merchant: {merchant}")

# %%
if merchant is None:
    print("no expansion recommendations in this warehouse (no significant uplift pairs)")
else:
    mine = recs.filter(pl.col("merchant_id") == merchant)
    print(mine.select("rank", "category", "expected_buyers", "avg_order_value_yuan",
                      "expected_incremental_gmv_yuan", "evidence"))
    evidence = (
        mine.select("rank", "category", "evidence_categories", "evidence_lift",
                    "evidence_confidence", "evidence_n_ab", "evidence_q_value")
        .explode("evidence_categories", "evidence_lift", "evidence_confidence",
                 "evidence_n_ab", "evidence_q_value")
    )
    print(evidence)
    # a recommended category is one the merchant does not sell (no paid line, no product)
    sold = set(q("SELECT DISTINCT category FROM graph.attributed_orders WHERE merchant_id = $1 "
                 "AND is_paid AND category IS NOT NULL UNION SELECT DISTINCT category "
                 "FROM staging.products WHERE merchant_id = $1", [merchant])["category"])
    assert not sold & set(mine["category"])
    # every evidence pair is a significant pair of the affinity mart with the same lift
    ev = evidence.join(affinity, left_on=["evidence_categories", "category"],
                       right_on=["category_a", "category_b"], how="left")
    assert ev["is_significant"].all()
    assert ((ev["evidence_lift"] - ev["lift"]).abs() < 1e-9).all()
    assert ((mine["expected_incremental_gmv_yuan"]
             - mine["expected_buyers"] * mine["avg_order_value_yuan"]).abs() < 1e-6).all()
    assert mine["rank"].to_list() == list(range(1, mine.height + 1))

# %% [markdown]
# ## 6. Weak categories
# A category is *weak* in a merchant's line when its buyers buy the rest of the line less
# than chance (`mean_lift_to_line` < 1) and fewer customers buy it than an average category
# (`share_of_customers` < 1/k).

# %%
weak = q(
    """
    SELECT merchant_id, category, n_categories, n_customers, share_of_customers,
           mean_lift_to_line, mean_lift_merchant, is_weak, weakness_rank
    FROM marts.weak_categories ORDER BY merchant_id, weakness_rank
    """
)
print(weak.filter("is_weak"))
flag = ((pl.col("mean_lift_to_line") < 1)
        & (pl.col("share_of_customers") < 1 / pl.col("n_categories")))
assert (weak["is_weak"] == weak.select(flag.fill_null(False).alias("rule"))["rule"]).all()
if merchant is not None:
    print(f"{merchant}'s line, weakest first:")
    print(weak.filter(pl.col("merchant_id") == merchant).drop("merchant_id"))

# %%
con.close()
