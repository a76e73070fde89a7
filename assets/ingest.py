"""Ingest stage: export files -> staging.* + quarantine.* (thin wrapper over sharegraph.ingest.load)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

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


@dg.multi_asset(
    specs=[dg.AssetSpec(key, kinds={"duckdb"}, group_name="ingest",
                        description=TABLES[name].description)
           for name, key in STAGING.items()],
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
        })


def _reconciliation_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=STAGING[name], name="reconciliation", blocking=True)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """Every batch: rows_read = loaded + quarantined + already loaded, and staging /
        quarantine.rejected_rows hold exactly the recorded rows of the batch."""
        with warehouse.connect() as con:
            bad = [r for r in ingest.reconciliation_failures(con) if r[1] == name]
            n = con.execute("SELECT count(*) FROM quarantine.batches WHERE table_name = ?",
                            [name]).fetchone()[0]
        desc = f"{n} batches of {name} reconcile" if not bad else "; ".join(
            f"batch {b[0]} ({b[2]}): read {b[3]} vs loaded {b[4]} + quarantined {b[5]} + "
            f"already {b[6]}; staging holds {b[7]}, rejected_rows {b[8]}" for b in bad[:5])
        return dg.AssetCheckResult(passed=not bad, description=desc,
                                   metadata={"batches": n, "failing": len(bad)})
    return _check


def _key_check(name: str) -> dg.AssetChecksDefinition:
    key = ", ".join(TABLES[name].key)

    @dg.asset_check(asset=STAGING[name], name="natural_key_unique", blocking=True)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """The natural key identifies one row of staging (the merge is an anti-join)."""
        with warehouse.connect() as con:
            dup = ingest.duplicate_keys(con, name)
        return dg.AssetCheckResult(passed=dup == 0,
                                   description=f"{dup} duplicated ({key}) values in staging.{name}")
    return _check


def _non_empty_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=STAGING[name], name="non_empty", blocking=True)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        """A required input table must have rows for any metric to mean something."""
        with warehouse.connect() as con:
            n = con.execute(f"SELECT count(*) FROM staging.{name}").fetchone()[0]
        return dg.AssetCheckResult(passed=n > 0, description=f"staging.{name} has {n} rows")
    return _check


for _name in TABLES:
    globals()[f"{_name}_reconciliation"] = _reconciliation_check(_name)
    globals()[f"{_name}_natural_key_unique"] = _key_check(_name)
    if TABLES[_name].required:
        globals()[f"{_name}_non_empty"] = _non_empty_check(_name)
