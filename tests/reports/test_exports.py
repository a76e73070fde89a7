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


def test_workbooks_from_a_second_process_equal_the_sequential_ones(
        pipeline_run: dict, tmp_path: Path, monkeypatch) -> None:
    """Large exports write the zh workbooks in a second process: same sheets, cell for cell."""
    import zipfile

    from sharegraph.core.config import Settings
    from sharegraph.reports import exports

    wh = Path(pipeline_run["warehouse"])
    key = (wh.parent / KEY_FILE).read_text(encoding="utf-8").strip()
    settings = Settings().with_values({"pseudonym_key": key})
    books = {}
    for label, threshold in (("sequential", 10**12), ("parallel", 0)):
        monkeypatch.setattr(exports, "PARALLEL_CELLS", threshold)
        with duckdb.connect(str(wh), read_only=True) as con:
            exports.write_exports(con, settings, tmp_path / label)
        books[label] = sorted((tmp_path / label / "exports").rglob("*.xlsx"))
    rel = [[p.relative_to(tmp_path / label) for p in books[label]] for label in books]
    assert rel[0] == rel[1] and len(rel[0]) >= 8
    for a, b in zip(books["sequential"], books["parallel"], strict=True):
        with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
            parts = [n for n in za.namelist() if n.startswith("xl/")]
            assert parts == [n for n in zb.namelist() if n.startswith("xl/")]
            for name in parts:  # docProps hold the creation time; the sheets must match
                assert za.read(name) == zb.read(name), (a.name, name)


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


def _published_settings(pipeline_run: dict):
    from sharegraph.core.config import Settings

    wh = Path(pipeline_run["warehouse"])
    return Settings().with_values({"pseudonym_key": (wh.parent / KEY_FILE).read_text(encoding="utf-8").strip()})


def test_a_failed_workbook_process_is_an_error_naming_it(pipeline_run: dict, tmp_path: Path) -> None:
    """The workbooks are written by other processes: one that fails is an error with its
    language and its own error output, not a quiet missing file."""
    from sharegraph.reports import exports

    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as con:
        prepared = exports.prepare_exports(con, _published_settings(pipeline_run), tmp_path)
    (tmp_path / "exports" / "zh").write_text("a file where the zh folder goes", encoding="utf-8")
    pending = prepared.start()
    try:
        pending.wait()
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("a failed workbook process went unnoticed")
    assert "writing the zh workbooks failed" in message and "FileExistsError" in message
    assert "en workbooks" not in message and (tmp_path / "exports" / "en" / "influence.xlsx").is_file()
    assert not Path(pending.tmp.name).exists()


def test_a_failed_page_stops_the_workbook_processes(pipeline_run: dict, tmp_path: Path,
                                                    monkeypatch) -> None:
    """A page that fails ends the render with its error; the workbook processes started
    for the index are stopped, not left running."""
    from sharegraph.reports import exports, site

    started = []
    real_start = exports._start_workbook_process

    def recording(*args):
        started.append(real_start(*args))
        return started[-1]

    def broken(*_args):
        raise ValueError("page broke")

    monkeypatch.setattr(exports, "_start_workbook_process", recording)
    monkeypatch.setitem(site.PAGES, "cascades", broken)
    written = []
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as con:
        try:
            for name, _ in site.render_pages(con, _published_settings(pipeline_run), tmp_path):
                written.append(name)
        except ValueError as exc:
            assert "page broke" in str(exc)
        else:
            raise AssertionError("the broken page did not fail the render")
    assert written == ["influence"] and len(started) == 2
    assert all(p.returncode is not None for p in started)
    assert not (tmp_path / "index.html").exists()
