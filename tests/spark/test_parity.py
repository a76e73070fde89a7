"""Parity: every table ``--engine spark`` computes equals the DuckDB engine's (same rows,
floats within 1e-9), on the bad-input corpus of the ingest tests and on a small demo world
run end to end (``run_pipeline`` with engine = "spark": Spark stages + DuckDB downstream)."""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb
import pytest

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect, ensure_schema
from tests.helpers import (
    EVENT,
    LINE_DEFECTS,
    ORDER,
    ROW_DEFECTS,
    minimal_dir,
    write_csv,
    write_line_defects,
)
from tests.spark.compare import table_diff

pytestmark = pytest.mark.xdist_group("spark")

SETTINGS = Settings(max_reject_rate=1.0)  # the corpus quarantines most rows on purpose


def _corpus(d: Path) -> Path:
    """The ingest tests' bad-row corpus, the share-event / group-buy defects, and in-file
    exact duplicates and key conflicts, in one input directory."""
    header = [*ORDER, "line_no", "status", "commission", "red_packet"]
    a = dict(ORDER, order_id="dup")
    rows = ([dict(ORDER, order_id="good"), a, dict(a), dict(ORDER, order_id="b"),
             dict(ORDER, order_id="b", amount="11.00"),
             dict(ORDER, order_id="multi", customer_id="c 2", channel=" WeChat ")]
            + [dict(ORDER, order_id=name, **patch) for name, patch, _, _ in ROW_DEFECTS])
    minimal_dir(d, events=[dict(EVENT, event_id="e1"), dict(EVENT, event_id="e2", event_type="like"),
                           dict(EVENT, event_id="e3", occurred_at=""),
                           dict(EVENT, event_id="e4", actor_id=""),
                           dict(EVENT, event_id="e5", event_type="click", actor_id="c1",
                                occurred_at="2026-01-01T01:30:00Z")])
    write_csv(d / "orders.csv", rows, header=header)
    write_csv(d / "products.csv", [{"product_id": "p1", "category": "food"}])
    write_csv(d / "group_buys.csv", [
        {"group_id": "g1", "initiator_id": "a", "target_size": "3", "opened_at": "2026-01-01",
         "status": "filled"},
        {"group_id": "g2", "initiator_id": "a", "target_size": "0", "opened_at": "2026-01-01",
         "status": "filled"},
        {"group_id": "g3", "initiator_id": "a", "target_size": "3.0", "opened_at": "2026/1/2 3:04",
         "status": "won"},
    ])
    return d


def test_bad_input_corpus_same_staging_and_quarantine(spark, tmp_path: Path) -> None:
    from sharegraph.graph.attribution import attribute_orders
    from sharegraph.graph.people import build_referral_edges
    from sharegraph.ingest.load import load_inputs
    from sharegraph.spark import engine

    d = _corpus(tmp_path / "in")
    duck = connect(tmp_path / "duck.duckdb")
    ensure_schema(duck)
    load_inputs(duck, d, SETTINGS)
    attribute_orders(duck, SETTINGS)
    build_referral_edges(duck, SETTINGS)
    for _, module, function in engine.DOWNSTREAM:
        getattr(importlib.import_module(module), function)(duck, SETTINGS)
    run = engine.compute(spark, d, tmp_path / "parquet", SETTINGS)
    other = connect(tmp_path / "spark.duckdb")
    engine.load_into(other, run)
    assert duck.execute("SELECT count(*) FROM quarantine.rejected_rows").fetchone()[0] >= 30
    problems = [p for t in engine.SPARK_TABLES for p in table_diff(duck, other, t)]
    assert problems == [], "\n".join(problems)
    assert sorted(p.name for p in (tmp_path / "parquet").iterdir()) == sorted(engine.SPARK_TABLES)


def test_malformed_lines_and_gbk_same_quarantine(spark, tmp_path: Path) -> None:
    """A ragged line, a stray quote and an over-long line are quarantined with the same rule,
    raw line and message on Spark, and the rest of the file loads; a GB18030 file is decoded
    alike (the DuckDB engine's bad-line corpus, tests/ingest)."""
    from sharegraph.ingest.load import load_inputs
    from sharegraph.spark import engine

    d = minimal_dir(tmp_path / "in")
    write_line_defects(d / "orders.csv")
    (d / "products.csv").write_bytes("product_id,category\np1,食品\np2,美妆\n".encode("gb18030"))
    duck = connect(tmp_path / "duck.duckdb")
    ensure_schema(duck)
    load_inputs(duck, d, SETTINGS)
    run = engine.compute(spark, d, tmp_path / "parquet", SETTINGS)
    other = connect(tmp_path / "spark.duckdb")
    engine.load_into(other, run)
    rules = other.execute("SELECT rule FROM quarantine.rejected_rows ORDER BY source_row").fetchall()
    assert [r[0] for r in rules] == [rule for _, _, rule in LINE_DEFECTS]
    assert other.execute("SELECT category FROM staging.products ORDER BY 1").fetchall() == [
        ("美妆",), ("食品",)]
    for t in ("staging.orders", "staging.products", "quarantine.rejected_rows",
              "quarantine.batches"):
        assert table_diff(duck, other, t) == [], t


def test_spark_run_gives_the_same_warehouse(both_runs: dict[str, Path]) -> None:
    """Every table of the published warehouse: the Spark-computed ones and everything the
    DuckDB stages computed downstream of them."""
    a = duckdb.connect(str(both_runs["duck"]), read_only=True)
    b = duckdb.connect(str(both_runs["spark"]), read_only=True)
    # meta.* is the DuckDB builders' record of what they built incrementally (build state,
    # kept counts); a Spark run builds in full and records none (so a later daily run
    # rebuilds in full)
    listing = ("SELECT schema_name || '.' || table_name AS t FROM duckdb_tables() "
               "WHERE NOT temporary AND schema_name <> 'meta' ORDER BY 1")
    tables = [r[0] for r in a.execute(listing).fetchall()]
    assert [r[0] for r in b.execute(listing).fetchall()] == tables
    assert len(tables) > 25
    problems = [p for t in tables for p in table_diff(a, b, t)]
    assert problems == [], "\n".join(problems)
    # the Spark tables came from Spark's Parquet folders, comments included
    from sharegraph.spark.engine import SPARK_TABLES

    assert all((both_runs["parquet"] / t).is_dir() for t in SPARK_TABLES)
    assert b.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'graph' "
                     "AND table_name = 'attributed_orders'").fetchone()[0]


def test_spark_pagerank_equals_the_influence_mart(spark, both_runs: dict[str, Path]) -> None:
    """The Spark PageRank kernel on the Spark run's referral edges gives
    marts.agent_influence.pagerank (buyer -> credited person, weight GMV, alpha 0.85)."""
    import numpy as np

    from sharegraph.spark.kernels import pagerank

    con = duckdb.connect(str(both_runs["spark"]), read_only=True)
    edges = con.sql("""
        WITH e AS (SELECT buyer_id, sharer_id, sum(gmv)::DOUBLE AS w
                   FROM graph.referral_edges GROUP BY ALL),
        n AS (SELECT id, (row_number() OVER (ORDER BY id) - 1) AS i
              FROM (SELECT buyer_id AS id FROM e UNION SELECT sharer_id FROM e))
        SELECT b.i AS src, s.i AS dst, e.w AS weight, b.id AS buyer, s.id AS sharer
        FROM e JOIN n b ON b.id = e.buyer_id JOIN n s ON s.id = e.sharer_id""").to_arrow_table()
    names = con.execute("""SELECT id FROM (SELECT buyer_id AS id FROM graph.referral_edges
        UNION SELECT sharer_id FROM graph.referral_edges) ORDER BY id""").fetchall()
    want = dict(con.execute("SELECT person_id, pagerank FROM marts.agent_influence").fetchall())
    df = spark.createDataFrame(
        list(zip(*(edges.column(c).to_pylist() for c in ("src", "dst", "weight")), strict=True)),
        "src BIGINT, dst BIGINT, weight DOUBLE")
    got = {names[r["id"]][0]: r["rank"] for r in pagerank(spark, df, len(names)).collect()}
    shared = [p for p in want if p in got]
    assert len(shared) > 50
    assert max(abs(got[p] - want[p]) for p in shared) < 1e-9
    assert np.isclose(sum(got.values()), 1.0)


def test_uri_input_dir_reads_like_the_folder(spark, tmp_path: Path) -> None:
    """An input directory given as a URI (file:// here; s3a:// and hdfs:// go the same way,
    through pyarrow.fs on the driver and Hadoop in Spark) loads the same staging tables."""
    from sharegraph.spark import engine

    d = _corpus(tmp_path / "in")
    by_path = engine.compute(spark, d, tmp_path / "a", SETTINGS)
    by_uri = engine.compute(spark, d.as_uri(), tmp_path / "b", SETTINGS)
    one, two = connect(tmp_path / "a.duckdb"), connect(tmp_path / "b.duckdb")
    engine.load_into(one, by_path)
    engine.load_into(two, by_uri)
    for t in ("staging.orders", "quarantine.rejected_rows", "quarantine.batches"):
        assert table_diff(one, two, t) == [], t
    files = two.execute("SELECT DISTINCT source_file FROM quarantine.batches").fetchall()
    assert ("orders.csv",) in files
