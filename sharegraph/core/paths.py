"""Default locations: the project's state directory, and what a run writes beside its warehouse.

The one home of every default path. Each value comes from ``Settings`` (``state``,
``warehouse``, ``input``, ``inbox``, ...; ``sharegraph.toml`` or ``SHAREGRAPH_*``); an empty
setting means the default under the state directory. ``settings=None`` loads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from sharegraph.core.config import Settings


def _load(settings: Settings | None) -> Settings:
    return settings if settings is not None else Settings.load()


def _path(text: str) -> Path:
    return Path(text).expanduser().resolve()


def state_dir(settings: Settings | None = None) -> Path:
    """The project's state directory (setting ``state``, default ``./state``)."""
    return _path(_load(settings).state)


def default_input_dir(settings: Settings | None = None) -> Path:
    """The demo world's directory, ``<state>/demo-input`` (what ``sharegraph demo`` writes)."""
    return state_dir(settings) / "demo-input"


def input_dir(settings: Settings | None = None) -> Path | str:
    """Input of the code location's full pipeline: setting ``input`` (a URI as given, for the
    Spark engine), else the demo's directory."""
    s = _load(settings)
    if not s.input:
        return default_input_dir(s)
    return s.input if is_uri(s.input) else _path(s.input)


def is_uri(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` (an input the Spark engine reads through Hadoop)."""
    scheme, sep, _ = str(location).partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def input_location(location: str | os.PathLike[str]) -> str:
    """An input directory as the run records it: a URI as given, else the absolute path."""
    return str(location) if is_uri(location) else str(Path(location).expanduser().resolve())


def default_warehouse(settings: Settings | None = None) -> Path:
    """``<state>/sharegraph.duckdb``: what ``sharegraph demo`` publishes."""
    return state_dir(settings) / "sharegraph.duckdb"


def warehouse(settings: Settings | None = None) -> Path:
    """The published warehouse of the code location and the notebooks: setting ``warehouse``,
    else :func:`default_warehouse`."""
    s = _load(settings)
    return _path(s.warehouse) if s.warehouse else default_warehouse(s)


def default_reports_dir(settings: Settings | None = None) -> Path:
    """Reports of the configured warehouse (setting ``reports``, else beside it)."""
    s = _load(settings)
    return reports_dir_for(warehouse(s), s)


def reports_dir_for(warehouse: str | os.PathLike[str], settings: Settings | None = None) -> Path:
    """Where a run's reports go: setting ``reports`` if set, else ``reports/`` beside the
    warehouse, so a run into another directory never writes over the demo's reports."""
    configured = _load(settings).reports
    if configured:
        return _path(configured)
    return _beside(warehouse) / "reports"


def inbox_dir(settings: Settings | None = None) -> Path:
    """Where daily exports are delivered: setting ``inbox``, else ``<state>/inbox``."""
    return _state_or(_load(settings), "inbox")


def archive_dir(settings: Settings | None = None) -> Path:
    """Where loaded exports move: setting ``archive``, else ``<state>/archive``."""
    return _state_or(_load(settings), "archive")


def rejected_dir(settings: Settings | None = None) -> Path:
    """Where unloadable exports move: setting ``rejected``, else ``<state>/rejected``."""
    return _state_or(_load(settings), "rejected")


def dagster_home_for(warehouse: str | os.PathLike[str]) -> Path:
    """The Dagster instance of a run: ``DAGSTER_HOME`` (Dagster's own variable) if set, else
    ``dagster/`` beside the warehouse (run history and event logs stay with the data)."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        return _path(configured)
    return _beside(warehouse) / "dagster"


def logs_dir_for(warehouse: str | os.PathLike[str]) -> Path:
    """Where ``sharegraph run`` writes each run's log file: ``logs/`` beside the warehouse."""
    return _beside(warehouse) / "logs"


def _state_or(settings: Settings, name: str) -> Path:
    configured = getattr(settings, name)
    return _path(configured) if configured else state_dir(settings) / name


def _beside(warehouse: str | os.PathLike[str]) -> Path:
    return Path(warehouse).expanduser().resolve().parent
