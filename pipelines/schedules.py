"""Schedules: the nightly catch-up load of yesterday's exports."""

from __future__ import annotations

import dagster as dg

from pipelines.jobs import daily_load_job

#: 06:00 Asia/Shanghai every day: load yesterday's export day (files the sensor has not
#: started a run for yet, plus the archived ones, idempotently). The refresh and publish
#: follow through ``refresh_after_daily_load``.
daily_load_schedule = dg.build_schedule_from_partitioned_job(
    daily_load_job,
    name="daily_load_schedule",
    hour_of_day=6,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly catch-up: load yesterday's export day, then refresh and publish.",
)
