"""One local SparkSession for every Spark test of a run (one JVM: ~15 s to start).

Every Spark test module marks itself ``xdist_group("spark")`` so that under
``pytest -n 2 --dist loadgroup`` they all run in one worker and share this session. Without
pyspark or Java the tests skip, saying which is missing.
"""

from __future__ import annotations

import pytest

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
