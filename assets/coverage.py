"""Coverage stage: ``marts.table_notes``, why a graph or mart table is empty (thin wrapper
over ``sharegraph.metrics.coverage``).

It runs after every graph/* and marts/* asset, whatever the stage modules define: its deps
are found by scanning the other modules of this package (as the publish asset is built from
every loaded key), so a new mart is described without editing this file. The report assets
depend on it.
"""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg

from assets.keys import TABLE_NOTES
from assets.resources import WarehouseResource
from sharegraph.metrics import coverage

_NOT_SCANNED = {"coverage", "reports", "publish"}
"""Modules that define no table this asset describes (or depend on it)."""


def described_keys() -> list[dg.AssetKey]:
    """Every graph/* and marts/* asset key defined by the other modules of ``assets``."""
    import assets

    keys: set[dg.AssetKey] = set()
    for info in pkgutil.iter_modules(assets.__path__):
        if info.name in _NOT_SCANNED or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{assets.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, dg.AssetsDefinition):
                keys |= {k for k in value.keys if k.path[0] in coverage.SCHEMAS and k != TABLE_NOTES}
    return sorted(keys, key=lambda k: k.to_user_string())


@dg.asset(key=TABLE_NOTES, deps=described_keys(), kinds={"duckdb"}, group_name="marts")
def table_notes(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """One row per graph/marts table: rows and, when empty, why (bilingual)."""
    with warehouse.connect() as con:
        n = coverage.build_table_notes(con, warehouse.settings())
        notes = con.execute(
            f"SELECT table_name, rows, reason_code, caveat_code FROM {coverage.TABLE} ORDER BY 1").fetchall()
    empty = [f"{t}: {code}" for t, _, code, _ in notes if code]
    limited = [f"{t}: {code}" for t, _, _, code in notes if code]
    return dg.MaterializeResult(metadata={
        "rows": n,
        "empty_tables": len(empty),
        "empty": ", ".join(empty) or "none",
        "limited": ", ".join(limited) or "none",
        **{f"rows.{t}": int(rows) for t, rows, _, _ in notes},
    })
