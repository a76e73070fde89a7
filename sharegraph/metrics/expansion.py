"""Which categories should a merchant add, and which of its categories fit its line badly.

Both marts read ``marts.category_affinity`` (scope 'all', basis 'customer': affinity
estimated over every merchant's customers, the most data) and the paid order lines.
Definitions in docs/affinity.md.
"""

from __future__ import annotations

import logging

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.sql import fixed, q_text, table_exists
from sharegraph.core.warehouse import finish_table
from sharegraph.metrics.affinity import ALL_SCOPE, paid_lines_sql
from sharegraph.metrics.tails import norm_isf

log = logging.getLogger(__name__)

EVIDENCE_PAIRS = 3
"""Supporting pairs shown per recommendation."""

MAX_CANDIDATES = 10
"""Candidates listed per merchant (all of its unsold categories when it has fewer)."""

TIERS = ("significant", "suggestive", "insufficient_data")
"""``confidence_tier`` values, strongest evidence first (docs/affinity.md)."""

EXPANSION_COLUMNS = {
    "merchant_id": "Merchant the recommendation is for.",
    "category": "Candidate category B: one the merchant does not sell (no paid line, no product), with paid lines overall.",
    "rank": "1 = best candidate for this merchant: largest expected incremental GMV (significant pairs), then largest observed expected incremental GMV (any positive pair), then most common overall.",
    "n_merchant_customers": "Customers with a paid line at the merchant.",
    "n_customers_with_uplift": "Of those, customers who bought at the merchant some A with a significant positive uplift A -> B (0 when none).",
    "expected_buyers": "Sum over the merchant's customers of max over the A's they bought at the merchant of uplift(A -> B) = confidence(A -> B) - support(B) (overall, customer basis; significant pairs only; 0 when none).",
    "base_rate": "support(B) overall: share of all customers who bought B.",
    "avg_order_value_yuan": "Average paid order value of B overall, ¥: paid GMV of B lines / paid orders with a B line.",
    "expected_incremental_gmv_yuan": "expected_buyers x avg_order_value_yuan, ¥ (one order per expected buyer; 0 unless significant).",
    "evidence": "Top supporting significant pairs as text: 'A -> B: lift, confidence, n_ab, q' (NULL when none is significant).",
    "evidence_categories": "Top supporting antecedent categories A, significant pairs only (most expected buyers first; empty when none).",
    "evidence_lift": "lift(A -> B) overall, per evidence category.",
    "evidence_confidence": "confidence(A -> B) overall, per evidence category.",
    "evidence_n_ab": "Customers overall who bought both A and B, per evidence category.",
    "evidence_q_value": "Benjamini-Hochberg q-value of A -> B overall, per evidence category.",
    "evidence_expected_buyers": "Expected buyers of B contributed through A (customers whose best A it is).",
    "expected_buyers_observed": "Like expected_buyers, but over every pair with lift > 1 whatever its significance (the ranking for candidates without a significant pair).",
    "expected_incremental_gmv_observed_yuan": "expected_buyers_observed x avg_order_value_yuan, ¥.",
    "lead_category": "The category A the reason talks about: the first evidence category when significant, else the A contributing the most observed expected buyers; NULL when no category of the merchant has lift > 1 to B.",
    "lead_lift": "lift(lead_category -> B) overall, customer basis.",
    "lead_confidence": "confidence(lead_category -> B) overall: share of A buyers who also bought B.",
    "lead_n_ab": "Customers overall who bought both lead_category and B (common customers).",
    "lead_p_value": "One-sided hypergeometric p-value of lead_category -> B.",
    "lead_q_value": "Benjamini-Hochberg q-value of lead_category -> B (family: scope all, customer basis).",
    "confidence_tier": "significant (a significant pair: q <= fdr_alpha, n_ab >= min_pair_customers, lift > 1); suggestive (lead pair lift > 1, n_ab >= min_pair_customers and p <= fdr_alpha before the multiple-testing correction); insufficient_data (otherwise).",
    "customers_needed": "insufficient_data with lead lift > 1: common customers (n_ab) that would make the lead pair significant at its observed lift and proportions (normal approximation of log lift, BH threshold fdr_alpha (R + 1) / m); NULL otherwise.",
    "reason_zh": "Why this candidate, in plain Chinese.",
    "reason_en": "Why this candidate, in plain English.",
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


_PAIR_COLUMNS = """category_a, category_b, confidence - support_b AS uplift, lift, confidence, n_ab, n_a,
               n_b, n_total, p_value, q_value, meets_min_count"""


def _evidence_ctes(contrib: str, pairs: str) -> str:
    """CTEs ``contrib``, ``ev``: per merchant and candidate, the ``EVIDENCE_PAIRS`` source
    categories A that bring the most expected buyers (``contrib``: merchant, candidate, A,
    buyers), with their pair statistics (from ``pairs``) as lists and one readable sentence."""
    return f"""
        contrib AS (
            SELECT *, row_number() OVER (PARTITION BY merchant_id, category_b
                                         ORDER BY buyers DESC, best_a) AS k
            FROM {contrib}
        ), ev AS (
            SELECT c.merchant_id, c.category_b,
                   list(c.best_a ORDER BY c.k) AS evidence_categories,
                   list(u.lift ORDER BY c.k) AS evidence_lift,
                   list(u.confidence ORDER BY c.k) AS evidence_confidence,
                   list(u.n_ab ORDER BY c.k) AS evidence_n_ab,
                   list(u.q_value ORDER BY c.k) AS evidence_q_value,
                   list(c.buyers ORDER BY c.k) AS evidence_expected_buyers,
                   string_agg(c.best_a || ' -> ' || c.category_b || ': lift '
                              || {fixed("u.lift", 2)} || ', confidence '
                              || {fixed("100 * u.confidence", 1)} || '%, n_ab '
                              || format('{{:,}}', u.n_ab) || ', q ' || {q_text("u.q_value")},
                              '; ' ORDER BY c.k) AS evidence
            FROM contrib c
            JOIN {pairs} u ON u.category_a = c.best_a AND u.category_b = c.category_b
            WHERE c.k <= {EVIDENCE_PAIRS}
            GROUP BY ALL
        )"""


def _stage_profiles(con: duckdb.DuckDBPyConnection, src: str) -> None:
    """Temp tables both uplift passes and the ranking share, each computed once:
    ``_exp_sold`` (what each merchant sells), ``_exp_profiles`` (one row per merchant per
    distinct set of categories its customers bought there, with the number of customers: the
    work then scales with distinct sets, not customers) and ``_exp_sold_everywhere`` (the
    categories every merchant with paid lines sells: a candidate for nobody)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _exp_sold AS {_sold_sql(con)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _exp_profiles AS
        SELECT row_number() OVER () AS pid, merchant_id, count(*) AS n, cats
        FROM (SELECT merchant_id, customer_id, list(DISTINCT category ORDER BY category) AS cats
              FROM ({src}) GROUP BY ALL)
        GROUP BY merchant_id, cats""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _exp_sold_everywhere AS
        WITH merchants AS (SELECT DISTINCT merchant_id FROM _exp_profiles)
        SELECT category FROM _exp_sold
        WHERE merchant_id IN (SELECT merchant_id FROM merchants)
        GROUP BY category
        HAVING count(*) = (SELECT count(*) FROM merchants)""")


#: join rows (profile categories x their pairs) per chunk of the uplift sums: bounds the memory
#: of the per-profile maxima whatever the merchants and categories; smaller chunks were also
#: faster down to ~2.5M (the aggregate's hash table stays in cache): 105M rows took 41.9 s in
#: 25M chunks, 34.2 s in 5M, 32.5 s in 2.5M and 32.3 s in 1M
CHUNK_ROWS = 2_500_000


def _stage_uplift_sums(con: duckdb.DuckDBPyConnection, pairs: str, out: str,
                       totals: bool = False) -> None:
    """Temp tables over ``pairs`` (category_a, category_b, uplift) and the customer profiles
    (``_exp_profiles``), for the targets B each merchant does not sell:

    - ``{out}_contrib``: per merchant, B and best A, the expected buyers ``fsum(n * uplift)``
      of the profiles whose largest uplift towards B comes from A (ties: the first A);
    - with ``totals``, ``{out}_total``: per merchant and B, the same sum over all its profiles,
      and their customers (``sum(n)``).

    The per-profile maxima are the costly part: profiles x the pairs of their categories
    (105M rows for 500 merchants over 20k categories, where most pairs with lift > 1 have one
    customer: 45 s and 11 GiB as one statement). They are taken on integer category codes, in
    chunks of targets B of about ``CHUNK_ROWS`` join rows, each summed before the next. Every
    sum belongs to one merchant and one B, so it lies in one chunk, and ``fsum`` is correctly
    rounded: the values are those of one pass. Pairs towards a category every merchant sells
    are dropped first (one merchant selling 30k leaf categories: 24 s for nothing)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _exp_codes AS
        SELECT category, (row_number() OVER (ORDER BY category))::INTEGER AS c
        FROM (SELECT category_a AS category FROM {pairs} UNION SELECT category_b FROM {pairs})""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _exp_ipairs AS
        SELECT ca.c AS a, cb.c AS b, u.uplift
        FROM {pairs} u JOIN _exp_codes ca ON ca.category = u.category_a
        JOIN _exp_codes cb ON cb.category = u.category_b
        ANTI JOIN _exp_sold_everywhere s ON s.category = u.category_b""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _exp_ientries AS
        SELECT e.pid, c.c AS a
        FROM (SELECT pid, unnest(cats) AS category FROM _exp_profiles) e
        JOIN _exp_codes c USING (category)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _exp_imerchants AS
        SELECT merchant_id, (row_number() OVER (ORDER BY merchant_id))::INTEGER AS m
        FROM (SELECT DISTINCT merchant_id FROM _exp_profiles)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _exp_iprofiles AS
        SELECT p.pid, im.m, p.n FROM _exp_profiles p JOIN _exp_imerchants im USING (merchant_id)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _exp_isold AS
        SELECT im.m, c.c AS b FROM _exp_sold s JOIN _exp_codes c USING (category)
        JOIN _exp_imerchants im USING (merchant_id)""")
    join_rows = con.execute("""
        SELECT COALESCE(sum(d.n), 0) FROM _exp_ientries e
        JOIN (SELECT a, count(*) AS n FROM _exp_ipairs GROUP BY a) d USING (a)""").fetchone()[0]
    chunks = max(1, -(-int(join_rows) // CHUNK_ROWS))
    sums = {"contrib": "b, a, fsum(n * uplift) AS buyers"}
    if totals:
        sums["total"] = "b, fsum(n * uplift) AS expected_buyers, sum(n) AS n_customers_with_uplift"
    parts: dict[str, list[str]] = {kind: [] for kind in sums}
    # with totals (the significant pass: few pairs) each sum re-derives the chunk's maxima;
    # materializing them once instead cost the observed pass 1.5 s of 31 s at 20k categories
    for i in range(chunks):
        for kind, columns in sums.items():
            parts[kind].append(f"_exp_{kind}_{i}")
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _exp_{kind}_{i} AS
                WITH best AS (   -- per profile and B: the largest uplift, and its A (ties: first)
                    SELECT e.pid, u.b, max(u.uplift) AS uplift,
                           arg_min(u.a, (-u.uplift, u.a)) AS a
                    FROM _exp_ientries e JOIN _exp_ipairs u USING (a)
                    WHERE u.b % {chunks} = {i}
                    GROUP BY ALL
                )
                SELECT p.m, {columns}
                FROM best JOIN _exp_iprofiles p USING (pid)
                ANTI JOIN _exp_isold sold ON sold.m = p.m AND sold.b = best.b
                GROUP BY ALL""")
    union = {kind: " UNION ALL ".join(f"SELECT * FROM {t}" for t in tables)
             for kind, tables in parts.items()}
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {out}_contrib AS
        SELECT im.merchant_id, cb.category AS category_b, ca.category AS best_a, r.buyers
        FROM ({union["contrib"]}) r JOIN _exp_imerchants im USING (m)
        JOIN _exp_codes cb ON cb.c = r.b JOIN _exp_codes ca ON ca.c = r.a""")
    if totals:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {out}_total AS
            SELECT im.merchant_id, cb.category AS category_b, r.expected_buyers,
                   r.n_customers_with_uplift
            FROM ({union["total"]}) r JOIN _exp_imerchants im USING (m)
            JOIN _exp_codes cb ON cb.c = r.b""")
    for temp in (*parts["contrib"], *parts.get("total", []), "_exp_codes", "_exp_ipairs",
                 "_exp_ientries", "_exp_imerchants", "_exp_iprofiles", "_exp_isold"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")


def _may_have_candidates(con: duckdb.DuckDBPyConnection, src: str) -> bool:
    """False when every merchant with paid lines has paid lines in every category that has
    any: then no merchant lacks a category and every list is empty (a one-shop export, or
    shops selling the whole catalogue), and profiling the customers (seconds at 10M lines)
    is skipped. True otherwise: some merchant may lack a category."""
    return bool(con.execute(f"""
        WITH paid AS (SELECT DISTINCT merchant_id, category FROM ({src}))
        SELECT count(*) < count(DISTINCT merchant_id) * count(DISTINCT category)
               OR count(*) FILTER (WHERE merchant_id IS NULL OR category IS NULL) > 0
        FROM paid""").fetchone()[0])


def needed_z(con: duckdb.DuckDBPyConnection, settings: Settings, src: str) -> float:
    """z a pair's log lift must reach to be significant: the one-sided normal quantile of the
    Benjamini-Hochberg threshold fdr_alpha (R + 1) / m, where m = k(k-1)/2 pairs are tested
    overall and R of them are rejected now (q <= fdr_alpha): a new p-value at or below it is
    rejected whatever the others (docs/affinity.md)."""
    k = int(con.execute(f"SELECT count(DISTINCT category) FROM ({src})").fetchall()[0][0])
    r = int(con.execute(
        "SELECT count(*) FROM marts.category_affinity WHERE scope = ? AND basis = 'customer' "
        "AND category_a < category_b AND q_value <= ?", [ALL_SCOPE, settings.fdr_alpha],
    ).fetchall()[0][0])
    m = max(k * (k - 1) // 2, 1)
    return norm_isf(min(0.5, settings.fdr_alpha * (r + 1) / m))


def _reasons_sql() -> tuple[str, str]:
    """SQL expressions for reason_zh and reason_en over the columns of ``tiered``."""
    pct = fixed("100 * lead_confidence", 1)
    lift = (f"CASE WHEN lead_lift < 1.1 THEN {fixed('lead_lift', 2)} "
            f"ELSE {fixed('lead_lift', 1)} END")
    nab = "format('{:,}', lead_n_ab)"
    need = "format('{:,}', customers_needed)"
    base = fixed("100 * base_rate", 1)
    zh_head = f"'买' || lead_category || '的客户中 ' || {pct} || '% 也买' || category || '，是平均水平的 ' || {lift} || ' 倍'"
    en_head = (f"{pct} || '% of customers who buy ' || lead_category || ' also buy ' || category "
               f"|| ', ' || {lift} || ' times the average'")
    zh = f"""CASE
        WHEN lead_category IS NULL THEN '本店客户买的类目与' || category
             || '都没有正向关联；按它在全体客户中的普及度（' || {base} || '%）列出。'
        WHEN confidence_tier = 'significant' THEN {zh_head} || '（' || {nab} || ' 位共同客户）。'
        WHEN confidence_tier = 'suggestive' THEN {zh_head} || '（' || {nab}
             || ' 位共同客户），但同时比较了很多类目对，校正后还不显著，仅供参考。'
        ELSE {zh_head} || '，但只有 ' || {nab} || ' 位共同客户；按这个倍数，约需 ' || {need}
             || ' 位共同客户才能确认。' END"""
    en = f"""CASE
        WHEN lead_category IS NULL THEN 'No category your customers buy is linked to ' || category
             || ' more than average; listed by how common it is (' || {base} || '% of all customers).'
        WHEN confidence_tier = 'significant' THEN {en_head} || ' (' || {nab} || ' customers bought both).'
        WHEN confidence_tier = 'suggestive' THEN {en_head} || ' (' || {nab}
             || ' customers bought both), but with so many category pairs compared it is not significant yet: a hint only.'
        ELSE {en_head} || ', but only ' || {nab} || ' customers bought both; at this lift about ' || {need}
             || ' would be needed to confirm it.' END"""
    return zh, en


def _candidate_ctes(src: str) -> str:
    """WITH ... cand: each merchant's candidate categories (every unsold category an
    observed uplift points to, plus the most common unsold ones to fill the list), with the
    merchant's customers, category base rates and the significant-pair evidence."""
    return f"""
        WITH lines AS ({src}),
        merchant_customers AS (
            SELECT merchant_id, count(DISTINCT customer_id) AS n FROM lines GROUP BY ALL
        ), totals AS (
            SELECT count(DISTINCT customer_id) AS n_total FROM lines
        ), base AS (
            SELECT category, count(DISTINCT customer_id) / any_value(totals.n_total) AS base_rate,
                   sum(amount)::DOUBLE / count(DISTINCT order_id) AS aov
            FROM lines CROSS JOIN totals GROUP BY category
        ), base_ranked AS (
            SELECT *, row_number() OVER (ORDER BY base_rate DESC, category) AS grank FROM base
        ), sold AS (SELECT * FROM _exp_sold),
        n_sold AS (SELECT merchant_id, count(*) AS n FROM sold GROUP BY ALL),
        -- the sums are fsum (compensated, correctly rounded; _stage_uplift_sums and obs): they
        -- do not depend on the order rows arrive in, so equal inputs give equal marts
        agg AS (SELECT * FROM _exp_sig_total),
        obs AS (
            SELECT merchant_id, category_b, fsum(buyers) AS observed_buyers,
                   first(best_a ORDER BY buyers DESC, best_a) AS obs_lead
            FROM _exp_obs_contrib GROUP BY ALL
        ), fill AS (   -- the most common unsold categories: enough to fill every list
            SELECT mc.merchant_id, b.category AS category_b
            FROM merchant_customers mc LEFT JOIN n_sold ns USING (merchant_id)
            JOIN base_ranked b ON b.grank <= {MAX_CANDIDATES} + COALESCE(ns.n, 0)
            ANTI JOIN sold ON sold.merchant_id = mc.merchant_id AND sold.category = b.category
        ), cand AS (
            SELECT merchant_id, category_b FROM obs UNION SELECT merchant_id, category_b FROM fill
        ), {_evidence_ctes("_exp_sig_contrib", "_exp_uplift").strip()},"""


#: ranked: one row per candidate with its expected buyers and GMV (significant pairs, then
#: every pair with lift > 1), the keys the list is ranked by; the evidence is joined to the
#: few that make a list only (with many categories there are millions of candidates)
_RANKED_CTE = """
        ranked AS (
            SELECT c.merchant_id, c.category_b AS category,
                   mc.n AS n_merchant_customers,
                   COALESCE(agg.n_customers_with_uplift, 0)::BIGINT AS n_customers_with_uplift,
                   COALESCE(agg.expected_buyers, 0.0) AS expected_buyers,
                   b.base_rate, b.aov AS avg_order_value_yuan,
                   COALESCE(agg.expected_buyers, 0.0) * b.aov AS expected_incremental_gmv_yuan,
                   COALESCE(obs.observed_buyers, 0.0) AS expected_buyers_observed,
                   COALESCE(obs.observed_buyers, 0.0) * b.aov AS expected_incremental_gmv_observed_yuan,
                   obs.obs_lead
            FROM cand c
            JOIN merchant_customers mc USING (merchant_id)
            JOIN base b ON b.category = c.category_b
            LEFT JOIN agg ON agg.merchant_id = c.merchant_id AND agg.category_b = c.category_b
            LEFT JOIN obs ON obs.merchant_id = c.merchant_id AND obs.category_b = c.category_b"""


def _tier_ctes(alpha: float, min_n: int, z: float) -> str:
    """listed, top, tiered: the best MAX_CANDIDATES per merchant with their evidence, each with
    its confidence tier and the common customers a not-yet-significant lead pair would need
    (docs/affinity.md)."""
    return f"""
        ), listed AS (
            SELECT *, row_number() OVER (PARTITION BY merchant_id
                   ORDER BY expected_incremental_gmv_yuan DESC,
                            expected_incremental_gmv_observed_yuan DESC, base_rate DESC,
                            category)::INTEGER AS rank
            FROM ranked QUALIFY rank <= {MAX_CANDIDATES}
        ), top AS (
            SELECT r.* EXCLUDE (obs_lead), ev.evidence,
                   COALESCE(ev.evidence_categories, []::VARCHAR[]) AS evidence_categories,
                   COALESCE(ev.evidence_lift, []::DOUBLE[]) AS evidence_lift,
                   COALESCE(ev.evidence_confidence, []::DOUBLE[]) AS evidence_confidence,
                   COALESCE(ev.evidence_n_ab, []::BIGINT[]) AS evidence_n_ab,
                   COALESCE(ev.evidence_q_value, []::DOUBLE[]) AS evidence_q_value,
                   COALESCE(ev.evidence_expected_buyers, []::DOUBLE[]) AS evidence_expected_buyers,
                   COALESCE(ev.evidence_categories[1], r.obs_lead) AS lead_category
            FROM listed r
            LEFT JOIN ev ON ev.merchant_id = r.merchant_id AND ev.category_b = r.category
        ), tiered AS (
            SELECT top.*, p.lift AS lead_lift, p.confidence AS lead_confidence,
                   p.n_ab AS lead_n_ab, p.p_value AS lead_p_value, p.q_value AS lead_q_value,
                   CASE WHEN top.expected_buyers > 0 THEN 'significant'
                        WHEN p.lift > 1 AND p.meets_min_count AND p.p_value <= {alpha!r}
                            THEN 'suggestive'
                        ELSE 'insufficient_data' END AS confidence_tier,
                   CASE WHEN top.expected_buyers <= 0 AND p.lift > 1
                             AND NOT (p.meets_min_count AND p.p_value <= {alpha!r})
                        THEN greatest({min_n}, p.n_ab + 1, ceil(p.n_ab * pow({z!r} * sqrt(
                             1 / p.n_ab::DOUBLE - 1 / p.n_a::DOUBLE + 1 / p.n_b::DOUBLE
                             - 1 / p.n_total::DOUBLE) / ln(p.lift), 2)))::BIGINT
                   END AS customers_needed
            FROM top LEFT JOIN _exp_obs p
              ON p.category_a = top.lead_category AND p.category_b = top.category
        )"""


def build_expansion_recommendations(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Build ``marts.expansion_recommendations``: per merchant, its ``MAX_CANDIDATES`` best
    categories it does not sell, each with a confidence tier and a reason in both languages.

    For target B, each customer of the merchant counts once, with the largest uplift
    confidence(A -> B) - support(B) over the categories A they bought at the merchant
    (significant pairs of the overall customer-basis affinity), so a customer who bought
    several A's is not counted several times. The same sum over every pair with lift > 1
    ranks the candidates no significant pair supports, so a merchant always gets a list and
    is told how sure it is. Customers are grouped by their set of categories first, so the
    work scales with distinct sets, not with customers. Requires ``marts.category_affinity``.
    """
    src = paid_lines_sql(con)
    z = needed_z(con, settings, src)
    if not _may_have_candidates(con, src):  # the same statements over no lines: same columns
        src = f"SELECT * FROM ({src}) WHERE false"
    alpha, min_n = float(settings.fdr_alpha), int(settings.min_pair_customers)
    for table, where in (("_exp_uplift", "is_significant"), ("_exp_obs", "lift > 1")):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {table} AS
            SELECT {_PAIR_COLUMNS} FROM marts.category_affinity
            WHERE scope = '{ALL_SCOPE}' AND basis = 'customer' AND {where}""")
    _stage_profiles(con, src)
    _stage_uplift_sums(con, "_exp_uplift", "_exp_sig", totals=True)
    _stage_uplift_sums(con, "_exp_obs", "_exp_obs")
    reason_zh, reason_en = _reasons_sql()
    con.execute(f"""
        CREATE OR REPLACE TABLE marts.expansion_recommendations AS
        -- one row per merchant per candidate category it does not sell, at most {MAX_CANDIDATES}
        {_candidate_ctes(src)}
        {_RANKED_CTE}
        {_tier_ctes(alpha, min_n, z)}
        SELECT merchant_id, category, rank, n_merchant_customers, n_customers_with_uplift,
               expected_buyers, base_rate, avg_order_value_yuan, expected_incremental_gmv_yuan,
               evidence, evidence_categories, evidence_lift, evidence_confidence, evidence_n_ab,
               evidence_q_value, evidence_expected_buyers, expected_buyers_observed,
               expected_incremental_gmv_observed_yuan, lead_category, lead_lift,
               lead_confidence, lead_n_ab, lead_p_value, lead_q_value, confidence_tier,
               customers_needed, {reason_zh} AS reason_zh, {reason_en} AS reason_en
        FROM tiered
        ORDER BY merchant_id, rank""")
    for temp in ("_exp_uplift", "_exp_obs", "_exp_sig_contrib", "_exp_sig_total", "_exp_obs_contrib", "_exp_sold",
                 "_exp_profiles", "_exp_sold_everywhere"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return finish_table(
        con, "marts.expansion_recommendations",
        "Categories a merchant does not sell, ranked by expected incremental GMV from its own "
        f"customers' cross-category affinity: per merchant its {MAX_CANDIDATES} best candidates "
        "(all when it lacks fewer), each with a confidence tier and a reason in Chinese and "
        "English. See docs/affinity.md.",
        EXPANSION_COLUMNS,
    )


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
    return finish_table(
        con, "marts.weak_categories",
        "Per merchant, how well each category it sells fits the rest of its line: one row per "
        "merchant per category with paid lines there. See docs/affinity.md.",
        WEAK_COLUMNS,
    )


def expansion_problems(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of ``marts.expansion_recommendations`` that break its definition.

    A recommended category must not be sold by the merchant; ranks run 1..n per merchant and
    stop at ``MAX_CANDIDATES``; expected buyers lie in [0, merchant customers], > 0 exactly
    for the significant tier, whose evidence arrays have equal lengths 1..EVIDENCE_PAIRS
    (empty for the other tiers); customers_needed only for insufficient data.
    """
    tiers = ", ".join(f"'{t}'" for t in TIERS)
    row = con.execute(f"""
        WITH sold AS ({_sold_sql(con)}),
        r AS (SELECT *, row_number() OVER (PARTITION BY merchant_id ORDER BY rank) AS pos
              FROM marts.expansion_recommendations)
        SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM sold s WHERE s.merchant_id =
                                r.merchant_id AND s.category = r.category)) AS already_sold,
               count(*) FILTER (WHERE rank <> pos OR rank > {MAX_CANDIDATES}) AS bad_rank,
               count(*) FILTER (WHERE NOT (expected_buyers >= 0
                                AND expected_buyers <= n_customers_with_uplift
                                AND n_customers_with_uplift <= n_merchant_customers)
                                OR (expected_buyers > 0) <> (confidence_tier = 'significant'))
                   AS bad_expected_buyers,
               count(*) FILTER (WHERE len(evidence_categories) <> len(evidence_lift)
                                OR len(evidence_lift) <> len(evidence_q_value)
                                OR len(evidence_categories) NOT BETWEEN
                                   (CASE WHEN confidence_tier = 'significant' THEN 1 ELSE 0 END)
                                   AND (CASE WHEN confidence_tier = 'significant'
                                        THEN {EVIDENCE_PAIRS} ELSE 0 END))
                   AS bad_evidence,
               count(*) FILTER (WHERE confidence_tier NOT IN ({tiers})
                                OR (customers_needed IS NOT NULL)
                                   AND confidence_tier <> 'insufficient_data'
                                OR reason_zh IS NULL OR reason_en IS NULL) AS bad_tier
        FROM r""").fetchall()[0]
    return dict(zip(("already_sold", "bad_rank", "bad_expected_buyers", "bad_evidence", "bad_tier"),
                    (int(v) for v in row), strict=True))
