"""Cross-category affinity: what else do a category's buyers buy, and what do shares lead to.

Three marts, all over *paid* order lines with the category resolved
(``COALESCE(orders.category, products.category)``, see docs/affinity.md):

- ``marts.category_affinity``: co-purchase association rules A -> B over customers and over
  baskets (customer x local calendar day), per merchant and overall, with support,
  confidence, lift, leverage, conviction, a one-sided hypergeometric (Fisher) p-value,
  Benjamini-Hochberg q-values and a 95% log-lift interval. Definitions as in Agrawal et al.
  (1993) and Brin et al. (1997); they agree with ``mlxtend.frequent_patterns.association_rules``.
- ``marts.directional_affinity``: A *then* B within ``Settings.affinity_window_days``.
- ``marts.spillover_affinity``: a click on a shared category-A product, then a purchase of
  category B by the clicker within ``Settings.spillover_window_days``.

The pair counts are one integer self-join (customers and categories dense-encoded, distinct
(unit, category) first); the statistics are vectorised NumPy / SciPy over the pair rows.
Every count is of people (or of one person's baskets), so after a daily load the ``refresh_*``
functions update kept counts per person and recompute the statistics from them
(:func:`_refresh_counted`, docs/performance.md#daily-runs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import duckdb
import numpy as np
import polars as pl

from sharegraph.core import increments
from sharegraph.core.config import Settings
from sharegraph.core.sql import table_exists
from sharegraph.core.warehouse import comment_table, finish_table
from sharegraph.graph import attribution, paid_lines
from sharegraph.graph.products import line_merchant_sql, product_lookup_sql
from sharegraph.graph.shares import NODES, NODES_INPUTS, SHARE_EVENTS
from sharegraph.metrics.tails import binom_sf, hypergeom_sf

log = logging.getLogger(__name__)

ALL_SCOPE = "all"
"""``scope`` value of the rows computed over every merchant together."""
_DAY_BITS = 4_194_304  # 2**22 days: basket unit = customer code * 2**22 + days since 1970
_Z95 = 1.959963984540054


# --------------------------------------------------------------------------- inputs


def paid_lines_sql(con: duckdb.DuckDBPyConnection) -> str:
    """SQL of the paid order lines affinity is computed over.

    One row per paid order line with a known category: customer_id, merchant_id, order_id,
    category, ordered_at (local wall time), amount (¥). Reads ``graph.attributed_orders``
    (the shared contract: ``is_paid`` and the resolved category, sharegraph/graph/paid_lines.py)
    when the attribution stage has built it, else the same shape from ``staging.orders`` +
    ``staging.products``. Refunded and cancelled lines are excluded: they are not purchases.
    """
    if table_exists(con, "graph.attributed_orders"):
        return paid_lines.PAID_LINES
    return f"""
        SELECT o.customer_id, {line_merchant_sql()} AS merchant_id,
               o.order_id, COALESCE(o.category, p.category) AS category, o.ordered_at, o.amount
        FROM staging.orders o
        LEFT JOIN ({product_lookup_sql()}) p USING (product_id)
        WHERE COALESCE(o.status, 'paid') = 'paid'
          AND COALESCE(o.category, p.category) IS NOT NULL AND o.customer_id IS NOT NULL"""


def _exec(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run one statement, logging its duration at DEBUG (the benchmark reads these)."""
    t = time.perf_counter()
    con.execute(sql)
    log.debug("%.2f s  %s", time.perf_counter() - t, " ".join(sql.split())[:80])


# --------------------------------------------------------------------------- statistics


def hypergeom_pvalue(n_ab: np.ndarray, n_total: np.ndarray, n_a: np.ndarray,
                     n_b: np.ndarray) -> np.ndarray:
    """One-sided p-value of over-representation, P(X >= n_ab).

    X ~ Hypergeometric(population n_total, n_a successes, n_b draws): the number of B buyers
    who also bought A if B's buyers were drawn at random. Equal to the one-sided
    (``alternative='greater'``) Fisher exact test of the 2x2 table of A and B.
    """
    n_ab = np.asarray(n_ab, dtype=np.int64)
    if n_ab.size == 0:
        return np.zeros(0)
    return hypergeom_sf(n_ab - 1, n_total, n_a, n_b)


def binom_pvalue(k: np.ndarray, n: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """One-sided p-value P(X >= k), X ~ Binomial(n, p0): more B buyers than the base rate."""
    k = np.asarray(k, dtype=np.int64)
    if k.size == 0:
        return np.zeros(0)
    return binom_sf(k - 1, n, p0)


def bh_qvalues(p: np.ndarray, family: np.ndarray | None = None,
               m: np.ndarray | None = None) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (q-values), per family of hypotheses.

    ``family`` groups the tests (default: one family); ``m`` is, per test, the size of its
    family when that exceeds the tests given (untested hypotheses count with p = 1: they
    take the last ranks and so only enter through m). q_(i) = min_{j >= i} p_(j) m / j.
    """
    p = np.asarray(p, dtype=float)
    n = p.size
    if n == 0:
        return np.zeros(0)
    fam = np.zeros(n, dtype=np.int64) if family is None else np.asarray(family)
    _, fam = np.unique(fam, return_inverse=True)
    order = np.lexsort((p, fam))
    fam_s, p_s = fam[order], p[order]
    starts = np.r_[0, np.flatnonzero(np.diff(fam_s)) + 1]
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes) + 1
    if m is None:
        m_s = np.repeat(sizes, sizes).astype(float)
    else:
        m_s = np.maximum(np.asarray(m, dtype=float)[order], np.repeat(sizes, sizes))
    raw = np.minimum(p_s * m_s / rank, 1.0)
    # Segmented reverse cumulative minimum, exact: replace each value by its integer rank
    # among all values, then shift family f down by n * (max - f). Along the reversed array
    # families come in decreasing order, so every key of a later family lies below all
    # earlier keys and the running minimum never crosses a family boundary.
    by_value = np.argsort(raw, kind="stable")
    vrank = np.empty(n, dtype=np.int64)
    vrank[by_value] = np.arange(n)
    shift = n * (fam_s.max() - fam_s[::-1]).astype(np.int64)
    key = np.minimum.accumulate(vrank[::-1] - shift) + shift
    q_s = raw[by_value][key][::-1]
    q = np.empty(n)
    q[order] = q_s
    return np.clip(q, 0.0, 1.0)


def _lift_ci_sql(z: float = _Z95) -> tuple[str, str]:
    """95% interval of lift by the log method (Katz et al. 1978 for a ratio of proportions).

    lift = (n_ab / n_a) / (n_b / N); Var(log lift) ~ 1/n_ab - 1/n_a + 1/n_b - 1/N, treating
    the two proportions as independent (conservative: A's buyers are part of all buyers,
    which correlates them positively and would shrink the variance).
    """
    se = "sqrt(greatest(1.0/n_ab - 1.0/n_a + 1.0/n_b - 1.0/n_total, 0.0))"
    return f"lift * exp(-{z} * {se})", f"lift * exp({z} * {se})"


# --------------------------------------------------------------------------- category affinity

CATEGORY_AFFINITY_COLUMNS = {
    "scope": "'all' (every merchant) or a merchant_id: whose customers / baskets are counted.",
    "basis": "'customer' (customer bought both, at any time) or 'basket' (same customer, same local calendar day).",
    "category_a": "Antecedent category A.",
    "category_b": "Consequent category B.",
    "n_a": "Units (customers or baskets) with a paid line in A, in this scope.",
    "n_b": "Units with a paid line in B, in this scope.",
    "n_ab": "Units with paid lines in both A and B, in this scope.",
    "n_total": "Units with any paid line with a category, in this scope.",
    "support": "n_ab / n_total, in [0, 1].",
    "support_a": "n_a / n_total (mlxtend 'antecedent support').",
    "support_b": "n_b / n_total (mlxtend 'consequent support').",
    "confidence": "n_ab / n_a = P(B | A), in [0, 1].",
    "lift": "confidence / support_b = n_ab n_total / (n_a n_b); 1 = independence.",
    "lift_ci_low": "Lower end of the 95% interval of lift: lift exp(-1.96 se), se^2 = 1/n_ab - 1/n_a + 1/n_b - 1/n_total.",
    "lift_ci_high": "Upper end of the 95% interval of lift: lift exp(+1.96 se).",
    "leverage": "support - support_a support_b, in [-0.25, 0.25].",
    "conviction": "(1 - support_b) / (1 - confidence); NULL when confidence = 1 (the rule never fails: mlxtend reports +inf).",
    "p_value": "One-sided hypergeometric (Fisher exact) p-value of over-representation, P(X >= n_ab), X ~ Hypergeom(n_total, n_a, n_b).",
    "q_value": "Benjamini-Hochberg q-value; family = every unordered pair of categories present in this scope and basis (pairs never co-bought count with p = 1).",
    "meets_min_count": "n_ab >= Settings.min_pair_customers (the minimum co-occurrence for a pair to be reported).",
    "is_significant": "meets_min_count and q_value <= Settings.fdr_alpha and lift > 1.",
}


def build_category_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Build ``marts.category_affinity``: one row per ordered category pair per scope per basis.

    Only pairs bought together at least once are stored (a pair never co-bought has lift 0
    and p = 1; it still counts in the Benjamini-Hochberg family). Returns the row count.
    """
    _encode_lines(con, paid_lines_sql(con))
    _count_units(con)
    return _publish_category_affinity(con, settings)


CATEGORY_COUNTS = "meta.category_affinity_counts"
"""The integer counts ``marts.category_affinity`` is computed from, kept for the next update."""

_CATEGORY_COUNTS_DOC = {
    "scope": "'all' or a merchant_id, as in marts.category_affinity.",
    "kind": "'customer' or 'basket' (the basis): category_a NULL: n is the units (n_total); "
            "category_b NULL: the units with a paid line in category_a (n_a); else the units "
            "with both (n_ab, category_a < category_b).",
    "category_a": "A category, or NULL.",
    "category_b": "The other category of a pair, or NULL.",
    "n": "Units (customers or baskets) counted, > 0.",
}


def refresh_category_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Bring ``marts.category_affinity`` up to date after a load, per customer when it can.

    Every count in the mart is of units (customers, or a customer's day), so counts add up
    over customers: :func:`_refresh_counted` updates :data:`CATEGORY_COUNTS` and the mart is
    then tested and written from all counts as a full build does. Equals
    :func:`build_category_affinity`.
    """
    def count(which: str, delta: increments.Delta | None) -> str:
        _encode_lines(con, _paid_lines_of(con, which))
        _count_units(con)
        return f"""
            SELECT CASE WHEN c.fam // 2 = 0 THEN '{ALL_SCOPE}' ELSE m.merchant_id END AS scope,
                   CASE WHEN c.fam % 2 = 0 THEN 'customer' ELSE 'basket' END AS kind,
                   ka.category AS category_a, kb.category AS category_b, c.n
            FROM (SELECT fam, cat_a, cat_b, n_ab AS n FROM _aff_pairs
                  UNION ALL SELECT fam, cat, NULL, n FROM _aff_marg
                  UNION ALL SELECT fam, NULL, NULL, n_total FROM _aff_units) c
            LEFT JOIN _aff_mer m ON m.mid = c.fam // 2
            LEFT JOIN _aff_cat ka ON ka.cat = c.cat_a
            LEFT JOIN _aff_cat kb ON kb.cat = c.cat_b"""

    def publish(full: bool) -> int:
        if not full:  # a full build's count('all') left the same temp tables, coded alike
            _load_category_counts(con)
        return _publish_category_affinity(con, settings)

    return _refresh_counted(con, "marts.category_affinity", CATEGORY_COUNTS, _CATEGORY_COUNTS_DOC,
                            count, publish, "category counts per customer v1")


def _refresh_counted(con: duckdb.DuckDBPyConnection, table: str, counts: str,
                     counts_doc: dict[str, str],
                     count: Callable[[str, increments.Delta | None], str],
                     publish: Callable[[bool], int], version: str, *,
                     inputs: tuple[str, ...] = paid_lines.INPUTS,
                     upstream: tuple[str | None, ...] = ()) -> int:
    """Bring a mart computed from per-customer counts up to date after a load.

    ``count(which, delta)`` stages what it needs and returns the SQL of the counts (scope,
    kind, category_a, category_b, n) of everyone (``which`` = 'all'), or of the customers the
    delta touches as they were ('before') or as they are ('after'). Each count is a number
    of customers, or of one customer's units, so counts add up over customers. A full build
    writes the counts of everyone to ``counts``; an update subtracts the touched customers'
    'before' counts and adds their 'after' ones. Either way ``publish(full)`` then computes
    the mart from ``counts`` alone (a full build may use what ``count('all')`` staged), so
    an update equals a rebuild. ``version`` names what the
    counts mean, settings included: another version rebuilds in full, as do no state, a
    table upstream (attribution, ``upstream`` ids) rebuilt, or a delta of paid lines other
    than the logged one (:func:`paid_lines.changes_match`).
    """
    ups = (increments.rebuild_id(con, attribution.TABLE, attribution.INPUTS), *upstream)
    fp = increments.fingerprint(paid_lines.PAID_LINES, version, f"upstream rebuilds {ups}")
    with increments.maintained(con, table, fp, inputs) as build:
        if build.delta and not (None not in ups and table_exists(con, counts)
                                and paid_lines.changes_match(con, build.delta)):
            build.rebuilt()
        if build.how == "full":
            _exec(con, f"CREATE OR REPLACE TABLE {counts} AS "
                       f"SELECT * FROM ({count('all', None)}) WHERE n > 0")
            comment_table(con, counts, f"The integer counts {table} is computed from, kept so "
                          "that a daily load updates them per person "
                          "(docs/performance.md#daily-runs).", counts_doc)
            return publish(True)
        if build.delta:
            for sign, which in ((-1, "before"), (1, "after")):
                _exec(con, f"""
                    CREATE OR REPLACE TABLE {counts} AS
                    SELECT scope, kind, category_a, category_b, sum(n)::BIGINT AS n
                    FROM (SELECT * FROM {counts}
                          UNION ALL SELECT scope, kind, category_a, category_b, {sign} * n
                          FROM ({count(which, build.delta)}))
                    GROUP BY ALL HAVING sum(n) <> 0""")
            _forget_counted_lines(con)
            return publish(False)
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _paid_lines_of(con: duckdb.DuckDBPyConnection, which: str) -> str:
    """SQL of the paid lines of everyone ('all'), or of the customers the last update touched
    as they were ('before') or are ('after'), staged in a temp table."""
    if which == "all":
        return paid_lines_sql(con)
    lines = paid_lines.BEFORE if which == "before" else paid_lines.AFTER
    _exec(con, f"CREATE OR REPLACE TEMP TABLE _counted_lines AS {lines}")
    return "SELECT * FROM _counted_lines"


def _forget_counted_lines(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what :func:`_paid_lines_of` staged, once the counts that read it are written."""
    con.execute("DROP TABLE IF EXISTS _counted_lines")


def _load_category_counts(con: duckdb.DuckDBPyConnection) -> None:
    """The temp tables a full build counts (``_aff_cat``, ``_aff_mer``, ``_aff_pairs``,
    ``_aff_marg``, ``_aff_units``) from :data:`CATEGORY_COUNTS`, with the codes a full build
    gives: categories and merchants numbered in name order."""
    _exec(con, f"""
        CREATE OR REPLACE TEMP TABLE _aff_cat AS
        SELECT category, (row_number() OVER (ORDER BY category) - 1)::INTEGER AS cat
        FROM (SELECT DISTINCT category_a AS category FROM {CATEGORY_COUNTS}
              WHERE category_a IS NOT NULL)""")
    _exec(con, f"""
        CREATE OR REPLACE TEMP TABLE _aff_mer AS
        SELECT merchant_id, row_number() OVER (ORDER BY merchant_id)::INTEGER AS mid
        FROM (SELECT DISTINCT scope AS merchant_id FROM {CATEGORY_COUNTS}
              WHERE scope <> '{ALL_SCOPE}')""")
    coded = f"""
        SELECT 2 * coalesce(m.mid, 0) + (s.kind = 'basket')::INTEGER AS fam,
               ka.cat AS cat_a, kb.cat AS cat_b, s.n
        FROM {CATEGORY_COUNTS} s
        LEFT JOIN _aff_mer m ON m.merchant_id = s.scope
        LEFT JOIN _aff_cat ka ON ka.category = s.category_a
        LEFT JOIN _aff_cat kb ON kb.category = s.category_b"""
    _exec(con, f"""CREATE OR REPLACE TEMP TABLE _aff_pairs AS
                   SELECT fam, cat_a, cat_b, n AS n_ab FROM ({coded}) WHERE cat_b IS NOT NULL""")
    _exec(con, f"""CREATE OR REPLACE TEMP TABLE _aff_marg AS
                   SELECT fam, cat_a AS cat, n FROM ({coded})
                   WHERE cat_a IS NOT NULL AND cat_b IS NULL""")
    _exec(con, f"""CREATE OR REPLACE TEMP TABLE _aff_units AS
                   SELECT fam, n AS n_total FROM ({coded}) WHERE cat_a IS NULL""")


def _publish_category_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Test the counted pairs and write the mart (drops the temp tables)."""
    _join_counts(con)
    _test_pairs(con)
    _write_category_affinity(con, settings)
    con.unregister("_aff_tests")
    for t in ("_aff_cat", "_aff_mer", "_aff_cust", "_aff_enc", "_aff_items",
              "_aff_pairs", "_aff_marg", "_aff_units", "_aff_fam", "_aff_counts"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return finish_table(
        con, "marts.category_affinity",
        "Co-purchase affinity A -> B: one row per ordered category pair per scope (all | "
        "merchant) per basis (customer | basket) bought together at least once. Paid lines "
        "only. See docs/affinity.md.",
        CATEGORY_AFFINITY_COLUMNS,
    )


def _encode_lines(con: duckdb.DuckDBPyConnection, src: str) -> None:
    """Temp tables of dense integer codes (``_aff_cat``, ``_aff_mer``, ``_aff_cust``) and
    ``_aff_enc``: distinct (customer, merchant, category, day) of the paid lines ``src``."""
    # Dense integer codes: merchants (0 = the 'all' scope), categories, customers.
    _exec(con, f"""
        CREATE OR REPLACE TEMP TABLE _aff_cat AS
        SELECT category, (row_number() OVER (ORDER BY category) - 1)::INTEGER AS cat
        FROM (SELECT DISTINCT category FROM ({src}))""")
    _exec(con, f"""
        CREATE OR REPLACE TEMP TABLE _aff_mer AS
        SELECT merchant_id, row_number() OVER (ORDER BY merchant_id)::INTEGER AS mid
        FROM (SELECT DISTINCT merchant_id FROM ({src}))""")
    _exec(con, f"""
        CREATE OR REPLACE TEMP TABLE _aff_cust AS
        SELECT customer_id, row_number() OVER ()::BIGINT AS cid
        FROM (SELECT DISTINCT customer_id FROM ({src}))""")
    # Distinct (customer, merchant, category, day) first: everything after is integer work.
    _exec(con, f"""
        CREATE OR REPLACE TEMP TABLE _aff_enc AS
        SELECT DISTINCT c.cid, m.mid, k.cat,
               c.cid * {_DAY_BITS} + (CAST(l.ordered_at AS DATE) - DATE '1970-01-01') AS bid
        FROM ({src}) l
        JOIN _aff_cust c USING (customer_id)
        JOIN _aff_mer m USING (merchant_id)
        JOIN _aff_cat k USING (category)""")


def _count_units(con: duckdb.DuckDBPyConnection) -> None:
    """Temp tables of counts per family from ``_aff_enc``: ``_aff_pairs`` (unordered
    co-bought pairs, n_ab), ``_aff_marg`` (units per category, n) and ``_aff_units`` (units,
    n_total). Every count is of units, and a unit is one customer's, so counts add up over
    customers."""
    # family = 2 * scope code + basis code (basis 0 = customer, 1 = basket)
    _exec(con, """
        CREATE OR REPLACE TEMP TABLE _aff_items AS
        SELECT DISTINCT 0 AS fam, cid AS unit, cat FROM _aff_enc
        UNION ALL SELECT DISTINCT 2 * mid, cid, cat FROM _aff_enc
        UNION ALL SELECT DISTINCT 1, bid, cat FROM _aff_enc
        -- (mid, bid, cat) is already unique in _aff_enc: bid determines cid
        UNION ALL SELECT 2 * mid + 1, bid, cat FROM _aff_enc""")
    _exec(con, """
        CREATE OR REPLACE TEMP TABLE _aff_pairs AS
        SELECT a.fam, a.cat AS cat_a, b.cat AS cat_b, count(*) AS n_ab
        FROM _aff_items a JOIN _aff_items b
          ON a.fam = b.fam AND a.unit = b.unit AND a.cat < b.cat
        GROUP BY ALL""")
    _exec(con, """
        CREATE OR REPLACE TEMP TABLE _aff_marg AS
        SELECT fam, cat, count(*) AS n FROM _aff_items GROUP BY ALL""")
    # Units per family from the (smaller) encoded lines; fam 0 = every customer.
    _exec(con, """
        CREATE OR REPLACE TEMP TABLE _aff_units AS
        SELECT 0 AS fam, count(*) AS n_total FROM _aff_cust
        UNION ALL SELECT 2 * mid, count(DISTINCT cid) FROM _aff_enc GROUP BY mid
        UNION ALL SELECT 1, count(DISTINCT bid) FROM _aff_enc
        UNION ALL SELECT 2 * mid + 1, count(DISTINCT bid) FROM _aff_enc GROUP BY mid""")


def _join_counts(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table ``_aff_counts``: unordered co-bought pairs per family with n_ab, n_a, n_b,
    n_total and the family's test count m."""
    _exec(con, """
        CREATE OR REPLACE TEMP TABLE _aff_fam AS
        SELECT u.fam, u.n_total, c.n_cats
        FROM _aff_units u JOIN (SELECT fam, count(*) AS n_cats FROM _aff_marg GROUP BY fam) c
          USING (fam)""")
    # Unordered pairs with their counts, one table: every later step reads each pair once and
    # never joins the marginals on the family alone (a categories^2 product per family).
    _exec(con, """
        CREATE OR REPLACE TEMP TABLE _aff_counts AS
        SELECT p.fam, p.cat_a, p.cat_b, p.n_ab, ma.n AS n_a, mb.n AS n_b, f.n_total,
               f.n_cats * (f.n_cats - 1) // 2 AS m
        FROM _aff_pairs p
        JOIN _aff_marg ma ON ma.fam = p.fam AND ma.cat = p.cat_a
        JOIN _aff_marg mb ON mb.fam = p.fam AND mb.cat = p.cat_b
        JOIN _aff_fam f ON f.fam = p.fam""")


def _test_pairs(con: duckdb.DuckDBPyConnection) -> None:
    """Register ``_aff_tests``: each unordered pair's counts with its hypergeometric p-value
    and BH q-value."""
    # p and q are symmetric in A and B, so test each unordered pair once; the p-value depends
    # on the four counts only, and with many categories most pairs share them (n_ab = 1 with
    # small marginals), so SciPy runs once per distinct (n_ab, n_total, n_a, n_b).
    t = time.perf_counter()
    tup = con.execute("""
        SELECT row_number() OVER () - 1 AS tid, n_ab, n_total, n_a, n_b
        FROM (SELECT DISTINCT n_ab, n_total, n_a, n_b FROM _aff_counts)""").fetchnumpy()
    pv_tup = hypergeom_pvalue(tup["n_ab"], tup["n_total"], tup["n_a"], tup["n_b"])
    con.register("_aff_tuples", pl.DataFrame({k: np.asarray(tup[k]) for k in
                                              ("tid", "n_ab", "n_total", "n_a", "n_b")}))
    arr = con.execute("""
        SELECT c.fam, c.cat_a, c.cat_b, c.n_a, c.n_b, c.n_ab, c.n_total, c.m, t.tid
        FROM _aff_counts c JOIN _aff_tuples t USING (n_ab, n_total, n_a, n_b)""").fetchnumpy()
    con.unregister("_aff_tuples")
    pv = pv_tup[np.asarray(arr["tid"])]
    qv = bh_qvalues(pv, arr["fam"], arr["m"])
    log.debug("%.2f s  p-values of %d distinct count tuples, q-values of %d unordered pairs",
              time.perf_counter() - t, pv_tup.size, pv.size)
    _register_ordered_pairs(con, arr, pv, qv)


def _register_ordered_pairs(con: duckdb.DuckDBPyConnection, arr: dict[str, np.ndarray],
                            pv: np.ndarray, qv: np.ndarray) -> None:
    """Register ``_aff_tests``: both orders of every tested pair with its counts, p and q,
    its scope and category names, already in the mart's order (family, A, B).

    Sorting the integer codes here and looking the names up by code keeps DuckDB from
    sorting the wide mart rows (on 30k leaf categories the ORDER BY was most of the write).
    """
    col = {k: np.asarray(arr[k]) for k in ("fam", "cat_a", "cat_b", "n_a", "n_b", "n_ab", "n_total")}
    both = {k: np.concatenate([v, v]) for k, v in col.items()}
    both["cat_a"] = np.concatenate([col["cat_a"], col["cat_b"]])
    both["cat_b"] = np.concatenate([col["cat_b"], col["cat_a"]])
    both["n_a"] = np.concatenate([col["n_a"], col["n_b"]])
    both["n_b"] = np.concatenate([col["n_b"], col["n_a"]])
    order = np.lexsort((both["cat_b"], both["cat_a"], both["fam"]))
    # codes are dense: category code c is row c of _aff_cat; merchant code m (>= 1) is row m
    # of _aff_mer and family // 2 = 0 is the 'all' scope
    names = con.sql("SELECT category FROM _aff_cat ORDER BY cat").pl().to_series()
    scopes = pl.concat([pl.Series([ALL_SCOPE], dtype=pl.String), con.sql(
        "SELECT merchant_id::VARCHAR FROM _aff_mer ORDER BY mid").pl().to_series()])
    fam = both["fam"][order]
    con.register("_aff_tests", pl.DataFrame({
        "fam": fam,
        "scope": scopes.gather(fam // 2),
        "category_a": names.gather(both["cat_a"][order]),
        "category_b": names.gather(both["cat_b"][order]),
        **{k: both[k][order] for k in ("n_a", "n_b", "n_ab", "n_total")},
        "p_value": np.concatenate([pv, pv])[order], "q_value": np.concatenate([qv, qv])[order],
    }))


def _write_category_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Write ``marts.category_affinity``: both orders of every tested pair with its metrics."""
    lo, hi = _lift_ci_sql()
    _exec(con, f"""
        CREATE OR REPLACE TABLE marts.category_affinity AS
        -- one row per ordered category pair per scope per basis, in the order of _aff_tests:
        -- = ORDER BY scope <> 'all', scope, basis DESC, category_a, category_b (the codes
        -- are dense in that order: merchant code by merchant_id, 0 = all; customer before
        -- basket; category code by category)
        WITH metrics AS (
            SELECT *, n_ab / n_total AS support, n_a / n_total AS support_a,
                   n_b / n_total AS support_b, n_ab / n_a AS confidence,
                   (n_ab / n_a) / (n_b / n_total) AS lift
            FROM _aff_tests
        )
        SELECT scope,
               CASE WHEN fam % 2 = 0 THEN 'customer' ELSE 'basket' END AS basis,
               category_a, category_b,
               n_a::BIGINT AS n_a, n_b::BIGINT AS n_b, n_ab::BIGINT AS n_ab,
               n_total::BIGINT AS n_total,
               support, support_a, support_b, confidence, lift,
               {lo} AS lift_ci_low, {hi} AS lift_ci_high,
               support - support_a * support_b AS leverage,
               CASE WHEN n_ab < n_a THEN (1 - support_b) / (1 - confidence) END AS conviction,
               p_value, q_value,
               n_ab >= {int(settings.min_pair_customers)} AS meets_min_count,
               n_ab >= {int(settings.min_pair_customers)}
                 AND q_value <= {float(settings.fdr_alpha)} AND lift > 1 AS is_significant
        FROM metrics""")


# --------------------------------------------------------------------------- directional

DIRECTIONAL_COLUMNS = {
    "scope": "'all' (every merchant) or a merchant_id: whose orders are counted.",
    "category_a": "First category A.",
    "category_b": "Later category B (B <> A).",
    "window_days": "N = Settings.affinity_window_days: B must follow the first A within N days.",
    "n_a": "Customers with a paid line in A, in this scope.",
    "n_a_then_b": "Customers of A with a paid B line strictly after their first A and at most N days after it.",
    "rate_b_after_a": "n_a_then_b / n_a.",
    "n_total": "Customers with any paid line, in this scope.",
    "n_b_base": "Customers with a paid B line strictly after their first paid line (any category) and at most N days after it.",
    "base_rate_b": "n_b_base / n_total: the chance a customer buys B within N days of a first purchase.",
    "lift": "rate_b_after_a / base_rate_b.",
    "p_value": "One-sided binomial p-value P(X >= n_a_then_b), X ~ Binomial(n_a, base_rate_b).",
    "q_value": "Benjamini-Hochberg q-value over the ordered pairs of this scope (pairs with no A-then-B customer count with p = 1).",
    "meets_min_count": "n_a_then_b >= Settings.min_pair_customers.",
    "is_significant": "meets_min_count and q_value <= Settings.fdr_alpha and lift > 1.",
}


def _finish_binomial_mart(con: duckdb.DuckDBPyConnection, table: str, staged: str,
                          k: str, n: str, p0: str, family: str, m: str,
                          settings: Settings) -> None:
    """Add p_value / q_value / meets_min_count / is_significant to a staged pair table
    (``rid`` numbers its rows: the tests are joined back by it, on either engine)."""
    arr = con.execute(f"SELECT rid, {k} AS k, {n} AS n, {p0} AS p0, {family} AS fam, "
                      f"{m} AS m FROM {staged}").fetchnumpy()
    pv = binom_pvalue(arr["k"], arr["n"], arr["p0"])
    fam = np.asarray(arr["fam"]).astype(str)
    qv = bh_qvalues(pv, fam, arr["m"])
    con.register("_rate_tests", pl.DataFrame({"rid": np.asarray(arr["rid"]), "p_value": pv,
                                              "q_value": qv}))
    con.execute(f"""
        CREATE OR REPLACE TABLE {table} AS
        SELECT s.* EXCLUDE (m, rid), t.p_value, t.q_value,
               s.{k} >= {int(settings.min_pair_customers)} AS meets_min_count,
               s.{k} >= {int(settings.min_pair_customers)}
                 AND t.q_value <= {float(settings.fdr_alpha)} AND s.lift > 1 AS is_significant
        FROM {staged} s JOIN _rate_tests t USING (rid)
        ORDER BY ALL""")
    con.unregister("_rate_tests")


def build_directional_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Build ``marts.directional_affinity``: one row per ordered pair (A, B) per scope.

    A customer counts for A -> B when a paid B line follows their first paid A line by more
    than 0 and at most N = ``affinity_window_days`` days. The base rate is the share of all
    customers buying B within N days after their first purchase of anything, so both sides
    use the same window. Only pairs with at least one A-then-B customer are stored.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _dir_counts AS "
                + _directional_counts(con, paid_lines_sql(con), settings))
    return _publish_directional(con, settings, "_dir_counts")


DIRECTIONAL_COUNTS = "meta.directional_affinity_counts"
"""The integer counts ``marts.directional_affinity`` is computed from, kept for the next update."""

_DIRECTIONAL_COUNTS_DOC = {
    "scope": "'all' or a merchant_id, as in marts.directional_affinity.",
    "kind": "What n counts: 'total' (customers, n_total), 'first' (customers of category_a, "
            "n_a), 'base' (customers buying category_a within N days of their first purchase, "
            "n_b_base) or 'pair' (customers buying category_b within N days of their first "
            "category_a, n_a_then_b).",
    "category_a": "The category counted (NULL for 'total').",
    "category_b": "The later category of a 'pair' (NULL otherwise).",
    "n": "Customers counted, > 0.",
}


def refresh_directional_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Bring ``marts.directional_affinity`` up to date after a load, per customer when it can
    (every count is of customers: :func:`_refresh_counted`). Equals
    :func:`build_directional_affinity`."""
    return _refresh_counted(
        con, "marts.directional_affinity", DIRECTIONAL_COUNTS, _DIRECTIONAL_COUNTS_DOC,
        lambda which, delta: _directional_counts(con, _paid_lines_of(con, which), settings),
        lambda full: _publish_directional(con, settings, DIRECTIONAL_COUNTS),
        f"directional counts per customer v1, window {int(settings.affinity_window_days)}")


def _directional_counts(con: duckdb.DuckDBPyConnection, lines: str, settings: Settings) -> str:
    """Stage ``_dir_lines`` from the paid lines ``lines``; return the SQL of their counts
    (scope, kind, category_a, category_b, n): every count is of customers."""
    w = int(settings.affinity_window_days)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _dir_lines AS
        -- repeats kept: every count below is of distinct customers (as in _spillover_counts)
        WITH l AS ({lines})
        SELECT '{ALL_SCOPE}' AS scope, customer_id, category, ordered_at FROM l
        UNION ALL
        SELECT merchant_id, customer_id, category, ordered_at FROM l""")
    return f"""
        WITH first_a AS (
            SELECT scope, customer_id, category, min(ordered_at) AS t0
            FROM _dir_lines GROUP BY ALL
        ), first_any AS (
            SELECT scope, customer_id, min(ordered_at) AS t0 FROM _dir_lines GROUP BY ALL
        )
        SELECT scope, 'total' AS kind, CAST(NULL AS VARCHAR) AS category_a,
               CAST(NULL AS VARCHAR) AS category_b, count(*) AS n
        FROM first_any GROUP BY scope
        UNION ALL
        SELECT scope, 'first', category, NULL, count(*) FROM first_a GROUP BY scope, category
        UNION ALL
        SELECT l.scope, 'base', l.category, NULL, count(DISTINCT l.customer_id)
        FROM _dir_lines l JOIN first_any f USING (scope, customer_id)
        WHERE l.ordered_at > f.t0 AND l.ordered_at <= f.t0 + INTERVAL {w} DAY
        GROUP BY l.scope, l.category
        UNION ALL
        SELECT f.scope, 'pair', f.category, l.category, count(DISTINCT f.customer_id)
        FROM first_a f JOIN _dir_lines l USING (scope, customer_id)
        WHERE l.category <> f.category
          AND l.ordered_at > f.t0 AND l.ordered_at <= f.t0 + INTERVAL {w} DAY
        GROUP BY f.scope, f.category, l.category"""


def _publish_directional(con: duckdb.DuckDBPyConnection, settings: Settings, counts: str) -> int:
    """Write ``marts.directional_affinity`` from the counts table ``counts``."""
    w = int(settings.affinity_window_days)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _dir_staged AS
        WITH totals AS (
            SELECT scope, n AS n_total FROM {counts} WHERE kind = 'total'
        ), n_a AS (
            SELECT scope, category_a AS category, n AS n_a FROM {counts} WHERE kind = 'first'
        ), base AS (
            SELECT scope, category_a AS category, n AS n_b_base FROM {counts} WHERE kind = 'base'
        ), ab AS (
            SELECT scope, category_a, category_b, n AS n_a_then_b FROM {counts}
            WHERE kind = 'pair'
        ), fam AS (
            SELECT scope, count(*) * (count(*) - 1) AS m FROM n_a GROUP BY ALL
        )
        SELECT ab.scope, category_a, category_b, {w} AS window_days, n_a.n_a, n_a_then_b,
               n_a_then_b / n_a.n_a AS rate_b_after_a, totals.n_total, base.n_b_base,
               base.n_b_base / totals.n_total AS base_rate_b,
               (n_a_then_b / n_a.n_a) / (base.n_b_base / totals.n_total) AS lift, fam.m,
               row_number() OVER () AS rid
        FROM ab
        JOIN n_a ON n_a.scope = ab.scope AND n_a.category = ab.category_a
        JOIN base ON base.scope = ab.scope AND base.category = ab.category_b
        JOIN totals ON totals.scope = ab.scope
        JOIN fam ON fam.scope = ab.scope""")
    _finish_binomial_mart(con, "marts.directional_affinity", "_dir_staged", "n_a_then_b",
                          "n_a", "base_rate_b", "scope", "m", settings)
    for t in ("_dir_lines", "_dir_counts", "_dir_staged"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return finish_table(
        con, "marts.directional_affinity",
        "A then B: one row per ordered category pair per scope (all | merchant) where some "
        "customer bought B within N days after their first A. Paid lines only. See "
        "docs/affinity.md.",
        DIRECTIONAL_COLUMNS,
    )


# --------------------------------------------------------------------------- spill-over

SPILLOVER_COLUMNS = {
    "scope": "'all': clicks and purchases across every merchant.",
    "shared_category": "Category A of the shared product that was clicked (share_nodes.category, else the product's category).",
    "bought_category": "Category B the clicker bought afterwards.",
    "same_category": "shared_category = bought_category (direct conversion rather than spill-over).",
    "window_days": "W = Settings.spillover_window_days: the purchase must follow a click on A by more than 0 and at most W days.",
    "n_clickers_a": "People who clicked at least one share of a category-A product.",
    "n_a_then_b": "Of those, people with a paid B line within W days after one of their A clicks.",
    "rate_b_after_a": "n_a_then_b / n_clickers_a.",
    "n_clickers": "People who clicked any share with a known category.",
    "n_b_base": "Clickers with a paid B line within W days after any of their clicks.",
    "base_rate_b": "n_b_base / n_clickers: how often a clicker buys B within W days of some click.",
    "lift": "rate_b_after_a / base_rate_b.",
    "p_value": "One-sided binomial p-value P(X >= n_a_then_b), X ~ Binomial(n_clickers_a, base_rate_b).",
    "q_value": "Benjamini-Hochberg q-value over all (shared, bought) category pairs (pairs with no such clicker count with p = 1).",
    "meets_min_count": "n_a_then_b >= Settings.min_pair_customers.",
    "is_significant": "meets_min_count and q_value <= Settings.fdr_alpha and lift > 1.",
}


def share_categories_sql(con: duckdb.DuckDBPyConnection) -> str:
    """SQL of (share_id, category): the category of what each share shows.

    ``graph.share_nodes.category`` when the cascade stage has built it, else the category
    of the share / reshare event; either way the product's category fills gaps.
    """
    prod = f"({product_lookup_sql()})"
    if table_exists(con, "graph.share_nodes"):
        return f"""
            SELECT s.share_id, any_value(COALESCE(s.category, p.category)) AS category
            FROM graph.share_nodes s LEFT JOIN {prod} p USING (product_id)
            GROUP BY s.share_id"""
    return f"""
        SELECT e.share_id, any_value(COALESCE(e.category, p.category)) AS category
        FROM staging.share_events e LEFT JOIN {prod} p USING (product_id)
        WHERE e.event_type IN ('share', 'reshare')
        GROUP BY e.share_id"""


def build_spillover_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Build ``marts.spillover_affinity``: one row per (shared category, bought category).

    The "saw a skirt post, bought a face mask" effect: people who clicked a share of a
    category-A product and bought B within W = ``spillover_window_days`` days, against the
    rate at which any clicker buys B within W days of any click. Clicks are
    ``staging.share_events`` rows with event_type 'click' (clicker = actor_id).
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _sp_counts AS " + _spillover_counts(
        con, _clicks_sql(share_categories_sql(con), f"({product_lookup_sql()})", "true"),
        paid_lines_sql(con), settings))
    return _publish_spillover(con, settings, "_sp_counts")


SPILLOVER_COUNTS = "meta.spillover_affinity_counts"
"""The integer counts ``marts.spillover_affinity`` is computed from, kept for the next update."""

_SPILLOVER_COUNTS_DOC = {
    "scope": "'all', as in marts.spillover_affinity.",
    "kind": "What n counts: 'total' (clickers, n_clickers), 'clicked' (clickers of "
            "category_a, n_clickers_a), 'base' (clickers buying category_a within W days of a "
            "click, n_b_base) or 'pair' (clickers of category_a buying category_b within W "
            "days of such a click, n_a_then_b).",
    "category_a": "The category counted (NULL for 'total').",
    "category_b": "The bought category of a 'pair' (NULL otherwise).",
    "n": "People counted, > 0.",
}


def refresh_spillover_affinity(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Bring ``marts.spillover_affinity`` up to date after a load, per person when it can.

    Every count is of people, so counts add up over people (:func:`_refresh_counted`). A
    person is touched by a new click, a click whose category is another now (its share is
    first seen in the new batches, or its product is new) or other paid lines. Their clicks
    as they were are those of the batches seen before, with the categories of then: a share
    first seen now had no share node, a new product no row; share nodes must have been only
    appended to (their rebuild id is in the fingerprint), so no other node changed. Equals
    :func:`build_spillover_affinity`.
    """
    def count(which: str, delta: increments.Delta | None) -> str:
        shares, prod = share_categories_sql(con), f"({product_lookup_sql()})"
        if delta is None:
            return _spillover_counts(con, _clicks_sql(shares, prod, "true"),
                                     paid_lines_sql(con), settings)
        if which == "before":  # called first
            _stage_spillover_touched(con, delta, shares)
        shares = "SELECT * FROM _sp_touched_shares"
        lines = f"""SELECT * FROM ({paid_lines.PAID_LINES})
                    WHERE customer_id IN (SELECT person FROM _sp_touched)"""
        if which == "after":
            sql = _spillover_counts(con, _clicks_sql(shares, prod, "true", "_sp_touched_clicks"),
                                    lines, settings)  # stages all it reads
            for temp in ("_sp_touched", "_sp_new_shares", "_sp_touched_clicks", "_sp_touched_shares"):
                con.execute(f"DROP TABLE {temp}")
            return sql
        # as they were: clicks of the batches seen, no node for a share first seen now, no
        # row for a new product, the logged paid lines of the customers attribution touched
        shares += " WHERE share_id NOT IN (SELECT share_id FROM _sp_new_shares)"
        prod = f"""(SELECT product_id, any_value(category) AS category FROM staging.products
                    WHERE NOT ({delta.new_rows("products")}) GROUP BY product_id)"""
        lines = (f"SELECT * FROM ({paid_lines.BEFORE}) UNION ALL {lines} "
                 f"AND customer_id NOT IN ({paid_lines.TOUCHED})")
        return _spillover_counts(con, _clicks_sql(shares, prod, "NOT is_new",
                                                  "_sp_touched_clicks"), lines, settings)

    w = int(settings.spillover_window_days)
    return _refresh_counted(
        con, "marts.spillover_affinity", SPILLOVER_COUNTS, _SPILLOVER_COUNTS_DOC, count,
        lambda full: _publish_spillover(con, settings, SPILLOVER_COUNTS),
        f"spill-over counts per person v1, window {w}",
        inputs=(*paid_lines.INPUTS, "share_events"),
        upstream=(increments.rebuild_id(con, NODES, NODES_INPUTS),))


def _stage_spillover_touched(con: duckdb.DuckDBPyConnection, delta: increments.Delta,
                             shares: str) -> None:
    """Temp tables ``_sp_new_shares`` (shares first seen in the delta's batches),
    ``_sp_touched`` (the people whose spill-over counts the delta can change),
    ``_sp_touched_clicks`` (their clicks, ``is_new`` when of the delta's batches) and
    ``_sp_touched_shares`` (the categories ``shares`` of the shares they clicked; both
    counts read them, and the share nodes are grouped once)."""
    new_events = delta.new_rows("share_events")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_new_shares AS
        WITH made_now AS (
            SELECT DISTINCT share_id FROM staging.share_events
            WHERE {SHARE_EVENTS} AND {new_events}
        )
        SELECT share_id FROM made_now
        EXCEPT
        SELECT share_id FROM staging.share_events
        WHERE {SHARE_EVENTS} AND NOT ({new_events})
          AND share_id IN (SELECT share_id FROM made_now)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_touched AS
        SELECT customer_id AS person FROM ({paid_lines.TOUCHED})
        UNION
        SELECT actor_id FROM staging.share_events
        WHERE event_type = 'click' AND actor_id IS NOT NULL
          AND ({new_events}
               OR share_id IN (SELECT share_id FROM _sp_new_shares)
               OR product_id IN ({delta.new_keys("products", "product_id")}))""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_touched_clicks AS
        SELECT event_type, actor_id, share_id, product_id, category, occurred_at,
               {new_events} AS is_new
        FROM staging.share_events
        WHERE event_type = 'click' AND actor_id IN (SELECT person FROM _sp_touched)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_touched_shares AS
        SELECT * FROM ({shares}) WHERE share_id IN (SELECT share_id FROM _sp_touched_clicks)""")


def _clicks_sql(shares: str, products: str, where: str,
                events: str = "staging.share_events") -> str:
    """SQL of clicks (person, category, t) on shares of categories ``shares`` (share_id,
    category) with the product lookup ``products``, for the ``events`` matching ``where``."""
    return f"""
        SELECT e.actor_id AS person,
               COALESCE(s.category, e.category, p.category) AS category, e.occurred_at AS t
        FROM {events} e
        LEFT JOIN ({shares}) s USING (share_id)
        LEFT JOIN {products} p ON p.product_id = e.product_id
        WHERE e.event_type = 'click' AND e.actor_id IS NOT NULL AND ({where})"""


def _spillover_counts(con: duckdb.DuckDBPyConnection, clicks: str, lines: str,
                      settings: Settings) -> str:
    """Stage ``_sp_clicks`` and ``_sp_buys`` from ``clicks`` and the paid lines ``lines``;
    return the SQL of their counts (scope, kind, category_a, category_b, n), all of people."""
    w = int(settings.spillover_window_days)
    # kept with their repeats: every count below is of distinct people or of DISTINCT hits,
    # and removing the few repeats (same person, category and instant) cost a grouping of
    # every click and line (5 s at 10M orders)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_clicks AS
        SELECT person, category, t FROM ({clicks}) WHERE category IS NOT NULL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_buys AS
        SELECT l.customer_id AS person, l.category, l.ordered_at AS t
        FROM ({lines}) l SEMI JOIN (SELECT DISTINCT person FROM _sp_clicks) c
          ON c.person = l.customer_id""")
    return f"""
        WITH hits AS (  -- (person, clicked A, bought B) with B within W days after an A click
            SELECT DISTINCT c.person, c.category AS shared_category, b.category AS bought_category
            FROM _sp_clicks c JOIN _sp_buys b
              ON b.person = c.person AND b.t > c.t AND b.t <= c.t + INTERVAL {w} DAY
        )
        SELECT '{ALL_SCOPE}' AS scope, 'total' AS kind, CAST(NULL AS VARCHAR) AS category_a,
               CAST(NULL AS VARCHAR) AS category_b, count(DISTINCT person) AS n
        FROM _sp_clicks
        UNION ALL
        SELECT '{ALL_SCOPE}', 'clicked', category, NULL, count(DISTINCT person)
        FROM _sp_clicks GROUP BY category
        UNION ALL
        SELECT '{ALL_SCOPE}', 'base', bought_category, NULL, count(DISTINCT person)
        FROM hits GROUP BY bought_category
        UNION ALL
        SELECT '{ALL_SCOPE}', 'pair', shared_category, bought_category, count(*)
        FROM hits GROUP BY shared_category, bought_category"""


def _publish_spillover(con: duckdb.DuckDBPyConnection, settings: Settings, counts: str) -> int:
    """Write ``marts.spillover_affinity`` from the counts table ``counts``."""
    w = int(settings.spillover_window_days)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sp_staged AS
        WITH ab AS (
            SELECT category_a AS shared_category, category_b AS bought_category,
                   n AS n_a_then_b FROM {counts} WHERE kind = 'pair'
        ), base AS (
            SELECT category_a AS bought_category, n AS n_b_base FROM {counts} WHERE kind = 'base'
        ), n_a AS (
            SELECT category_a AS shared_category, n AS n_clickers_a FROM {counts}
            WHERE kind = 'clicked'
        ), totals AS (
            SELECT n AS n_clickers FROM {counts} WHERE kind = 'total'
        ), fam AS (
            SELECT (SELECT count(*) FROM n_a) * (SELECT count(*) FROM base) AS m
        )
        SELECT '{ALL_SCOPE}' AS scope, shared_category, bought_category,
               shared_category = bought_category AS same_category, {w} AS window_days,
               n_clickers_a, n_a_then_b, n_a_then_b / n_clickers_a AS rate_b_after_a,
               n_clickers, n_b_base, n_b_base / n_clickers AS base_rate_b,
               (n_a_then_b / n_clickers_a) / (n_b_base / n_clickers) AS lift, fam.m,
               row_number() OVER () AS rid
        FROM ab JOIN n_a USING (shared_category) JOIN base USING (bought_category)
        CROSS JOIN totals CROSS JOIN fam""")
    _finish_binomial_mart(con, "marts.spillover_affinity", "_sp_staged", "n_a_then_b",
                          "n_clickers_a", "base_rate_b", "scope", "m", settings)
    for t in ("_sp_clicks", "_sp_buys", "_sp_counts", "_sp_staged"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return finish_table(
        con, "marts.spillover_affinity",
        "Social spill-over: one row per (shared category, bought category) where some "
        "clicker of a category-A share bought B within W days. See docs/affinity.md.",
        SPILLOVER_COLUMNS,
    )


# --------------------------------------------------------------------------- checks


def affinity_bounds_problems(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of ``marts.category_affinity`` breaking a bound; all zero when the mart is sound.

    support, support_a, support_b, confidence in [0, 1]; 1 <= n_ab <= min(n_a, n_b);
    max(n_a, n_b) <= n_total; lift >= 0; q_value >= p_value.
    """
    row = con.execute("""
        SELECT count(*) FILTER (WHERE NOT (support BETWEEN 0 AND 1)) AS support_out_of_range,
               count(*) FILTER (WHERE NOT (confidence BETWEEN 0 AND 1)) AS confidence_out_of_range,
               count(*) FILTER (WHERE NOT (n_ab BETWEEN 1 AND least(n_a, n_b))) AS n_ab_too_large,
               count(*) FILTER (WHERE greatest(n_a, n_b) > n_total) AS marginal_above_total,
               count(*) FILTER (WHERE lift < 0 OR isnan(lift)) AS bad_lift,
               count(*) FILTER (WHERE q_value < p_value - 1e-12) AS q_below_p
        FROM marts.category_affinity""").fetchall()[0]
    names = ("support_out_of_range", "confidence_out_of_range", "n_ab_too_large",
             "marginal_above_total", "bad_lift", "q_below_p")
    return dict(zip(names, (int(v) for v in row), strict=True))


def affinity_count_mismatches(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Compare the mart's marginals with counts taken straight from the paid order lines.

    For scope 'all', basis 'customer': n_a = COUNT(DISTINCT customer_id) of paid lines in A
    and n_total = COUNT(DISTINCT customer_id) of paid lines with a category. Returns the
    number of categories whose n_a differs, and of rows whose n_total differs.
    """
    src = paid_lines_sql(con)
    row = con.execute(f"""
        WITH direct AS (
            SELECT category, count(DISTINCT customer_id) AS n FROM ({src}) GROUP BY ALL
        ), total AS (SELECT count(DISTINCT customer_id) AS n FROM ({src})),
        mart AS (
            SELECT DISTINCT category_a AS category, n_a, n_total FROM marts.category_affinity
            WHERE scope = '{ALL_SCOPE}' AND basis = 'customer'
        )
        SELECT count(*) FILTER (WHERE d.n IS DISTINCT FROM m.n_a),
               count(*) FILTER (WHERE m.n_total <> (SELECT n FROM total))
        FROM mart m LEFT JOIN direct d USING (category)""").fetchall()[0]
    return {"n_a_mismatch": int(row[0]), "n_total_mismatch": int(row[1])}


def rate_mart_problems(con: duckdb.DuckDBPyConnection, table: str, n_col: str) -> dict[str, int]:
    """Bounds of a directional / spill-over mart: rates in [0, 1], n_a_then_b <= n_a."""
    row = con.execute(f"""
        SELECT count(*) FILTER (WHERE NOT (rate_b_after_a BETWEEN 0 AND 1)
                                   OR NOT (base_rate_b BETWEEN 0 AND 1)) AS rate_out_of_range,
               count(*) FILTER (WHERE n_a_then_b > {n_col}) AS n_a_then_b_too_large,
               count(*) FILTER (WHERE NOT (p_value BETWEEN 0 AND 1)
                                   OR NOT (q_value BETWEEN 0 AND 1)) AS bad_p
        FROM {table}""").fetchall()[0]
    return dict(zip(("rate_out_of_range", "n_a_then_b_too_large", "bad_p"),
                    (int(v) for v in row), strict=True))
