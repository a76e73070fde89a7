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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from sharegraph.config import Settings
from sharegraph.contract import TABLES, Column, Table
from sharegraph.sources import (
    IngestError,
    SourceFile,
    classify,
    detect_encoding,
    discover,
    file_sha256,
    load_mapping,
    open_text_relation,
    require_tables,
    utf8_path,
)
from sharegraph.warehouse import ensure_schema, fault_point

__all__ = [
    "BatchResult",
    "IngestError",
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
    "not_money": "A money column is not a plain decimal number (e.g. 'NaN', 'inf', '1e3', '¥5', '1,000', > 16 integer digits).",
    "money_precision": "A money value has more than 2 decimals (trailing zeros are fine: '1.500').",
    "negative_amount": "A money value is negative.",
    "not_number": "A number column is not a finite decimal number.",
    "bad_timestamp": "Not an ISO date/time (YYYY-MM-DD[ T]HH:MM[:SS[.f]] with optional Z/+08:00 offset; '/' allowed as date separator) or not a real date.",
    "future_timestamp": "The table's event time (ordered_at, occurred_at, joined_at, opened_at) is after the load time in Settings.timezone.",
    "unknown_value": "An enumerated column holds a value outside the contract (status, channel, event_type, group status); compared trimmed and lower-cased.",
    "category_missing": "orders.category is empty and staging.products gives no category for the product.",
    "duplicate_key_conflict": "Several rows of one file share a natural key with different values: all of them are quarantined.",
    "conflicts_with_loaded": "The natural key is already in staging with different values: staging keeps the first-loaded version.",
}

#: rule names of quarantine.flagged_rows (rows loaded, but a reference looks wrong)
FLAG_RULES: dict[str, str] = {
    "unknown_share": "orders.share_id, or a click's share_id, has no share/reshare event in staging.share_events.",
    "unknown_referrer": "orders.referrer_id is not a known person (customer, share actor, agent or group initiator).",
    "self_referral": "orders.referrer_id equals the order's customer_id.",
    "unknown_product": "orders.product_id is not in staging.products (only when products were given).",
    "unknown_group": "orders.group_id is not in staging.group_buys (only when group buys were given).",
    "unknown_parent_share": "share_events.parent_share_id has no share/reshare event.",
    "unknown_upline": "agents.upline_id is not an agent.",
    "self_upline": "agents.upline_id equals agent_id.",
}

MONEY_RE = r"[+-]?(\d{1,16}(\.\d*)?|\.\d+)"
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
    """What one file's load did. ``rows_read = rows_loaded + rows_quarantined +
    rows_already_loaded``; ``skipped`` means the same content was loaded before (nothing read)."""

    batch_id: str
    table: str
    source_file: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_already_loaded: int
    skipped: bool = False


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def _in_list(values: tuple[str, ...]) -> str:
    return ", ".join(_lit(v) for v in values)


def _trimmed(v: str) -> str:
    """``NULLIF(trim(v), '')``, calling trim only where it can change ``v``: trim strips
    spaces and Unicode space characters, so an ASCII value (byte length = character length)
    without a leading/trailing space is already trimmed. About half the cost of trim on IDs."""
    return (f"CASE WHEN {v} LIKE ' %' OR {v} LIKE '% ' OR strlen({v}) <> length({v}) "
            f"THEN NULLIF(trim({v}), '') ELSE NULLIF({v}, '') END")


def _typed_expr(c: Column, v: str, tz: str) -> str:
    """Typed value of clean text ``v`` (NULL when it does not parse; the rule says why)."""
    if c.kind == "text":
        return f"lower({v})" if c.allowed else v
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
            f"THEN timezone({_lit(tz)}, TRY_CAST({v} AS TIMESTAMPTZ)) "
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
        whens.append(f"WHEN {t} NOT IN ({_in_list(c.allowed)}) THEN 'unknown_value'")
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


def _validated_sql(table: Table, present: set[str], settings: Settings, now: datetime,
                   view: str, out: str, numbered: bool = False) -> str:
    """CREATE TEMP TABLE ``out``: one row per data row with typed values and the first rule it
    breaks (err_column, err_rule, err_value, raw_record; NULL for a valid row).

    ``numbered``: the view has ``source_row`` (kept as a column); else the statement only
    projects and filters, so the table is in file order and ``rowid`` numbers the rows.
    orders.category_missing looks products up in a one-row list (list_contains), which keeps
    file order, unless ``numbered`` (then a hash join, for large catalogues).
    """
    now_sql = f"TIMESTAMP '{now:%Y-%m-%d %H:%M:%S.%f}'"
    cols = table.columns
    # L1: clean text (trimmed, '' -> NULL, default applied) and the raw text
    l1 = ["s.source_row"] if numbered else []
    for c in cols:
        raw = f"s.{_q(c.name)}" if c.name in present else "NULL::VARCHAR"
        clean = _trimmed(raw)
        if c.kind == "timestamp":
            clean = f"replace({clean}, '/', '-')"
        if c.default is not None:
            clean = f"COALESCE({clean}, {_lit(c.default)})"
        l1.append(f"{raw} AS {_q('r_' + c.name)}")
        l1.append(f"{clean} AS {_q('v_' + c.name)}")
    join = ""
    if table.name == "orders":
        pid = "NULLIF(trim(" + (
            f"s.{_q('product_id')}" if "product_id" in present else "NULL::VARCHAR") + "), '')"
        if numbered:
            join = (
                " LEFT JOIN (SELECT DISTINCT product_id AS pc_product_id FROM staging.products "
                f"WHERE category IS NOT NULL) pc ON pc.pc_product_id = {pid}"
            )
            l1.append("pc.pc_product_id IS NOT NULL AS has_product_category")
    # L2: typed values
    l2 = ["*"]
    for c in cols:
        l2.append(f"CAST({_typed_expr(c, _q('v_' + c.name), settings.timezone)} AS {c.sql_type}) "
                  f"AS {_q('t_' + c.name)}")
    # L3: per-column rules
    l3 = ["*"]
    for c in cols:
        e = _rule_expr(table, c, _q("v_" + c.name), _q("t_" + c.name), now_sql)
        if table.name == "orders" and c.name == "category":
            if numbered:
                known = "has_product_category"
            else:  # evaluated only where the category is empty (CASE short-circuits)
                known = ("COALESCE(list_contains((SELECT list(DISTINCT product_id) FROM "
                         "staging.products WHERE category IS NOT NULL), v_product_id), false)")
            e = (f"COALESCE({e}, CASE WHEN v_category IS NOT NULL THEN NULL "
                 f"WHEN NOT {known} THEN 'category_missing' END)")
        l3.append(f"{e} AS {_q('e_' + c.name)}")
    # L4: first failing rule in contract column order (raw text only for rejected rows)
    err_col = "CASE " + " ".join(
        f"WHEN {_q('e_' + c.name)} IS NOT NULL THEN {_lit(c.name)}" for c in cols) + " END"
    err_rule = "COALESCE(" + ", ".join(_q("e_" + c.name) for c in cols) + ")"
    err_val = "CASE " + " ".join(
        f"WHEN {_q('e_' + c.name)} IS NOT NULL THEN {_q('r_' + c.name)}" for c in cols) + " END"
    raw_record = "to_json(struct_pack(" + ", ".join(
        f"{_q(c.name)} := {_q('r_' + c.name)}" for c in cols if c.name in present) + "))::VARCHAR"
    l4 = (
        [*(["source_row"] if numbered else []), *[f"{_q('t_' + c.name)}" for c in cols],
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
    ks = [_q("t_" + k) for k in table.key]
    lags = ", ".join(f"lag({k}) OVER () AS {_q('p_' + str(i))}" for i, k in enumerate(ks))

    def greater(i: int) -> str:
        k, p = ks[i], _q("p_" + str(i))
        if i == len(ks) - 1:
            return f"{k} > {p}"
        return f"({k} > {p} OR ({k} = {p} AND {greater(i + 1)}))"

    null_key = " OR ".join(f"{k} IS NULL" for k in ks)
    bad = con.execute(
        f"""SELECT count(*) FILTER (WHERE {null_key}
                OR ({_q('p_0')} IS NOT NULL AND NOT COALESCE({greater(0)}, false)))
        FROM (SELECT {', '.join(ks)}, {lags} FROM {validated} WHERE err_rule IS NULL)"""
    ).fetchone()[0]
    return bad == 0


def _outcome_sql(table: Table, validated: str, out: str, staging_empty: bool,
                 unique_keys: bool = False) -> str:
    """CREATE TEMP TABLE ``out``: ``(source_row, outcome)`` for the few valid rows that are not
    plainly loaded (outcome conflict_in_file | conflict_loaded | already_loaded |
    duplicate_in_file). Every other valid row is loaded; rows with an err_rule are rejected.

    Precedence (as documented): conflict_in_file > conflict_loaded > already_loaded >
    duplicate_in_file. Only keys that occur twice in the file (GROUP BY key HAVING
    count(*) > 1, grouped by the key's 64-bit hash: a collision only adds candidates, which the
    window over the candidates partitions by the real key) and keys already in staging are
    compared on whole typed rows, so the cost is one hash aggregate plus work proportional to
    the duplicates. ``unique_keys`` (_keys_ascending proved no key repeats in the file) skips
    the aggregate.
    """
    if unique_keys and staging_empty:
        return f"CREATE OR REPLACE TEMP TABLE {out} (source_row BIGINT, outcome VARCHAR)"
    cols = table.columns
    keys = ", ".join(_q("t_" + k) for k in table.key)
    typed_hash = "hash(" + ", ".join(_q("t_" + c.name) for c in cols) + ")"
    keys_v = ", ".join("v." + _q("t_" + k) for k in table.key)
    part = f"PARTITION BY {', '.join('v.' + _q('t_' + k) for k in table.key)}"
    dk_sql = ("SELECT NULL::UBIGINT AS kh WHERE false" if unique_keys else
              f"SELECT hash({keys}) AS kh FROM {validated} WHERE err_rule IS NULL GROUP BY kh "
              "HAVING count(*) > 1")
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
       CASE WHEN conflict THEN 'conflict_in_file' ELSE 'duplicate_in_file' END AS outcome
FROM dr WHERE conflict OR copy > 1"""
    stg_on = " AND ".join(f"s.{_q(k)} = v.{_q('t_' + k)}" for k in table.key)
    stg_hash = "hash(" + ", ".join(f"s.{_q(c.name)}" for c in cols) + ")"
    return f"""
CREATE OR REPLACE TEMP TABLE {out} AS
WITH {dup},
    lk AS (SELECT v.source_row, {stg_hash} = {typed_hash.replace('"t_', 'v."t_')} AS same
           FROM {validated} v JOIN staging.{table.name} s ON {stg_on}
           WHERE v.err_rule IS NULL)
SELECT source_row,
       CASE WHEN dr.conflict THEN 'conflict_in_file'
            WHEN NOT lk.same THEN 'conflict_loaded'
            WHEN lk.same THEN 'already_loaded'
            ELSE 'duplicate_in_file' END AS outcome
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
                 mapping: dict[str, dict[str, str]]) -> BatchResult:
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
        return _load_new(con, src, settings, mapping, sha_job)


def _load_new(con: duckdb.DuckDBPyConnection, src: SourceFile, settings: Settings,
              mapping: dict[str, dict[str, str]], sha_job: Future[str]) -> BatchResult:
    """Validate and load a file that was not loaded before (see _load_source)."""
    table = TABLES[src.table]
    name = src.path.name
    started = _now_local(settings)
    encoding = "utf-8" if src.fmt == "parquet" else detect_encoding(src, settings.encoding)
    view, tmp, out, oc = "_sg_src", "_sg_validated", "_sg_v", "_sg_outcome"
    # a large product catalogue is looked up by hash join, which does not keep file order:
    # then rows are numbered in the view instead of by position
    numbered = table.name == "orders" and con.execute(
        "SELECT count(DISTINCT product_id) FROM staging.products WHERE category IS NOT NULL"
    ).fetchone()[0] > LIST_LOOKUP_MAX
    with utf8_path(src, encoding) as path, _insertion_order(con):
        present = open_text_relation(con, src, table, mapping.get(table.name), path, view,
                                     row_numbers=numbered)
        try:
            con.execute(_validated_sql(table, set(present), settings, started, view, tmp,
                                       numbered))
        except duckdb.Error as exc:
            detail = " ".join(str(exc).split())[:600]
            raise IngestError(f"{src.path}: cannot read as {src.fmt} ({encoding}): {detail}") from exc
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
    cols = table.column_names
    special = n_rows != n_rejected + counts["load"]
    lineage = f"{_lit(name)}, source_row, {_lit(batch_id)}, {_lit(f'{started:%Y-%m-%d %H:%M:%S.%f}')}::TIMESTAMP"
    key_cols = ",".join(table.key)
    key_val = " || ',' || ".join(f"COALESCE(CAST({_q('t_' + k)} AS VARCHAR), '')" for k in table.key)
    typed_json = "to_json(struct_pack(" + ", ".join(
        f"{_q(c)} := {_q('t_' + c)}" for c in cols) + "))::VARCHAR"
    con.execute(
        f"""INSERT INTO quarantine.rejected_rows
        SELECT {_lit(batch_id)}, {_lit(table.name)}, {_lit(name)}, source_row,
            CASE outcome WHEN 'rejected' THEN err_column ELSE {_lit(key_cols)} END,
            CASE outcome WHEN 'rejected' THEN err_rule
                 WHEN 'conflict_in_file' THEN 'duplicate_key_conflict'
                 ELSE 'conflicts_with_loaded' END,
            CASE outcome WHEN 'rejected' THEN err_value ELSE {key_val} END,
            CASE outcome WHEN 'rejected' THEN raw_record ELSE {typed_json} END,
            {_lit(f'{started:%Y-%m-%d %H:%M:%S.%f}')}::TIMESTAMP
        FROM (SELECT *, 'rejected' AS outcome FROM {out} WHERE err_rule IS NOT NULL
              UNION ALL
              SELECT v.*, o.outcome FROM {out} v JOIN {oc} o USING (source_row)
              WHERE o.outcome IN ('conflict_in_file', 'conflict_loaded'))
        ORDER BY source_row"""
    )
    # a filter keeps the temp table's file order, so staging gets rows in source_row order
    # without sorting the file. Rows left out (duplicates, re-sends, conflicts: few) are
    # deleted from the temp table first, which keeps the other rows' positions; only a
    # numbered (joined) scan needs an anti-join and a sort.
    if special and positional:
        con.execute(f"DELETE FROM {tmp} WHERE rowid IN (SELECT source_row + {lo} - 1 FROM {oc})")
    where = "err_rule IS NULL" + (f" AND source_row NOT IN (SELECT source_row FROM {oc})"
                                  if special and not positional else "")
    order = " ORDER BY source_row" if numbered or (special and not positional) else ""
    con.execute(
        f"INSERT INTO staging.{table.name} ({', '.join(_q(c) for c in cols)}, source_file, "
        f"source_row, batch_id, loaded_at) SELECT {', '.join(_q('t_' + c) for c in cols)}, "
        f"{lineage} FROM {out} WHERE {where}{order}"
    )
    con.execute(f"DROP TABLE IF EXISTS {oc}")
    con.execute(f"DROP VIEW IF EXISTS {out}")
    con.execute(f"DROP TABLE IF EXISTS {tmp}")
    con.execute(f"DROP VIEW IF EXISTS {view}")
    read = sum(counts.values())
    loaded = counts.get("load", 0)
    quarantined = sum(counts.get(o, 0) for o in REJECT_OUTCOMES)
    seen = sum(counts.get(o, 0) for o in SEEN_OUTCOMES)
    finished = _now_local(settings)
    con.execute(
        "INSERT INTO quarantine.batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [batch_id, table.name, name, sha, read, loaded, quarantined, seen, started, finished],
    )
    log.info("%s -> staging.%s: read %d, loaded %d, quarantined %d, already loaded %d",
             name, table.name, read, loaded, quarantined, seen)
    return BatchResult(batch_id, table.name, name, read, loaded, quarantined, seen)


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
    con.execute("BEGIN TRANSACTION")
    try:
        result = _load_source(con, src, settings, mapping)
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    return result


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
    ensure_schema(con)
    results: list[BatchResult] = []
    con.execute("BEGIN TRANSACTION")
    try:
        for table in LOAD_ORDER:
            for src in found[table]:
                if progress:
                    progress(f"loading {src.path.name} -> staging.{table}")
                r = _load_source(con, src, settings, mapping)
                results.append(r)
                if progress:
                    progress(
                        f"{src.path.name}: " + ("skipped (already loaded)" if r.skipped else
                        f"read {r.rows_read}, loaded {r.rows_loaded}, "
                        f"quarantined {r.rows_quarantined}, already loaded {r.rows_already_loaded}")
                    )
        n = flag_references(con)
        if progress:
            progress(f"reference flags: {n}")
        fault_point("ingest-commit")
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    return results


#: flag queries; _sg_share_ids (share/reshare ids) and _sg_people (the referrers that are
#: known persons) are temp tables flag_references builds once
FLAG_SQL: dict[str, str] = {
    "unknown_share": """
        SELECT 'orders' t, o.source_file, o.source_row, o.batch_id, 'share_id' c, o.share_id v
        FROM staging.orders o ANTI JOIN _sg_share_ids i ON i.share_id = o.share_id
        WHERE o.share_id IS NOT NULL
        UNION ALL
        SELECT 'share_events', e.source_file, e.source_row, e.batch_id, 'share_id', e.share_id
        FROM staging.share_events e ANTI JOIN _sg_share_ids i ON i.share_id = e.share_id
        WHERE e.event_type = 'click'""",
    "unknown_referrer": """
        SELECT 'orders', o.source_file, o.source_row, o.batch_id, 'referrer_id', o.referrer_id
        FROM staging.orders o
        WHERE o.referrer_id IS NOT NULL AND o.referrer_id NOT IN (
            SELECT person_id FROM _sg_people)""",
    "self_referral": """
        SELECT 'orders', source_file, source_row, batch_id, 'referrer_id', referrer_id
        FROM staging.orders WHERE referrer_id = customer_id""",
    "unknown_product": """
        SELECT 'orders', o.source_file, o.source_row, o.batch_id, 'product_id', o.product_id
        FROM staging.orders o
        WHERE EXISTS (SELECT 1 FROM staging.products)
          AND o.product_id NOT IN (SELECT product_id FROM staging.products)""",
    "unknown_group": """
        SELECT 'orders', o.source_file, o.source_row, o.batch_id, 'group_id', o.group_id
        FROM staging.orders o
        WHERE o.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM staging.group_buys)
          AND o.group_id NOT IN (SELECT group_id FROM staging.group_buys)""",
    "unknown_parent_share": """
        SELECT 'share_events', e.source_file, e.source_row, e.batch_id, 'parent_share_id',
               e.parent_share_id
        FROM staging.share_events e ANTI JOIN _sg_share_ids i ON i.share_id = e.parent_share_id
        WHERE e.parent_share_id IS NOT NULL""",
    "unknown_upline": """
        SELECT 'agents', source_file, source_row, batch_id, 'upline_id', upline_id
        FROM staging.agents
        WHERE upline_id IS NOT NULL AND upline_id NOT IN (SELECT agent_id FROM staging.agents)""",
    "self_upline": """
        SELECT 'agents', source_file, source_row, batch_id, 'upline_id', upline_id
        FROM staging.agents WHERE upline_id = agent_id""",
}


def flag_references(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute ``quarantine.flagged_rows``: loaded rows whose cross-table references look
    wrong (FLAG_RULES). Flags never remove a row from staging. Returns the number of flags."""
    ensure_schema(con)
    con.execute(f"DELETE FROM quarantine.flagged_rows WHERE rule IN ({_in_list(tuple(FLAG_SQL))})")
    # the reference sets are built once (three rules look shares up, tens of millions of
    # events). Lookups are anti/semi joins, which a repeated build key does not multiply, so
    # the share ids need no DISTINCT (half the cost) and the staging columns (NOT NULL
    # share_id) need no NOT IN null semantics
    con.execute("""CREATE OR REPLACE TEMP TABLE _sg_share_ids AS SELECT share_id
        FROM staging.share_events WHERE event_type IN ('share', 'reshare')""")
    # known persons among the (few distinct) referrers only: the referrers are the hash-join
    # build side and the person columns (tens of millions of rows) just probe it
    con.execute("""CREATE OR REPLACE TEMP TABLE _sg_people AS
        WITH r AS (SELECT DISTINCT referrer_id AS p FROM staging.orders
                   WHERE referrer_id IS NOT NULL)
        SELECT r.p AS person_id FROM r SEMI JOIN (
            SELECT customer_id AS id FROM staging.orders
            UNION ALL SELECT actor_id FROM staging.share_events
            UNION ALL SELECT agent_id FROM staging.agents
            UNION ALL SELECT initiator_id FROM staging.group_buys) k ON k.id = r.p""")
    for rule, sql in FLAG_SQL.items():
        con.execute(
            f"""INSERT INTO quarantine.flagged_rows
            SELECT batch_id, t, source_file, source_row, c, {_lit(rule)}, v, current_localtimestamp()
            FROM ({sql}) AS f(t, source_file, source_row, batch_id, c, v)"""
        )
    con.execute("DROP TABLE _sg_share_ids")
    con.execute("DROP TABLE _sg_people")
    return con.execute(
        f"SELECT count(*) FROM quarantine.flagged_rows WHERE rule IN ({_in_list(tuple(FLAG_SQL))})"
    ).fetchone()[0]


def reconciliation_failures(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Batches whose books do not balance: the recorded identity fails, or staging /
    rejected_rows do not hold the recorded number of rows of the batch.

    Returns ``(batch_id, table, file, rows_read, loaded, quarantined, already, staged, rejected)``.
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
              FROM quarantine.rejected_rows GROUP BY ALL)
        SELECT b.batch_id, b.table_name, b.source_file, b.rows_read, b.rows_loaded,
               b.rows_quarantined, b.rows_already_loaded, COALESCE(s.n, 0), COALESCE(q.n, 0)
        FROM quarantine.batches b
        LEFT JOIN s USING (batch_id, table_name)
        LEFT JOIN q USING (batch_id, table_name)
        WHERE b.rows_read <> b.rows_loaded + b.rows_quarantined + b.rows_already_loaded
           OR COALESCE(s.n, 0) <> b.rows_loaded OR COALESCE(q.n, 0) <> b.rows_quarantined
        ORDER BY b.started_at"""
    ).fetchall()


def duplicate_keys(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Number of natural-key values that occur more than once in ``staging.<table>``."""
    key = ", ".join(_q(k) for k in TABLES[table].key)
    return con.execute(
        f"SELECT count(*) FROM (SELECT {key} FROM staging.{table} GROUP BY {key} HAVING count(*) > 1)"
    ).fetchone()[0]
