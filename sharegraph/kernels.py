"""Vectorised graph kernels over integer node arrays (NumPy / SciPy), no Python loops over nodes.

NetworkX is the graph model for notebooks and small subgraphs; at 2M nodes / 10M edges it is
too slow (PERFORMANCE.md), so the heavy metrics are computed here from arrays and
cross-checked against NetworkX / igraph on small graphs in the tests.

Conventions: nodes are ``0..n-1``; a forest is a ``parent`` array with ``-1`` for a root.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def subtree_sums(
    forest: Forest, weight: np.ndarray, decay: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per node: number of descendants and decayed sum of descendants' ``weight``.

    ``sums[p] = Σ_{d descendant of p at generation g >= 1} decay**(g-1) * weight[d]``,
    computed leaves-up with one ``bincount`` per depth level (PERFORMANCE.md: 0.3 s at 2M).
    """
    n = forest.parent.size
    reach = np.zeros(n, dtype=np.int64)
    sums = np.zeros(n, dtype=np.float64)
    if n == 0:
        return reach, sums
    weight = np.asarray(weight, dtype=np.float64)
    order = np.argsort(forest.depth, kind="stable")
    bounds = np.searchsorted(forest.depth[order], np.arange(forest.depth.max() + 2))
    for level in range(int(forest.depth.max()), 0, -1):
        nodes = order[bounds[level]:bounds[level + 1]]
        par = forest.parent[nodes]
        reach += np.bincount(par, weights=reach[nodes] + 1, minlength=n).astype(np.int64)
        sums += np.bincount(par, weights=weight[nodes] + decay * sums[nodes], minlength=n)
    return reach, sums


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
    (no out-weight) spread their rank uniformly; teleport is uniform. Convergence when the
    L1 change is below ``n * tol`` (NetworkX's criterion). Returns ranks summing to 1.
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
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        prev = x
        x = alpha * (mt @ prev + prev[dangling].sum() / n) + (1.0 - alpha) / n
        if np.abs(x - prev).sum() < n * tol:
            return x
    raise RuntimeError(f"pagerank did not converge in {max_iter} iterations")


LPA_SEED = 42
"""Seed of the random node subsets and tie-breaks of :func:`label_propagation`."""


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
    one round; stops after a sweep in which at most ``tol`` x the non-isolated nodes moved,
    or no fewer than in the sweep before (a few nodes flipping back and forth), or after
    ``max_iter`` rounds. Parallel edges add up, self-loops are ignored, isolated nodes keep
    their own label. One round relabels the column indices of the class's CSR rows (sliced
    once) and sums duplicates (SciPy, C++), then takes segment maxima (NumPy); no Python loop
    over nodes. Returns labels 0..k-1 numbered in order of the lowest node.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.int32 if n < 2**31 - 1 else np.int64
    src = np.asarray(src, dtype=idx)
    dst = np.asarray(dst, dtype=idx)
    w = np.ones(src.size) if weight is None else np.asarray(weight, dtype=np.float64)
    keep = (src != dst) & (w > 0)
    a, b, w = src[keep], dst[keep], w[keep]
    # symmetric adjacency, int32 indices, parallel edges summed
    adj = sp.csr_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                        shape=(n, n))
    del a, b, w, keep
    k = np.asarray(adj.sum(axis=1)).ravel()
    m2 = float(k.sum())
    labels = np.arange(n, dtype=adj.indices.dtype)
    active = np.flatnonzero(k > 0)
    if active.size == 0:
        return labels.astype(np.int64)
    tot = k.copy()
    rng = np.random.default_rng(seed)
    n_cls = max(1, int(round(1.0 / update_fraction)))
    # random classes of nodes that move together; their rows are sliced once
    cls = rng.integers(0, n_cls, active.size)
    parts = []
    for rows in (active[cls == c] for c in range(n_cls)):
        if rows.size:
            sub = adj[rows]
            parts.append((rows, sub, k[rows], k[rows] * (resolution / m2)))
    del adj
    sweep, last_sweep = 0, active.size + 1
    for it in range(max_iter):
        rows, sub, ki, kim = parts[it % len(parts)]
        cur = labels[rows]
        # w(i, c) per (moving node, neighbour label): relabel the columns and sum duplicate
        # (row, label) pairs (SciPy, C++); per-entry row values by np.repeat, not gathers
        cnt = sp.csr_matrix((sub.data.copy(), labels[sub.indices], sub.indptr.copy()),
                            shape=sub.shape, copy=False)
        cnt.sum_duplicates()
        col = cnt.indices
        deg = np.diff(cnt.indptr)
        kim_r = np.repeat(kim, deg)
        own = np.flatnonzero(col == np.repeat(cur, deg))
        gain = cnt.data - kim_r * tot[col]
        r_own = np.searchsorted(cnt.indptr, own, side="right") - 1
        gain[own] += kim[r_own] * ki[r_own]
        stay = kim * (ki - tot[cur])
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
        moved = int(move.sum())
        if moved:
            labels[rows[move]] = col[pick[move]]
            tot = np.bincount(labels, weights=k, minlength=n)
        sweep += moved
        if it % n_cls == n_cls - 1:  # every node had its turn
            if sweep <= tol * active.size or sweep >= last_sweep:  # settled, or oscillating
                break
            last_sweep, sweep = sweep, 0
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)
