"""Say why in words: empty states from ``marts.table_notes`` and the quarantine banner.

A chart or table whose source table is empty for a recorded reason (e.g. no share events
were given) shows that reason in both languages instead of "暂无数据 / No data"; a table
built without an enriching input shows its caveat. The index lists every unavailable
analysis and, when input rows were quarantined, a warning banner with the counts.
All text is escaped (:func:`sharegraph.reports.page.t` / :func:`esc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import duckdb

from sharegraph.core.sql import table_exists
from sharegraph.reports.data import query
from sharegraph.reports.page import esc, is_message, message, t

NOTES_TABLE = "marts.table_notes"
SEE_REJECTED = 'sharegraph sql "SELECT * FROM quarantine.rejected_rows"'
"""How an analyst sees the quarantined rows (printed in the banner)."""
TOP_RULES = 3
"""Rules shown per table in the banner (most rows first)."""


@dataclass(frozen=True)
class Note:
    """One row of marts.table_notes."""

    table: str
    rows: int
    reason_code: str | None
    reason_zh: str | None
    reason_en: str | None
    caveat_code: str | None
    caveat_zh: str | None
    caveat_en: str | None

    @property
    def empty(self) -> bool:
        return self.reason_code is not None


Notes = dict[str, Note]
B = TypeVar("B")


def load_notes(con: duckdb.DuckDBPyConnection) -> Notes:
    """marts.table_notes by table name; empty when the table is missing (reports still render)."""
    if not table_exists(con, NOTES_TABLE):
        return {}
    frame = query(
        con,
        f"""SELECT table_name, rows, reason_code, reason_zh, reason_en,
                   caveat_code, caveat_zh, caveat_en FROM {NOTES_TABLE} ORDER BY table_name""",
    )
    if frame is None:
        return {}
    return {r[0]: Note(r[0], int(r[1] or 0), *r[2:]) for r in frame.iter_rows()}


def reason_message(notes: Notes, *tables: str) -> str | None:
    """The empty-state message for the first of ``tables`` that is empty for a reason."""
    for name in tables:
        note = notes.get(name)
        if note is not None and note.empty and note.reason_zh and note.reason_en:
            return message(note.reason_zh, note.reason_en, kind="reason")
    return None


def explain(block: B, notes: Notes, *tables: str) -> B | str:
    """``block`` (a figure, or the HTML of a chart or table), with a "no data" message replaced
    by the recorded reason when one of its source ``tables`` is empty; otherwise unchanged."""
    if not is_message(block):
        return block
    return reason_message(notes, *tables) or block


def caveat(notes: Notes, *tables: str) -> str:
    """Caveats of the source ``tables`` that have rows but lack an enriching input ('' if none)."""
    parts = [
        f'<p class="caveat" role="note">{t(n.caveat_zh, n.caveat_en)}</p>'
        for name in tables
        if (n := notes.get(name)) is not None and n.caveat_code and n.caveat_zh and n.caveat_en
    ]
    return "".join(parts)


def unavailable(notes: Notes) -> str:
    """The index's list of analyses without data (and with caveats), each with its reason."""
    if not notes:
        return message("尚未生成表说明（marts.table_notes）", "No table notes (marts.table_notes) yet")
    empty = [n for n in notes.values() if n.empty]
    limited = [n for n in notes.values() if not n.empty and n.caveat_code]
    if not empty and not limited:
        return f'<p class="desc">{t("所有分析都有数据。", "Every analysis has data.")}</p>'

    def rows(items: list[Note], zh: list[str], en: list[str]) -> str:
        return "".join(
            f'<tr><td><code>{esc(n.table)}</code></td>'
            f"<td>{t('无数据', 'no data') if n.empty else t('不完整', 'limited')}</td>"
            f'<td class="num">{n.rows:,}</td><td>{t(z or "", e or "")}</td></tr>'
            for n, z, e in zip(items, zh, en, strict=True)
        )

    head = (f"<thead><tr><th>{t('表', 'Table')}</th><th>{t('状态', 'Status')}</th>"
            f"<th>{t('行数', 'Rows')}</th><th>{t('原因', 'Why')}</th></tr></thead>")
    body = rows(empty, [n.reason_zh or "" for n in empty], [n.reason_en or "" for n in empty])
    body += rows(limited, [n.caveat_zh or "" for n in limited], [n.caveat_en or "" for n in limited])
    return f'<div class="table-wrap"><table id="table-notes">{head}<tbody>{body}</tbody></table></div>'


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def quarantine_banner(con: duckdb.DuckDBPyConnection) -> str:
    """A warning banner when input rows were quarantined: the total (= count(*) of
    quarantine.rejected_rows: one row per rejected input row), per table with its top rules,
    and the command that lists them. '' when nothing was rejected."""
    frame = query(
        con,
        """WITH by_rule AS (
               SELECT table_name, rule, column_name, count(*)::BIGINT AS n
               FROM quarantine.rejected_rows GROUP BY ALL)
           SELECT table_name, sum(n)::BIGINT AS n,
                  list({'rule': rule, 'column': column_name, 'n': n}
                       ORDER BY n DESC, rule, column_name) AS rules
           FROM by_rule GROUP BY table_name ORDER BY n DESC, table_name""",
    )
    if frame is None or frame.height == 0:
        return ""
    total = int(frame.get_column("n").sum())
    items = []
    for table, n, rules in frame.iter_rows():
        top = ", ".join(
            f"{r['column'] + ' ' if r['column'] else ''}{r['rule']} × {int(r['n']):,}"
            for r in rules[:TOP_RULES]
        )
        more = len(rules) - TOP_RULES
        rest = t(f"，另有 {more} 条规则", f", {more} more rule{'s' if more > 1 else ''}") if more > 0 else ""
        items.append(
            f"<li><code>{esc(table)}</code>: {t(f'{n:,} 行', f'{n:,} {_rows(n)}')} "
            f"({esc(top)}{rest})</li>"
        )
    return (
        '<div class="banner" role="alert" id="quarantine-banner">'
        f"<strong>{t(f'⚠ 有 {total:,} 行输入数据不符合数据约定，已隔离、未加载', f'⚠ {total:,} input {_rows(total)} broke the data contract and {_were(total)} quarantined (not loaded)')}</strong>"
        f'<ul>{"".join(items)}</ul>'
        f'<p>{t("查看这些行（规则、原始值、所在文件和行号）：", "See them (rule, raw value, file and row number):")} '
        f"<code>{esc(SEE_REJECTED)}</code> "
        f'{t("；规则说明见 docs/data-contract.md。", "; the rules are explained in docs/data-contract.md.")}</p>'
        "</div>"
    )
