"""Ingest benchmark: validated load_inputs vs a bare DuckDB read of the same CSV files.

    python benchmarks/bench_ingest.py --input DIR [--runs 3]
    python benchmarks/bench_ingest.py --synthesize 1000000 --input /tmp/bench-in

Each measurement runs in a fresh process (so DuckDB caches and allocator state do not carry
over) writing a fresh DuckDB file; we report the median wall time and the median peak RSS
(ru_maxrss of that process) over ``--runs`` runs. The peer is
``CREATE TABLE AS SELECT * FROM read_csv(file)`` per input file (DuckDB's own sniffing and
typing, no validation): the floor any validated load is compared with (PERFORMANCE.md: bare
21.5 s, validated one-pass 47 s at 10M orders + 20M events).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(mode: str, input_dir: str, db: str) -> None:
    sys.path.insert(0, str(ROOT))
    import duckdb

    t0 = time.perf_counter()
    if mode == "bare":
        from sharegraph.ingest.sources import discover

        con = duckdb.connect(db)
        for table, srcs in discover(input_dir).items():
            for i, src in enumerate(srcs):
                reader = {"csv": "read_csv", "parquet": "read_parquet",
                          "jsonl": "read_json"}[src.fmt]
                con.execute(f"CREATE TABLE {table}_{i} AS SELECT * FROM {reader}('{src.path}')")
        rows = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                   for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
    else:
        from sharegraph.core.config import Settings
        from sharegraph.core.warehouse import connect
        from sharegraph.ingest.load import load_inputs

        con = connect(db)
        rows = sum(r.rows_loaded for r in load_inputs(con, input_dir, Settings()))
    con.close()
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # KiB -> GiB
    print(json.dumps({"wall_s": wall, "peak_rss_gib": rss, "rows": rows}))


def measure(mode: str, input_dir: Path, runs: int) -> dict[str, float]:
    walls, rsss, rows = [], [], 0
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--input", str(input_dir),
                 "--db", str(Path(tmp) / "w.duckdb")],
                check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            walls.append(r["wall_s"])
            rsss.append(r["peak_rss_gib"])
            rows = r["rows"]
    return {"wall_s": statistics.median(walls), "peak_rss_gib": statistics.median(rsss),
            "rows": rows, "runs": walls}


def synthesize(out: Path, orders: int) -> None:
    """Orders + 2x share events CSVs of the contract's shape, with ~0.1% defects."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    people = max(orders // 5, 10)
    con.execute(f"""COPY (
        SELECT 'O' || i AS order_id, 'U' || (hash(i) % {people}) AS customer_id,
            strftime(TIMESTAMP '2026-01-01' + INTERVAL (i % 20000000) SECOND, '%Y-%m-%d %H:%M:%S')
                AS ordered_at,
            'P' || (hash(i * 7) % 5000) AS product_id, 'cat' || (hash(i * 7) % 5000 % 200) AS category,
            CASE WHEN i % 1000 = 0 THEN '0' ELSE (1 + i % 3)::VARCHAR END AS quantity,
            CASE WHEN i % 997 = 0 THEN 'NaN' ELSE ((i % 50000) / 100.0)::DECIMAL(18,2)::VARCHAR END
                AS amount,
            ['wechat', 'moments', 'taobao', 'jd'][1 + i % 4] AS channel,
            CASE WHEN i % 3 = 0 THEN 'S' || (i * 2 % {2 * orders}) END AS share_id,
            'paid' AS status
        FROM range({orders}) t(i)) TO '{out / "orders.csv"}' (HEADER)""")
    con.execute(f"""COPY (
        SELECT 'E' || i AS event_id, CASE WHEN i % 2 = 0 THEN 'share' ELSE 'click' END AS event_type,
            'S' || (i - i % 2) AS share_id, 'U' || (hash(i) % {people}) AS actor_id,
            strftime(TIMESTAMP '2026-01-01' + INTERVAL (i % 20000000) SECOND, '%Y-%m-%d %H:%M:%S')
                AS occurred_at,
            'moments' AS channel
        FROM range({2 * orders}) t(i)) TO '{out / "share_events.csv"}' (HEADER)""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--synthesize", type=int, metavar="ORDERS",
                    help="first write synthetic orders.csv + share_events.csv of this size")
    ap.add_argument("--child", choices=("bare", "ingest"), help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, str(a.input), a.db)
        return
    if a.synthesize:
        synthesize(a.input, a.synthesize)
    size = sum(p.stat().st_size for p in a.input.iterdir() if p.is_file()) / 2**20
    print(f"input {a.input} ({size:.0f} MiB), median of {a.runs} fresh processes each")
    bare = measure("bare", a.input, a.runs)
    ing = measure("ingest", a.input, a.runs)
    print(f"{'approach':44} {'wall s':>8} {'peak RSS GiB':>13} {'rows':>12}")
    for name, r in (("bare CREATE TABLE AS SELECT * FROM read_csv", bare),
                    ("sharegraph load_inputs (validated)", ing)):
        print(f"{name:44} {r['wall_s']:>8.2f} {r['peak_rss_gib']:>13.2f} {r['rows']:>12}")
    print(f"ratio validated / bare: {ing['wall_s'] / bare['wall_s']:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
