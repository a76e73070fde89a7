"""Validated, idempotent, transactional load of export files into ``staging.*``.

Every data row of a file ends in exactly one place (docs/ingest.md):

* ``staging.<table>``: typed, one row per natural key, with lineage
  (source_file, source_row, batch_id, loaded_at);
* ``quarantine.rejected_rows``: one row per rejected data row with the first rule it broke
  (column order of the contract), its raw value and the raw record as JSON;
* or nowhere new, because it is an *exact re-send* of a row already loaded (same natural
  key and the same typed values, earlier in the file or in an earlier batch).

Per batch (one file) ``quarantine.batches`` records the reconciliation
``rows_read = rows_loaded + rows_quarantined + rows_already_loaded``.
A file whose content hash was already loaded for the same table is skipped.

The work is set-based and linear in the file: one scan of the file as text computes typed
values and the first failing rule of every row into a temp table (in file order, so the row
number is the row's position); a hash aggregate on the natural key finds the few duplicate
keys, whose rows alone are compared (plus a join to staging when it is not empty); two
filtered INSERTs then move rows to staging and quarantine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from sharegraph.core.config import Settings
from sharegraph.core.contract import ENUMERATED, TABLES, Column, Table
from sharegraph.core.sql import ident, in_list, literal
from sharegraph.core.vocabulary import Vocabulary, VocabularyError
from sharegraph.core.warehouse import (
    CHANNELS_COMMENTS,
    CHANNELS_TEXT,
    comment_table,
    ensure_schema,
    fault_point,
)
from sharegraph.ingest.flags import FLAG_RULES, flag_references
from sharegraph.ingest.sources import (
    LINE_REJECTS,
    HeaderMap,
    IngestError,
    InputMapping,
    SourceFile,
    classify,
    csv_line_rejects,
    detect_encoding,
    discover,
    drop_csv_rejects,
    file_sha256,
    load_mapping,
    open_text_relation,
    require_tables,
    utf8_path,
)

__all__ = [
    "BatchResult",
    "IngestError",
    "RejectRateError",
    "LOAD_ORDER",
    "ROW_RULES",
    "FLAG_RULES",
    "flag_references",
    "load_file",
    "load_inputs",
    "reconciliation_failures",
    "duplicate_keys",
]

log = logging.getLogger(__name__)

#: optional reference tables first: orders.category is derivable from staging.products
LOAD_ORDER = ("products", "agents", "group_buys", "share_events", "orders")

#: lower bounds of integer columns (quantity >= 1 etc.)
MINIMUMS: dict[tuple[str, str], int] = {
    ("orders", "quantity"): 1,
    ("orders", "line_no"): 1,
    ("group_buys", "target_size"): 1,
    ("agents", "level"): 1,
}

#: rule names a row can be quarantined under (quarantine.rejected_rows.rule)
ROW_RULES: dict[str, str] = {
    "required": "A required value is empty (empty string and whitespace count as NULL).",
    "not_integer": "An int column is not integral text (e.g. '2.5', 'abc', out of INTEGER range); '3' and '3.0' pass.",
    "below_minimum": "An int is below its minimum (orders.quantity, orders.line_no, group_buys.target_size, agents.level >= 1).",
    "not_money": "A money column is not a decimal number: '12.50', '¥12.50', '￥1,234.50' (a leading ¥/￥ and thousands separators in groups of three are accepted) pass; 'NaN', 'inf', '1e3', '1,23', '12元', more than 16 integer digits do not.",
    "money_precision": "A money value has more than 2 decimals (trailing zeros are fine: '1.500').",
    "negative_amount": "A money value is negative.",
    "not_number": "A number column is not a finite decimal number.",
    "bad_timestamp": "Not an ISO date/time (YYYY-MM-DD[ T]HH:MM[:SS[.f]] with optional Z/+08:00 offset; '/' allowed as date separator) or not a real date.",
    "future_timestamp": "The table's event time (ordered_at, occurred_at, joined_at, opened_at) is after the load time in Settings.timezone.",
    "unknown_value": "A closed enumerated column (orders.status, group_buys.status, share_events.event_type) holds a value that is neither canonical nor a known synonym (compared trimmed and lower-cased); an unknown status is never read as paid. Channels are open and never rejected.",
    "category_missing": "orders.category is empty and staging.products gives no category for the product.",
    "duplicate_key_conflict": "Several rows of one file share a natural key with different values: all of them are quarantined.",
    "conflicts_with_loaded": "The natural key is already in staging with a different immutable value (customer, amount, product, time, ...): staging keeps the first-loaded version; raw_record holds both.",
    "field_count": "A CSV line has more or fewer fields than the header (raw_value holds the line as read).",
    "malformed_quotes": "A CSV line has text after a closing quote, e.g. '\"fo\"od' (a quote that never closes fails the file instead).",
    "line_too_long": "A CSV line is longer than DuckDB's maximum line size.",
}

#: columns a later export may change (an update with history), per table; every other
#: column is immutable once loaded
MUTABLE: dict[str, tuple[str, ...]] = {"orders": ("status",), "group_buys": ("status", "closed_at")}
#: status values a row should not leave; a move out of them is flagged (status_reversal)
FINAL_STATUSES: dict[str, tuple[str, ...]] = {
    "orders": ("refunded", "cancelled"), "group_buys": ("filled", "failed")}

MONEY_RE = r"[+-]?(\d{1,16}(\.\d*)?|\.\d+)"
#: money text with a currency sign and/or thousands separators that is cleaned to MONEY_RE
MONEY_DECORATED_RE = r"[+-]?\s*[¥￥]?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d*)?|[+-]?\s*[¥￥]?\s*\.\d+"
INT_RE = r"[+-]?\d{1,10}(\.0*)?"
NUMBER_RE = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
TS_RE = r"\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
TS_OFFSET_RE = r":\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$"
#: above this many products with a category, orders.category_missing uses a hash join
LIST_LOOKUP_MAX = 4096
REJECT_OUTCOMES = ("rejected", "conflict_in_file", "conflict_loaded")
SEEN_OUTCOMES = ("already_loaded", "duplicate_in_file")


@dataclass
class BatchResult:
    """What one file's load did. ``rows_read = rows_loaded + rows_updated + rows_quarantined
    + rows_already_loaded``; ``skipped`` means the same content was loaded before (nothing
    read); ``notes`` names unmapped headers and look-alike headers."""

    batch_id: str
    table: str
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_already_loaded: int
    rows_updated: int = 0
    skipped: bool = False
    notes: str | None = None
    top_rules: list[tuple[str, int]] | None = None

    @property
    def reject_rate(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


class RejectRateError(IngestError):
    """A file's rejected rows exceed ``Settings.max_reject_rate``: the run stops, nothing lands."""


def check_reject_rate(result: BatchResult, settings: Settings, path: Path | str) -> None:
    """Raise RejectRateError when ``result`` rejected more than the allowed share of its rows."""
    if result.reject_rate <= settings.max_reject_rate:
        return
    rules = ", ".join(f"{rule} {n:,}" for rule, n in (result.top_rules or [])[:3])
    raise RejectRateError(
        f"{path}: {result.rows_quarantined:,} of {result.rows_read:,} rows rejected "
        f"({result.reject_rate:.1%}, more than max_reject_rate {settings.max_reject_rate:.1%}); "
        f"top rules: {rules}. Nothing was loaded; see `sharegraph validate` for examples, or "
        "raise --max-reject-rate to load the good rows and quarantine the rest")


def vocabulary_for(settings: Settings, mapping: InputMapping) -> Vocabulary:
    """The synonyms and channel classes of one load: built-ins, then sharegraph.toml, then the
    input's mapping file. Raises IngestError naming the file of a bad entry."""
    try:
        vocab = Vocabulary.build(ENUMERATED, settings.value_synonyms, settings.channel_classes,
                                 source="settings")
        return Vocabulary.build(ENUMERATED, _merge(vocab.synonyms, mapping.values),
                                {**vocab.channel_classes, **mapping.channel_classes},
                                source=mapping.source or "mapping file")
    except VocabularyError as exc:
        raise IngestError(str(exc)) from None


def _merge(base: dict[tuple[str, str], dict[str, str]],
           extra: dict[str, dict[str, dict[str, str]]]) -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (t, c), m in base.items():
        out.setdefault(t, {})[c] = dict(m)
    for t, cols in extra.items():
        for c, m in cols.items():
            out.setdefault(t, {}).setdefault(c, {}).update(m)
    return out


def _trimmed(v: str) -> str:
    """``NULLIF(trim(v), '')``, calling trim only where it can change ``v``: trim strips
    spaces and Unicode space characters, so an ASCII value (byte length = character length)
    without a leading/trailing space is already trimmed. About half the cost of trim on IDs."""
    return (f"CASE WHEN {v} LIKE ' %' OR {v} LIKE '% ' OR strlen({v}) <> length({v}) "
            f"THEN NULLIF(trim({v}), '') ELSE NULLIF({v}, '') END")


def _typed_expr(table: Table, c: Column, v: str, tz: str, vocab: Vocabulary) -> str:
    """Typed value of clean text ``v`` (NULL when it does not parse; the rule says why)."""
    if c.kind == "text":
        return vocab.canonical_sql(table.name, c.name, v) if c.enumerated else v
    if c.kind == "int":
        return f"TRY_CAST({v} AS INTEGER)"
    if c.kind == "money":
        return f"TRY_CAST({v} AS DECIMAL(18,2))"
    if c.kind == "number":
        return f"TRY_CAST({v} AS DOUBLE)"
    if c.kind == "timestamp":
        # zoned text is parsed as TIMESTAMPTZ and converted to local wall time; a plain
        # ::TIMESTAMP cast would silently drop the offset
        # the regex runs only where an offset is possible at all (a 'Z' at the end, or a
        # '+'/'-' past the shortest date 'YYYY-M-D')
        return (
            f"CASE WHEN NOT (suffix({v}, 'Z') OR contains(substr({v}, 9), '+') "
            f"OR contains(substr({v}, 9), '-')) THEN TRY_CAST({v} AS TIMESTAMP) "
            f"WHEN regexp_matches({v}, '{TS_OFFSET_RE}') "
            f"THEN timezone({literal(tz)}, TRY_CAST({v} AS TIMESTAMPTZ)) "
            f"ELSE TRY_CAST({v} AS TIMESTAMP) END"
        )
    raise ValueError(f"unknown column kind {c.kind!r}")


def _rule_expr(table: Table, c: Column, v: str, t: str, now_sql: str) -> str:
    """First rule column ``c`` breaks (text ``v``, typed ``t``), else NULL."""
    whens: list[str] = []
    if c.required:
        whens.append(f"WHEN {v} IS NULL THEN 'required'")
    else:
        whens.append(f"WHEN {v} IS NULL THEN NULL")
    if c.kind == "text" and c.allowed:
        whens.append(f"WHEN {t} NOT IN ({in_list(c.allowed)}) THEN 'unknown_value'")
    elif c.kind == "int":
        whens.append(f"WHEN NOT regexp_full_match({v}, '{INT_RE}') OR {t} IS NULL THEN 'not_integer'")
        low = MINIMUMS.get((table.name, c.name))
        if low is not None:
            whens.append(f"WHEN {t} < {low} THEN 'below_minimum'")
    elif c.kind == "money":
        whens.append(f"WHEN NOT regexp_full_match({v}, '{MONEY_RE}') OR {t} IS NULL THEN 'not_money'")
        # more than 2 decimals is possible only with over 2 characters after the '.'
        whens.append(
            f"WHEN CASE WHEN strpos({v}, '.') > 0 AND length({v}) - strpos({v}, '.') > 2 "
            f"THEN regexp_matches({v}, '\\.\\d{{2}}0*[1-9]') ELSE false END "
            "THEN 'money_precision'")
        whens.append(f"WHEN {t} < 0 THEN 'negative_amount'")
    elif c.kind == "number":
        whens.append(
            f"WHEN NOT regexp_full_match({v}, '{NUMBER_RE}') OR {t} IS NULL OR NOT isfinite({t}) "
            "THEN 'not_number'"
        )
    elif c.kind == "timestamp":
        whens.append(f"WHEN NOT regexp_full_match({v}, '{TS_RE}') OR {t} IS NULL THEN 'bad_timestamp'")
        if c.name == table.time_column:
            whens.append(f"WHEN {t} > {now_sql} THEN 'future_timestamp'")
    return "CASE " + " ".join(whens) + " END"


def _money_text(v: str) -> str:
    """Money text without a leading ¥/￥ and thousands separators, where it has them in a
    well-formed way (MONEY_DECORATED_RE); anything else is left for the not_money rule."""
    return (f"CASE WHEN contains({v}, ',') OR contains({v}, '¥') OR contains({v}, '￥') THEN "
            f"CASE WHEN regexp_full_match({v}, {literal(MONEY_DECORATED_RE)}) "
            f"THEN replace(regexp_replace({v}, '[¥￥\\s]', '', 'g'), ',', '') ELSE {v} END "
            f"ELSE {v} END")


def _validated_sql(table: Table, present: set[str], settings: Settings, now: datetime,
                   view: str, out: str, numbered: bool = False,
                   vocab: Vocabulary | None = None) -> str:
    """CREATE TEMP TABLE ``out``: one row per data row with typed values and the first rule it
    breaks (err_column, err_rule, err_value, raw_record; NULL for a valid row).

    ``numbered``: the view has ``source_row`` (kept as a column); else the statement only
    projects and filters, so the table is in file order and ``rowid`` numbers the rows.
    orders.category_missing looks products up in a one-row list (list_contains), which keeps
    file order, unless ``numbered`` (then a hash join, for large catalogues).
    """
    now_sql = f"TIMESTAMP '{now:%Y-%m-%d %H:%M:%S.%f}'"
    vocab = vocab or Vocabulary.build(ENUMERATED)
    cols = table.columns
    # L1: clean text (trimmed, '' -> NULL, default applied) and the raw text
    l1 = ["s.source_row"] if numbered else []
    for c in cols:
        raw = f"s.{ident(c.name)}" if c.name in present else "NULL::VARCHAR"
        clean = _trimmed(raw)
        if c.kind == "timestamp":
            clean = f"replace({clean}, '/', '-')"
        elif c.kind == "money":
            clean = _money_text(clean)
        elif c.enumerated:
            clean = f"lower({clean})"
        if c.default is not None:
            clean = f"COALESCE({clean}, {literal(c.default)})"
        l1.append(f"{raw} AS {ident('r_' + c.name)}")
        l1.append(f"{clean} AS {ident('v_' + c.name)}")
    join = ""
    if table.name == "orders":
        pid = "NULLIF(trim(" + (
            f"s.{ident('product_id')}" if "product_id" in present else "NULL::VARCHAR") + "), '')"
        if numbered:
            join = (
                " LEFT JOIN (SELECT DISTINCT product_id AS pc_product_id FROM staging.products "
                f"WHERE category IS NOT NULL) pc ON pc.pc_product_id = {pid}"
            )
            l1.append("pc.pc_product_id IS NOT NULL AS has_product_category")
    # L2: typed values
    l2 = ["*"]
    for c in cols:
        l2.append(f"CAST({_typed_expr(table, c, ident('v_' + c.name), settings.timezone, vocab)} "
                  f"AS {c.sql_type}) "
                  f"AS {ident('t_' + c.name)}")
    # L3: per-column rules
    l3 = ["*"]
    for c in cols:
        e = _rule_expr(table, c, ident("v_" + c.name), ident("t_" + c.name), now_sql)
        if table.name == "orders" and c.name == "category":
            if numbered:
                known = "has_product_category"
            else:  # evaluated only where the category is empty (CASE short-circuits)
                known = ("COALESCE(list_contains((SELECT list(DISTINCT product_id) FROM "
                         "staging.products WHERE category IS NOT NULL), v_product_id), false)")
            e = (f"COALESCE({e}, CASE WHEN v_category IS NOT NULL THEN NULL "
                 f"WHEN NOT {known} THEN 'category_missing' END)")
        l3.append(f"{e} AS {ident('e_' + c.name)}")
    # L4: first failing rule in contract column order (raw text only for rejected rows)
    err_col = "CASE " + " ".join(
        f"WHEN {ident('e_' + c.name)} IS NOT NULL THEN {literal(c.name)}" for c in cols) + " END"
    err_rule = "COALESCE(" + ", ".join(ident("e_" + c.name) for c in cols) + ")"
    err_val = "CASE " + " ".join(
        f"WHEN {ident('e_' + c.name)} IS NOT NULL THEN {ident('r_' + c.name)}" for c in cols) + " END"
    raw_record = "to_json(struct_pack(" + ", ".join(
        f"{ident(c.name)} := {ident('r_' + c.name)}" for c in cols if c.name in present) + "))::VARCHAR"
    l4 = (
        [*(["source_row"] if numbered else []), *[f"{ident('t_' + c.name)}" for c in cols],
         f"{err_col} AS err_column", f"{err_rule} AS err_rule", f"{err_val} AS err_value",
         f"CASE WHEN {err_rule} IS NOT NULL THEN {raw_record} END AS raw_record"]
    )
    # no window, sort or join over the whole file here: the scan streams in file order and
    # duplicates are found afterwards on the key alone (_outcome_sql)
    return f"""
CREATE OR REPLACE TEMP TABLE {out} AS
WITH l1 AS (SELECT {', '.join(l1)} FROM {view} s{join}),
l2 AS (SELECT {', '.join(l2)} FROM l1),
l3 AS (SELECT {', '.join(l3)} FROM l2)
SELECT {', '.join(l4)} FROM l3
"""


def _keys_ascending(con: duckdb.DuckDBPyConnection, table: Table, validated: str) -> bool:
    """True when the valid rows' natural keys strictly increase from row to row (compared
    lexicographically over the key columns, in the scan's order): then no key occurs twice.

    Exports are usually sorted by their id, and one streaming ``lag`` over the key costs a
    fraction of the hash aggregate over tens of millions of distinct keys (0.6 s vs 3 s at
    24M keys). Sound in any row order: a strictly increasing chain through all rows has no
    repeated value. False (then the aggregate runs) on any NULL key or any step down/equal.
    """
    ks = [ident("t_" + k) for k in table.key]
    lags = ", ".join(f"lag({k}) OVER () AS {ident('p_' + str(i))}" for i, k in enumerate(ks))

    def greater(i: int) -> str:
        k, p = ks[i], ident("p_" + str(i))
        if i == len(ks) - 1:
            return f"{k} > {p}"
        return f"({k} > {p} OR ({k} = {p} AND {greater(i + 1)}))"

    null_key = " OR ".join(f"{k} IS NULL" for k in ks)
    bad = con.execute(
        f"""SELECT count(*) FILTER (WHERE {null_key}
                OR ({ident('p_0')} IS NOT NULL AND NOT COALESCE({greater(0)}, false)))
        FROM (SELECT {', '.join(ks)}, {lags} FROM {validated} WHERE err_rule IS NULL)"""
    ).fetchone()[0]
    return bad == 0


def _repeated_hashes_sql(keys: str, rows: str) -> str:
    """SQL of the hashes ``kh`` of ``keys`` over the relation ``rows`` that equal the one
    before them in hash order: the hash of every key that occurs more than once, plus any
    collision (a candidate to check on the real key), with repeats. A sort and a ``lag``:
    2–2.4x faster than grouping tens of millions of mostly distinct keys."""
    return (f"SELECT kh FROM (SELECT kh, lag(kh) OVER (ORDER BY kh) AS prev FROM "
            f"(SELECT hash({keys}) AS kh FROM {rows})) WHERE kh = prev")


def _outcome_sql(table: Table, validated: str, out: str, staging_empty: bool,
                 unique_keys: bool = False) -> str:
    """CREATE TEMP TABLE ``out``: ``(source_row, outcome, diff_column, loaded_json)`` for the
    few valid rows that are not plainly loaded (outcome conflict_in_file | conflict_loaded |
    status_update | already_loaded | duplicate_in_file; for conflict_loaded the first
    differing column and the staged row as JSON). Every other valid row is loaded; rows with an err_rule are rejected.

    Precedence (as documented): conflict_in_file > conflict_loaded > status_update >
    already_loaded > duplicate_in_file. A row whose key is loaded and whose immutable columns
    equal the staged row but whose MUTABLE columns differ is a ``status_update`` (the first
    copy in the file; later identical copies are duplicates). Only keys that occur twice in the file (the key's
    64-bit hash equals the one before it in hash order: a collision only adds candidates,
    which the window over the candidates partitions by the real key) and keys already in
    staging are compared on whole typed rows, so the cost is one sort of the hashes plus work
    proportional to the duplicates. ``unique_keys`` (_keys_ascending proved no key repeats in the file) skips
    the sort.
    """
    empty = "NULL::VARCHAR AS diff_column, NULL::VARCHAR AS loaded_json"
    if unique_keys and staging_empty:
        return (f"CREATE OR REPLACE TEMP TABLE {out} (source_row BIGINT, outcome VARCHAR, "
                "diff_column VARCHAR, loaded_json VARCHAR)")
    cols = table.columns
    keys = ", ".join(ident("t_" + k) for k in table.key)
    typed_hash = "hash(" + ", ".join(ident("t_" + c.name) for c in cols) + ")"
    keys_v = ", ".join("v." + ident("t_" + k) for k in table.key)
    part = f"PARTITION BY {', '.join('v.' + ident('t_' + k) for k in table.key)}"
    dk_sql = ("SELECT NULL::UBIGINT AS kh WHERE false" if unique_keys else
              _repeated_hashes_sql(keys, f"(SELECT * FROM {validated} WHERE err_rule IS NULL)"))
    dup = f"""
    dk AS ({dk_sql}),
    dr AS (SELECT v.source_row,
                  min({typed_hash}) OVER ({part}) <> max({typed_hash}) OVER ({part}) AS conflict,
                  row_number() OVER ({part} ORDER BY v.source_row) AS copy
           FROM {validated} v SEMI JOIN dk d ON d.kh = hash({keys_v}) WHERE v.err_rule IS NULL)"""
    if staging_empty:
        return f"""
CREATE OR REPLACE TEMP TABLE {out} AS
WITH {dup}
SELECT source_row,
       CASE WHEN conflict THEN 'conflict_in_file' ELSE 'duplicate_in_file' END AS outcome,
       {empty}
FROM dr WHERE conflict OR copy > 1"""
    fixed = [c.name for c in cols if c.name not in MUTABLE.get(table.name, ())]
    stg_on = " AND ".join(f"s.{ident(k)} = v.{ident('t_' + k)}" for k in table.key)
    stg_hash = "hash(" + ", ".join(f"s.{ident(c.name)}" for c in cols) + ")"
    v_hash = "hash(" + ", ".join(f"v.{ident('t_' + c.name)}" for c in cols) + ")"
    same_fixed = " AND ".join(f"s.{ident(c)} IS NOT DISTINCT FROM v.{ident('t_' + c)}" for c in fixed)
    diff = "CASE " + " ".join(f"WHEN s.{ident(c)} IS DISTINCT FROM v.{ident('t_' + c)} THEN {literal(c)}"
                              for c in fixed) + " END"
    loaded = "to_json(struct_pack(" + ", ".join(
        f"{ident(c.name)} := s.{ident(c.name)}" for c in cols) + "))::VARCHAR"
    return f"""
CREATE OR REPLACE TEMP TABLE {out} AS
WITH {dup},
    lk AS (SELECT v.source_row, {stg_hash} = {v_hash} AS same, {same_fixed} AS same_fixed,
                  CASE WHEN NOT ({same_fixed}) THEN {diff} END AS diff_column,
                  CASE WHEN NOT ({same_fixed}) THEN {loaded} END AS loaded_json
           FROM {validated} v JOIN staging.{table.name} s ON {stg_on}
           WHERE v.err_rule IS NULL)
SELECT source_row,
       CASE WHEN dr.conflict THEN 'conflict_in_file'
            WHEN NOT lk.same_fixed THEN 'conflict_loaded'
            WHEN NOT lk.same AND COALESCE(dr.copy, 1) = 1 THEN 'status_update'
            WHEN lk.same AND COALESCE(dr.copy, 1) = 1 THEN 'already_loaded'
            ELSE 'duplicate_in_file' END AS outcome,
       lk.diff_column, lk.loaded_json
FROM dr FULL OUTER JOIN lk USING (source_row)
WHERE dr.conflict OR lk.source_row IS NOT NULL OR dr.copy > 1"""


def _now_local(settings: Settings) -> datetime:
    return datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)


@contextlib.contextmanager
def _insertion_order(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep file order through the scan (source_row is the materialised row position)."""
    before = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    if before:
        yield
        return
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute("SET preserve_insertion_order = false")


def _load_source(con: duckdb.DuckDBPyConnection, src: SourceFile, settings: Settings,
                 mapping: InputMapping, vocab: Vocabulary) -> BatchResult:
    """Load one file inside the caller's transaction (no BEGIN/COMMIT here)."""
    table = TABLES[src.table]
    if not src.path.is_file():
        raise IngestError(f"{src.path}: file does not exist")
    if src.path.stat().st_size == 0:
        raise IngestError(f"{src.path}: file is empty")
    name = src.path.name
    first_batch = con.execute(
        "SELECT count(*) = 0 FROM quarantine.batches WHERE table_name = ?", [table.name]
    ).fetchone()[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        # no earlier batch of the table: the file cannot be a re-send, so its content hash
        # (seconds for GiBs) is computed while DuckDB reads it
        sha_job = pool.submit(file_sha256, src.path)
        if not first_batch:
            prev = con.execute(
                "SELECT batch_id FROM quarantine.batches WHERE table_name = ? AND file_sha256 = ? "
                "ORDER BY started_at LIMIT 1", [table.name, sha_job.result()]).fetchone()
            if prev is not None:
                log.info("%s: same content already loaded in batch %s, skipped", src.path, prev[0])
                return BatchResult(prev[0], table.name, name, 0, 0, 0, 0, skipped=True)
        return _load_new(con, src, settings, mapping, vocab, sha_job)


def _scan(con: duckdb.DuckDBPyConnection, src: SourceFile, settings: Settings,
          mapping: InputMapping, vocab: Vocabulary, started: datetime, numbered: bool,
          tmp: str) -> tuple[HeaderMap, int]:
    """Read and validate the file into temp table ``tmp`` (see _validated_sql); returns the
    header mapping and the number of malformed CSV lines (temp table LINE_REJECTS)."""
    table = TABLES[src.table]
    encoding = "utf-8" if src.fmt == "parquet" else detect_encoding(src, settings.encoding)
    with utf8_path(src, encoding) as path, _insertion_order(con):
        headers = open_text_relation(con, src, table, mapping.headers.get(table.name), path,
                                     "_sg_src", row_numbers=numbered)
        try:
            con.execute(_validated_sql(table, set(headers.columns), settings, started, "_sg_src",
                                       tmp, numbered, vocab))
        except duckdb.Error as exc:
            detail = " ".join(str(exc).split())[:600]
            raise IngestError(f"{src.path}: cannot read as {src.fmt} ({encoding}): {detail}") from exc
        lines = csv_line_rejects(con, src) if src.fmt == "csv" else None
    con.execute("DROP VIEW IF EXISTS _sg_src")
    n_lines = con.execute(f"SELECT count(*) FROM {lines}").fetchone()[0] if lines else 0
    if n_lines:
        # rows are numbered by their position among the lines read; a malformed line before
        # a row shifts its data row number: shift = malformed lines before it (ASOF on position)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _sg_shift AS
            SELECT source_row - i + 1 AS pos_from, max(i) AS shift FROM (
                SELECT source_row, row_number() OVER (ORDER BY source_row) AS i
                FROM {LINE_REJECTS}) GROUP BY ALL""")
    if headers.notes():
        log.warning("%s: %s", src.path, headers.notes())
    return headers, n_lines


SHIFT_INLINE = 256
"""Up to this many malformed-line positions, row numbers are mapped by an inline CASE; past
it by an ASOF join (which sorts the whole file's rows: 9 s of 11M lines)."""


def _mapped_rows(con: duckdb.DuckDBPyConnection, query: str, n_lines: int) -> str:
    """``query`` (with a positional ``source_row``) with source_row as the data row number."""
    if not n_lines:
        return query
    shifts = con.execute(f"SELECT pos_from, shift FROM _sg_shift ORDER BY pos_from DESC "
                         f"LIMIT {SHIFT_INLINE + 1}").fetchall()
    if len(shifts) <= SHIFT_INLINE:  # integers from _sg_shift, safe to inline
        case = " ".join(f"WHEN q.source_row >= {int(p)} THEN {int(k)}" for p, k in shifts)
        return f"SELECT q.* REPLACE (q.source_row + CASE {case} ELSE 0 END AS source_row) FROM ({query}) q"
    return (f"SELECT q.* REPLACE (q.source_row + COALESCE(sh.shift, 0) AS source_row) "
            f"FROM ({query}) q ASOF LEFT JOIN _sg_shift sh ON q.source_row >= sh.pos_from")


def _load_new(con: duckdb.DuckDBPyConnection, src: SourceFile, settings: Settings,
              mapping: InputMapping, vocab: Vocabulary, sha_job: Future[str]) -> BatchResult:
    """Validate and load a file that was not loaded before (see _load_source)."""
    table = TABLES[src.table]
    name = src.path.name
    started = _now_local(settings)
    tmp, out, oc = "_sg_validated", "_sg_v", "_sg_outcome"
    # a large product catalogue is looked up by hash join, which does not keep file order:
    # then rows are numbered in the view instead of by position
    numbered = table.name == "orders" and con.execute(
        "SELECT count(DISTINCT product_id) FROM staging.products WHERE category IS NOT NULL"
    ).fetchone()[0] > LIST_LOOKUP_MAX
    headers, n_lines = _scan(con, src, settings, mapping, vocab, started, numbered, tmp)
    positional, lo = False, 0
    if not numbered:
        # the scan was materialised in file order (preserve_insertion_order), so the temp
        # table's rowids are consecutive in file order (they start at an offset while the
        # transaction is open): the row number is the distance from the first rowid
        lo, hi, n = con.execute(f"SELECT min(rowid), max(rowid), count(*) FROM {tmp}").fetchone()
        positional = bool(n) and hi - lo + 1 == n
        number = (f"rowid - {lo} + 1" if positional
                  else "row_number() OVER (ORDER BY rowid)")  # not expected; same order
    con.execute(f"CREATE OR REPLACE TEMP VIEW {out} AS SELECT * FROM {tmp}" if numbered else
                f"CREATE OR REPLACE TEMP VIEW {out} AS SELECT {number} AS source_row, * FROM {tmp}")
    sha = sha_job.result()
    batch_id = f"{started:%Y%m%dT%H%M%S%f}-{table.name}-{sha[:10]}"
    staging_empty = con.execute(f"SELECT 1 FROM staging.{table.name} LIMIT 1").fetchone() is None
    con.execute(_outcome_sql(table, out, oc, staging_empty, _keys_ascending(con, table, tmp)))
    n_rows, n_rejected = con.execute(
        f"SELECT count(*), count(err_rule) FROM {tmp}").fetchone()
    counts: dict[str, int] = dict(
        con.execute(f"SELECT outcome, count(*) FROM {oc} GROUP BY outcome").fetchall())
    counts["rejected"] = n_rejected
    counts["load"] = n_rows - sum(counts.values())
    special = n_rows != n_rejected + counts["load"]
    stamp = f"{literal(f'{started:%Y-%m-%d %H:%M:%S.%f}')}::TIMESTAMP"
    _quarantine(con, table, name, batch_id, stamp, out, oc, n_lines)
    if counts.get("status_update"):
        _apply_updates(con, table, name, batch_id, stamp, out, oc, n_lines)
    # a filter keeps the temp table's file order, so staging gets rows in source_row order
    # without sorting the file. Rows left out (duplicates, re-sends, conflicts: few) are
    # deleted from the temp table first, which keeps the other rows' positions; only a
    # numbered (joined) scan needs an anti-join and a sort.
    if special and positional:
        con.execute(f"DELETE FROM {tmp} WHERE rowid IN (SELECT source_row + {lo} - 1 FROM {oc})")
    where = "err_rule IS NULL" + (f" AND source_row NOT IN (SELECT source_row FROM {oc})"
                                  if special and not positional else "")
    order = " ORDER BY source_row" if numbered or (special and not positional) else ""
    cols = table.column_names
    rows = _mapped_rows(con, f"SELECT * FROM {out} WHERE {where}", n_lines)
    con.execute(
        f"INSERT INTO staging.{table.name} ({', '.join(ident(c) for c in cols)}, source_file, "
        f"source_row, batch_id, loaded_at) SELECT {', '.join(ident('t_' + c) for c in cols)}, "
        f"{literal(name)}, source_row, {literal(batch_id)}, {stamp} FROM ({rows}){order}"
    )
    for t in (oc, tmp, "_sg_shift"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    drop_csv_rejects(con)
    con.execute(f"DROP VIEW IF EXISTS {out}")
    loaded = counts.get("load", 0)
    updated = counts.get("status_update", 0)
    quarantined = sum(counts.get(o, 0) for o in REJECT_OUTCOMES) + n_lines
    seen = sum(counts.get(o, 0) for o in SEEN_OUTCOMES)
    read = loaded + updated + quarantined + seen
    finished = _now_local(settings)
    con.execute(
        "INSERT INTO quarantine.batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [batch_id, table.name, name, sha, read, loaded, quarantined, seen, started, finished,
         updated, headers.notes()],
    )
    top = con.execute("SELECT rule, count(*) FROM quarantine.rejected_rows WHERE batch_id = ? "
                      "GROUP BY rule ORDER BY 2 DESC, 1", [batch_id]).fetchall()
    log.info("%s -> staging.%s: read %d, loaded %d, updated %d, quarantined %d, already loaded %d",
             name, table.name, read, loaded, updated, quarantined, seen)
    return BatchResult(batch_id, table.name, name, read, loaded, quarantined, seen, updated,
                       notes=headers.notes(), top_rules=top)


def _quarantine(con: duckdb.DuckDBPyConnection, table: Table, name: str, batch_id: str,
                stamp: str, out: str, oc: str, n_lines: int) -> None:
    """Insert the file's rejected rows, conflicts and malformed lines into rejected_rows."""
    cols = table.column_names
    key_cols = ",".join(table.key)
    key_val = " || ',' || ".join(f"COALESCE(CAST({ident('t_' + k)} AS VARCHAR), '')" for k in table.key)
    typed_json = "to_json(struct_pack(" + ", ".join(
        f"{ident(c)} := {ident('t_' + c)}" for c in cols) + "))"
    new_value = "CASE diff_column " + " ".join(
        f"WHEN {literal(c)} THEN CAST({ident('t_' + c)} AS VARCHAR)" for c in cols) + " END"
    rows = f"""SELECT source_row,
            CASE outcome WHEN 'rejected' THEN err_column WHEN 'conflict_loaded' THEN diff_column
                 ELSE {literal(key_cols)} END AS column_name,
            CASE outcome WHEN 'rejected' THEN err_rule
                 WHEN 'conflict_in_file' THEN 'duplicate_key_conflict'
                 ELSE 'conflicts_with_loaded' END AS rule,
            CASE outcome WHEN 'rejected' THEN err_value WHEN 'conflict_loaded' THEN {new_value}
                 ELSE {key_val} END AS raw_value,
            CASE outcome WHEN 'rejected' THEN raw_record
                 WHEN 'conflict_loaded' THEN json_object('key', {key_val},
                     'loaded', loaded_json::JSON, 'new', {typed_json})::VARCHAR
                 ELSE {typed_json}::VARCHAR END AS raw_record
        FROM (SELECT *, 'rejected' AS outcome, NULL::VARCHAR AS diff_column,
                     NULL::VARCHAR AS loaded_json FROM {out} WHERE err_rule IS NOT NULL
              UNION ALL
              SELECT v.*, o.outcome, o.diff_column, o.loaded_json
              FROM {out} v JOIN {oc} o USING (source_row)
              WHERE o.outcome IN ('conflict_in_file', 'conflict_loaded'))"""
    con.execute(
        f"""INSERT INTO quarantine.rejected_rows
        SELECT {literal(batch_id)}, {literal(table.name)}, {literal(name)}, source_row, column_name,
               rule, raw_value, raw_record, {stamp}
        FROM ({_mapped_rows(con, rows, n_lines)}) ORDER BY source_row""")
    if n_lines:
        quarantine_lines(con, table, name, batch_id, stamp, LINE_REJECTS)


def quarantine_lines(con: duckdb.DuckDBPyConnection, table: Table, name: str, batch_id: str,
                     stamp: str, lines: str) -> None:
    """Insert a file's malformed CSV lines (``lines``: line, source_row, rule, csv_line,
    error) into rejected_rows: the raw line, and its line number and parser error."""
    con.execute(
        f"""INSERT INTO quarantine.rejected_rows
        SELECT {literal(batch_id)}, {literal(table.name)}, {literal(name)}, source_row, NULL, rule,
               csv_line, json_object('line', line, 'error', error)::VARCHAR, {stamp}
        FROM {lines} ORDER BY line""")


def _apply_updates(con: duckdb.DuckDBPyConnection, table: Table, name: str, batch_id: str,
                   stamp: str, out: str, oc: str, n_lines: int) -> None:
    """Apply ``status_update`` rows to staging, keeping each changed value in status_history."""
    mutable = MUTABLE[table.name]
    on = " AND ".join(f"s.{ident(k)} = u.{ident('t_' + k)}" for k in table.key)
    key_val = " || ',' || ".join(f"CAST(u.{ident('t_' + k)} AS VARCHAR)" for k in table.key)
    updates = _mapped_rows(con, f"SELECT v.* FROM {out} v JOIN {oc} o USING (source_row) "
                           "WHERE o.outcome = 'status_update'", n_lines)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _sg_updates AS {updates}")
    changes = " UNION ALL ".join(
        f"""SELECT {key_val} AS natural_key, {literal(c)} AS column_name,
                   CAST(s.{ident(c)} AS VARCHAR) AS old_value, CAST(u.{ident('t_' + c)} AS VARCHAR)
                   AS new_value, u.source_row
            FROM _sg_updates u JOIN staging.{table.name} s ON {on}
            WHERE s.{ident(c)} IS DISTINCT FROM u.{ident('t_' + c)}""" for c in mutable)
    con.execute(
        f"""INSERT INTO staging.status_history
        SELECT {literal(table.name)}, natural_key, column_name, old_value, new_value,
               {literal(batch_id)}, {literal(name)}, source_row, {stamp}
        FROM ({changes}) ORDER BY source_row, column_name""")
    sets = ", ".join(f"{ident(c)} = u.{ident('t_' + c)}" for c in mutable)
    con.execute(f"UPDATE staging.{table.name} AS s SET {sets} FROM _sg_updates u WHERE {on}")
    con.execute("DROP TABLE _sg_updates")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # no transaction left to roll back
        con.execute("ROLLBACK")


def load_file(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str], table: str,
              settings: Settings) -> BatchResult:
    """Load one file into ``staging.<table>`` in one transaction (all or nothing).

    The mapping file (mapping.toml / mapping.json) next to ``path`` is honoured. Raises
    IngestError naming the file (and column) when the file cannot be read as a whole.
    """
    if table not in TABLES:
        raise IngestError(f"{path}: unknown table {table!r}; known: {', '.join(TABLES)}")
    path = Path(path)
    detected = classify(path)
    fmt = detected.fmt if detected else _fmt_of(path)
    src = SourceFile(path=path, table=table, fmt=fmt)
    ensure_schema(con)
    mapping = load_mapping(path.parent)
    vocab = vocabulary_for(settings, mapping)
    con.execute("BEGIN TRANSACTION")
    try:
        result = _load_source(con, src, settings, mapping, vocab)
        check_reject_rate(result, settings, path)
        if table == "orders":
            build_channels(con, vocab)
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    return result


def require_rows(con: duckdb.DuckDBPyConnection, found: dict[str, list[SourceFile]]) -> None:
    """Raise IngestError when a required table has no row in staging after the load: one
    sentence naming its files and why (header only, or every row rejected and by which rules)."""
    for table in (t for t in TABLES.values() if t.required):
        if con.execute(f"SELECT count(*) FROM staging.{table.name}").fetchone()[0]:
            continue
        files = ", ".join(str(s.path) for s in found.get(table.name, [])) or "no file"
        rules = con.execute(
            "SELECT rule, count(*) FROM quarantine.rejected_rows WHERE table_name = ? "
            "GROUP BY rule ORDER BY 2 DESC, 1 LIMIT 3", [table.name]).fetchall()
        why = ("every row was rejected (top rules: " + ", ".join(f"{r} {n:,}" for r, n in rules)
               + ")") if rules else "it has no data rows (header only)"
        raise IngestError(f"{files}: {table.name} is required but has no loadable row: {why}")


def build_channels(con: duckdb.DuckDBPyConnection, vocab: Vocabulary) -> int:
    """Rebuild ``staging.channels``: one row per channel value in staging.orders, with its
    class. Classes are applied here, not stored on each line, so a class added to the config
    reclassifies every loaded order at the next load."""
    con.execute(f"""CREATE OR REPLACE TABLE staging.channels AS
        SELECT channel, {vocab.channel_class_sql('channel')} AS channel_class,
               count(*)::BIGINT AS order_lines
        FROM staging.orders GROUP BY channel ORDER BY order_lines DESC, channel""")
    comment_table(con, "staging.channels", CHANNELS_TEXT, CHANNELS_COMMENTS)
    return con.execute("SELECT count(*) FROM staging.channels").fetchone()[0]


def _fmt_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise IngestError(f"{path}: unknown file format (csv, csv.gz, parquet, jsonl, ndjson)")


def load_inputs(con: duckdb.DuckDBPyConnection, input_dir: str | os.PathLike[str],
                settings: Settings, progress: Callable[[str], None] | None = None
                ) -> list[BatchResult]:
    """Load every discovered file of ``input_dir``, then recompute reference flags.

    One transaction for the whole directory: if any file fails (IngestError), the warehouse
    is left exactly as it was. Files load in LOAD_ORDER by table (products before orders, so
    orders.category can come from products), and by file name within a table.
    """
    found = discover(input_dir)
    require_tables(found, input_dir)
    mapping = load_mapping(input_dir)
    vocab = vocabulary_for(settings, mapping)
    ensure_schema(con)
    results: list[BatchResult] = []
    con.execute("BEGIN TRANSACTION")
    try:
        for table in LOAD_ORDER:
            for src in found[table]:
                if progress:
                    progress(f"loading {src.path.name} -> staging.{table}")
                r = _load_source(con, src, settings, mapping, vocab)
                check_reject_rate(r, settings, src.path)
                results.append(r)
                if progress:
                    progress(
                        f"{src.path.name}: " + ("skipped (already loaded)" if r.skipped else
                        f"read {r.rows_read}, loaded {r.rows_loaded}, updated {r.rows_updated}, "
                        f"quarantined {r.rows_quarantined}, already loaded {r.rows_already_loaded}")
                        + (f"; {r.notes}" if r.notes else "")
                    )
        require_rows(con, found)
        build_channels(con, vocab)
        n = flag_references(con)
        if progress:
            progress(f"reference flags: {n}")
        fault_point("ingest-commit")
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    return results


def reconciliation_failures(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Batches whose books do not balance: the recorded identity fails, or staging /
    rejected_rows do not hold the recorded number of rows of the batch.

    Returns ``(batch_id, table, file, rows_read, loaded, quarantined, already, staged, rejected,
    updated, history rows)``.
    """
    ensure_schema(con)
    staged = " UNION ALL ".join(
        f"SELECT batch_id, '{t}' AS table_name, count(*) AS n FROM staging.{t} GROUP BY batch_id"
        for t in TABLES
    )
    return con.execute(
        f"""
        WITH s AS ({staged}),
        q AS (SELECT batch_id, table_name, count(DISTINCT source_row) AS n
              FROM quarantine.rejected_rows GROUP BY ALL),
        u AS (SELECT batch_id, table_name, count(DISTINCT source_row) AS n
              FROM staging.status_history GROUP BY ALL)
        SELECT b.batch_id, b.table_name, b.source_file, b.rows_read, b.rows_loaded,
               b.rows_quarantined, b.rows_already_loaded, COALESCE(s.n, 0), COALESCE(q.n, 0),
               b.rows_updated, COALESCE(u.n, 0)
        FROM quarantine.batches b
        LEFT JOIN s USING (batch_id, table_name)
        LEFT JOIN q USING (batch_id, table_name)
        LEFT JOIN u USING (batch_id, table_name)
        WHERE b.rows_read <> b.rows_loaded + b.rows_updated + b.rows_quarantined
                             + b.rows_already_loaded
           OR COALESCE(s.n, 0) <> b.rows_loaded OR COALESCE(q.n, 0) <> b.rows_quarantined
           OR COALESCE(u.n, 0) <> b.rows_updated
        ORDER BY b.started_at"""
    ).fetchall()


def duplicate_keys(con: duckdb.DuckDBPyConnection, table: str,
                   batches: Sequence[str] | None = None) -> int:
    """Number of natural-key values that occur more than once in ``staging.<table>``; with
    ``batches``, among the keys of those batches' rows only. A load can only add a duplicate
    with a key of its own batches, and probing staging with those keys costs a scan where
    the whole table costs a sort of its key hashes (seconds at tens of millions of rows)."""
    key = ", ".join(ident(k) for k in TABLES[table].key)
    rows = f"staging.{table}"
    if batches is not None:
        rows = (f"(SELECT * FROM staging.{table} SEMI JOIN (SELECT {key} FROM staging.{table} "
                f"WHERE batch_id IN ({in_list(list(batches)) or 'NULL'})) USING ({key}))")
    # the candidates' real keys only (_repeated_hashes_sql)
    return con.execute(f"""
        WITH r AS (SELECT {key} FROM {rows})
        SELECT count(*) FROM (SELECT {key} FROM r WHERE hash({key}) IN ({_repeated_hashes_sql(key, 'r')})
                              GROUP BY {key} HAVING count(*) > 1)""").fetchone()[0]
