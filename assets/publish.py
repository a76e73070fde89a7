"""Publish stage: the analysts' read-only snapshot, ``warehouse/published``.

Built by a factory because it depends on *every* graph/* and marts/* asset, whatever the
other stage modules define: pipelines/definitions.py calls ``build_publish_assets`` with the
loaded assets' keys. Reports are files, not tables, and are not dependencies.
"""


from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from assets.keys import PUBLISHED
from assets.resources import WarehouseResource
from sharegraph.core import warehouse as wh

PUBLISH_AFTER = ("graph", "marts")


def publish_deps(keys: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """The keys publishing waits for: every graph/* and marts/* asset."""
    return sorted({k for k in keys if k.path[0] in PUBLISH_AFTER}, key=lambda k: k.to_user_string())


def failed_checks_in_run(context: dg.AssetExecutionContext) -> list[str]:
    """ERROR-severity check failures recorded so far in this run ("<asset>:<check>: why")."""
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = []
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(f"{ev.asset_key.to_user_string()}:{ev.check_name}: {ev.description or ''}")
    return failed


def _table_counts(path: Path) -> dict[str, int]:
    """Rows per table of a DuckDB file, opened read-only and closed again."""
    con = wh.connect(path, read_only=True)
    try:
        return wh.table_counts(con)
    finally:
        con.close()


def published_matches_working(got: dict[str, int], paths: wh.WarehousePaths) -> dg.AssetCheckResult:
    """The snapshot opens read-only and has the working file's tables and row counts."""
    want = _table_counts(paths.working)  # ``got``: the snapshot's, read back after the rename
    diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    return dg.AssetCheckResult(
        check_name="published_matches_working",
        passed=not diff,
        description=f"{len(got)} tables match the working file" if not diff
        else f"{len(diff)} tables differ from the working file: {', '.join(diff[:10])}",
    )


def build_publish_assets(upstream: Iterable[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publish asset (deps = ``publish_deps(upstream)``) with its snapshot check, which
    runs in the publish step right after the copy (nothing else can open the file between)."""
    deps = publish_deps(upstream)

    @dg.asset(key=PUBLISHED, deps=deps, kinds={"duckdb"}, group_name="publish",
              check_specs=[dg.AssetCheckSpec(
                  "published_matches_working", asset=PUBLISHED, blocking=True,
                  description=(published_matches_working.__doc__ or "").strip())])
    def published(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Copy the working file to the published name atomically (docs/operations.md).

        Runs only when every upstream step succeeded (blocking checks stop the run before)
        and no ERROR-severity check failed in this run.
        """
        failed = failed_checks_in_run(context)
        if failed:
            raise dg.Failure(
                description=f"not publishing: {len(failed)} check(s) failed in this run; the "
                f"published snapshot is unchanged. " + " | ".join(failed[:10])
            )
        warehouse.release()  # the run's kept connection: publish copies a closed file
        path = wh.publish(warehouse.paths)
        counts = _table_counts(path)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(path)),
            "bytes": path.stat().st_size,
            "tables": len(counts),
            **{f"rows.{name}": n for name, n in counts.items()
               if name.split(".")[0] in ("staging", "graph", "marts")},
        }, check_results=[published_matches_working(counts, warehouse.paths)])

    return published
