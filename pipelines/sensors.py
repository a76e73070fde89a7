"""Sensors: new exports in the inbox start a day's load; a good load starts the refresh."""

from __future__ import annotations

import dagster as dg

from assets.partitions import daily_exports_partitions
from assets.resources import InboxResource
from pipelines.jobs import daily_load_job, refresh_job
from sharegraph.ingest import inbox as inbox_lib


# Targets the job by name: a JobDefinition target whose resources Definitions binds makes
# dagster 1.13 re-create the sensor with owners=[] and emit a spurious BetaWarning at load.
@dg.sensor(job_name=daily_load_job.name, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Each new complete export file in the inbox starts a load of its export day.")
def inbox_sensor(context: dg.SensorEvaluationContext, inbox: InboxResource):
    """One RunRequest per complete file; run_key = name:size:mtime, so a file triggers once.

    Unreadable or misnamed files (and links out of the inbox) move to rejected/ with a
    ``<name>.reason.txt``; files still being written (young, no marker) wait.
    """
    found = inbox_lib.scan(inbox.inbox, settle_seconds=inbox.settle_seconds)
    for r in found.rejected:
        inbox_lib.reject(r.path, inbox.inbox, inbox.rejected, r.reason)
        context.log.warning(f"rejected {r.path.name}: {r.reason}")
    valid_days = set(daily_exports_partitions.get_partition_keys())
    requests = []
    for f in found.ready:
        key = f.day.isoformat()
        if key not in valid_days:
            inbox_lib.reject(f.path, inbox.inbox, inbox.rejected,
                             f"export day {key} is outside the partitions "
                             f"({min(valid_days)} .. {max(valid_days)})")
            continue
        requests.append(dg.RunRequest(run_key=f.run_key, partition_key=key,
                                      tags={"sharegraph/file": f.path.name}))
    if requests:
        return requests
    return dg.SkipReason(
        f"no new complete export in {inbox.inbox} ({len(found.waiting)} still being written, "
        f"{len(found.rejected)} rejected)"
    )


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[daily_load_job],
                      request_job=refresh_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="After a successful daily load: recompute graph/marts/reports and publish.")
def refresh_after_daily_load(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"refresh-after-{context.dagster_run.run_id}")
