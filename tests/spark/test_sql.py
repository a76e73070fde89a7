"""The shared SQL's translation: refused constructs, Spark semantics of the rewritten
DuckDB functions, and attribution's engine-specific last click (on DuckDB, against ASOF)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sharegraph.core.config import Settings

pytestmark = pytest.mark.xdist_group("spark")
sqlglot = pytest.importorskip("sqlglot", reason="the [spark] extra is not installed")


@pytest.mark.parametrize("sql", [
    "SELECT len(list(x)) FROM t",
    "SELECT printf('%.2g', x) FROM t",
    "SELECT * FROM a ASOF JOIN b ON a.k = b.k AND a.t >= b.t",
    "SELECT * FROM read_csv('x.csv')",
])
def test_silent_mistranslations_are_refused(sql: str) -> None:
    from sharegraph.spark.sql import UntranslatableSQL, to_spark

    with pytest.raises(UntranslatableSQL):
        to_spark(sql)


def test_tables_become_views_and_parameters_literals() -> None:
    from sharegraph.spark.sql import to_spark

    out = to_spark("SELECT count(*) FROM staging.orders o JOIN graph.people p "
                   "ON p.person_id = o.customer_id WHERE o.channel = ? AND o.quantity > ?",
                   ["it's", 2])
    assert "staging__orders AS o" in out and "graph__people AS p" in out
    assert "'it\\'s'" in out and "> 2" in out


#: (expression, values of x) evaluated by DuckDB and by Spark through to_spark
EXPRESSIONS = [
    ("strlen(x)", ["abc", "茶叶", None]),
    ("regexp_full_match(x, '[+-]?\\d{1,10}(\\.0*)?')", ["12", "12.00", "12.5", "a12", "12a"]),
    ("suffix(x, 'Z')", ["2024-01-01T00:00:00Z", "2024"]),
    ("TRY_CAST(x AS INTEGER)", ["2", "2.0", "2.5", "-3.5", "abc", "99999999999"]),
    ("TRY_CAST(x AS DECIMAL(18,2))", ["1.005", "12", "-0.5"]),
    ("isfinite(TRY_CAST(x AS DOUBLE))", ["1.5", "NaN", "inf", "-inf"]),
    ("timezone('Asia/Shanghai', TRY_CAST(x AS TIMESTAMPTZ))",
     ["2024-01-01 10:00:00+08:00", "2024-01-01T02:00:00Z", "2024-06-30 23:30:00-05:00"]),
    ("TRY_CAST(x AS TIMESTAMP)", ["2024-1-5 3:04:05", "2024-02-30 10:00:00", "2024-01-01"]),
    ("to_json(struct_pack(a := x, b := NULL::VARCHAR))::VARCHAR", ["v", None]),
]


def test_rewritten_functions_mean_the_same_on_spark(spark) -> None:
    from sharegraph.spark.sql import to_spark

    duck = duckdb.connect()
    duck.execute("SET TimeZone = 'UTC'")
    for expr, values in EXPRESSIONS:
        rows = " UNION ALL ".join(
            f"SELECT {i} AS i, " + ("NULL::VARCHAR" if v is None else f"'{v}'") + " AS x"
            for i, v in enumerate(values))
        sql = f"SELECT i, {expr} AS y FROM ({rows}) ORDER BY i"
        want = [r[1] for r in duck.execute(sql).fetchall()]
        got = [r[1] for r in spark.sql(to_spark(sql)).collect()]
        got = [float(g) if hasattr(g, "as_tuple") else g for g in got]
        want = [float(w) if hasattr(w, "as_tuple") else w for w in want]
        assert got == want, expr


#: aggregates (and the rewrites of their DuckDB-only forms) evaluated by both engines per group
AGGREGATES = [
    "list(x ORDER BY k)",
    "list(x ORDER BY k DESC, x)",
    "list(x ORDER BY k NULLS FIRST, x DESC)",
    "list(DISTINCT x ORDER BY x)",
    "first(x ORDER BY k DESC, x)",
    "string_agg(x, '; ' ORDER BY k, x)",
    "arg_min(x, (k, x))",
    "arg_max(x, (k, x))",
    "fsum(w)",
]


def test_aggregates_mean_the_same_on_spark(spark) -> None:
    from sharegraph.spark.sql import to_spark

    rows = [("a", "p", 2, 0.1), ("a", "q", 1, 0.2), ("a", None, 3, 0.3), ("a", "p", None, 1e-17),
            ("b", "z", 7, 1e16), ("b", "y", 5, 1.0), ("b", "y", 5, -1e16), ("c", None, None, 0.5)]
    values = " UNION ALL ".join(
        "SELECT " + ", ".join(
            f"{'NULL' if v is None else repr(v)}{'::' + t} AS {c}"
            for v, (c, t) in zip(r, [("g", "VARCHAR"), ("x", "VARCHAR"), ("k", "INTEGER"),
                                    ("w", "DOUBLE")], strict=True))
        for r in rows)
    duck = duckdb.connect()
    for agg in AGGREGATES:
        sql = f"SELECT g, {agg} AS y FROM ({values}) GROUP BY g ORDER BY g"
        want = duck.execute(sql).fetchall()
        got = [tuple(r) for r in spark.sql(to_spark(sql)).collect()]
        got = [(g, list(y) if isinstance(y, list) else (tuple(y) if hasattr(y, "asDict") else y))
               for g, y in got]
        assert got == want, (agg, to_spark(sql))


def test_last_click_without_asof_equals_the_asof_join(tmp_path: Path) -> None:
    """engine.last_click_sql (Spark's rule 2) run on DuckDB gives attribution's ASOF result."""
    from sharegraph.core.warehouse import connect, ensure_schema
    from sharegraph.demo.generate import generate_world
    from sharegraph.graph import attribution
    from sharegraph.graph.shares import sharers_sql
    from sharegraph.ingest.load import load_inputs
    from sharegraph.spark.engine import last_click_sql

    world = tmp_path / "w"
    generate_world(world, seed=3, people=500, orders=3000)
    con = connect(tmp_path / "wh.duckdb")
    ensure_schema(con)
    load_inputs(con, world, Settings())
    con.execute(f"CREATE TEMP TABLE _attr_sharers AS {sharers_sql()}")
    for window in (1, 7):
        attribution._stage_last_clicks(con, window)
        want = con.execute("SELECT * FROM _attr_click ORDER BY ALL").fetchall()
        got = con.execute(f"SELECT * FROM ({last_click_sql(window)}) "
                          "ORDER BY ALL").fetchall()
        assert len(want) > 50
        assert got == want
    con.close()
