"""Run the whole asset graph in-process: what ``sharegraph run`` and ``sharegraph demo`` call."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from pipelines.jobs import full_pipeline_job
from pipelines.resources import WarehouseResource
from sharegraph.core import paths
from sharegraph.core.warehouse import check_writable

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: key of the logger that receives every Dagster event of a run when ``event_logger`` is given
EVENT_LOGGER_KEY = "sharegraph"


def ensure_dagster_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Create the Dagster instance directory with the project's dagster.yaml and return it.

    ``home`` wins, then ``DAGSTER_HOME``, then the state directory's ``dagster/``. The
    environment is left alone, so one process can run into several warehouses.
    """
    chosen = home or os.environ.get("DAGSTER_HOME") or paths.state_dir() / "dagster"
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    source = PROJECT_ROOT / "dagster.yaml"
    target = path / "dagster.yaml"
    if source.is_file() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    return path


def build_run_job(resource: WarehouseResource, event_logger: logging.Logger | None = None) -> dg.JobDefinition:
    """The ``full_pipeline`` job (every asset and check) bound to ``resource``.

    A named job, so the Dagster UI lists CLI runs as ``full_pipeline``, not as an ephemeral
    job. With ``event_logger`` every event goes to that Python logger instead of Dagster's
    console logger (the CLI writes it to a log file and draws its own summary).
    """
    from pipelines.definitions import load_pipeline

    found, checks = load_pipeline()
    loggers = {EVENT_LOGGER_KEY: dg.LoggerDefinition(lambda _init: event_logger)} if event_logger else None
    defs = dg.Definitions(
        assets=found,
        asset_checks=checks,
        jobs=[full_pipeline_job],
        resources={"warehouse": resource},
        executor=dg.in_process_executor,
        loggers=loggers,
    )
    return defs.resolve_job_def(full_pipeline_job.name)


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

    ``reports_dir`` defaults to ``reports/`` beside the warehouse (or ``SHAREGRAPH_REPORTS``),
    the Dagster instance to ``dagster_home``, else ``DAGSTER_HOME``, else ``dagster/`` beside
    the warehouse. ``settings_overrides`` apply over the config file (e.g.
    ``{"max_reject_rate": 0.1}``).

    Raises ``sharegraph.core.warehouse.WarehouseError`` before any work when the warehouse
    location is unusable, and (with ``raise_on_error``) ``dagster.DagsterExecutionStepExecutionError``
    (or the underlying error) when a step fails; the published warehouse is then left as it
    was. Without ``raise_on_error`` a failed run is a result whose ``success`` is False.
    """
    published = Path(warehouse).expanduser().resolve()
    resource = WarehouseResource(
        warehouse=str(published),
        input_dir=str(Path(input_dir).expanduser().resolve()),
        reports_dir=str(Path(reports_dir or paths.reports_dir_for(published)).expanduser().resolve()),
        config_file=str(config_file) if config_file else None,
        settings_overrides=json.dumps(dict(settings_overrides)) if settings_overrides else None,
    )
    check_writable(resource.paths)  # before anything is created beside it
    resource.settings()  # a bad config file or override fails here, not inside a step
    home = ensure_dagster_home(dagster_home or paths.dagster_home_for(published))
    job = build_run_job(resource, event_logger)
    run_config = {"loggers": {EVENT_LOGGER_KEY: {}}} if event_logger else None
    tags = {"sharegraph/input": resource.input_dir, "sharegraph/warehouse": resource.warehouse}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=raise_on_error, tags=tags
        )
