"""sharegraph.reports.xlsx: workbooks read back by openpyxl hold the frame's values, types and
formats, cell for cell the same as xlsxwriter (an independent writer) makes of the same frame."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sharegraph.reports.xlsx import MAX_CELL_CHARS, Sheet, write_workbook, write_workbooks

TRICKY = pl.DataFrame({
    "text": ["a&b<c>\"'", None, '=HYPERLINK("http://x.invalid")', "  lead and trail  ",
             "中文类目 面膜", "tab\tline\nbreak\r\nend"],
    "int": [1, None, -3, 2**53, 0, -(2**40)],
    "ratio": [0.1, 1 / 3, -1e-10, None, 0.30000000000000004, 1e300],
    "money": pl.Series([Decimal("12.34"), None, Decimal("-0.01"), Decimal("1234567.89"),
                        Decimal("0.00"), Decimal("5.50")], dtype=pl.Decimal(18, 2)),
    "flag": [True, False, None, True, False, True],
    "at": [dt.datetime(2026, 1, 2, 3, 4, 5), None, dt.datetime(1970, 1, 1),
           dt.datetime(2026, 12, 31, 23, 59, 59), dt.datetime(2000, 2, 29, 12), dt.datetime(1999, 1, 1)],
    "day": [dt.date(2026, 1, 2), None, dt.date(1970, 1, 1), dt.date(2026, 12, 31),
            dt.date(2000, 2, 29), dt.date(1999, 1, 1)],
    "small": pl.Series([1, 2, None, 4, 5, 6], dtype=pl.Int32),
})
FORMATS = {"money": "¥#,##0.00", "ratio": "0.0000"}


def _read(path: Path, sheet: str) -> list[tuple]:
    return list(openpyxl.load_workbook(path)[sheet].iter_rows(values_only=True))


def _expected(frame: pl.DataFrame) -> list[tuple]:
    """The frame as openpyxl gives a sheet back: dates as midnight datetimes, decimals as floats."""
    def cell(v):
        if isinstance(v, Decimal):
            return float(v)
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return dt.datetime(v.year, v.month, v.day)
        return v
    return [tuple(frame.columns), *(tuple(cell(v) for v in row) for row in frame.iter_rows())]


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-15, abs_tol=0.0)
    return a == b


def test_values_types_and_formats_round_trip(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "t.xlsx", [Sheet("tricky", TRICKY, FORMATS)])
    rows = _read(path, "tricky")
    expected = _expected(TRICKY)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)
    sheet = openpyxl.load_workbook(path)["tricky"]
    assert sheet.freeze_panes == "A2"
    assert all(c.font.b for c in sheet[1])
    formats = {sheet.cell(1, j).value: sheet.cell(2, j).number_format for j in range(1, TRICKY.width + 1)}
    assert formats["money"] == "¥#,##0.00" and formats["ratio"] == "0.0000"
    assert formats["at"] == "yyyy-mm-dd hh:mm:ss" and formats["day"] == "yyyy-mm-dd"
    assert formats["int"] == "#,##0" and formats["text"] == "General"
    formula = sheet.cell(4, 1)
    assert formula.data_type == "s" and formula.value.startswith("=")  # text, never a formula


def test_cell_for_cell_the_same_as_xlsxwriter(tmp_path: Path) -> None:
    """polars' write_excel (xlsxwriter) is the peer: both files read back by openpyxl. (A \r
    is left out: xlsxwriter writes it as Excel's escape _x000D_, which openpyxl does not undo.)"""
    frame = TRICKY.with_columns(pl.col("text").str.replace_all("\r", "", literal=True))
    ours = write_workbook(tmp_path / "ours.xlsx", [Sheet("t", frame, FORMATS)])
    theirs = tmp_path / "theirs.xlsx"
    frame.write_excel(theirs, worksheet="t", column_formats=FORMATS, autofit=True)
    a, b = _read(ours, "t"), _read(theirs, "t")
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert all(_same(g, w) for g, w in zip(x, y, strict=True)), (x, y)


def test_nan_infinity_control_characters_and_long_text(tmp_path: Path) -> None:
    frame = pl.DataFrame({"x": [float("nan"), float("inf"), -float("inf"), 2.5],
                          "s": ["a\x00b\x1fc\x0bd", "x" * (MAX_CELL_CHARS + 10), "", "\ufffe!"]})
    rows = _read(write_workbook(tmp_path / "t.xlsx", [Sheet("t", frame)]), "t")
    assert [r[0] for r in rows[1:]] == ["#NUM!", "#DIV/0!", "#DIV/0!", 2.5]
    assert rows[1][1] == "abcd" and rows[2][1] == "x" * MAX_CELL_CHARS
    assert rows[3][1] in ("", None) and rows[4][1] == "!"


def test_sheets_empty_frames_and_determinism(tmp_path: Path) -> None:
    sheets = [Sheet("first", TRICKY, FORMATS), Sheet("empty", TRICKY.clear()),
              Sheet("no columns", pl.DataFrame())]
    a = write_workbook(tmp_path / "a.xlsx", sheets).read_bytes()
    b = write_workbook(tmp_path / "b.xlsx", sheets).read_bytes()
    assert a == b  # fixed zip timestamps: same tables, same bytes
    book = openpyxl.load_workbook(tmp_path / "a.xlsx")
    assert book.sheetnames == ["first", "empty", "no columns"]
    assert list(book["empty"].iter_rows(values_only=True)) == [tuple(TRICKY.columns)]
    widths = {c: book["first"].column_dimensions[c].width for c in "AB"}
    assert widths["A"] > widths["B"]  # the Chinese text column is wider than the int column


@pytest.mark.parametrize("names", [["x" * 32], ["a", "a"], []])
def test_bad_sheet_names_are_refused(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(ValueError, match="sheet names"):
        write_workbook(tmp_path / "t.xlsx", [Sheet(n, TRICKY) for n in names])


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n&<>_x"),
                max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.none() | _TEXT, st.none() | st.integers(-(2**62), 2**62),
                          st.none() | st.floats(allow_nan=False, allow_infinity=False)),
                min_size=1, max_size=20))
def test_any_text_and_numbers_round_trip(tmp_path: Path, rows: list[tuple]) -> None:
    frame = pl.DataFrame(rows, schema={"s": pl.String, "i": pl.Int64, "f": pl.Float64}, orient="row")
    got = _read(write_workbook(tmp_path / "h.xlsx", [Sheet("h", frame)]), "h")
    # openpyxl reads an empty inline string back as None, and drops trailing empty rows
    want = [(s or None, i, f) for s, i, f in frame.iter_rows()]
    got = [(s or None, i, f) for s, i, f in got[1:]]
    assert got + [(None, None, None)] * (len(want) - len(got)) == want


def test_copies_differ_only_in_their_headers(tmp_path: Path) -> None:
    """One workbook per language from the same sheets: the rows, formats and widths are the
    frame's in both; only the header row is each copy's own (and widens its columns)."""
    zh = ["文本", "整数", "比率", "金额（¥）", "标志", "时间", "日期", "小整数"]
    sheets = [Sheet("tricky", TRICKY, FORMATS), Sheet("small", TRICKY.head(2).select("int"))]
    zh_path, en_path = write_workbooks(sheets, {tmp_path / "zh.xlsx": [zh, ["整数"]],
                                                tmp_path / "en.xlsx": [TRICKY.columns, ["int"]]})
    for sheet, header in (("tricky", zh), ("small", ["整数"])):
        zh_rows, en_rows = _read(zh_path, sheet), _read(en_path, sheet)
        assert list(zh_rows[0]) == header and zh_rows[1:] == en_rows[1:]
    assert en_path.read_bytes() == write_workbook(tmp_path / "one.xlsx", sheets).read_bytes()
    book = openpyxl.load_workbook(zh_path)["tricky"]
    assert book["D2"].number_format == FORMATS["money"]
    with pytest.raises(ValueError, match="one header per column"):
        write_workbooks(sheets, {tmp_path / "bad.xlsx": [zh[:-1], ["整数"]]})
