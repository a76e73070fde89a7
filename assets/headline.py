"""Headline stage: ``marts.headline_metrics``, one definition per headline number, read by
every report page (thin wrapper over ``sharegraph.metrics.headline``)."""

from __future__ import annotations

import dagster as dg

from assets._common import table_result
from assets.keys import (
    AGENT_INFLUENCE,
    ATTRIBUTED,
    CONCENTRATION,
    HEADLINE,
    KFACTOR,
    PEOPLE,
    STAGING,
)
from assets.resources import WarehouseResource
from sharegraph.metrics import headline


@dg.asset(key=HEADLINE, kinds={"duckdb"}, group_name="marts",
          deps=[ATTRIBUTED, AGENT_INFLUENCE, CONCENTRATION, KFACTOR, PEOPLE, STAGING["group_buys"]])
def headline_metrics(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per headline metric per scope: value, unit and its definition in zh and en."""
    return table_result(warehouse, headline.build_headline_metrics)
