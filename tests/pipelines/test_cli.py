"""The command line: every subcommand has --help; sql reads the published snapshot read-only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import build_parser, main

SUBCOMMANDS = ["generate", "validate", "run", "demo", "sql", "reveal", "simulate", "plan", "export", "shell"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command: str) -> None:
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", command, "--help"],
                         capture_output=True, text=True, check=True)
    assert f"usage: sharegraph {command}" in out.stdout


def test_parser_lists_exactly_the_documented_subcommands() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)


def test_sql_reads_the_published_file_read_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    published = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(published))
    con.execute("CREATE SCHEMA marts; CREATE TABLE marts.t AS SELECT 42 AS answer")
    con.close()
    assert main(["sql", "SELECT answer FROM marts.t", "--warehouse", str(published), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["answer", "42"]
    assert main(["sql", "CREATE TABLE marts.u (x INT)", "--warehouse", str(published)]) == 1
    assert "read-only" in capsys.readouterr().err


def test_sql_without_a_warehouse_says_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    assert "run `sharegraph run`" in capsys.readouterr().err


def test_run_with_a_missing_input_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--input", str(tmp_path / "nope"), "--warehouse", str(tmp_path / "wh.duckdb")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
