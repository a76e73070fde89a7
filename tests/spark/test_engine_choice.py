"""Engine choice: the setting and its checks, and the default DuckDB path never touching
pyspark (no import, no JVM). Runs without the [spark] extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sharegraph.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_engine_setting_and_spark_table(tmp_path: Path) -> None:
    assert Settings().engine == "duckdb"
    cfg = tmp_path / "sharegraph.toml"
    cfg.write_text('[sharegraph]\nengine = "spark"\n[sharegraph.spark]\nmaster = "local[1]"\n'
                   'driver_memory = "512m"\n[sharegraph.spark.conf]\n'
                   '"spark.sql.shuffle.partitions" = "3"\n', encoding="utf-8")
    s = Settings.load(cfg)
    assert s.engine == "spark" and s.spark["master"] == "local[1]"
    from sharegraph.spark.session import FIXED_CONF, session_conf

    conf = session_conf(s)
    assert conf["spark.master"] == "local[1]" and conf["spark.driver.memory"] == "512m"
    assert conf["spark.sql.shuffle.partitions"] == "3"
    assert conf["spark.sql.timestampType"] == FIXED_CONF["spark.sql.timestampType"]
    with pytest.raises(ValueError, match="engine 'flink'"):
        Settings().with_values({"engine": "flink"})
    with pytest.raises(ValueError, match="unknown key"):
        Settings().with_values({"spark": {"executors": "4"}})


def test_default_engine_run_never_imports_pyspark(tmp_path: Path) -> None:
    """Import the code location and run the whole default pipeline on a small world in a
    fresh process: pyspark and py4j stay out of sys.modules (so no JVM can start)."""
    code = f"""
import os, sys
os.environ["DAGSTER_HOME"] = {str(tmp_path / "dagster")!r}
import pipelines.definitions
from pipelines.run import run_pipeline
from sharegraph.demo.generate import generate_world
generate_world({str(tmp_path / "w")!r}, seed=2, people=500, orders=2000)
result = run_pipeline(input_dir={str(tmp_path / "w")!r}, warehouse={str(tmp_path / "wh.duckdb")!r})
assert result.success
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j", "dagster_pyspark")))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_spark_package_imports_no_pyspark_until_used() -> None:
    """Every module of sharegraph.spark, assets.resources and the run wiring import without
    pyspark being imported (it is imported inside the functions that start Spark)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import sharegraph.spark as pkg\n"
        "for m in pkgutil.walk_packages(pkg.__path__, 'sharegraph.spark.'):\n"
        "    importlib.import_module(m.name)\n"
        "import assets.resources, pipelines.run, pipelines.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
