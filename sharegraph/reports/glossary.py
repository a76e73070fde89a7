"""Glossary (glossary.html): every metric the pages show, defined in both languages.

The headline metrics are defined by ``sharegraph.metrics.headline.DEFINITIONS`` (the same
text their cards show); the chart metrics below by :data:`TERMS`, whose thresholds come from
the code that applies them, so the glossary cannot drift from the numbers.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from sharegraph.core.config import Settings
from sharegraph.metrics.growth import K_WINDOW_DAYS, KOL_GINI, KOL_TOP1_SHARE
from sharegraph.metrics.headline import COMPLETE_COHORT_DAYS, DEFINITIONS
from sharegraph.reports.headlines import CARDS
from sharegraph.reports.page import Text, esc, section, t, write_page
from sharegraph.reports.trends import SUMMARY as TREND_CARDS

FILE = "glossary.html"
TITLE = Text("指标释义", "Glossary")

_UNITS = {"¥": ("元（¥）", "yuan (¥)"), "ratio": ("比例", "ratio"), "orders": ("订单", "orders"),
          "people": ("人", "people"), "groups": ("团", "groups"), "rows": ("行", "rows")}

#: names of headline metrics without a card label
_NAMES: dict[str, Text] = {
    "paid_orders": Text("已付订单数", "Paid orders"),
    "customers": Text("客户数", "Customers"),
    "attributed_gmv": Text("归因 GMV", "Attributed GMV"),
    "agents": Text("代理人数", "Agents"),
    "top1_share_credited": Text("头部 1% 占比", "Top-1% share"),
    "group_buys_open": Text("进行中的拼团", "Open group buys"),
    "incentive_cost": Text("激励成本", "Incentive cost"),
    "paid_gmv_other": Text("其他渠道 GMV", "Other-channel GMV"),
    "quarantined_rows": Text("隔离行数", "Quarantined rows"),
}

#: chart and table metrics: (term, definition), both bilingual
TERMS: tuple[tuple[Text, Text], ...] = (
    (Text("直接 GMV", "Direct GMV"),
     Text("记在这个人名下（他分享或推荐成交）的已付 GMV。", "Paid GMV credited to this person (sales through their "
          "share or referral).")),
    (Text("下游 GMV", "Downstream GMV"),
     Text("其推荐网络下线的直接 GMV 之和，每隔一代乘以衰减系数。",
          "Sum of the direct GMV of everyone below the person in the referral network, multiplied by the "
          "decay factor per generation.")),
    (Text("影响力 GMV", "Influence GMV"),
     Text("直接 GMV + 下游 GMV（衰减后）；排行榜按它排序。",
          "Direct GMV + downstream GMV (decayed); the leaderboard is ordered by it.")),
    (Text("网络 ROI（代理）", "Network ROI (per agent)"),
     Text("（本人 + 全部下线的 GMV）÷（本人 + 全部下线的佣金和红包），不衰减：每 1 元激励带来的 GMV。",
          "(own + whole downline's GMV) / (own + whole downline's commission and red packets), "
          "undecayed: GMV per ¥1 of incentives.")),
    (Text("PageRank（‰）", "PageRank (‰)"),
     Text("在“谁向谁购买”的网络中的中心度，全体合计为 1000‰。",
          "Centrality in the who-bought-through-whom network; everyone together sums to 1000‰.")),
    (Text("转化率", "Conversion"), Text("分享带来的订单 ÷ 分享次数。", "Orders from shares / shares.")),
    (Text("圈子", "Circle"), Text("推荐网络中联系紧密的一群人（社区发现），以其中一名成员的化名命名。",
                                  "A tightly linked group in the referral network (community detection), "
                                  "named after one member's pseudonym.")),
    (Text("下线树", "Downline tree"),
     Text("排行榜前列代理在推荐网络中的下线；面积 = 本人直接 GMV + 下线的 GMV。",
          "The downline of the leaderboard's top agents in the referral network; area = own direct "
          "GMV + the downline's GMV.")),
    (Text("病毒系数 K（批次）", "K-factor (cohort)"),
     Text(f"批次（首单在同一周的客户）在首单后 {K_WINDOW_DAYS} 天内带来的新客数 ÷ 批次人数；K > 1 可自我增长。",
          f"New customers a cohort (customers whose first order is in the same week) brings within "
          f"{K_WINDOW_DAYS} days of their first order / cohort size; K > 1 grows by itself.")),
    (Text("未完整批次 / 未完整月份", "Incomplete cohort / month"),
     Text(f"观察不足 {COMPLETE_COHORT_DAYS} 天的批次、数据未覆盖整月的月份：数值还会变化，图中以灰色斜线标出，不代表下滑。",
          f"A cohort observed for less than {COMPLETE_COHORT_DAYS} days, or a month the data does not "
          "fully cover: its number will still change; drawn grey and hatched, not a decline.")),
    (Text("基尼系数", "Gini coefficient"),
     Text("GMV 在被归因者间分布的不均程度：0 = 人人相同，接近 1 = 一人独占。",
          "How unequally GMV is spread over credited people: 0 = everyone equal, near 1 = one has it all.")),
    (Text("洛伦兹曲线", "Lorenz curve"),
     Text("按 GMV 从低到高排列被归因者，横轴为人数累计占比、纵轴为 GMV 累计占比；离对角线越远越集中。",
          "Credited people sorted by GMV, ascending: cumulative share of people (x) against cumulative "
          "share of GMV (y); the further from the diagonal, the more concentrated.")),
    (Text("KOL 驱动 / 素人驱动", "KOL-driven / peer-driven"),
     Text(f"头部 1% 占比 ≥ {KOL_TOP1_SHARE:.0%} 或基尼系数 ≥ {KOL_GINI} 为 KOL 驱动，否则为素人驱动。",
          f"KOL-driven when the top 1% earn at least {KOL_TOP1_SHARE:.0%} of attributed GMV or the Gini "
          f"is at least {KOL_GINI}; otherwise peer-driven.")),
    (Text("传播链", "Cascade"), Text("从一次原始分享开始、经过层层转发形成的分享树。",
                                    "The tree of shares grown from one original share through re-shares.")),
    (Text("结构病毒性", "Structural virality"),
     Text("传播链中两两分享之间的平均距离：大 = 人传人多代扩散，小 = 一人广播。",
          "Mean distance between pairs of shares in a cascade: large = spread person to person over "
          "many generations, small = one broadcaster.")),
    (Text("渠道迁移", "Channel migration"),
     Text("复购订单 GMV 在平台渠道与社交渠道间的占比随月份的变化。",
          "How repeat orders' GMV splits between platform and social channels, month by month.")),
    (Text("渠道类别", "Channel class"),
     Text("每个销售渠道属于平台、社交或其他（staging.channels）。",
          "Each sales channel is platform, social or other (staging.channels).")),
    (Text("满员率", "Fill rate"), Text("拼团人数 ÷ 目标人数（最高 100%）。", "Group members / target size (at most 100%).")),
    (Text("成团时长", "Time to fill"), Text("已成团的团从开团到成团的小时数。",
                                          "Hours from opening to filling, for filled groups.")),
    (Text("化名", "Pseudonym"), Text("人员以 P- 加 16 位十六进制显示，同一人在所有页面相同；原始编号不出现在报告中。",
                                     "People appear as P- plus 16 hex digits, the same on every page; raw "
                                     "ids never appear in a report.")),
)


def _names() -> dict[str, Text]:
    """Display name of every headline metric (card labels first)."""
    named = {m: label for m, label, _ in (*CARDS, *TREND_CARDS)}
    return {**_NAMES, **named}


def _entry(term: Text, definition: Text, code: str = "", unit: str = "") -> str:
    code_html = f" <code>{esc(code)}</code>" if code else ""
    zh_unit, en_unit = _UNITS.get(unit, (unit, unit))
    unit_html = f' <span class="unit">{t(f"（单位：{zh_unit}）", f"(unit: {en_unit})")}</span>' if unit else ""
    return (f"<dt>{term.html()}{code_html}</dt>"
            f"<dd>{definition.html()}{unit_html}</dd>")


def headline_terms() -> str:
    """The headline metrics, in DEFINITIONS order, with the mart's own definitions."""
    names = _names()
    items = [_entry(names.get(m, Text(m, m)), Text(zh, en), m, unit)
             for m, (unit, zh, en) in DEFINITIONS.items()]
    return '<dl class="glossary" id="glossary-headline">' + "".join(items) + "</dl>"


def chart_terms() -> str:
    return '<dl class="glossary" id="glossary-terms">' + "".join(_entry(a, b) for a, b in TERMS) + "</dl>"


def render_glossary(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                    generated_at: str = "") -> Path:
    """Write glossary.html (no data of its own: definitions only); returns its path."""
    del con, settings
    body = "".join([
        section(Text("核心指标", "Headline metrics"), headline_terms(),
                Text("各页卡片上的数字均取自 marts.headline_metrics，定义与此处相同。",
                     "Every card on the pages reads marts.headline_metrics, with the definitions here."),
                "headline"),
        section(Text("图表与表格中的指标", "Chart and table metrics"), chart_terms(), sid="terms"),
    ])
    return write_page(out_dir / FILE, TITLE, body, generated_at=generated_at)
