"""The one resource every asset uses: where the warehouse, inputs and reports live."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from sharegraph.core import paths, warehouse
from sharegraph.core.config import Settings


class WarehouseResource(dg.ConfigurableResource):
    """Paths of one sharegraph deployment; assets open the *working* DuckDB file through it.

    ``warehouse`` is the published snapshot analysts read; the pipeline writes the working
    file beside it and only the publish asset touches the published name.
    """

    warehouse: str
    input_dir: str
    reports_dir: str
    config_file: str | None = None
    settings_overrides: str | None = None
    """JSON object of settings applied over the config file and environment (what command-line
    flags such as ``--max-reject-rate`` set); a string so it shows as-is in the run's config."""

    @classmethod
    def from_env(cls) -> WarehouseResource:
        warehouse_file = os.environ.get("SHAREGRAPH_WAREHOUSE", str(paths.default_warehouse()))
        return cls(
            warehouse=warehouse_file,
            input_dir=os.environ.get("SHAREGRAPH_INPUT", str(paths.default_input_dir())),
            reports_dir=str(paths.reports_dir_for(warehouse_file)),
            config_file=os.environ.get("SHAREGRAPH_CONFIG"),
        )

    @property
    def paths(self) -> warehouse.WarehousePaths:
        return warehouse.WarehousePaths.of(self.warehouse)

    @property
    def inputs(self) -> Path:
        return Path(self.input_dir).expanduser().resolve()

    @property
    def reports(self) -> Path:
        return Path(self.reports_dir).expanduser().resolve()

    def settings(self) -> Settings:
        settings = Settings.load(self.config_file)
        if self.settings_overrides:
            settings = settings.with_values(json.loads(self.settings_overrides), source="settings_overrides")
        return settings

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.working(self.paths, timezone=self.settings().timezone) as con:
            yield con
