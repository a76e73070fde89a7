"""Engine benchmark: whole ``sharegraph run`` processes, ``--engine spark`` vs DuckDB.

    python benchmarks/bench_spark.py --world DIR [--runs 1] [--masters local[1] local[2]]
    python benchmarks/bench_spark.py --orders 1000000 --people 200000   # generate one first

Each measurement is a fresh process into a fresh warehouse directory (so the Spark runs pay
the JVM start, ~15 s): the default DuckDB engine, then the Spark engine once per master
(``local[1]``, ``local[2]``: executor threads on this machine). Runs are interleaved; the
median wall time per configuration is reported with the 1-minute load average before each
run. ``--lock FILE`` takes
that file with flock(1) around each timed command only, so shared-machine timings do not
overlap (docs/performance.md); the clock starts once the lock is held. Writes ``<out>/bench_spark.json``.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _config(path: Path, master: str, driver_memory: str, partitions: int) -> Path:
    path.write_text(
        '[sharegraph]\nengine = "spark"\n[sharegraph.spark]\n'
        f'master = "{master}"\ndriver_memory = "{driver_memory}"\n'
        f'[sharegraph.spark.conf]\n"spark.sql.shuffle.partitions" = "{partitions}"\n',
        encoding="utf-8")
    return path


def _timed(cmd: list[str], lock: str | None) -> tuple[float, str]:
    """Wall seconds and output of ``cmd``; with ``lock`` the file is flock-ed first and the
    clock starts once it is held (waiting for another benchmark is not timed)."""
    import fcntl

    held = open(lock, "a") if lock else None  # noqa: SIM115 - held for the run only
    try:
        if held:
            fcntl.flock(held, fcntl.LOCK_EX)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    finally:
        if held:
            fcntl.flock(held, fcntl.LOCK_UN)
            held.close()
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n"
                 f"{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, help="a generated world (else generate one)")
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    ap.add_argument("--lock", help="flock this file around each timed run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "spark")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("sharegraph"))
    scratch = Path(tempfile.mkdtemp(prefix="bench-spark-", dir=args.out))
    world = args.world
    if world is None:
        world = scratch / "world"
        subprocess.run([exe, "generate", "--out", str(world), "--orders", str(args.orders),
                        "--people", str(args.people)], check=True, cwd=ROOT)
    configs: dict[str, list[str]] = {"duckdb": []}
    for m in args.masters:
        cfg = _config(scratch / f"spark-{m.replace('[', '').replace(']', '')}.toml", m,
                      args.driver_memory, args.partitions)
        configs[f"spark {m}"] = ["--config", str(cfg)]
    walls: dict[str, list[float]] = {k: [] for k in configs}
    loads: list[float] = []
    for r in range(args.runs):
        for name, extra in configs.items():
            target = scratch / f"{name.replace(' ', '-').replace('[', '').replace(']', '')}-{r}"
            cmd = [exe, "run", "--input", str(world), "--warehouse", str(target / "wh.duckdb"),
                   *extra]
            wall, _ = _timed(cmd, args.lock)
            loads.append(os.getloadavg()[0])
            walls[name].append(wall)
            print(f"{name:16s} run {r + 1}: {wall:7.1f} s (load {loads[-1]:.2f})", flush=True)
            shutil.rmtree(target, ignore_errors=True)
    result = {
        "world": str(world), "runs": args.runs, "load_avg_1m_after_each_run": loads,
        "median_s": {k: statistics.median(v) for k, v in walls.items()},
        "all_s": walls,
    }
    base = result["median_s"]["duckdb"]
    for k, v in result["median_s"].items():
        print(f"{k:16s} median {v:7.1f} s   {v / base:5.2f}x duckdb")
    (args.out / "bench_spark.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.world:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
