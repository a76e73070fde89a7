"""Daily-run benchmark: a day's export on top of a built warehouse vs the full run of that base.

    python benchmarks/bench_daily.py --world DIR [--cut 0.99] [--runs 3] [--check]
    python benchmarks/bench_daily.py --orders 1000000 --people 200000     # generate one first
    python benchmarks/bench_daily.py --world DIR --days 30 --cut 0.7 --runs 1   # a month of days
    python benchmarks/bench_daily.py --real beibei --check    # real data (../shared/data/real)

A generated world is cut by time: the base holds the orders placed up to the ``--cut``
quantile of ``ordered_at`` and the share events up to the same instant (with every product,
agent and group buy); the tail is split into ``--days`` daily files at evenly spaced
quantiles, each with the orders and share events of its interval. One repeat is: a fresh
directory, ``sharegraph run`` on the base (the full run), then ``sharegraph run`` on each day
into the same warehouse, every one a fresh process. We report medians over ``--runs`` of the
base, of each day, their ratio, the seconds per stage of a day, and the size of the
warehouse files after each day (a daily update deletes and re-inserts rows; this shows what
that does to the file over many days).

``--check`` (first repeat): before the last day the warehouse is copied and its incremental
state dropped, so the copy rebuilds every table on the same data. After the day both must be
equal in every ``graph.*`` and ``marts.*`` table (EXCEPT ALL both ways). The rebuild's time
is reported beside the update's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
from bench_e2e import _peak, stage_seconds

ROOT = Path(__file__).resolve().parent.parent
TIMED = {"orders": "ordered_at", "share_events": "occurred_at"}
"""Files cut by time; the others (products, agents, group buys) go whole into the base."""


def split_days(world: Path, out: Path, cut: float, days: int) -> list[Path]:
    """Write ``out/base`` and ``out/day01``..: the base up to the ``cut`` quantile of order
    time, then ``days`` files of the tail at evenly spaced quantiles. Returns their folders.
    A ragged line (an export-shaped world has one) is kept, padded with empty fields."""
    con = duckdb.connect()
    orders = f"read_csv('{world / 'orders.csv'}', all_varchar = true, null_padding = true)"
    qs = [cut + (1 - cut) * i / days for i in range(days)]
    bounds = [r for r in con.execute(
        f"SELECT unnest(quantile_disc(ordered_at, {qs})) FROM {orders}").fetchall()]
    edges = [None, *(b[0] for b in bounds), None]  # base: (-inf, q0]; day i: (q_{i-1}, q_i]
    parts = [out / "base", *(out / f"day{i:02d}" for i in range(1, days + 1))]
    for part, lo, hi in zip(parts, edges[:-1], edges[1:], strict=True):
        part.mkdir(parents=True, exist_ok=True)
        for name, col in TIMED.items():
            if not (world / f"{name}.csv").exists():
                continue
            where = " AND ".join([*([f"{col} > '{lo}'"] if lo else []),
                                  *([f"{col} <= '{hi}'"] if hi else [])]) or "true"
            con.execute(f"COPY (SELECT * FROM read_csv('{world / name}.csv', all_varchar = true, null_padding = true) "
                        f"WHERE {where}) TO '{part / name}.csv' (HEADER)")
    for f in world.glob("*.csv"):
        if f.stem not in TIMED and not f.stem.startswith("truth"):
            shutil.copy(f, parts[0] / f.name)
    con.close()
    return parts


def _run(py: str, part: Path, warehouse: Path) -> tuple[float, float, str]:
    return _peak([py, "-m", "pipelines.cli", "run", "--input", str(part),
                  "--warehouse", str(warehouse)])


def _sizes_mib(warehouse: Path) -> float:
    """The published and the working file together (MiB)."""
    files = [warehouse, warehouse.with_name(f"{warehouse.stem}.working.duckdb")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def tables_differing(a: Path, b: Path) -> dict[str, tuple[int, int]]:
    """Every graph.* / marts.* table of warehouse ``a`` against ``b``: rows only in a, only in b."""
    con = duckdb.connect(str(a), read_only=True)
    con.execute(f"ATTACH '{b}' AS other (READ_ONLY)")
    tables = [r[0] for r in con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        f"WHERE database_name = '{a.stem}' AND schema_name IN ('graph', 'marts') ORDER BY 1"
    ).fetchall()]
    out = {t: con.execute(
        f"SELECT (SELECT count(*) FROM (FROM {t} EXCEPT ALL FROM other.{t})), "
        f"(SELECT count(*) FROM (FROM other.{t} EXCEPT ALL FROM {t}))").fetchone()
        for t in tables}
    con.close()
    return out


def _drop_state(warehouse: Path) -> None:
    from sharegraph.core.increments import STATE_TABLE

    con = duckdb.connect(str(warehouse.with_name(f"{warehouse.stem}.working.duckdb")))
    con.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")
    con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, help="a generated world (else one is generated)")
    ap.add_argument("--real", choices=("beibei", "ciao"),
                    help="instead of a generated world: a real dataset of ../shared/data/real, "
                         "as the tests write it (tests/realdata.py)")
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--cut", type=float, default=0.99,
                    help="quantile of order time where the base ends (default 0.99: a 1%% day)")
    ap.add_argument("--days", type=int, default=1, help="daily files the tail is split into")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--check", action="store_true",
                    help="first repeat: compare the last day's tables with a full rebuild")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "daily")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    py = sys.executable
    args.out.mkdir(parents=True, exist_ok=True)
    world = args.world or args.out / (args.real or "world")
    if args.real:
        from tests import realdata

        getattr(realdata, f"write_{args.real}")(world)
    elif not (world / "orders.csv").exists():
        subprocess.run([py, "-m", "pipelines.cli", "generate", "--out", str(world), "--orders",
                        str(args.orders), "--people", str(args.people), "--seed", "1"], check=True)
    base, *days = split_days(world, args.out / "split", args.cut, args.days)
    full, day_walls, day_stages, sizes, check = [], [], [], [], {}
    for rep in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            wh = Path(tmp) / "run" / "wh.duckdb"
            wall, rss, _ = _run(py, base, wh)
            full.append((wall, rss))
            print(f"run {rep + 1}: base (full run) {wall:.1f} s / {rss:.2f} GiB", flush=True)
            walls, mib = [], [_sizes_mib(wh)]
            for i, day in enumerate(days):
                if args.check and rep == 0 and i == len(days) - 1:
                    rebuilt = Path(tmp) / "rebuilt" / "wh.duckdb"
                    shutil.copytree(wh.parent, rebuilt.parent)
                    _drop_state(rebuilt)
                    os.sync()  # else the copy's writes are flushed during the timed day
                wall, rss, out = _run(py, day, wh)
                walls.append(wall)
                mib.append(_sizes_mib(wh))
                day_stages.append(stage_seconds(out))
                print(f"  {day.name}: {wall:.1f} s / {rss:.2f} GiB, files {mib[-1]:,.0f} MiB",
                      flush=True)
            day_walls.append(walls)
            sizes.append(mib)
            if args.check and rep == 0:
                check["rebuild_s"] = _run(py, days[-1], rebuilt)[0]
                differing = tables_differing(wh, rebuilt)
                check["tables"] = len(differing)
                check["differing"] = {t: d for t, d in differing.items() if d != (0, 0)}
                print(f"  check: {check['tables']} tables, the last day rebuilt in full took "
                      f"{check['rebuild_s']:.1f} s; differing: {check['differing'] or 'none'}",
                      flush=True)
    full_s = statistics.median(w for w, _ in full)
    per_day = [statistics.median(r[i] for r in day_walls) for i in range(len(days))]
    res = {
        "full_run_s": full_s,
        "full_run_peak_rss_gib": statistics.median(r for _, r in full),
        "day_s": per_day,
        "day_over_full": [d / full_s for d in per_day],
        "day_stage_s": {name: statistics.median(s.get(name, 0.0) for s in day_stages)
                        for name in day_stages[0]},
        "files_mib_after_each_day": [statistics.median(s[i] for s in sizes)
                                     for i in range(len(days) + 1)],
        **({"check": check} if check else {}),
    }
    print(json.dumps(res, indent=1))
    (args.out / "daily.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 1 if check.get("differing") else 0


if __name__ == "__main__":
    sys.exit(main())
