"""Shared fixtures: a small generated world and the warehouse the full pipeline makes of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SMALL_WORLD = {"seed": 11, "people": 4000, "orders": 30_000}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo world on disk (CSV files + truth.json), generated once per session."""
    from sharegraph.generate import generate_world

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
    from sharegraph.warehouse import connect, ensure_schema

    c = connect(tmp_path / "wh.duckdb")
    ensure_schema(c)
    yield c
    c.close()
