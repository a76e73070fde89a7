"""Daily partitions of the export inbox, built from the settings (``daily_start``, ``timezone``).

A partition is an *export day*: the date in the delivered file's name
(``orders_2026-03-14.csv``), not the days of the rows inside it; rows for earlier days in a
later export are late rows and load with it (loads are idempotent by natural key).
"""

from __future__ import annotations

import dagster as dg

from sharegraph.core.config import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per export day from ``daily_start`` to tomorrow in ``timezone``
    (``end_offset=1``: today's partition exists, so an export delivered today loads today)."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.daily_start, timezone=settings.timezone, end_offset=1
    )


#: the code location's partitions (``sharegraph.toml`` / ``SHAREGRAPH_*`` when it loads); the
#: daily schedule runs in the same zone (``pipelines.schedules``)
daily_exports_partitions = daily_partitions(Settings.load())
