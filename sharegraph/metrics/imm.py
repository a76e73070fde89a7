"""Influence maximisation kernels: reverse-reachable (RR) sets, IMM, CELF, Monte Carlo spread.

The launch planner's diffusion model (docs/planner.md) is an independent cascade (IC) with a
node coin: a sharer ``u`` makes each audience member ``v`` buy with probability ``p[u→v]``; a
buyer ``v`` re-shares (becomes a sharer) with probability ``r[v]``; seeds share for sure.
Expected *buyers* of a seed set is then an IC spread on the doubled graph sharer→buyer→sharer
(:func:`doubled_ic`), so the classic results apply: the spread is monotone and submodular
(Kempe, Kleinberg & Tardos, KDD 2003) and ``n · Pr[S covers a random RR set]`` estimates it
without bias (Borgs et al., SODA 2014). Seeds come from IMM (Tang, Shi & Xiao, SIGMOD 2015):
enough RR sets for a (1 − 1/e − ε) guarantee with probability 1 − n^-ℓ, then greedy max cover.

RR sets are sampled with NumPy, all sets of a batch at once (no Python loop over nodes or
sets): the targets without any live in-edge (most of them when conversion is rare) are only
counted; for the others, each BFS level draws the live in-edges of the whole frontier by a
Poisson walk on the running edge hazard (one draw per live edge, not one coin per edge) and
drops (set, node) pairs already seen. Sets are stored as int32 CSR; the greedy cover is one
``bincount`` decrement per pick. Monte Carlo checks use cynetdiff (Cython IC simulation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

P_MAX = 1.0 - 1e-12
"""Edge probabilities are clipped below 1 so that every edge's hazard −log(1 − p) is finite."""
MEM_BUDGET = 4 * 2**30
"""Bytes that IMM's RR sets (and the greedy cover's index over them) may take; θ above what
fits is capped, and the result says so (``capped``)."""


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

    def reverse_index(self) -> ReverseIndex:
        """In-edges per node with their running hazard (see :class:`ReverseIndex`)."""
        order = _stable_order(self.dst, self.n)
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.dst, minlength=self.n), out=indptr[1:])
        hazard = np.zeros(order.size + 1, dtype=np.float64)
        np.cumsum(-np.log1p(-np.clip(np.asarray(self.prob, dtype=np.float64)[order], 0.0, P_MAX)),
                  out=hazard[1:])
        return ReverseIndex(indptr, self.src[order].astype(np.int32), hazard)


def _stable_order(keys: np.ndarray, n: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for ints in [0, n), by SciPy's O(len) counting
    sort (COO -> CSR keeps the input order within a row): 2-3x faster at 10M keys."""
    m = keys.size
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    cols = np.arange(m, dtype=np.int32 if m < 2**31 else np.int64)
    csr = sparse.csr_matrix((np.ones(m, dtype=np.int8), (keys, cols)), shape=(n, m))
    return csr.indices.astype(np.int64)


def _unique_int(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values: ``np.unique`` by sorting (NumPy 2.4's hash-based ``np.unique``
    of int64 is ~100x slower at millions of values)."""
    a = np.sort(a)
    if a.size < 2:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


@dataclass(frozen=True)
class ReverseIndex:
    """In-edges per node: ``src[indptr[v]:indptr[v+1]]`` are the sharers who reach ``v``;
    ``hazard[j]`` = Σ −log(1 − p) over the in-edges before edge ``j`` (one running sum over
    all nodes). The live in-edges of ``v`` are then the points of a unit-rate Poisson walk
    along ``[hazard[indptr[v]], hazard[indptr[v+1]])``: jump by Exp(1), the edge whose
    interval holds the landing point is live, continue from that edge's end. P(edge j is
    live) = 1 − e^(−h_j) = p_j, independently, and the work is one draw per live edge plus one,
    not one per edge (the subset sampling of Guo et al., SUBSIM, SIGMOD 2020). The running sum
    is float64: at ~17M edges of typical hazards its rounding (~1e-10) only matters for edges
    with p below ~1e-8, whose effect on any spread is nil."""

    indptr: np.ndarray
    src: np.ndarray
    hazard: np.ndarray

    def any_live(self) -> np.ndarray:
        """P(at least one live in-edge) per node."""
        return -np.expm1(-(self.hazard[self.indptr[1:]] - self.hazard[self.indptr[:-1]]))


@dataclass
class RRSets:
    """RR sets in CSR form: set i holds ``nodes[ptr[i]:ptr[i+1]]``; ``target[i]`` its root.

    Sets that came out empty are not stored, only counted (``empty``): with small conversion
    probabilities most are, and an empty set is never covered."""

    ptr: np.ndarray
    nodes: np.ndarray
    target: np.ndarray
    empty: int = 0

    @property
    def count(self) -> int:
        """All sets sampled, the empty ones included (the θ of IMM)."""
        return len(self.target) + self.empty

    @property
    def nbytes(self) -> int:
        return self.ptr.nbytes + self.nodes.nbytes + self.target.nbytes


def _empty_rr(count: int = 0) -> RRSets:
    return RRSets(np.zeros(1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), count)


def _live_in_edges(rev: ReverseIndex, node: np.ndarray, sid: np.ndarray, rng: np.random.Generator,
                   given_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(set id, source) of every live in-edge of each ``node`` (with its set id ``sid``), by
    the Poisson walk of :class:`ReverseIndex`; ``given_one``: conditioned on at least one
    live in-edge (the first jump is drawn from Exp(1) truncated to the node's hazard)."""
    pos = rev.indptr[node]
    t = rev.hazard[pos]
    end = rev.hazard[rev.indptr[node + 1]]
    if given_one:
        jump = -np.log1p(rng.random(node.size) * np.expm1(-(end - t)))
    else:
        jump = rng.standard_exponential(node.size)
    out_s, out_u = [], []
    while sid.size:  # one pass per live edge of the node with the most
        t = t + jump
        hit = t < end
        if not hit.all():
            t, end, sid, pos = t[hit], end[hit], sid[hit], pos[hit]
        j = _landing_edge(rev.hazard, pos, t)
        out_s.append(sid)
        out_u.append(rev.src[j])
        pos = j + 1
        t = rev.hazard[pos]
        jump = rng.standard_exponential(sid.size)
    if not out_s:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_s), np.concatenate(out_u).astype(np.int64)


def _landing_edge(hazard: np.ndarray, pos: np.ndarray, t: np.ndarray, steps: int = 8) -> np.ndarray:
    """The edge ``j >= pos`` with ``hazard[j] <= t < hazard[j + 1]`` (= ``searchsorted(hazard,
    t, "right") - 1``): a few vectorised steps forward from ``pos`` (in-lists are short, and
    the reads are near each other), then a binary search for whoever is still walking."""
    j = pos.copy()
    idx = np.flatnonzero(hazard[j + 1] <= t)
    for _ in range(steps):
        if idx.size == 0:
            return j
        j[idx] += 1
        idx = idx[hazard[j[idx] + 1] <= t[idx]]
    if idx.size:
        j[idx] = np.searchsorted(hazard, t[idx], side="right") - 1
    return j


def sample_rr_sets(g: DiffusionGraph, count: int, rng: np.random.Generator,
                   rev: ReverseIndex | None = None, batch: int = 1_000_000) -> RRSets:
    """``count`` random RR sets: a uniform target v, then every u that reaches v through live
    edges whose intermediate nodes all re-share. v is a member only when reached back (v
    shares, someone buys and re-shares, v buys through them), and is never expanded twice.

    Vectorised over all sets at once: first the number of targets per node that have at
    least one live in-edge (the others are empty sets, only counted); then, ``batch`` non-empty roots at a time, each BFS level draws the live
    in-edges of the whole frontier by the hazard walk and drops (set, node) pairs already
    seen."""
    rev = rev or g.reverse_index()
    n = g.n
    if count <= 0 or n == 0:
        return _empty_rr()
    q = rev.any_live()
    if count < n:
        tgt = rng.integers(0, n, size=count, dtype=np.int64)
        roots = np.sort(tgt[rng.random(count) < q[tgt]])
    else:
        # targets per node that have a live in-edge: one multinomial over n + 1 outcomes
        # (v with a live in-edge: q[v] / n; no live in-edge anywhere: the rest)
        pvals = np.append(q / n, 0.0)
        pvals[-1] = max(1.0 - pvals[:-1].sum(), 0.0)
        roots = np.repeat(np.arange(n, dtype=np.int64), rng.multinomial(count, pvals)[:-1])
    ptrs, nodes_all = [np.zeros(1, dtype=np.int64)], []
    offset = 0
    bits = max(int(n - 1).bit_length(), 1)  # key = set << bits | node (shifts, not int64 division)
    mask = np.int64((1 << bits) - 1)
    for start in range(0, roots.size, batch):
        tgt = roots[start:start + batch]
        b = tgt.size
        cand_set, cand_node = _live_in_edges(rev, tgt, np.arange(b, dtype=np.int64), rng, given_one=True)
        seen: list[np.ndarray] = []
        found: list[np.ndarray] = []
        while cand_set.size:
            new = _unique_int((cand_set << bits) | cand_node)
            for old in seen:
                new = new[~_isin_sorted(new, old)]
            seen.append(new)
            found.append(new)
            new_set, new_node = new >> bits, new & mask
            go = (rng.random(new.size) < g.reshare[new_node]) & (new_node != tgt[new_set])
            cand_set, cand_node = _live_in_edges(rev, new_node[go], new_set[go], rng)
        keys = np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)
        counts = np.bincount(keys >> bits, minlength=b)
        ptrs.append(offset + np.cumsum(counts))
        nodes_all.append((keys & mask).astype(np.int32))
        offset += int(keys.size)
    return RRSets(np.concatenate(ptrs), np.concatenate(nodes_all) if nodes_all else np.zeros(0, np.int32),
                  roots.astype(np.int32), count - roots.size)


def _isin_sorted(keys: np.ndarray, sorted_ref: np.ndarray) -> np.ndarray:
    if sorted_ref.size == 0:
        return np.zeros(keys.size, dtype=bool)
    idx = np.searchsorted(sorted_ref, keys)
    idx[idx == sorted_ref.size] = 0
    return sorted_ref[idx] == keys


def concat(a: RRSets, b: RRSets) -> RRSets:
    return RRSets(np.concatenate([a.ptr, a.ptr[-1] + b.ptr[1:]]), np.concatenate([a.nodes, b.nodes]),
                  np.concatenate([a.target, b.target]), a.empty + b.empty)


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
    m = len(rr.target)
    set_of = np.repeat(np.arange(m, dtype=np.int32), np.diff(rr.ptr))
    inc = sparse.csr_matrix((np.ones(rr.nodes.size, dtype=np.int8), (rr.nodes, set_of)), shape=(n, m))
    del set_of
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
            if members.size * 16 < n:
                np.subtract.at(degree, members, 1)
            else:
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


BYTES_PER_MEMBER = 24
"""Peak bytes per stored RR-set member while covering: the member (int32), its set id and the
cover's node → set index (int32 each, plus SciPy's conversion copies)."""
BYTES_PER_SET = 32
"""Peak bytes per stored (non-empty) RR set: pointer (int64), target (int32), alive flag,
target value (float64) and the sampler's working arrays."""


def rr_cap(sample: RRSets, mem_budget: float) -> int:
    """The most RR sets whose storage and greedy cover fit ``mem_budget`` bytes, at the
    members per set and non-empty share seen in ``sample``."""
    if sample.count == 0:
        return 2**62
    per_set = (sample.nodes.size * BYTES_PER_MEMBER + len(sample.target) * BYTES_PER_SET) / sample.count
    return int(mem_budget / max(per_set, 1e-9))


def imm(g: DiffusionGraph, k: int, rng: np.random.Generator, eps: float = 0.5, ell: float = 1.0,
        max_rr: int | None = None, candidates: np.ndarray | None = None,
        mem_budget: float = MEM_BUDGET, rev: ReverseIndex | None = None) -> IMMResult:
    """IMM (Tang, Shi & Xiao 2015, Algorithms 1-3): estimate a lower bound of OPT by doubling
    guesses, then sample θ = λ*/LB RR sets and select greedily. The selection uses θ *fresh*
    RR sets, not the lower-bound phase's (Chen, CSoNet 2018: reusing them breaks the
    martingale argument). θ is capped by ``max_rr`` and by what fits ``mem_budget`` bytes
    (estimated from the sets already drawn, before sampling); ``capped`` then says that the
    (1 − 1/e − ε) guarantee is not certified."""
    n = max(g.n, 2)
    k = max(1, min(k, n))
    ell = ell * (1 + math.log(2) / math.log(n))
    rev = rev or g.reverse_index()
    lb_c = _log_binom(n, k)
    eps_p = math.sqrt(2) * eps
    lam_p = (2 + 2 / 3 * eps_p) * (lb_c + ell * math.log(n) + math.log(max(math.log2(n), 1.0))) * n / eps_p**2
    rr = _empty_rr()
    lb = 1.0
    capped = False

    def cap() -> int:
        probe = rr if rr.count >= 10_000 else sample_rr_sets(g, 10_000, rng, rev)
        return min(max_rr if max_rr is not None else 2**62, rr_cap(probe, mem_budget))

    for i in range(1, max(int(math.log2(n)), 2)):
        x = n / 2**i
        theta_i = int(math.ceil(lam_p / x))
        if theta_i > (c := cap()):
            theta_i, capped = c, True
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
    if theta > (c := cap()):
        theta, capped = c, True
    del rr, cov
    rr = sample_rr_sets(g, theta, rng, rev)
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
    set_of = np.repeat(np.arange(len(rr.target), dtype=np.int64), np.diff(rr.ptr))
    hit = np.zeros(len(rr.target), dtype=bool)
    hit[set_of[is_seed[rr.nodes]]] = True
    f = hit.sum() / m
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
