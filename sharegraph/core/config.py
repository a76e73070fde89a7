"""Pipeline settings: one typed object, defaults a user of the field would expect.

Values come from defaults, then an optional ``sharegraph.toml`` (or the file named by
``SHAREGRAPH_CONFIG``), then ``SHAREGRAPH_<FIELD>`` environment variables (``SHAREGRAPH_STATE``,
``SHAREGRAPH_TIMEZONE``, ...). This is the only module that reads them; every value is checked
here, once, so a bad one fails when the settings load, naming where it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENGINES = ("duckdb", "spark")
"""The engines a run can use (docs/engines.md)."""

SPARK_KEYS = ("master", "driver_memory", "output", "conf")
"""Keys of the [sharegraph.spark] table."""

MEMORY_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)\s*", re.IGNORECASE)
"""A size as DuckDB's ``memory_limit`` reads and writes it ("5GB", "19.0 GiB"): number, unit."""


@dataclass(frozen=True)
class Settings:
    timezone: str = "Asia/Shanghai"
    """Zone of timestamps written without an offset; zoned ones are converted to it."""
    encoding: str = "auto"
    """Text encoding of CSV inputs: auto (detect), utf-8, utf-8-sig, gbk, gb18030."""
    attribution_window_days: int = 7
    """An order without share_id is credited to the buyer's last click within this many days."""
    downstream_decay: float = 0.5
    """Weight of generation g of downstream GMV is decay**(g-1); 1.0 means no decay."""
    pagerank_alpha: float = 0.85
    commission_rate: float = 0.05
    """Commission as a share of paid GMV, when orders carry no commission column."""
    red_packet_yuan: float = 2.0
    """Share red packet per share-attributed paid order, ¥, when orders carry none."""
    min_pair_customers: int = 20
    """Minimum customers buying both categories for a pair to be reported."""
    affinity_window_days: int = 30
    """Window for directional (A then B) affinity, days after the customer's first A."""
    spillover_window_days: int = 7
    """Window for social spill-over: a purchase within this many days after a click, days."""
    fdr_alpha: float = 0.05
    """Benjamini-Hochberg false discovery rate for affinity significance."""
    pseudonym_key: str = ""
    """Key of the keyed hash that pseudonymises people in reports; empty: a random key kept
    in pseudonym.key beside the warehouse (created on first use, mode 0600)."""
    report_row_cap: int = 500
    """Largest table rendered in a report; the rest is noted and left to the warehouse."""
    max_reject_rate: float = 0.05
    """A file whose rejected rows exceed this share of its rows fails the run (0..1)."""
    channel_classes: dict[str, str] = field(default_factory=dict)
    """Extra channel -> class (platform / social / other), on top of the built-in classes."""
    value_synonyms: dict[str, dict[str, str]] = field(default_factory=dict)
    """Extra value synonyms per column, e.g. {"channel": {"抖音直播": "douyin"}}."""
    churn_days: int = 30
    """Agent lifecycle: an agent with no share or credited sale in the last this many days of the data has churned."""
    min_recruits: int = 5
    """Upline quality: an upline is ranked only with at least this many direct recruits."""
    retention_month: int = 3
    """Upline quality: a recruit is retained when active in this month after the joining month (0 = joining month)."""
    self_referral_min_orders: int = 3
    """Integrity rule self_referral: own paid orders with oneself as referrer or through one's own share, at least."""
    ring_min_edge_orders: int = 3
    """Integrity rule referral_ring: paid orders an edge (credited person -> buyer) needs to count as a ring tie."""
    ring_max_size: int = 10
    """Integrity rule referral_ring: largest cycle (strongly connected group) reported as a ring."""
    refund_fdr: float = 0.01
    """Integrity rule refund_abuse: Benjamini-Hochberg false discovery rate of the binomial test."""
    refund_min_ratio: float = 3.0
    """Integrity rule refund_abuse: refund rate at least this multiple of the merchants' expected rate."""
    refund_min_refunds: int = 3
    """Integrity rule refund_abuse: refunded credited order lines, at least."""
    click_burst_window_minutes: int = 10
    """Integrity rule click_burst: length of the window clicks are counted in, minutes."""
    click_burst_min_clicks: int = 20
    """Integrity rule click_burst: clicks by others on one share within the window, at least."""
    click_burst_history_factor: float = 5.0
    """Integrity rule click_burst: the burst is at least this multiple of the sharer's mean clicks per other share."""
    click_burst_max_conversion: float = 0.05
    """Integrity rule click_burst: paid orders through the share per burst click, at most."""

    # --- where things live (core/paths.py derives the defaults; relative paths are taken
    # from the current directory). Empty means the default under ``state``.
    state: str = "state"
    """The state directory: published warehouse, demo input, inbox, reports, Dagster runs."""
    warehouse: str = ""
    """Published DuckDB file of the code location's runs; default <state>/sharegraph.duckdb."""
    input: str = ""
    """Input directory of the code location's full pipeline; default <state>/demo-input."""
    reports: str = ""
    """Directory of the HTML reports; default reports/ beside the warehouse."""
    inbox: str = ""
    """Where daily exports are delivered; default <state>/inbox."""
    archive: str = ""
    """Where loaded daily exports move, by export day; default <state>/archive."""
    rejected: str = ""
    """Where unloadable daily exports move, with <name>.reason.txt; default <state>/rejected."""
    inbox_settle_s: float = 5.0
    """A delivered file without a .ready/.done marker is complete once unchanged this long, seconds."""
    daily_start: str = "2024-01-01"
    """First export day of the daily partitions (YYYY-MM-DD); the last is tomorrow in ``timezone``."""

    # --- resources
    memory_limit: str = "5GB"
    """Most memory DuckDB may hold on the run's connection, e.g. "5GB" (DuckDB's own default,
    80% of RAM, when that is lower); empty: DuckDB's default. Bounds DuckDB's buffer pool
    (cached table blocks included; DuckDB spills past it), not the NumPy arrays of the graph
    kernels (docs/performance.md, "Memory")."""

    # --- engine (docs/engines.md)
    engine: str = "duckdb"
    """Engine of the run: duckdb (default, in-process) or spark (pip extra [spark], Java)."""
    spark: dict[str, object] = field(default_factory=dict)
    """The [sharegraph.spark] table: master (default local[*]), driver_memory (default 2g),
    output (Parquet folder, default spark-out/ beside the warehouse), conf (extra Spark conf)."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with these values, one sentence each (empty when they are valid)."""
        out = []
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(f"timezone {self.timezone!r} is not a time zone of the IANA database "
                       "(e.g. Asia/Shanghai, UTC)")
        if not 0 <= self.max_reject_rate <= 1:
            out.append(f"max_reject_rate = {self.max_reject_rate} is not in 0..1")
        try:
            date.fromisoformat(self.daily_start)
        except ValueError:
            out.append(f"daily_start {self.daily_start!r} is not a date (YYYY-MM-DD)")
        if self.inbox_settle_s < 0:
            out.append(f"inbox_settle_s = {self.inbox_settle_s} is negative")
        if not self.state:
            out.append("state is empty (the state directory, default 'state')")
        if self.memory_limit and not MEMORY_SIZE.fullmatch(self.memory_limit):
            out.append(f"memory_limit {self.memory_limit!r} is not a size such as 6GB, 6GiB or 512MB")
        if self.engine not in ENGINES:
            out.append(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        unknown = sorted(set(self.spark) - set(SPARK_KEYS))
        if unknown:
            out.append(f"spark: unknown key(s) {', '.join(unknown)}; known: {', '.join(SPARK_KEYS)}")
        if not isinstance(self.spark.get("conf", {}), dict):
            out.append("spark.conf must be a table of Spark settings")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Settings:
        settings = cls()
        path = path or os.environ.get("SHAREGRAPH_CONFIG")
        if path is None and Path("sharegraph.toml").is_file():
            path = "sharegraph.toml"
        if path is not None:
            with open(path, "rb") as fh:
                data = tomllib.load(fh).get("sharegraph", {})
            settings = settings.with_values(data, source=str(path))
        env = {
            f.name: os.environ[f"SHAREGRAPH_{f.name.upper()}"]
            for f in fields(cls)
            if f"SHAREGRAPH_{f.name.upper()}" in os.environ
        }
        return settings.with_values(env, source="environment")

    def with_values(self, values: dict[str, object], source: str = "") -> Settings:
        known = {f.name: f for f in fields(self)}
        updates: dict[str, object] = {}
        for name, raw in values.items():
            if name not in known:
                raise ValueError(f"{source}: unknown setting {name!r}; known: {', '.join(known)}")
            current = getattr(self, name)
            if isinstance(current, dict):
                updates[name] = _string_map(name, raw, source)
                continue
            try:
                updates[name] = type(current)(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: setting {name!r} = {raw!r} is not a {type(current).__name__}") from exc
        try:
            return replace(self, **updates)
        except ValueError as exc:  # problems(): name where the bad value came from
            raise ValueError(f"{source}: {exc}") from None


def _string_map(name: str, raw: object, source: str) -> dict:
    """A TOML table of text (or, one level down, of tables of text) as plain dicts."""
    if isinstance(raw, str):
        import json

        try:
            raw = json.loads(raw)  # from the environment: a JSON object
        except ValueError:
            raise ValueError(f"{source}: setting {name!r} must be a table (JSON object)") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: setting {name!r} must be a table, got {raw!r}")
    return {str(k): (_string_map(f"{name}.{k}", v, source) if isinstance(v, dict) else str(v))
            for k, v in raw.items()}
