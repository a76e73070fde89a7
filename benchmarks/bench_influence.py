"""Benchmark: graph build + influence marts at scale, with igraph side by side (not a test).

Synthetic data of the benchmark shape (PERFORMANCE.md), generated with NumPy straight into
DuckDB staging tables: at ``--scale 1`` 2M people, 10M order lines each crediting a
heavy-tailed sharer (-> ~10M sharer -> buyer edges), a 2M-agent upline forest of depth <= 20,
1M shares (30% re-shares) and 2M clicks. Times each stage of sharegraph (attribution, graph.*,
marts.agent_influence), then the PageRank and downstream-reach kernels alone, next to
igraph's PRPACK ``pagerank`` and ``neighborhood_size`` on the same arrays. Medians of
``--repeat`` runs; peak RSS of the process.

    .venv/bin/python benchmarks/bench_influence.py --scale 0.05 --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from sharegraph import attribution, graph, influence
from sharegraph.config import Settings
from sharegraph.kernels import break_cycles, pagerank, subtree_sums
from sharegraph.warehouse import ensure_schema


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def generate(con: duckdb.DuckDBPyConnection, scale: float, seed: int = 0) -> dict[str, int]:
    """Write staging.orders / share_events / agents of the benchmark shape; return sizes."""
    rng = np.random.default_rng(seed)
    n_people = max(100, int(2_000_000 * scale))
    n_orders = max(500, int(10_000_000 * scale))
    n_shares = max(50, int(1_000_000 * scale))
    n_clicks = 2 * n_shares
    # upline forest: 20 levels of geometrically growing size, parent uniform in the level above
    growth = n_people ** (1 / 19)
    level = np.minimum(np.floor(np.log(np.arange(n_people) + 1) / np.log(growth)), 19).astype(np.int64)
    start = np.searchsorted(level, np.arange(21))
    lo, hi = start[np.maximum(level - 1, 0)], start[level]
    upline = np.where(level == 0, -1, lo + (rng.random(n_people) * (hi - lo)).astype(np.int64))
    agents = pa.table({"a": np.arange(n_people), "u": upline, "lvl": level + 1})  # noqa: F841
    sharer = np.minimum((n_people * rng.random(n_orders) ** 3).astype(np.int64), n_people - 1)
    orders = pa.table({  # noqa: F841
        "k": np.arange(n_orders), "c": rng.integers(0, n_people, n_orders), "r": sharer,
        "t": rng.integers(0, 365 * 86400, n_orders), "cents": rng.integers(100, 100_000, n_orders),
        "paid": rng.random(n_orders) < 0.95,
    })
    share_actor = np.minimum((n_people * rng.random(n_shares) ** 3).astype(np.int64), n_people - 1)
    parent = np.where(rng.random(n_shares) < 0.3,
                      (rng.random(n_shares) * np.arange(n_shares)).astype(np.int64), -1)
    shares = pa.table({"s": np.arange(n_shares), "a": share_actor, "p": parent,  # noqa: F841
                       "t": rng.integers(0, 365 * 86400, n_shares)})
    clicks = pa.table({"s": rng.integers(0, n_shares, n_clicks),  # noqa: F841
                       "a": rng.integers(0, n_people, n_clicks),
                       "t": rng.integers(0, 365 * 86400, n_clicks)})
    lineage = "'bench', 1, 'bench', TIMESTAMP '2026-01-01'"
    con.execute(f"""INSERT INTO staging.agents SELECT 'p' || a, CASE WHEN u >= 0 THEN 'p' || u END,
                    TIMESTAMP '2024-01-01', lvl, {lineage} FROM agents""")
    con.execute(f"""INSERT INTO staging.orders SELECT 'o' || k, 1, 'p' || c,
                    TIMESTAMP '2025-01-01' + to_seconds(t), 'prod' || (k % 5000),
                    'cat' || (k % 200), 1, (cents / 100)::DECIMAL(18,2), 'wechat', 'default',
                    'p' || r, NULL, NULL, CASE WHEN paid THEN 'paid' ELSE 'refunded' END,
                    NULL, NULL, {lineage} FROM orders""")
    con.execute(f"""INSERT INTO staging.share_events
                    SELECT 'e' || s, CASE WHEN p >= 0 THEN 'reshare' ELSE 'share' END, 'sh' || s,
                           'p' || a, TIMESTAMP '2025-01-01' + to_seconds(t),
                           CASE WHEN p >= 0 THEN 'sh' || p END, NULL, NULL, 'moments', {lineage}
                    FROM shares
                    UNION ALL
                    SELECT 'k' || row_number() OVER (), 'click', 'sh' || s, 'p' || a,
                           TIMESTAMP '2025-01-01' + to_seconds(t), NULL, NULL, NULL, 'moments',
                           {lineage} FROM clicks""")
    return {"people": n_people, "orders": n_orders, "shares": n_shares, "clicks": n_clicks}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 2M people / 10M edges")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--db", type=Path, default=None, help="DuckDB file (default: a temp file)")
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp()) / "bench.duckdb"
    con = duckdb.connect(str(db))
    ensure_schema(con)
    t = time.perf_counter()
    sizes = generate(con, args.scale)
    print(f"generated {sizes} in {time.perf_counter() - t:.1f} s -> {db}")
    s = Settings()
    stages = [
        ("attribution (graph.attributed_orders)", lambda: attribution.attribute_orders(con, s)),
        ("graph.share_nodes", lambda: graph.build_share_nodes(con, s)),
        ("graph.agent_upline", lambda: graph.build_agent_upline(con, s)),
        ("graph.people", lambda: graph.build_people(con, s)),
        ("graph.referral_edges", lambda: graph.build_referral_edges(con, s)),
        ("graph.anomalies", lambda: graph.build_anomalies(con, s)),
        ("marts.agent_influence", lambda: influence.build_agent_influence(con, s)),
    ]
    total = 0.0
    print(f"\n{'stage':40s} {'median s':>9s} {'rows':>11s} {'peak RSS GiB':>13s}")
    for name, fn in stages:
        sec, rows = timed(fn, args.repeat)
        total += sec
        print(f"{name:40s} {sec:9.2f} {rows:11,d} {peak_rss_gib():13.2f}")
    print(f"{'total graph + influence':40s} {total:9.2f}")

    # kernels side by side on the same arrays
    e = con.sql("""WITH ids AS (SELECT person_id, (row_number() OVER (ORDER BY person_id) - 1)::BIGINT AS i
                               FROM graph.people)
                   SELECT b.i AS buyer, a.i AS sharer, sum(r.gmv)::DOUBLE AS gmv
                   FROM graph.referral_edges r JOIN ids a ON a.person_id = r.sharer_id
                   JOIN ids b ON b.person_id = r.buyer_id GROUP BY ALL""").fetchnumpy()
    n = con.execute("SELECT count(*) FROM graph.people").fetchall()[0][0]
    up = con.sql("""WITH ids AS (SELECT person_id, (row_number() OVER (ORDER BY person_id) - 1)::BIGINT AS i
                                FROM graph.people)
                    SELECT coalesce(u.i, -1) AS p FROM ids a
                    LEFT JOIN graph.people g ON g.person_id = a.person_id
                    LEFT JOIN ids u ON u.person_id = g.network_parent_id ORDER BY a.i""").fetchnumpy()
    src, dst, w = e["buyer"].astype(np.int64), e["sharer"].astype(np.int64), e["gmv"]
    parent = up["p"].astype(np.int64)
    print(f"\nkernels on {n:,d} nodes, {src.size:,d} weighted edges, forest depth "
          f"{int(break_cycles(parent).depth.max())}")
    sec_pr, pr = timed(lambda: pagerank(src, dst, w, n), args.repeat)

    def reach_ours() -> np.ndarray:
        return subtree_sums(break_cycles(parent), np.ones(n), 0.5)[0]

    sec_rc, reach = timed(reach_ours, args.repeat)
    rows = [("pagerank (scipy power iteration, tol 1e-10)", sec_pr), ("downstream reach+GMV (numpy bincount)", sec_rc)]
    try:
        import igraph as ig

        def ig_pr() -> np.ndarray:
            g = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=True)
            g.es["w"] = w
            return np.array(g.pagerank(damping=0.85, weights="w", directed=True))

        def ig_reach() -> np.ndarray:
            keep = parent >= 0
            g = ig.Graph(n=n, edges=np.column_stack([parent[keep], np.flatnonzero(keep)]), directed=True)
            return np.array(g.neighborhood_size(order=n, mode="out")) - 1

        sec_ipr, ipr = timed(ig_pr, args.repeat)
        sec_irc, ireach = timed(ig_reach, args.repeat)
        rows += [("igraph pagerank (PRPACK) incl. graph build", sec_ipr),
                 ("igraph reach (neighborhood_size) incl. build", sec_irc)]
        print(f"max |pagerank - igraph| = {np.max(np.abs(pr - ipr)):.2e}; "
              f"reach equal: {bool(np.array_equal(reach, ireach))}")
        print(f"ratio igraph/ours: pagerank {sec_ipr / sec_pr:.2f}x, reach {sec_irc / sec_rc:.2f}x")
    except ImportError:
        print("igraph not installed: peers skipped")
    for name, sec in rows:
        print(f"{name:48s} {sec:8.2f} s")
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
