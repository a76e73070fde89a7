"""marts.headline_metrics: one definition per headline number, equal to an independent
computation from staging, and exactly what the index page shows."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from sharegraph.metrics.headline import DEFINITIONS
from sharegraph.reports.headlines import CARDS, card_value
from sharegraph.reports.pseudonym import KEY_FILE, pseudonym


def _mart(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    return {m: (v, s) for m, v, s in con.execute(
        "SELECT metric, value, subject FROM marts.headline_metrics "
        "WHERE scope = 'all' AND period = 'all'").fetchall()}


def test_headline_equals_plain_computations_from_staging(pipeline_run: dict) -> None:
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as con:
        h = _mart(con)
        orders = con.sql("SELECT order_id, customer_id, amount, status, merchant_id "
                         "FROM staging.orders").pl()
        groups = con.sql("SELECT status FROM staging.group_buys").pl()
        leader = con.sql("""SELECT person_id, influence_gmv FROM marts.agent_influence
                            WHERE is_agent""").pl()
        per_merchant = dict(con.execute("SELECT scope, value FROM marts.headline_metrics "
                                        "WHERE metric = 'paid_gmv' AND scope <> 'all' "
                                        "AND period = 'all'").fetchall())
    assert set(h) == set(DEFINITIONS)
    paid = orders.filter(pl.col("status") == "paid")
    assert Decimal(str(h["paid_gmv"][0])).quantize(Decimal("0.01")) == sum(paid["amount"])
    assert h["paid_orders"][0] == paid["order_id"].n_unique()
    assert h["customers"][0] == paid["customer_id"].n_unique()
    by_m = paid.group_by("merchant_id").agg(pl.col("amount").sum())
    assert {m: round(float(v), 2) for m, v in by_m.iter_rows()} == {
        m: round(v, 2) for m, v in per_merchant.items()}
    filled = (groups["status"] == "filled").sum()
    failed = (groups["status"] == "failed").sum()
    assert abs(h["group_buy_success_rate"][0] - filled / (filled + failed)) < 1e-12
    assert h["group_buys_open"][0] == (groups["status"] == "open").sum()
    top = leader.sort(["influence_gmv", "person_id"], descending=[True, False]).row(0)
    assert h["top_agent_influence_gmv"][1] == top[0]


def test_index_cards_show_the_headline_rows(pipeline_run: dict) -> None:
    wh, reports = Path(pipeline_run["warehouse"]), Path(pipeline_run["reports"])
    html = (reports / "index.html").read_text(encoding="utf-8")
    key = (wh.parent / KEY_FILE).read_text(encoding="utf-8").strip()
    with duckdb.connect(str(wh), read_only=True) as con:
        h = _mart(con)
    for metric, _, fmt in CARDS:
        card = re.search(rf'<div class="card" data-metric="{metric}">.*?<div class="value">([^<]*)</div>',
                         html, re.S)
        assert card is not None, metric
        value, subject = h[metric]
        want = pseudonym(subject, key) if fmt == "agent" else card_value(fmt, value)
        assert card.group(1) == want, metric


def _cards(html: str) -> dict[str, str]:
    return dict(re.findall(r'<div class="card" data-metric="([^"]+)">.*?<div class="value">([^<]*)</div>', html, re.S))


def test_every_page_card_equals_its_headline_row(pipeline_run: dict) -> None:
    """Influence and trends pages show the same rows through the same formats as the index,
    and the influence charts' headline numbers (Gini, group-buy success) are the rows too."""
    from sharegraph.reports.influence import SUMMARY as INFLUENCE_CARDS
    from sharegraph.reports.page import percent
    from sharegraph.reports.trends import SUMMARY as TREND_CARDS

    wh, reports = Path(pipeline_run["warehouse"]), Path(pipeline_run["reports"])
    key = (wh.parent / KEY_FILE).read_text(encoding="utf-8").strip()
    with duckdb.connect(str(wh), read_only=True) as con:
        h = _mart(con)
    for page, which in (("influence.html", INFLUENCE_CARDS), ("trends.html", TREND_CARDS)):
        html = (reports / page).read_text(encoding="utf-8")
        shown = _cards(html)
        for metric, _, fmt in which:
            value, subject = h[metric]
            assert shown[metric] == (pseudonym(subject, key) if fmt == "agent" else card_value(fmt, value)), \
                (page, metric)
    influence = (reports / "influence.html").read_text(encoding="utf-8")
    assert f"Gini {h['gini_credited'][0]:.3f}" in influence  # the figure JSON (ASCII-escaped zh)
    assert f"({percent(h['group_buy_success_rate'][0])} success)" in influence


def test_monthly_rows_equal_plain_computations(pipeline_run: dict) -> None:
    """Trend rows (period 'YYYY-MM') against polars over staging and graph tables; the months
    add up to the whole period where the metric is additive."""
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as con:
        rows = con.sql("SELECT metric, period, value FROM marts.headline_metrics "
                       "WHERE scope = 'all' AND period <> 'all'").pl()
        h = _mart(con)
        lines = con.sql("""SELECT a.ordered_at, a.amount::DOUBLE AS amount, c.channel_class
                           FROM graph.attributed_orders a JOIN staging.channels c USING (channel)
                           WHERE a.is_paid""").pl()
        groups = con.sql("SELECT status, opened_at FROM staging.group_buys").pl()
    month = pl.col("ordered_at").dt.strftime("%Y-%m")

    def got(metric: str) -> dict[str, float]:
        part = rows.filter(pl.col("metric") == metric)
        return dict(zip(part["period"], part["value"], strict=True))

    for klass in ("platform", "social"):
        want = lines.filter(pl.col("channel_class") == klass).group_by(month.alias("m")).agg(pl.col("amount").sum())
        mine = got(f"paid_gmv_{klass}")
        assert {m: round(v, 2) for m, v in want.iter_rows()} == {m: round(v, 2) for m, v in mine.items() if v}
        assert abs(sum(mine.values()) - h[f"paid_gmv_{klass}"][0]) < 0.01
    assert abs(sum(got("paid_gmv").values()) - h["paid_gmv"][0]) < 0.01
    assert abs(sum(got("new_customers_via_shares").values()) - h["new_customers_via_shares"][0]) < 1e-9
    per_month = groups.group_by(pl.col("opened_at").dt.strftime("%Y-%m").alias("m")).agg(
        filled=(pl.col("status") == "filled").sum(), failed=(pl.col("status") == "failed").sum())
    rate = got("group_buy_success_rate")
    for m, filled, failed in per_month.iter_rows():
        if filled + failed:
            assert abs(rate[m] - filled / (filled + failed)) < 1e-12
    assert max(got("active_agents").values()) <= h["active_agents"][0] <= sum(got("active_agents").values())


def test_nothing_credited_is_a_zero_share_not_unknown(tmp_path: Path) -> None:
    """Orders without referrers or shares (e.g. a marketplace export): attributed share 0%."""
    from sharegraph.core.warehouse import ensure_schema
    from tests.helpers import build_marts, insert_staging, order_line

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    insert_staging(con, "orders", [order_line(i, f"c{i % 7}", "food", days=i) for i in range(30)])
    build_marts(con)
    assert _mart(con)["attributed_share"] == (0.0, None)
    assert _mart(con)["paid_gmv"] == (300.0, None)
    con.close()


def test_paid_orders_count_orders_of_several_lines_once(tmp_path: Path) -> None:
    """Distinct paid orders, written out by hand: two-line orders count once, an order whose
    only paid line is line 2 counts, a refunded order does not."""
    from sharegraph.core.warehouse import ensure_schema
    from tests.helpers import build_marts, insert_staging, order_line

    lines = [
        order_line(0, "a", "food"),                                   # o0: one line
        order_line(1, "a", "tea", order_id="o0", line_no=2),          # o0: its second line
        order_line(2, "b", "food", order_id="o2"),                    # o2: line 1 refunded,
        order_line(3, "b", "tea", order_id="o2", line_no=2),          #     line 2 paid
        order_line(4, "c", "food", order_id="o4", status="refunded"),  # o4: refunded
        order_line(5, "d", "tea", order_id="o5", line_no=3),          # o5: only a line 3
        order_line(6, "e", "food"),                                   # o6
    ]
    lines[2]["status"] = "refunded"
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    insert_staging(con, "orders", lines)
    build_marts(con)
    assert _mart(con)["paid_orders"] == (4.0, None)  # o0, o2, o5, o6
    con.close()
