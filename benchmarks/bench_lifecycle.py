"""Benchmark: the lifecycle and integrity marts against the graph + influence stage (issue 15).

    python benchmarks/bench_lifecycle.py --world DIR [--repeats 3]      # ingest a world first
    python benchmarks/bench_lifecycle.py --db FILE [--repeats 3]        # a copy of a warehouse

One process, one DuckDB file, the library functions the Dagster assets call, in the order a
run calls them (assets/graph.py, assets/influence.py, assets/lifecycle.py):

1. ``--world``: ``ingest.load_inputs`` of the world's files into a fresh file in ``--work``
   (timed, not part of the ratio); ``--db``: a copy of an existing warehouse (staging.*
   loaded) in ``--work``; the original is never written.
2. Each repeat: the graph stage (attribution, share nodes, agent upline, people, referral
   edges, anomalies) and ``marts.agent_influence`` (timed: *graph + influence*), then
   ``agent_funnel``, ``agent_cohorts``, ``upline_quality`` and ``integrity_flags`` (timed:
   *marts*). The ratio is median(marts) / median(graph + influence); target <= 0.15.

The checks the assets run after each table and Dagster's own overhead are not timed on
either side. ``--marts-only`` builds the graph once and repeats only the marts (for profiling
the marts; no ratio). ``--save DIR`` writes the four marts of the last repeat to Parquet,
``--compare DIR`` asserts that they equal a saved set (EXCEPT ALL both ways on every
non-DOUBLE column, DOUBLE columns within ``--tol`` after a join on the table's key).
``--profile DIR`` writes DuckDB's JSON profile of every statement of the last marts repeat
(one file per statement, ``enable_profiling``) and prints the slowest statements.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import connect, ensure_schema
from sharegraph.graph import attribution
from sharegraph.graph.anomalies import build_anomalies
from sharegraph.graph.clicks import build_click_edges
from sharegraph.graph.people import build_people, build_referral_edges
from sharegraph.graph.shares import build_share_nodes
from sharegraph.graph.upline import build_agent_upline
from sharegraph.ingest import load as ingest
from sharegraph.metrics import influence, integrity, lifecycle
from sharegraph.metrics.cascades import build_cascades

Stage = tuple[str, Callable[[duckdb.DuckDBPyConnection, Settings], object]]

GRAPH_INFLUENCE: list[Stage] = [
    ("graph.attributed_orders", attribution.attribute_orders),
    ("graph.share_nodes", build_share_nodes),
    ("graph.click_edges", build_click_edges),
    ("graph.agent_upline", build_agent_upline),
    ("graph.people", build_people),
    ("graph.referral_edges", build_referral_edges),
    ("graph.anomalies", build_anomalies),
    ("marts.cascades", build_cascades),
    ("marts.agent_influence", influence.build_agent_influence),
]
MARTS: list[Stage] = [
    ("marts.agent_funnel", lifecycle.build_agent_funnel),
    ("marts.agent_cohorts", lifecycle.build_agent_cohorts),
    ("marts.upline_quality", lifecycle.build_upline_quality),
    ("marts.integrity_flags", integrity.build_integrity_flags),
]
KEYS = {
    "marts.agent_funnel": ["agent_id"],
    "marts.agent_cohorts": ["cohort_month", "months_since_join"],
    "marts.upline_quality": ["upline_id"],
    "marts.integrity_flags": ["person_id", "rule"],
}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_stages(con: duckdb.DuckDBPyConnection, s: Settings, stages: list[Stage],
               times: dict[str, list[float]]) -> float:
    """Run ``stages`` in order, append each one's seconds to ``times``; return the total."""
    total = 0.0
    for name, fn in stages:
        t = time.perf_counter()
        fn(con, s)
        dt = time.perf_counter() - t
        times.setdefault(name, []).append(dt)
        total += dt
        print(f"    {name:<28} {dt:7.2f} s", flush=True)
    return total


def save_marts(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for table in KEYS:
        con.execute(f"COPY {table} TO '{out / (table + '.parquet')}' (FORMAT parquet)")
    print(f"saved the four marts to {out}")


def compare_marts(con: duckdb.DuckDBPyConnection, ref: Path, tol: float) -> bool:
    """Every mart equals its saved copy: exact on non-DOUBLE columns (EXCEPT ALL both ways),
    DOUBLE columns within ``tol`` on rows matched by the key."""
    ok = True
    for table, key in KEYS.items():
        f = ref / (table + ".parquet")
        cols = con.execute(f"DESCRIBE {table}").fetchall()
        ref_cols = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM '{f}'").fetchall()]
        names = [c[0] for c in cols]
        if names != ref_cols:
            print(f"  {table}: columns differ: {names} vs {ref_cols}")
            ok = False
            continue
        exact = ", ".join(f'"{c[0]}"' for c in cols if c[1] != "DOUBLE")
        floats = [c[0] for c in cols if c[1] == "DOUBLE"]
        new_only = con.execute(f"SELECT count(*) FROM (SELECT {exact} FROM {table} "
                               f"EXCEPT ALL SELECT {exact} FROM '{f}')").fetchone()[0]
        old_only = con.execute(f"SELECT count(*) FROM (SELECT {exact} FROM '{f}' "
                               f"EXCEPT ALL SELECT {exact} FROM {table})").fetchone()[0]
        rows = con.execute(f"SELECT (SELECT count(*) FROM {table}), (SELECT count(*) FROM '{f}')"
                           ).fetchone()
        worst = 0.0
        if floats:
            on = " AND ".join(f'a."{k}" IS NOT DISTINCT FROM b."{k}"' for k in key)
            diffs = ", ".join(
                f'max(CASE WHEN a."{c}" IS NULL AND b."{c}" IS NULL THEN 0 '
                f'WHEN a."{c}" IS NULL OR b."{c}" IS NULL THEN 1e300 '
                f'WHEN isnan(a."{c}") AND isnan(b."{c}") THEN 0 '
                f'ELSE abs(a."{c}" - b."{c}") END)' for c in floats)
            got = con.execute(f"SELECT count(*), {diffs} FROM {table} a JOIN '{f}' b ON {on}"
                              ).fetchone()
            worst = max((x or 0.0) for x in got[1:])
            if got[0] != rows[0]:
                print(f"  {table}: {got[0]} of {rows[0]} rows matched by key {key}")
                ok = False
        good = new_only == 0 and old_only == 0 and rows[0] == rows[1] and worst <= tol
        ok = ok and good
        print(f"  {table}: {rows[0]} rows vs {rows[1]}; only new {new_only}, only saved {old_only}; "
              f"max |DOUBLE diff| {worst:.3g} -> {'identical' if good else 'DIFFERENT'}")
    return ok


def profiled_marts(con: duckdb.DuckDBPyConnection, s: Settings, out: Path | None) -> None:
    """One marts pass timing every statement, with DuckDB's JSON profile of each statement
    in ``out`` (None: wall times only, no profiling overhead); print the slowest ones."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for f in out.glob("*.json"):
            f.unlink()
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute("SET profiling_mode = 'standard'")
    seen: list[tuple[float, str, str]] = []
    original = duckdb.DuckDBPyConnection.execute
    counter = iter(range(10**6))

    class Tap:  # proxy: writes each statement's profile to its own file
        def __init__(self, inner: duckdb.DuckDBPyConnection, stage: str) -> None:
            self._inner, self._stage = inner, stage

        def execute(self, sql: str, *a, **k):
            i = next(counter)
            if out is not None:
                original(self._inner, f"SET profiling_output = '{out / f'{i:03d}.json'}'")
            # DuckDB finds Python tables named in the SQL in the calling frame only: register
            # the caller's Arrow tables for this statement
            frame = sys._getframe(1).f_locals
            names = [n for n, v in frame.items() if isinstance(v, pa.Table) and n in sql]
            for n in names:
                self._inner.register(n, frame[n])
            t = time.perf_counter()
            try:
                r = original(self._inner, sql, *a, **k)
            finally:
                for n in names:
                    self._inner.unregister(n)
            seen.append((time.perf_counter() - t, self._stage, " ".join(sql.split())[:150]))
            return r

        def sql(self, sql: str, *a, **k):  # a relation: materialize it here to time it
            t = time.perf_counter()
            r = self._inner.sql(sql, *a, **k).to_arrow_table()
            seen.append((time.perf_counter() - t, self._stage, " ".join(sql.split())[:150]))
            return self._inner.from_arrow(r)

        def __getattr__(self, name: str):
            return getattr(self._inner, name)

    for name, fn in MARTS:
        fn(Tap(con, name), s)  # type: ignore[arg-type]
    if out is not None:
        con.execute("PRAGMA disable_profiling")
    print("slowest statements of the timed marts pass:")
    for dt, stage, sql in sorted(seen, reverse=True)[:15]:
        print(f"  {dt:6.2f} s  {stage:<24} {sql}")


def summary(args: argparse.Namespace, times: dict[str, list[float]], gi_totals: list[float],
            mart_totals: list[float], loads: list[float]) -> None:
    """Print the medians and the ratio; write ``result.json`` in the work directory."""
    print("\nmedians over", args.repeats, "repeats:")
    for name, xs in times.items():
        print(f"  {name:<28} {statistics.median(xs):7.2f} s   ({', '.join(f'{x:.2f}' for x in xs)})")
    mm = statistics.median(mart_totals)
    result = {"marts_s": mart_totals, "marts_median_s": mm, "load_1min": loads,
              "peak_rss_gib": peak_rss_gib(), "stages": times}
    print(f"  {'marts (4)':<28} {mm:7.2f} s   ({', '.join(f'{x:.2f}' for x in mart_totals)})")
    if gi_totals:
        gm = statistics.median(gi_totals)
        print(f"  {'graph + influence':<28} {gm:7.2f} s   ({', '.join(f'{x:.2f}' for x in gi_totals)})")
        print(f"ratio marts / graph + influence: {mm / gm:.1%} (target <= 15%); per repeat "
              + ", ".join(f"{m / g:.1%}" for m, g in zip(mart_totals, gi_totals, strict=True)))
        result.update(graph_influence_s=gi_totals, graph_influence_median_s=gm, ratio=mm / gm)
    print(f"peak RSS {peak_rss_gib():.2f} GiB; load average (1 min) per repeat "
          + ", ".join(f"{x:.2f}" for x in loads))
    (args.work / "result.json").write_text(json.dumps(result, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--world", type=Path, help="a generated world / export directory to ingest")
    src.add_argument("--db", type=Path, help="an existing warehouse with staging.* (copied first)")
    ap.add_argument("--work", type=Path, default=Path("bench-out/lifecycle"),
                    help="scratch directory for the DuckDB file (default bench-out/lifecycle)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--marts-only", action="store_true",
                    help="build graph + influence once, then repeat only the marts (no ratio)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the scratch file of an earlier run (graph tables already built)")
    ap.add_argument("--save", type=Path, metavar="DIR", help="write the four marts to DIR/*.parquet")
    ap.add_argument("--compare", type=Path, metavar="DIR", help="assert the marts equal DIR/*.parquet")
    ap.add_argument("--tol", type=float, default=1e-12, help="DOUBLE tolerance of --compare")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="after the repeats, one more marts pass with per-statement JSON profiles")
    ap.add_argument("--statements", action="store_true",
                    help="after the repeats, one more marts pass timing each statement (no profiler)")
    args = ap.parse_args()

    s = Settings.load(None)
    args.work.mkdir(parents=True, exist_ok=True)
    db = args.work / "bench.duckdb"
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at start", flush=True)
    if not (args.reuse and db.exists()):
        for f in (db, db.with_suffix(".duckdb.wal")):
            f.unlink(missing_ok=True)
        if args.db:
            shutil.copy(args.db, db)
    con = connect(db, timezone=s.timezone)
    ensure_schema(con)
    if args.world and not args.reuse:
        t = time.perf_counter()
        ingest.load_inputs(con, args.world, s)
        con.execute("CHECKPOINT")
        print(f"ingest {time.perf_counter() - t:.1f} s (not in the ratio)", flush=True)
    sizes = con.execute("""SELECT (SELECT count(*) FROM staging.orders),
        (SELECT count(*) FROM staging.share_events), (SELECT count(*) FROM staging.agents)""").fetchone()
    print(f"staging: {sizes[0]:,} order lines, {sizes[1]:,} share events, {sizes[2]:,} agents")

    times: dict[str, list[float]] = {}
    gi_totals: list[float] = []
    mart_totals: list[float] = []
    loads: list[float] = []
    if args.marts_only and not args.reuse:
        print("graph + influence (once, not repeated):")
        run_stages(con, s, GRAPH_INFLUENCE, {})
        con.execute("CHECKPOINT")
    for r in range(args.repeats):
        print(f"repeat {r + 1} (load {os.getloadavg()[0]:.2f})", flush=True)
        loads.append(os.getloadavg()[0])
        if not args.marts_only:
            gi_totals.append(run_stages(con, s, GRAPH_INFLUENCE, times))
        mart_totals.append(run_stages(con, s, MARTS, times))
        print(f"  repeat {r + 1}: graph + influence "
              f"{gi_totals[-1] if gi_totals else float('nan'):.2f} s, marts {mart_totals[-1]:.2f} s",
              flush=True)

    if mart_totals:  # none with --repeats 0: only --save / --compare / --profile below
        summary(args, times, gi_totals, mart_totals, loads)
    ok = True
    if args.save:
        save_marts(con, args.save)
    if args.compare:
        ok = compare_marts(con, args.compare, args.tol)
        print("marts identical to", args.compare, "->", ok)
    if args.profile or args.statements:
        profiled_marts(con, s, args.profile)
    con.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
