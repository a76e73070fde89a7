"""Reports stage: offline Plotly HTML reports in ``warehouse.reports`` (docs/reports.md).

Thin wrappers over ``sharegraph.reports``: each asset opens the working DuckDB file, renders
its page(s) atomically and reports the files written. The index runs last: it lists the
other reports with their sizes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg

from assets.keys import (
    AGENT_COHORTS,
    AGENT_FUNNEL,
    AGENT_INFLUENCE,
    AGENT_UPLINE,
    ATTRIBUTED,
    CASCADES,
    CATEGORY_AFFINITY,
    CHANNEL_MIGRATION,
    CONCENTRATION,
    EXPANSION,
    GROUP_BUY_SUMMARY,
    GROUP_BUYS,
    HEADLINE,
    INTEGRITY_FLAGS,
    KFACTOR,
    LAUNCH_PLAN,
    REPORT_CASCADES,
    REPORT_EXPANSION,
    REPORT_GLOSSARY,
    REPORT_INDEX,
    REPORT_INFLUENCE,
    REPORT_LAUNCH_PLAN,
    REPORT_LIFECYCLE,
    REPORT_TRENDS,
    SHARE_NODES,
    SPILLOVER,
    STAGING,
    TABLE_NOTES,
    UPLINE_QUALITY,
    WEAK,
)
from assets.resources import WarehouseResource
from sharegraph.reports import (
    generated_at,
    render_cascades,
    render_expansion,
    render_glossary,
    render_index,
    render_influence,
    render_launch_plan,
    render_lifecycle,
    render_trends,
)
from sharegraph.reports.page import PLOTLY_JS, ensure_plotlyjs
from sharegraph.reports.pseudonym import resolve_key

T = TypeVar("T")


def _render(warehouse: WarehouseResource, render: Callable[..., T]) -> T:
    """Run one ``sharegraph.reports.render_*`` into ``warehouse.reports`` on the working file
    (plotly.js copied there first); returns what it returns (the path(s) written)."""
    settings = warehouse.settings()
    key = resolve_key(settings.pseudonym_key, warehouse.paths.published.parent)
    settings = settings.with_values({"pseudonym_key": key})
    out = warehouse.reports
    ensure_plotlyjs(out)
    with warehouse.connect() as con:
        return render(con, settings, out, generated_at(settings))


def _written(paths: list[Path]) -> dict[str, object]:
    return {
        "files": len(paths),
        "bytes": sum(p.stat().st_size for p in paths),
        **({"path": dg.MetadataValue.path(str(paths[0]))} if paths else {}),
    }


@dg.asset(key=REPORT_INFLUENCE, kinds={"plotly", "html"}, group_name="reports",
          deps=[AGENT_INFLUENCE, CONCENTRATION, CASCADES, KFACTOR, CHANNEL_MIGRATION, GROUP_BUYS,
                ATTRIBUTED, AGENT_UPLINE, TABLE_NOTES])
def influence_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """influence.html: leaderboard, direct vs downstream, Lorenz/Gini, cascades, K, channels,
    group buys, downline treemap."""
    path = _render(warehouse, render_influence)
    return dg.MaterializeResult(metadata=_written([path]))


@dg.asset(key=REPORT_CASCADES, kinds={"plotly", "html"}, group_name="reports",
          deps=[CASCADES, SHARE_NODES, TABLE_NOTES])
def cascades_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """cascades.html: the largest cascades as trees, size vs structural virality, the list."""
    path = _render(warehouse, render_cascades)
    return dg.MaterializeResult(metadata=_written([path]))


@dg.asset(key=REPORT_EXPANSION, kinds={"plotly", "html"}, group_name="reports",
          deps=[CATEGORY_AFFINITY, SPILLOVER, EXPANSION, WEAK, ATTRIBUTED, TABLE_NOTES])
def expansion_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """expansion-<merchant>.html, one per merchant (largest GMV first, capped)."""
    paths = _render(warehouse, render_expansion)
    return dg.MaterializeResult(metadata={**_written(paths), "merchants": len(paths)})


@dg.asset(key=REPORT_LIFECYCLE, kinds={"plotly", "html"}, group_name="reports",
          deps=[AGENT_FUNNEL, AGENT_COHORTS, UPLINE_QUALITY, INTEGRITY_FLAGS, TABLE_NOTES])
def lifecycle_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """lifecycle.html: agent funnel, cohort retention, time to first sale, best and worst
    recruiters, the referral-integrity review queue by ¥ at risk."""
    path = _render(warehouse, render_lifecycle)
    return dg.MaterializeResult(metadata=_written([path]))


@dg.asset(key=REPORT_LAUNCH_PLAN, kinds={"plotly", "html"}, group_name="reports",
          deps=[LAUNCH_PLAN, TABLE_NOTES])
def launch_plan_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """launch-plan.html: the default plan's seeds with marginal expected buyers and ¥."""
    path = _render(warehouse, render_launch_plan)
    return dg.MaterializeResult(metadata=_written([path]))


@dg.asset(key=REPORT_TRENDS, kinds={"plotly", "html"}, group_name="reports",
          deps=[HEADLINE, ATTRIBUTED, GROUP_BUYS, GROUP_BUY_SUMMARY, CHANNEL_MIGRATION, AGENT_FUNNEL,
                TABLE_NOTES])
def trends_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """trends.html: monthly GMV by channel class, active agents, new customers via shares,
    group-buy success (rows of marts.headline_metrics)."""
    path = _render(warehouse, render_trends)
    return dg.MaterializeResult(metadata=_written([path]))


@dg.asset(key=REPORT_GLOSSARY, kinds={"html"}, group_name="reports", deps=[TABLE_NOTES])
def glossary_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """glossary.html: every metric defined in both languages (from the code's definitions)."""
    path = _render(warehouse, render_glossary)
    return dg.MaterializeResult(metadata=_written([path]))


@dg.asset(key=REPORT_INDEX, kinds={"plotly", "html"}, group_name="reports",
          deps=[HEADLINE, REPORT_TRENDS, REPORT_GLOSSARY, REPORT_LAUNCH_PLAN, REPORT_INFLUENCE, REPORT_CASCADES, REPORT_EXPANSION, REPORT_LIFECYCLE, CONCENTRATION, KFACTOR,
                ATTRIBUTED, TABLE_NOTES, *STAGING.values()],
          check_specs=[dg.AssetCheckSpec("reports_offline", asset=REPORT_INDEX, blocking=False,
                                         description="Every report is offline and every index link resolves.")])
def index_report(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """index.html: quarantine banner, headline figures, unavailable analyses and why, links to
    every report with file sizes, run facts."""
    path = _render(warehouse, render_index)
    out = warehouse.reports
    return dg.MaterializeResult(metadata={
        **_written([path]),
        "reports_dir": dg.MetadataValue.path(str(out)),
        "reports_bytes": sum(p.stat().st_size for p in out.glob("*.html")),
    }, check_results=[reports_offline(out)])


_EXTERNAL = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def reports_offline(out: Path) -> dg.AssetCheckResult:
    """Every report exists, references no external script/style/image, and every local
    link from the index points to a file that exists (run in the index step, the last report)."""
    pages = sorted(out.glob("*.html"))
    external = [p.name for p in pages if _EXTERNAL.search(p.read_text(encoding="utf-8"))]
    index = out / "index.html"
    links = re.findall(r'href="([^"#:]+)"', index.read_text(encoding="utf-8")) if index.is_file() else []
    dangling = sorted({h for h in links if not (out / h).is_file()})
    missing = [n for n in ("index.html", "influence.html", "cascades.html", "trends.html", "glossary.html",
                           PLOTLY_JS)
               if not (out / n).is_file()]
    passed = not (external or dangling or missing)
    return dg.AssetCheckResult(
        check_name="reports_offline",
        passed=passed,
        description=(f"{len(pages)} pages offline, {len(links)} index links resolve" if passed else
                     f"external resources in {external}; dangling links {dangling}; missing {missing}"),
        metadata={"pages": len(pages), "external": len(external), "dangling": len(dangling)},
    )
