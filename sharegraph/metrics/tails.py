"""Tail probabilities of the affinity and integrity tests, without importing ``scipy.stats``.

Why: ``import scipy.stats`` costs ~0.34 s of every run (its ~100 distributions, optimize,
linalg, fft), a twentieth of a small daily run, for three functions. These call the same
compiled kernels ``scipy.stats`` calls (Boost's, in ``scipy.special``) and apply the same
support and argument rules as ``rv_discrete.sf``, so the values are identical to the bit;
``tests/metrics/test_tails.py`` checks that against ``scipy.stats`` on random and edge cases.
A SciPy that moves the kernels gets ``scipy.stats`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import special

try:  # private names of scipy.special (SciPy >= 1.13); scipy.stats calls exactly these
    from scipy.special._ufuncs import _binom_sf, _hypergeom_sf
except ImportError:  # pragma: no cover - a SciPy that moved them
    _binom_sf = _hypergeom_sf = None


#: elements below which a kernel runs on this thread alone
THREADED_MIN = 4096


def _threaded(kernel: Callable[..., np.ndarray], *args: np.ndarray) -> np.ndarray:
    """``kernel(*args)`` elementwise, on one thread per core: the Boost kernels release the GIL
    and cost up to ~0.1 ms an element (the hypergeometric tail sums terms up to the smaller
    margin), so with 30k leaf categories this was seconds on one core while the other idled.
    Every element is computed alone, so the values are those of one call. Strided slices
    share the expensive elements (they cluster by size) among the threads."""
    size = args[0].size
    threads = min(os.cpu_count() or 1, 8, max(1, size // THREADED_MIN))
    if threads == 1:
        return kernel(*args)
    out = np.empty(size)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda i: kernel(*(a[i::threads] for a in args)), range(threads))
        for i, part in enumerate(parts):
            out[i::threads] = part
    return out


def hypergeom_sf(k: np.ndarray, M: np.ndarray, n: np.ndarray, N: np.ndarray) -> np.ndarray:  # noqa: N803 - SciPy's names
    """``scipy.stats.hypergeom.sf(k, M, n, N)``: P(X > k) for X ~ Hypergeometric(population
    M, n successes, N draws), on integer arrays."""
    k, M, n, N = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in (k, M, n, N)))  # noqa: N806
    if _hypergeom_sf is None:  # pragma: no cover
        from scipy import stats

        return np.asarray(stats.hypergeom.sf(k, M, n, N), dtype=float)
    valid = (M > 0) & (n >= 0) & (N >= 0) & (n <= M) & (N <= M)
    low, high = np.maximum(N - (M - n), 0), np.minimum(n, N)
    inside = valid & (k >= low) & (k < high)
    out = np.zeros(k.shape)
    out[valid & (k < low)] = 1.0
    out[inside] = np.clip(_threaded(_hypergeom_sf, k[inside], n[inside], N[inside], M[inside]), 0, 1)
    out[~valid] = np.nan
    return out


def binom_sf(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.binom.sf(k, n, p)``: P(X > k) for X ~ Binomial(n, p); k and n integers."""
    k, n = (np.asarray(a, dtype=np.int64) for a in (k, n))
    k, n, p = np.broadcast_arrays(k, n, np.asarray(p, dtype=float))
    if _binom_sf is None:  # pragma: no cover
        from scipy import stats

        return np.asarray(stats.binom.sf(k, n, p), dtype=float)
    valid = (n >= 0) & (p >= 0) & (p <= 1)
    inside = valid & (k >= 0) & (k < n)
    out = np.zeros(k.shape)
    out[valid & (k < 0)] = 1.0
    out[inside] = np.clip(_threaded(_binom_sf, np.floor(k[inside]), n[inside], p[inside]), 0, 1)
    out[~valid] = np.nan
    return out


def norm_isf(q: float) -> float:
    """``scipy.stats.norm.isf(q)``: the z with P(Z > z) = q (inf at 0, -inf at 1, NaN outside
    [0, 1], as SciPy)."""
    return float(-special.ndtri(q)) + 0.0  # + 0.0: no -0.0 at q = 0.5, as scipy.stats
