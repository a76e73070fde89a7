"""`sharegraph sql` shows every column of every statement's result and writes exact files;
`sharegraph reveal` maps a report pseudonym back to the person for the key holder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import polars as pl

from pipelines.cli import main
from pipelines.query import render
from sharegraph.reports.pseudonym import KEY_FILE, pseudonym


def test_sql_shows_all_columns_and_each_statement(pipeline_run: dict, capsys) -> None:
    wh = str(pipeline_run["warehouse"])
    code = main(["sql", "SELECT 1 AS one; SELECT * FROM marts.agent_influence "
                 "ORDER BY downstream_gmv DESC LIMIT 3", "--warehouse", wh])
    out = capsys.readouterr().out
    assert code == 0
    assert "-- 1: SELECT 1 AS one" in out and "-- 2: SELECT * FROM marts.agent_influence" in out
    with duckdb.connect(wh, read_only=True) as con:
        columns = [r[0] for r in con.execute("DESCRIBE marts.agent_influence").fetchall()]
    assert all(c in out for c in columns), [c for c in columns if c not in out]
    assert "(3 rows, " in out


def test_sql_writes_exact_csv_json_parquet(pipeline_run: dict, tmp_path: Path, capsys) -> None:
    wh = str(pipeline_run["warehouse"])
    q = "SELECT person_id, pagerank FROM marts.agent_influence ORDER BY pagerank DESC LIMIT 5"
    with duckdb.connect(wh, read_only=True) as con:
        want = con.sql(q).pl()
    assert main(["sql", q, "--warehouse", wh, "--format", "parquet", "--out",
                 str(tmp_path / "x.parquet")]) == 0
    assert pl.read_parquet(tmp_path / "x.parquet").equals(want)  # full precision, not rounded
    capsys.readouterr()
    assert main(["sql", q, "--warehouse", wh, "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["pagerank"] for r in got] == want["pagerank"].to_list()
    assert main(["sql", q, "--warehouse", wh, "--format", "parquet"]) == 1  # needs --out


def test_render_rounds_ratios_for_display_and_goes_vertical_when_wide() -> None:
    frame = pl.DataFrame({"ratio": [0.123456789], **{f"column_{i:02d}": [i] for i in range(30)}})
    text = render(frame, "auto", 10, width=100)
    assert text.startswith("-[ row 1 ]") and "| 0.1235" in text and "column_29" in text
    assert "0.1235" in render(frame.select("ratio"), "table", 10)


def test_reveal_maps_a_pseudonym_back_with_the_key(pipeline_run: dict, capsys) -> None:
    wh = Path(pipeline_run["warehouse"])
    key_file = wh.parent / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600  # made by the first report run
    key = key_file.read_text(encoding="utf-8").strip()
    html = (Path(pipeline_run["reports"]) / "influence.html").read_text(encoding="utf-8")
    alias = re.search(r"P-[0-9a-f]{16}", html).group(0)
    assert main(["reveal", alias, "--warehouse", str(wh)]) == 0
    person = capsys.readouterr().out.strip()
    assert pseudonym(person, key) == alias
    assert main(["reveal", "P-0000000000000000", "--warehouse", str(wh)]) == 1
