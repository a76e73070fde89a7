"""Daily partitions of the export inbox, and where the inbox and its archive live.

A partition is an *export day*: the date in the delivered file's name
(``orders_2026-03-14.csv``), not the days of the rows inside it; rows for earlier days in a
later export are late rows and load with it (loads are idempotent by natural key).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from sharegraph.core import paths

TIMEZONE = os.environ.get("SHAREGRAPH_TIMEZONE", "Asia/Shanghai")
DAILY_START = os.environ.get("SHAREGRAPH_DAILY_START", "2024-01-01")

#: ``end_offset=1``: today's partition exists, so an export delivered today loads today.
daily_exports_partitions = dg.DailyPartitionsDefinition(
    start_date=DAILY_START, timezone=TIMEZONE, end_offset=1
)


class InboxResource(dg.ConfigurableResource):
    """The inbox the sensor watches, the archive loaded files move to, and ``rejected/``.

    Defaults live in the state directory (``SHAREGRAPH_INBOX``, ``SHAREGRAPH_ARCHIVE``,
    ``SHAREGRAPH_REJECTED`` override them). ``settle_seconds``: a file without a
    ``.ready``/``.done`` marker counts as complete once unchanged this long.
    """

    inbox_dir: str
    archive_dir: str
    rejected_dir: str
    settle_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> InboxResource:
        state = paths.state_dir()
        return cls(
            inbox_dir=os.environ.get("SHAREGRAPH_INBOX", str(state / "inbox")),
            archive_dir=os.environ.get("SHAREGRAPH_ARCHIVE", str(state / "archive")),
            rejected_dir=os.environ.get("SHAREGRAPH_REJECTED", str(state / "rejected")),
            settle_seconds=float(os.environ.get("SHAREGRAPH_INBOX_SETTLE_S", "5")),
        )

    @property
    def inbox(self) -> Path:
        return Path(self.inbox_dir).expanduser().resolve()

    @property
    def archive(self) -> Path:
        return Path(self.archive_dir).expanduser().resolve()

    @property
    def rejected(self) -> Path:
        return Path(self.rejected_dir).expanduser().resolve()
