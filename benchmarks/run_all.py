"""Run every scale benchmark in one go and collect their reports in bench-out/results.md.

    python benchmarks/run_all.py            # full scale: 10M orders + ~20M share events, 2M people
    python benchmarks/run_all.py --quick    # 1/10 scale, a few minutes

Stages, each in its own process so peak RSS is per stage:
1. generate the demo world at scale (timed; the generator itself is what is measured);
2. ingest: validated ``load_inputs`` vs a bare DuckDB ``read_csv`` of the same files;
3. influence: graph build + influence marts vs igraph PageRank + reach on the same arrays;
4. affinity: the affinity stage vs a hand-written DuckDB self-join and mlxtend on a sample;
5. e2e: whole ``sharegraph run`` processes on an export-shaped copy of the world (shuffled,
   dirty rows, a malformed line, GBK products) vs a bare DuckDB ``read_csv`` of the same files;
6. daily: a 1% day on top of the other 99% vs the full run of that base (whole processes),
   with the day's tables compared with a full rebuild.
Each benchmark prints medians and ratios against its peer measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _run(title: str, cmd: list[str], log: list[str]) -> None:
    print(f"\n== {title}\n$ {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    print(proc.stdout + proc.stderr[-4000:], flush=True)
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    log.append(f"## {title}\n\n`{' '.join(cmd)}` — {status}, {elapsed:.0f} s wall\n\n```\n{proc.stdout.strip()}\n```\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1/10 scale")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    ap.add_argument("--runs", type=int, default=3, help="repeats per measurement (medians)")
    ap.add_argument("--only", choices=("generate", "ingest", "influence", "affinity", "e2e", "daily"),
                    action="append")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0
    orders, people = int(10_000_000 * scale), int(2_000_000 * scale)
    world = args.out / "world"
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    only = set(args.only or ("generate", "ingest", "influence", "affinity", "e2e", "daily"))
    log: list[str] = [f"# sharegraph benchmarks ({'quick, 1/10' if args.quick else 'full'} scale)\n"]

    if "generate" in only or not (world / "orders.csv").exists():
        _run(f"generate {orders:,} orders, {people:,} people",
             [py, "-m", "pipelines.cli", "generate", "--out", str(world), "--orders", str(orders),
              "--people", str(people), "--seed", "1"], log)
    if "ingest" in only:
        _run("ingest: validated load vs bare read_csv",
             [py, str(BENCH / "bench_ingest.py"), "--input", str(world), "--runs", str(args.runs)], log)
    if "influence" in only:
        _run("influence: graph + influence marts vs igraph",
             [py, str(BENCH / "bench_influence.py"), "--scale", str(scale), "--repeat", str(args.runs)], log)
    if "affinity" in only:
        _run("affinity: stage vs hand-written SQL vs mlxtend",
             [py, str(BENCH / "bench_affinity.py"), "--lines", str(orders),
              "--customers", str(people), "--categories", "200",
              "--sample", str(min(100_000, people))], log)
    if "e2e" in only:
        _run("e2e: whole sharegraph run vs bare read_csv (export-shaped input)",
             [py, str(BENCH / "bench_e2e.py"), "--world", str(world), "--runs", str(args.runs),
              "--out", str(args.out / "e2e")], log)
        if (ROOT.parent / "shared" / "data" / "real" / "beibei").is_dir():
            _run("e2e: whole sharegraph run on BeiBei, 30k item-level categories",
                 [py, str(BENCH / "bench_e2e.py"), "--beibei", "--runs", str(args.runs),
                  "--out", str(args.out / "e2e")], log)
    if "daily" in only:
        _run("daily: a 1% day on top of the warehouse vs the full run of the base",
             [py, str(BENCH / "bench_daily.py"), "--world", str(world), "--runs", str(args.runs),
              "--check", "--out", str(args.out / "daily")], log)
    report = args.out / "results.md"
    report.write_text("\n".join(log), encoding="utf-8")
    print(f"\nresults: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
