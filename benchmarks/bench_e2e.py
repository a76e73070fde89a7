"""End-to-end benchmark: whole `sharegraph run` processes vs a bare DuckDB read of the same files.

    python benchmarks/bench_e2e.py --world DIR [--runs 3]             # a generated world
    python benchmarks/bench_e2e.py --orders 1000000 --people 200000   # generate one first
    python benchmarks/bench_e2e.py --beibei                           # real data, 30k categories
    python benchmarks/bench_e2e.py --orders 2000 --people 500 --first-orders 300 --runs 7  # fixed cost

What users hit: the input is shaped like a real export, not like the generator writes it:
rows shuffled (the sorted-key fast path of the ingest is not the measured case), 10% of orders
with a second line (another product, its own amount, the first line's order header), 0.5% of
order rows dirty (quarantined) and one malformed line, the products file in GBK.

Each measurement is a fresh process into a fresh warehouse directory. We report the median
wall time and the median peak RSS (the run's process tree, sampled by psutil) over ``--runs``
runs, interleaved with the peer. The peer is ``CREATE TABLE AS SELECT * FROM read_csv(file)``
for every input file in one DuckDB process: the floor of any pipeline that reads these files.
The ratio of the medians is the README's headline figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import psutil

ROOT = Path(__file__).resolve().parent.parent
DIRTY_SHARE = 0.005
MULTI_LINE_SHARE = 0.10
STAGE_LINE = re.compile(r"^\s+[✓✗] (\w+)\s.*?([\d.]+) s(?:\s|$)", re.M)
"""A stage line of the console report: ``✓ graph  6 assets  3,077 rows  0.8 s  checks 3/3``."""


def stage_seconds(report: str) -> dict[str, float]:
    """Seconds per stage from the console report of one ``sharegraph run``."""
    return {name: float(sec) for name, sec in STAGE_LINE.findall(report)}


def export_shaped(world: Path, out: Path, seed: int = 1) -> Path:
    """A copy of ``world`` shaped like a merchant's export (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in world.glob("*.csv"):
        if f.name.startswith("truth"):
            continue
        frame = pl.read_csv(f, infer_schema=False)
        if f.stem == "orders":
            frame = with_second_lines(frame, seed)
        frame = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        if f.stem == "orders":
            n = int(frame.height * DIRTY_SHARE)
            dirty = pl.Series("d", [i < n for i in range(frame.height)]).shuffle(seed=seed)
            frame = frame.with_columns(
                pl.when(dirty).then(pl.lit("n/a")).otherwise(pl.col("amount")).alias("amount"))
        text = frame.write_csv()
        if f.stem == "orders":  # one line with a field too few, in the middle
            lines = text.split("\n")
            lines.insert(len(lines) // 2, ",".join(lines[1].split(",")[:-1]))
            text = "\n".join(lines)
        encoding = "gbk" if f.stem == "products" else "utf-8"
        (out / f.name).write_bytes(text.encode(encoding))
    return out


def with_second_lines(orders: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``orders`` plus a line 2 for ``MULTI_LINE_SHARE`` of its (one-line) orders: the order's
    header (customer, time, channel, merchant, referral, status) with the product, category,
    quantity and amount of another, randomly chosen line; no commission or red packet of its own."""
    n = int(orders.height * MULTI_LINE_SHARE)
    item = ["product_id", "category", "quantity", "amount"]
    first = orders.sample(n, seed=seed).drop(item)
    other = orders.select(item).sample(n, seed=seed + 1)
    second = pl.concat([first, other], how="horizontal").with_columns(
        line_no=pl.lit("2"), commission=pl.lit(None, pl.String), red_packet=pl.lit(None, pl.String))
    return pl.concat([orders, second.select(orders.columns)])


def first_orders(world: Path, out: Path, n: int) -> Path:
    """A copy of ``world`` whose orders.csv keeps its header and first ``n`` lines."""
    out.mkdir(parents=True, exist_ok=True)
    for f in world.glob("*.csv"):
        if f.name.startswith("truth"):
            continue
        if f.stem == "orders":
            with f.open(encoding="utf-8") as src:
                head = [line for _, line in zip(range(n + 1), src, strict=False)]
            (out / f.name).write_text("".join(head), encoding="utf-8")
        else:
            shutil.copyfile(f, out / f.name)
    return out


def _peak(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GiB, the process and its children) and output of ``cmd``."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        with contextlib.suppress(psutil.TimeoutExpired):  # returns as the process ends, so
            proc.wait(timeout=0.2)                         # its wall time is not rounded up
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - t0, peak / 2**30, out


BARE = """
import sys, duckdb
from pathlib import Path
con = duckdb.connect(sys.argv[2])
for i, f in enumerate(sorted(Path(sys.argv[1]).glob('*.csv'))):
    enc = "latin-1" if f.stem == "products" else "utf-8"  # GBK bytes read without decoding
    con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_csv('{f}', ignore_errors=true, encoding='{enc}')")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, help="a generated world (else one is generated)")
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--beibei", action="store_true",
                    help="instead of a generated world: the BeiBei group buys (../shared/data/real) "
                         "with every item its own category (about 880k order lines, 30k leaf "
                         "categories), used as they are")
    ap.add_argument("--first-orders", type=int, metavar="N",
                    help="keep only the first N lines of the world's orders.csv (all its share "
                         "events): the fixed cost of a small daily file, goal <= 5 s for 300")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "e2e")
    args = ap.parse_args()
    py = sys.executable
    args.out.mkdir(parents=True, exist_ok=True)
    if args.beibei:
        sys.path.insert(0, str(ROOT))
        from tests import realdata

        shaped = args.out / "beibei"
        realdata.write_beibei(shaped, item_categories=True)
    else:
        world = args.world or args.out / "world"
        if not (world / "orders.csv").exists():
            subprocess.run([py, "-m", "pipelines.cli", "generate", "--out", str(world), "--orders",
                            str(args.orders), "--people", str(args.people), "--seed", "1"], check=True)
        if args.first_orders:
            world = first_orders(world, args.out / f"first-{args.first_orders}", args.first_orders)
        shaped = export_shaped(world, args.out / "export")
    ours, peer, stages = [], [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            peer.append(_peak([py, "-c", BARE, str(shaped), str(Path(tmp) / "bare.duckdb")])[:2])
        with tempfile.TemporaryDirectory(dir=args.out) as tmp:
            wall, rss, out = _peak([py, "-m", "pipelines.cli", "run", "--input", str(shaped),
                                    "--warehouse", str(Path(tmp) / "wh.duckdb"),
                                    "--max-reject-rate", "0.02"])
            ours.append((wall, rss))
            stages.append(stage_seconds(out))
            if i == 0:
                print(out)
        print(f"run {i + 1}: sharegraph run {ours[-1][0]:.1f} s / {ours[-1][1]:.2f} GiB; "
              f"bare read_csv {peer[-1][0]:.1f} s / {peer[-1][1]:.2f} GiB", flush=True)
    med = {name: {"wall_s": statistics.median(w for w, _ in xs),
                  "peak_rss_gib": statistics.median(r for _, r in xs)}
           for name, xs in (("sharegraph_run", ours), ("bare_read_csv", peer))}
    med["ratio"] = med["sharegraph_run"]["wall_s"] / med["bare_read_csv"]["wall_s"]
    med["stage_s"] = {name: statistics.median(run.get(name, 0.0) for run in stages)
                      for name in stages[0]}
    med["input_bytes"] = sum(f.stat().st_size for f in shaped.glob("*.csv"))
    print(json.dumps(med, indent=1))
    name = "e2e-beibei.json" if args.beibei else "e2e.json"
    (args.out / name).write_text(json.dumps(med, indent=1), encoding="utf-8")
    shutil.rmtree(shaped, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
