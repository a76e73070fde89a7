"""The HTML shell every report shares: escaping, ¥ formatting, language switch, atomic writes.

Reports are plain files opened offline: one ``plotly.min.js`` beside them (copied from the
installed plotly package at run time, never a CDN), no external fonts, no network.

Escaping rules (docs/reports.md §Safety):

* HTML text and attributes: :func:`esc` (``html.escape(s, quote=True)``).
* Text Plotly renders (titles, ticks, hover, treemap labels): :func:`pesc`
  (``html.escape(s, quote=False)``): Plotly interprets a few tags (``<b>``, ``<a href>``)
  and decodes ``&lt; &gt; &amp;`` but not ``&quot;``, so this makes a name show as written.
* Figure JSON is written by plotly.py (``plotly.io.to_html``), which escapes ``<`` / ``>`` /
  ``/`` inside the ``<script>``; we never paste ``json.dumps`` output into a script ourselves.
"""

from __future__ import annotations

import functools
import hashlib
import html
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

PLOTLY_JS = "plotly.min.js"
NO_DATA_ZH = "暂无数据"
NO_DATA_EN = "No data"


# ---------------------------------------------------------------- escaping and formatting

def esc(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute (None -> '')."""
    return "" if value is None else html.escape(str(value), quote=True)


def pesc(value: object) -> str:
    """Escape a data string for Plotly text (quote=False: Plotly does not decode &quot;)."""
    return "" if value is None else html.escape(str(value), quote=False)


def pesc_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised :func:`pesc` on a polars string expression (same three replacements)."""
    return (
        expr.cast(pl.String)
        .str.replace_all("&", "&amp;", literal=True)
        .str.replace_all("<", "&lt;", literal=True)
        .str.replace_all(">", "&gt;", literal=True)
    )


def _finite(value: object) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)  # Decimal, int, numpy scalars
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def yuan(value: object, decimals: int = 2) -> str:
    """¥ with thousands separators: 1234567.891 -> '¥1,234,567.89'; missing -> '–'."""
    x = _finite(value)
    if x is None:
        return "–"
    sign = "-" if x < 0 else ""
    return f"{sign}¥{abs(x):,.{decimals}f}"


def number(value: object, decimals: int = 0) -> str:
    """A count or ratio with thousands separators; missing -> '–'."""
    x = _finite(value)
    return "–" if x is None else f"{x:,.{decimals}f}"


def percent(value: object, decimals: int = 1) -> str:
    """A share in [0, 1] as a percentage: 0.1234 -> '12.3%'."""
    x = _finite(value)
    return "–" if x is None else f"{100 * x:.{decimals}f}%"


def file_size(n_bytes: int) -> str:
    """Human file size in KiB / MiB (binary units)."""
    if n_bytes < 1024:
        return f"{n_bytes} B"
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.1f} KiB"
    return f"{n_bytes / 1024 / 1024:.2f} MiB"


# ---------------------------------------------------------------- bilingual text

@dataclass(frozen=True)
class Text:
    """One label in both report languages (zh-CN first, the default)."""

    zh: str
    en: str

    def html(self) -> str:
        """Both languages as spans; CSS shows the one selected by the switch."""
        return t(self.zh, self.en)

    def both(self, sep: str = " / ") -> str:
        return f"{self.zh}{sep}{self.en}"


def t(zh: str, en: str) -> str:
    """Bilingual inline HTML: ``<span class="zh">…</span><span class="en">…</span>`` (escaped)."""
    return f'<span class="zh" lang="zh-CN">{esc(zh)}</span><span class="en" lang="en">{esc(en)}</span>'


_MESSAGE = '<div class="no-data'


def message(zh: str = NO_DATA_ZH, en: str = NO_DATA_EN, detail: str = "", kind: str = "") -> str:
    """An HTML note shown instead of a chart that has nothing to draw ('暂无数据 / No data').

    ``kind`` adds a CSS class (``reason``: the table is empty for a recorded reason)."""
    extra = f' <span class="detail">{esc(detail)}</span>' if detail else ""
    cls = f" {esc(kind)}" if kind else ""
    return f'{_MESSAGE}{cls}" role="note">{t(zh, en)}{extra}</div>'


def is_message(block: object) -> bool:
    """True for the HTML of :func:`message` (what an empty chart or table renders as)."""
    return isinstance(block, str) and block.startswith(_MESSAGE)


def no_data(detail: str = "") -> str:
    return message(NO_DATA_ZH, NO_DATA_EN, detail)


# ---------------------------------------------------------------- Plotly figures

MONEY_AXIS = {"tickprefix": "¥", "tickformat": ",.0f"}
"""Axis ticks in whole ¥ (¥16,000); hover text and tables show fen (¥1,234,567.89)."""
SEPARATORS = ".,"
"""Plotly layout.separators is (decimal mark, thousands mark): '.,' gives 1,234,567.89."""
TOP_MARGIN = 96
"""Top margin (px): the title (up to two lines) above the plot and the mode bar band above it."""
_FONT = "system-ui, 'Noto Sans CJK SC', 'Noto Sans SC', 'Microsoft YaHei', sans-serif"


def bilingual_layout(
    fig: go.Figure,
    zh: dict[str, object],
    en: dict[str, object],
    traces_zh: dict[str, list[object]] | None = None,
    traces_en: dict[str, list[object]] | None = None,
) -> go.Figure:
    """Apply the zh-CN labels to ``fig`` and store both sets for the page's language switch.

    ``zh`` / ``en`` map Plotly.relayout paths ("title.text", "xaxis.title.text",
    "annotations[0].text") to already-escaped strings; ``traces_*`` map a trace attribute to
    one value per trace (Plotly.restyle form), e.g. {"name": [...], "hovertemplate": [...]}.
    The switch calls Plotly.relayout / Plotly.restyle with the stored dict (see _SCRIPT).
    """
    if set(zh) != set(en) or set(traces_zh or {}) != set(traces_en or {}):
        raise ValueError("zh and en labels must cover the same keys")
    fig.plotly_relayout(dict(zh))
    for attr, values in (traces_zh or {}).items():
        for trace, value in zip(fig.data, values, strict=True):
            trace[attr] = value
    fig.update_layout(meta={"i18n": {
        "zh": {"layout": zh, "traces": traces_zh or {}},
        "en": {"layout": en, "traces": traces_en or {}},
    }})
    for key, value in _HOUSE_LAYOUT.items():  # merged as update_layout would
        current = fig.layout[key]
        fig.layout[key] = (type(current)(_merged(current.to_plotly_json(), value), _validate=False)
                           if isinstance(value, dict) else value)
    return fig


_HOUSE_LAYOUT = go.Layout(
    separators=SEPARATORS,
    font={"family": _FONT, "size": 13},
    margin={"l": 60, "r": 20, "t": TOP_MARGIN, "b": 50},
    # The title sits just above the plot area and the top band stays free for Plotly's
    # mode bar, so the bar never covers a title, whatever the width (phones included).
    title={"x": 0, "xref": "paper", "xanchor": "left", "y": 1, "yref": "paper",
           "yanchor": "bottom", "pad": {"b": 10}, "automargin": True},
).to_plotly_json()
"""The layout every bilingual figure gets. Plotly validates it once, here: validating it again
for every figure through ``update_layout`` cost ~3 ms a figure, a tenth of the reports."""


def _merged(current: dict[str, object], update: dict[str, object]) -> dict[str, object]:
    """``update`` over ``current``, nested dicts merged key by key (``update_layout``'s rule)."""
    out = dict(current)
    for key, value in update.items():
        old = out.get(key)
        out[key] = _merged(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
    return out


@functools.cache
def _house_template() -> dict[str, object]:
    """Plotly's ``plotly_white`` template as plain JSON, built once per process: setting it
    by name on a figure deep-copies and re-validates the whole template (~12 ms a figure)."""
    return pio.templates["plotly_white"].to_plotly_json()


PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}
"""Every figure reflows with its box (``responsive``) and keeps a short mode bar."""


def meaning(text: Text | None) -> str:
    """The one-line "what this means" under a chart or a card (bilingual, escaped)."""
    return f'<p class="meaning">{text.html()}</p>' if text else ""


def figure_html(block: go.Figure | str, div_id: str, height: int = 420, what: Text | None = None) -> str:
    """A figure as an HTML fragment (plotly.py writes and escapes the JSON), or a message;
    ``what`` is the chart's one-line "what this means", shown under it."""
    if isinstance(block, str):
        return f'<div class="chart" id="{esc(div_id)}-msg">{block}{meaning(what)}</div>'
    height = int(block.layout.height or height)
    block.update_layout(height=height, width=None, autosize=True)
    spec = block.to_plotly_json()
    spec["layout"]["template"] = _house_template()
    inner = pio.to_html(
        spec,
        validate=False,  # built and validated through go.Figure; this skips a second pass
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        default_height=f"{height}px",
        default_width="100%",
        config=PLOTLY_CONFIG,
    )
    return f'<div class="chart">{inner}{meaning(what)}</div>'


# ---------------------------------------------------------------- HTML tables

@dataclass(frozen=True)
class Col:
    """One table column: source column name, bilingual header and display kind.

    kind: text | money | int | float | pct | pvalue. Numeric kinds sort numerically.
    """

    name: str
    zh: str
    en: str
    kind: str = "text"
    href: str | None = None
    """Column holding a relative link for this cell (a sanitised file name), if any."""
    en_name: str | None = None
    """Column holding the English text of a text cell (``name`` then holds the Chinese): the
    cell follows the language switch."""


def _cell(value: object, kind: str) -> tuple[str, str]:
    """(display text, sort key) for one cell."""
    if kind == "text":
        return ("" if value is None else str(value)), ("" if value is None else str(value))
    x = _finite(value)
    key = "" if x is None else repr(x)
    shown = {
        "money": yuan,
        "int": lambda v: number(v, 0),
        "float": lambda v: number(v, 3),
        "pct": percent,
        "pvalue": lambda v: "–" if _finite(v) is None else f"{float(v):.2g}",
    }[kind](value)
    return shown, key


def html_table(
    frame: pl.DataFrame | None,
    columns: Sequence[Col],
    *,
    row_cap: int,
    table_id: str,
    total_rows: int | None = None,
) -> str:
    """A sortable HTML table of at most ``row_cap`` rows, every cell escaped.

    Click a header to sort (inline script in the page). When rows were cut, a note says how
    many were shown of how many (``total_rows``, default the frame's height).
    """
    if frame is None or frame.height == 0:
        return no_data()
    missing = [n for c in columns for n in (c.name, c.en_name) if n and n not in frame.columns]
    if missing:
        return no_data(f"missing columns: {', '.join(missing)}")
    total = frame.height if total_rows is None else total_rows
    shown = frame.head(row_cap)
    head = "".join(
        f'<th data-kind="{"text" if c.kind == "text" else "num"}" tabindex="0">'
        f"{t(c.zh, c.en)}</th>"
        for c in columns
    )
    rows: list[str] = []
    links = [c.href for c in columns if c.href] + [c.en_name for c in columns if c.en_name]
    data = shown.select([c.name for c in columns] + links).rows()
    for record in data:
        cells = []
        hrefs = dict(zip(links, record[len(columns):], strict=True))
        for c, value in zip(columns, record[: len(columns)], strict=True):
            text, key = _cell(value, c.kind)
            cls = ' class="num"' if c.kind != "text" else ""
            shown_text = t(text, _cell(hrefs[c.en_name], "text")[0]) if c.en_name else esc(text)
            if c.href and hrefs.get(c.href):
                shown_text = f'<a href="{esc(hrefs[c.href])}">{shown_text}</a>'
            cells.append(f'<td{cls} data-v="{esc(key)}">{shown_text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = ""
    if total > shown.height:
        note = (
            f'<p class="note">{t(f"仅显示前 {shown.height:,} 行，共 {total:,} 行；完整数据见数据仓库。", f"Showing the first {shown.height:,} of {total:,} rows; the full table is in the warehouse.")}</p>'
        )
    return (
        f'<div class="table-wrap"><table class="sortable" id="{esc(table_id)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


# ---------------------------------------------------------------- page shell

NAV = (
    ("index.html", "总览", "Overview"),
    ("influence.html", "影响力", "Influence"),
    ("cascades.html", "传播链", "Cascades"),
    ("lifecycle.html", "代理生命周期", "Agent lifecycle"),
    ("launch-plan.html", "投放计划", "Launch plan"),
    ("trends.html", "趋势", "Trends"),
    ("glossary.html", "指标释义", "Glossary"),
)

_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--accent:#2563eb;--bg:#fff}
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,'Noto Sans CJK SC','Noto Sans SC','Microsoft YaHei',sans-serif;
color:var(--fg);background:var(--bg);line-height:1.5}
header{display:flex;align-items:center;gap:1rem;padding:.6rem 1.2rem;border-bottom:1px solid var(--line);
position:sticky;top:0;background:#fff;z-index:10;flex-wrap:wrap}
header h1{font-size:1.2rem;margin:0;flex:1 1 auto;min-width:0;overflow-wrap:anywhere}
nav{display:flex;flex-wrap:wrap;gap:.2rem .8rem;min-width:0}
nav a{color:var(--accent);text-decoration:none}
main{padding:1rem 1.2rem;max-width:1280px;margin:0 auto}
p.meaning{color:var(--muted);font-size:.85rem;margin:.2rem 0 .6rem;font-style:italic}
p.meaning::before{content:"ⓘ ";font-style:normal}
section{margin:1.2rem 0 2rem}
h2{font-size:1.05rem;border-left:4px solid var(--accent);padding-left:.5rem}
p.desc,p.note{color:var(--muted);font-size:.9rem;margin:.3rem 0}
button#lang-toggle{border:1px solid var(--accent);background:#fff;color:var(--accent);
border-radius:4px;padding:.25rem .8rem;cursor:pointer;font-size:.9rem}
html[data-lang=zh] .en{display:none} html[data-lang=en] .zh{display:none}
.no-data{padding:1.5rem;border:1px dashed var(--line);color:var(--muted);text-align:center;border-radius:6px}
.no-data .detail{display:block;font-size:.8rem}
.no-data.reason{color:var(--fg);background:#f8fafc}
.banner{border:1px solid #f59e0b;background:#fffbeb;border-radius:8px;padding:.7rem 1rem;margin:1rem 0}
.banner strong{display:block;margin-bottom:.3rem}
.banner ul{margin:.3rem 0 .3rem 1.2rem;padding:0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em;background:#f1f5f9;
padding:.05rem .3rem;border-radius:3px;white-space:pre-wrap;word-break:break-all}
.chart .js-plotly-plot,.chart .plot-container{max-width:100%}
p.caveat{color:#92400e;font-size:.9rem;margin:.3rem 0}
.table-wrap{overflow:auto;max-width:100%;max-height:560px;border:1px solid var(--line);border-radius:6px;
-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{position:sticky;top:0;background:#f5f7fa;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(210px,100%),1fr));gap:.8rem}
.card{border:1px solid var(--line);border-radius:8px;padding:.7rem .9rem}
.card .label{color:var(--muted);font-size:.85rem}
.card .value{font-size:1.35rem;font-weight:600;font-variant-numeric:tabular-nums}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(460px,100%),1fr));gap:1rem}
.grid2>section{min-width:0}
.chart{width:100%;min-width:0}
dl.glossary dt{font-weight:600;margin-top:.8rem} dl.glossary dd{margin:.2rem 0 0 1rem}
@media (max-width:600px){header{padding:.5rem .8rem;position:static} main{padding:.6rem .8rem} header h1{font-size:1.05rem}
.card .value{font-size:1.15rem}}
footer{color:var(--muted);font-size:.8rem;padding:1rem 1.2rem;border-top:1px solid var(--line)}
"""

# Our own constant code: no data is ever interpolated into this script.
_SCRIPT = """
(function(){
  var KEY = 'sharegraph-lang';
  function setLang(lang){
    if (lang !== 'en') { lang = 'zh'; }
    var root = document.documentElement;
    root.setAttribute('data-lang', lang);
    root.setAttribute('lang', lang === 'en' ? 'en' : 'zh-CN');
    var button = document.getElementById('lang-toggle');
    if (button) { button.textContent = lang === 'en' ? '中文' : 'English'; }
    var title = document.querySelector('meta[name="title-' + lang + '"]');
    if (title) { document.title = title.getAttribute('content'); }
    if (window.Plotly) {
      document.querySelectorAll('.js-plotly-plot').forEach(function(gd){
        var meta = gd.layout && gd.layout.meta && gd.layout.meta.i18n;
        if (!meta || !meta[lang]) { return; }
        var labels = meta[lang];
        if (labels.layout && Object.keys(labels.layout).length) {
          Plotly.relayout(gd, labels.layout);
        }
        if (labels.traces && Object.keys(labels.traces).length) {
          Plotly.restyle(gd, labels.traces);
        }
      });
    }
    fitTitles();
    try { window.localStorage.setItem(KEY, lang); } catch (e) { /* file:// may forbid it */ }
  }
  window.sharegraphSetLang = setLang;
  // Plotly does not wrap titles: on a narrow chart, break the current language's title into
  // lines that fit (at spaces, or anywhere in CJK text), so nothing is cut off sideways.
  function fitTitle(gd){
    var meta = gd.layout && gd.layout.meta && gd.layout.meta.i18n;
    var lang = document.documentElement.getAttribute('data-lang') === 'en' ? 'en' : 'zh';
    var full = meta && meta[lang] && meta[lang].layout && meta[lang].layout['title.text'];
    if (!full || !gd.clientWidth) { return; }
    var full_ = gd._fullLayout || {};
    var px = (full_.title && full_.title.font && full_.title.font.size) || 19;
    var left = full_.margin ? full_.margin.l : 60;
    var room = gd.clientWidth - left - 16;  // the title starts at the plot area's left edge
    var lines = full.split('<br>'), out = [];
    lines.forEach(function(line){
      var sup = /^<sup>([^<]*)<\\/sup>$/.exec(line), size = px, open = '', close = '';
      if (sup) { line = sup[1]; size = px * 0.7; open = '<sup>'; close = '</sup>'; }
      else if (/</.test(line)) { out.push(line); return; }
      var cur = '', width = 0, words = line.match(/[\\u2e80-\\uffff]|[^\\s\\u2e80-\\uffff]+\\s*|\\s+/g) || [];
      words.forEach(function(w){
        var cw = 0;
        for (var i = 0; i < w.length; i++) { cw += w.charCodeAt(i) > 0x2e80 ? size : size * 0.62; }
        if (cur && width + cw > room) { out.push(open + cur.replace(/\\s+$/, '') + close); cur = ''; width = 0; }
        cur += w; width += cw;
      });
      out.push(open + cur + close);
    });
    var text = out.join('<br>');
    if (gd.layout.title.text !== text) { Plotly.relayout(gd, {'title.text': text}); }
  }
  function fitTitles(){
    if (!window.Plotly) { return; }
    document.querySelectorAll('.js-plotly-plot').forEach(fitTitle);
  }
  window.sharegraphFitTitles = fitTitles;
  var resizeTimer = null;
  window.addEventListener('resize', function(){
    clearTimeout(resizeTimer); resizeTimer = setTimeout(fitTitles, 150);
  });
  function sortTable(th){
    var table = th.closest('table');
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute('data-kind') === 'num';
    var ascending = th.getAttribute('aria-sort') !== 'ascending';
    th.parentNode.querySelectorAll('th').forEach(function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[index].getAttribute('data-v'), y = b.cells[index].getAttribute('data-v');
      var r;
      if (numeric) {
        var fx = x === '' ? -Infinity : parseFloat(x), fy = y === '' ? -Infinity : parseFloat(y);
        r = fx - fy;
      } else { r = x.localeCompare(y); }
      return ascending ? r : -r;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  }
  document.addEventListener('DOMContentLoaded', function(){
    var button = document.getElementById('lang-toggle');
    if (button) {
      button.addEventListener('click', function(){
        setLang(document.documentElement.getAttribute('data-lang') === 'en' ? 'zh' : 'en');
      });
    }
    document.querySelectorAll('table.sortable th').forEach(function(th){
      th.addEventListener('click', function(){ sortTable(th); });
      th.addEventListener('keydown', function(e){ if (e.key === 'Enter') { sortTable(th); } });
    });
  });
  window.addEventListener('load', function(){
    var saved = null;
    try { saved = window.localStorage.getItem(KEY); } catch (e) { saved = null; }
    if (saved === 'en') { setLang('en'); } else { fitTitles(); }
  });
})();
"""


def section(title: Text, body: str, desc: Text | None = None, sid: str = "") -> str:
    """One titled section of a report (``desc``: what the section shows and how to read it)."""
    anchor = f' id="{esc(sid)}"' if sid else ""
    d = f'<p class="desc">{desc.html()}</p>' if desc else ""
    return f"<section{anchor}><h2>{title.html()}</h2>{d}{body}</section>"


def download_links(stem: str) -> str:
    """Links to the page's Excel workbook in the reader's language (sharegraph.reports.exports)."""
    return (f'<a class="zh download" lang="zh-CN" href="exports/zh/{esc(stem)}.xlsx" download>下载 Excel</a>'
            f'<a class="en download" lang="en" href="exports/en/{esc(stem)}.xlsx" download>Download Excel</a>')


def render_page(title: Text, body: str, *, generated_at: str = "", extra_nav: Iterable[tuple[str, str, str]] = (),
                downloads: str = "") -> str:
    """A complete report page: head (local plotly.min.js, no external resources), header with
    navigation, the page's downloads (``downloads``: its file stem) and the language switch,
    the body, a footer."""
    nav = "".join(
        f'<a href="{esc(href)}">{t(zh, en)}</a>' for href, zh, en in (*NAV, *extra_nav)
    ) + (download_links(downloads) if downloads else "")
    footer = t(f"生成于 {generated_at}", f"Generated {generated_at}") if generated_at else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN" data-lang="zh">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="title-zh" content="{esc(title.zh)}">\n'
        f'<meta name="title-en" content="{esc(title.en)}">\n'
        f"<title>{esc(title.zh)}</title>\n"
        f"<style>{_CSS}</style>\n"
        f'<script src="{PLOTLY_JS}" charset="utf-8"></script>\n'
        f"<script>{_SCRIPT}</script>\n</head>\n<body>\n"
        f"<header><h1>{title.html()}</h1><nav>{nav}</nav>"
        '<button id="lang-toggle" type="button" aria-label="切换语言 / switch language">English</button>'
        f"</header>\n<main>\n{body}\n</main>\n<footer>{footer} · sharegraph</footer>\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- files

def write_atomic(path: Path, content: str | bytes) -> int:
    """Write a file atomically (temporary file in the same directory, fsync, os.replace).

    A browser or a reader never sees a half-written report. Returns the size in bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def write_page(path: Path, title: Text, body: str, *, generated_at: str = "",
               downloads: bool = False) -> Path:
    """Render a complete report page (:func:`render_page`) and write it atomically to ``path``;
    with ``downloads`` its header links to the page's workbooks. Returns ``path``."""
    write_atomic(path, render_page(title, body, generated_at=generated_at,
                                   downloads=path.stem if downloads else ""))
    return path


def ensure_plotlyjs(out_dir: Path) -> Path:
    """Copy plotly.js from the installed plotly package (its package data) beside the reports.

    One shared copy for all pages; rewritten only when the installed version differs.
    """
    target = out_dir / PLOTLY_JS
    source, digest = _plotlyjs()
    if (
        target.is_file()
        and target.stat().st_size == len(source)
        and hashlib.sha256(target.read_bytes()).digest() == digest
    ):
        return target
    write_atomic(target, source)
    return target


@functools.cache
def _plotlyjs() -> tuple[bytes, bytes]:
    """The installed plotly.js (4.6 MB) and its SHA-256, read once per process (every report
    step checks its copy)."""
    from plotly.offline import get_plotlyjs

    source = get_plotlyjs().encode("utf-8")
    return source, hashlib.sha256(source).digest()
