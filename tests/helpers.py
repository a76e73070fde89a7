"""Small test utilities shared by the unit tests (no fixtures of our own components)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from sharegraph.config import Settings
from sharegraph.contract import TABLES
from sharegraph.warehouse import ensure_schema


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
    from sharegraph.attribution import attribute_orders
    from sharegraph.ingest import load_inputs

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
