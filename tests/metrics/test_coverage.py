"""marts.table_notes and what the reports say with it (issue #11, parts 4 and 5).

Two small worlds run through the real pipeline: orders alone (share events, products,
agents and group buys missing: influence/cascade marts empty for a recorded reason, affinity
and expansion still run, no quarantine banner) and a world without group buys whose orders
file has a few broken ``amount`` cells (below the reject threshold: the index shows the
banner with the exact count). Plus the dependency map and the SQL on hand-made tables.
"""

from __future__ import annotations

import html
from pathlib import Path

import duckdb

from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.coverage import (
    DEPENDENCIES,
    FACTS,
    OTHER_REASONS,
    UPSTREAM,
    build_table_notes,
)
from tests.conftest import BROKEN_ROWS
from tests.helpers import ATTRIBUTED_DDL, insert_staging


def _notes(run: dict[str, Path]) -> dict[str, dict]:
    con = duckdb.connect(str(run["warehouse"]), read_only=True)
    try:
        cur = con.execute("SELECT * FROM marts.table_notes")
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()


def _read(run: dict[str, Path], name: str) -> str:
    return (run["reports"] / name).read_text(encoding="utf-8")


def test_orders_only_notes_say_no_share_events(orders_only_run: dict[str, Path]) -> None:
    notes = _notes(orders_only_run)
    for table in ("marts.cascades", "graph.share_nodes", "marts.spillover_affinity"):
        assert notes[table]["rows"] == 0 and notes[table]["reason_code"] == "no_share_events", notes[table]
    assert notes["marts.cascades"]["reason_en"] == (
        "No share events were given, so influence and cascade analysis is empty.")
    assert notes["marts.cascades"]["reason_zh"] == "没有提供分享事件（share_events），所以影响力和裂变分析为空。"
    influence = notes["marts.agent_influence"]  # referrers still give it rows: a caveat, not a reason
    assert "no_share_events" in (influence["reason_code"], influence["caveat_code"])
    assert notes["marts.group_buys"]["reason_code"] == "no_group_buys"
    assert notes["graph.agent_upline"]["reason_code"] == "no_agents"
    # affinity and expansion still run on orders alone
    for table in ("marts.category_affinity", "marts.directional_affinity",
                  "marts.expansion_recommendations", "marts.weak_categories", "graph.attributed_orders"):
        assert notes[table]["rows"] > 0 and notes[table]["reason_code"] is None, notes[table]
    # rows = 0 exactly when there is a reason, and every reason has both sentences
    for n in notes.values():
        assert (n["rows"] == 0) == (n["reason_code"] is not None), n
        assert (n["reason_zh"] is None) == (n["reason_en"] is None) == (n["reason_code"] is None), n
        assert n["caveat_code"] is None or n["rows"] > 0, n


def test_notes_cover_every_graph_and_mart_table(orders_only_run: dict[str, Path]) -> None:
    con = duckdb.connect(str(orders_only_run["warehouse"]), read_only=True)
    tables = {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('graph', 'marts')"
    ).fetchall()} - {"marts.table_notes"}
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
    con.close()
    notes = _notes(orders_only_run)
    assert set(notes) == tables
    assert {t: n["rows"] for t, n in notes.items()} == counts
    assert tables <= set(DEPENDENCIES), f"add to sharegraph.metrics.coverage.DEPENDENCIES: {tables - set(DEPENDENCIES)}"


def test_orders_only_reports_say_why_in_both_languages(orders_only_run: dict[str, Path]) -> None:
    note = _notes(orders_only_run)["marts.cascades"]
    zh, en = html.escape(note["reason_zh"]), html.escape(note["reason_en"])
    for page in ("influence.html", "cascades.html", "index.html"):
        text = _read(orders_only_run, page)
        assert zh in text and en in text, page
    cascades = _read(orders_only_run, "cascades.html")
    assert "Plotly.newPlot" not in cascades and "暂无数据" not in cascades  # every section says why
    influence = _read(orders_only_run, "influence.html")
    assert 'class="no-data reason"' in influence and 'class="caveat"' in influence
    index = _read(orders_only_run, "index.html")
    assert 'id="table-notes"' in index and "quarantine-banner" not in index  # clean input: no banner
    assert list(orders_only_run["reports"].glob("expansion-*.html"))  # expansion still reported


def test_broken_rows_show_the_banner_with_the_exact_count(broken_run: dict[str, Path]) -> None:
    con = duckdb.connect(str(broken_run["warehouse"]), read_only=True)
    total = con.execute("SELECT count(*) FROM quarantine.rejected_rows").fetchall()[0][0]
    per_table = dict(con.execute("SELECT table_name, count(*) FROM quarantine.rejected_rows GROUP BY 1").fetchall())
    con.close()
    assert total >= len(BROKEN_ROWS) and set(per_table) == {"orders"}
    index = _read(broken_run, "index.html")
    assert index.count('id="quarantine-banner"') == 1
    assert f"⚠ 有 {total:,} 行输入数据不符合数据约定" in index
    assert f"⚠ {total:,} input rows broke the data contract" in index
    assert f'<code>orders</code>: <span class="zh" lang="zh-CN">{per_table["orders"]:,} 行</span>' in index
    assert html.escape('sharegraph sql "SELECT * FROM quarantine.rejected_rows"') in index
    assert index.index('id="quarantine-banner"') < index.index('id="headline"')  # on top
    # group_buys.csv was not given: the influence page says so where the chart would be
    note = _notes(broken_run)["marts.group_buys"]
    assert note["reason_code"] == "no_group_buys"
    influence = _read(broken_run, "influence.html")
    assert html.escape(note["reason_zh"]) in influence and html.escape(note["reason_en"]) in influence
    for page in ("influence.html", "cascades.html"):  # the banner is on the index only
        assert "quarantine-banner" not in _read(broken_run, page)


# ------------------------------------------------------------------ the map and the SQL alone

def test_dependency_map_is_consistent() -> None:
    for table, d in DEPENDENCIES.items():
        for need in d.needs:
            if need.startswith(UPSTREAM):
                assert need.removeprefix(UPSTREAM) in DEPENDENCIES, (table, need)
            else:
                assert need in FACTS, (table, need)
        assert set(d.caveats) <= set(FACTS), table
        assert d.otherwise in OTHER_REASONS or d.otherwise in FACTS, table
        assert all(d.subject), table


def _tiny() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    con.execute(ATTRIBUTED_DDL)
    con.execute("""INSERT INTO graph.attributed_orders (order_id, customer_id, category, amount, is_paid)
                   VALUES ('o1', 'c1', 'A', 10, true), ('o2', 'c2', 'B', 20, true)""")
    return con


def test_empty_upstream_table_passes_on_its_reason() -> None:
    con = _tiny()
    insert_staging(con, "orders", [{"order_id": "o1", "customer_id": "c1", "amount": 10}])
    insert_staging(con, "group_buys", [{"group_id": "g1", "initiator_id": "c1", "product_id": "p1",
                                        "target_size": 2, "status": "filled"}])
    con.execute("CREATE TABLE marts.group_buys (group_id VARCHAR)")           # empty, inputs present
    con.execute("CREATE TABLE marts.group_buy_summary (month DATE)")          # empty because of it
    con.execute("CREATE TABLE marts.something_new (x INTEGER)")               # not in the map
    con.execute("CREATE TABLE graph.anomalies (kind VARCHAR)")                # nothing found
    con.execute("CREATE TABLE marts.cascades (size INTEGER)")                 # no share events
    assert build_table_notes(con) == 6
    notes = {r[0]: r[1:] for r in con.execute(
        "SELECT table_name, rows, reason_code, reason_en, caveat_code FROM marts.table_notes").fetchall()}
    assert notes["graph.attributed_orders"] == (2, None, None, "no_share_events")
    assert notes["marts.group_buys"][1] == "no_rows"
    assert notes["marts.group_buy_summary"][1:3] == (
        "no_rows", "This input produced no rows, so the monthly group-buy summary is empty.")
    assert notes["marts.something_new"][1:3] == ("no_rows", "This input produced no rows, so this table is empty.")
    assert notes["graph.anomalies"][1] == "nothing_found"
    assert notes["marts.cascades"][1] == "no_share_events"
    comments = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'marts' AND table_name = 'table_notes' "
        "AND coalesce(comment, '') <> ''").fetchall()[0][0]
    assert comments == 8
    con.execute("DROP TABLE marts.group_buy_summary")
    con.execute("INSERT INTO marts.group_buys VALUES ('g1')")
    build_table_notes(con)  # rebuilt: no stale rows, reasons follow the data
    assert con.execute("SELECT rows, reason_code FROM marts.table_notes WHERE table_name = 'marts.group_buys'"
                       ).fetchall()[0] == (1, None)
    assert con.execute("SELECT count(*) FROM marts.table_notes").fetchall()[0][0] == 5


def test_asset_depends_on_every_graph_and_mart_asset_and_reports_on_it() -> None:
    from assets.coverage import TABLE_NOTES
    from pipelines.definitions import load_pipeline

    found, _ = load_pipeline()
    notes = next(a for a in found if TABLE_NOTES in a.keys)
    described = {k for a in found for k in a.keys if k.path[0] in ("graph", "marts")} - {TABLE_NOTES}
    assert set(notes.asset_deps[TABLE_NOTES]) == described
    reports = [k for a in found for k in a.keys if k.path[0] == "reports"]
    assert reports
    for key in reports:
        deps = next(a for a in found if key in a.keys).asset_deps[key]
        assert TABLE_NOTES in deps or any(d.path[0] == "reports" for d in deps), key
