"""Report downloads (sharegraph.reports.exports): every page links to its workbook in each
language; workbooks have translated headers, ¥ formats and a frozen header row; CSVs carry the
warehouse's values with people pseudonymised exactly as on the pages."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import openpyxl
import polars as pl

from pipelines.cli import main
from sharegraph.reports.pseudonym import KEY_FILE, pseudonym


def test_every_page_links_to_workbooks_that_exist(pipeline_run: dict) -> None:
    reports = Path(pipeline_run["reports"])
    pages = sorted(reports.glob("*.html"))
    assert len(pages) >= 4
    for page in pages:
        html = page.read_text(encoding="utf-8")
        links = re.findall(r'href="(exports/[^"]+\.xlsx)"', html)
        if page.stem in ("influence", "cascades", "index") or page.stem.startswith("expansion-"):
            assert {f"exports/zh/{page.stem}.xlsx", f"exports/en/{page.stem}.xlsx"} <= set(links), page.name
        assert all((reports / link).is_file() for link in links), page.name


def test_workbook_headers_formats_and_values(pipeline_run: dict) -> None:
    reports, wh = Path(pipeline_run["reports"]), Path(pipeline_run["warehouse"])
    zh = openpyxl.load_workbook(reports / "exports" / "zh" / "influence.xlsx")
    en = openpyxl.load_workbook(reports / "exports" / "en" / "influence.xlsx")
    sheet_zh, sheet_en = zh["agent_influence"], en["agent_influence"]
    headers_zh = [c.value for c in sheet_zh[1]]
    headers_en = [c.value for c in sheet_en[1]]
    assert "直接 GMV（¥）" in headers_zh and "direct_gmv" in headers_en
    assert sheet_zh.freeze_panes == "A2" and sheet_en.freeze_panes == "A2"
    gmv_col = headers_zh.index("直接 GMV（¥）")
    cell = sheet_zh.cell(row=2, column=gmv_col + 1)
    assert "¥" in cell.number_format
    with duckdb.connect(str(wh), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM marts.agent_influence").fetchone()[0]
        top = con.execute("SELECT person_id, direct_gmv FROM marts.agent_influence "
                          "ORDER BY downstream_gmv DESC NULLS LAST, person_id LIMIT 1").fetchone()
    assert sheet_en.max_row == n + 1
    key = (wh.parent / KEY_FILE).read_text(encoding="utf-8").strip()
    person_col = headers_en.index("person_id")
    assert sheet_en.cell(row=2, column=person_col + 1).value == pseudonym(top[0], key)
    assert abs(float(cell.value) - float(top[1])) < 0.005


def test_csv_exports_hold_no_raw_person_ids(pipeline_run: dict) -> None:
    reports, wh = Path(pipeline_run["reports"]), Path(pipeline_run["warehouse"])
    with duckdb.connect(str(wh), read_only=True) as con:
        people = {r[0] for r in con.execute("SELECT person_id FROM graph.people").fetchall()}
    csvs = sorted((reports / "exports" / "csv").rglob("*.csv"))
    assert csvs and all(p.read_bytes().startswith(b"\xef\xbb\xbf") for p in csvs)
    frame = pl.read_csv(reports / "exports" / "csv" / "influence" / "agent_influence.csv")
    assert not people & set(frame["person_id"].cast(pl.String).to_list())


def test_export_command_writes_the_same_files(pipeline_run: dict, tmp_path: Path) -> None:
    assert main(["export", "--warehouse", str(pipeline_run["warehouse"]), "--out", str(tmp_path)]) == 0
    ours = {p.relative_to(tmp_path / "exports") for p in (tmp_path / "exports").rglob("*.*")}
    theirs = {p.relative_to(Path(pipeline_run["reports"]) / "exports")
              for p in (Path(pipeline_run["reports"]) / "exports").rglob("*.*")}
    assert ours == theirs and len(ours) > 10


def test_text_that_looks_like_a_formula_stays_text(pipeline_run: dict, tmp_path: Path) -> None:
    """A merchant's own strings (here a category) are data: '=...' must not become a live
    formula in the workbook (spreadsheet injection), nor 'http://...' a link."""
    import shutil

    from sharegraph.core.config import Settings
    from sharegraph.reports import exports

    wh = tmp_path / "wh.duckdb"
    shutil.copyfile(pipeline_run["warehouse"], wh)
    evil = ['=HYPERLINK("http://example.invalid","x")', "http://example.invalid/a"]
    with duckdb.connect(str(wh)) as con:
        merchant = con.execute("SELECT merchant_id FROM marts.weak_categories LIMIT 1").fetchone()[0]
        con.execute("UPDATE marts.weak_categories SET category = ? WHERE merchant_id = ? "
                    "AND category = (SELECT min(category) FROM marts.weak_categories WHERE merchant_id = ?)",
                    [evil[0], merchant, merchant])
        con.execute("UPDATE marts.weak_categories SET category = ? WHERE merchant_id = ? "
                    "AND category = (SELECT max(category) FROM marts.weak_categories WHERE merchant_id = ?)",
                    [evil[1], merchant, merchant])
        exports.write_exports(con, Settings().with_values({"pseudonym_key": "k" * 64}), tmp_path / "out")
    book = openpyxl.load_workbook(tmp_path / "out" / "exports" / "en" / f"expansion-{merchant}.xlsx")
    sheet = book["weak_categories"]
    cells = [c for row in sheet.iter_rows() for c in row if c.value in evil]
    assert sorted(c.value for c in cells) == sorted(evil)
    assert all(c.data_type == "s" and c.hyperlink is None for c in cells)
