"""Offline Plotly HTML reports rendered from the marts (docs/reports.md).

One module per report (``influence``, ``expansion``, ``cascades``, ``lifecycle``, ``trends``,
``glossary``, ``index``), the shared page shell in ``page``, figure builders in ``figures``,
people pseudonyms in ``pseudonym``, the downloads in ``exports``. ``site`` writes a set of
pages into one directory (:func:`render_all`: every page); the Dagster reports asset calls it.

The names below are imported on first use: a command that needs one module (``sharegraph
export``, ``sharegraph reveal``) imports this package and must not pay for Plotly and the pages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sharegraph.reports.cascades import render_cascades
    from sharegraph.reports.expansion import render_expansion
    from sharegraph.reports.glossary import render_glossary
    from sharegraph.reports.index import render_index
    from sharegraph.reports.influence import render_influence
    from sharegraph.reports.lifecycle import render_lifecycle
    from sharegraph.reports.planning import render_launch_plan
    from sharegraph.reports.site import PAGES, generated_at, render_all, render_pages
    from sharegraph.reports.trends import render_trends

_HOME = {"render_cascades": "cascades", "render_expansion": "expansion", "render_glossary": "glossary",
         "render_index": "index", "render_influence": "influence", "render_lifecycle": "lifecycle",
         "render_launch_plan": "planning", "render_trends": "trends", "PAGES": "site",
         "generated_at": "site", "render_all": "site", "render_pages": "site"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # noqa: RUF022 - the renderers, then the site's names
    "render_cascades", "render_expansion", "render_glossary", "render_index", "render_influence",
    "render_launch_plan", "render_lifecycle", "render_trends",
    "PAGES", "generated_at", "render_all", "render_pages",
]
