"""Input files: discovery, encoding detection, header mapping and reading as text.

Everything here turns one export file into a DuckDB relation of *text* columns named by
the canonical contract names plus ``source_row`` (1-based data row number in the file), so
the ingest can validate every value explicitly (DuckDB's own casts round ``'2.5'`` to 3,
drop ``+08:00`` offsets and turn GBK into mojibake; see docs/ingest.md).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from sharegraph.core.contract import TABLES, Table
from sharegraph.core.sql import ident, literal

log = logging.getLogger(__name__)

#: file extensions the discovery accepts, longest first, mapped to a reader format
EXTENSIONS: dict[str, str] = {
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".ndjson": "jsonl",
    ".jsonl": "jsonl",
    ".csv": "csv",
}
MAPPING_FILES = ("mapping.toml", "mapping.json")
SAMPLE_BYTES = 1 << 20
CHUNK_BYTES = 8 << 20
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gbk", "gb18030")


class IngestError(Exception):
    """A file (or the input directory) cannot be ingested; the message names it and why."""


@dataclass(frozen=True)
class SourceFile:
    """One discovered input file and the contract table it feeds."""

    path: Path
    table: str
    fmt: str  # csv | parquet | jsonl

    @property
    def compressed(self) -> bool:
        return self.path.name.lower().endswith(".gz")


def classify(path: Path) -> SourceFile | None:
    """The table and format of ``<table>.<ext>`` / ``<table>_<anything>.<ext>``, else None."""
    name = path.name.lower()
    ext = next((e for e in EXTENSIONS if name.endswith(e)), None)
    if ext is None:
        return None
    stem, fmt = name[: -len(ext)], EXTENSIONS[ext]
    # longest table name first so "share_events_x" never reads as a table "share"
    for table in sorted(TABLES, key=len, reverse=True):
        if stem == table or stem.startswith(table + "_"):
            return SourceFile(path=path, table=table, fmt=fmt)
    return None


def discover(input_dir: str | os.PathLike[str]) -> dict[str, list[SourceFile]]:
    """Input files per contract table, in file-name order (the load order).

    Anything that does not match a table name and a known extension (``truth.json``,
    READMEs, the mapping file) is ignored and never opened.
    """
    root = _root(input_dir)
    if not root.is_dir():
        raise IngestError(f"{root}: input directory does not exist")
    found: dict[str, list[SourceFile]] = {t: [] for t in TABLES}
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        if not path.is_file():
            continue
        src = classify(path)
        if src is not None:
            found[src.table].append(src)
    return found


def _root(input_dir: str | os.PathLike[str]) -> Path:
    """The input directory: a local path, or anything with Path's ``is_dir``, ``iterdir``,
    ``/``, ``is_file``, ``open`` and ``read_text`` (the Spark engine's URIs,
    ``sharegraph.spark.files.RemotePath``)."""
    return input_dir if hasattr(input_dir, "iterdir") else Path(input_dir)


def require_tables(found: dict[str, list[SourceFile]], input_dir: str | os.PathLike[str]) -> None:
    """Raise IngestError when a required table (orders, share_events) has no file."""
    missing = [t.name for t in TABLES.values() if t.required and not found.get(t.name)]
    if missing:
        exts = "/".join(e.lstrip(".") for e in EXTENSIONS)
        raise IngestError(
            f"{input_dir}: no input file for required table(s) {', '.join(missing)} "
            f"(expected <table>.<ext> or <table>_<suffix>.<ext>, ext one of {exts})"
        )


@dataclass(frozen=True)
class InputMapping:
    """What the input's mapping file says: header renames and value synonyms per table, and
    extra channel classes. Empty when the directory has no mapping file."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    """table -> source header -> canonical column."""
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """table -> column -> source value -> canonical value."""
    channel_classes: dict[str, str] = field(default_factory=dict)
    """channel -> class (platform / social / other)."""
    source: str = ""


def load_mapping(input_dir: str | os.PathLike[str]) -> InputMapping:
    """The mapping file (mapping.toml / mapping.json) of an input directory.

    Format (TOML; JSON objects nest the same way): one section per contract table mapping
    source headers to canonical columns, an optional ``values`` sub-table per column, and an
    optional top-level ``channel_classes``::

        [orders]
        "单号" = "order_id"
        [orders.values.status]
        "交易完成" = "paid"
        [channel_classes]
        "douyin_live" = "social"
    """
    root = _root(input_dir)
    for name in MAPPING_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            if name.endswith(".toml"):
                data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
            else:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IngestError(f"{path}: cannot parse mapping file: {exc}") from exc
        return _parse_mapping(data, path)
    return InputMapping()


def _parse_mapping(data: object, path: Path) -> InputMapping:
    if not isinstance(data, dict):
        raise IngestError(f"{path}: mapping must be an object of tables")
    headers: dict[str, dict[str, str]] = {}
    values: dict[str, dict[str, dict[str, str]]] = {}
    classes = data.pop("channel_classes", {})
    if not isinstance(classes, dict):
        raise IngestError(f"{path}: channel_classes must map channel -> class")
    for table, cols in data.items():
        if table not in TABLES:
            raise IngestError(f"{path}: unknown table {table!r}; known: {', '.join(TABLES)}, "
                              "channel_classes")
        if not isinstance(cols, dict):
            raise IngestError(f"{path}: [{table}] must map source header -> column")
        table_values = cols.pop("values", {})
        if not isinstance(table_values, dict) or not all(
                isinstance(v, dict) for v in table_values.values()):
            raise IngestError(f"{path}: [{table}.values] must hold one table per column")
        values[table] = {c: {str(k): str(v) for k, v in m.items()} for c, m in table_values.items()}
        for src, dst in cols.items():
            if dst not in TABLES[table].column_names:
                raise IngestError(
                    f"{path}: [{table}] maps {src!r} to {dst!r}, which is not a column of "
                    f"{table} ({', '.join(TABLES[table].column_names)})"
                )
        headers[table] = {str(k).strip(): str(v) for k, v in cols.items()}
    return InputMapping(headers, values, {str(k): str(v) for k, v in classes.items()}, str(path))


#: substrings of a header that suggest a contract column, checked in this order; a header
#: that maps to nothing but contains one is reported with the suggestion
LOOKALIKES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("status", ("状态", "status")),
    ("commission", ("佣金", "commission")),
    ("red_packet", ("红包", "red_packet", "redpacket")),
    ("amount", ("金额", "实付", "付款", "amount", "paid", "total")),
    ("quantity", ("数量", "件数", "qty", "quantity")),
    ("ordered_at", ("时间", "日期", "time", "date")),
    ("occurred_at", ("时间", "日期", "time", "date")),
    ("channel", ("渠道", "来源", "channel", "source")),
    ("category", ("类目", "分类", "品类", "category")),
    ("merchant_id", ("店铺", "商家", "shop", "store", "merchant")),
    ("referrer_id", ("分销", "推广", "推荐", "邀请", "referrer", "promoter")),
    ("group_id", ("拼团", "团id", "group")),
    ("customer_id", ("买家", "客户", "会员", "customer", "buyer", "member")),
    ("product_id", ("商品", "宝贝", "sku", "product", "item")),
    ("order_id", ("订单", "order")),
)


@dataclass(frozen=True)
class HeaderMap:
    """How one file's headers map onto the contract."""

    columns: dict[str, str]
    """canonical column -> source header."""
    unmapped: list[str]
    """Headers that map to nothing (their values are not loaded)."""
    suggestions: dict[str, str]
    """Unmapped header -> the unmapped contract column it looks like."""

    def notes(self) -> str | None:
        """One line for the batch record and the run output, or None when every header mapped."""
        if not self.unmapped:
            return None
        parts = [f"unmapped headers (not loaded): {', '.join(self.unmapped)}"]
        parts += [f"header {h!r} looks like column {c!r}: map it in mapping.toml if it is"
                  for h, c in self.suggestions.items()]
        return "; ".join(parts)


def map_headers(
    headers: list[str], table: Table, mapping: dict[str, str] | None, source: Path
) -> HeaderMap:
    """Map one file's headers onto ``table``'s canonical columns.

    A header matches, in order of precedence: the mapping file, the canonical name
    (case-insensitive, trimmed), the contract's aliases (e.g. 订单号 -> order_id; when a
    file has several alias headers for one column, the alias listed first wins and the others
    are reported as unmapped). Raises IngestError when the mapping file maps two headers to one
    column, a required column has no header, or a header looks like the order status while no
    status column is mapped: without it every line would be read as paid.
    """
    mapping = mapping or {}
    rank = {k.strip().lower(): i for i, k in enumerate(table.aliases)}
    aliases = {k.strip().lower(): v for k, v in table.aliases.items()}
    names = set(table.column_names)
    found: dict[str, str] = {}
    found_rank: dict[str, int] = {}
    unmapped: list[str] = []
    for header in headers:
        h = header.strip().lstrip("\ufeff")
        if h in mapping:
            target, r = mapping[h], -2
            if found_rank.get(target) == -2:
                raise IngestError(
                    f"{source}: headers {found[target]!r} and {header!r} both map to column {target!r}")
        elif h.lower() in names:
            target, r = h.lower(), -1
        elif h.lower() in aliases:
            target, r = aliases[h.lower()], rank[h.lower()]
        else:
            unmapped.append(header)
            continue
        if target in found and found_rank[target] <= r:
            unmapped.append(header)
            continue
        if target in found:
            unmapped.append(found[target])
        found[target], found_rank[target] = header, r
    unmapped = [h for h in headers if h in unmapped]
    suggestions: dict[str, str] = {}
    for header in unmapped:
        low = header.strip().lower()
        for column, words in LOOKALIKES:
            if column in names and column not in found and any(w in low for w in words):
                suggestions[header] = column
                break
    missing = [c.name for c in table.columns if c.required and c.name not in found]
    if missing:
        hint = "".join(f"; header {h!r} looks like {c!r}" for h, c in suggestions.items()
                       if c in missing)
        raise IngestError(
            f"{source}: missing required column(s) {', '.join(missing)} for table {table.name} "
            f"(headers found: {', '.join(headers) or 'none'}{hint}); map source headers in "
            f"mapping.toml, e.g. [{table.name}] \"<header>\" = \"{missing[0]}\""
        )
    if table.name == "orders" and "status" not in found and "status" in suggestions.values():
        header = next(h for h, c in suggestions.items() if c == "status")
        raise IngestError(
            f"{source}: header {header!r} looks like the order status but maps to no column; "
            "without a status column every line would be read as paid. Map it in mapping.toml "
            f"([orders] \"{header}\" = \"status\") or remove the column"
        )
    return HeaderMap(found, unmapped, suggestions)


def file_sha256(path: Path) -> str:
    """Content hash of the file as stored (the idempotency key of a batch)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _open_raw(src: SourceFile):
    raw = src.path.open("rb")
    return gzip.open(raw, "rb") if src.compressed else raw


def _sample(src: SourceFile) -> bytes:
    try:
        with _open_raw(src) as fh:
            return fh.read(SAMPLE_BYTES)
    except (OSError, EOFError) as exc:
        raise IngestError(f"{src.path}: cannot read file: {exc}") from exc


def detect_encoding(src: SourceFile, configured: str = "auto") -> str:
    """Text encoding of a CSV/JSONL file: the configured one, else detected from a sample.

    Detection: UTF-8 BOM -> utf-8-sig; valid UTF-8 -> utf-8; valid GB18030 (a superset of
    GBK) -> gb18030. NUL bytes mean a binary file. Raises IngestError for an empty, binary
    or undecodable file.
    """
    if configured not in ENCODINGS:
        raise IngestError(f"setting encoding={configured!r} is not one of {', '.join(ENCODINGS)}")
    sample = _sample(src)
    if not sample.removeprefix(codecs.BOM_UTF8).strip():
        raise IngestError(f"{src.path}: file is empty")
    if b"\x00" in sample:
        raise IngestError(f"{src.path}: binary content (NUL bytes), not a text {src.fmt} file")
    if configured != "auto":
        return configured
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    for enc in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(enc)()
        try:
            # final=False: a multi-byte character cut at the sample's end is not an error
            decoder.decode(sample, final=len(sample) < SAMPLE_BYTES)
            return enc
        except UnicodeDecodeError:
            continue
    raise IngestError(f"{src.path}: text is neither UTF-8 nor GBK/GB18030 (undecodable bytes)")


@contextmanager
def utf8_path(src: SourceFile, encoding: str, workdir: Path | None = None) -> Iterator[Path]:
    """A path DuckDB can read as UTF-8: the file itself, or a streaming transcode of it.

    GBK/GB18030 (and gzipped non-UTF-8) files are decoded in 8 MiB chunks with Python's
    codec into a temporary UTF-8 file, so memory stays flat and nothing becomes mojibake.
    """
    if encoding in ("utf-8", "utf-8-sig"):
        yield src.path
        return
    tmpdir = Path(tempfile.mkdtemp(prefix="sharegraph-ingest-", dir=workdir))
    out = tmpdir / (src.path.name.removesuffix(".gz").removesuffix(".GZ"))
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        with _open_raw(src) as fin, open(out, "w", encoding="utf-8", newline="") as fout:
            while True:
                try:
                    chunk = fin.read(CHUNK_BYTES)
                except (OSError, EOFError) as exc:
                    raise IngestError(f"{src.path}: cannot read file: {exc}") from exc
                try:
                    fout.write(decoder.decode(chunk, final=not chunk))
                except UnicodeDecodeError as exc:
                    raise IngestError(
                        f"{src.path}: invalid {encoding} bytes at byte {offset + exc.start}"
                    ) from exc
                if not chunk:
                    break
                offset += len(chunk)
        yield out
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


DELIMITERS = (",", "\t", ";", "|")


def csv_header(path: Path, src: SourceFile, encoding: str = "utf-8-sig") -> tuple[str, list[str]]:
    """Delimiter and header names of a CSV (UTF-8 unless told): the delimiter is the most
    frequent of , TAB ; | in the header line; repeated names get a ``_2`` suffix."""
    try:
        gz = path.name.lower().endswith(".gz")
        with path.open("rb") as raw, gzip.open(raw) if gz else nullcontext(raw) as stream:
            first = io.TextIOWrapper(stream, encoding=encoding, newline="").readline(1 << 20)
    except UnicodeDecodeError as exc:
        raise IngestError(f"{src.path}: header line is not valid {encoding}: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise IngestError(f"{src.path}: cannot read file: {exc}") from exc
    if not first.strip():
        raise IngestError(f"{src.path}: file is empty (no header line)")
    delim = max(DELIMITERS, key=first.count)
    try:
        row = next(csv.reader(io.StringIO(first), delimiter=delim, strict=True))
    except (csv.Error, StopIteration) as exc:
        raise IngestError(f"{src.path}: cannot parse the header line: {exc}") from exc
    seen: dict[str, int] = {}
    names = []
    for h in row:
        seen[h] = seen.get(h, 0) + 1
        names.append(h if seen[h] == 1 else f"{h}_{seen[h]}")
    return delim, names


def _duck_error(src: SourceFile, exc: Exception) -> IngestError:
    msg = str(exc).strip().splitlines()
    detail = " ".join(m.strip() for m in msg[:6] if m.strip())
    return IngestError(f"{src.path}: cannot read as {src.fmt}: {detail}")


REJECTS_TABLE, REJECTS_SCAN = "_sg_csv_rejects", "_sg_csv_reject_scans"
#: one row per malformed line of the last CSV scan (csv_line_rejects)
LINE_REJECTS = "_sg_line_rejects"

#: DuckDB CSV error types that make a line a quarantined row (rule name), not a file failure
LINE_RULES = {
    "MISSING COLUMNS": "field_count",
    "TOO MANY COLUMNS": "field_count",
    "UNQUOTED VALUE": "malformed_quotes",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
}


def csv_line_rejects(con: duckdb.DuckDBPyConnection, src: SourceFile) -> str | None:
    """After a CSV scan: a temp table of its malformed lines (one row per line: ``line``, DuckDB's
    record number with the header as 1, so ``source_row`` = line - 1 is the data row number
    even when quoted fields span lines; ``rule``, ``csv_line``, ``error``), or None when there
    are none. Raises IngestError when the text itself is broken: a quote that never
    closes (the rest of the file would be one value), invalid encoding, a parser state error."""
    try:
        n = con.execute(f"SELECT count(*) FROM {REJECTS_TABLE}").fetchone()[0]
    except duckdb.CatalogException:
        return None  # not a CSV scan
    if not n:
        return None
    rules = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in LINE_RULES.items())
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {LINE_REJECTS} AS
        SELECT line, line - 1 AS source_row,
               CASE WHEN error_type = 'UNQUOTED VALUE'
                         AND (length(csv_line) - length(replace(csv_line, '"', ''))) % 2 = 1
                    THEN 'unclosed_quote'
                    ELSE CASE CAST(error_type AS VARCHAR) {rules} ELSE 'fatal' END END AS rule,
               csv_line, error_message AS error
        FROM {REJECTS_TABLE} QUALIFY row_number() OVER (PARTITION BY line ORDER BY column_idx) = 1""")
    fatal = con.execute(f"""SELECT line, rule, error FROM {LINE_REJECTS}
        WHERE rule IN ('unclosed_quote', 'fatal') ORDER BY line LIMIT 1""").fetchone()
    if fatal is not None:
        line, rule, error = fatal
        what = ("a quote opened on this line never closes" if rule == "unclosed_quote"
                else " ".join(str(error).split())[:300])
        raise IngestError(f"{src.path}: line {line}: {what}; the file cannot be read as CSV")
    return LINE_REJECTS


def drop_csv_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp tables a CSV scan's rejects left behind."""
    for t in (REJECTS_TABLE, REJECTS_SCAN, LINE_REJECTS):
        con.execute(f"DROP TABLE IF EXISTS {t}")


def open_text_relation(
    con: duckdb.DuckDBPyConnection,
    src: SourceFile,
    table: Table,
    mapping: dict[str, str] | None,
    path: Path,
    view: str,
    *,
    row_numbers: bool = True,
) -> HeaderMap:
    """Create temp view ``view``: ``source_row`` + one VARCHAR column per mapped canonical name.

    ``path`` is the UTF-8 (possibly transcoded) file to read. Returns how the headers mapped.
    With ``row_numbers=False`` the view has no ``source_row`` and keeps file order:
    the caller materialises it (preserve_insertion_order) and numbers rows by ``rowid + 1``,
    which saves a streaming ``row_number()`` window (about a quarter of a large CSV scan). CSV
    is read with every column declared VARCHAR (explicit ``columns``, no sniffing) and strict
    parsing: a line with too many or too few fields is never padded or cut; the scan skips it
    and records it for ``csv_line_rejects``, and row numbers count only the lines read.
    """
    scan, base, csv_headers = _scan_sql(con, src, path)
    headers = _source_headers(con, src, scan, csv_headers)
    header_map = map_headers(headers, table, mapping, src.path)
    cols = header_map.columns
    if src.fmt == "jsonl":
        exprs = [f"__json ->> {literal(h)} AS {ident(c)}" for c, h in cols.items()]
    else:
        exprs = [f"CAST({ident(h)} AS VARCHAR) AS {ident(c)}" for c, h in cols.items()]
    if not row_numbers:
        base = f"SELECT * FROM {scan}" if src.fmt == "csv" else base.replace(
            "row_number() OVER () AS __row, ", "")
        if src.fmt == "parquet":
            base = f"SELECT * EXCLUDE (file_row_number) FROM {scan}"
    row = "__row AS source_row, " if row_numbers else ""
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {row}"
        f"{', '.join(exprs)} FROM ({base})"
    )
    return header_map


def _scan_sql(
    con: duckdb.DuckDBPyConnection, src: SourceFile, path: Path
) -> tuple[str, str, list[str]]:
    """The table function reading ``path`` and a SELECT over it that numbers rows ``__row``.

    Returns ``(scan, base, csv_headers)``; the CSV header line is read here (explicit
    dialect, every column VARCHAR), other formats name their columns themselves.
    """
    p = literal(str(path))
    csv_headers: list[str] = []
    if src.fmt == "csv":
        delim, csv_headers = csv_header(path, src)
        columns = "{" + ", ".join(f"{literal(h)}: 'VARCHAR'" for h in csv_headers) + "}"
        # explicit dialect: the sniffer can mistake a truncated last line for another
        # delimiter. Strict parsing with rejects stored: a line with too many or too few
        # fields is skipped by the scan and recorded in REJECTS_TABLE (csv_line_rejects)
        drop_csv_rejects(con)  # the rejects tables hold this scan's lines only
        scan = (
            f"read_csv({p}, header=true, auto_detect=false, columns={columns}, "
            f"delim={literal(delim)}, quote='\"', escape='\"', strict_mode=true, "
            f"null_padding=false, ignore_errors=true, store_rejects=true, "
            f"rejects_table='{REJECTS_TABLE}', rejects_scan='{REJECTS_SCAN}', encoding='utf-8')"
        )
        # the explicit row number is computed over the scan in file order
        # (preserve_insertion_order keeps the scan order through the window)
        base = f"SELECT row_number() OVER () AS __row, * FROM {scan}"
    elif src.fmt == "parquet":
        scan = f"read_parquet({p}, file_row_number=true)"
        base = f"SELECT file_row_number + 1 AS __row, * EXCLUDE (file_row_number) FROM {scan}"
    else:
        scan = f"read_ndjson_objects({p})"
        base = f"SELECT row_number() OVER () AS __row, json AS __json FROM {scan}"
    return scan, base, csv_headers


def _source_headers(
    con: duckdb.DuckDBPyConnection, src: SourceFile, scan: str, csv_headers: list[str]
) -> list[str]:
    """The file's column names in file order: JSON keys by first appearance, else the
    CSV header line or the Parquet schema. A JSON line that is not an object is an error."""
    try:
        if src.fmt == "jsonl":
            keys_sql = (
                f"SELECT k FROM (SELECT unnest(json_keys(json)) AS k, row_number() OVER () AS o "
                f"FROM {scan} WHERE json_type(json) = 'OBJECT') GROUP BY k ORDER BY min(o)"
            )
            bad = con.execute(
                f"SELECT min(r) FROM (SELECT row_number() OVER () AS r, json FROM {scan}) "
                f"WHERE json_type(json) <> 'OBJECT'"
            ).fetchone()[0]
            if bad is not None:
                raise IngestError(f"{src.path}: line {bad} is not a JSON object")
            headers = [r[0] for r in con.execute(keys_sql).fetchall()]
        elif src.fmt == "csv":
            headers = csv_headers
        else:
            headers = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
            if src.fmt == "parquet":
                headers = [h for h in headers if h != "file_row_number"]
    except IngestError:
        raise
    except duckdb.Error as exc:
        raise _duck_error(src, exc) from exc
    return headers
