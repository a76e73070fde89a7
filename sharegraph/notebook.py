"""Set-up shared by the analyst notebooks (notebooks/*.py, docs/notebooks.md)."""

from __future__ import annotations

import os

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect

DEFAULT_WAREHOUSE = "state/sharegraph.duckdb"
"""What ``make demo`` / ``sharegraph run`` publishes, relative to the repository root."""


def open_published() -> tuple[str, Settings, duckdb.DuckDBPyConnection]:
    """The published warehouse opened read-only, never the pipeline's working file, so a
    notebook can stay open while the pipeline publishes a new snapshot.

    Path from ``SHAREGRAPH_WAREHOUSE`` (default :data:`DEFAULT_WAREHOUSE`); settings from
    ``Settings.load()`` (the run's timezone, thresholds). Prints the path; returns
    (path, settings, connection).
    """
    path = os.environ.get("SHAREGRAPH_WAREHOUSE", DEFAULT_WAREHOUSE)
    settings = Settings.load()
    con = connect(path, read_only=True, timezone=settings.timezone)
    print(f"warehouse: {path}")
    return path, settings, con
