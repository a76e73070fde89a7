"""One local SparkSession for every Spark test of a run (one JVM: ~15 s to start).

Every Spark test module marks itself ``xdist_group("spark")`` so that under
``pytest -n 2 --dist loadgroup`` they all run in one worker and share this session (see the
hook below for why that needs help with pytest 9). Without
pyspark or Java the tests skip, saying which is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` group the ``xdist_group`` tests again.

    pytest-xdist 3.8 marks a grouped test by appending ``@<group>`` to ``item._nodeid``; pytest
    9 reads the node id from ``item._id`` instead, so the suffix is lost and the Spark tests
    spread over both workers (two JVMs, the shared runs twice). Checked: without this hook a
    three-test module marked ``xdist_group("g")`` ran on gw0 and gw1. Does nothing once xdist
    sets the id itself (the suffix is then present) or without loadgroup.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names or "@" in item.nodeid.rsplit("]", 1)[-1]:
            continue
        grouped = f"{item.nodeid}@{'_'.join(names)}"
        if hasattr(item, "_id"):
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(grouped)
        else:
            item._nodeid = grouped


SPARK_TEST_CONF = {
    "master": "local[2]",
    "driver_memory": "1g",
    "conf": {
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.enabled": "false",
    },
}


@pytest.fixture(scope="session")
def spark():
    from sharegraph.spark.session import spark_available

    reason = spark_available()
    if reason:
        pytest.skip(f"Spark tests need the [spark] extra and Java: {reason}")
    from sharegraph.core.config import Settings
    from sharegraph.spark.session import spark_session

    session = spark_session(Settings().with_values({"spark": SPARK_TEST_CONF}), "sharegraph-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def both_runs(spark, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2,000-order demo world run by both engines through ``run_pipeline`` (session
    scope: xdist's loadgroup may interleave modules, which would rebuild a module fixture)."""

    from pipelines.run import run_pipeline
    from sharegraph.demo.generate import generate_world

    base = tmp_path_factory.mktemp("engines")
    world = base / "world"
    generate_world(world, seed=11, people=500, orders=2000)
    os.environ.setdefault("DAGSTER_HOME", str(base / "dagster"))
    run_pipeline(input_dir=world, warehouse=base / "duck" / "wh.duckdb")
    config = base / "spark.toml"
    config.write_text(
        '[sharegraph]\nengine = "spark"\n[sharegraph.spark]\nmaster = "local[2]"\n'
        'driver_memory = "1g"\n[sharegraph.spark.conf]\n"spark.sql.shuffle.partitions" = "2"\n',
        encoding="utf-8")
    run_pipeline(input_dir=world, warehouse=base / "spark" / "wh.duckdb", config_file=config)
    return {"duck": base / "duck" / "wh.duckdb", "spark": base / "spark" / "wh.duckdb",
            "parquet": base / "spark" / "spark-out"}
