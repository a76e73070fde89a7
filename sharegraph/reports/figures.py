"""Figure builders: pure functions from a small polars frame to a Plotly figure.

Each returns a ``plotly.graph_objects.Figure`` with zh-CN labels applied and the English set
stored for the language switch (:func:`sharegraph.reports.page.bilingual_layout`), or an HTML
message string ("暂无数据 / No data") when there is nothing to draw — never an empty chart.
Callers pass frames already capped and pseudonymised; every data string that Plotly renders is
escaped here with ``pesc`` (titles, ticks, hover text, legend names, treemap labels).
Money axes use ``tickprefix='¥'`` and ``separators=',.'`` (¥1,234,567.89).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from sharegraph.reports.page import MONEY_AXIS, bilingual_layout, no_data, percent, pesc, pesc_expr

Block = go.Figure | str

_PALETTE = ("#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777")


def _check(frame: pl.DataFrame | None, columns: list[str]) -> str | None:
    """A message when the frame is missing, empty or lacks a column; None when drawable."""
    if frame is None or frame.height == 0:
        return no_data()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        return no_data(f"missing columns: {', '.join(missing)}")
    return None


def _floats(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy()


def _labels(frame: pl.DataFrame, column: str) -> list[str]:
    return frame.select(pesc_expr(pl.col(column)).fill_null("–")).to_series().to_list()


# ---------------------------------------------------------------- influence

def direct_downstream_scatter(frame: pl.DataFrame | None) -> Block:
    """Agents by direct GMV (x) and downstream GMV (y), log-log; one point per agent.

    Expects columns agent (pseudonym), direct_gmv, downstream_gmv (¥). Agents with either
    value <= 0 cannot sit on log axes and are left out (their count is in the subtitle).
    """
    msg = _check(frame, ["agent", "direct_gmv", "downstream_gmv"])
    if msg:
        return msg
    d = frame.filter((pl.col("direct_gmv") > 0) & (pl.col("downstream_gmv") > 0))
    if d.height == 0:
        return no_data("no agent has both direct and downstream GMV > 0")
    left_out = frame.height - d.height
    fig = go.Figure(go.Scatter(
        x=_floats(d, "direct_gmv"), y=_floats(d, "downstream_gmv"), mode="markers",
        text=_labels(d, "agent"), marker={"size": 6, "opacity": 0.7, "color": _PALETTE[0]},
    ))
    note_zh = f"<br><sup>{left_out:,} 人因 GMV 为 0 未显示</sup>" if left_out else ""
    note_en = f"<br><sup>{left_out:,} people with zero GMV not shown</sup>" if left_out else ""
    fig.update_xaxes(type="log", tickprefix="¥")
    fig.update_yaxes(type="log", tickprefix="¥")
    return bilingual_layout(
        fig,
        {"title.text": f"直接 vs 下游 GMV{note_zh}", "xaxis.title.text": "直接 GMV（¥，对数）",
         "yaxis.title.text": "下游 GMV（¥，对数）"},
        {"title.text": f"Direct vs downstream GMV{note_en}", "xaxis.title.text": "Direct GMV (¥, log)",
         "yaxis.title.text": "Downstream GMV (¥, log)"},
        {"hovertemplate": ["%{text}<br>直接 GMV ¥%{x:,.2f}<br>下游 GMV ¥%{y:,.2f}<extra></extra>"]},
        {"hovertemplate": ["%{text}<br>direct GMV ¥%{x:,.2f}<br>downstream GMV ¥%{y:,.2f}<extra></extra>"]},
    )


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal, -> 1 = one holds all).

    G = 2 Σ_i i·x_(i) / (n Σ x) − (n + 1) / n with x sorted ascending, i = 1..n.
    """
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(2.0 * np.sum(i * x) / (n * total) - (n + 1) / n)


def lorenz_points(values: np.ndarray, max_points: int = 501) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve (share of people, share of value), at most ``max_points`` points.

    Exact cumulative sums, then resampled on a uniform grid of population share so a million
    agents draw as 501 points.
    """
    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    if x.size == 0 or x.sum() <= 0:
        return np.array([]), np.array([])
    pop = np.concatenate([[0.0], np.arange(1, x.size + 1) / x.size])
    cum = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    if pop.size > max_points:
        grid = np.linspace(0.0, 1.0, max_points)
        return grid, np.interp(grid, pop, cum)
    return pop, cum


def lorenz_curve(frame: pl.DataFrame | None, gini_value: float | None = None, label: tuple[str, str] | None = None) -> Block:
    """Lorenz curve of attributed GMV over every credited person (agents and customers who
    referred a sale: the population of headline ``gini_credited``), with the Gini coefficient
    and the KOL-driven / peer-driven label (``label`` = (zh, en), from marts.concentration).

    Expects a column gmv (¥, one row per credited person, all of them). ``gini_value`` (the
    headline row) defaults to the Gini computed from the frame.
    """
    msg = _check(frame, ["gmv"])
    if msg:
        return msg
    values = _floats(frame, "gmv")
    px, py = lorenz_points(values)
    if px.size == 0:
        return no_data("total GMV is 0")
    g = gini(values) if gini_value is None or not math.isfinite(gini_value) else float(gini_value)
    fig = go.Figure([
        go.Scatter(x=px, y=py, mode="lines", line={"color": _PALETTE[0], "width": 2}),
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"color": "#9aa5b1", "dash": "dot"}),
    ])
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_layout(showlegend=False)
    lab_zh, lab_en = (pesc(label[0]), pesc(label[1])) if label else ("", "")
    fig.add_annotation(x=0.05, y=0.95, xref="paper", yref="paper", showarrow=False, align="left",
                       xanchor="left", font={"size": 14}, text="")
    return bilingual_layout(
        fig,
        {"title.text": "洛伦兹曲线：归因 GMV 在被归因者间的集中度", "xaxis.title.text": "被归因者累计占比（GMV 由低到高）",
         "yaxis.title.text": "GMV 累计占比", "annotations[0].text": f"基尼系数 {g:.3f}<br>{lab_zh}"},
        {"title.text": "Lorenz curve: attributed GMV over credited people",
         "xaxis.title.text": "Cumulative share of credited people (by GMV, ascending)",
         "yaxis.title.text": "Cumulative share of GMV", "annotations[0].text": f"Gini {g:.3f}<br>{lab_en}"},
        {"name": ["洛伦兹曲线", "完全平均"],
         "hovertemplate": ["被归因者 %{x:.1%} → GMV %{y:.1%}<extra></extra>", "完全平均<extra></extra>"]},
        {"name": ["Lorenz curve", "Perfect equality"],
         "hovertemplate": ["credited people %{x:.1%} → GMV %{y:.1%}<extra></extra>", "perfect equality<extra></extra>"]},
    )


def cascade_distributions(frame: pl.DataFrame | None) -> Block:
    """Distributions of cascade size and depth (counts on a log scale).

    Expects columns kind ('size' | 'depth'), value (int), n (cascades with that value).
    """
    msg = _check(frame, ["kind", "value", "n"])
    if msg:
        return msg
    fig = make_subplots(rows=1, cols=2, subplot_titles=("size", "depth"), horizontal_spacing=0.12)
    sizes = frame.filter(pl.col("kind") == "size").sort("value")
    depths = frame.filter(pl.col("kind") == "depth").sort("value")
    # Sizes span decades: markers on log-log axes (the usual heavy-tail plot); depths are few.
    fig.add_trace(go.Scatter(x=_floats(sizes, "value"), y=_floats(sizes, "n"), mode="markers+lines",
                             marker={"color": _PALETTE[0], "size": 6}, line={"width": 1}), row=1, col=1)
    fig.add_trace(go.Bar(x=_floats(depths, "value"), y=_floats(depths, "n"), marker_color=_PALETTE[1]),
                  row=1, col=2)
    fig.update_yaxes(type="log")
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_layout(showlegend=False, bargap=0.1)
    return bilingual_layout(
        fig,
        {"title.text": "传播链规模与深度分布（对数）", "annotations[0].text": "规模（节点数）",
         "annotations[1].text": "深度（代）", "yaxis.title.text": "传播链数（对数）",
         "xaxis.title.text": "规模（对数）", "xaxis2.title.text": "深度"},
        {"title.text": "Cascade size and depth distributions (log)", "annotations[0].text": "Size (nodes)",
         "annotations[1].text": "Depth (generations)", "yaxis.title.text": "Cascades (log)",
         "xaxis.title.text": "Size (log)", "xaxis2.title.text": "Depth"},
        {"hovertemplate": ["规模 %{x}: %{y:,} 条<extra></extra>", "深度 %{x}: %{y:,} 条<extra></extra>"]},
        {"hovertemplate": ["size %{x}: %{y:,} cascades<extra></extra>",
                           "depth %{x}: %{y:,} cascades<extra></extra>"]},
    ).update_layout(title_pad_b=30)  # above the subplot titles


BOTTOM_LEGEND = {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yref": "container",
                 "yanchor": "bottom"}
"""A horizontal legend along the figure's bottom edge: it takes no width from the plot on a phone."""
_INCOMPLETE = {"color": "#cbd2d9", "pattern": {"shape": "/", "fgcolor": "#9aa5b1"}}
"""How a period that is not complete yet is drawn: grey, hatched (never read as a decline)."""


def _complete_mask(frame: pl.DataFrame) -> np.ndarray:
    """The frame's boolean ``complete`` column (every row complete when it has none)."""
    if "complete" not in frame.columns:
        return np.ones(frame.height, dtype=bool)
    return frame.get_column("complete").fill_null(False).cast(pl.Boolean).to_numpy().astype(bool)


def kfactor_by_cohort(frame: pl.DataFrame | None, window_days: int | None = None) -> Block:
    """Viral coefficient (K-factor) per cohort as bars, with the K = 1 line (self-sustaining).

    Expects columns cohort (text/date), k_factor; optional cohort_size (people in the cohort)
    and complete (bool): cohorts not observed long enough yet are drawn grey and hatched, in
    their own legend entry, so they do not read as a decline. ``window_days``: K counts
    acquisitions within this many days (named in the axis title).
    """
    msg = _check(frame, ["cohort", "k_factor"])
    if msg:
        return msg
    d = frame.sort("cohort")
    full = _complete_mask(d)
    sizes = _floats(d, "cohort_size") if "cohort_size" in d.columns else np.full(d.height, np.nan)
    cohorts, k = np.array(_labels(d, "cohort"), dtype=object), _floats(d, "k_factor")
    fig = go.Figure()
    names_zh, names_en, hz, he = [], [], [], []
    for mask, marker, zh, en in ((full, {"color": _PALETTE[2]}, "已完整批次", "Complete cohorts"),
                                 (~full, _INCOMPLETE, "未完整批次（观察期不足）", "Incomplete cohorts (not observed long enough)")):
        if not mask.any():
            continue
        fig.add_trace(go.Bar(x=cohorts[mask].tolist(), y=k[mask], customdata=sizes[mask], marker=marker))
        names_zh.append(zh)
        names_en.append(en)
        hz.append(f"批次 %{{x}}<br>K = %{{y:.3f}}<br>人数 %{{customdata:,}}<br>{zh}<extra></extra>")
        he.append(f"cohort %{{x}}<br>K = %{{y:.3f}}<br>members %{{customdata:,}}<br>{en}<extra></extra>")
    fig.add_hline(y=1.0, line_dash="dot", line_color="#dc2626")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=cohorts.tolist())
    fig.update_layout(barmode="overlay", showlegend=False)  # hatched = incomplete, said under the chart
    within_zh = f"{window_days} 天内" if window_days else ""
    within_en = f" within {window_days} days" if window_days else ""
    return bilingual_layout(
        fig,
        {"title.text": "按获客批次的病毒系数 K", "xaxis.title.text": "批次（首单所在周）",
         "yaxis.title.text": f"K（人均{within_zh}带来新客数）"},
        {"title.text": "Viral coefficient (K-factor) by cohort", "xaxis.title.text": "Cohort (week of first order)",
         "yaxis.title.text": f"K (new customers per member{within_en})"},
        {"name": names_zh, "hovertemplate": hz},
        {"name": names_en, "hovertemplate": he},
    )


_GROUP_NAMES = {"platform": ("平台渠道", "Platform channels"), "social": ("社交渠道", "Social channels")}


def channel_migration(frame: pl.DataFrame | None) -> Block:
    """Share of paid GMV by channel group per period (stacked to 100%): platform -> social.

    Expects columns period (date/text), group (e.g. 'platform' | 'social' or a channel), gmv (¥).
    """
    msg = _check(frame, ["period", "group", "gmv"])
    if msg:
        return msg
    d = frame.with_columns(pl.col("group").cast(pl.String).fill_null("–")).sort("period")
    groups = d.get_column("group").unique(maintain_order=True).to_list()
    fig = go.Figure()
    names_zh, names_en, hz, he = [], [], [], []
    for i, g in enumerate(groups):
        part = d.filter(pl.col("group") == g)
        fig.add_trace(go.Scatter(
            x=_labels(part, "period"), y=_floats(part, "gmv"), stackgroup="one", groupnorm="percent",
            mode="lines", line={"width": 0.5, "color": _PALETTE[i % len(_PALETTE)]},
        ))
        zh, en = _GROUP_NAMES.get(g, (pesc(g), pesc(g)))
        names_zh.append(zh)
        names_en.append(en)
        hz.append(f"{zh} %{{x}}<br>GMV ¥%{{y:,.2f}}<extra></extra>")
        he.append(f"{en} %{{x}}<br>GMV ¥%{{y:,.2f}}<extra></extra>")
    fig.update_yaxes(ticksuffix="%", range=[0, 100])
    fig.update_xaxes(type="category")
    return bilingual_layout(
        fig,
        {"title.text": "渠道迁移：各期已付 GMV 占比", "xaxis.title.text": "时期", "yaxis.title.text": "GMV 占比"},
        {"title.text": "Channel migration: share of paid GMV per period", "xaxis.title.text": "Period",
         "yaxis.title.text": "Share of GMV"},
        {"name": names_zh, "hovertemplate": hz},
        {"name": names_en, "hovertemplate": he},
    ).update_layout(legend=BOTTOM_LEGEND, margin_b=120)


def group_buy_fill(frame: pl.DataFrame | None, success_rate: float | None = None, bins: int = 20) -> Block:
    """Group buys: distribution of fill rate (members / target) and of hours to fill.

    Expects one row per group buy with fill_rate (0..1, may exceed 1 when over-filled) and
    hours_to_fill (NULL when the group never filled). Binned with numpy here so the page
    carries counts, not every group. ``success_rate`` is headline ``group_buy_success_rate``
    (filled / (filled + failed)); without it the title names no rate.
    """
    msg = _check(frame, ["fill_rate", "hours_to_fill"])
    if msg:
        return msg
    rate = _floats(frame, "fill_rate")
    rate = np.clip(rate[np.isfinite(rate)], 0.0, 1.0)
    hours = _floats(frame, "hours_to_fill")
    hours = hours[np.isfinite(hours) & (hours >= 0)]
    if rate.size == 0 and hours.size == 0:
        return no_data()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("fill", "time"), horizontal_spacing=0.12)
    counts, edges = np.histogram(rate, bins=bins, range=(0.0, 1.0))
    fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=(edges[1] - edges[0]) * 0.95,
                         marker_color=_PALETTE[1]), row=1, col=1)
    if hours.size:
        hc, he = np.histogram(hours, bins=bins)
        fig.add_trace(go.Bar(x=(he[:-1] + he[1:]) / 2, y=hc, width=(he[1] - he[0]) * 0.95 if he[1] > he[0] else None,
                             marker_color=_PALETTE[0]), row=1, col=2)
    else:
        fig.add_trace(go.Bar(x=[], y=[]), row=1, col=2)
    fig.update_xaxes(tickformat=".0%", row=1, col=1)
    fig.update_layout(showlegend=False)
    ok = success_rate is not None and math.isfinite(success_rate)
    rate_zh = f"（成团率 {percent(success_rate)}）" if ok else ""
    rate_en = f" ({percent(success_rate)} success)" if ok else ""
    fig = bilingual_layout(
        fig,
        {"title.text": f"拼团满员率与成团时长{rate_zh}", "annotations[0].text": "满员率（人数/目标）",
         "annotations[1].text": "成团所需小时（已成团）", "yaxis.title.text": "团数", "xaxis2.title.text": "小时"},
        {"title.text": f"Group buys: fill rate and time to fill{rate_en}",
         "annotations[0].text": "Fill rate (members / target)", "annotations[1].text": "Hours to fill (filled groups)",
         "yaxis.title.text": "Groups", "xaxis2.title.text": "Hours"},
        {"hovertemplate": ["满员率 %{x:.0%}: %{y:,} 团<extra></extra>", "%{x:.1f} 小时: %{y:,} 团<extra></extra>"]},
        {"hovertemplate": ["fill %{x:.0%}: %{y:,} groups<extra></extra>", "%{x:.1f} h: %{y:,} groups<extra></extra>"]},
    )
    fig.update_layout(title_pad_b=30)  # above the subplot titles
    return fig


def downline_treemap(frame: pl.DataFrame | None) -> Block:
    """The downlines of the leaderboard's top agents as a treemap: one tree per top agent,
    drawn through the same referral network as the leaderboard's downstream GMV; area = the
    person's own direct GMV plus everything below (branchvalues='remainder'), i.e. direct +
    undecayed downstream GMV (of the drawn people).

    Expects columns node (unique id, not shown), parent (node of the upline, '' for a root),
    label (pseudonym, a root prefixed with its rank), value (¥ direct GMV of the node, >= 0).
    The caller caps the nodes.
    """
    msg = _check(frame, ["node", "parent", "label", "value"])
    if msg:
        return msg
    d = frame.with_columns(pl.col("parent").cast(pl.String).fill_null(""),
                           pl.col("value").cast(pl.Float64).fill_null(0.0).clip(lower_bound=0.0))
    fig = go.Figure(go.Treemap(
        ids=d.get_column("node").cast(pl.String).to_list(),
        parents=d.get_column("parent").to_list(),
        labels=_labels(d, "label"),
        values=_floats(d, "value"),
        branchvalues="remainder",
        maxdepth=4,
    ))
    fig.update_layout(margin={"l": 4, "r": 4, "b": 4})
    return bilingual_layout(
        fig,
        {"title.text": "排行榜前列代理的下线（面积 = 直接 + 下游 GMV）"},
        {"title.text": "Downlines of the top leaderboard agents (area = direct + downstream GMV)"},
        {"hovertemplate": ["%{label}<br>本人直接 GMV ¥%{value:,.2f}<extra></extra>"]},
        {"hovertemplate": ["%{label}<br>own direct GMV ¥%{value:,.2f}<extra></extra>"]},
    )


# ---------------------------------------------------------------- trends

_CLASS_NAMES = {"platform": ("平台渠道", "Platform channels"), "social": ("社交渠道", "Social channels"),
                "other": ("其他渠道", "Other channels")}


def monthly_gmv_by_class(frame: pl.DataFrame | None) -> Block:
    """Paid GMV per month, stacked by channel class (platform, social, other), in ¥.

    Expects columns month ('YYYY-MM'), class ('platform' | 'social' | 'other'), gmv (¥) and
    optional complete (bool): a month the data does not fully cover is hatched.
    """
    msg = _check(frame, ["month", "class", "gmv"])
    if msg:
        return msg
    d = frame.with_columns(pl.col("class").cast(pl.String)).sort("month")
    months = d.get_column("month").unique(maintain_order=True).to_list()
    fig = go.Figure()
    names_zh, names_en, hz, he = [], [], [], []
    for i, klass in enumerate(k for k in ("platform", "social", "other") if k in set(d["class"])):
        part = d.filter(pl.col("class") == klass)
        full = _complete_mask(part)
        fig.add_trace(go.Bar(
            x=_labels(part, "month"), y=_floats(part, "gmv"),
            customdata=[["" if f else "*"] for f in full],
            marker={"color": _PALETTE[i], "pattern": {"shape": ["" if f else "/" for f in full]}},
        ))
        zh, en = _CLASS_NAMES[klass]
        names_zh.append(zh)
        names_en.append(en)
        hz.append(f"{zh} %{{x}}%{{customdata[0]}}<br>GMV ¥%{{y:,.2f}}<extra></extra>")
        he.append(f"{en} %{{x}}%{{customdata[0]}}<br>GMV ¥%{{y:,.2f}}<extra></extra>")
    if not fig.data:
        return no_data()
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=months)
    fig.update_yaxes(**MONEY_AXIS)
    return bilingual_layout(
        fig,
        {"title.text": "每月已付 GMV（按渠道类别）", "xaxis.title.text": "月份（* 或斜线 = 未完整月份）",
         "yaxis.title.text": "已付 GMV（¥）"},
        {"title.text": "Paid GMV per month by channel class", "xaxis.title.text": "Month (* or hatched = incomplete)",
         "yaxis.title.text": "Paid GMV (¥)"},
        {"name": names_zh, "hovertemplate": hz},
        {"name": names_en, "hovertemplate": he},
    ).update_layout(legend=BOTTOM_LEGEND, margin_b=120)


def monthly_series(frame: pl.DataFrame | None, titles: tuple[str, str], axis: tuple[str, str],
                   kind: str = "count", reference: float | None = None) -> Block:
    """One monthly number as bars (kind 'count') or a line of rates (kind 'rate', 0..1), with
    months the data does not fully cover drawn grey and hatched (never read as a decline).

    Expects columns month ('YYYY-MM'), value and optional complete (bool). ``titles`` and
    ``axis`` are (zh, en) constants; ``reference`` draws a dotted line (e.g. the whole
    period's rate).
    """
    msg = _check(frame, ["month", "value"])
    if msg:
        return msg
    d = frame.sort("month").filter(pl.col("value").is_not_null())
    if d.height == 0:
        return no_data()
    full = _complete_mask(d)
    months, values = _labels(d, "month"), _floats(d, "value")
    colour = _PALETTE[0] if kind == "count" else _PALETTE[1]
    marker = {"color": [colour if f else _INCOMPLETE["color"] for f in full],
              "pattern": {"shape": ["" if f else "/" for f in full], "fgcolor": "#9aa5b1"}}
    fmt = ":,.0f" if kind == "count" else ":.1%"
    fig = go.Figure(go.Bar(x=months, y=values, marker=marker,
                           customdata=[["" if f else "*"] for f in full]))
    if kind == "rate":
        fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    if reference is not None and math.isfinite(reference):
        fig.add_hline(y=reference, line_dash="dot", line_color="#dc2626")
    fig.update_xaxes(type="category")
    return bilingual_layout(
        fig,
        {"title.text": titles[0], "xaxis.title.text": "月份（* 或斜线 = 未完整月份）", "yaxis.title.text": axis[0]},
        {"title.text": titles[1], "xaxis.title.text": "Month (* or hatched = incomplete)", "yaxis.title.text": axis[1]},
        {"hovertemplate": [f"%{{x}}%{{customdata[0]}}<br>{axis[0]} %{{y{fmt}}}<extra></extra>"]},
        {"hovertemplate": [f"%{{x}}%{{customdata[0]}}<br>{axis[1]} %{{y{fmt}}}<extra></extra>"]},
    )


# ---------------------------------------------------------------- cascades

def tree_layout(frame: pl.DataFrame) -> pl.DataFrame:
    """x = generation, y = tidy position: leaves in depth-first order at 0, 1, 2, …, each
    parent at the mean of its children. Expects node, parent (NULL for the root).
    A walk of a few hundred drawn nodes, in plain Python (NetworkX cost 0.07 s to import)."""
    nodes = frame.get_column("node").cast(pl.String).to_list()
    edges = frame.filter(pl.col("parent").is_not_null() & pl.col("parent").is_in(nodes))
    children: dict[str, dict[str, None]] = {n: {} for n in nodes}  # ordered sets
    for parent, child in zip(edges.get_column("parent").cast(pl.String).to_list(),
                             edges.get_column("node").cast(pl.String).to_list(), strict=True):
        children[parent][child] = None
    has_parent = {c for kids in children.values() for c in kids}
    y: dict[str, float] = {}
    next_leaf = 0.0
    for root in sorted(n for n in children if n not in has_parent):
        seen = {root}
        stack = [(root, iter(children[root]))]
        while stack:  # depth first; a node is placed after all its children
            node, pending = stack[-1]
            child = next((c for c in pending if c not in seen), None)
            if child is not None:
                seen.add(child)
                stack.append((child, iter(children[child])))
                continue
            stack.pop()
            if children[node]:
                y[node] = float(np.mean([y[c] for c in children[node]]))
            else:
                y[node] = next_leaf
                next_leaf += 1.0
    return frame.with_columns(
        pl.col("node").cast(pl.String).replace_strict(y, default=None, return_dtype=pl.Float64).alias("y")
    )


def cascade_tree(frame: pl.DataFrame | None, title: tuple[str, str]) -> Block:
    """One cascade drawn as a tree: x = generation (root = 0), edges as lines, one marker per
    share; hover shows the sharer's pseudonym and any data text.

    Expects columns node, parent, generation, label (pseudonym); optional hover (text).
    ``title`` = (zh, en), already composed by the caller from numbers (escaped here).
    """
    msg = _check(frame, ["node", "parent", "generation", "label"])
    if msg:
        return msg
    d = tree_layout(frame)
    pos = d.select(pl.col("node").cast(pl.String), pl.col("generation").cast(pl.Float64).alias("x"), "y")
    e = (
        d.select(pl.col("node").cast(pl.String), pl.col("parent").cast(pl.String),
                 pl.col("generation").cast(pl.Float64).alias("x"), "y")
        .join(pos.rename({"node": "parent", "x": "px", "y": "py"}), on="parent", how="inner")
    )
    # Edges as one trace of segments separated by None (Plotly's gap convention).
    n = e.height
    ex = np.empty(3 * n, dtype=object)
    ey = np.empty(3 * n, dtype=object)
    ex[0::3], ex[1::3], ex[2::3] = e.get_column("px").to_numpy(), e.get_column("x").to_numpy(), None
    ey[0::3], ey[1::3], ey[2::3] = e.get_column("py").to_numpy(), e.get_column("y").to_numpy(), None
    hover = _labels(d, "hover") if "hover" in d.columns else [""] * d.height
    text = [f"{lab}<br>{h}" if h else lab for lab, h in zip(_labels(d, "label"), hover, strict=True)]
    fig = go.Figure([
        go.Scatter(x=ex.tolist(), y=ey.tolist(), mode="lines", line={"color": "#9aa5b1", "width": 1},
                   hoverinfo="skip"),
        go.Scatter(x=_floats(d, "generation"), y=_floats(d, "y"), mode="markers", text=text,
                   marker={"size": 7, "color": _floats(d, "generation"), "colorscale": "Viridis"}),
    ])
    fig.update_yaxes(visible=False)
    fig.update_xaxes(dtick=1)
    fig.update_layout(showlegend=False)
    return bilingual_layout(
        fig,
        {"title.text": pesc(title[0]), "xaxis.title.text": "代（0 = 首次分享）"},
        {"title.text": pesc(title[1]), "xaxis.title.text": "Generation (0 = original share)"},
        {"hovertemplate": ["", "第 %{x} 代<br>%{text}<extra></extra>"]},
        {"hovertemplate": ["", "generation %{x}<br>%{text}<extra></extra>"]},
    )


# ---------------------------------------------------------------- affinity / expansion

LIFT_RANGE = 8.0
"""Lift colours run from 1/8 to 8 (log scale, 1 in the middle) on every page, so the same
colour means the same lift on every merchant's report; stronger values are clipped."""

_MISSING = "#d1d5db"


def pair_heatmap(frame: pl.DataFrame | None, value: str, titles: tuple[str, str],
                 axes: tuple[tuple[str, str], tuple[str, str]], max_categories: int = 30) -> Block:
    """A category x category heatmap of lift, coloured on a log scale centred on 1.

    Colour: log2(lift) clipped to +/- log2(LIFT_RANGE), diverging (red above 1, blue below),
    the same range on every page; the lift is written in each cell. Cells without a row are
    grey and labelled ('同类目' on the diagonal, else '无数据'). Expects columns a (row
    category), b (column category) and ``value``; optional customers (people behind the
    pair). Keeps the ``max_categories`` most frequent categories per axis. ``axes`` = ((zh,
    en) for y, (zh, en) for x). What the colours mean is said under the chart (its page's
    "what this means"), not in a subtitle that a phone's width would cut.
    """
    msg = _check(frame, ["a", "b", value])
    if msg:
        return msg
    has_customers = "customers" in frame.columns
    d = frame.with_columns(pesc_expr(pl.col("a")).fill_null("–").alias("a"),
                           pesc_expr(pl.col("b")).fill_null("–").alias("b"),
                           pl.col(value).cast(pl.Float64),
                           (pl.col("customers") if has_customers else pl.lit(None))
                           .cast(pl.Float64).alias("customers"))
    top_a = d.group_by("a").len().sort(["len", "a"], descending=[True, False]).head(max_categories).get_column("a")
    top_b = d.group_by("b").len().sort(["len", "b"], descending=[True, False]).head(max_categories).get_column("b")
    d = d.filter(pl.col("a").is_in(top_a.implode()) & pl.col("b").is_in(top_b.implode()))
    ys = sorted(d.get_column("a").unique().to_list())
    xs = sorted(d.get_column("b").unique().to_list())
    grid = (
        pl.DataFrame({"a": ys}).join(pl.DataFrame({"b": xs}), how="cross")
        .join(d.group_by("a", "b").agg(pl.col(value).mean(), pl.col("customers").sum()),
              on=["a", "b"], how="left")
        .sort(["a", "b"])
    )
    shape = (len(ys), len(xs))
    lift = grid.get_column(value).fill_null(np.nan).to_numpy().reshape(shape)
    lift = np.where(np.isfinite(lift), lift, np.nan)
    people = grid.get_column("customers").fill_null(np.nan).to_numpy().reshape(shape)
    have = np.isfinite(lift)
    bound = math.log2(LIFT_RANGE)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(have, np.clip(np.log2(np.maximum(lift, 1e-12)), -bound, bound), np.nan)
    shown = [[f"{v:.2f}" if ok else "" for v, ok in zip(r, h, strict=True)] for r, h in zip(lift, have, strict=True)]
    same = np.array([[y == x for x in xs] for y in ys], dtype=bool).reshape(shape)

    def missing_text(diag: str, other: str) -> list[list[str]]:
        return [["" if have[i, j] else (diag if same[i, j] else other) for j in range(len(xs))]
                for i in range(len(ys))]

    ticks = np.arange(-int(bound), int(bound) + 1)
    fig = go.Figure([
        go.Heatmap(
            x=xs, y=ys, z=colour.tolist(), zmin=-bound, zmax=bound, zmid=0.0, colorscale="RdBu_r",
            customdata=np.dstack([lift, people]).tolist(), text=shown, texttemplate="%{text}",
            textfont={"size": 10}, hoverongaps=False, xgap=1, ygap=1,
            colorbar={"tickvals": ticks.tolist(),
                      "ticktext": [f"1/{2 ** -t:g}" if t < 0 else f"{2 ** t:g}" for t in ticks]},
        ),
        go.Heatmap(
            x=xs, y=ys, z=np.where(have, np.nan, 0.0).tolist(), zmin=0.0, zmax=1.0,
            colorscale=[[0.0, _MISSING], [1.0, _MISSING]], showscale=False,
            text=missing_text("同类目", "无数据"), texttemplate="%{text}",
            textfont={"size": 9, "color": "#4b5563"}, hoverongaps=False, xgap=1, ygap=1,
        ),
    ])
    fig.update_xaxes(type="category", tickangle=-40)
    fig.update_yaxes(type="category", autorange="reversed")
    (yzh, yen), (xzh, xen) = axes
    people_zh = "<br>人数 %{customdata[1]:,}" if has_customers else ""
    people_en = "<br>people %{customdata[1]:,}" if has_customers else ""
    return bilingual_layout(
        fig,
        {"title.text": titles[0], "yaxis.title.text": yzh, "xaxis.title.text": xzh},
        {"title.text": titles[1], "yaxis.title.text": yen, "xaxis.title.text": xen},
        {"hovertemplate": [f"{yzh}: %{{y}}<br>{xzh}: %{{x}}<br>提升度 %{{customdata[0]:.2f}}{people_zh}<extra></extra>",
                           f"{yzh}: %{{y}}<br>{xzh}: %{{x}}<br>%{{text}}<extra></extra>"],
         "text": [shown, missing_text("同类目", "无数据")],
         "colorbar.title.text": ["提升度<br>（对数刻度）", ""]},
        {"hovertemplate": [f"{yen}: %{{y}}<br>{xen}: %{{x}}<br>lift %{{customdata[0]:.2f}}{people_en}<extra></extra>",
                           f"{yen}: %{{y}}<br>{xen}: %{{x}}<br>%{{text}}<extra></extra>"],
         "text": [shown, missing_text("same", "no data")],
         "colorbar.title.text": ["Lift<br>(log scale)", ""]},
    )


def ranked_money_bar(frame: pl.DataFrame | None, label: str, value: str, titles: tuple[str, str],
                     axis: tuple[str, str], top: int = 20) -> Block:
    """Horizontal bars of a ¥ amount per label, largest on top (e.g. expected incremental GMV
    per recommended category)."""
    msg = _check(frame, [label, value])
    if msg:
        return msg
    d = frame.with_columns(pl.col(value).cast(pl.Float64)).sort(value, descending=True, nulls_last=True).head(top)
    d = d.reverse()
    fig = go.Figure(go.Bar(x=_floats(d, value), y=_labels(d, label), orientation="h", marker_color=_PALETTE[2]))
    fig.update_layout(height=max(240, 130 + 32 * d.height))
    fig.update_xaxes(**MONEY_AXIS)
    fig.update_yaxes(type="category")
    return bilingual_layout(
        fig,
        {"title.text": titles[0], "xaxis.title.text": axis[0]},
        {"title.text": titles[1], "xaxis.title.text": axis[1]},
        {"hovertemplate": ["%{y}<br>¥%{x:,.2f}<extra></extra>"]},
        {"hovertemplate": ["%{y}<br>¥%{x:,.2f}<extra></extra>"]},
    )


def size_virality_scatter(frame: pl.DataFrame | None) -> Block:
    """Cascades by size (x, log) and structural virality (y): broadcast (star, low virality)
    vs viral (long chains, high virality). Expects size, structural_virality, depth."""
    msg = _check(frame, ["size", "structural_virality", "depth"])
    if msg:
        return msg
    d = frame.filter(pl.col("size") >= 2)
    if d.height == 0:
        return no_data("every cascade is a lone share (size 1)")
    fig = go.Figure(go.Scatter(
        x=_floats(d, "size"), y=_floats(d, "structural_virality"), mode="markers",
        customdata=_floats(d, "depth"),
        marker={"size": 6, "opacity": 0.6, "color": _floats(d, "depth"), "colorscale": "Viridis",
                "showscale": True, "colorbar": {"title": {"text": "depth"}}},
    ))
    fig.update_xaxes(type="log")
    return bilingual_layout(
        fig,
        {"title.text": "传播链规模 vs 结构病毒性", "xaxis.title.text": "规模（节点数，对数）",
         "yaxis.title.text": "结构病毒性（平均两两距离）"},
        {"title.text": "Cascade size vs structural virality", "xaxis.title.text": "Size (nodes, log)",
         "yaxis.title.text": "Structural virality (mean pairwise distance)"},
        {"hovertemplate": ["规模 %{x:,}<br>结构病毒性 %{y:.2f}<br>深度 %{customdata}<extra></extra>"],
         "marker.colorbar.title.text": ["深度"]},
        {"hovertemplate": ["size %{x:,}<br>virality %{y:.2f}<br>depth %{customdata}<extra></extra>"],
         "marker.colorbar.title.text": ["Depth"]},
    )
