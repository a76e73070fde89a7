"""The Dagster code location: ``dagster dev`` and ``dagster asset materialize`` load ``defs``.

Every DuckDB-writing asset runs in one process (in-process executor): DuckDB allows one
writer per file, and the stages are set-based and already use both cores.
"""

from __future__ import annotations

import dagster as dg

import assets
from pipelines.resources import WarehouseResource

defs = dg.Definitions(
    assets=dg.load_assets_from_package_module(assets),
    asset_checks=dg.load_asset_checks_from_package_module(assets),
    resources={"warehouse": WarehouseResource.from_env()},
    executor=dg.in_process_executor,
)
