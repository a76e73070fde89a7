"""sharegraph.metrics.tails equals scipy.stats to the bit: random, extreme and out-of-support
arguments, the shapes the affinity and integrity tests pass."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from sharegraph.metrics.tails import binom_sf, hypergeom_sf, norm_isf


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit for bit, NaN where scipy gives NaN."""
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert (got[ok].view(np.int64) == want[ok].view(np.int64)).all(), \
        np.flatnonzero(got[ok] != want[ok])[:5]


@pytest.mark.parametrize("seed", range(4))
def test_hypergeom_sf_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.integers(1, [50, 5_000, 2_000_000][seed % 3], size=20_000)
    n = rng.integers(0, m + 1)
    draws = rng.integers(0, m + 1)
    k = rng.integers(-3, np.minimum(n, draws) + 3)  # below, inside and above the support
    _same(hypergeom_sf(k, m, n, draws), stats.hypergeom.sf(k, m, n, draws))


def test_hypergeom_sf_edges_and_invalid_arguments() -> None:
    k = np.array([-1, 0, 0, 5, 9, 10, 0, 3, 2, 0])
    m = np.array([10, 10, 1, 10, 10, 10, 0, 5, 5, 2_000_000])
    n = np.array([5, 0, 1, 10, 10, 10, 0, 7, 2, 1_000_000])  # n > M and M = 0: invalid
    draws = np.array([5, 5, 1, 10, 10, 10, 0, 2, 6, 1_999_999])  # N > M: invalid
    _same(hypergeom_sf(k, m, n, draws), stats.hypergeom.sf(k, m, n, draws))


@pytest.mark.parametrize("seed", range(4))
def test_binom_sf_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = rng.integers(0, [40, 10_000, 5_000_000][seed % 3], size=20_000)
    k = rng.integers(-3, n + 3)
    p = rng.choice([0.0, 1.0, 1e-12, 0.5, 1 - 1e-9], size=n.size)
    p = np.where(rng.random(n.size) < 0.7, rng.random(n.size) ** 3, p)
    _same(binom_sf(k, n, p), stats.binom.sf(k, n, p))


def test_binom_sf_invalid_probability_is_nan_like_scipy() -> None:
    k, n, p = np.array([1, 1, 1]), np.array([5, 5, -1]), np.array([-0.1, 1.5, 0.5])
    _same(binom_sf(k, n, p), stats.binom.sf(k, n, p))


def test_norm_isf_is_scipys() -> None:
    for q in [1e-300, 1e-12, 0.003, 0.05, 0.25, 0.5, 0.75, 0.999999, 0.0, 1.0]:
        assert np.float64(norm_isf(q)).view(np.int64) == np.float64(stats.norm.isf(q)).view(np.int64)
    for q in [-0.1, 1.5, float("nan")]:  # outside [0, 1]: NaN, as SciPy
        assert np.isnan(norm_isf(q)) and np.isnan(stats.norm.isf(q))


def test_a_run_does_not_import_scipy_stats() -> None:
    """The point of the module: the builders that test pairs do not pull scipy.stats in."""
    code = ("import sys, sharegraph.metrics.affinity, sharegraph.metrics.expansion, "
            "sharegraph.metrics.integrity; print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_threaded_kernels_give_one_calls_values(monkeypatch) -> None:
    """Large inputs are split across threads by strided slices: with 7 threads over a size
    they do not divide, every element still gets its own value, in place."""
    from sharegraph.metrics import tails

    rng = np.random.default_rng(11)
    m = rng.integers(1, 5_000, size=10_001)
    n, draws = rng.integers(0, m + 1), rng.integers(0, m + 1)
    k = rng.integers(0, np.minimum(n, draws) + 1)
    p = rng.random(10_001)
    monkeypatch.setattr(tails.os, "cpu_count", lambda: 7)
    monkeypatch.setattr(tails, "THREADED_MIN", 10)
    _same(hypergeom_sf(k, m, n, draws), stats.hypergeom.sf(k, m, n, draws))
    _same(binom_sf(k, m, p), stats.binom.sf(k, m, p))
