"""Validate an input directory without touching any warehouse: what would be loaded,
quarantined or flagged, and which files cannot be read at all.

Runs the real ingest (sharegraph.ingest) into a throw-away in-memory DuckDB, so the report
uses exactly the rules of a load; unlike a load it goes on past a broken file and reports
every file error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import duckdb

from sharegraph.config import Settings
from sharegraph.ingest import LOAD_ORDER, BatchResult, _load_source, flag_references
from sharegraph.sources import IngestError, discover, load_mapping, require_tables
from sharegraph.warehouse import ensure_schema

EXAMPLES_PER_RULE = 3


@dataclass
class RuleSummary:
    """Rows broken (or flagged) under one rule, with the first examples in file order."""

    table: str
    rule: str
    count: int
    examples: list[tuple[str, int, str | None, str | None]]  # (file, row, column, raw value)


@dataclass
class ValidationReport:
    """Outcome of validating one input directory.

    ``ok`` is True when every file is readable, required tables are present and no row would
    be quarantined; reference flags are warnings and do not make it False.
    """

    input_dir: str
    batches: list[BatchResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rejected: list[RuleSummary] = field(default_factory=list)
    flagged: list[RuleSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not any(r.count for r in self.rejected)

    @property
    def rule_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rejected:
            out[r.rule] = out.get(r.rule, 0) + r.count
        return out

    def render(self) -> str:
        lines = [f"Validation of {self.input_dir}: {'OK' if self.ok else 'PROBLEMS FOUND'}"]
        if self.batches:
            lines.append("")
            lines.append(f"{'file':40} {'table':13} {'read':>10} {'loadable':>10} "
                         f"{'rejected':>10} {'re-sent':>10}")
            for b in self.batches:
                lines.append(f"{b.source_file:40} {b.table:13} {b.rows_read:>10} "
                             f"{b.rows_loaded:>10} {b.rows_quarantined:>10} "
                             f"{b.rows_already_loaded:>10}")
        if self.errors:
            lines += ["", "File errors (the file would fail its batch):"]
            lines += [f"  - {e}" for e in self.errors]
        for title, items in (("Rejected rows by rule", self.rejected),
                             ("Flagged rows (loaded, reference looks wrong)", self.flagged)):
            if not items:
                continue
            lines += ["", f"{title}:"]
            for r in items:
                lines.append(f"  {r.table}.{r.rule}: {r.count}")
                for f, row, col, val in r.examples:
                    lines.append(f"      {f} row {row} column {col}: {val!r}")
        return "\n".join(lines)


def _summaries(con: duckdb.DuckDBPyConnection, table: str) -> list[RuleSummary]:
    rows = con.execute(
        f"""SELECT table_name, rule, count(*) AS n,
               list((source_file, source_row, column_name, raw_value)
                    ORDER BY source_file, source_row)[1:{EXAMPLES_PER_RULE}]
            FROM {table} GROUP BY ALL ORDER BY table_name, n DESC, rule"""
    ).fetchall()
    return [RuleSummary(t, rule, n, [tuple(e.values()) if isinstance(e, dict) else tuple(e)
                                     for e in ex]) for t, rule, n, ex in rows]


def validate_inputs(input_dir: str | os.PathLike[str], settings: Settings) -> ValidationReport:
    """Check every discovered file against the data contract; load nothing anywhere."""
    report = ValidationReport(input_dir=str(input_dir))
    try:
        found = discover(input_dir)
    except IngestError as exc:
        report.errors.append(str(exc))
        return report
    try:
        require_tables(found, input_dir)
    except IngestError as exc:
        report.errors.append(str(exc))
    try:
        mapping = load_mapping(input_dir)
    except IngestError as exc:
        report.errors.append(str(exc))
        return report
    con = duckdb.connect()
    try:
        con.execute(f"SET TimeZone = '{settings.timezone}'")
        ensure_schema(con)
        for table in LOAD_ORDER:
            for src in found.get(table, []):
                con.execute("BEGIN TRANSACTION")
                try:
                    report.batches.append(_load_source(con, src, settings, mapping))
                    con.execute("COMMIT")
                except IngestError as exc:
                    con.execute("ROLLBACK")
                    report.errors.append(str(exc))
        flag_references(con)
        report.rejected = _summaries(con, "quarantine.rejected_rows")
        report.flagged = _summaries(con, "quarantine.flagged_rows")
    finally:
        con.close()
    return report
