"""Table equality between two DuckDB warehouses: same columns and types, same rows, floats
within a tolerance (the Spark parity tests)."""

from __future__ import annotations

import math

import duckdb

#: columns that hold the load's wall-clock time or an id made from it: equal only in form
VOLATILE = {"batch_id", "loaded_at", "rejected_at", "started_at", "finished_at", "flagged_at"}


def table_diff(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, table: str,
               tol: float = 1e-9) -> list[str]:
    """What differs between ``table`` in ``a`` and in ``b`` (empty when equal)."""
    ta = a.execute(f"DESCRIBE {table}").fetchall()
    tb = b.execute(f"DESCRIBE {table}").fetchall()
    types_a = {r[0]: r[1] for r in ta}
    types_b = {r[0]: r[1] for r in tb}
    problems = []
    if list(types_a) != list(types_b):
        problems.append(f"{table}: columns {list(types_a)} vs {list(types_b)}")
        return problems
    bad_types = {c: (types_a[c], types_b[c]) for c in types_a if types_a[c] != types_b[c]}
    if bad_types:
        problems.append(f"{table}: types differ {bad_types}")
    cols = [c for c in types_a if c not in VOLATILE]
    sel = ", ".join(f'"{c}"' for c in cols)
    order = ", ".join(f'"{c}" NULLS FIRST' for c in cols)
    ra = a.execute(f"SELECT {sel} FROM {table} ORDER BY {order}").fetchall()
    rb = b.execute(f"SELECT {sel} FROM {table} ORDER BY {order}").fetchall()
    if len(ra) != len(rb):
        problems.append(f"{table}: {len(ra)} rows vs {len(rb)}")
        return problems
    for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
        for c, u, v in zip(cols, x, y, strict=True):
            if isinstance(u, float) and isinstance(v, float):
                same = (math.isnan(u) and math.isnan(v)) or abs(u - v) <= tol * max(1.0, abs(u))
            else:
                same = u == v
            if not same:
                problems.append(f"{table} row {i} column {c}: {u!r} vs {v!r}")
                break
        if len(problems) > 5:
            break
    return problems
