"""Validate an input directory without touching any warehouse: what would be loaded,
quarantined or flagged, and which files cannot be read at all.

Runs the real ingest (sharegraph.ingest.load) into a throw-away in-memory DuckDB, so the report
uses exactly the rules of a load; unlike a load it goes on past a broken file and reports
every file error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.contract import ENUMERATED, TABLES
from sharegraph.core.vocabulary import Vocabulary
from sharegraph.core.warehouse import ensure_schema
from sharegraph.ingest.load import (
    LOAD_ORDER,
    BatchResult,
    _load_source,
    check_reject_rate,
    flag_references,
    require_rows,
    vocabulary_for,
)
from sharegraph.ingest.sources import IngestError, discover, load_mapping, require_tables

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

    ``ok`` is True when every file is readable, required tables have loadable rows and no row
    would be quarantined; reference flags and unmapped headers are warnings and do not make it
    False. ``errors`` are what would fail a run (unreadable file, reject rate over the limit).
    """

    input_dir: str
    vocabulary: Vocabulary | None = None
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
        notes = [f"  - {b.source_file}: {b.notes}" for b in self.batches if b.notes]
        if notes:
            lines += ["", "Headers (warnings):", *notes]
        if self.errors:
            lines += ["", "Errors (a run would fail):"]
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
                lines += self._allowed(r)
        return "\n".join(lines)


    def _allowed(self, r: RuleSummary) -> list[str]:
        """For unknown_value: the accepted values of each column involved and how to map more."""
        if r.rule != "unknown_value" or self.vocabulary is None:
            return []
        out = []
        for col in sorted({c for _, _, c, _ in r.examples if c}):
            allowed = ENUMERATED.get((r.table, col))
            if allowed:
                out.append(f"      allowed {r.table}.{col}: "
                           f"{self.vocabulary.describe(r.table, col, allowed)}")
                out.append(f"      map other values in mapping.toml: [{r.table}.values.{col}] "
                           f"\"<value>\" = \"{allowed[0]}\"")
        return out


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
        report.vocabulary = vocabulary_for(settings, mapping)
    except IngestError as exc:
        report.errors.append(str(exc))
        return report
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = ?", [settings.timezone])  # bound, as in core.warehouse.connect
        ensure_schema(con)
        for table in LOAD_ORDER:
            for src in found.get(table, []):
                con.execute("BEGIN TRANSACTION")
                try:
                    batch = _load_source(con, src, settings, mapping, report.vocabulary)
                    con.execute("COMMIT")
                except IngestError as exc:
                    con.execute("ROLLBACK")
                    report.errors.append(str(exc))
                    continue
                report.batches.append(batch)
                try:
                    check_reject_rate(batch, settings, src.path)
                except IngestError as exc:
                    report.errors.append(str(exc))
        # a required table whose files all failed is already explained by their errors
        read = {t: [s for s in srcs if any(b.source_file == s.path.name and b.table == t
                                           for b in report.batches)] for t, srcs in found.items()}
        if all(read[t.name] for t in TABLES.values() if t.required and found.get(t.name)):
            try:
                require_rows(con, read)
            except IngestError as exc:
                report.errors.append(str(exc))
        flag_references(con)
        report.rejected = _summaries(con, "quarantine.rejected_rows")
        report.flagged = _summaries(con, "quarantine.flagged_rows")
    finally:
        con.close()
    return report
