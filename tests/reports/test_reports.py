"""sharegraph.reports: figure builders on small frames, escaping, ¥ formatting, pseudonyms,
and whole reports rendered from a tiny warehouse built by the real pipeline functions."""

from __future__ import annotations

import hashlib
import hmac
import re
from html import escape as html_escape
from pathlib import Path

import duckdb
import numpy as np
import plotly.graph_objects as go
import polars as pl
import pytest

from sharegraph.core.warehouse import ensure_schema
from sharegraph.reports import figures, page, render_all
from sharegraph.reports.data import ReportQueryError
from sharegraph.reports.expansion import report_file
from sharegraph.reports.pseudonym import pseudonym, pseudonymize
from tests.helpers import REPORT_SETTINGS, XSS, build_marts, build_world

SETTINGS = REPORT_SETTINGS


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("reports")
    con = duckdb.connect(str(out / "wh.duckdb"))
    ids = build_world(con)
    written = render_all(con, SETTINGS, out / "reports")
    con.close()
    return {"dir": out / "reports", "written": written, "ids": ids}


# ------------------------------------------------------------------ formatting and escaping

def test_yuan_has_symbol_and_thousands_separators() -> None:
    assert page.yuan(1234567.891) == "¥1,234,567.89"
    assert page.yuan(-5) == "-¥5.00"
    assert page.yuan(None) == "–" and page.yuan(float("nan")) == "–"
    assert page.percent(0.1234) == "12.3%"


def test_html_and_plotly_escaping() -> None:
    assert page.esc(XSS[1]) == "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert page.pesc(XSS[1]) == '"&gt;&lt;img src=x onerror=alert(1)&gt;'  # Plotly keeps "
    s = pl.Series(["a&b<c>", None])
    out = pl.DataFrame({"s": s}).select(page.pesc_expr(pl.col("s"))).to_series().to_list()
    assert out == [page.pesc("a&b<c>"), None]


def test_table_escapes_cells_and_caps_rows() -> None:
    frame = pl.DataFrame({"name": [XSS[0], XSS[1], "ok"], "gmv": [1234.5, None, 3.0]})
    html = page.html_table(frame, [page.Col("name", "名", "Name"), page.Col("gmv", "额", "GMV", "money")],
                           row_cap=2, table_id="t")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "¥1,234.50" in html and html.count("<tr>") == 3  # header + 2 rows
    assert "共 3 行" in html and "of 3 rows" in html


def test_page_has_no_external_resources() -> None:
    html = page.render_page(page.Text("标题", "Title"), "<p>x</p>")
    srcs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert srcs and not [s for s in srcs if s.startswith(("http:", "https:", "//"))]
    assert '<script src="plotly.min.js"' in html


def test_write_atomic_and_plotlyjs(tmp_path: Path) -> None:
    n = page.write_atomic(tmp_path / "a.html", "中文")
    assert n == len("中文".encode()) and (tmp_path / "a.html").read_text(encoding="utf-8") == "中文"
    js = page.ensure_plotlyjs(tmp_path)
    assert js.stat().st_size > 1_000_000
    mtime = js.stat().st_mtime_ns
    page.ensure_plotlyjs(tmp_path)
    assert js.stat().st_mtime_ns == mtime  # unchanged copy is not rewritten
    assert not list(tmp_path.glob("*.tmp"))


# ------------------------------------------------------------------ pseudonyms

def test_pseudonyms_are_stable_keyed_hmac() -> None:
    p = pseudonym("13800138000", "k1")
    expected = "P-" + hmac.new(b"k1", b"13800138000", hashlib.sha256).hexdigest()[:16]
    assert p == expected and pseudonym("13800138000", "k1") == p
    assert pseudonym("13800138000", "k2") != p
    assert pseudonym(None, "k1") is None
    frame = pl.DataFrame({"a": ["x", "y", None], "b": ["y", "z", "x"], "n": [1, 2, 3]})
    out = pseudonymize(frame, ["a", "b", "missing"], "k1")
    assert out["a"].to_list() == [pseudonym("x", "k1"), pseudonym("y", "k1"), None]
    assert out["b"][0] == out["a"][1] and out["n"].to_list() == [1, 2, 3]


# ------------------------------------------------------------------ figure builders

def _labels(fig: go.Figure) -> dict:
    return fig.layout.meta["i18n"]


def test_empty_or_missing_frames_give_a_message() -> None:
    empty = pl.DataFrame({"agent": [], "direct_gmv": [], "downstream_gmv": []})
    for block in (
        figures.direct_downstream_scatter(None),
        figures.direct_downstream_scatter(empty),
        figures.lorenz_curve(pl.DataFrame({"gmv": [0.0, 0.0]})),
        figures.cascade_distributions(pl.DataFrame({"kind": ["size"]})),  # missing columns
        figures.kfactor_by_cohort(None),
        figures.channel_migration(None),
        figures.group_buy_fill(None),
        figures.downline_treemap(None),
        figures.monthly_gmv_by_class(None),
        figures.monthly_series(pl.DataFrame({"month": [], "value": []}), ("a", "b"), ("a", "b")),
        figures.cascade_tree(None, ("a", "b")),
        figures.pair_heatmap(None, "lift", ("a", "b"), (("a", "b"), ("c", "d"))),
        figures.ranked_money_bar(None, "c", "v", ("a", "b"), ("a", "b")),
        figures.size_virality_scatter(pl.DataFrame({"size": [1], "structural_virality": [0.0], "depth": [0]})),
    ):
        assert isinstance(block, str) and "暂无数据" in block and "No data" in block
    assert "missing columns: value, n" in figures.cascade_distributions(pl.DataFrame({"kind": ["size"]}))
    assert "暂无数据" in page.figure_html(figures.kfactor_by_cohort(None), "x")


def test_scatter_has_points_money_axes_and_both_languages() -> None:
    frame = pl.DataFrame({"agent": ["P-1", XSS[0], "P-3"], "direct_gmv": [100.0, 2000.0, 0.0],
                          "downstream_gmv": [50.0, 10.0, 5.0]})
    fig = figures.direct_downstream_scatter(frame)
    assert list(fig.data[0].x) == [100.0, 2000.0] and list(fig.data[0].y) == [50.0, 10.0]
    assert fig.data[0].text[1] == page.pesc(XSS[0])
    assert fig.layout.xaxis.tickprefix == "¥" and fig.layout.separators == ".,"
    labels = _labels(fig)
    assert fig.layout.title.text == labels["zh"]["layout"]["title.text"] and "直接" in fig.layout.title.text
    assert "Direct" in labels["en"]["layout"]["title.text"] and "1 people" in labels["en"]["layout"]["title.text"]
    assert "¥%{x:,.2f}" in labels["en"]["traces"]["hovertemplate"][0]


def test_gini_and_lorenz_against_direct_formula() -> None:
    x = np.array([1.0, 2.0, 3.0, 10.0])
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert figures.gini(x) == pytest.approx(mad)
    assert figures.gini(np.ones(5)) == pytest.approx(0.0)
    px, py = figures.lorenz_points(x)
    assert list(px) == [0, 0.25, 0.5, 0.75, 1.0] and py[-1] == pytest.approx(1.0) and py[1] == pytest.approx(1 / 16)
    big = np.random.default_rng(0).pareto(1.5, 100_000)
    px, py = figures.lorenz_points(big)
    assert px.size == 501 and np.all(np.diff(py) >= -1e-12)
    fig = figures.lorenz_curve(pl.DataFrame({"gmv": x}), None, ("KOL驱动", "KOL-driven"))
    assert f"{mad:.3f}" in fig.layout.annotations[0].text and "KOL驱动" in fig.layout.annotations[0].text
    assert "KOL-driven" in _labels(fig)["en"]["layout"]["annotations[0].text"]
    fig = figures.lorenz_curve(pl.DataFrame({"gmv": x}), 0.5, None)
    assert "0.500" in fig.layout.annotations[0].text


def test_cascade_distribution_log_axes() -> None:
    frame = pl.DataFrame({"kind": ["size", "size", "depth", "depth"], "value": [1, 5, 0, 3], "n": [90, 3, 90, 3]})
    fig = figures.cascade_distributions(frame)
    assert list(fig.data[0].x) == [1, 5] and list(fig.data[1].y) == [90, 3]
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "log"


def test_channel_migration_and_kfactor() -> None:
    frame = pl.DataFrame({"period": ["2025-01", "2025-01", "2025-02", "2025-02"],
                          "group": ["platform", "social", "platform", XSS[0]], "gmv": [80.0, 20.0, 40.0, 60.0]})
    fig = figures.channel_migration(frame)
    assert [tr.name for tr in fig.data] == ["平台渠道", "社交渠道", page.pesc(XSS[0])]
    assert _labels(fig)["en"]["traces"]["name"][:2] == ["Platform channels", "Social channels"]
    assert fig.data[0].groupnorm == "percent"
    k = figures.kfactor_by_cohort(pl.DataFrame({"cohort": ["2025-01-13", "2025-01-06"], "k_factor": [0.2, 1.5]}))
    assert list(k.data[0].x) == ["2025-01-06", "2025-01-13"] and list(k.data[0].y) == [1.5, 0.2]


def test_group_buy_fill_bins_counts() -> None:
    frame = pl.DataFrame({"fill_rate": [1.0, 1.0, 0.5, 0.0], "hours_to_fill": [2.0, 4.0, None, None]})
    fig = figures.group_buy_fill(frame, 2 / 3)  # the headline rate: filled / (filled + failed)
    assert sum(fig.data[0].y) == 4 and sum(fig.data[1].y) == 2
    assert "66.7%" in fig.layout.title.text and "66.7% success" in _labels(fig)["en"]["layout"]["title.text"]
    assert "%" not in figures.group_buy_fill(frame).layout.title.text  # no rate given: none invented


def test_kfactor_marks_incomplete_cohorts() -> None:
    frame = pl.DataFrame({"cohort": ["2025-01-06", "2025-01-13", "2025-01-20"], "k_factor": [0.5, 0.4, 0.1],
                          "cohort_size": [10, 10, 10], "complete": [True, True, False]})
    fig = figures.kfactor_by_cohort(frame, 30)
    assert [list(tr.x) for tr in fig.data] == [["2025-01-06", "2025-01-13"], ["2025-01-20"]]
    assert fig.data[1].marker.pattern.shape == "/" and "Incomplete" in _labels(fig)["en"]["traces"]["name"][1]
    assert "30" in fig.layout.yaxis.title.text
    assert len(figures.kfactor_by_cohort(frame.drop("complete")).data) == 1


def test_lorenz_is_titled_over_credited_people() -> None:
    fig = figures.lorenz_curve(pl.DataFrame({"gmv": [1.0, 2.0, 7.0]}), 0.4, None)
    assert "被归因者" in fig.layout.title.text and "代理" not in fig.layout.title.text
    assert "credited people" in _labels(fig)["en"]["layout"]["title.text"]


def test_monthly_trend_figures_hatch_incomplete_months() -> None:
    frame = pl.DataFrame({"month": ["2025-01", "2025-01", "2025-02", "2025-02"],
                          "class": ["social", "platform", "social", "platform"],
                          "gmv": [10.0, 20.0, 5.0, 1.0], "complete": [True, True, False, False]})
    fig = figures.monthly_gmv_by_class(frame)
    assert [tr.name for tr in fig.data] == ["平台渠道", "社交渠道"] and fig.layout.barmode == "stack"
    assert list(fig.data[0].marker.pattern.shape) == ["", "/"] and fig.layout.yaxis.tickprefix == "¥"
    rate = figures.monthly_series(pl.DataFrame({"month": ["2025-01", "2025-02"], "value": [0.5, None],
                                                "complete": [True, True]}), ("t", "t"), ("a", "a"), "rate", 0.5)
    assert list(rate.data[0].x) == ["2025-01"] and rate.layout.yaxis.tickformat == ".0%"
    assert figures.monthly_series(None, ("t", "t"), ("a", "a")) == page.no_data()


def test_treemap_labels_are_escaped_and_ids_opaque() -> None:
    frame = pl.DataFrame({"node": ["1", "2", "3"], "parent": [None, "1", "1"],
                          "label": ["P-a", XSS[1], "P-c"], "value": [10.0, 5.0, None]})
    fig = figures.downline_treemap(frame)
    assert list(fig.data[0].ids) == ["1", "2", "3"] and list(fig.data[0].parents) == ["", "1", "1"]
    assert fig.data[0].labels[1] == page.pesc(XSS[1]) and list(fig.data[0].values) == [10.0, 5.0, 0.0]


def test_cascade_tree_layout() -> None:
    frame = pl.DataFrame({"node": ["r", "a", "b", "c"], "parent": [None, "r", "r", "a"],
                          "generation": [0, 1, 1, 2], "label": ["P-r", "P-a", "P-b", "P-c"]})
    lay = figures.tree_layout(frame).sort("node")
    y = dict(zip(lay["node"], lay["y"], strict=True))
    assert y["c"] == y["a"] and y["r"] == pytest.approx((y["a"] + y["b"]) / 2) and y["b"] != y["c"]
    fig = figures.cascade_tree(frame, ("树 <b>", "tree <b>"))
    assert fig.layout.title.text == "树 &lt;b&gt;"
    assert len([v for v in fig.data[0].x if v is None]) == 3  # three edges
    assert list(fig.data[1].x) == [0, 1, 1, 2]


def test_heatmap_pivots_and_escapes() -> None:
    frame = pl.DataFrame({"a": ["x", "x", XSS[0]], "b": ["y", XSS[0], "y"], "lift": [2.0, 0.5, 1.5]})
    fig = figures.pair_heatmap(frame, "lift", ("t", "t"), (("A", "A"), ("B", "B")))
    xs, ys = list(fig.data[0].x), list(fig.data[0].y)
    assert page.pesc(XSS[0]) in xs and page.pesc(XSS[0]) in ys
    z = np.array(fig.data[0].z, dtype=float)  # log2(lift): 1 = lift 2
    assert z[ys.index("x"), xs.index("y")] == 1.0 and np.isnan(z[ys.index(page.pesc(XSS[0])), xs.index(page.pesc(XSS[0]))])
    assert fig.data[0].zmid == 0.0 and fig.data[0].zmax == -fig.data[0].zmin == 3.0  # 1/8 .. 8 everywhere
    assert fig.data[0].text[ys.index("x")][xs.index("y")] == "2.00"  # the value in the cell
    cell = ys.index(page.pesc(XSS[0])), xs.index(page.pesc(XSS[0]))
    assert fig.data[1].text[cell[0]][cell[1]] == "同类目"  # missing: grey, labelled


def test_ranked_money_bar() -> None:
    frame = pl.DataFrame({"c": ["a", "b", "c"], "v": [10.0, 30.0, 20.0]})
    fig = figures.ranked_money_bar(frame, "c", "v", ("t", "t"), ("x", "x"))
    assert list(fig.data[0].y) == ["a", "c", "b"]  # largest drawn on top
    assert fig.layout.xaxis.tickprefix == "¥" and fig.layout.height == 240  # floor for a few bars


def test_report_file_names_are_safe_and_distinct() -> None:
    assert report_file("m_beauty") == "expansion-m_beauty.html"
    a, b = report_file(XSS[1]), report_file(XSS[0])
    assert re.fullmatch(r"expansion-[A-Za-z0-9_-]+\.html", a) and a != b
    assert report_file("a/b") != report_file("a_b")


# ------------------------------------------------------------------ whole reports

def test_render_all_writes_every_report(rendered: dict) -> None:
    out: Path = rendered["dir"]
    names = sorted(p.name for p in out.iterdir())
    assert {"index.html", "influence.html", "cascades.html", "plotly.min.js", "trends.html", "glossary.html",
            "expansion-m_beauty.html", "expansion-m_home.html"} <= set(names)
    index = (out / "index.html").read_text(encoding="utf-8")
    for f in ("influence.html", "cascades.html", "expansion-m_beauty.html", "expansion-m_home.html",
              "trends.html", "glossary.html"):
        assert f'href="{f}"' in index
    assert "KiB" in index and "MiB" in index  # report sizes, plotly.min.js size
    assert re.search(r"¥\d{1,3}(,\d{3})*\.\d\d", index)
    influence_html = (out / "influence.html").read_text(encoding="utf-8")
    assert influence_html.count("Plotly.newPlot") == 7
    assert 'id="leaderboard"' in influence_html
    trends = (out / "trends.html").read_text(encoding="utf-8")
    assert trends.count("Plotly.newPlot") == 4
    for text in (influence_html, trends):  # every chart says what it means, in both languages
        assert text.count('<p class="meaning">') >= text.count("Plotly.newPlot")
    glossary = (out / "glossary.html").read_text(encoding="utf-8")
    from sharegraph.metrics.headline import DEFINITIONS

    for metric, (_, zh, en) in DEFINITIONS.items():
        assert f"<code>{metric}</code>" in glossary and html_escape(zh) in glossary and html_escape(en) in glossary
    for text in (index, influence_html, trends, glossary):
        assert 'href="glossary.html"' in text and 'href="trends.html"' in text  # in the nav


def test_downline_treemap_roots_are_the_leaderboard_top(tmp_path: Path) -> None:
    """The treemap's roots are the leaderboard's top agents (#1 first), not another notion of
    downline: the contradiction of issue #14."""
    from sharegraph.reports.influence import TREE_ROOTS, downline_tree

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    build_world(con)
    top = [r[0] for r in con.execute(
        "SELECT person_id FROM marts.agent_influence WHERE is_agent AND influence_gmv > 0 "
        "ORDER BY influence_gmv DESC, person_id LIMIT ?", [TREE_ROOTS]).fetchall()]
    fig = downline_tree(con, SETTINGS)
    con.close()
    roots = [lab for lab, parent in zip(fig.data[0].labels, fig.data[0].parents, strict=True) if not parent]
    assert roots == [f"#{i} {pseudonym(p, SETTINGS.pseudonym_key)}" for i, p in enumerate(top, 1)]


def test_reports_never_print_raw_person_ids(rendered: dict) -> None:
    for path in rendered["dir"].glob("*.html"):
        text = path.read_text(encoding="utf-8")
        leaked = re.findall(r"1380013\d{4}", text)
        assert not leaked, f"{path.name} prints raw person ids {leaked[:3]}"
    influence_html = (rendered["dir"] / "influence.html").read_text(encoding="utf-8")
    assert pseudonym(rendered["ids"]["people"][0], SETTINGS.pseudonym_key) in influence_html or \
        re.search(r"P-[0-9a-f]{16}", influence_html)


def test_a_failing_report_query_fails_the_report(tmp_path: Path) -> None:
    """Marts never built: an error naming the table, not a page of silent 'no data'."""
    con = duckdb.connect(str(tmp_path / "unbuilt.duckdb"))
    ensure_schema(con)
    with pytest.raises(ReportQueryError, match="does not exist"):
        render_all(con, SETTINGS, tmp_path / "r")
    con.close()


def test_reports_render_on_an_empty_warehouse(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    ensure_schema(con)
    build_marts(con, SETTINGS)  # every table exists, all empty
    written = render_all(con, SETTINGS, tmp_path / "r")
    con.close()
    assert written["expansion"] == []
    for name in ("influence.html", "cascades.html"):
        text = (tmp_path / "r" / name).read_text(encoding="utf-8")
        assert "暂无数据" in text and "Plotly.newPlot" not in text
    index = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert 'href="influence.html"' in index and '<div class="value">–</div>' in index


def test_hostile_names_are_escaped_in_the_files(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    build_world(con, hostile=True)
    render_all(con, SETTINGS, tmp_path / "r")
    con.close()
    for path in (tmp_path / "r").glob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<img src=x" not in text, path.name
        scripts = re.findall(r"<script([^>]*)>", text)
        assert all(s in ("", ' src="plotly.min.js" charset="utf-8"', ' type="text/javascript"') for s in scripts), scripts


# ------------------------------------------------------------------ reasons and the quarantine banner

def test_empty_state_shows_the_recorded_reason_escaped() -> None:
    from sharegraph.reports.notes import Note, caveat, explain

    notes = {
        "marts.cascades": Note("marts.cascades", 0, "no_share_events", "没有<分享>事件。", 'No "share" <events>.',
                               None, None, None),
        "marts.kfactor": Note("marts.kfactor", 3, None, None, None, "no_share_events", "只有推荐人。",
                              "Referrers only."),
    }
    block = explain(page.no_data(), notes, "marts.kfactor", "marts.cascades")
    assert page.is_message(block) and 'class="no-data reason"' in block
    assert "没有&lt;分享&gt;事件。" in block and "No &quot;share&quot; &lt;events&gt;." in block
    fig = go.Figure()
    assert explain(fig, notes, "marts.cascades") is fig  # a chart with data stays
    assert explain(page.no_data(), notes, "marts.kfactor") == page.no_data()  # has rows: generic message
    assert explain(page.no_data(), {}, "marts.cascades") == page.no_data()  # no notes table
    assert 'class="caveat"' in caveat(notes, "marts.kfactor") and caveat(notes, "marts.cascades") == ""


def test_quarantine_banner_counts_per_table_and_escapes(tmp_path: Path) -> None:
    from sharegraph.reports.notes import quarantine_banner

    con = duckdb.connect()
    ensure_schema(con)
    assert quarantine_banner(con) == ""  # nothing rejected: no banner
    rows = [("orders", "amount", "type")] * 4 + [("orders", XSS[0], "required")] + \
           [("share_events", "occurred_at", "type")] * 2
    con.executemany(
        "INSERT INTO quarantine.rejected_rows VALUES ('b', ?, 'f.csv', 1, ?, ?, 'abc', '{}', now())",
        [list(r) for r in rows])
    banner = quarantine_banner(con)
    assert 'role="alert"' in banner and "⚠ 7 input rows broke" in banner and "⚠ 有 7 行" in banner
    assert "amount type × 4" in banner and "occurred_at type × 2" in banner
    assert banner.index("<code>orders</code>") < banner.index("<code>share_events</code>")  # most first
    assert "<script>" not in banner and html_escape(XSS[0]) in banner
    assert "quarantine.rejected_rows" in banner
    con.execute("DELETE FROM quarantine.rejected_rows WHERE table_name = 'share_events' OR rule = 'required'")
    con.execute("DELETE FROM quarantine.rejected_rows WHERE rowid IN (SELECT min(rowid) FROM quarantine.rejected_rows)")
    con.execute("DELETE FROM quarantine.rejected_rows WHERE rowid IN (SELECT min(rowid) FROM quarantine.rejected_rows)")
    con.execute("DELETE FROM quarantine.rejected_rows WHERE rowid IN (SELECT min(rowid) FROM quarantine.rejected_rows)")
    assert "⚠ 1 input row broke the data contract and was quarantined" in quarantine_banner(con)


def test_index_lists_unavailable_analyses_from_table_notes(tmp_path: Path) -> None:
    from sharegraph.metrics.coverage import build_table_notes

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    build_world(con)
    con.execute("DELETE FROM marts.group_buys")
    con.execute("DELETE FROM staging.group_buys")
    build_table_notes(con)
    render_all(con, SETTINGS, tmp_path / "r")
    reason = con.execute(
        "SELECT reason_zh, reason_en FROM marts.table_notes WHERE table_name = 'marts.group_buys'").fetchall()[0]
    con.close()
    index = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    influence = (tmp_path / "r" / "influence.html").read_text(encoding="utf-8")
    assert reason == ("没有提供拼团表（group_buys），所以拼团分析为空。",
                      "No group buys were given, so group-buy analysis is empty.")
    for text in (index, influence):
        assert html_escape(reason[0]) in text and html_escape(reason[1]) in text
    assert 'id="table-notes"' in index and "<code>marts.group_buys</code>" in index
    assert "quarantine-banner" not in index
    assert influence.count("Plotly.newPlot") == 6  # the group-buy chart became the reason


def test_share_funnel_overall_and_per_agent(tmp_path: Path) -> None:
    """Shares -> clicks -> orders: the 'all' trace sums the mart, each agent's trace is its row,
    in leaderboard order (plain SQL on marts.agent_influence)."""
    from sharegraph.reports.lifecycle import FUNNEL_AGENTS, share_funnel

    con = duckdb.connect(str(tmp_path / "f.duckdb"))
    build_world(con)
    fig = share_funnel(con, "k")
    total = con.execute("SELECT sum(shares_made), sum(clicks_received), sum(share_orders) "
                        "FROM marts.agent_influence").fetchone()
    top = con.execute(f"""SELECT person_id, shares_made, clicks_received, share_orders
        FROM marts.agent_influence WHERE is_agent AND shares_made > 0
        ORDER BY influence_gmv DESC, person_id LIMIT {FUNNEL_AGENTS}""").fetchall()
    con.close()
    assert list(fig.data[0].x) == [int(v) for v in total] and fig.data[0].visible
    assert len(fig.data) == 1 + len(top) and len(top) > 0
    for trace, (person, *counts) in zip(fig.data[1:], top, strict=True):
        assert list(trace.x) == counts and trace.name.endswith(pseudonym(person, "k"))
    assert [b["label"] for b in fig.layout.updatemenus[0].buttons][0] == "全部 / All"


def test_lorenz_reads_every_credited_persons_gmv_from_the_mart(tmp_path: Path) -> None:
    """The Lorenz curve reads the influence mart; its values are those of grouping the paid,
    credited lines by person (an independent query), and without the mart it groups them."""
    from sharegraph.reports.influence import LORENZ_FROM_MART, lorenz

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    build_world(con)
    lines = sorted(r[0] for r in con.execute(
        "SELECT sum(amount)::DOUBLE FROM graph.attributed_orders "
        "WHERE is_paid AND credited_id IS NOT NULL GROUP BY credited_id").fetchall())
    assert lines and sorted(r[0] for r in con.execute(LORENZ_FROM_MART).fetchall()) == lines
    con.execute("DROP TABLE marts.agent_influence")
    assert not isinstance(lorenz(con, None), str)  # still drawn, from the lines
    con.close()
