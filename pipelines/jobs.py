"""Jobs: the full pipeline, the daily export load, and the refresh that follows a load."""

from __future__ import annotations

import dagster as dg

from assets.daily import load_export_day
from assets.partitions import daily_exports_partitions

#: every materializable asset (ingest of the input dir, graph, marts, reports, publish)
full_pipeline_job = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Load the input directory, rebuild graph/marts/reports, publish the snapshot.",
)

#: everything computed from staging (graph, marts, reports, publish), not the ingest itself:
#: marts are unpartitioned and recompute fully (set-based, seconds) after a day's load.
refresh_job = dg.define_asset_job(
    "refresh_after_load",
    selection=dg.AssetSelection.key_prefixes(["staging"]).downstream(include_self=False),
    description="Recompute graph, marts and reports from staging and publish (after a daily load).",
)


@dg.job(partitions_def=daily_exports_partitions, executor_def=dg.in_process_executor,
        description="Load one export day from the inbox into staging (idempotent by natural key).")
def daily_load_job() -> None:
    load_export_day()
