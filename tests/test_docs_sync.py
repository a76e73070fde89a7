"""docs/warehouse.md is the rendering of the built warehouse's COMMENTs, and complete."""

from __future__ import annotations

import difflib
from pathlib import Path

import duckdb

from sharegraph.docgen.warehouse_doc import render, undocumented

DOC = Path(__file__).resolve().parent.parent / "docs" / "warehouse.md"
HOW = ("regenerate it: `sharegraph run --input <small world> --warehouse /tmp/wh.duckdb` then "
       "`python -m sharegraph.docgen.warehouse_doc --warehouse /tmp/wh.duckdb --out docs/warehouse.md`")


def test_every_table_and_column_is_commented(pipeline_run: dict) -> None:
    con = duckdb.connect(str(pipeline_run["warehouse"]), read_only=True)
    try:
        missing = undocumented(con)
    finally:
        con.close()
    assert missing == [], f"tables/columns without COMMENT ON: {missing}"


def test_docs_warehouse_md_matches_the_built_warehouse(pipeline_run: dict) -> None:
    con = duckdb.connect(str(pipeline_run["warehouse"]), read_only=True)
    try:
        want = render(con)
    finally:
        con.close()
    have = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                        "docs/warehouse.md", "generated", n=1))
    assert have == want, f"docs/warehouse.md is out of date; {HOW}\n{diff[:4000]}"


def test_docs_data_contract_md_matches_the_contract() -> None:
    from sharegraph.docgen.contract_doc import render as render_contract

    doc = DOC.parent / "data-contract.md"
    assert doc.read_text(encoding="utf-8") == render_contract(), (
        "docs/data-contract.md is out of date; regenerate it: "
        "`python -m sharegraph.docgen.contract_doc --out docs/data-contract.md`")
