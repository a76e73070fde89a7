"""Planning pages: the commission simulator (schemes side by side) and the launch plan.

``render_simulator`` writes one page from a :class:`~sharegraph.metrics.simulate.SimulationResult`
(the ``sharegraph simulate --report`` output); ``render_launch_plan`` reads ``marts.launch_plan``
(docs/simulator.md, docs/planner.md). People appear only as pseudonyms.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import plotly.graph_objects as go
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.sql import table_exists
from sharegraph.reports.data import query
from sharegraph.reports.page import (
    Col,
    Text,
    bilingual_layout,
    figure_html,
    html_table,
    message,
    section,
    write_page,
)
from sharegraph.reports.pseudonym import pseudonymize

SIMULATOR_FILE = "simulator.html"
SIMULATOR_TITLE = Text("佣金方案模拟", "Commission scheme simulator")
PLAN_FILE = "launch-plan.html"
PLAN_TITLE = Text("新品投放种子计划", "Launch seed plan")

SCHEME_COLUMNS = (
    Col("name", "方案", "Scheme"),
    Col("depth", "分销层级（含销售者）", "Levels (seller included)", "int"),
    Col("total_payout", "总支出", "Total payout", "money"),
    Col("payout_to_gmv", "支出 / GMV", "Payout / GMV", "pct"),
    Col("agents_paid", "获得收益人数", "People paid", "int"),
    Col("gini", "收益基尼系数", "Gini of payouts", "float"),
    Col("top10_share", "前 10 名占比", "Top-10 share", "pct"),
    Col("winners", "比现行多拿的人", "Earn more than now", "int"),
    Col("losers", "比现行少拿的人", "Earn less than now", "int"),
    Col("gained", "多拿合计", "Total gained", "money"),
    Col("lost", "少拿合计", "Total lost", "money"),
    Col("net", "总支出变化", "Change in total payout", "money"),
)
MONTH_COLUMNS = (
    Col("month", "月份", "Month"),
    Col("scheme", "方案", "Scheme"),
    Col("payout", "支出", "Payout", "money"),
    Col("payees", "获得收益人数", "People paid", "int"),
    Col("credited_gmv", "归因 GMV", "Credited GMV", "money"),
)
PLAN_COLUMNS = (
    Col("rank", "顺序", "Order", "int"),
    Col("person", "种子（化名）", "Seed (pseudonym)"),
    Col("marginal_buyers", "边际预期买家", "Marginal expected buyers", "float"),
    Col("marginal_gmv", "边际预期 GMV", "Marginal expected GMV", "money"),
    Col("cumulative_buyers", "累计预期买家", "Cumulative expected buyers", "float"),
)


def simulator_body(result: object, row_cap: int = 500) -> str:
    """The simulator page body: assumptions, warnings, schemes side by side, months."""
    schemes = pl.DataFrame([
        {**{k: v for k, v in r.items() if k not in ("components", "vs_current", "elastic")},
         **{k: (float(v) if v is not None else None) for k, v in r["vs_current"].items()
            if k in ("winners", "losers", "gained", "lost", "net")}}
        for r in result.schemes  # type: ignore[attr-defined]
    ])
    months = pl.DataFrame(result.monthly) if result.monthly else None  # type: ignore[attr-defined]
    notes = "".join(message("假设", "Assumption", a, kind="reason") for a in result.assumptions)  # type: ignore[attr-defined]
    warns = "".join(message("警告：分销层级过深（传销风险）", "Warning: too many levels (pyramid-selling risk)",
                            w, kind="reason") for w in result.warnings)  # type: ignore[attr-defined]
    start, end = result.period  # type: ignore[attr-defined]
    desc = Text(f"回放 {start} 至 {end} 的真实归因订单（退款除外），现行方案：{result.current}。"  # type: ignore[attr-defined]
                "每行金额按四舍五入（half-up）取整到分后求和。",
                f"Replay of the real credited orders {start} to {end} (refunds excluded); scheme in "
                f"force: {result.current}. Each line is rounded half-up to the cent, then summed.")  # type: ignore[attr-defined]
    return (
        section(Text("方案对比", "Schemes side by side"),
                notes + warns + html_table(schemes, SCHEME_COLUMNS, row_cap=row_cap, table_id="schemes"),
                desc, sid="schemes")
        + section(Text("按月", "By month"),
                  html_table(months, MONTH_COLUMNS, row_cap=row_cap, table_id="months"), sid="months")
    )


def render_simulator(result: object, path: Path, generated_at: str = "") -> Path:
    """Write the simulator page for one :class:`SimulationResult` to ``path``."""
    return write_page(Path(path), SIMULATOR_TITLE, simulator_body(result), generated_at=generated_at)


def reach_curve(frame: pl.DataFrame) -> go.Figure:
    """Expected buyers reached by the first k seeds (cumulative marginal gains): where the
    curve flattens, one more seed adds little."""
    k = list(range(1, frame.height + 1))
    fig = go.Figure(go.Scatter(x=k, y=frame["cumulative_buyers"].to_list(), mode="lines+markers",
                               line_shape="hv"))
    return bilingual_layout(
        fig,
        {"title.text": "前 k 个种子的预期触达买家", "xaxis.title.text": "种子数 k",
         "yaxis.title.text": "预期买家（人）"},
        {"title.text": "Expected buyers reached by the first k seeds", "xaxis.title.text": "Seeds k",
         "yaxis.title.text": "Expected buyers"},
        {"hovertemplate": ["k = %{x}<br>预期买家 %{y:.1f}<extra></extra>"]},
        {"hovertemplate": ["k = %{x}<br>expected buyers %{y:.1f}<extra></extra>"]},
    )


def render_launch_plan(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                       generated_at: str = "") -> Path:
    """launch-plan.html from ``marts.launch_plan`` (the configured default plan)."""
    body: str
    if not table_exists(con, "marts.launch_plan"):
        body = section(PLAN_TITLE, message(detail="marts.launch_plan"))
    else:
        frame = query(con, "SELECT * FROM marts.launch_plan ORDER BY rank")
        if frame is not None and frame.height:
            frame = pseudonymize(
                frame.with_columns(pl.col("person_id").alias("person"),
                                   pl.col("marginal_buyers").cum_sum().alias("cumulative_buyers")),
                ["person"], settings.pseudonym_key)
            first = frame.row(0, named=True)
            desc = Text(
                f"方法 {first['method']}；预期买家 {first['expected_buyers']:.1f}"
                f"（95% 区间 {first['buyers_low']:.1f}–{first['buyers_high']:.1f}），"
                f"预期 GMV ¥{first['expected_gmv']:,.0f}。模型从历史传播中学习，见 docs/planner.md。",
                f"Method {first['method']}; expected buyers {first['expected_buyers']:.1f} "
                f"(95% interval {first['buyers_low']:.1f}–{first['buyers_high']:.1f}), expected GMV "
                f"¥{first['expected_gmv']:,.0f}. The model is learned from past cascades; see docs/planner.md.")
        else:
            desc = None
        chart = figure_html(reach_curve(frame), "fig-plan-reach", what=Text(
            "曲线变平处，再多加一个种子几乎不增加触达：在那里停下，把预算省下来。",
            "Where the curve flattens, one more seed adds almost no reach: stop there and keep the "
            "budget.")) if frame is not None and frame.height else ""
        body = section(PLAN_TITLE, chart + html_table(frame, PLAN_COLUMNS, row_cap=settings.report_row_cap,
                                                      table_id="plan"), desc, sid="plan")
    return write_page(Path(out_dir) / PLAN_FILE, PLAN_TITLE, body, generated_at=generated_at,
                      downloads=True)
