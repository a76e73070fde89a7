"""The Dagster code location: `dg dev` (make dev) and `dagster asset materialize` load ``defs``.

Every asset and asset check of the ``assets`` package is discovered automatically; the
publish asset is built here because it depends on every graph/* and marts/* asset found.
Every DuckDB-writing step runs in one process (in-process executor): DuckDB allows one
writer per file, and the stages are set-based and already use both cores.
"""

from __future__ import annotations

import dagster as dg

import assets
from assets.daily import daily_exports
from assets.publish import build_publish_assets
from assets.resources import InboxResource, WarehouseResource
from pipelines.jobs import daily_load_job, full_pipeline_job, refresh_job
from pipelines.schedules import daily_load_schedule
from pipelines.sensors import inbox_sensor, refresh_after_daily_load
from sharegraph.core.config import Settings


def load_pipeline() -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """Every materializable asset of the ``assets`` package plus ``warehouse/published``,
    and every asset check (the order ``dg.materialize`` and ``Definitions`` take them)."""
    found = [
        a for a in dg.load_assets_from_package_module(assets)
        if isinstance(a, dg.AssetsDefinition) and a.is_executable
    ]
    checks = list(dg.load_asset_checks_from_package_module(assets))
    published = build_publish_assets(k for a in found for k in a.keys)
    return [*found, published], checks


_assets, _checks = load_pipeline()
_settings = Settings.load()  # paths of the default resources (sharegraph.toml, SHAREGRAPH_*)

defs = dg.Definitions(
    assets=[*_assets, daily_exports],
    asset_checks=_checks,
    jobs=[full_pipeline_job, refresh_job, daily_load_job],
    schedules=[daily_load_schedule],
    sensors=[inbox_sensor, refresh_after_daily_load],
    resources={"warehouse": WarehouseResource.from_settings(_settings),
               "inbox": InboxResource.from_settings(_settings)},
    executor=dg.in_process_executor,
)
