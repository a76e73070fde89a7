"""Which categories should a merchant add, and which of its categories fit its line badly.

Both marts read ``marts.category_affinity`` (scope 'all', basis 'customer': affinity
estimated over every merchant's customers, the most data) and the paid order lines.
Definitions in docs/affinity.md.
"""

from __future__ import annotations

import logging

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.sql import count_rows, table_exists
from sharegraph.core.warehouse import comment_table
from sharegraph.metrics.affinity import ALL_SCOPE, paid_lines_sql

log = logging.getLogger(__name__)

EVIDENCE_PAIRS = 3
"""Supporting pairs shown per recommendation."""

EXPANSION_COLUMNS = {
    "merchant_id": "Merchant the recommendation is for.",
    "category": "Candidate category B: one the merchant does not sell (no paid line, no product).",
    "rank": "1 = largest expected incremental GMV for this merchant.",
    "n_merchant_customers": "Customers with a paid line at the merchant.",
    "n_customers_with_uplift": "Of those, customers who bought at the merchant some A with a significant positive uplift A -> B.",
    "expected_buyers": "Sum over the merchant's customers of max over the A's they bought at the merchant of uplift(A -> B) = confidence(A -> B) - support(B) (overall, customer basis; significant pairs only).",
    "base_rate": "support(B) overall: share of all customers who bought B.",
    "avg_order_value_yuan": "Average paid order value of B overall, ¥: paid GMV of B lines / paid orders with a B line.",
    "expected_incremental_gmv_yuan": "expected_buyers x avg_order_value_yuan, ¥ (one order per expected buyer).",
    "evidence": "Top supporting pairs as text: 'A -> B: lift, confidence, n_ab, q'.",
    "evidence_categories": "Top supporting antecedent categories A (most expected buyers first).",
    "evidence_lift": "lift(A -> B) overall, per evidence category.",
    "evidence_confidence": "confidence(A -> B) overall, per evidence category.",
    "evidence_n_ab": "Customers overall who bought both A and B, per evidence category.",
    "evidence_q_value": "Benjamini-Hochberg q-value of A -> B overall, per evidence category.",
    "evidence_expected_buyers": "Expected buyers of B contributed through A (customers whose best A it is).",
}

WEAK_COLUMNS = {
    "merchant_id": "Merchant.",
    "category": "A category the merchant sells (has paid lines in).",
    "n_categories": "Categories the merchant has paid lines in (k).",
    "n_customers": "The merchant's customers who bought this category there.",
    "share_of_customers": "n_customers / the merchant's customers.",
    "mean_lift_to_line": "Mean over the merchant's other categories B of lift(category -> B), overall customer basis; a pair never co-bought counts as 0; NULL when k = 1.",
    "mean_lift_merchant": "Same mean over the merchant's own customers (scope = merchant); NULL when k = 1.",
    "is_weak": "mean_lift_to_line < 1 and share_of_customers < 1 / k: bought less with the rest of the line than chance and by fewer customers than an average category.",
    "weakness_rank": "1 = weakest category of the merchant (lowest mean_lift_to_line).",
}


def _sold_sql(con: duckdb.DuckDBPyConnection) -> str:
    """(merchant_id, category) pairs a merchant sells: any paid line, or a product it lists."""
    sql = f"SELECT DISTINCT merchant_id, category FROM ({paid_lines_sql(con)})"
    if table_exists(con, "staging.products"):
        sql += """ UNION SELECT COALESCE(merchant_id, 'default'), category FROM staging.products
                   WHERE category IS NOT NULL"""
    return sql


_EVIDENCE_CTES = f"""
        contrib_sum AS (
            SELECT merchant_id, category_b, best_a, sum(n * uplift) AS buyers
            FROM _exp_best GROUP BY ALL
        ), contrib AS (
            SELECT *, row_number() OVER (PARTITION BY merchant_id, category_b
                                         ORDER BY buyers DESC, best_a) AS k
            FROM contrib_sum
        ), ev AS (
            SELECT c.merchant_id, c.category_b,
                   list(c.best_a ORDER BY c.k) AS evidence_categories,
                   list(u.lift ORDER BY c.k) AS evidence_lift,
                   list(u.confidence ORDER BY c.k) AS evidence_confidence,
                   list(u.n_ab ORDER BY c.k) AS evidence_n_ab,
                   list(u.q_value ORDER BY c.k) AS evidence_q_value,
                   list(c.buyers ORDER BY c.k) AS evidence_expected_buyers,
                   string_agg(printf('%s -> %s: lift %.2f, confidence %.1f%%, n_ab %d, q %.2g',
                                     c.best_a, c.category_b, u.lift, 100 * u.confidence,
                                     u.n_ab, u.q_value), '; ' ORDER BY c.k) AS evidence
            FROM contrib c
            JOIN _exp_uplift u ON u.category_a = c.best_a AND u.category_b = c.category_b
            WHERE c.k <= {EVIDENCE_PAIRS}
            GROUP BY ALL
"""
"""CTEs ``contrib_sum``, ``contrib``, ``ev``: per merchant and candidate, the
``EVIDENCE_PAIRS`` source categories A that bring the most expected buyers, with their
pair statistics as lists and one readable sentence (needs ``_exp_best``, ``_exp_uplift``)."""


def _stage_best_uplift(con: duckdb.DuckDBPyConnection, src: str) -> None:
    """Temp table ``_exp_best``: per merchant, customer profile (distinct set of categories
    bought there) and candidate B it does not sell, the largest uplift over the profile's
    A's and that A (needs ``_exp_uplift``)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _exp_best AS
        WITH lines AS ({src}),
        profiles AS (   -- one row per merchant per distinct set of categories bought there
            SELECT merchant_id, cats, count(*) AS n
            FROM (SELECT merchant_id, customer_id, list(DISTINCT category ORDER BY category) AS cats
                  FROM lines GROUP BY ALL)
            GROUP BY ALL
        ), pa AS (
            SELECT row_number() OVER () AS pid, merchant_id, n, cats FROM profiles
        ), pa_cat AS (
            SELECT pid, merchant_id, n, unnest(cats) AS category_a FROM pa
        ), sold AS ({_sold_sql(con)}),
        cand AS (
            SELECT pa_cat.pid, pa_cat.merchant_id, pa_cat.n, u.category_a, u.category_b,
                   u.uplift
            FROM pa_cat JOIN _exp_uplift u USING (category_a)
            ANTI JOIN sold ON sold.merchant_id = pa_cat.merchant_id
                          AND sold.category = u.category_b
        )
        SELECT pid, merchant_id, n, category_b, max(uplift) AS uplift,
               first(category_a ORDER BY uplift DESC, category_a) AS best_a
        FROM cand GROUP BY ALL""")


def build_expansion_recommendations(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Build ``marts.expansion_recommendations``: one row per merchant per category it lacks.

    For target B, each customer of the merchant counts once, with the largest uplift
    confidence(A -> B) - support(B) over the categories A they bought at the merchant
    (significant pairs of the overall customer-basis affinity), so a customer who bought
    several A's is not counted several times. Customers are grouped by their set of
    categories first, so the work scales with distinct sets, not with customers.
    Candidates with no expected buyer are left out. Requires ``marts.category_affinity``.
    """
    src = paid_lines_sql(con)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _exp_uplift AS
        SELECT category_a, category_b, confidence - support_b AS uplift, lift, confidence,
               n_ab, q_value
        FROM marts.category_affinity
        WHERE scope = '{ALL_SCOPE}' AND basis = 'customer' AND is_significant""")
    _stage_best_uplift(con, src)
    con.execute(f"""
        CREATE OR REPLACE TABLE marts.expansion_recommendations AS
        -- one row per merchant per candidate category it does not sell
        WITH lines AS ({src}),
        merchant_customers AS (
            SELECT merchant_id, count(DISTINCT customer_id) AS n FROM lines GROUP BY ALL
        ), totals AS (
            SELECT count(DISTINCT customer_id) AS n_total FROM lines
        ), base AS (
            SELECT category, count(DISTINCT customer_id) / any_value(totals.n_total) AS base_rate,
                   sum(amount)::DOUBLE / count(DISTINCT order_id) AS aov
            FROM lines CROSS JOIN totals GROUP BY category
        ), agg AS (
            SELECT merchant_id, category_b, sum(n * uplift) AS expected_buyers,
                   sum(n) AS n_customers_with_uplift
            FROM _exp_best GROUP BY ALL
        ), {_EVIDENCE_CTES.strip()}
        )
        SELECT agg.merchant_id, agg.category_b AS category,
               row_number() OVER (PARTITION BY agg.merchant_id
                   ORDER BY agg.expected_buyers * base.aov DESC, agg.category_b)::INTEGER AS rank,
               mc.n AS n_merchant_customers, agg.n_customers_with_uplift::BIGINT
                   AS n_customers_with_uplift,
               agg.expected_buyers, base.base_rate, base.aov AS avg_order_value_yuan,
               agg.expected_buyers * base.aov AS expected_incremental_gmv_yuan,
               ev.evidence, ev.evidence_categories, ev.evidence_lift, ev.evidence_confidence,
               ev.evidence_n_ab, ev.evidence_q_value, ev.evidence_expected_buyers
        FROM agg
        JOIN merchant_customers mc USING (merchant_id)
        JOIN base ON base.category = agg.category_b
        JOIN ev ON ev.merchant_id = agg.merchant_id AND ev.category_b = agg.category_b
        WHERE agg.expected_buyers > 0
        ORDER BY merchant_id, rank""")
    con.execute("DROP TABLE IF EXISTS _exp_uplift")
    con.execute("DROP TABLE IF EXISTS _exp_best")
    comment_table(
        con, "marts.expansion_recommendations",
        "Categories a merchant does not sell, ranked by expected incremental GMV from its own "
        "customers' cross-category affinity: one row per merchant per candidate category with "
        "expected buyers > 0. See docs/affinity.md.",
        EXPANSION_COLUMNS,
    )
    n = count_rows(con, "marts.expansion_recommendations")
    log.info("marts.expansion_recommendations: %d rows", n)
    return int(n)


def build_weak_categories(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Build ``marts.weak_categories``: one row per merchant per category it has paid lines in.

    A category is weak for a merchant when its buyers buy the rest of the merchant's line
    less than chance would have it (mean lift < 1) and it reaches fewer of the merchant's
    customers than an average one of its k categories (share < 1 / k).
    Requires ``marts.category_affinity``.
    """
    src = paid_lines_sql(con)
    con.execute(f"""
        CREATE OR REPLACE TABLE marts.weak_categories AS
        -- one row per merchant per category it sells (has paid lines in)
        WITH lines AS ({src}),
        mc AS (SELECT merchant_id, category, count(DISTINCT customer_id) AS n_customers
               FROM lines GROUP BY ALL),
        mt AS (SELECT merchant_id, count(DISTINCT customer_id) AS n_all,
                      count(DISTINCT category) AS k
               FROM lines GROUP BY ALL),
        -- mean over the k - 1 other categories = (sum of the non-zero lifts) / (k - 1): only
        -- pairs bought together have a row, so the work grows with co-bought pairs, not k^2;
        -- fsum (compensated) keeps equal means equal whatever order the rows come in
        line_all AS (
            SELECT b.merchant_id, ov.category_a AS category, fsum(ov.lift) AS lift_sum
            FROM marts.category_affinity ov
            JOIN mc a ON a.category = ov.category_a
            JOIN mc b ON b.merchant_id = a.merchant_id AND b.category = ov.category_b
            WHERE ov.scope = '{ALL_SCOPE}' AND ov.basis = 'customer'
            GROUP BY ALL
        ), line_merchant AS (
            SELECT b.merchant_id, me.category_a AS category, fsum(me.lift) AS lift_sum
            FROM marts.category_affinity me
            JOIN mc b ON b.merchant_id = me.scope AND b.category = me.category_b
            WHERE me.basis = 'customer' AND me.scope <> '{ALL_SCOPE}'
            GROUP BY ALL
        ), means AS (
            SELECT mc.merchant_id, mc.category,
                   COALESCE(la.lift_sum, 0) / (mt.k - 1) AS mean_lift_to_line,
                   COALESCE(lm.lift_sum, 0) / (mt.k - 1) AS mean_lift_merchant
            FROM mc JOIN mt USING (merchant_id)
            LEFT JOIN line_all la USING (merchant_id, category)
            LEFT JOIN line_merchant lm USING (merchant_id, category)
            WHERE mt.k > 1
        )
        SELECT mc.merchant_id, mc.category, mt.k::INTEGER AS n_categories, mc.n_customers,
               mc.n_customers / mt.n_all AS share_of_customers,
               means.mean_lift_to_line, means.mean_lift_merchant,
               COALESCE(means.mean_lift_to_line < 1 AND mc.n_customers / mt.n_all < 1 / mt.k,
                        false) AS is_weak,
               row_number() OVER (PARTITION BY mc.merchant_id
                   ORDER BY means.mean_lift_to_line NULLS LAST, mc.n_customers,
                            mc.category)::INTEGER AS weakness_rank
        FROM mc JOIN mt USING (merchant_id)
        LEFT JOIN means USING (merchant_id, category)
        ORDER BY merchant_id, weakness_rank""")
    comment_table(
        con, "marts.weak_categories",
        "Per merchant, how well each category it sells fits the rest of its line: one row per "
        "merchant per category with paid lines there. See docs/affinity.md.",
        WEAK_COLUMNS,
    )
    return int(con.execute("SELECT count(*) FROM marts.weak_categories").fetchall()[0][0])


def expansion_problems(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of ``marts.expansion_recommendations`` that break its definition.

    A recommended category must not be sold by the merchant; ranks run 1..n per merchant;
    expected buyers lie in (0, merchant customers]; evidence arrays have equal lengths.
    """
    row = con.execute(f"""
        WITH sold AS ({_sold_sql(con)}),
        r AS (SELECT *, row_number() OVER (PARTITION BY merchant_id ORDER BY rank) AS pos
              FROM marts.expansion_recommendations)
        SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM sold s WHERE s.merchant_id =
                                r.merchant_id AND s.category = r.category)) AS already_sold,
               count(*) FILTER (WHERE rank <> pos) AS bad_rank,
               count(*) FILTER (WHERE NOT (expected_buyers > 0
                                AND expected_buyers <= n_customers_with_uplift
                                AND n_customers_with_uplift <= n_merchant_customers))
                   AS bad_expected_buyers,
               count(*) FILTER (WHERE len(evidence_categories) <> len(evidence_lift)
                                OR len(evidence_lift) <> len(evidence_q_value)
                                OR len(evidence_categories) NOT BETWEEN 1 AND {EVIDENCE_PAIRS})
                   AS bad_evidence
        FROM r""").fetchall()[0]
    return dict(zip(("already_sold", "bad_rank", "bad_expected_buyers", "bad_evidence"),
                    (int(v) for v in row), strict=True))
