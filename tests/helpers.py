"""Small test utilities shared by the unit tests (no fixtures of our own components)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.contract import TABLES
from sharegraph.core.warehouse import ensure_schema


def insert_staging(con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Mapping[str, object]]) -> int:
    """Insert hand-written rows into ``staging.<table>``, filling defaults and lineage.

    Lets a unit test build a tiny warehouse without going through the ingest.
    """
    spec = TABLES[table]
    records = []
    for i, row in enumerate(rows, start=1):
        unknown = set(row) - set(spec.column_names)
        if unknown:
            raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
        rec = {c.name: row.get(c.name, c.default) for c in spec.columns}
        rec.update(source_file="test", source_row=i, batch_id="test", loaded_at=datetime(2026, 1, 1))
        records.append(rec)
    if not records:
        return 0
    frame = pl.DataFrame(records, infer_schema_length=None)  # noqa: F841 - read by DuckDB below
    cols = [*spec.column_names, "source_file", "source_row", "batch_id", "loaded_at"]
    casts = ", ".join(
        f"CAST(frame.{c} AS {spec.column(c).sql_type if c in spec.column_names else 'VARCHAR'})"
        if c not in ("source_row", "loaded_at") else f"frame.{c}"
        for c in cols
    )
    con.execute(f"INSERT INTO staging.{table} ({', '.join(cols)}) SELECT {casts} FROM frame")
    return len(records)


# graph.* tables of exactly the shared contract's shape (graph.share_nodes, graph.attributed_orders),
# built by hand so unit tests do not depend on the attribution / graph modules
SHARE_NODES_DDL = """
CREATE OR REPLACE TABLE graph.share_nodes (
    share_id VARCHAR, actor_id VARCHAR, parent_share_id VARCHAR, root_share_id VARCHAR,
    depth INTEGER, shared_at TIMESTAMP, product_id VARCHAR, category VARCHAR, channel VARCHAR)
"""
ATTRIBUTED_DDL = """
CREATE OR REPLACE TABLE graph.attributed_orders (
    order_id VARCHAR, line_no INTEGER, customer_id VARCHAR, merchant_id VARCHAR,
    product_id VARCHAR, category VARCHAR, ordered_at TIMESTAMP, amount DECIMAL(18,2),
    quantity INTEGER, channel VARCHAR, status VARCHAR, is_paid BOOLEAN, share_id VARCHAR,
    credited_id VARCHAR, rule VARCHAR, is_first_order BOOLEAN,
    commission_yuan DECIMAL(18,2), red_packet_yuan DECIMAL(18,2))
"""


def graph_contract_db() -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse (schemas, empty staging) plus empty graph.share_nodes and
    graph.attributed_orders of the shared contract's shape, for unit tests to fill by hand."""
    con = duckdb.connect()
    ensure_schema(con)
    con.execute(SHARE_NODES_DDL)
    con.execute(ATTRIBUTED_DDL)
    return con


def attributed_world(world: Path, settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with a generated world's files loaded into staging and
    graph.attributed_orders built: the input every mart starts from."""
    from sharegraph.graph.attribution import attribute_orders
    from sharegraph.ingest.load import load_inputs

    con = duckdb.connect()
    ensure_schema(con)
    load_inputs(con, world, settings)
    attribute_orders(con, settings)
    return con


# --- export files written by hand (the ingest tests' bad-input corpus builds on these) ---
ORDER = {"order_id": "o", "customer_id": "c1", "ordered_at": "2026-01-01 10:00:00",
         "product_id": "p1", "category": "food", "quantity": "1", "amount": "10.00",
         "channel": "wechat"}
EVENT = {"event_id": "e", "event_type": "share", "share_id": "s1", "actor_id": "a1",
         "occurred_at": "2026-01-01 09:00:00"}


#: the bad-input corpus of the ingest tests (tests/ingest/test_ingest.py) and the Spark parity
#: tests (tests/spark/test_parity.py): (name, patch of ORDER, column, rule it breaks)
ROW_DEFECTS: list[tuple[str, dict[str, str], str, str]] = [
    ("nan_amount", {"amount": "NaN"}, "amount", "not_money"),
    ("inf_amount", {"amount": "inf"}, "amount", "not_money"),
    ("bad_thousands_grouping", {"amount": "1,20.00"}, "amount", "not_money"),
    ("yuan_suffix", {"amount": "12元"}, "amount", "not_money"),
    ("sign_after_currency", {"amount": "¥-5.00"}, "amount", "not_money"),
    ("negative_with_currency", {"amount": "-¥5.00"}, "amount", "negative_amount"),
    ("currency_three_decimals", {"amount": "¥1,234.567"}, "amount", "money_precision"),
    ("three_decimals", {"amount": "12.345"}, "amount", "money_precision"),
    ("negative_amount", {"amount": "-5.00"}, "amount", "negative_amount"),
    ("exponent_commission", {"commission": "1e3"}, "commission", "not_money"),
    ("negative_red_packet", {"red_packet": "-1"}, "red_packet", "negative_amount"),
    ("zero_quantity", {"quantity": "0"}, "quantity", "below_minimum"),
    ("fractional_quantity", {"quantity": "2.5"}, "quantity", "not_integer"),
    ("text_quantity", {"quantity": "two"}, "quantity", "not_integer"),
    ("huge_quantity", {"quantity": "99999999999"}, "quantity", "not_integer"),
    ("text_line_no", {"line_no": "abc"}, "line_no", "not_integer"),
    ("empty_customer", {"customer_id": ""}, "customer_id", "required"),
    ("blank_customer", {"customer_id": "   "}, "customer_id", "required"),
    ("empty_amount", {"amount": ""}, "amount", "required"),
    ("impossible_date", {"ordered_at": "2026-02-30 10:00:00"}, "ordered_at", "bad_timestamp"),
    ("day_first_date", {"ordered_at": "24/11/2026"}, "ordered_at", "bad_timestamp"),
    ("words_date", {"ordered_at": "yesterday"}, "ordered_at", "bad_timestamp"),
    ("future_date", {"ordered_at": "2099-01-01 00:00:00"}, "ordered_at", "future_timestamp"),
    ("future_by_offset", {"ordered_at": "2099-01-01T00:00:00Z"}, "ordered_at", "future_timestamp"),
    ("empty_channel", {"channel": ""}, "channel", "required"),
    ("unknown_status", {"status": "shipped"}, "status", "unknown_value"),
    ("unknown_status_zh", {"status": "退款中"}, "status", "unknown_value"),
    ("category_not_derivable", {"category": "", "product_id": "p-unknown"}, "category",
     "category_missing"),
]


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8",
              header: list[str] | None = None) -> Path:
    header = header or list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def minimal_dir(d: Path, orders: list[dict] | None = None, events: list[dict] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    write_csv(d / "orders.csv", orders or [dict(ORDER, order_id="o1")])
    write_csv(d / "share_events.csv", events or [dict(EVENT, event_id="e1")])
    return d


def table_counts(con) -> dict[str, int]:
    names = [f"staging.{t}" for t in TABLES] + [
        "quarantine.rejected_rows", "quarantine.batches", "quarantine.flagged_rows"]
    return {n: con.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}


def checksum(con, table: str) -> int:
    cols = ", ".join(TABLES[table].column_names)
    return con.execute(f"SELECT bit_xor(hash({cols})), count(*) FROM staging.{table}").fetchone()


def build_graph(con: duckdb.DuckDBPyConnection) -> None:
    """Attribution and every graph.* table on the staging rows a test inserted."""
    from sharegraph.graph.anomalies import build_anomalies
    from sharegraph.graph.attribution import attribute_orders
    from sharegraph.graph.clicks import build_click_edges
    from sharegraph.graph.people import build_people, build_referral_edges
    from sharegraph.graph.shares import build_share_nodes
    from sharegraph.graph.upline import build_agent_upline

    attribute_orders(con)
    build_share_nodes(con)
    build_click_edges(con)
    build_agent_upline(con)
    build_people(con)
    build_referral_edges(con)
    build_anomalies(con)


#: the first order time of order_line rows
ORDER_T0 = datetime(2025, 3, 1, 10, 0)


def order_line(i: int, customer: str, category: str, *, days: float = 0, merchant: str = "m1",
           status: str = "paid", amount: float = 10.0, order_id: str | None = None,
           line_no: int = 1) -> dict:
    return dict(order_id=order_id or f"o{i}", line_no=line_no, customer_id=customer,
                ordered_at=ORDER_T0 + timedelta(days=days), product_id=f"p_{category}",
                category=category, quantity=1, amount=amount, channel="wechat",
                merchant_id=merchant, status=status)


# --- a tiny warehouse for the report tests: hostile names, every builder of the pipeline ---
XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
REPORT_SETTINGS = Settings(min_pair_customers=3, report_row_cap=50, pseudonym_key="test-key")


# ------------------------------------------------------------------ a tiny warehouse

def build_marts(con: duckdb.DuckDBPyConnection, settings: Settings = REPORT_SETTINGS) -> None:
    """Attribution and every graph/mart builder of the pipeline, on whatever staging holds."""
    from sharegraph.graph import attribution
    from sharegraph.graph.anomalies import build_anomalies
    from sharegraph.graph.audience import build_audience
    from sharegraph.graph.clicks import build_click_edges
    from sharegraph.graph.people import build_people, build_referral_edges
    from sharegraph.graph.shares import build_share_nodes
    from sharegraph.graph.upline import build_agent_upline
    from sharegraph.metrics import (
        affinity,
        cascades,
        expansion,
        growth,
        headline,
        influence,
        integrity,
        lifecycle,
        planner,
    )

    attribution.attribute_orders(con, settings)
    for build in (build_share_nodes, build_click_edges, build_agent_upline, build_people,
                  build_referral_edges, build_audience, build_anomalies,
                  cascades.build_cascades, influence.build_agent_influence,
                  growth.build_kfactor, growth.build_concentration,
                  growth.build_channel_migration, growth.build_group_buys,
                  affinity.build_category_affinity, affinity.build_spillover_affinity,
                  expansion.build_expansion_recommendations, expansion.build_weak_categories,
                  lifecycle.build_agent_funnel, lifecycle.build_agent_cohorts,
                  lifecycle.build_upline_quality, integrity.build_integrity_flags,
                  planner.build_launch_plan, headline.build_headline_metrics):
        build(con, settings)


def build_world(con: duckdb.DuckDBPyConnection, *, hostile: bool = False, seed: int = 3,
                settings: Settings = REPORT_SETTINGS) -> dict[str, list[str]]:
    """Staging rows for ~300 people, then every graph/mart builder of the pipeline.

    People ids look like phone numbers (so a leak is easy to grep). With ``hostile`` the
    product, category, merchant and channel names carry XSS payloads. Returns the ids used.
    """

    rng = np.random.default_rng(seed)
    people = [f"1380013{i:04d}" for i in range(300)]
    agents = people[:40]
    cats = ["美妆", "母婴", "零食", "服饰", "数码", "家居"]
    merchants = ["m_beauty", "m_home"]
    if hostile:
        cats[0], cats[1] = XSS
        merchants[1] = XSS[1]
    products = [
        {"product_id": f"p{i}", "product_name": (XSS[i % 2] if hostile else f"商品{i}"),
         "category": cats[i % 6], "merchant_id": merchants[0 if i % 6 < 3 else 1],
         "merchant_name": (XSS[0] if hostile and i % 6 >= 3 else ("美妆旗舰店" if i % 6 < 3 else "家居馆")),
         "price": 50.0 + 10 * i}
        for i in range(12)
    ]
    t0 = datetime(2025, 1, 6, 9, 0)
    share_channel = XSS[0] if hostile else "moments"
    events: list[dict] = []
    shares: list[tuple[str, str, int]] = []  # share_id, product, root index
    for r in range(25):
        sid = f"s{r}"
        prod = int(rng.integers(12))
        events.append({"event_id": f"e{len(events)}", "event_type": "share", "share_id": sid,
                       "actor_id": agents[r % 40], "occurred_at": t0 + timedelta(hours=r * 7),
                       "product_id": f"p{prod}", "channel": share_channel})
        shares.append((sid, f"p{prod}", r))
        frontier = [sid]
        for k in range(int(rng.integers(0, 12 if r < 5 else 3))):
            parent = frontier[int(rng.integers(len(frontier)))]
            child = f"s{r}_{k}"
            events.append({"event_id": f"e{len(events)}", "event_type": "reshare", "share_id": child,
                           "parent_share_id": parent, "actor_id": people[int(rng.integers(40, 300))],
                           "occurred_at": t0 + timedelta(hours=r * 7 + k + 1),
                           "product_id": f"p{prod}", "channel": "wechat_group"})
            frontier.append(child)
            shares.append((child, f"p{prod}", r))
    orders: list[dict] = []
    for c, person in enumerate(people[40:], start=40):
        first = int(rng.integers(6))
        basket = [first, (first + 1) % 6] if rng.random() < 0.7 else [first]
        if rng.random() < 0.3:
            basket.append(int(rng.integers(6)))
        share = shares[int(rng.integers(len(shares)))] if rng.random() < 0.6 else None
        when = t0 + timedelta(days=int(rng.integers(0, 80)), hours=int(rng.integers(24)))
        if share is not None:
            events.append({"event_id": f"e{len(events)}", "event_type": "click", "share_id": share[0],
                           "actor_id": person, "occurred_at": when - timedelta(hours=1)})
        for j, cat in enumerate(basket):
            prod = cat + 6 * int(rng.integers(2))
            orders.append({
                "order_id": f"o{c}_{j}", "customer_id": person, "ordered_at": when + timedelta(days=3 * j),
                "product_id": f"p{prod}", "category": None, "quantity": 1,
                "amount": round(float(rng.gamma(2.0, 60.0)), 2),
                "channel": ["moments", "jd", "tmall", "wechat_group", "group_buy"][int(rng.integers(5))],
                "merchant_id": products[prod]["merchant_id"],
                "share_id": share[0] if share is not None and j == 0 else None,
                "referrer_id": agents[c % 40] if share is None and rng.random() < 0.5 else None,
                "group_id": f"g{c % 8}" if c % 5 == 0 else None,
                "status": "refunded" if rng.random() < 0.05 else "paid",
            })
    groups = [{"group_id": f"g{g}", "initiator_id": agents[g], "product_id": f"p{g}", "target_size": 3,
               "opened_at": t0 + timedelta(days=g), "closed_at": t0 + timedelta(days=g, hours=5 + g),
               "status": "filled" if g % 3 else "failed"} for g in range(8)]
    upline = [{"agent_id": a, "upline_id": agents[(i - 1) // 3] if i else None, "level": 1 if i == 0 else 2,
               "joined_at": t0 - timedelta(days=100 - i)} for i, a in enumerate(agents)]
    ensure_schema(con)
    insert_staging(con, "products", products)
    insert_staging(con, "share_events", events)
    insert_staging(con, "orders", orders)
    insert_staging(con, "group_buys", groups)
    insert_staging(con, "agents", upline)
    build_marts(con, settings)
    return {"people": people, "merchants": merchants, "categories": cats}


#: malformed CSV lines of an orders file: (name, line, rule the line is quarantined under)
LINE_DEFECTS: list[tuple[str, str, str]] = [
    ("too_many_fields", ",".join(ORDER.values()).replace("o,", "t1,") + ",extra", "field_count"),
    ("too_few_fields", "t2,c1,2026-01-01,p1,food,1,10.00", "field_count"),
    ("stray_quote", 't3,c1,2026-01-01,p1,"fo"od,1,10.00,wechat', "malformed_quotes"),
    ("long_line", "t4,c1,2026-01-01,p1," + "x" * 9_000_000 + ",1,10.00,wechat", "line_too_long"),
]


def write_line_defects(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """An orders CSV with good rows around every ``LINE_DEFECTS`` line, and a quoted field with
    a line break before them all. Returns (data lines, good lines)."""
    good = [",".join(ORDER.values()).replace("o,", f"g{i},", 1) for i in range(6)]
    lines = [good[0], 'g-multi,c1,2026-01-01,p1,"two\nlines",1,10.00,wechat', good[1]]
    for (_, line, _), g in zip(LINE_DEFECTS, good[2:], strict=True):
        lines += [line, g]
    path.write_text(",".join(ORDER) + "\n" + "\n".join(lines) + "\n", encoding=encoding)
    return lines, good
