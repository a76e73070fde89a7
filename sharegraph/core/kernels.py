"""Vectorised graph kernels over integer node arrays (NumPy / SciPy), no Python loops over nodes.

NetworkX is the graph model for notebooks and small subgraphs; at 2M nodes / 10M edges it is
too slow (docs/performance.md), so the heavy metrics are computed here from arrays and
cross-checked against NetworkX / igraph on small graphs in the tests.

Conventions: nodes are ``0..n-1``; a forest is a ``parent`` array with ``-1`` for a root.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import repeat

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Forest:
    """A parent array made acyclic, with every node's root and depth (root = 0)."""

    parent: np.ndarray
    """Parent index after cycle breaking (-1 = root)."""
    root: np.ndarray
    depth: np.ndarray
    cut: np.ndarray
    """True where the node's parent edge was cut to break a cycle (it became a root)."""


def _jump(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointer doubling: (ancestor 2**k steps up clamped at a root, steps taken).

    After ceil(log2(n)) + 1 rounds every node of a finite acyclic chain sits on its root;
    nodes on or above a cycle keep circling and never reach a self-pointing root.
    """
    n = parent.size
    idx = np.arange(n, dtype=np.int64)
    jump = np.where(parent < 0, idx, parent).astype(np.int64)
    dist = (parent >= 0).astype(np.int64)
    rounds = max(1, int(np.ceil(np.log2(max(n, 2)))) + 1)
    for _ in range(rounds):
        dist = dist + dist[jump]
        jump = jump[jump]
    return jump, dist


def break_cycles(parent: np.ndarray) -> Forest:
    """Make ``parent`` a forest: cut one edge per cycle, deterministically, then root/depth.

    In every cycle of the functional graph the member with the smallest index loses its
    parent (becomes a root). Callers order their ids so that "smallest index" is a
    documented choice (e.g. the smallest id). O(n log n), all NumPy.
    """
    parent = np.asarray(parent, dtype=np.int64).copy()
    n = parent.size
    cut = np.zeros(n, dtype=bool)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Forest(parent, empty, empty.copy(), cut)
    parent[(parent >= n)] = -1
    jump, dist = _jump(parent)
    stuck = parent[jump] >= 0  # did not reach a root: on or above a cycle
    if stuck.any():
        # jump^(2^k) maps each stuck node onto its cycle; on the cycle it is a rotation, so
        # the image is exactly the set of cycle members.
        on_cycle = np.zeros(n, dtype=bool)
        on_cycle[jump[stuck]] = True
        members = np.flatnonzero(on_cycle)
        # smallest member of each cycle by min-doubling along the cycle
        low = np.arange(n, dtype=np.int64)
        step = parent.copy()
        step[~on_cycle] = np.arange(n)[~on_cycle]
        for _ in range(max(1, int(np.ceil(np.log2(max(n, 2)))) + 1)):
            low = np.minimum(low, low[step])
            step = step[step]
        reps = members[low[members] == members]
        parent[reps] = -1
        cut[reps] = True
        jump, dist = _jump(parent)
    return Forest(parent, jump, dist, cut)


def _leaves_up(
    parent: np.ndarray, depth: np.ndarray, weights: Sequence[np.ndarray],
    decays: Sequence[float], heights: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Descendants, subtree height and decayed descendant sums of a forest with known depths.

    One pass leaves-up, one depth level at a time; each level adds its nodes into their
    parents (the level above) with ``bincount`` over that level only, so the whole pass is
    O(n) (docs/performance.md). ``parent[v]`` must sit exactly one level above ``v``.
    Without ``heights`` the height array stays 0 (its ``maximum.at`` is the slowest step).
    """
    n = parent.size
    reach = np.zeros(n, dtype=np.int64)
    height = np.zeros(n, dtype=np.int64)
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    sums = [np.zeros(n, dtype=np.float64) for _ in ws]
    if n == 0:
        return reach, height, sums
    order = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[order], np.arange(depth.max() + 2))
    pos = np.empty(n, dtype=np.int64)  # position of each node within its depth level
    pos[order] = np.arange(n) - bounds[depth[order]]
    for level in range(int(depth.max()), 0, -1):
        kids = order[bounds[level]:bounds[level + 1]]
        above = order[bounds[level - 1]:bounds[level]]
        slot = pos[parent[kids]]
        reach[above] += np.bincount(slot, weights=reach[kids] + 1,
                                    minlength=above.size).astype(np.int64)
        if heights:
            tallest = np.zeros(above.size, dtype=np.int64)
            np.maximum.at(tallest, slot, height[kids] + 1)
            height[above] = np.maximum(height[above], tallest)
        for w, total, decay in zip(ws, sums, decays, strict=True):
            total[above] += np.bincount(slot, weights=w[kids] + decay * total[kids],
                                        minlength=above.size)
    return reach, height, sums


def subtree_aggregates(
    forest: Forest, weights: Sequence[np.ndarray], decays: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per node: descendants, subtree height and a decayed sum of descendants per weight.

    ``sums[j][p] = Σ_{d descendant of p at generation g >= 1} decays[j]**(g-1) *
    weights[j][d]``. One pass leaves-up, one depth level at a time, O(n).

    Examples
    --------
    A chain 0 <- 1 <- 2 with weight 1 and decay 0.5: node 0 has 2 descendants and
    ``1 + 0.5 * 1 = 1.5``.

    >>> reach, height, (s,) = subtree_aggregates(break_cycles(np.array([-1, 0, 1])),
    ...                                          [np.ones(3)], [0.5])
    >>> reach.tolist(), height.tolist(), s.tolist()
    ([2, 1, 0], [2, 1, 0], [1.5, 1.0, 0.0])
    """
    return _leaves_up(forest.parent, forest.depth, weights, decays)


def subtree_sums(
    forest: Forest, weight: np.ndarray, decay: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per node: number of descendants and decayed sum of descendants' ``weight``.

    ``sums[p] = Σ_{d descendant of p at generation g >= 1} decay**(g-1) * weight[d]``
    (:func:`subtree_aggregates` with one weight).
    """
    reach, _, (sums,) = subtree_aggregates(forest, [weight], [decay])
    return reach, sums


def subtree_sizes(parent: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Nodes in the subtree of every node, itself included, for a forest given as arrays.

    ``parent[v]`` is the index of v's parent (-1 for a root) and ``depth[v]`` its distance
    from its root: the descendants of :func:`subtree_aggregates` plus one, for a forest whose
    depths are already known (e.g. ``graph.share_nodes``). Raises ``ValueError`` when a
    parent is not exactly one level above its child.
    """
    parent = np.asarray(parent, dtype=np.int64)
    depth = np.asarray(depth, dtype=np.int64)
    nonroot = parent >= 0
    if (depth[~nonroot] != 0).any() or (depth[parent[nonroot]] != depth[nonroot] - 1).any():
        bad = np.flatnonzero(
            (~nonroot & (depth != 0))
            | (nonroot & (depth[np.where(nonroot, parent, 0)] != depth - 1))
        )
        raise ValueError(
            f"inconsistent forest: {bad.size} node(s) whose depth is not parent depth + 1 "
            f"(roots must have depth 0), first index {int(bad[0])}"
        )
    reach, _, _ = _leaves_up(parent, depth, [], [], heights=False)
    return reach + 1


def pagerank(
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray | None,
    n: int,
    alpha: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> np.ndarray:
    """Weighted PageRank by power iteration on a sparse matrix, NetworkX semantics.

    Same definition as ``networkx.pagerank(G, alpha, weight=...)``: each node passes rank
    along its out-edges in proportion to edge weight (parallel edges summed); dangling nodes
    (no out-weight) spread their rank uniformly; teleport is uniform. Returns ranks summing
    to 1.

    Stops when the L1 change of an iteration is below ``tol`` (absolute, not NetworkX's
    ``n * tol``, which on 2M nodes allows ~1e-6 per node): the iteration contracts by
    ``alpha`` in L1, so the remaining error is at most ``alpha / (1 - alpha) * tol``
    (5.7e-10 at the defaults), within 1e-9 of igraph's PRPACK solve on every node. On a
    2M-node, 10M-edge graph that is 42 iterations instead of 16 (2.9 s vs 0.9 s).
    """
    if n == 0:
        return np.zeros(0)
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    w = np.ones(src.size) if weight is None else np.asarray(weight, dtype=np.float64)
    m = sp.csr_matrix((w, (src, dst)), shape=(n, n))
    out = np.asarray(m.sum(axis=1)).ravel()
    dangling = out == 0
    inv = np.zeros(n)
    inv[~dangling] = 1.0 / out[~dangling]
    mt = (sp.diags(inv) @ m).T.tocsr()  # column-stochastic transpose: x_new = mt @ x
    dangling_nodes = np.flatnonzero(dangling)
    x = np.full(n, 1.0 / n)
    change = np.empty(n)
    for _ in range(max_iter):
        # x_new = alpha * (mt @ x + dangling mass / n) + (1 - alpha) / n in place: the same
        # floating-point steps as the expression, fewer temporary vectors (104 iterations on
        # 1.9M nodes: 3.6 s instead of 4.1 s)
        new = mt @ x
        new += x.take(dangling_nodes).sum() / n
        new *= alpha
        new += (1.0 - alpha) / n
        np.subtract(new, x, out=change)
        x = new
        if np.abs(change, out=change).sum() < tol:
            return x
    raise RuntimeError(f"pagerank did not converge in {max_iter} iterations")


LPA_SEED = 42
"""Seed of the random node subsets and tie-breaks of :func:`label_propagation`."""

LPA_BLOCKS = 4
"""Row blocks per update class of :func:`label_propagation`, moved in parallel threads.

Fixed (not the CPU count) so that the result, which depends on each block's random
tie-break stream, is the same on every machine."""


@dataclass(frozen=True)
class _Block:
    """Adjacency rows of some nodes of one update class: CSR over all columns."""

    rows: np.ndarray
    adj: sp.csr_matrix
    deg: np.ndarray
    """Stored entries per row of ``adj``."""
    k: np.ndarray
    """Weighted degree of each row."""
    km: np.ndarray
    """``resolution * k / 2m``: the modularity penalty per unit of label degree."""


def _class_blocks(c: int, cls: np.ndarray, src: np.ndarray, dst: np.ndarray, w: np.ndarray,
                  k: np.ndarray, scale: float) -> list[_Block]:
    """The nodes of update class ``c`` in ``LPA_BLOCKS`` row blocks.

    A block's CSR holds both directions of its rows' edges (parallel edges summed).
    """
    rows = np.flatnonzero(cls == c)
    pos = np.zeros(cls.size, dtype=src.dtype)
    pos[rows] = np.arange(rows.size, dtype=src.dtype)
    out, into = np.flatnonzero(cls[src] == c), np.flatnonzero(cls[dst] == c)  # masks once
    adj = sp.csr_matrix(
        (np.concatenate([w[out], w[into]]),
         (pos[np.concatenate([src[out], dst[into]])], np.concatenate([dst[out], src[into]]))),
        shape=(rows.size, cls.size))
    cuts = np.linspace(0, rows.size, LPA_BLOCKS + 1).astype(np.int64)
    return [_Block(rows[a:b], sub, np.diff(sub.indptr), k[rows[a:b]], k[rows[a:b]] * scale)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a
            for sub in [_row_view(adj, int(a), int(b))]]


def _row_view(adj: sp.csr_matrix, a: int, b: int) -> sp.csr_matrix:
    """Rows ``a:b`` of ``adj`` sharing its data and indices: ``adj[a:b]`` copies them (0.8 s
    per update class of a 2M-node graph). Nothing writes to a block's matrix."""
    lo, hi = adj.indptr[a], adj.indptr[b]
    return sp.csr_matrix((adj.data[lo:hi], adj.indices[lo:hi], adj.indptr[a:b + 1] - lo),
                         shape=(b - a, adj.shape[1]), copy=False)


def _best_moves(b: _Block, labels: np.ndarray, tot: np.ndarray,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``b`` that gain modularity by moving, and the label each moves to.

    ``labels`` / ``tot`` (total degree per label) are a snapshot: the whole update class
    moves at once. ``w(i, c)`` per (row, neighbour label) comes from relabelling the CSR
    columns and summing duplicates (SciPy, C++); per-entry row values by ``np.repeat``.
    """
    cur = labels[b.rows]
    cnt = sp.csr_matrix((b.adj.data.copy(), labels[b.adj.indices], b.adj.indptr.copy()),
                        shape=b.adj.shape, copy=False)
    cnt.sum_duplicates()
    col = cnt.indices
    deg = np.diff(cnt.indptr)
    own = np.flatnonzero(col == np.repeat(cur, deg))
    gain = cnt.data - np.repeat(b.km, deg) * tot[col]
    r_own = np.searchsorted(cnt.indptr, own, side="right") - 1
    gain[own] += b.km[r_own] * b.k[r_own]
    stay = b.km * (b.k - tot[cur])
    stay[r_own] = gain[own]  # K_c without i itself on its own label
    # random tie-break: a jitter far below any weight (weights are counts >= 1)
    jit = gain + 1e-9 * rng.random(gain.size)
    top = np.maximum.reduceat(jit, cnt.indptr[:-1])
    pick = np.flatnonzero(jit == np.repeat(top, deg))
    rp = np.searchsorted(cnt.indptr, pick, side="right") - 1
    first = np.ones(pick.size, dtype=bool)
    first[1:] = rp[1:] != rp[:-1]
    pick = pick[first]  # one entry per row, rows in order
    move = gain[pick] > stay + 1e-12 * (1.0 + np.abs(stay))
    return b.rows[move], col[pick[move]]


def _inside_weight(b: _Block, labels: np.ndarray) -> float:
    """Weight of the edges of ``b``'s rows whose two ends share a label."""
    return float(b.adj.data[labels[b.adj.indices] == np.repeat(labels[b.rows], b.deg)].sum())


def label_propagation(
    src: np.ndarray,
    dst: np.ndarray,
    n: int,
    max_iter: int = 16,
    weight: np.ndarray | None = None,
    resolution: float = 1.0,
    seed: int = LPA_SEED,
    update_fraction: float = 0.5,
    tol: float = 1e-3,
    q_tol: float = 5e-3,
    workers: int | None = None,
) -> np.ndarray:
    """Communities of an undirected weighted graph: modularity-aware label propagation.

    LPAm (Barber & Clark 2009): a node moves to the neighbouring label ``c`` that maximises
    its modularity gain ``w(i, c) - resolution * k_i * K_c / 2m`` (``w(i, c)`` = weight of
    i's edges into c, ``k_i`` its weighted degree, ``K_c`` the total degree of c without i,
    ``2m`` the total degree), and stays unless some label beats staying. Plain label
    propagation lets hubs (KOLs, agents with big downlines) pull everyone into one giant
    label; the ``K_c`` penalty grows with the label's size, so it cannot.

    Semi-synchronous: the nodes are split at random (fixed ``seed``) into 1/``update_fraction``
    classes that move in turn, each class all at once, which avoids the oscillation of fully
    synchronous updates; ties between labels are broken at random. A sweep gives every class
    one round. Stops after a sweep in which at most ``tol`` x the non-isolated nodes moved
    (converged), or which raised the modularity by less than ``q_tol`` (a plateau: nodes
    drift between labels for no gain, as on a graph without community structure), or after
    ``max_iter`` rounds. Parallel edges add up, self-loops are ignored, isolated nodes keep
    their own label. Each class is cut into ``LPA_BLOCKS`` row blocks (CSR, built once) that
    are evaluated in ``workers`` threads (NumPy and SciPy release the GIL), each with its own
    seeded random stream, so the result does not depend on ``workers``. No Python loop over
    nodes. Returns labels 0..k-1 numbered in order of the lowest node.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.int32 if n < 2**31 - 1 else np.int64
    src, dst, w = _weighted_edges(src, dst, weight, idx)
    k = np.bincount(src, weights=w, minlength=n) + np.bincount(dst, weights=w, minlength=n)
    m2 = float(k.sum())
    labels = np.arange(n, dtype=idx)
    active = np.flatnonzero(k > 0)
    if active.size == 0:
        return labels.astype(np.int64)
    rng = np.random.default_rng(seed)
    n_cls = max(1, int(round(1.0 / update_fraction)))
    # random classes of nodes that move together, cut into row blocks (built once)
    cls = np.full(n, -1, dtype=np.int8)
    cls[active] = rng.integers(0, n_cls, active.size)

    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        build = partial(_class_blocks, cls=cls, src=src, dst=dst, w=w, k=k, scale=resolution / m2)
        classes = [bl for bl in pool.map(build, range(n_cls)) if bl]
        del src, dst, w, cls, build
        _sweep(pool, classes, labels, k, resolution, seed, max_iter, tol, q_tol, active.size)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


def _weighted_edges(src: np.ndarray, dst: np.ndarray, weight: np.ndarray | None,
                    idx: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges as ``idx`` arrays with float weights (1 when none), self-loops and
    non-positive weights dropped: they add nothing to a community."""
    src = np.asarray(src, dtype=idx)
    dst = np.asarray(dst, dtype=idx)
    w = np.ones(src.size) if weight is None else np.asarray(weight, dtype=np.float64)
    keep = (src != dst) & (w > 0)
    return src[keep], dst[keep], w[keep]


def _sweep(pool: ThreadPoolExecutor, classes: list[list[_Block]], labels: np.ndarray,
           k: np.ndarray, resolution: float, seed: int, max_iter: int, tol: float,
           q_tol: float, n_active: int) -> None:
    """Move the update classes in turn until converged, a plateau or ``max_iter`` rounds.

    Updates ``labels`` in place (see :func:`label_propagation` for the stopping rules).
    """
    m2 = float(k.sum())
    n = labels.size
    every = [b for bl in classes for b in bl]
    tot = k.copy()

    def modularity(labels: np.ndarray, tot: np.ndarray) -> float:
        inside = sum(pool.map(_inside_weight, every, repeat(labels)))
        return inside / m2 - resolution * float(np.square(tot / m2).sum())

    q = -resolution * float(np.square(k / m2).sum())  # every node alone: nothing inside
    sweep = 0
    for it in range(max_iter):
        blocks = classes[it % len(classes)]
        streams = [np.random.default_rng([seed, it, j]) for j in range(len(blocks))]
        moves = list(pool.map(_best_moves, blocks, repeat(labels), repeat(tot), streams))
        who = np.concatenate([m[0] for m in moves])
        if who.size:
            labels[who] = np.concatenate([m[1] for m in moves])
            tot = np.bincount(labels, weights=k, minlength=n)
        sweep += who.size
        if it % len(classes) == len(classes) - 1:  # every node had its turn
            if sweep <= tol * n_active:  # converged
                break
            q, q_before = modularity(labels, tot), q
            if q - q_before < q_tol:  # plateau
                break
            sweep = 0
