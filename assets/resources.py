"""The resources the assets use: where the warehouse, inputs, reports and the inbox live.

They sit with the assets (not in ``pipelines/``) because assets depend on them; the wiring
in ``pipelines/`` builds them from the settings (``from_settings``) and binds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from assets.keys import declared, table_key
from sharegraph.core import paths, warehouse
from sharegraph.core.config import Settings
from sharegraph.spark.engine import SPARK_TABLES


def load_settings(config_file: str | None = None, overrides: str | None = None) -> Settings:
    """``Settings.load(config_file)`` with the JSON object ``overrides`` applied over it."""
    settings = Settings.load(config_file)
    if overrides:
        settings = settings.with_values(json.loads(overrides), source="settings_overrides")
    return settings


class WarehouseResource(dg.ConfigurableResource):
    """Paths of one sharegraph deployment; assets open the *working* DuckDB file through it.

    ``warehouse`` is the published snapshot analysts read; the pipeline writes the working
    file beside it and only the publish asset touches the published name. The settings are
    loaded once per use of the resource (Dagster makes a fresh copy for every run).
    """

    warehouse: str
    input_dir: str
    reports_dir: str
    config_file: str | None = None
    settings_overrides: str | None = None
    """JSON object of settings applied over the config file and environment (what command-line
    flags such as ``--max-reject-rate`` set); a string so it shows as-is in the run's config."""

    _settings: Settings | None = PrivateAttr(default=None)
    _held: bool = PrivateAttr(default=False)
    _con: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _depth: int = PrivateAttr(default=0)

    @classmethod
    def from_settings(cls, settings: Settings) -> WarehouseResource:
        """The code location's default: paths from the settings (``core.paths``)."""
        published = paths.warehouse(settings)
        return cls(
            warehouse=str(published),
            input_dir=str(paths.input_dir(settings)),
            reports_dir=str(paths.reports_dir_for(published, settings)),
        )

    @property
    def paths(self) -> warehouse.WarehousePaths:
        return warehouse.WarehousePaths.of(self.warehouse)

    @property
    def inputs(self) -> Path:
        """The input directory (a URI is kept as given: only the Spark engine reads one)."""
        if paths.is_uri(self.input_dir):
            raise ValueError(f"{self.input_dir}: a URI input is read by engine = 'spark' only; "
                             "the DuckDB engine reads a local (or mounted) folder")
        return Path(self.input_dir).expanduser().resolve()

    @property
    def reports(self) -> Path:
        return Path(self.reports_dir).expanduser().resolve()

    def settings(self) -> Settings:
        """The run's settings: loaded on first use, then kept for the life of this copy."""
        if self._settings is None:
            self._settings = load_settings(self.config_file, self.settings_overrides)
        return self._settings

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """In a run, keep one working connection for every step (see ``connect``)."""
        self._held = True

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.release()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection to the working file, schema in place.

        Why one per run: opening the file and checking the schema cost ~30 ms a step, most of
        a small run's step. Inside a Dagster run (``setup_for_execution``) the connection is
        opened on first use and kept until the run ends or ``release``; each use ends by
        rolling back a transaction a failed step left open and dropping the temporary tables
        and views it made, so steps see the file as a fresh connection would. Outside a run
        every use opens and closes its own connection.
        """
        if not self._held:
            with warehouse.working(self.paths, timezone=self.settings().timezone,
                                   memory_limit=self.settings().memory_limit) as con:
                yield con
            return
        if self._con is None:
            self._con = warehouse.open_working(self.paths, timezone=self.settings().timezone,
                                               memory_limit=self.settings().memory_limit)
        con = self._con
        self._depth += 1
        try:
            yield con
        finally:
            self._depth -= 1
            if self._depth == 0:
                _reset(con)

    def release(self) -> None:
        """Close the run's working connection (publishing copies the file closed)."""
        if self._con is not None:
            con, self._con = self._con, None
            con.close()


def _reset(con: duckdb.DuckDBPyConnection) -> None:
    """Leave a kept connection as a new one would be: no open transaction, no temporary
    tables or registered views (they would hold memory for the rest of the run)."""
    with suppress(duckdb.Error):  # no transaction open: the usual case
        con.rollback()
    for name, is_view in con.execute(
        "SELECT view_name, true FROM duckdb_views() WHERE temporary AND NOT internal "
        "UNION ALL SELECT table_name, false FROM duckdb_tables() WHERE temporary"
    ).fetchall():
        if is_view:
            con.unregister(name)  # frees a registered Python object; a SQL view goes below
            con.execute(f'DROP VIEW IF EXISTS temp."{name}"')
        else:
            con.execute(f'DROP TABLE IF EXISTS temp."{name}"')


#: assets whose tables the Spark engine computes (sharegraph.spark.engine.SPARK_TABLES); a
#: ``--engine spark`` run leaves them out of its Dagster job and loads the Spark results
SPARK_COMPUTED: tuple[dg.AssetKey, ...] = tuple(
    key for key in map(table_key, SPARK_TABLES) if key in declared())


class SparkResource(dg.ConfigurableResource):
    """The Spark engine's Dagster resource: the session conf of the settings
    (``sharegraph.spark.session.session_conf``: master, driver memory, extra conf from
    [sharegraph.spark], and the fixed keys the parity rests on). Lazy like dagster-pyspark's
    ``LazyPySparkResource`` (same ``spark_session`` property): no JVM starts until it is
    first read, and pyspark is imported only then.

    Why not dagster-pyspark itself: its dependency dagster-spark registers a ``dg`` scaffolder
    that makes ``dg check defs`` print a PreviewWarning for every project in the environment
    (tests/pipelines/test_definitions.py fails on it). A team that wants it can bind
    ``LazyPySparkResource(spark_config=session_conf(settings))``: ``compute_on_spark`` takes
    any SparkSession.
    """

    spark_config: dict[str, str]
    _session: object | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkResource:
        from sharegraph.spark.session import session_conf

        return cls(spark_config=session_conf(settings))

    @property
    def spark_session(self):
        if self._session is None:
            from sharegraph.spark.session import SparkUnavailable, spark_available

            reason = spark_available()
            if reason:
                raise SparkUnavailable(f"engine = 'spark' needs the [spark] extra and Java: {reason}")
            from pyspark.sql import SparkSession

            builder = SparkSession.builder.appName("sharegraph")
            for key, value in self.spark_config.items():
                builder = builder.config(key, value)
            self._session = builder.getOrCreate()
        return self._session


def compute_on_spark(warehouse: WarehouseResource, spark: object | None = None) -> dict[str, int]:
    """``engine = "spark"``: run the Spark stages on the resource's inputs, write Parquet (one
    folder per table under [sharegraph.spark] output, default ``spark-out/`` beside the
    warehouse) and load it into the working file; the reference flags of ingest are then
    computed by DuckDB on the loaded staging tables. Returns rows per loaded table."""
    from sharegraph.ingest.load import flag_references
    from sharegraph.spark import engine

    settings = warehouse.settings()
    session = spark if spark is not None else SparkResource.from_settings(settings).spark_session
    output = settings.spark.get("output") or str(warehouse.paths.published.parent / "spark-out")
    run = engine.compute(session, paths.input_location(warehouse.input_dir), output, settings)
    with warehouse.connect() as con:
        counts = engine.load_into(con, run)
        flag_references(con)
    return counts


class InboxResource(dg.ConfigurableResource):
    """The inbox the sensor watches, the archive loaded files move to, and ``rejected/``.

    ``settle_seconds``: a file without a ``.ready``/``.done`` marker counts as complete once
    unchanged this long. Defaults from the settings (``inbox``, ``archive``, ``rejected``,
    ``inbox_settle_s``).
    """

    inbox_dir: str
    archive_dir: str
    rejected_dir: str
    settle_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> InboxResource:
        return cls(
            inbox_dir=str(paths.inbox_dir(settings)),
            archive_dir=str(paths.archive_dir(settings)),
            rejected_dir=str(paths.rejected_dir(settings)),
            settle_seconds=settings.inbox_settle_s,
        )

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_dir).expanduser().resolve()

    @property
    def archive(self) -> Path:
        return Path(self.archive_dir).expanduser().resolve()

    @property
    def rejected(self) -> Path:
        return Path(self.rejected_dir).expanduser().resolve()
