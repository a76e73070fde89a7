"""IMM kernels (sharegraph.metrics.imm) against independent computations: the hazard-walk RR
sampler against a plain per-edge-coin BFS, exact spreads on a tiny graph, the helpers against
their NumPy definitions, and the certified / capped θ."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sharegraph.metrics import imm


def random_graph(n: int, m: int, seed: int, p_low: float = 0.01, p_high: float = 0.5) -> imm.DiffusionGraph:
    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, n, m) * n + rng.integers(0, n, m))
    src, dst = (key // n).astype(np.int32), (key % n).astype(np.int32)
    keep = src != dst
    p = rng.uniform(p_low, p_high, keep.sum())
    p[:5] = 1.0  # certain and impossible edges are edge cases of the hazard walk
    p[5:10] = 0.0
    return imm.DiffusionGraph(n, src[keep], dst[keep], p, rng.uniform(0, 0.6, n), rng.uniform(1, 3, n))


def naive_rr(g: imm.DiffusionGraph, count: int, rng: np.random.Generator) -> np.ndarray:
    """Member frequencies of ``count`` RR sets drawn the textbook way: one coin per in-edge of
    each expanded node, one re-share coin per found node (Python loops, small graphs only)."""
    ins: list[list[tuple[int, float]]] = [[] for _ in range(g.n)]
    for s, d, p in zip(g.src.tolist(), g.dst.tolist(), g.prob.tolist(), strict=True):
        ins[d].append((s, p))
    freq = np.zeros(g.n)
    for _ in range(count):
        v = int(rng.integers(g.n))
        found: set[int] = set()
        stack = [v]
        while stack:
            w = stack.pop()
            for u, p in ins[w]:
                if u not in found and rng.random() < p:
                    found.add(u)
                    if u != v and rng.random() < g.reshare[u]:
                        stack.append(u)
        for u in found:
            freq[u] += 1
    return freq / count


@pytest.mark.parametrize("count", [150, 60_000])  # below n: uniform targets; above: one multinomial
def test_rr_sampler_matches_naive_bfs(count: int) -> None:
    g = random_graph(200, 1500, seed=1)
    reps = max(1, 60_000 // count)
    rr = imm.sample_rr_sets(g, count, np.random.default_rng(2))
    for r in range(1, reps):
        rr = imm.concat(rr, imm.sample_rr_sets(g, count, np.random.default_rng(100 + r)))
    assert rr.count == count * reps
    assert rr.empty == rr.count - len(rr.target) and np.diff(rr.ptr).min() >= 0
    fast = np.bincount(rr.nodes, minlength=g.n) / rr.count
    slow = naive_rr(g, 60_000, np.random.default_rng(3))
    se = np.sqrt((fast * (1 - fast) + slow * (1 - slow)) / 60_000) + 1e-12
    z = (fast - slow) / se
    assert np.mean(z**2) < 1.5 and np.abs(z).max() < 5.5  # ~chi2(200)/200 = 1 +- 0.1
    # no duplicate member inside a set
    set_of = np.repeat(np.arange(len(rr.target)), np.diff(rr.ptr))
    assert np.unique(set_of.astype(np.int64) * g.n + rr.nodes).size == rr.nodes.size


def exact_spread(g: imm.DiffusionGraph, seeds: list[int]) -> float:
    """Expected buyers by enumerating every live-edge and re-share world (tiny graphs)."""
    m, n = g.src.size, g.n
    total = 0.0
    for live in itertools.product([0, 1], repeat=m):
        pe = np.prod([g.prob[j] if b else 1 - g.prob[j] for j, b in enumerate(live)])
        for shares in itertools.product([0, 1], repeat=n):
            pr = pe * np.prod([g.reshare[v] if s else 1 - g.reshare[v] for v, s in enumerate(shares)])
            sharers, buyers, frontier = set(seeds), set(), list(seeds)
            while frontier:
                u = frontier.pop()
                for j in range(m):
                    if live[j] and g.src[j] == u and g.dst[j] not in buyers:
                        v = int(g.dst[j])
                        buyers.add(v)
                        if shares[v] and v not in sharers:
                            sharers.add(v)
                            frontier.append(v)
            total += pr * len(buyers)
    return total


def test_rr_estimate_equals_exact_spread() -> None:
    # 4 people, a cycle with a chord: 0->1->2->3->0, 0->2; one certain edge
    g = imm.DiffusionGraph(4, np.array([0, 1, 2, 3, 0], np.int32), np.array([1, 2, 3, 0, 2], np.int32),
                           np.array([0.6, 1.0, 0.3, 0.5, 0.2]), np.array([0.5, 0.7, 0.4, 0.9]), np.ones(4))
    rr = imm.sample_rr_sets(g, 2_000_000, np.random.default_rng(4))
    for seeds in ([0], [2], [1, 3]):
        est, lo, hi, _ = imm.coverage_estimate(rr, g.n, seeds)
        exact = exact_spread(g, seeds)
        assert lo - 0.005 <= exact <= hi + 0.005, (seeds, est, exact)


def test_helpers_equal_numpy() -> None:
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 1000, 50_000).astype(np.int32)
    assert np.array_equal(imm._stable_order(keys, 1000), np.argsort(keys, kind="stable"))
    big = rng.integers(0, 2**40, 20_000)
    assert np.array_equal(imm._unique_int(big), np.unique(big))
    g = random_graph(300, 3000, seed=6)
    rev = g.reverse_index()
    node = rng.integers(0, g.n, 5000)
    lo, hi = rev.indptr[node], rev.indptr[node + 1]
    ok = hi > lo
    node, lo, hi = node[ok], lo[ok], hi[ok]
    t = rev.hazard[lo] + rng.random(node.size) * (rev.hazard[hi] - rev.hazard[lo])
    assert np.array_equal(imm._landing_edge(rev.hazard, lo, t, steps=2),
                          np.searchsorted(rev.hazard, t, side="right") - 1)


def test_imm_certified_or_says_capped() -> None:
    g = random_graph(2000, 10_000, seed=7, p_high=0.1)
    full = imm.imm(g, 10, np.random.default_rng(8))
    assert not full.capped and full.theta > 100_000
    tight = imm.imm(g, 10, np.random.default_rng(8), mem_budget=200_000)
    assert tight.capped and tight.theta < full.theta
    assert imm.imm(g, 10, np.random.default_rng(8), max_rr=5_000).capped
