"""Default locations: the project's state directory, and what a run writes beside its warehouse."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """The project's state directory (``SHAREGRAPH_STATE``, default ``./state``)."""
    return Path(os.environ.get("SHAREGRAPH_STATE", "state")).expanduser().resolve()


def default_input_dir() -> Path:
    return state_dir() / "demo-input"


def default_warehouse() -> Path:
    return state_dir() / "sharegraph.duckdb"


def default_reports_dir() -> Path:
    """Reports of the default warehouse (``SHAREGRAPH_REPORTS``, else ``state/reports``)."""
    return reports_dir_for(default_warehouse())


def reports_dir_for(warehouse: str | os.PathLike[str]) -> Path:
    """Where a run's reports go: ``SHAREGRAPH_REPORTS`` if set, else ``reports/`` beside the
    warehouse, so a run into another directory never writes over the demo's reports."""
    configured = os.environ.get("SHAREGRAPH_REPORTS")
    if configured:
        return Path(configured).expanduser().resolve()
    return _beside(warehouse) / "reports"


def dagster_home_for(warehouse: str | os.PathLike[str]) -> Path:
    """The Dagster instance of a run: ``DAGSTER_HOME`` if set, else ``dagster/`` beside the
    warehouse (run history and event logs stay with the data they describe)."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    return _beside(warehouse) / "dagster"


def logs_dir_for(warehouse: str | os.PathLike[str]) -> Path:
    """Where ``sharegraph run`` writes each run's log file: ``logs/`` beside the warehouse."""
    return _beside(warehouse) / "logs"


def _beside(warehouse: str | os.PathLike[str]) -> Path:
    return Path(warehouse).expanduser().resolve().parent
