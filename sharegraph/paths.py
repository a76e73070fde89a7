"""Default locations: the project's state directory and what lives in it."""

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
    return state_dir() / "reports"
