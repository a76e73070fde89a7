"""Benchmark: the launch planner at 2M people / 10M edges, k = 50 (issue 16), not a test.

Three parts, each timed in a fresh child process (imports and data excluded from the kernel
time, included in the process's peak RSS):

``imm``
    A synthetic diffusion graph (the generator of docs/planner.md "Speed": uniform random
    sharer -> buyer edges without self-loops or repeats, conversion p ~ Beta(1.5, 30) per
    edge, re-share ~ Beta(1.2, 8) per person), whole IMM with the (1 - 1/e - eps) guarantee
    certified (no cap on θ; the run fails loudly if the memory cap was hit): wall time of
    the reverse index, IMM, θ, the lower bound and the peak RSS.
``plan``
    End to end on a warehouse: ``learn_model`` (reading ``graph.person_activity`` and
    ``graph.audience_edges`` when the pipeline built them, else the DuckDB aggregates from
    lines and events) and ``plan_seeds`` (IMM with the fresh-set estimate) timed separately
    in one child, then the whole command
    ``sharegraph plan --warehouse W --k 50 --json`` as its own process (wall, peak RSS).
    The warehouse is opened read-only.
``celf``
    A 20k-node sample of the ``imm`` graph (breadth-first from random roots over the
    undirected edges, induced subgraph): IMM vs CELF greedy (cynetdiff Monte Carlo,
    ``imm.celf``) on it, time of each and the spread of each seed set by the same many-trial
    Monte Carlo evaluation.

    flock /work/worlds/bench.lock .venv/bin/python benchmarks/bench_planner.py --part imm
    flock /work/worlds/bench.lock .venv/bin/python benchmarks/bench_planner.py --part plan --warehouse W
    flock /work/worlds/bench.lock .venv/bin/python benchmarks/bench_planner.py --part celf

``--repeats N`` runs each child N times and reports the median. Output: one JSON line per
child run and a summary line per part; ``--out FILE`` also writes them as a JSON list.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_graph(people: int, edges: int, seed: int = 0):  # -> imm.DiffusionGraph
    """Uniform random sharer -> buyer edges (no self-loops, no repeats), p ~ Beta(1.5, 30) per
    edge, re-share ~ Beta(1.2, 8) per person, order value 1."""
    from sharegraph.metrics.imm import DiffusionGraph, _unique_int

    rng = np.random.default_rng(seed)
    n = np.int64(people)
    key = _unique_int(rng.integers(0, n, int(edges * 1.01)) * n + rng.integers(0, n, int(edges * 1.01)))
    key = key[key // n != key % n]
    key = key[np.sort(rng.choice(key.size, min(edges, key.size), replace=False))]
    src, dst = (key // n).astype(np.int32), (key % n).astype(np.int32)
    return DiffusionGraph(people, src, dst, rng.beta(1.5, 30, src.size), rng.beta(1.2, 8, people),
                          np.ones(people))


def bfs_sample(g, size: int, seed: int = 0):  # -> imm.DiffusionGraph
    """Induced subgraph on ``size`` nodes reached breadth-first over the undirected edges from
    random roots (a new root whenever the frontier dies)."""
    from scipy import sparse

    from sharegraph.metrics.imm import DiffusionGraph, _unique_int

    rng = np.random.default_rng(seed)
    adj = sparse.coo_matrix((np.ones(g.src.size, np.int8), (g.src, g.dst)), shape=(g.n, g.n)).tocsr()
    adj = (adj + adj.T).tocsr()
    taken = np.zeros(g.n, dtype=bool)
    order: list[np.ndarray] = []
    count = 0
    frontier = np.zeros(0, np.int64)
    while count < size:
        if frontier.size == 0:
            frontier = rng.integers(0, g.n, 1)
            frontier = frontier[~taken[frontier]]
            taken[frontier] = True
            order.append(frontier)
            count += frontier.size
            continue
        nb = _unique_int(adj[frontier].indices)
        nb = nb[~taken[nb]]
        nb = rng.permutation(nb)[: size - count]
        taken[nb] = True
        order.append(nb)
        count += nb.size
        frontier = nb
    nodes = np.concatenate(order)[:size]
    new_id = np.full(g.n, -1, dtype=np.int64)
    new_id[nodes] = np.arange(nodes.size)
    keep = (new_id[g.src] >= 0) & (new_id[g.dst] >= 0)
    return DiffusionGraph(int(nodes.size), new_id[g.src[keep]].astype(np.int32),
                          new_id[g.dst[keep]].astype(np.int32), g.prob[keep], g.reshare[nodes], g.value[nodes])


# ------------------------------------------------------------------ children (one process each)

def child_imm(args: argparse.Namespace) -> dict[str, object]:
    from sharegraph.metrics import imm

    t = time.perf_counter()
    g = synthetic_graph(args.people, args.edges, args.seed)
    gen_s = time.perf_counter() - t
    if args.baseline_imm:
        return baseline_imm(args, g, gen_s)
    cand = np.bincount(g.src, minlength=g.n) > 0
    t = time.perf_counter()
    rev = g.reverse_index()
    rev_s = time.perf_counter() - t
    t = time.perf_counter()
    res = imm.imm(g, args.k, np.random.default_rng(args.seed + 1), eps=args.eps, candidates=cand,
                  mem_budget=args.mem_budget * 2**30, rev=rev)
    imm_s = time.perf_counter() - t
    spread = sum(res.cover.covered) * g.n / res.rr.count
    return {"part": "imm", "people": g.n, "edges": int(g.src.size), "k": args.k, "eps": args.eps,
            "generate_s": round(gen_s, 2), "reverse_index_s": round(rev_s, 2), "imm_s": round(imm_s, 2),
            "imm_total_s": round(rev_s + imm_s, 2), "theta": res.theta, "stored_sets": len(res.rr.target),
            "members": int(res.rr.nodes.size), "lower_bound": round(res.lower_bound, 1),
            "capped": res.capped, "selection_spread": round(spread, 1),
            "peak_rss_gib": round(peak_rss_gib(), 2)}


def baseline_imm(args: argparse.Namespace, g, gen_s: float) -> dict[str, object]:
    """The same graph and IMM call through another version of imm.py (e.g. the one before the
    hazard-walk sampler: ``git show 063937e:sharegraph/metrics/imm.py > FILE``), uncapped."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("imm_baseline", args.baseline_imm)
    old = importlib.util.module_from_spec(spec)
    sys.modules["imm_baseline"] = old
    spec.loader.exec_module(old)
    og = old.DiffusionGraph(g.n, g.src, g.dst, g.prob, g.reshare, g.value)
    cand = np.bincount(g.src, minlength=g.n) > 0
    t = time.perf_counter()
    res = old.imm(og, args.k, np.random.default_rng(args.seed + 1), eps=args.eps, candidates=cand,
                  max_rr=2**62)
    imm_s = time.perf_counter() - t
    return {"part": "imm/baseline", "module": args.baseline_imm, "people": g.n, "edges": int(g.src.size),
            "k": args.k, "eps": args.eps, "generate_s": round(gen_s, 2), "imm_total_s": round(imm_s, 2),
            "theta": res.theta, "lower_bound": round(res.lower_bound, 1), "capped": res.capped,
            "selection_spread": round(sum(res.cover.covered) * g.n / res.rr.count, 1),
            "peak_rss_gib": round(peak_rss_gib(), 2)}


def child_learn(args: argparse.Namespace) -> dict[str, object]:
    import duckdb

    from sharegraph.metrics.planner import learn_model, plan_seeds

    if args.baseline_planner:  # another planner.py's learn_model only (e.g. before the SQL numbering)
        import importlib.util

        spec = importlib.util.spec_from_file_location("planner_baseline", args.baseline_planner)
        old = importlib.util.module_from_spec(spec)
        sys.modules["planner_baseline"] = old
        spec.loader.exec_module(old)
        t = time.perf_counter()
        con = duckdb.connect(args.warehouse, read_only=True)
        model = old.learn_model(con)
        con.close()
        return {"part": "plan/baseline-learn", "module": args.baseline_planner, "people": model.graph.n,
                "edges": int(model.graph.src.size), "learn_s": round(time.perf_counter() - t, 2),
                "peak_rss_gib": round(peak_rss_gib(), 2)}
    t = time.perf_counter()
    con = duckdb.connect(args.warehouse, read_only=True)
    model = learn_model(con)
    con.close()
    learn_s = time.perf_counter() - t
    rss_learn = peak_rss_gib()
    t = time.perf_counter()
    plan = plan_seeds(model, args.k)
    plan_s = time.perf_counter() - t
    return {"part": "plan/in-process", "people": model.graph.n, "edges": int(model.graph.src.size),
            "k": args.k, "learn_s": round(learn_s, 2), "imm_and_estimate_s": round(plan_s, 2),
            "rr_sets": plan.rr_sets, "capped": "capped" in plan.method,
            "expected_buyers": round(plan.expected_buyers, 1), "peak_rss_after_learn_gib": round(rss_learn, 2),
            "peak_rss_gib": round(peak_rss_gib(), 2)}


def child_celf(args: argparse.Namespace) -> dict[str, object]:
    from sharegraph.metrics import imm

    if args.sample_kind == "bfs":
        big = synthetic_graph(args.people, args.edges, args.seed)
        g = bfs_sample(big, args.sample, args.seed)
        del big
    else:  # the same generator at the sample's size and the full graph's edges per person
        g = synthetic_graph(args.sample, int(args.edges * args.sample / args.people), args.seed)
    cand = np.bincount(g.src, minlength=g.n) > 0
    model = imm.doubled_ic(g)
    out: dict[str, object] = {"part": "celf", "sample": args.sample_kind, "people": g.n,
                              "edges": int(g.src.size), "k": args.k, "eval_trials": args.eval_trials, "imm": []}
    for eps in sorted({args.eps, 0.1}, reverse=True):
        t = time.perf_counter()
        res = imm.imm(g, args.k, np.random.default_rng(args.seed + 1), eps=eps, candidates=cand)
        imm_s = time.perf_counter() - t
        out["imm"].append({"eps": eps, "imm_s": round(imm_s, 2), "theta": res.theta, "capped": res.capped,
                           "spread_imm": round(imm.mc_spread(model, res.cover.seeds, args.eval_trials), 2)})
        if eps == args.eps:
            imm_seeds = res.cover.seeds
    out["celf"] = []
    for trials in (int(x) for x in args.celf_trials.split(",")):
        t = time.perf_counter()
        seeds = imm.celf(model, g.n, args.k, trials=trials, candidates=cand)
        celf_s = time.perf_counter() - t
        out["celf"].append({"trials": trials, "celf_s": round(celf_s, 2),
                            "spread_celf": round(imm.mc_spread(model, seeds, args.eval_trials), 2),
                            "common_seeds_with_imm": len(set(imm_seeds) & set(seeds))})
    out["peak_rss_gib"] = round(peak_rss_gib(), 2)
    return out


# ------------------------------------------------------------------ parent

def run_child(argv: list[str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"child failed: {argv}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cli(warehouse: str, k: int) -> dict[str, object]:
    """``sharegraph plan --json`` as a fresh process: wall seconds and its own peak RSS
    (``os.wait4`` on that child)."""
    import tempfile

    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen([str(ROOT / ".venv/bin/sharegraph"), "plan", "--warehouse", warehouse,
                                 "--k", str(k), "--json"], stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace"))
            raise SystemExit("sharegraph plan failed")
    plan = json.loads(out)
    return {"part": "plan/cli", "k": k, "wall_s": round(wall, 2), "seeds": len(plan["seeds"]),
            "expected_buyers": round(plan["expected_buyers"], 1), "method": plan["method"],
            "plan_seconds": round(plan["seconds"], 2), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["imm", "plan", "celf"], action="append")
    ap.add_argument("--child", choices=["imm", "learn", "celf"])
    ap.add_argument("--people", type=int, default=2_000_000)
    ap.add_argument("--edges", type=int, default=10_000_000)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--eps", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-budget", type=float, default=4.0, help="GiB for RR sets (IMM's cap)")
    ap.add_argument("--baseline-imm", help="--part imm: also run this imm.py file's IMM (uncapped) on the same graph")
    ap.add_argument("--warehouse", help="warehouse for --part plan (opened read-only)")
    ap.add_argument("--baseline-planner", help="--part plan: also time this planner.py file's learn_model")
    ap.add_argument("--sample", type=int, default=20_000, help="nodes of the CELF sample")
    ap.add_argument("--sample-kind", choices=["bfs", "scaled"], action="append",
                    help="CELF graph: bfs = breadth-first induced sample of the 2M graph; scaled = the same "
                         "generator at --sample people and the same edges per person (default: both)")
    ap.add_argument("--celf-trials", default="300,3000", help="Monte Carlo trials per CELF evaluation (list)")
    ap.add_argument("--eval-trials", type=int, default=20_000, help="Monte Carlo trials to evaluate spreads")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", help="also write the results as a JSON list")
    args = ap.parse_args(argv)
    if args.child:
        args.sample_kind = (args.sample_kind or ["scaled"])[0]
        fn = {"imm": child_imm, "learn": child_learn, "celf": child_celf}[args.child]
        print(json.dumps(fn(args)))
        return 0
    common = ["--people", str(args.people), "--edges", str(args.edges), "--k", str(args.k),
              "--eps", str(args.eps), "--seed", str(args.seed), "--mem-budget", str(args.mem_budget)]
    results: list[dict[str, object]] = []
    for part in args.part or ["imm", "celf"]:
        runs: list[dict[str, object]] = []
        for _ in range(args.repeats):
            if part == "imm":
                runs.append(run_child(["--child", "imm", *common]))
                if args.baseline_imm:
                    print(json.dumps(runs[-1]), flush=True)
                    runs.append(run_child(["--child", "imm", *common, "--baseline-imm", args.baseline_imm]))
            elif part == "plan":
                if not args.warehouse:
                    raise SystemExit("--part plan needs --warehouse")
                runs.append(run_child(["--child", "learn", "--warehouse", args.warehouse, "--k", str(args.k)]))
                runs.append(run_cli(args.warehouse, args.k))
                if args.baseline_planner:
                    print(json.dumps(runs[-2]) + "\n" + json.dumps(runs[-1]), flush=True)
                    runs.append(run_child(["--child", "learn", "--warehouse", args.warehouse,
                                           "--baseline-planner", args.baseline_planner]))
                    print(json.dumps(runs[-1]), flush=True)
                    continue
            else:
                for kind in args.sample_kind or ["scaled", "bfs"]:
                    runs.append(run_child(["--child", "celf", *common, "--sample", str(args.sample),
                                           "--sample-kind", kind, "--celf-trials", args.celf_trials,
                                           "--eval-trials", str(args.eval_trials)]))
                    print(json.dumps(runs[-1]), flush=True)
                continue
            print(json.dumps(runs[-1]) if part != "plan" else json.dumps(runs[-2]) + "\n" + json.dumps(runs[-1]),
                  flush=True)
        results.extend(runs)
        for label in sorted({str(r["part"]) for r in runs}):
            for key in ("imm_total_s", "learn_s", "imm_and_estimate_s", "wall_s", "peak_rss_gib"):
                vals = [r[key] for r in runs if r["part"] == label and r.get(key) is not None]
                if vals:
                    print(f"{label}: median {key} = {statistics.median(vals):.2f} over {len(vals)}", flush=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
