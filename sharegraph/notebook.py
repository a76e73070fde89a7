"""Set-up shared by the analyst notebooks (notebooks/*.py, docs/notebooks.md)."""

from __future__ import annotations

import duckdb

from sharegraph.core import paths
from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect


def open_published() -> tuple[str, Settings, duckdb.DuckDBPyConnection]:
    """The published warehouse opened read-only, never the pipeline's working file, so a
    notebook can stay open while the pipeline publishes a new snapshot.

    Path and settings from ``Settings.load()``: setting ``warehouse`` (``SHAREGRAPH_WAREHOUSE``),
    default ``<state>/sharegraph.duckdb`` (``core.paths.warehouse``), and the run's timezone and
    thresholds. Prints the path; returns (path, settings, connection).
    """
    settings = Settings.load()
    path = str(paths.warehouse(settings))
    con = connect(path, read_only=True, timezone=settings.timezone)
    print(f"warehouse: {path}")
    return path, settings, con
