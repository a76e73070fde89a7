"""Headline cards read from ``marts.headline_metrics``: the one place a page gets a headline
number, so the index, the influence page and the trends page can never disagree.

Each card shows the mart's own definition (both languages) as its "what this means".
"""

from __future__ import annotations

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.sql import table_exists
from sharegraph.reports.data import query
from sharegraph.reports.page import Text, esc, number, percent, t, yuan
from sharegraph.reports.pseudonym import pseudonym

HEADLINE = "marts.headline_metrics"

Card = tuple[str, Text, str]
"""(metric of marts.headline_metrics, label, format: money | percent | ratio | count | agent)."""

#: the index's headline cards, in order
CARDS: tuple[Card, ...] = (
    ("paid_gmv", Text("已付 GMV", "Paid GMV"), "money"),
    ("attributed_share", Text("归因 GMV 占比", "Attributed share of GMV"), "percent"),
    ("top_agent_influence_gmv", Text("头部代理", "Top agent"), "agent"),
    ("gini_credited", Text("基尼系数（被归因者）", "Gini (credited people)"), "ratio"),
    ("k_factor", Text("病毒系数 K（整体）", "K-factor (overall)"), "ratio"),
    ("group_buy_success_rate", Text("拼团成团率", "Group-buy success"), "percent"),
    ("network_roi", Text("网络 ROI", "Network ROI"), "ratio"),
)


def headline_rows(con: duckdb.DuckDBPyConnection, period: str = "all") -> dict[str, dict[str, object]]:
    """marts.headline_metrics for scope 'all' and one period, by metric (empty when the mart
    is missing)."""
    if not table_exists(con, HEADLINE):
        return {}
    frame = query(con, f"""SELECT metric, value, subject, definition_zh, definition_en
                           FROM {HEADLINE} WHERE scope = 'all' AND period = ?""", [period])
    return {r["metric"]: r for r in frame.iter_rows(named=True)} if frame is not None else {}


def headline_value(rows: dict[str, dict[str, object]], metric: str) -> float | None:
    """One headline value as a float (None when the row or its value is missing)."""
    value = rows.get(metric, {}).get("value")
    return None if value is None else float(value)


def card_value(fmt: str, value: object) -> str:
    """How a card writes a headline value (the tests compare pages with the mart through it)."""
    if fmt == "money":
        return yuan(value)
    if fmt == "percent":
        return percent(value)
    if fmt == "count":
        return number(value)
    return number(value, 3)


def _card(label: Text, value: str, note: str = "", metric: str = "") -> str:
    extra = f'<div class="label meaning">{note}</div>' if note else ""
    attr = f' data-metric="{esc(metric)}"' if metric else ""
    return (f'<div class="card"{attr}><div class="label">{label.html()}</div>'
            f'<div class="value">{esc(value)}</div>{extra}</div>')


def cards(rows: dict[str, dict[str, object]], settings: Settings, which: tuple[Card, ...] = CARDS) -> str:
    """One card per entry of ``which``, with the mart's definition as its "what this means"."""
    out = []
    for metric, label, fmt in which:
        row = rows.get(metric, {})
        value, definition = row.get("value"), t(str(row.get("definition_zh") or ""),
                                                 str(row.get("definition_en") or ""))
        if fmt == "agent":
            shown = pseudonym(row.get("subject"), settings.pseudonym_key) or "–"
            note = t(f"影响力 GMV {yuan(value)}", f"influence GMV {yuan(value)}") + "<br>" + definition
            out.append(_card(label, shown, note, metric))
        else:
            out.append(_card(label, card_value(fmt, value), definition, metric))
    return '<div class="cards">' + "".join(out) + "</div>"
