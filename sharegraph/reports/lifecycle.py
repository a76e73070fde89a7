"""Agent lifecycle and referral integrity (lifecycle.html).

Reads marts.agent_funnel, marts.agent_cohorts, marts.upline_quality and
marts.integrity_flags: the funnel joined -> shared -> clicked -> sold, a cohort retention
heatmap, time to first sale, the best and worst recruiters, and the integrity review queue
sorted by ¥ at risk. People appear only as pseudonyms (sharegraph.reports.pseudonym).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import plotly.graph_objects as go
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.reports.data import query
from sharegraph.reports.figures import Block
from sharegraph.reports.notes import explain, load_notes
from sharegraph.reports.page import (
    Col,
    Text,
    bilingual_layout,
    figure_html,
    html_table,
    no_data,
    section,
    write_page,
)
from sharegraph.reports.pseudonym import pseudonymize

FILE = "lifecycle.html"
TITLE = Text("代理生命周期与推荐合规", "Agent lifecycle and referral integrity")
RECRUITERS = 15
"""Best and worst recruiters shown, each."""

_STAGES = (("joined", "加入", "Joined"), ("shared", "分享", "Shared"),
           ("clicked", "被点击", "Clicked"), ("sold", "成交", "Sold"))

RECRUITER_TABLE = (
    Col("upline", "上级（化名）", "Upline (pseudonym)"),
    Col("recruits", "招募人数", "Recruits", "int"),
    Col("activation_rate", "激活率", "Activation", "pct"),
    Col("activation_lower", "激活率下限 (95%)", "Activation, 95% lower bound", "pct"),
    Col("retention_rate", "第 3 月留存", "Month-3 retention", "pct"),
    Col("median_days_to_first_sale", "首单中位天数", "Median days to first sale", "float"),
    Col("recruits_gmv", "下级 GMV", "Recruits' GMV", "money"),
)

QUEUE_TABLE = (
    Col("person", "人员（化名）", "Person (pseudonym)"),
    Col("rule", "规则", "Rule"),
    Col("amount_at_risk", "涉及金额（佣金+红包）", "¥ at risk (commission + red packets)", "money"),
    Col("orders_involved", "涉及订单", "Orders", "int"),
    Col("evidence_zh", "证据（中文）", "Evidence (Chinese)"),
    Col("evidence", "证据（英文）", "Evidence (English)"),
)


def funnel_figure(con: duckdb.DuckDBPyConnection) -> Block:
    row = query(con, """SELECT count(*) AS joined, count(first_share_at) AS shared,
                               count(first_click_at) AS clicked, count(first_sale_at) AS sold
                        FROM marts.agent_funnel""")
    if row is None or row.height == 0 or row.item(0, "joined") == 0:
        return no_data()
    values = [int(row.item(0, k)) for k, _, _ in _STAGES]
    fig = go.Figure(go.Funnel(y=[zh for _, zh, _ in _STAGES], x=values, textinfo="value+percent initial"))
    return bilingual_layout(
        fig, {"title.text": "代理漏斗：加入 → 分享 → 被点击 → 成交"},
        {"title.text": "Agent funnel: joined → shared → clicked → sold"},
        {"y": [[zh for _, zh, _ in _STAGES]]}, {"y": [[en for _, _, en in _STAGES]]})


SHARE_STEPS = (("shares", "分享", "shares"), ("clicks", "被点击", "clicks"), ("orders", "下单", "orders"))
FUNNEL_AGENTS = 20


def share_funnel(con: duckdb.DuckDBPyConnection, key: str) -> Block:
    """Shares -> clicks on them -> orders through them, for all sharers and for each of the top
    agents (a menu picks one); each step shows its conversion from the step before."""
    frame = query(con, f"""
        WITH top AS (SELECT person_id, shares_made, clicks_received, share_orders,
                            row_number() OVER (ORDER BY influence_gmv DESC, person_id) AS pos
                     FROM marts.agent_influence WHERE is_agent AND shares_made > 0
                     QUALIFY pos <= {FUNNEL_AGENTS})
        SELECT NULL AS person_id, sum(shares_made) AS shares, sum(clicks_received) AS clicks,
               sum(share_orders) AS orders, 0 AS pos FROM marts.agent_influence
        UNION ALL
        SELECT person_id, shares_made, clicks_received, share_orders, pos FROM top
        ORDER BY pos""")
    if frame is None or frame.height == 0 or not frame.item(0, "shares"):
        return no_data()
    frame = pseudonymize(frame, ["person_id"], key)
    labels = ["全部 / All" if p is None else f"#{i} {p}"
              for i, p in enumerate(frame["person_id"].to_list())]
    steps_zh, steps_en = [zh for _, zh, _ in SHARE_STEPS], [en for _, _, en in SHARE_STEPS]
    fig = go.Figure([go.Funnel(y=steps_zh, x=[int(r[c] or 0) for c, _, _ in SHARE_STEPS],
                               textinfo="value+percent previous", visible=i == 0, name=labels[i])
                     for i, r in enumerate(frame.iter_rows(named=True))])
    fig.update_layout(updatemenus=[{
        "type": "dropdown", "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top",
        "buttons": [{"label": label, "method": "update",
                     "args": [{"visible": [j == i for j in range(len(labels))]}]}
                    for i, label in enumerate(labels)]}])
    n = len(labels)
    return bilingual_layout(
        fig, {"title.text": "分享漏斗：分享 → 点击 → 下单（可选代理）"},
        {"title.text": "Share funnel: shares → clicks → orders (pick an agent)"},
        {"y": [steps_zh] * n}, {"y": [steps_en] * n})


def cohort_heatmap(con: duckdb.DuckDBPyConnection) -> Block:
    frame = query(con, """SELECT strftime(cohort_month, '%Y-%m') AS cohort, months_since_join, retention
                          FROM marts.agent_cohorts ORDER BY cohort_month, months_since_join""")
    if frame is None or frame.height == 0:
        return no_data()
    wide = frame.pivot(on="months_since_join", index="cohort", values="retention", sort_columns=True)
    months = [c for c in wide.columns if c != "cohort"]
    z = wide.select(months).to_numpy().astype(float)
    fig = go.Figure(go.Heatmap(z=z, x=[int(m) for m in months], y=wide["cohort"].to_list(),
                               zmin=0, zmax=1, colorscale="Blues",
                               hovertemplate="%{y} +%{x}: %{z:.1%}<extra></extra>"))
    fig.update_yaxes(type="category", autorange="reversed")
    return bilingual_layout(
        fig, {"title.text": "招募月份留存（仍活跃的代理占比）", "xaxis.title.text": "加入后第几个月",
              "yaxis.title.text": "加入月份"},
        {"title.text": "Cohort retention (share of agents still active)",
         "xaxis.title.text": "Months since joining", "yaxis.title.text": "Joined in"})


def time_to_sale_histogram(con: duckdb.DuckDBPyConnection) -> Block:
    frame = query(con, """SELECT days_to_first_sale FROM marts.agent_funnel
                          WHERE days_to_first_sale IS NOT NULL AND days_to_first_sale >= 0""")
    if frame is None or frame.height == 0:
        return no_data()
    days = frame["days_to_first_sale"].to_numpy().astype(float)
    fig = go.Figure(go.Histogram(x=days, nbinsx=min(60, max(5, int(np.sqrt(days.size))))))
    return bilingual_layout(
        fig, {"title.text": "首单用时分布", "xaxis.title.text": "加入到首单的天数", "yaxis.title.text": "代理数"},
        {"title.text": "Time to first sale", "xaxis.title.text": "Days from joining to first sale",
         "yaxis.title.text": "Agents"})


def recruiter_table(con: duckdb.DuckDBPyConnection, settings: Settings, best: bool) -> str:
    order = "quality_rank" if best else "quality_rank DESC"
    frame = query(con, f"""SELECT upline_id AS upline, recruits, activation_rate, activation_lower,
                                  retention_rate, median_days_to_first_sale, recruits_gmv
                           FROM marts.upline_quality ORDER BY {order} LIMIT {RECRUITERS}""")
    if frame is None or frame.height == 0:
        return no_data()
    frame = pseudonymize(frame, ["upline"], settings.pseudonym_key)
    return html_table(frame, RECRUITER_TABLE, row_cap=settings.report_row_cap,
                      table_id="best-recruiters" if best else "worst-recruiters")


def review_queue(con: duckdb.DuckDBPyConnection, settings: Settings) -> str:
    frame = query(con, f"""SELECT person_id AS person, rule, amount_at_risk, orders_involved,
                                  evidence_zh, evidence
                           FROM marts.integrity_flags
                           ORDER BY amount_at_risk DESC, person_id, rule
                           LIMIT {int(settings.report_row_cap)}""")
    total = query(con, "SELECT count(*) FROM marts.integrity_flags")
    if frame is None or total is None:
        return no_data()
    frame = pseudonymize(frame, ["person"], settings.pseudonym_key)
    return html_table(frame.with_columns(pl.col("rule").cast(pl.String)), QUEUE_TABLE,
                      row_cap=settings.report_row_cap, table_id="review-queue",
                      total_rows=int(total.item()))


def render_lifecycle(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                     generated_at: str = "") -> Path:
    """Write lifecycle.html; returns its path (empty sections say why, from marts.table_notes)."""
    notes = load_notes(con)
    funnel, cohorts = "marts.agent_funnel", "marts.agent_cohorts"
    uplines, flags = "marts.upline_quality", "marts.integrity_flags"
    body = "".join([
        section(Text("代理漏斗", "Agent funnel"),
                figure_html(explain(funnel_figure(con), notes, funnel), "fig-funnel", what=Text(
                    "哪一步流失最多，就该在哪一步帮代理：不分享的要素材，没人点的要选品，点了不买的要价格或信任。",
                    "Help agents where most drop out: non-sharers need material, unclicked shares need "
                    "better products, clicks without orders need price or trust.")),
                Text("每一步：至少分享过一次、分享被别人点击过、至少有一笔记在其名下的已付款订单。",
                     "Each step: shared at least once, a share clicked by someone else, at least one "
                     "credited paid order."), "funnel"),
        section(Text("分享漏斗", "Share funnel"),
                figure_html(explain(share_funnel(con, settings.pseudonym_key), notes,
                                    "marts.agent_influence"), "fig-share-funnel", what=Text(
                    "点击率低说明分享没人看；下单率低说明看了不买。与“全部”比较，找出比平均好或差的代理。",
                    "A low click rate means shares go unseen; a low order rate means clicks do not buy. "
                    "Compare with 'All' to find agents above or below average.")),
                Text(f"全部分享者合计，或影响力 GMV 前 {FUNNEL_AGENTS} 名代理之一（右上角菜单）；每一步的百分比 = "
                     "相对上一步的转化率。",
                     f"All sharers together, or one of the top {FUNNEL_AGENTS} agents by influence GMV "
                     "(menu at the top right); each step's percentage is the conversion from the step "
                     "before."), "share-funnel"),
        section(Text("招募月份留存", "Cohort retention"),
                figure_html(explain(cohort_heatmap(con), notes, cohorts), "fig-cohorts", height=480, what=Text(
                    "每行颜色向右变浅得越慢，这批代理留得越久；比较上下几行看招募质量是否在变。",
                    "The slower a row fades to the right, the longer that cohort stays; compare rows "
                    "to see whether recruiting quality is changing.")),
                Text("活跃 = 当月有分享或有记在其名下的已付款订单。",
                     "Active = a share or a credited paid order in that month."), "cohorts"),
        section(Text("首单用时", "Time to first sale"),
                figure_html(explain(time_to_sale_histogram(con), notes, funnel), "fig-first-sale", what=Text(
                    "多数代理在多少天内开单；长尾说明很多人加入后很久才卖出第一单，需要早期扶持。",
                    "How many days most agents take to sell; a long tail means many take long after "
                    "joining and need early support.")),
                sid="first-sale"),
        section(Text("招募质量最好的上级", "Best recruiters"),
                explain(recruiter_table(con, settings, True), notes, uplines),
                Text(f"至少 {settings.min_recruits} 名直接下级；按激活率的 95% 下限排序（样本小的上级不会因运气排在前面）。",
                     f"At least {settings.min_recruits} direct recruits; ranked by the 95% lower bound "
                     "of activation (small recruiters do not top the list by luck)."), "best"),
        section(Text("招募质量最差的上级", "Worst recruiters"),
                explain(recruiter_table(con, settings, False), notes, uplines), sid="worst"),
        section(Text("推荐合规审查队列", "Referral-integrity review queue"),
                explain(review_queue(con, settings), notes, flags),
                Text("按涉及金额（已付佣金和红包）从高到低；规则与阈值见 docs/integrity.md。这是待审查名单，不是结论。",
                     "Sorted by ¥ at risk (commission and red packets paid); rules and thresholds in "
                     "docs/integrity.md. A queue to review, not a verdict."), "queue"),
    ])
    return write_page(out_dir / FILE, TITLE, body, generated_at=generated_at, downloads=True)
