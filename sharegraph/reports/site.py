"""The report site: every page, and writing a chosen set of them into one directory.

The pages are independent except the index, which lists the others with their sizes, so it
is written last, after its downloads (every page's tables as CSV and zh/en Excel workbooks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from sharegraph.core.config import Settings
from sharegraph.reports.cascades import render_cascades
from sharegraph.reports.expansion import render_expansion
from sharegraph.reports.exports import write_exports
from sharegraph.reports.glossary import render_glossary
from sharegraph.reports.index import render_index
from sharegraph.reports.influence import render_influence
from sharegraph.reports.lifecycle import render_lifecycle
from sharegraph.reports.page import ensure_plotlyjs
from sharegraph.reports.planning import render_launch_plan
from sharegraph.reports.trends import render_trends

Renderer = Callable[[duckdb.DuckDBPyConnection, Settings, Path, str], "Path | list[Path]"]

#: every page by name, in the order they are written; the index must stay last
PAGES: dict[str, Renderer] = {
    "influence": render_influence,
    "cascades": render_cascades,
    "expansion": render_expansion,
    "lifecycle": render_lifecycle,
    "launch_plan": render_launch_plan,
    "trends": render_trends,
    "glossary": render_glossary,
    "index": render_index,
}


def generated_at(settings: Settings) -> str:
    """Now in the configured zone, as the reports print it."""
    return datetime.now(ZoneInfo(settings.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def render_pages(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path,
                 pages: Iterable[str] = tuple(PAGES), stamp: str | None = None
                 ) -> Iterator[tuple[str, list[Path]]]:
    """Write ``pages`` (names of :data:`PAGES`) into ``out_dir``, plotly.min.js first, the
    index and its downloads last; yields each page's name and files as it is written.
    ``settings.pseudonym_key`` must be resolved (see pseudonym.resolve_key)."""
    chosen = set(pages)
    unknown = chosen - set(PAGES)
    if unknown:
        raise ValueError(f"unknown report pages {sorted(unknown)}; known: {', '.join(PAGES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ensure_plotlyjs(out_dir)
    stamp = generated_at(settings) if stamp is None else stamp
    for name in (p for p in PAGES if p in chosen):
        downloads = write_exports(con, settings, out_dir) if name == "index" else []
        page = PAGES[name](con, settings, out_dir, stamp)
        yield name, [*(page if isinstance(page, list) else [page]), *downloads]


def render_all(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path) -> dict[str, list[Path]]:
    """Write plotly.min.js and every report into ``out_dir``; each page's files by name."""
    return dict(render_pages(con, settings, out_dir))
