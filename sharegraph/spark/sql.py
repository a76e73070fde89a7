"""The stages' DuckDB SQL on Spark: one SQL text, transpiled, never a second copy.

Most stages are DuckDB SQL strings that a builder passes to ``con.execute``. On Spark the
same builder runs unchanged against :class:`SparkCon`, a connection-shaped object that
transpiles every statement with sqlglot (dialect duckdb -> spark), maps ``schema.table`` to a
temp view ``schema__table``, and runs it with ``spark.sql``. ``CREATE [OR REPLACE] [TEMP]
TABLE t AS q`` becomes a checkpointed temp view; ``COMMENT ON`` is kept (the documentation
goes into the DuckDB warehouse with the table); ``DESCRIBE`` answers from the Spark schema.

What sqlglot gets wrong without an error is rewritten here to DuckDB's meaning (ordered
aggregates, NULLs in struct keys, division types, fmt-style ``format``, ... : the table in
docs/engines.md) or refused (``UntranslatableSQL``), so a stage that needs it must have an
engine-specific piece: ``len(...)`` (a list length becomes a string length), ``printf``,
``ASOF JOIN`` and ``read_csv`` (passed through unchanged). Builders that compute on the
driver (NumPy kernels) read results with ``fetchnumpy`` / ``to_arrow_table`` and hand arrays
back with ``register``, as on DuckDB. Every statement that runs through here is covered by a
parity test against DuckDB (tests/spark/test_parity.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from sharegraph.core.warehouse import SCHEMAS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class UntranslatableSQL(ValueError):
    """A DuckDB statement that sqlglot would translate silently wrong, or not at all."""


def view_name(qualified: str) -> str:
    """Temp view of a warehouse table on Spark: ``staging.orders`` -> ``staging__orders``."""
    return qualified.replace(".", "__")


def _refuse(tree: Any, sql: str) -> None:
    import sqlglot.expressions as exp

    for node in tree.walk():
        if type(node).__name__ in ("ReadCSV", "ReadParquet") or (
                isinstance(node, exp.Anonymous)
                and node.name.lower() in ("read_csv", "read_parquet", "read_csv_auto")):
            raise UntranslatableSQL(f"table functions do not translate: {sql[:200]}")
    if re.search(r"\bprintf\s*\(", sql, re.IGNORECASE):
        raise UntranslatableSQL("printf() becomes Java's Formatter (other %g and rounding at "
                                f"ties); print with core.sql.fixed: {sql[:200]}")
    if re.search(r"\blen\s*\(", sql, re.IGNORECASE):
        raise UntranslatableSQL(f"len() may be a list length (Spark: string length): {sql[:200]}")
    if re.search(r"\bASOF\b", sql, re.IGNORECASE):
        raise UntranslatableSQL(f"ASOF JOIN has no Spark translation: {sql[:200]}")


def _rename_tables(tree: Any) -> Any:
    """``schema.table`` of a warehouse schema -> the temp view ``schema__table``."""
    import sqlglot.expressions as exp

    def visit(node: Any) -> Any:
        if isinstance(node, exp.Table) and node.args.get("db") is not None:
            db = node.args["db"].name
            if db in SCHEMAS or db == "temp":
                name = node.name if db == "temp" else f"{db}__{node.name}"
                new = exp.Table(this=exp.to_identifier(name))
                if node.alias:
                    new.set("alias", node.args.get("alias"))
                return new
        return node

    return tree.transform(visit)


def _bind(tree: Any, params: Sequence[object]) -> Any:
    """Replace the ``?`` placeholders by literals, in order."""
    import sqlglot.expressions as exp

    values = list(params)

    def visit(node: Any) -> Any:
        if isinstance(node, exp.Placeholder):
            if not values:
                raise ValueError("more ? placeholders than parameters")
            v = values.pop(0)
            if v is None:
                return exp.Null()
            if isinstance(v, bool):
                return exp.Boolean(this=v)
            if isinstance(v, int | float):
                return exp.Literal.number(v)
            return exp.Literal.string(str(v))
        return node

    out = tree.transform(visit)
    if values:
        raise ValueError("fewer ? placeholders than parameters")
    return out


_INT_TYPES = ("INT", "BIGINT", "SMALLINT", "TINYINT")


def _spark_semantics(tree: Any) -> Any:
    """Rewrite the DuckDB functions sqlglot passes through, or translates with different
    meaning, into their Spark equivalents (each one covered by tests/spark/test_sql.py)."""
    import sqlglot
    import sqlglot.expressions as exp

    def spark(text: str) -> Any:
        return sqlglot.parse_one(text, read="spark")

    def visit(node: Any) -> Any:
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            args = node.expressions
            if name == "strlen":  # bytes, not characters
                return exp.Anonymous(this="octet_length", expressions=args)
            if name == "suffix":
                return exp.Anonymous(this="endswith", expressions=args)
            if name == "isfinite":
                x = args[0]
                return exp.paren(exp.and_(
                    exp.not_(exp.Anonymous(this="isnan", expressions=[x.copy()])),
                    exp.NEQ(this=exp.Abs(this=x.copy()),
                            expression=spark("CAST('Infinity' AS DOUBLE)"))))
            if name == "to_json" and len(args) == 1:
                # DuckDB writes a TIMESTAMP as '2026-01-01 10:00:00' (Spark: ISO with 'T' and
                # milliseconds); fractions of a second are not written (docs/engines.md)
                return exp.Anonymous(this="to_json", expressions=[args[0], spark(
                    "map('timestampNTZFormat', 'yyyy-MM-dd HH:mm:ss')")])
            if name == "fsum":  # compensated sum: an exact DECIMAL sum is as order-free
                wide = exp.Cast(this=args[0], to=exp.DataType.build("DECIMAL(38, 18)"))
                return exp.Cast(this=exp.Sum(this=wide), to=exp.DataType.build("DOUBLE"))
            if name == "hash":  # 64 bits, as DuckDB's: collisions as rare
                return exp.Anonymous(this="xxhash64", expressions=args)
            if name == "timezone" and len(args) == 2:
                # DuckDB: the instant as wall time in the zone; Spark (session zone UTC):
                # from_utc_timestamp of the instant, as TIMESTAMP_NTZ
                zone, value = args
                if isinstance(value, exp.TryCast | exp.Cast):
                    value = exp.TryCast(this=value.this,
                                        to=exp.DataType.build("TIMESTAMP_LTZ", dialect="spark"))
                return exp.Cast(this=exp.Anonymous(this="from_utc_timestamp",
                                                   expressions=[value, zone]),
                                to=exp.DataType.build("TIMESTAMP_NTZ", dialect="spark"))
        if isinstance(node, exp.Format):  # DuckDB's is fmt-style, Spark's printf-style
            fmt = node.this.transform(lambda n: exp.Literal.string(_printf_style(n.this))
                                      if isinstance(n, exp.Literal) and n.is_string else n)
            return exp.Anonymous(this="format_string", expressions=[fmt, *node.expressions])
        if isinstance(node, exp.RegexpFullMatch):  # RLIKE finds; full match needs anchors
            pattern = node.expression
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                raise UntranslatableSQL("regexp_full_match with a non-literal pattern")
            return exp.RegexpLike(this=node.this,
                                  expression=exp.Literal.string(f"^(?:{pattern.this})$"))
        if isinstance(node, exp.TryCast) and node.to.this.name in _INT_TYPES:
            # DuckDB rounds '2.0' / '2.5' to an integer; Spark's cast gives NULL for text
            # with a fraction: go through DECIMAL and round half away from zero, as DuckDB
            # (the range check: with ANSI off Spark wraps an out-of-range value around)
            bits = {"TINYINT": 7, "SMALLINT": 15, "INT": 31, "BIGINT": 63}[node.to.this.name]
            wide = exp.Round(this=exp.TryCast(this=node.this,
                                              to=exp.DataType.build("DECIMAL(38, 9)")))
            inside = exp.Between(this=wide.copy(), low=exp.Literal.number(-(2 ** bits)),
                                 high=exp.Literal.number(2 ** bits - 1))
            return exp.Case(ifs=[exp.If(this=inside, true=exp.Cast(this=wide, to=node.to))])
        if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.UBIGINT:
            return exp.DataType.build("BIGINT")
        if isinstance(node, exp.JSONObject):  # json_object(k, v, ...) -> to_json(struct)
            pairs = [exp.PropertyEQ(this=exp.to_identifier(kv.this.name), expression=kv.expression)
                     for kv in node.expressions]
            return exp.Anonymous(this="to_json", expressions=[exp.Struct(expressions=pairs)])
        if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.JSON:
            return node.this
        if isinstance(node, exp.ArrayAgg | exp.First) and isinstance(node.this, exp.Order):
            ordered = _sorted_list(node.this)  # sqlglot would drop the ORDER BY
            return spark(ordered if isinstance(node, exp.ArrayAgg)
                         else f"element_at({ordered}, 1)")
        if isinstance(node, exp.ArgMin | exp.ArgMax) and isinstance(node.expression, exp.Tuple):
            # DuckDB compares a NULL field of a struct key as the largest value, Spark as the
            # smallest: each field is preceded by "is it NULL" so both order them last
            fields = ", ".join(
                f"'n{i}', ({k.sql(dialect='spark')}) IS NULL, 'k{i}', {k.sql(dialect='spark')}"
                for i, k in enumerate(node.expression.expressions))
            node.set("expression", spark(f"named_struct({fields})"))
            return node
        if (isinstance(node, exp.Explode) and isinstance(node.this, exp.ArgMin | exp.ArgMax)
                and isinstance(node.this.this, exp.Struct)):
            # unnest(arg_min({...}, key)): the struct's fields as columns (Spark: inline)
            return exp.Anonymous(this="inline", expressions=[exp.Array(expressions=[node.this])])
        if (isinstance(node, exp.Sub) and _is_date(node.this) and _is_date(node.expression)):
            # DuckDB: DATE - DATE is an integer of days (Spark: an interval)
            return exp.Anonymous(this="datediff", expressions=[node.this, node.expression])
        if isinstance(node, exp.Div) and not (isinstance(node.this, exp.Cast)
                                              and node.this.to.this == exp.DataType.Type.DOUBLE):
            # DuckDB's "/" gives a DOUBLE whatever the operands (DECIMALs included); Spark keeps
            # a DECIMAL quotient DECIMAL: the dividend is made a DOUBLE, as DuckDB does
            node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE")))
            return node
        if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
            node.set("materialized", None)  # a planner hint; Spark has no such keyword
        if (isinstance(node, exp.Window) and isinstance(node.this, exp.RowNumber)
                and not node.args.get("order") and not node.args.get("partition_by")
                and not node.args.get("alias")):
            # DuckDB numbers rows in no particular order; Spark insists on an ORDER BY
            node.set("order", exp.Order(expressions=[exp.Ordered(
                this=exp.Anonymous(this="monotonically_increasing_id", expressions=[]))]))
        return node

    # a rewritten node's arguments may hold more to rewrite: repeat until nothing changes
    for _ in range(5):
        before = tree.sql(dialect="spark")
        tree = tree.transform(visit)
        if tree.sql(dialect="spark") == before:
            return tree
    return tree


def _sorted_list(order: Any) -> str:
    """Spark SQL for DuckDB's ``list(v ORDER BY k1 [DESC], ...)``: the values collected as
    structs with their keys, sorted by a comparator that follows each key's direction and
    DuckDB's NULLS LAST default, then unwrapped (``collect_list`` alone has no order, and
    skips NULL values where DuckDB keeps them; a struct is never NULL)."""
    import sqlglot.expressions as exp

    value = order.this
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        value = value.expressions[0]
    fields, compare = [], []
    for i, key in enumerate(order.expressions):
        k = key.this.sql(dialect="spark")
        fields.append(f"'n{i}', ({k}) IS NULL, 'k{i}', {k}")
        nulls = -1 if key.args.get("nulls_first") else 1
        d = -1 if key.args.get("desc") else 1
        compare.append(f"WHEN l.n{i} <> r.n{i} THEN IF(l.n{i}, {nulls}, {-nulls}) "
                       f"WHEN l.k{i} < r.k{i} THEN {-d} WHEN l.k{i} > r.k{i} THEN {d}")
    items = f"collect_list(named_struct({', '.join(fields)}, 'v', {value.sql(dialect='spark')}))"
    if distinct:  # DuckDB requires the keys to be in the argument: distinct structs = values
        items = f"array_distinct({items})"
    return (f"transform(array_sort({items}, (l, r) -> CASE {' '.join(compare)} ELSE 0 END), "
            f"s -> s.v)")


_FMT_FIELD = re.compile(r"\{(:[^}]*)?\}")
_FMT_SPECS = {None: "%s", ":,": "%,d"}


def _printf_style(fmt: str) -> str:
    """A DuckDB ``format`` string as Java printf: ``{}``, ``{:.Nf}``, ``{:,}`` (integers).
    Other specs are refused. Rounding of a value exactly halfway between two printed
    digits may differ (docs/engines.md)."""
    def field(m: re.Match) -> str:
        spec = m.group(1)
        if spec in _FMT_SPECS:
            return _FMT_SPECS[spec]
        if re.fullmatch(r":\.\d+f", spec):
            return "%" + spec[1:]
        raise UntranslatableSQL(f"format spec {m.group(0)!r} has no Spark translation")

    out, pos = [], 0
    for m in _FMT_FIELD.finditer(fmt):
        out += [fmt[pos:m.start()].replace("%", "%%"), field(m)]
        pos = m.end()
    out.append(fmt[pos:].replace("%", "%%"))
    return "".join(out)


def _is_date(node: Any) -> bool:
    import sqlglot.expressions as exp

    node = node.unnest() if isinstance(node, exp.Paren) else node
    return isinstance(node, exp.Cast | exp.TryCast) and node.to.this == exp.DataType.Type.DATE


def to_spark(sql: str, params: Sequence[object] | None = None) -> str:
    """One DuckDB statement as Spark SQL, warehouse tables as temp views.

    Raises :class:`UntranslatableSQL` for the constructs sqlglot translates silently wrong.
    """
    import sqlglot

    tree = sqlglot.parse_one(sql, read="duckdb")
    _refuse(tree, sql)
    tree = _spark_semantics(_rename_tables(tree))
    if params:
        tree = _bind(tree, params)
    return tree.sql(dialect="spark")


@dataclass
class Result:
    """What ``execute`` returns: the DuckDB result methods the builders use."""

    df: DataFrame | None
    rows: list[tuple] | None = None

    def _rows(self) -> list[tuple]:
        if self.rows is None:
            self.rows = [tuple(r) for r in self.df.collect()] if self.df is not None else []
        return self.rows

    def fetchall(self) -> list[tuple]:
        return self._rows()

    def fetchone(self) -> tuple | None:
        rows = self._rows()
        return rows[0] if rows else None

    def arrow(self) -> pa.Table:
        return self.df.toArrow()

    to_arrow_table = arrow

    def pl(self) -> pl.DataFrame:
        return pl.from_arrow(self.arrow())

    def fetchnumpy(self) -> dict[str, object]:
        table = self.arrow()
        return {name: table.column(name).to_numpy() for name in table.column_names}


_CREATE_AS = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?(?:TABLE|VIEW)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?([\w.\"]+)\s+AS\s+(.*)$", re.IGNORECASE | re.DOTALL)
_CREATE_DDL = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+)?TABLE\s+([\w.\"]+)\s*\(",
                         re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+([\w.\"]+)\s+(?!\()(.*)$",
                     re.IGNORECASE | re.DOTALL)
_DROP = re.compile(r"^\s*DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?([\w.\"]+)\s*$", re.IGNORECASE)
_COMMENT = re.compile(r"^\s*COMMENT\s+ON\s+(TABLE|COLUMN)\s+([\w.\"]+)\s+IS\s+(.*)$",
                      re.IGNORECASE | re.DOTALL)
_DESCRIBE = re.compile(r"^\s*DESCRIBE\s+(.*)$", re.IGNORECASE | re.DOTALL)
_SCHEMA = re.compile(r"^\s*CREATE\s+SCHEMA\b", re.IGNORECASE)
_TRANSACTION = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|ABORT)\b", re.IGNORECASE)
_TXID = re.compile(r"^\s*SELECT\s+txid_current\(\)\s*$", re.IGNORECASE)


@dataclass
class SparkCon:
    """A DuckDB-connection-shaped handle on a SparkSession for the stage builders.

    Tables the builders create live as checkpointed temp views named ``schema__table``;
    ``tables`` lists the warehouse (schema-qualified, non-temp) ones in creation order and
    ``comments`` their COMMENT ON text, so the engine can write them out with their docs.
    """

    spark: SparkSession
    tables: list[str] = field(default_factory=list)
    comments: dict[str, dict[str, str]] = field(default_factory=dict)
    statements: list[str] = field(default_factory=list)
    """Every Spark SQL statement run (for the parity tests and debugging)."""
    views: set[str] = field(default_factory=set)
    """every temp view this handle created (``close`` drops them)"""
    overrides: dict[str, str] = field(default_factory=dict)
    """Engine-specific pieces: ``CREATE ... TABLE <name> AS`` of a builder runs this SQL
    (DuckDB dialect, translated like any other) instead of the builder's query."""

    def register(self, qualified: str, df: DataFrame | pl.DataFrame | pa.Table, *,
                 checkpoint: bool = True) -> DataFrame:
        """Make ``df`` the table ``qualified`` (a warehouse name or a temp name).

        A polars frame or an Arrow table is what a builder computed on the driver (a NumPy
        kernel's output, ``con.register`` as on DuckDB): it becomes a Spark DataFrame.
        """
        if isinstance(df, pl.DataFrame):
            df = df.to_arrow(compat_level=pl.CompatLevel.oldest())  # no string views for Spark
        if isinstance(df, pa.Table):
            df = self.spark.createDataFrame(df)
        if checkpoint:
            df = df.localCheckpoint(eager=True)
        df.createOrReplaceTempView(view_name(_plain(qualified)))
        self.views.add(view_name(_plain(qualified)))
        if "." in _plain(qualified) and _plain(qualified) not in self.tables:
            self.tables.append(_plain(qualified))
        return df

    def close(self) -> None:
        """Drop every view this handle made and let Spark free their checkpoints (a local
        checkpoint's blocks go when its RDD is garbage-collected on the driver)."""
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        self.views.clear()
        self.spark.sparkContext._jvm.System.gc()

    def cursor(self) -> SparkCon:
        return self

    def has_table(self, qualified: str) -> bool:
        """``core.sql.table_exists`` on Spark: a warehouse table is a temp view."""
        return self.spark.catalog.tableExists(view_name(_plain(qualified)))

    def unregister(self, qualified: str) -> None:
        """Drop a table or view (DuckDB's ``unregister`` and ``DROP``)."""
        name = view_name(_plain(qualified))
        self.spark.catalog.dropTempView(name)
        self.views.discard(name)

    def table(self, qualified: str) -> DataFrame:
        return self.spark.table(view_name(_plain(qualified)))

    def sql(self, sql: str, params: Sequence[object] | None = None) -> Result:
        return self.execute(sql, params)

    def execute(self, sql: str, params: Sequence[object] | None = None) -> Result:
        text = sql.strip().rstrip(";")
        if _SCHEMA.match(text) or _TRANSACTION.match(text):
            return Result(None, [])  # Spark has no transactions: the engine writes at the end
        if _TXID.match(text):  # one_transaction(): "already inside one", nothing to open
            return Result(None, [(0,)])
        if m := _COMMENT.match(text):
            import sqlglot

            target = _plain(m.group(2))
            value = sqlglot.parse_one(m.group(3), read="duckdb").name
            if m.group(1).upper() == "TABLE":
                self.comments.setdefault(target, {})[""] = value
            else:
                table, column = target.rsplit(".", 1)
                self.comments.setdefault(table, {})[column] = value
            return Result(None, [])
        if m := _DESCRIBE.match(text):
            target = m.group(1).strip()
            if re.fullmatch(r"[\w.\"]+", target):
                df = self.table(target)
            else:
                df = self._run(target, params)
            return Result(None, [(f.name, f.dataType.simpleString().upper(), "YES")
                                 for f in df.schema.fields])
        if m := _DROP.match(text):
            self.unregister(m.group(1))
            return Result(None, [])
        if m := _CREATE_AS.match(text):
            query = self.overrides.get(_plain(m.group(1)), m.group(2))
            self.register(m.group(1), self._run(query, params))
            return Result(None, [])
        if m := _CREATE_DDL.match(text):  # create_table_as's typed DDL: the INSERT defines it
            self.spark.catalog.dropTempView(view_name(_plain(m.group(1))))
            return Result(None, [])
        if m := _INSERT.match(text):
            new = self._run(m.group(2), params)
            name = view_name(_plain(m.group(1)))
            if self.spark.catalog.tableExists(name):  # append, by position as in DuckDB
                old = self.spark.table(name)
                new = new.toDF(*old.columns)
                new = old.union(new.select(*[new[f.name].cast(f.dataType) for f in
                                             old.schema.fields]))
            self.register(m.group(1), new)
            return Result(None, [])
        return Result(self._run(text, params))

    def _run(self, sql: str, params: Sequence[object] | None) -> DataFrame:
        spark_sql = to_spark(sql, params)
        self.statements.append(spark_sql)
        return self.spark.sql(spark_sql)


def _plain(name: str) -> str:
    return name.replace('"', "")
