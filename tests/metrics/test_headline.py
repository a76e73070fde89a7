"""marts.headline_metrics: one definition per headline number, equal to an independent
computation from staging, and exactly what the index page shows."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from sharegraph.metrics.headline import DEFINITIONS
from sharegraph.reports.index import CARDS, card_value
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
