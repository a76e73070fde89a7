"""Run the whole asset graph in-process: what ``sharegraph run`` and ``sharegraph demo`` call."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from assets.resources import WarehouseResource, load_settings
from pipelines.jobs import full_pipeline_job
from pipelines.run_instance import open_run_instance
from sharegraph.core import paths
from sharegraph.core.warehouse import check_writable

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: key of the logger that receives every Dagster event of a run when ``event_logger`` is given
EVENT_LOGGER_KEY = "sharegraph"


#: keys of dagster.yaml that place the repository-root instance's storage under state/dagster;
#: any other instance directory keeps its storage inside itself (Dagster's default)
STORAGE_KEYS = ("storage", "local_artifact_storage", "compute_logs")


def instance_config() -> str:
    """The project's dagster.yaml for an instance directory other than the repository root:
    every setting but the storage keys (their paths are relative to the repository root)."""
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8")) or {}
    kept = {k: v for k, v in config.items() if k not in STORAGE_KEYS}
    return ("# Written by sharegraph (pipelines.run.ensure_dagster_home) from the project's "
            "dagster.yaml;\n# storage stays in this directory.\n"
            + yaml.safe_dump(kept, sort_keys=False))


def ensure_dagster_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Create the Dagster instance directory with the project's instance settings; return it.

    ``home`` wins, then ``DAGSTER_HOME``, then the state directory's ``dagster/``. The
    environment is left alone, so one process can run into several warehouses. The
    repository root itself (``make dev``'s home) keeps its dagster.yaml as it is.
    """
    chosen = home or os.environ.get("DAGSTER_HOME") or paths.state_dir() / "dagster"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    if path == PROJECT_ROOT.resolve() or not (PROJECT_ROOT / "dagster.yaml").is_file():
        return path
    target = path / "dagster.yaml"
    text = instance_config()
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return path


def build_run_job(resource: WarehouseResource, event_logger: logging.Logger | None = None,
                  engine: str = "duckdb") -> dg.JobDefinition:
    """The ``full_pipeline`` job (every asset and check) bound to ``resource``.

    A named job, so the Dagster UI lists CLI runs as ``full_pipeline``, not as an ephemeral
    job. With ``event_logger`` every event goes to that Python logger instead of Dagster's
    console logger (the CLI writes it to a log file and draws its own summary). With
    ``engine="spark"`` the job leaves out the assets the Spark stages computed
    (``assets.resources.SPARK_COMPUTED``; docs/engines.md).
    """
    from pipelines.definitions import load_pipeline

    job_def = full_pipeline_job
    if engine == "spark":
        from assets.resources import SPARK_COMPUTED

        job_def = dg.define_asset_job(
            full_pipeline_job.name,
            selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*SPARK_COMPUTED),
            description="Everything downstream of the tables the Spark engine computed.")
    found, checks = load_pipeline()
    loggers = {EVENT_LOGGER_KEY: dg.LoggerDefinition(lambda _init: event_logger)} if event_logger else None
    defs = dg.Definitions(
        assets=found,
        asset_checks=checks,
        jobs=[job_def],
        resources={"warehouse": resource},
        executor=dg.in_process_executor,
        loggers=loggers,
    )
    return defs.resolve_job_def(full_pipeline_job.name)


def _check_spark_tables(resource: WarehouseResource) -> None:
    """The asset checks of the tables Spark computed (their assets are not in the job)."""
    from assets._common import check_tables
    from assets.resources import SPARK_COMPUTED

    checks = logging.getLogger("sharegraph.spark.checks")  # the run's log and progress bar
    with resource.connect() as con:
        for line in check_tables(con, SPARK_COMPUTED):
            checks.info("check passed: %s", line)


def run_pipeline(
    *,
    input_dir: str | os.PathLike[str],
    warehouse: str | os.PathLike[str],
    reports_dir: str | os.PathLike[str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    settings_overrides: Mapping[str, object] | None = None,
    dagster_home: str | os.PathLike[str] | None = None,
    event_logger: logging.Logger | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize every asset (and run every check) of the code location in this process.

    ``reports_dir`` defaults to ``reports/`` beside the warehouse (or the setting ``reports``),
    the Dagster instance to ``dagster_home``, else ``DAGSTER_HOME``, else ``dagster/`` beside
    the warehouse. ``settings_overrides`` apply over the config file (e.g.
    ``{"max_reject_rate": 0.1}``).

    Raises ``sharegraph.core.warehouse.WarehouseError`` before any work when the warehouse
    location is unusable, and (with ``raise_on_error``) ``dagster.DagsterExecutionStepExecutionError``
    (or the underlying error) when a step fails; the published warehouse is then left as it
    was. Without ``raise_on_error`` a failed run is a result whose ``success`` is False.
    """
    published = Path(warehouse).expanduser().resolve()
    config = str(config_file) if config_file else None
    overrides = json.dumps(dict(settings_overrides)) if settings_overrides else None
    settings = load_settings(config, overrides)  # a bad config or override fails here, not in a step
    resource = WarehouseResource(
        warehouse=str(published),
        input_dir=paths.input_location(input_dir),
        reports_dir=str(Path(reports_dir or paths.reports_dir_for(published, settings)).expanduser().resolve()),
        config_file=config,
        settings_overrides=overrides,
    )
    check_writable(resource.paths)  # before anything is created beside it
    home = ensure_dagster_home(dagster_home or paths.dagster_home_for(published))
    if settings.engine == "spark":  # pyspark is imported only here (docs/engines.md)
        from assets.resources import compute_on_spark

        compute_on_spark(resource)
        _check_spark_tables(resource)
    job = build_run_job(resource, event_logger, settings.engine)
    run_config = {"loggers": {EVENT_LOGGER_KEY: {}}} if event_logger else None
    tags = {"sharegraph/input": resource.input_dir, "sharegraph/warehouse": resource.warehouse}
    with open_run_instance(home) as instance:
        return job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=raise_on_error, tags=tags
        )
