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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sharegraph.contract import TABLES, Table

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
    root = Path(input_dir)
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


def require_tables(found: dict[str, list[SourceFile]], input_dir: str | os.PathLike[str]) -> None:
    """Raise IngestError when a required table (orders, share_events) has no file."""
    missing = [t.name for t in TABLES.values() if t.required and not found.get(t.name)]
    if missing:
        exts = "/".join(e.lstrip(".") for e in EXTENSIONS)
        raise IngestError(
            f"{input_dir}: no input file for required table(s) {', '.join(missing)} "
            f"(expected <table>.<ext> or <table>_<suffix>.<ext>, ext one of {exts})"
        )


def load_mapping(input_dir: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Per-table ``source header -> canonical column`` from mapping.toml / mapping.json.

    Format: one section (TOML table / JSON object) per contract table, e.g.
    ``[orders]`` then ``"单号" = "order_id"``. Targets must be canonical columns.
    """
    root = Path(input_dir)
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
        if not isinstance(data, dict):
            raise IngestError(f"{path}: mapping must be an object of tables")
        out: dict[str, dict[str, str]] = {}
        for table, cols in data.items():
            if table not in TABLES:
                raise IngestError(f"{path}: unknown table {table!r}; known: {', '.join(TABLES)}")
            if not isinstance(cols, dict):
                raise IngestError(f"{path}: [{table}] must map source header -> column")
            for src, dst in cols.items():
                if dst not in TABLES[table].column_names:
                    raise IngestError(
                        f"{path}: [{table}] maps {src!r} to {dst!r}, which is not a column of "
                        f"{table} ({', '.join(TABLES[table].column_names)})"
                    )
            out[table] = {str(k).strip(): str(v) for k, v in cols.items()}
        return out
    return {}


def map_headers(
    headers: list[str], table: Table, mapping: dict[str, str] | None, source: Path
) -> dict[str, str]:
    """``canonical column -> source header`` for one file.

    A header matches, in order of precedence: the mapping file, the canonical name
    (case-insensitive, trimmed), the contract's default aliases (e.g. 订单号 -> order_id).
    Unknown headers are ignored. Raises IngestError when two headers map to one column or a
    required column has no header.
    """
    mapping = mapping or {}
    aliases = {k.strip().lower(): v for k, v in table.aliases.items()}
    names = set(table.column_names)
    found: dict[str, str] = {}
    for header in headers:
        h = header.strip().lstrip("\ufeff")
        target = mapping.get(h)
        if target is None and h.lower() in names:
            target = h.lower()
        if target is None:
            target = aliases.get(h.lower())
        if target is None:
            continue
        if target in found:
            raise IngestError(
                f"{source}: headers {found[target]!r} and {header!r} both map to column {target!r}"
            )
        found[target] = header
    missing = [c.name for c in table.columns if c.required and c.name not in found]
    if missing:
        raise IngestError(
            f"{source}: missing required column(s) {', '.join(missing)} for table {table.name} "
            f"(headers found: {', '.join(headers) or 'none'})"
        )
    return found


def file_sha256(path: Path) -> str:
    """Content hash of the file as stored (the idempotency key of a batch)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def _open_raw(src: SourceFile):
    return gzip.open(src.path, "rb") if src.compressed else open(src.path, "rb")


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


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


DELIMITERS = (",", "\t", ";", "|")


def csv_header(path: Path, src: SourceFile) -> tuple[str, list[str]]:
    """Delimiter and header names of a UTF-8 CSV: the delimiter is the most frequent of
    , TAB ; | in the header line; repeated names get a ``_2`` suffix (unmapped anyway)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:
            first = fh.readline(1 << 20)
        except UnicodeDecodeError as exc:
            raise IngestError(f"{src.path}: header line is not valid UTF-8: {exc}") from exc
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


def open_text_relation(
    con: duckdb.DuckDBPyConnection,
    src: SourceFile,
    table: Table,
    mapping: dict[str, str] | None,
    path: Path,
    view: str,
    *,
    row_numbers: bool = True,
) -> dict[str, str]:
    """Create temp view ``view``: ``source_row`` + one VARCHAR column per mapped canonical name.

    ``path`` is the UTF-8 (possibly transcoded) file to read. Returns ``canonical -> source
    header``. With ``row_numbers=False`` the view has no ``source_row`` and keeps file order:
    the caller materialises it (preserve_insertion_order) and numbers rows by ``rowid + 1``,
    which saves a streaming ``row_number()`` window (about a quarter of a large CSV scan). CSV
    is read with every column declared VARCHAR (explicit ``columns``, no sniffing) and strict
    parsing, so a malformed row fails the file (IngestError naming the line) instead of being
    silently padded or skipped.
    """
    p = _lit(str(path))
    csv_headers: list[str] = []
    if src.fmt == "csv":
        delim, csv_headers = csv_header(path, src)
        columns = "{" + ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in csv_headers) + "}"
        # explicit dialect: the sniffer can mistake a truncated last line for another
        # delimiter; strict mode makes a short/long/unterminated row a file error
        scan = (
            f"read_csv({p}, header=true, auto_detect=false, columns={columns}, "
            f"delim={_lit(delim)}, quote='\"', escape='\"', strict_mode=true, "
            f"null_padding=false, ignore_errors=false, encoding='utf-8')"
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
    cols = map_headers(headers, table, mapping, src.path)
    if src.fmt == "jsonl":
        exprs = [f"__json ->> {_lit(h)} AS {_q(c)}" for c, h in cols.items()]
    else:
        exprs = [f"CAST({_q(h)} AS VARCHAR) AS {_q(c)}" for c, h in cols.items()]
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
    return cols
