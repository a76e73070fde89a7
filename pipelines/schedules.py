"""Schedules: the nightly catch-up load of yesterday's exports."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from assets.partitions import daily_exports_partitions
from pipelines.jobs import daily_load_job

#: the partitions' zone (setting ``timezone``): "yesterday" and 06:00 mean the same day there
TIMEZONE = daily_exports_partitions.timezone


@dg.schedule(job=daily_load_job, cron_schedule="0 6 * * *", execution_timezone=TIMEZONE,
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="06:00 every day: load yesterday's export day (files the sensor has not "
             "loaded yet, plus the archived ones, idempotently); refresh and publish follow.")
def daily_load_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday in the partitions' zone; the refresh follows via refresh_after_daily_load."""
    at = context.scheduled_execution_time or datetime.now(ZoneInfo(TIMEZONE))
    day = (at.astimezone(ZoneInfo(TIMEZONE)) - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"daily-{day}", partition_key=day)
