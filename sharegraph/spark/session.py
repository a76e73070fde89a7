"""The SparkSession of a run: settings from ``Settings.spark`` (docs/engines.md).

pyspark is imported inside the functions only: ``import sharegraph.spark`` works without the
``[spark]`` extra, and nothing here starts a JVM until :func:`spark_session` is called.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sharegraph.core.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Spark settings every sharegraph session uses, whatever the config says: timestamps without
#: zone (DuckDB's TIMESTAMP), UTC session zone (no conversion of wall times), ANSI off for
#: DuckDB's TRY_CAST-like casts, no UI.
FIXED_CONF: dict[str, str] = {
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    # DuckDB's to_json writes NULL fields as null; Spark's would leave them out
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    # Spark 4 reads CSV in a short list of charsets unless told; Chinese exports are GB18030/GBK
    "spark.sql.legacy.javaCharsets": "true",
    # iterative kernels run hundreds of small jobs: keep no per-job history in the driver
    "spark.sql.ui.retainedExecutions": "20",
    "spark.ui.retainedJobs": "20",
    "spark.ui.retainedStages": "20",
}

#: defaults a user may override in [sharegraph.spark.conf]
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.sql.adaptive.enabled": "true",
}


class SparkUnavailable(RuntimeError):
    """The [spark] extra or Java is missing."""


def spark_available() -> str | None:
    """None when a Spark session can start here, else the reason it cannot."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None:
        return "java is not on PATH (install a JRE 17+, e.g. Debian default-jre-headless)"
    return None


def session_conf(settings: Settings) -> dict[str, str]:
    """Every Spark conf key of a session for ``settings`` (defaults, config, fixed keys)."""
    spark = settings.spark
    conf = dict(DEFAULT_CONF)
    conf["spark.master"] = str(spark.get("master", "local[*]"))
    conf["spark.driver.memory"] = str(spark.get("driver_memory", "2g"))
    extra = spark.get("conf", {})
    if isinstance(extra, Mapping):
        conf.update({str(k): str(v) for k, v in extra.items()})
    conf.update(FIXED_CONF)
    return conf


def spark_session(settings: Settings | None = None, app_name: str = "sharegraph") -> SparkSession:
    """Get or create the process's SparkSession with the settings' conf.

    Raises :class:`SparkUnavailable` with the reason when pyspark or Java is missing. A
    session already running in the process is reused (Spark allows one per JVM); the fixed
    keys are set on it again.
    """
    reason = spark_available()
    if reason:
        raise SparkUnavailable(reason)
    from pyspark.sql import SparkSession

    conf = session_conf(settings or Settings())
    builder = SparkSession.builder.appName(app_name)
    for k, v in conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    for k, v in FIXED_CONF.items():
        if spark.conf.isModifiable(k):  # the others bind when the JVM starts
            spark.conf.set(k, v)
    spark.sparkContext.setLogLevel("ERROR")
    return spark
