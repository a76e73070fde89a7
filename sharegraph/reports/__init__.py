"""Offline Plotly HTML reports rendered from the marts (docs/reports.md).

One module per report (``influence``, ``expansion``, ``cascades``, ``lifecycle``, ``trends``,
``glossary``, ``index``), the shared page
shell in ``page``, figure builders in ``figures`` and people pseudonyms in ``pseudonym``.
:func:`render_all` writes every report into one directory; the Dagster assets in
``assets/reports.py`` call the per-report functions.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from sharegraph.core.config import Settings
from sharegraph.reports.cascades import render_cascades
from sharegraph.reports.expansion import render_expansion
from sharegraph.reports.glossary import render_glossary
from sharegraph.reports.index import render_index
from sharegraph.reports.influence import render_influence
from sharegraph.reports.lifecycle import render_lifecycle
from sharegraph.reports.page import ensure_plotlyjs
from sharegraph.reports.planning import render_launch_plan
from sharegraph.reports.trends import render_trends


def generated_at(settings: Settings) -> str:
    """Now in the configured zone, as the reports print it."""
    return datetime.now(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def render_all(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path) -> dict[str, list[Path]]:
    """Write plotly.min.js and every report into ``out_dir`` (index last, it lists the others)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = generated_at(settings)
    ensure_plotlyjs(out_dir)
    written = {
        "influence": [render_influence(con, settings, out_dir, stamp)],
        "cascades": [render_cascades(con, settings, out_dir, stamp)],
        "expansion": render_expansion(con, settings, out_dir, stamp),
        "lifecycle": [render_lifecycle(con, settings, out_dir, stamp)],
        "launch_plan": [render_launch_plan(con, settings, out_dir, stamp)],
        "trends": [render_trends(con, settings, out_dir, stamp)],
        "glossary": [render_glossary(con, settings, out_dir, stamp)],
    }
    written["index"] = [render_index(con, settings, out_dir, stamp)]
    return written


__all__ = [
    "generated_at",
    "render_all",
    "render_cascades",
    "render_expansion",
    "render_glossary",
    "render_index",
    "render_influence",
    "render_launch_plan",
    "render_lifecycle",
    "render_trends",
]
