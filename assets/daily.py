"""Daily stage: load one export day from the inbox into staging (the op of a partitioned job).

The load is an *op*, run by a job partitioned by export day (the wiring's ``daily_load_job``)
and recorded on the external asset ``raw/daily_exports`` (a partitioned AssetSpec), rather
than a partitioned asset: a partitioned asset in the graph would make ``dagster asset
materialize --select '*'`` demand a partition. Downstream graph/marts are unpartitioned and
recompute fully afterwards (the refresh job, started by a run-status sensor).
"""


from datetime import date

import dagster as dg

from assets.keys import DAILY_EXPORTS
from assets.partitions import daily_exports_partitions
from assets.resources import InboxResource, WarehouseResource
from sharegraph.core.contract import TABLES
from sharegraph.ingest import load as ingest
from sharegraph.ingest.inbox import load_day

daily_exports = dg.AssetSpec(
    key=DAILY_EXPORTS,
    partitions_def=daily_exports_partitions,
    group_name="daily",
    kinds={"duckdb"},
    description="One row per delivered export file per export day (raw.daily_exports); "
    "materialized by daily_load_job, one partition per export day.",
)


@dg.op(out=dg.Out(dg.Nothing), tags={"kind": "duckdb"})
def load_export_day(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, inbox: InboxResource
):
    """Load the partition's export day, then report reconciliation and duplicates as checks.

    Fails the run (so no refresh or publish follows) when a batch does not reconcile or a
    natural key is duplicated; rejected files are a warning (they sit in rejected/ with
    their reason).
    """
    day = date.fromisoformat(context.partition_key)
    with warehouse.connect() as con:
        result = load_day(con, day, inbox=inbox.inbox, archive_dir=inbox.archive,
                          rejected_dir=inbox.rejected, settings=warehouse.settings())
        unbalanced = ingest.reconciliation_failures(con)
        loaded = [f["batch_id"] for f in result.files if f["outcome"] == "loaded"]
        dups = {t: ingest.duplicate_keys(con, t, loaded) for t in TABLES}
    dup_total = sum(dups.values())
    context.log.info(f"{day}: {len(result.files)} files, {result.total('rows_loaded')} rows loaded")
    yield dg.AssetMaterialization(
        asset_key=DAILY_EXPORTS,
        partition=context.partition_key,
        metadata={
            "files": len(result.files),
            "files_rejected": len(result.rejected),
            "rows_read": result.total("rows_read"),
            "rows_loaded": result.total("rows_loaded"),
            "rows_quarantined": result.total("rows_quarantined"),
            "rows_already_loaded": result.total("rows_already_loaded"),
            "file_names": ", ".join(f["file_name"] for f in result.files) or "(none)",
        },
    )
    yield dg.AssetCheckEvaluation(
        asset_key=DAILY_EXPORTS, check_name="batches_reconcile", passed=not unbalanced,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("every batch: rows_read = loaded + quarantined + already loaded"
                     if not unbalanced else
                     f"{len(unbalanced)} batches do not reconcile, first: {unbalanced[0]}"),
    )
    yield dg.AssetCheckEvaluation(
        asset_key=DAILY_EXPORTS, check_name="natural_keys_unique", passed=dup_total == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=", ".join(f"staging.{t}: {n} duplicated keys" for t, n in dups.items() if n)
        or "no natural key of the day's batches is duplicated in staging",
    )
    yield dg.AssetCheckEvaluation(
        asset_key=DAILY_EXPORTS, check_name="no_rejected_files", passed=not result.rejected,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{f['file_name']}: {f['reason']}" for f in result.rejected)
        or "every file of the day was readable",
    )
    if unbalanced or dup_total:
        raise dg.Failure(
            description=f"export day {day}: {len(unbalanced)} unbalanced batches, "
            f"{dup_total} duplicated keys; downstream refresh and publish are not run"
        )

