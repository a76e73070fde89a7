"""Reports stage: offline Plotly HTML reports in ``warehouse.reports`` (docs/reports.md).

One asset per page, all computed by one step (a subsettable multi-asset): the step renders
the chosen pages with ``sharegraph.reports.site.render_pages``, which writes the index's
downloads in two other processes while this one renders the pages. As eight steps the
workbooks could not overlap anything (the in-process executor runs steps one at a time),
and each step cost Dagster's own overhead. Each page keeps its own key, dependencies and
metadata, and any subset can be materialized alone.
"""


import re
from collections.abc import Iterator
from pathlib import Path

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
from sharegraph.reports.page import PLOTLY_JS
from sharegraph.reports.pseudonym import resolve_key
from sharegraph.reports.site import render_pages

#: each page's asset: its key, the site's page name, description and upstream tables
PAGES: tuple[tuple[dg.AssetKey, str, str, list[dg.AssetKey]], ...] = (
    (REPORT_INFLUENCE, "influence",
     "influence.html: leaderboard, direct vs downstream, Lorenz/Gini, cascades, K, channels, "
     "group buys, downline treemap.",
     [AGENT_INFLUENCE, CONCENTRATION, CASCADES, KFACTOR, CHANNEL_MIGRATION, GROUP_BUYS, ATTRIBUTED,
      AGENT_UPLINE, TABLE_NOTES]),
    (REPORT_CASCADES, "cascades",
     "cascades.html: the largest cascades as trees, size vs structural virality, the list.",
     [CASCADES, SHARE_NODES, TABLE_NOTES]),
    (REPORT_EXPANSION, "expansion",
     "expansion-<merchant>.html, one per merchant (largest GMV first, capped).",
     [CATEGORY_AFFINITY, SPILLOVER, EXPANSION, WEAK, ATTRIBUTED, TABLE_NOTES]),
    (REPORT_LIFECYCLE, "lifecycle",
     "lifecycle.html: agent funnel, cohort retention, time to first sale, best and worst "
     "recruiters, the referral-integrity review queue by ¥ at risk.",
     [AGENT_FUNNEL, AGENT_COHORTS, UPLINE_QUALITY, INTEGRITY_FLAGS, TABLE_NOTES]),
    (REPORT_LAUNCH_PLAN, "launch_plan",
     "launch-plan.html: the default plan's seeds with marginal expected buyers and ¥.",
     [LAUNCH_PLAN, TABLE_NOTES]),
    (REPORT_TRENDS, "trends",
     "trends.html: monthly GMV by channel class, active agents, new customers via shares, "
     "group-buy success (rows of marts.headline_metrics).",
     [HEADLINE, ATTRIBUTED, GROUP_BUYS, GROUP_BUY_SUMMARY, CHANNEL_MIGRATION, AGENT_FUNNEL, TABLE_NOTES]),
    (REPORT_GLOSSARY, "glossary",
     "glossary.html: every metric defined in both languages (from the code's definitions).",
     [TABLE_NOTES]),
    (REPORT_INDEX, "index",
     "index.html: quarantine banner, headline figures, unavailable analyses and why, links to "
     "every report with file sizes, run facts; every page's tables as CSV and zh/en workbooks.",
     [HEADLINE, REPORT_TRENDS, REPORT_GLOSSARY, REPORT_LAUNCH_PLAN, REPORT_INFLUENCE, REPORT_CASCADES,
      REPORT_EXPANSION, REPORT_LIFECYCLE, CONCENTRATION, KFACTOR, ATTRIBUTED, TABLE_NOTES,
      *STAGING.values()]),
)
_PAGE_OF = {key: page for key, page, _, _ in PAGES}
_KEY_OF = {page: key for key, page, _, _ in PAGES}


@dg.multi_asset(
    name="reports",
    specs=[dg.AssetSpec(key, deps=deps, description=description, group_name="reports",
                        kinds={"html"} if page == "glossary" else {"plotly", "html"})
           for key, page, description, deps in PAGES],
    check_specs=[dg.AssetCheckSpec("reports_offline", asset=REPORT_INDEX, blocking=False,
                                   description="Every report is offline and every index link resolves.")],
    can_subset=True,
)
def reports(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """The chosen report pages, rendered on the working file (the index and its downloads
    last: it lists the other reports with their sizes)."""
    settings = warehouse.settings()
    key = resolve_key(settings.pseudonym_key, warehouse.paths.published.parent)
    settings = settings.with_values({"pseudonym_key": key})
    out = warehouse.reports
    pages = [_PAGE_OF[k] for k in context.selected_asset_keys]
    with warehouse.connect() as con:
        for page, paths in render_pages(con, settings, out, pages):
            yield _result(_KEY_OF[page], page, paths, out)


def _result(key: dg.AssetKey, page: str, paths: list[Path], out: Path) -> dg.MaterializeResult:
    html = [p for p in paths if p.suffix == ".html"]
    metadata: dict[str, object] = {
        "files": len(html),
        "bytes": sum(p.stat().st_size for p in html),
        **({"path": dg.MetadataValue.path(str(html[0]))} if html else {}),
    }
    if page == "expansion":
        metadata["merchants"] = len(html)
    if page != "index":
        return dg.MaterializeResult(asset_key=key, metadata=metadata)
    return dg.MaterializeResult(asset_key=key, metadata={
        **metadata,
        "downloads": len(paths) - len(html),
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
