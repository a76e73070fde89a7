"""Ingest stage: export files -> staging.* + quarantine.* (thin wrapper over sharegraph.ingest.load)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from assets.keys import STAGING
from assets.resources import WarehouseResource
from sharegraph.core.contract import TABLES
from sharegraph.ingest import load as ingest
from sharegraph.ingest.sources import IngestError


def require_input_dir(inputs: Path) -> None:
    """Stop with one sentence when the input directory is missing: the demo world is made
    only by ``sharegraph demo`` / ``make demo``, never silently here."""
    if not inputs.is_dir():
        raise IngestError(
            f"input directory {inputs} does not exist: deliver the exports there (orders.<ext> "
            "at least, see docs/ingest.md), point the setting input (SHAREGRAPH_INPUT) at "
            "them, or make the demo world with `sharegraph demo`"
        )


CHECKS = {
    "reconciliation": "Every batch: rows_read = loaded + quarantined + already loaded, and "
                      "staging / quarantine.rejected_rows hold exactly the recorded rows of the batch.",
    "natural_key_unique": "The natural key identifies one row of staging (the merge is an anti-join).",
    "non_empty": "A required input table must have rows for any metric to mean something.",
}
"""The checks of every staging table (``non_empty`` only for required tables), all blocking;
they run inside the ingest step, on its connection, right after the load."""


def _check_names(name: str) -> list[str]:
    return [c for c in CHECKS if c != "non_empty" or TABLES[name].required]


@dg.multi_asset(
    specs=[dg.AssetSpec(key, kinds={"duckdb"}, group_name="ingest",
                        description=TABLES[name].description)
           for name, key in STAGING.items()],
    check_specs=[dg.AssetCheckSpec(check, asset=key, blocking=True, description=CHECKS[check])
                 for name, key in STAGING.items() for check in _check_names(name)],
    name="ingest_inputs",
)
def ingest_inputs(context, warehouse: WarehouseResource):
    """Validated, idempotent load of every input file into staging.* (docs/ingest.md)."""
    require_input_dir(warehouse.inputs)
    with warehouse.connect() as con:
        results = ingest.load_inputs(con, warehouse.inputs, warehouse.settings(),
                                     progress=context.log.info)
        totals = {name: dict(zip(
            ("rows", "rejected_rows_total", "flagged_rows_total"),
            con.execute(
                f"""SELECT (SELECT count(*) FROM staging.{name}),
                    (SELECT count(*) FROM quarantine.rejected_rows WHERE table_name = ?),
                    (SELECT count(*) FROM quarantine.flagged_rows WHERE table_name = ?)""",
                [name, name],
            ).fetchone(), strict=True)) for name in STAGING}
        checks = _staging_checks(con, totals, [r.batch_id for r in results if not r.skipped])
    for name, key in STAGING.items():
        mine = [r for r in results if r.table == name]
        yield dg.MaterializeResult(asset_key=key, metadata={
            **totals[name],
            "files": len(mine),
            "files_skipped_already_loaded": sum(r.skipped for r in mine),
            "rows_read": sum(r.rows_read for r in mine),
            "rows_loaded": sum(r.rows_loaded for r in mine),
            "rows_quarantined": sum(r.rows_quarantined for r in mine),
            "rows_already_loaded": sum(r.rows_already_loaded for r in mine),
        }, check_results=checks[name])


def _staging_checks(con: duckdb.DuckDBPyConnection, totals: dict[str, dict[str, int]],
                    batches: list[str]) -> dict[str, list[dg.AssetCheckResult]]:
    """Every staging table's check results (``CHECKS``), after the load of ``batches``
    (natural keys are checked for the keys those batches hold)."""
    failures = ingest.reconciliation_failures(con)
    batches = dict(con.execute(
        "SELECT table_name, count(*) FROM quarantine.batches GROUP BY 1").fetchall())
    out: dict[str, list[dg.AssetCheckResult]] = {}
    for name, key in STAGING.items():
        bad = [r for r in failures if r[1] == name]
        n = batches.get(name, 0)
        desc = f"{n} batches of {name} reconcile" if not bad else "; ".join(
            f"batch {b[0]} ({b[2]}): read {b[3]} vs loaded {b[4]} + quarantined {b[5]} + "
            f"already {b[6]}; staging holds {b[7]}, rejected_rows {b[8]}" for b in bad[:5])
        results = [dg.AssetCheckResult(asset_key=key, check_name="reconciliation", passed=not bad,
                                       description=desc, metadata={"batches": n, "failing": len(bad)})]
        dup = ingest.duplicate_keys(con, name, batches)
        results.append(dg.AssetCheckResult(
            asset_key=key, check_name="natural_key_unique", passed=dup == 0,
            description=f"{dup} duplicated ({', '.join(TABLES[name].key)}) values in staging.{name} "
                        "among the keys this load's batches hold"))
        if TABLES[name].required:
            rows = totals[name]["rows"]
            results.append(dg.AssetCheckResult(asset_key=key, check_name="non_empty", passed=rows > 0,
                                               description=f"staging.{name} has {rows} rows"))
        out[name] = results
    return out
