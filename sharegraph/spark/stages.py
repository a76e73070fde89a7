"""The pipeline's stages on Spark: the shared SQL through :class:`SparkCon`, plus the few
engine-specific pieces (docs/engines.md).

Shared (the DuckDB builders' own SQL, transpiled): the row-level validation and in-file
duplicate rules of ingest (``_validated_sql``, ``_outcome_sql``, ``_quarantine``), the
channel table, attribution's rules (``_attributed_orders_sql``, ``sharers_sql``, the first
paid line), ``graph.referral_edges`` (``build_referral_edges`` itself, unchanged).
Engine-specific: reading the files (Spark's CSV/Parquet readers instead of ``read_csv``),
row numbers, the staging insert, and attribution's last-click lookup (a range join and a
window instead of DuckDB's ASOF JOIN).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sharegraph.core.config import Settings
from sharegraph.core.contract import TABLES
from sharegraph.core.paths import is_uri
from sharegraph.core.sql import ident, literal
from sharegraph.spark.files import RemotePath
from sharegraph.spark.sql import SparkCon

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

class SparkIngestError(ValueError):
    """An input the Spark engine does not read (yet), or a broken one; names the file."""


@dataclass(frozen=True)
class SparkBatch:
    """One file loaded on Spark: the books of ``quarantine.batches``."""

    batch_id: str
    table: str
    source_file: str
    sha256: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_already_loaded: int
    """Exact copies of an earlier row of the same file (DuckDB counts them as already loaded)."""
    notes: str | None


#: DuckDB's default max_line_size (bytes), which the DuckDB engine reads CSV with
LINE_SIZE_MAX = 2_000_000
#: characters of a malformed line DuckDB keeps in its rejects (raw_value)
RAW_CHARS = 10_000
#: a field that is a quoted value followed by more text, e.g. '"fo"od' (DuckDB: UNQUOTED VALUE)
STRAY_QUOTE = '^"[^"]*"[^"]+$'
CORRUPT = "_sg_corrupt"


@dataclass(frozen=True)
class TextFrame:
    """A file as Spark read it: its mapped columns under their canonical names and, for CSV,
    every other field of the line (``_sg_f<i>``) and the corrupt record, which the line rules
    look at."""

    df: DataFrame
    columns: dict[str, str]
    """canonical name -> header"""
    notes: str | None
    raw_fields: list[str]
    """the CSV's columns in file order (canonical or ``_sg_f<i>`` names); empty for Parquet"""
    delimiter: str = ","


def _read_text_frame(sc: SparkCon, src, settings: Settings, mapping: dict[str, str] | None
                     ) -> TextFrame:
    """The file as one VARCHAR column per mapped canonical name, in file order.

    CSV is read with every column a string by Spark's parser in PERMISSIVE mode, keeping a
    line with the wrong number of fields in ``_sg_corrupt`` (quarantined as ``field_count``,
    as on the DuckDB engine); UTF-8 or GBK/GB18030 (Spark decodes it: no transcoded copy).
    multiLine: a quoted field may hold a line break, as DuckDB reads it; the price is one
    task per CSV file (deliver large exports as many files, or as Parquet).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    from sharegraph.ingest.sources import csv_header, detect_encoding, map_headers

    table = TABLES[src.table]
    path = str(src.path)
    if src.fmt == "csv":
        encoding = detect_encoding(src, settings.encoding)
        charset = "UTF-8" if encoding in ("utf-8", "utf-8-sig") else encoding.upper()
        delim, headers = csv_header(src.path, src, "utf-8-sig" if charset == "UTF-8" else encoding)
        header_map = map_headers(headers, table, mapping, src.path)
        # a mapped column is read under its canonical name, so the rows need no renaming
        # projection (Catalyst's constraint sets over the validation SQL's many references to
        # renamed columns ran a 1 GB driver out of memory); the others as _sg_f<i>
        canonical = {h: c for c, h in header_map.columns.items()}
        raw = [canonical.get(h, f"_sg_f{i}") for i, h in enumerate(headers)]
        schema = StructType([StructField(r, StringType()) for r in raw]
                            + [StructField(CORRUPT, StringType())])
        df = sc.spark.read.csv(path, schema=schema, header=True, sep=delim, quote='"',
                               escape='"', mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT,
                               encoding=charset, multiLine=True, enforceSchema=True,
                               ignoreLeadingWhiteSpace=False, ignoreTrailingWhiteSpace=False,
                               nullValue=None, emptyValue="")
        return TextFrame(df, header_map.columns, header_map.notes(), raw, delim)
    if src.fmt != "parquet":
        raise SparkIngestError(f"{path}: {src.fmt} input is not read on the Spark engine yet")
    df = sc.spark.read.parquet(path)
    header_map = map_headers(df.columns, table, mapping, src.path)
    df = df.select(*[F.col(f"`{h}`").cast("string").alias(c)
                     for c, h in header_map.columns.items()])
    return TextFrame(df, header_map.columns, header_map.notes(), [])


def _line_rejects(sc: SparkCon, frame: TextFrame, numbered: DataFrame) -> int:
    """Temp view ``_sg_lines`` (line, source_row, rule, csv_line, error) of the malformed CSV
    lines, with DuckDB's rules and messages (``ingest.load.LINE_RULES``), and ``_sg_rows``:
    the other rows. Returns the number of malformed lines.

    The raw line is the corrupt record Spark kept, or the fields joined by the delimiter.
    Fields are counted on the driver with Python's csv module, for malformed lines only.
    """
    import csv

    from pyspark.sql import functions as F

    if not frame.raw_fields:
        sc.register("_sg_rows", numbered, checkpoint=False)
        return 0
    fields = [F.col(f"`{r}`") for r in frame.raw_fields]
    line = F.coalesce(F.col(CORRUPT), F.concat_ws(frame.delimiter, *fields))
    stray = F.exists(F.array(*fields), lambda v: v.rlike(STRAY_QUOTE))
    rule = (F.when(F.col(CORRUPT).isNotNull(), F.lit("field_count"))
            .when(F.octet_length(line) > LINE_SIZE_MAX, F.lit("line_too_long"))
            .when(stray, F.lit("malformed_quotes")))
    marked = numbered.withColumn("_sg_rule", rule).localCheckpoint(eager=True)
    bad = marked.where("_sg_rule IS NOT NULL").select(
        "source_row", F.col("_sg_rule").alias("rule"), line.alias("csv_line"),
        F.octet_length(line).alias("size"))
    rows = bad.collect()
    n_fields = len(frame.raw_fields)

    def error(r) -> str:
        if r["rule"] == "field_count":
            found = len(next(csv.reader([r["csv_line"]], delimiter=frame.delimiter)))
            return f"Expected Number of Columns: {n_fields} Found: {found}"
        if r["rule"] == "line_too_long":
            return (f"Maximum line size of {LINE_SIZE_MAX} bytes exceeded. "
                    f"Actual Size:{r['size']} bytes.")
        return "Value with unterminated quote found."

    lines = [(r["source_row"] + 1, r["source_row"], r["rule"], r["csv_line"][:RAW_CHARS], error(r))
             for r in rows]
    sc.register("_sg_lines", sc.spark.createDataFrame(
        lines, "line BIGINT, source_row BIGINT, rule STRING, csv_line STRING, error STRING"))
    sc.register("_sg_rows", marked.where("_sg_rule IS NULL").select(
        "source_row", *frame.columns), checkpoint=False)
    return len(lines)


def _numbered(df: DataFrame) -> DataFrame:
    """``source_row`` (1-based data row number in file order) without a global sort: rows are
    counted per input partition (one small job) and each partition offset by the rows
    before it, so the numbering scales with the partitions (docs/scale-out.md)."""
    from pyspark.sql import functions as F

    mid = df.select("*", F.spark_partition_id().alias("_pid"),
                    F.monotonically_increasing_id().alias("_mid")).localCheckpoint(eager=True)
    counts = sorted(mid.groupBy("_pid").count().collect())
    offsets, total = {}, 0
    for pid, n in counts:
        offsets[pid] = total
        total += n
    start = F.lit(0)
    for pid, off in offsets.items():
        start = F.when(F.col("_pid") == pid, F.lit(off)).otherwise(start)
    # within a partition monotonically_increasing_id counts up by one from pid << 33
    pos = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), 33)
    return mid.select((start + pos + 1).cast("long").alias("source_row"), *df.columns)


def load_staging(sc: SparkCon, input_dir: str | Path, settings: Settings,
                 now: datetime | None = None) -> list[SparkBatch]:
    """staging.* and quarantine.{rejected_rows,batches} from the input files, on Spark.

    The same validation SQL as ``sharegraph.ingest.load`` (row-level rules, then in-file
    duplicates and key conflicts), one batch per file, tables in the DuckDB engine's order.
    First-load semantics: the Spark engine builds the warehouse from scratch, so there is no
    already-loaded row, status update or conflict with a loaded row.
    """
    from sharegraph.ingest.load import (
        LOAD_ORDER,
        _outcome_sql,
        _quarantine,
        _validated_sql,
        build_channels,
        check_reject_rate,
        quarantine_lines,
        vocabulary_for,
    )
    from sharegraph.ingest.sources import discover, file_sha256, load_mapping, require_tables

    root = RemotePath.of(str(input_dir)) if is_uri(input_dir) else Path(input_dir)
    found = discover(root)
    require_tables(found, input_dir)
    mapping = load_mapping(root)
    vocab = vocabulary_for(settings, mapping)
    started = now or datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    _empty_tables(sc)
    batches: list[SparkBatch] = []
    for name in LOAD_ORDER:
        table = TABLES[name]
        for src in found[name]:
            log.info("loading %s", src.path.name)
            frame = _read_text_frame(sc, src, settings, mapping.headers.get(name))
            try:
                n_lines = _line_rejects(sc, frame, _numbered(frame.df))
            except Exception as exc:  # a parse error of Spark's reader, as a Py4J error
                first = " ".join(str(exc).split())[:300]
                raise SparkIngestError(f"{src.path}: cannot read as {src.fmt} on Spark: {first}"
                                       ) from None
            sc.execute(_validated_sql(table, set(frame.columns), settings, started, "_sg_rows",
                                      "_sg_v", True, vocab))
            sc.execute(_outcome_sql(table, "_sg_v", "_sg_outcome", True, False))
            sha = file_sha256(src.path)
            batch_id = f"{started:%Y%m%dT%H%M%S%f}-{name}-{sha[:10]}"
            stamp = f"{literal(f'{started:%Y-%m-%d %H:%M:%S.%f}')}::TIMESTAMP"
            _quarantine(sc, table, src.path.name, batch_id, stamp, "_sg_v", "_sg_outcome", 0)
            if n_lines:  # numbered among all records already: nothing to shift
                quarantine_lines(sc, table, src.path.name, batch_id, stamp, "_sg_lines")
            cols = table.column_names
            sc.execute(
                f"""INSERT INTO staging.{name}
                SELECT {', '.join(f'{ident("t_" + c)} AS {ident(c)}' for c in cols)},
                       {literal(src.path.name)} AS source_file, source_row,
                       {literal(batch_id)} AS batch_id, {stamp} AS loaded_at
                FROM _sg_v WHERE err_rule IS NULL
                  AND source_row NOT IN (SELECT source_row FROM _sg_outcome)""")
            n_rows, n_bad = sc.execute("SELECT count(*), count(err_rule) FROM _sg_v").fetchone()
            counts = dict(sc.execute(
                "SELECT outcome, count(*) FROM _sg_outcome GROUP BY outcome").fetchall())
            n_read = n_rows + n_lines
            quarantined = n_bad + counts.get("conflict_in_file", 0) + n_lines
            seen = counts.get("duplicate_in_file", 0)
            loaded = n_read - quarantined - seen
            batch = SparkBatch(batch_id, name, src.path.name, sha, n_read, loaded, quarantined,
                               seen, frame.notes)
            check_reject_rate(_as_batch_result(batch), settings, src.path)
            batches.append(batch)
            log.info("%s -> staging.%s on Spark: read %d, loaded %d, quarantined %d",
                     src.path.name, name, n_read, loaded, quarantined)
            for t in ("_sg_rows", "_sg_lines", "_sg_v", "_sg_outcome"):
                sc.execute(f"DROP TABLE IF EXISTS {t}")
    _batches_table(sc, batches, started)
    build_channels(sc, vocab)  # ingest's own builder, through SparkCon
    return batches


def _as_batch_result(b: SparkBatch):
    from sharegraph.ingest.load import BatchResult

    return BatchResult(b.batch_id, b.table, b.source_file, b.rows_read, b.rows_loaded,
                       b.rows_quarantined, b.rows_already_loaded)


def _empty_tables(sc: SparkCon) -> None:
    """Empty staging.* and quarantine.rejected_rows with the warehouse's own column types
    (from a throwaway in-memory DuckDB with the schema), so a table without a file exists
    and INSERTs append to the right columns."""
    import duckdb

    from sharegraph.core.warehouse import ensure_schema

    mem = duckdb.connect()
    try:
        ensure_schema(mem)
        for qualified in [f"staging.{t}" for t in TABLES] + ["quarantine.rejected_rows"]:
            cols = mem.execute(f"DESCRIBE {qualified}").fetchall()
            select = ", ".join(f"CAST(NULL AS {_spark_type(kind)}) AS `{c}`"
                               for c, kind, *_ in cols)
            sc.register(qualified, sc.spark.sql(f"SELECT {select} WHERE false"), checkpoint=False)
    finally:
        mem.close()


def _spark_type(duck: str) -> str:
    duck = duck.upper()
    if duck.startswith("DECIMAL"):
        return duck
    return {"VARCHAR": "STRING", "INTEGER": "INT", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE",
            "BOOLEAN": "BOOLEAN", "TIMESTAMP": "TIMESTAMP_NTZ", "DATE": "DATE",
            "SMALLINT": "SMALLINT", "FLOAT": "FLOAT"}.get(duck, "STRING")


def _batches_table(sc: SparkCon, batches: list[SparkBatch], finished: datetime) -> None:
    rows = [(b.batch_id, b.table, b.source_file, b.sha256, b.rows_read,
             b.rows_loaded, b.rows_quarantined, b.rows_already_loaded, finished, finished, 0,
             b.notes)
            for b in batches]
    schema = ("batch_id STRING, table_name STRING, source_file STRING, file_sha256 STRING, "
              "rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, "
              "rows_already_loaded BIGINT, started_at TIMESTAMP_NTZ, finished_at TIMESTAMP_NTZ, "
              "rows_updated BIGINT, notes STRING")
    sc.register("quarantine.batches", sc.spark.createDataFrame(rows, schema))
