"""Influence maximisation kernels: reverse-reachable (RR) sets, IMM, CELF, Monte Carlo spread.

The launch planner's diffusion model (docs/planner.md) is an independent cascade (IC) with a
node coin: a sharer ``u`` makes each audience member ``v`` buy with probability ``p[u→v]``; a
buyer ``v`` re-shares (becomes a sharer) with probability ``r[v]``; seeds share for sure.
Expected *buyers* of a seed set is then an IC spread on the doubled graph sharer→buyer→sharer
(:func:`doubled_ic`), so the classic results apply: the spread is monotone and submodular
(Kempe, Kleinberg & Tardos, KDD 2003) and ``n · Pr[S covers a random RR set]`` estimates it
without bias (Borgs et al., SODA 2014). Seeds come from IMM (Tang, Shi & Xiao, SIGMOD 2015):
enough RR sets for a (1 − 1/e − ε) guarantee with probability 1 − n^-ℓ, then greedy max cover.

RR sets are sampled a batch at a time with NumPy (no Python loop over nodes): each BFS level
gathers the in-edges of the whole frontier from a CSR, flips their coins at once and drops
(set, node) pairs already seen. Monte Carlo checks use cynetdiff (Cython IC simulation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class DiffusionGraph:
    """Person-level diffusion model on int32 node ids 0..n-1.

    ``src → dst`` with ``prob`` = P(dst buys through one share by src); ``reshare[v]`` = P(a
    buyer v re-shares); ``value[v]`` = expected ¥ of v's order.
    """

    n: int
    src: np.ndarray
    dst: np.ndarray
    prob: np.ndarray
    reshare: np.ndarray
    value: np.ndarray

    def reverse_csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, sources, probs) of in-edges per node."""
        order = np.argsort(self.dst, kind="stable")
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.dst, minlength=self.n), out=indptr[1:])
        return indptr, self.src[order].astype(np.int32), self.prob[order].astype(np.float64)


@dataclass
class RRSets:
    """RR sets in CSR form: set i holds ``nodes[ptr[i]:ptr[i+1]]``; ``target[i]`` its root."""

    ptr: np.ndarray
    nodes: np.ndarray
    target: np.ndarray

    @property
    def count(self) -> int:
        return len(self.target)


def sample_rr_sets(g: DiffusionGraph, count: int, rng: np.random.Generator,
                   rev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                   batch: int = 200_000) -> RRSets:
    """``count`` random RR sets: a uniform target v, then every u that reaches v through live
    edges whose intermediate nodes all re-share. v is a member only when reached back (v
    shares, someone buys and re-shares, v buys through them), and is never expanded twice."""
    indptr, rsrc, rprob = rev or g.reverse_csr()
    ptrs, nodes_all, targets = [np.zeros(1, dtype=np.int64)], [], []
    offset = 0
    n = np.int64(g.n)
    for start in range(0, count, batch):
        b = min(batch, count - start)
        tgt = rng.integers(0, g.n, size=b, dtype=np.int64)
        set_id = np.arange(b, dtype=np.int64)
        frontier_set, frontier_node = set_id, tgt
        seen = np.zeros(0, dtype=np.int64)
        out_set: list[np.ndarray] = []
        out_node: list[np.ndarray] = []
        while frontier_set.size:
            deg = indptr[frontier_node + 1] - indptr[frontier_node]
            total = int(deg.sum())
            if total == 0:
                break
            rep_set = np.repeat(frontier_set, deg)
            first = np.repeat(indptr[frontier_node] - np.cumsum(deg) + deg, deg)
            pos = first + np.arange(total, dtype=np.int64)
            live = rng.random(total) < rprob[pos]
            cand_set, cand_node = rep_set[live], rsrc[pos[live]].astype(np.int64)
            keys = np.unique(cand_set * n + cand_node)
            new = keys[~_isin_sorted(keys, seen)]
            new_set, new_node = new // n, new % n
            out_set.append(new_set)
            out_node.append(new_node)
            seen = np.union1d(seen, new)
            go = (rng.random(new.size) < g.reshare[new_node]) & (new_node != tgt[new_set])
            frontier_set, frontier_node = new_set[go], new_node[go]
        ms = np.concatenate(out_set) if out_set else np.zeros(0, np.int64)
        mn = np.concatenate(out_node) if out_node else np.zeros(0, np.int64)
        order = np.argsort(ms, kind="stable")
        ms, mn = ms[order], mn[order]
        counts = np.bincount(ms, minlength=b)
        ptrs.append(offset + np.cumsum(counts))
        nodes_all.append(mn.astype(np.int32))
        targets.append(tgt.astype(np.int32))
        offset += int(counts.sum())
    return RRSets(np.concatenate(ptrs), np.concatenate(nodes_all) if nodes_all else np.zeros(0, np.int32),
                  np.concatenate(targets) if targets else np.zeros(0, np.int32))


def _isin_sorted(keys: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    if sorted_ref.size == 0:
        return np.zeros(keys.size, dtype=bool)
    idx = np.searchsorted(sorted_ref, keys)
    idx[idx == sorted_ref.size] = 0
    return sorted_ref[idx] == keys


def concat(a: RRSets, b: RRSets) -> RRSets:
    return RRSets(np.concatenate([a.ptr, a.ptr[-1] + b.ptr[1:]]), np.concatenate([a.nodes, b.nodes]),
                  np.concatenate([a.target, b.target]))


@dataclass
class Cover:
    seeds: list[int]
    covered: list[int]
    """RR sets newly covered by each seed in turn."""
    covered_value: list[float]
    """Σ target value of those sets."""


def greedy_cover(rr: RRSets, n: int, k: int, value: np.ndarray | None = None,
                 candidates: np.ndarray | None = None) -> Cover:
    """Greedy maximum coverage of RR sets (the (1 − 1/e) node selection of IMM), vectorised:
    coverage counts drop by one ``bincount`` over the members of the newly covered sets."""
    m = rr.count
    set_of = np.repeat(np.arange(m, dtype=np.int64), np.diff(rr.ptr))
    inc = sparse.csr_matrix((np.ones(rr.nodes.size, dtype=np.int8), (rr.nodes, set_of)), shape=(n, m))
    inc.sum_duplicates()
    degree = np.bincount(rr.nodes, minlength=n).astype(np.int64)
    if candidates is not None:
        degree[~candidates] = -1
    alive = np.ones(m, dtype=bool)
    seeds, cov, cov_val = [], [], []
    tv = value[rr.target] if value is not None else None
    for _ in range(min(k, n)):
        u = int(np.argmax(degree))
        if degree[u] < 0:
            break
        sets = inc.indices[inc.indptr[u]:inc.indptr[u + 1]]
        sets = sets[alive[sets]]
        alive[sets] = False
        seeds.append(u)
        cov.append(int(sets.size))
        cov_val.append(float(tv[sets].sum()) if tv is not None else float(sets.size))
        if sets.size:
            members = np.concatenate([rr.nodes[rr.ptr[s]:rr.ptr[s + 1]] for s in sets]) \
                if sets.size < 64 else rr.nodes[_ranges(rr.ptr, sets)]
            degree -= np.bincount(members, minlength=n)
        degree[u] = -1
    return Cover(seeds, cov, cov_val)


def _ranges(ptr: np.ndarray, sets: np.ndarray) -> np.ndarray:
    lo, hi = ptr[sets], ptr[sets + 1]
    lens = hi - lo
    return np.repeat(lo - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))


def _log_binom(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@dataclass
class IMMResult:
    cover: Cover
    rr: RRSets
    theta: int
    lower_bound: float
    capped: bool


def imm(g: DiffusionGraph, k: int, rng: np.random.Generator, eps: float = 0.5, ell: float = 1.0,
        max_rr: int = 5_000_000, candidates: np.ndarray | None = None) -> IMMResult:
    """IMM (Tang, Shi & Xiao 2015, Algorithms 1-3): estimate a lower bound of OPT by doubling
    guesses, then sample θ = λ*/LB RR sets and select greedily. ``max_rr`` caps θ (the
    guarantee then weakens; ``capped`` says so)."""
    n = max(g.n, 2)
    k = max(1, min(k, n))
    ell = ell * (1 + math.log(2) / math.log(n))
    rev = g.reverse_csr()
    lb_c = _log_binom(n, k)
    eps_p = math.sqrt(2) * eps
    lam_p = (2 + 2 / 3 * eps_p) * (lb_c + ell * math.log(n) + math.log(max(math.log2(n), 1.0))) * n / eps_p**2
    rr = sample_rr_sets(g, 0, rng, rev)
    lb = 1.0
    capped = False
    for i in range(1, max(int(math.log2(n)), 2)):
        x = n / 2**i
        theta_i = int(math.ceil(lam_p / x))
        if theta_i > max_rr:
            theta_i, capped = max_rr, True
        if theta_i > rr.count:
            rr = concat(rr, sample_rr_sets(g, theta_i - rr.count, rng, rev))
        cov = greedy_cover(rr, g.n, k, candidates=candidates)
        frac = sum(cov.covered) / rr.count
        if n * frac >= (1 + eps_p) * x or capped:
            lb = n * frac / (1 + eps_p)
            break
    alpha = math.sqrt(ell * math.log(n) + math.log(2))
    beta = math.sqrt((1 - 1 / math.e) * (lb_c + ell * math.log(n) + math.log(2)))
    lam_star = 2 * n * ((1 - 1 / math.e) * alpha + beta) ** 2 / eps**2
    theta = int(math.ceil(lam_star / max(lb, 1e-9)))
    if theta > max_rr:
        theta, capped = max_rr, True
    if theta > rr.count:
        rr = concat(rr, sample_rr_sets(g, theta - rr.count, rng, rev))
    cover = greedy_cover(rr, g.n, k, value=g.value, candidates=candidates)
    return IMMResult(cover, rr, rr.count, lb, capped)


def coverage_estimate(rr: RRSets, n: int, seeds: list[int], value: np.ndarray | None = None,
                      z: float = 1.96) -> tuple[float, float, float, float]:
    """(expected buyers, low, high, expected ¥) of ``seeds`` on RR sets *not used to pick them*:
    n × covered fraction, with a Wilson score interval on the fraction."""
    m = rr.count
    if m == 0:
        return 0.0, 0.0, 0.0, 0.0
    is_seed = np.zeros(n, dtype=bool)
    is_seed[seeds] = True
    set_of = np.repeat(np.arange(m, dtype=np.int64), np.diff(rr.ptr))
    hit = np.zeros(m, dtype=bool)
    hit[set_of[is_seed[rr.nodes]]] = True
    f = hit.mean()
    denom = 1 + z * z / m
    centre = (f + z * z / (2 * m)) / denom
    half = z * math.sqrt(f * (1 - f) / m + z * z / (4 * m * m)) / denom
    gmv = float(value[rr.target[hit]].sum()) * n / m if value is not None else 0.0
    return n * f, n * max(centre - half, 0), n * min(centre + half, 1), gmv


# ------------------------------------------------------------------ Monte Carlo (cynetdiff)

def doubled_ic(g: DiffusionGraph):  # -> cynetdiff.models.IndependentCascadeModel
    """The model as a plain IC for cynetdiff: nodes 0..n-1 are sharers, n..2n-1 buyers;
    edges sharer u → buyer v (prob) and buyer v → sharer v (reshare); payoff 1 per buyer."""
    from cynetdiff.models import IndependentCascadeModel

    n = g.n
    src = np.concatenate([g.src.astype(np.int64), np.arange(n, 2 * n)])
    dst = np.concatenate([g.dst.astype(np.int64) + n, np.arange(n)])
    prob = np.concatenate([g.prob, g.reshare]).astype(np.float32)
    order = np.lexsort((dst, src))
    src, dst, prob = src[order], dst[order], prob[order]
    starts = np.searchsorted(src, np.arange(2 * n)).astype(np.uint32)
    payoffs = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    return IndependentCascadeModel(starts, dst.astype(np.uint32), activation_probs=prob,
                                   payoffs=payoffs, rng=7)


def mc_spread(model, seeds: list[int], trials: int = 2000) -> float:
    """Expected buyers of ``seeds`` (sharer node ids) by ``trials`` Monte Carlo runs."""
    if not seeds:
        return 0.0
    return float(model.compute_marginal_gains([int(s) for s in seeds], [], trials)[0])


def celf(model, n: int, k: int, trials: int = 500, candidates: np.ndarray | None = None) -> list[int]:
    """CELF lazy greedy (Leskovec et al., KDD 2007) with Monte Carlo marginal gains: the
    small-graph reference that IMM is checked against."""
    import heapq

    pool = np.flatnonzero(candidates) if candidates is not None else np.arange(n)
    heap = [(-mc_spread(model, [int(u)], trials), int(u), 0) for u in pool]
    heapq.heapify(heap)
    seeds: list[int] = []
    base = 0.0
    while heap and len(seeds) < k:
        neg, u, it = heapq.heappop(heap)
        if it == len(seeds):
            seeds.append(u)
            base += -neg
            continue
        gain = mc_spread(model, seeds + [u], trials) - base
        heapq.heappush(heap, (-gain, u, len(seeds)))
    return seeds
