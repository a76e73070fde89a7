"""``engine = "spark"``: compute the Spark stages, write Parquet, load it into the warehouse.

What runs on Spark (docs/engines.md has the table): staging.* with the row-level validation
and in-file duplicate rules, quarantine.rejected_rows / batches, staging.channels, attribution,
the graph.* tables, and the influence, cascade, growth, affinity and expansion marts, each by
the DuckDB builder itself through :class:`~sharegraph.spark.sql.SparkCon`. The lifecycle,
integrity, planner, headline and coverage marts are computed by the DuckDB stages from the
loaded tables (``pipelines.run`` selects those assets).
"""

from __future__ import annotations

import importlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sharegraph.core.config import Settings
from sharegraph.core.sql import ident, literal

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

    from sharegraph.spark.sql import SparkCon

log = logging.getLogger(__name__)

#: the builders run on Spark after attribution, in dependency order: (table, module, function)
DOWNSTREAM = (
    ("graph.share_nodes", "sharegraph.graph.shares", "build_share_nodes"),
    ("graph.click_edges", "sharegraph.graph.clicks", "build_click_edges"),
    ("graph.agent_upline", "sharegraph.graph.upline", "build_agent_upline"),
    ("graph.people", "sharegraph.graph.people", "build_people"),
    ("graph.anomalies", "sharegraph.graph.anomalies", "build_anomalies"),
    ("marts.cascades", "sharegraph.metrics.cascades", "build_cascades"),
    ("marts.agent_influence", "sharegraph.metrics.influence", "build_agent_influence"),
    ("marts.kfactor", "sharegraph.metrics.growth", "build_kfactor"),
    ("marts.concentration", "sharegraph.metrics.growth", "build_concentration"),
    ("marts.channel_migration", "sharegraph.metrics.growth", "build_channel_migration"),
    ("marts.group_buys", "sharegraph.metrics.growth", "build_group_buys"),
    ("marts.group_buy_summary", "sharegraph.metrics.growth", "build_group_buy_summary"),
    ("marts.category_affinity", "sharegraph.metrics.affinity", "build_category_affinity"),
    ("marts.directional_affinity", "sharegraph.metrics.affinity", "build_directional_affinity"),
    ("marts.spillover_affinity", "sharegraph.metrics.affinity", "build_spillover_affinity"),
    ("marts.expansion_recommendations", "sharegraph.metrics.expansion",
     "build_expansion_recommendations"),
    ("marts.weak_categories", "sharegraph.metrics.expansion", "build_weak_categories"),
)

#: tables the Spark engine computes, in the order they are written and loaded
SPARK_TABLES = (
    "staging.products", "staging.agents", "staging.group_buys", "staging.share_events",
    "staging.orders", "staging.channels", "quarantine.rejected_rows", "quarantine.batches",
    "graph.attributed_orders", "graph.referral_edges", *(t for t, _, _ in DOWNSTREAM),
)

def last_click_sql(window: int) -> str:
    """``_attr_click`` (attribution's rule 2, the buyer's last click within the window)
    without DuckDB's ASOF JOIN: attribution's own CTEs, then every earlier click of the buyer
    joined and the latest kept by a window. Plain SQL: it runs on DuckDB too, where a test
    checks it equals the ASOF version (tests/spark/test_sql.py)."""
    from sharegraph.graph.attribution import last_click_ctes

    return f"""
        WITH {last_click_ctes(window)},
        latest AS (
            SELECT n.rid, n.ordered_at, c.share_id, c.click_at,
                   row_number() OVER (PARTITION BY n.rid ORDER BY c.click_at DESC) AS k
            FROM need n JOIN clicks c
              ON c.customer_id = n.customer_id AND n.ordered_at >= c.click_at
        )
        SELECT l.rid, l.share_id, l.click_at, s.sharer_id
        FROM latest l JOIN _attr_sharers s ON s.share_id = l.share_id
        WHERE l.k = 1 AND l.click_at >= l.ordered_at - INTERVAL {window} DAY
"""


@dataclass
class SparkRun:
    """What a Spark run produced: the Parquet folder and per-table rows and seconds."""

    output: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    comments: dict[str, dict[str, str]] = field(default_factory=dict)


def compute(spark: SparkSession, input_dir: str | Path, output: str | Path,
            settings: Settings, now: datetime | None = None) -> SparkRun:
    """Run the Spark stages on ``input_dir`` and write one Parquet folder per table under
    ``output`` (``<output>/<schema>.<table>/``), replacing what was there."""
    from sharegraph.graph import attribution
    from sharegraph.graph.people import build_referral_edges
    from sharegraph.spark.sql import SparkCon
    from sharegraph.spark.stages import load_staging

    out = Path(output)
    run = SparkRun(out)
    sc = SparkCon(spark)
    try:
        t0 = time.perf_counter()
        load_staging(sc, input_dir, settings, now)
        run.seconds["staging"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        log.info("attributing orders")
        _with_rowid(sc)
        window = int(settings.attribution_window_days)
        sc.overrides["_attr_click"] = last_click_sql(window)
        attribution.attribute_orders(sc, settings)  # the DuckDB builder, unchanged
        build_referral_edges(sc, settings)
        run.seconds["attribution"] = time.perf_counter() - t0
        for i, (table, module, function) in enumerate(DOWNSTREAM, 1):
            log.info("building %s (%d of %d)", table, i, len(DOWNSTREAM))
            t0 = time.perf_counter()
            getattr(importlib.import_module(module), function)(sc, settings)
            run.seconds[table] = time.perf_counter() - t0
            log.info("%s on Spark: %.1f s", table, run.seconds[table])

        t0 = time.perf_counter()
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for table in SPARK_TABLES:
            log.info("writing %s as Parquet", table)
            df = sc.table(table)
            if "rowid" in df.columns:
                df = df.drop("rowid")
            df.write.mode("overwrite").parquet(str(out / table))
            run.rows[table] = sc.table(table).count()
        run.seconds["write"] = time.perf_counter() - t0
        run.comments = dict(sc.comments)
    finally:
        sc.close()  # the checkpoints would otherwise stay in executor memory
    return run


def _with_rowid(sc: SparkCon) -> None:
    """staging.orders with DuckDB's ``rowid`` as a column (unique, stable: the table is
    checkpointed), which attribution's SQL matches rows by."""
    from pyspark.sql import functions as F

    orders = sc.table("staging.orders")
    sc.register("staging.orders", orders.withColumn("rowid", F.monotonically_increasing_id()))


def load_into(con: duckdb.DuckDBPyConnection, run: SparkRun) -> dict[str, int]:
    """Replace the warehouse's copies of the Spark tables with the Parquet folders of ``run``.

    Staging and quarantine tables keep their DDL (insert by column name); graph tables are
    created from the Parquet schema. COMMENT ON text recorded on Spark is applied, so
    docs/warehouse.md stays the rendering of the warehouse. One transaction.
    """
    from sharegraph.core import increments
    from sharegraph.core.warehouse import comment_table, ensure_schema

    ensure_schema(con)
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        increments.forget(con, SPARK_TABLES)
        for table in SPARK_TABLES:
            files = literal(str(run.output / table / "*.parquet"))
            schema = table.split(".")[0]
            if schema in ("staging", "quarantine") and table != "staging.channels":
                cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
                names = ", ".join(ident(c) for c in cols)
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} ({names}) SELECT {names} "
                            f"FROM read_parquet({files}) ORDER BY ALL" if table.startswith(
                                "quarantine") else
                            f"INSERT INTO {table} ({names}) SELECT {names} "
                            f"FROM read_parquet({files}) ORDER BY source_file, source_row")
            else:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                con.execute(f"CREATE OR REPLACE TABLE {table} AS "
                            f"SELECT * FROM read_parquet({files})")
            docs = run.comments.get(table)
            if docs:
                text = docs.get("", "")
                comment_table(con, table, text, {k: v for k, v in docs.items() if k})
            counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts
