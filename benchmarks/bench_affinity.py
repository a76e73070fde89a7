"""Benchmark of the category-affinity stage against a hand-written DuckDB self-join and mlxtend.

Synthetic paid order lines (default 10M lines, 2M customers, 200 categories, 500 merchants),
written as ``graph.attributed_orders`` in a scratch DuckDB file. Timed side by side in one
process, each after a fresh warm-up-free build:

1. the stage: ``sharegraph.metrics.affinity.build_category_affinity`` (both bases, every scope, all
   metrics, p-values, q-values, comments);
2. hand-written SQL computing the same pair counts (n_ab for every scope and basis), with
   integer-encoded customers and categories, distinct (unit, category) first, self-join
   on the unit, then the marginals n_a, n_b and n_total joined on (the same counts table
   as the mart, without the statistics);
3. hand-written SQL for the overall customer-basis pair counts only (the textbook kernel);
   both peers count each unordered pair once (``a.cat < b.cat``), as the stage does, and
   the all-families peer mirrors them into ordered pairs at the end, as the stage does;
4. mlxtend ``apriori`` + ``association_rules`` on a sample of customers (default 100k),
   against the stage and hand-written SQL on the same sample.

``--world many`` is the many-categories world instead (400k lines, 50k customers, 20k
categories with Zipf-like popularity, 500 merchants of ~1,000 categories each, no mlxtend):
there the cost must follow the co-bought pairs, not categories^2; it also times the two
marts read from the affinity (weak categories, expansion recommendations).

Usage: ``.venv/bin/python benchmarks/bench_affinity.py [--world default|many] [--lines
10000000] [--customers 2000000] [--categories 200] [--sample 100000] [--repeats 2]
[--db /tmp/bench_affinity.duckdb]``
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.affinity import build_category_affinity
from sharegraph.metrics.expansion import build_expansion_recommendations, build_weak_categories

WORLDS = {
    "default": dict(lines=10_000_000, customers=2_000_000, categories=200, sample=100_000,
                    zipf=False, merchants=None),
    "many": dict(lines=400_000, customers=50_000, categories=20_000, sample=0, zipf=True,
                 merchants=500),
}
"""Presets of ``--world``; explicit ``--lines`` etc. override them."""


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def make_orders(con: duckdb.DuckDBPyConnection, lines: int, customers: int, categories: int,
                merchants_per_group: int = 25, group_size: int = 10, zipf: bool = False,
                merchants: int | None = None) -> None:
    """Synthetic ``graph.attributed_orders``: customers prefer one group of categories.

    60% of a customer's lines fall in their home group of ``group_size`` categories, the
    rest anywhere: uniformly, or with ``zipf`` Zipf-like (category k drawn with probability
    ~ 1/(k+1), log-uniform), as real catalogues have a few big and many tiny leaves. Each
    group is sold by ``merchants_per_group`` merchants, folded onto ``merchants`` merchant
    ids when given (so a merchant sells many groups); dates spread over one year.
    """
    groups = max(1, categories // group_size)
    other = (f"least(floor(exp((hash(i, 3) % 1000000000) / 1e9 * ln({categories} + 1)))::BIGINT"
             f" - 1, {categories} - 1)" if zipf else f"hash(i, 3) % {categories}")
    fold = f" % {merchants}" if merchants else ""
    con.execute(f"""
        CREATE OR REPLACE TABLE graph.attributed_orders AS
        WITH l AS (
            SELECT i, hash(i) % {customers} AS cust FROM range({lines}) t(i)
        ), c AS (
            SELECT i, cust,
                   CASE WHEN hash(i, 1) % 10 < 6
                        THEN (hash(cust, 7) % {groups}) * {group_size} + hash(i, 2) % {group_size}
                        ELSE {other} END AS cat
            FROM l
        )
        SELECT 'o' || i AS order_id, 1 AS line_no, 'c' || cust AS customer_id,
               'm' || (((cat // {group_size}) * {merchants_per_group}
                        + hash(cust, 4) % {merchants_per_group}){fold}) AS merchant_id,
               'k' || cat AS category,
               TIMESTAMP '2025-01-01' + to_seconds((hash(i, 5) % (365 * 86400))::BIGINT)
                   AS ordered_at,
               (10 + hash(i, 6) % 500)::DECIMAL(18, 2) AS amount, true AS is_paid
        FROM c""")


HAND_ENCODE = """
    CREATE OR REPLACE TEMP TABLE h_cat AS
    SELECT category, (row_number() OVER (ORDER BY category))::INTEGER AS cat
    FROM (SELECT DISTINCT category FROM graph.attributed_orders WHERE is_paid);
    CREATE OR REPLACE TEMP TABLE h_mer AS
    SELECT merchant_id, row_number() OVER ()::INTEGER AS mid
    FROM (SELECT DISTINCT merchant_id FROM graph.attributed_orders WHERE is_paid);
    CREATE OR REPLACE TEMP TABLE h_cust AS
    SELECT customer_id, row_number() OVER ()::BIGINT AS cid
    FROM (SELECT DISTINCT customer_id FROM graph.attributed_orders WHERE is_paid);
"""

HAND_ALL_FAMILIES = HAND_ENCODE + """
    CREATE OR REPLACE TEMP TABLE h_enc AS
    SELECT DISTINCT c.cid, m.mid, k.cat, CAST(o.ordered_at AS DATE) AS d
    FROM graph.attributed_orders o JOIN h_cust c USING (customer_id)
    JOIN h_mer m USING (merchant_id) JOIN h_cat k USING (category) WHERE o.is_paid;
    CREATE OR REPLACE TEMP TABLE h_items AS
    SELECT DISTINCT 0 AS fam, cid AS unit, cat FROM h_enc
    UNION ALL SELECT DISTINCT 2 * mid, cid, cat FROM h_enc
    UNION ALL SELECT DISTINCT 1, cid * 4194304 + (d - DATE '1970-01-01'), cat FROM h_enc
    UNION ALL SELECT DISTINCT 2 * mid + 1, cid * 4194304 + (d - DATE '1970-01-01'), cat
              FROM h_enc;
    CREATE OR REPLACE TEMP TABLE h_pairs AS
    SELECT a.fam, a.cat AS cat_a, b.cat AS cat_b, count(*) AS n_ab
    FROM h_items a JOIN h_items b ON a.fam = b.fam AND a.unit = b.unit AND a.cat < b.cat
    GROUP BY ALL;
    CREATE OR REPLACE TEMP TABLE h_counts AS
    WITH marg AS (SELECT fam, cat, count(*) AS n FROM h_items GROUP BY ALL),
    tot AS (SELECT fam, count(DISTINCT unit) AS n_total FROM h_items GROUP BY ALL),
    once AS (
        SELECT p.fam, p.cat_a, p.cat_b, ma.n AS n_a, mb.n AS n_b, p.n_ab, t.n_total
        FROM h_pairs p JOIN marg ma ON ma.fam = p.fam AND ma.cat = p.cat_a
        JOIN marg mb ON mb.fam = p.fam AND mb.cat = p.cat_b JOIN tot t ON t.fam = p.fam)
    SELECT * FROM once
    UNION ALL SELECT fam, cat_b, cat_a, n_b, n_a, n_ab, n_total FROM once;
"""

HAND_OVERALL = HAND_ENCODE + """
    CREATE OR REPLACE TEMP TABLE h_cc AS
    SELECT DISTINCT c.cid, k.cat
    FROM graph.attributed_orders o JOIN h_cust c USING (customer_id)
    JOIN h_cat k USING (category) WHERE o.is_paid;
    CREATE OR REPLACE TEMP TABLE h_pairs1 AS
    SELECT a.cat AS cat_a, b.cat AS cat_b, count(*) AS n_ab
    FROM h_cc a JOIN h_cc b ON a.cid = b.cid AND a.cat < b.cat GROUP BY ALL;
"""


def timed(label: str, fn) -> float:
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    print(f"  {label:<58s} {dt:8.2f} s   (peak RSS so far {_rss_gib():.1f} GiB)", flush=True)
    return dt


def run_sql(con: duckdb.DuckDBPyConnection, script: str) -> None:
    for stmt in (s.strip() for s in script.split(";")):
        if stmt:
            con.execute(stmt)


def bench_mlxtend(con: duckdb.DuckDBPyConnection, sample: int) -> tuple[float, float, float]:
    """mlxtend on ``sample`` customers vs the stage and hand-written SQL on the same sample."""
    import pandas as pd
    from mlxtend.frequent_patterns import apriori, association_rules

    con.execute(f"""
        CREATE OR REPLACE TABLE graph.full_orders AS SELECT * FROM graph.attributed_orders;
        CREATE OR REPLACE TABLE graph.attributed_orders AS
        SELECT * FROM graph.full_orders
        WHERE customer_id IN (SELECT DISTINCT customer_id FROM graph.full_orders
                              ORDER BY hash(customer_id) LIMIT {sample})""")
    settings = Settings(min_pair_customers=1)
    t_stage = timed(f"stage on {sample:,} customers",
                    lambda: build_category_affinity(con, settings))
    t_hand = timed(f"hand-written SQL, all families, {sample:,} customers",
                   lambda: run_sql(con, HAND_ALL_FAMILIES))
    t_hand1 = timed(f"hand-written SQL, overall customers only, {sample:,}",
                    lambda: run_sql(con, HAND_OVERALL))

    def mlx() -> None:
        cc = con.execute("SELECT DISTINCT customer_id, category FROM graph.attributed_orders"
                         ).df()
        onehot = pd.crosstab(cc.customer_id, cc.category).gt(0)
        freq = apriori(onehot, min_support=1.0 / len(onehot), max_len=2, use_colnames=True)
        rules = association_rules(freq, num_itemsets=len(onehot), metric="support",
                                  min_threshold=0.0)
        print(f"    mlxtend rules: {len(rules):,}")

    t_mlx = timed(f"mlxtend apriori + association_rules, {sample:,} customers", mlx)
    n_ours = con.execute("SELECT count(*) FROM marts.category_affinity WHERE scope = 'all' "
                         "AND basis = 'customer'").fetchall()[0][0]
    print(f"    stage rules (scope all, customer basis): {n_ours:,}")
    con.execute("CREATE OR REPLACE TABLE graph.attributed_orders AS "
                "SELECT * FROM graph.full_orders")
    return t_mlx / t_stage, t_mlx / t_hand, t_mlx / t_hand1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", choices=sorted(WORLDS), default="default",
                    help="preset: default (10M lines, 200 categories) or many (20k categories)")
    ap.add_argument("--lines", type=int)
    ap.add_argument("--customers", type=int)
    ap.add_argument("--categories", type=int)
    ap.add_argument("--sample", type=int,
                    help="customers for the mlxtend comparison (0 = skip)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="timings of the stage and the peer each (interleaved; best and median)")
    ap.add_argument("--db", default=None, help="scratch DuckDB file (default: a temp dir)")
    ap.add_argument("--steps", action="store_true", help="log the stage's SQL step timings")
    args = ap.parse_args()
    world = WORLDS[args.world]
    for key in ("lines", "customers", "categories", "sample"):
        if getattr(args, key) is None:
            setattr(args, key, world[key])
    if args.steps:
        logging.basicConfig(format="    step %(message)s")
        logging.getLogger("sharegraph.metrics.affinity").setLevel(logging.DEBUG)

    tmp = tempfile.TemporaryDirectory(prefix="bench_affinity_")
    db = Path(args.db or os.path.join(tmp.name, "bench.duckdb"))
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    ensure_schema(con)
    print(f"affinity benchmark: {args.lines:,} lines, {args.customers:,} customers, "
          f"{args.categories} categories; duckdb {duckdb.__version__}, "
          f"{os.cpu_count()} CPUs", flush=True)
    timed("generate synthetic graph.attributed_orders",
          lambda: make_orders(con, args.lines, args.customers, args.categories,
                              zipf=world["zipf"], merchants=world["merchants"]))
    settings = Settings()
    t_stages, t_hands = [], []
    for i in range(max(1, args.repeats)):
        again = " again" if i else ""
        t_stages.append(timed(f"stage{again}: build_category_affinity (2 bases x all scopes)",
                              lambda: build_category_affinity(con, settings)))
        t_hands.append(timed(f"hand-written SQL{again}: same pair counts (2 bases x all scopes)",
                             lambda: run_sql(con, HAND_ALL_FAMILIES)))
    if args.world == "many":
        timed("weak categories (reads the affinity)",
              lambda: build_weak_categories(con, settings))
        timed("expansion recommendations (reads the affinity)",
              lambda: build_expansion_recommendations(con, settings))
    t_hand1 = timed("hand-written SQL: overall customer-basis pair counts only",
                    lambda: run_sql(con, HAND_OVERALL))
    rows = con.execute("SELECT basis, count(*), count(DISTINCT scope) FROM "
                       "marts.category_affinity GROUP BY 1").fetchall()
    hand_rows = con.execute("SELECT count(*) FROM h_counts").fetchall()[0][0]
    print(f"  rows: stage {rows} (ordered pairs); hand-written {hand_rows:,} ordered pairs")
    stage, hand = min(t_stages), min(t_hands)
    print(f"  stage median {statistics.median(t_stages):.2f} s, hand-written median "
          f"{statistics.median(t_hands):.2f} s")
    print(f"  stage / hand-written (same pair counts, best of {len(t_stages)}): "
          f"{stage / hand:.2f}x (target <= 1.2x)")
    print(f"  stage / overall-only kernel: {stage / t_hand1:.2f}x")
    if args.sample:
        r_stage, r_hand, r_hand1 = bench_mlxtend(con, args.sample)
        print(f"  mlxtend time / stage time on the sample: {r_stage:.1f}x; "
              f"/ hand-written all families: {r_hand:.1f}x; / overall kernel: {r_hand1:.1f}x")
    print(f"peak RSS {_rss_gib():.1f} GiB")
    con.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
