"""Shared fixtures: a small generated world and the warehouse the full pipeline makes of it."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

SMALL_WORLD = {"seed": 11, "people": 4000, "orders": 30_000}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world on disk (CSV files + truth.json), generated once per session."""
    from sharegraph.demo.generate import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, **SMALL_WORLD)
    return out


@pytest.fixture(scope="session")
def small_truth(small_world: Path) -> dict:
    return json.loads((small_world / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def pipeline_run(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The whole pipeline run once on the small world: published warehouse and reports."""
    from pipelines.run import run_pipeline

    out = tmp_path_factory.mktemp("run")
    os.environ.setdefault("DAGSTER_HOME", str(out / "dagster"))
    result = run_pipeline(input_dir=small_world, warehouse=out / "wh.duckdb", reports_dir=out / "reports")
    return {"warehouse": out / "wh.duckdb", "reports": out / "reports", "result": result}


@pytest.fixture
def con(tmp_path: Path):
    """An empty warehouse file with the schema in place (ingest-level tests load into it)."""
    from sharegraph.core.warehouse import connect, ensure_schema

    c = connect(tmp_path / "wh.duckdb")
    ensure_schema(c)
    yield c
    c.close()


# --- two small worlds run by the pipeline: orders alone, and a few broken order rows ---
COVERAGE_WORLD = {"seed": 5, "people": 500, "orders": 3000}
BROKEN_ROWS = (3, 50, 400, 1200, 2500)
"""0-based data rows of orders.csv whose amount becomes 'abc' (well under the 5% threshold)."""


@pytest.fixture(scope="session")
def coverage_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sharegraph.demo.generate import generate_world

    out = tmp_path_factory.mktemp("coverage-world")
    generate_world(out, **COVERAGE_WORLD)
    return out


def _run_into(src: Path, out: Path) -> dict[str, Path]:
    from pipelines.run import run_pipeline

    os.environ.setdefault("DAGSTER_HOME", str(out / "dagster"))
    run_pipeline(input_dir=src, warehouse=out / "wh.duckdb", reports_dir=out / "reports")
    return {"warehouse": out / "wh.duckdb", "reports": out / "reports"}


@pytest.fixture(scope="session")
def orders_only_run(coverage_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pipeline on orders.csv alone."""
    out = tmp_path_factory.mktemp("orders-only")
    src = out / "input"
    src.mkdir()
    shutil.copyfile(coverage_world / "orders.csv", src / "orders.csv")
    return _run_into(src, out)


@pytest.fixture(scope="session")
def broken_run(coverage_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every input but group_buys.csv, with a few orders whose amount is 'abc'."""
    out = tmp_path_factory.mktemp("broken")
    src = out / "input"
    src.mkdir()
    for f in coverage_world.glob("*.csv"):
        if f.name not in ("group_buys.csv", "orders.csv", "truth_circles.csv"):
            shutil.copyfile(f, src / f.name)
    with open(coverage_world / "orders.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    amount = rows[0].index("amount")
    for i in BROKEN_ROWS:
        rows[i + 1][amount] = "abc"
    with open(src / "orders.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return _run_into(src, out)
