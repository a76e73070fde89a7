"""Spark graph kernels against the NumPy/SciPy kernels of sharegraph.core.kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as scipy_cc

from sharegraph.core import kernels

pytestmark = pytest.mark.xdist_group("spark")


def _edges(spark, src, dst, w=None):
    w = np.ones(len(src)) if w is None else w
    rows = list(zip(map(int, src), map(int, dst), map(float, w), strict=True))
    return spark.createDataFrame(rows, "src BIGINT, dst BIGINT, weight DOUBLE")


def _array(df, col: str, n: int) -> np.ndarray:
    t = df.toArrow()
    out = np.full(n, np.nan)
    out[t.column("id").to_numpy()] = t.column(col).to_numpy()
    return out


def test_weighted_pagerank_matches_scipy_kernel(spark) -> None:
    from sharegraph.spark.kernels import pagerank

    rng = np.random.default_rng(3)
    n, m = 60, 150
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    src[:5] = dst[:5]  # self-loops, and parallel edges below
    src = np.append(src, src[10:15])
    dst = np.append(dst, dst[10:15])
    w = rng.uniform(1, 500, src.size).round(2)
    # alpha 0.5: 25 iterations instead of 106 at 0.85 (each a Spark job of ~0.3 s here);
    # the same code path, tolerance and stopping rule
    want = kernels.pagerank(src, dst, w, n, alpha=0.5)
    assert (np.bincount(src, minlength=n) == 0).sum() > 3  # dangling nodes take part
    got = _array(pagerank(spark, _edges(spark, src, dst, w), n, alpha=0.5), "rank", n)
    assert np.abs(got - want).max() < 1e-9
    assert abs(got.sum() - 1.0) < 1e-9


def test_connected_components_match_scipy(spark) -> None:
    from sharegraph.spark.kernels import connected_components

    rng = np.random.default_rng(5)
    n = 80
    src, dst = rng.integers(0, n, 60), rng.integers(0, n, 60)
    chain = np.arange(20, 40)  # a long path: many rounds without the pointer jump
    src, dst = np.append(src, chain[:-1]), np.append(dst, chain[1:])
    _, want = scipy_cc(sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n)),
                       directed=False)
    nodes = spark.range(n)
    got = connected_components(spark, _edges(spark, src, dst), nodes).toArrow()
    ids, comp = got.column("id").to_numpy(), got.column("component").to_numpy()
    assert sorted(ids.tolist()) == list(range(n))
    label = np.empty(n, dtype=np.int64)
    label[ids] = comp
    # the same partition, and each component named by its smallest member
    for c in np.unique(want):
        members = np.flatnonzero(want == c)
        assert set(label[members].tolist()) == {members.min()}


def test_label_propagation_recovers_the_same_circles(spark) -> None:
    from sklearn.metrics import adjusted_rand_score

    from sharegraph.spark.kernels import label_propagation

    rng = np.random.default_rng(7)
    sizes = [12, 15, 9, 20, 14, 10]
    planted = np.repeat(np.arange(len(sizes)), sizes)
    n = planted.size
    i, j = np.triu_indices(n, 1)
    same = planted[i] == planted[j]
    keep = np.where(same, rng.random(i.size) < 0.6, rng.random(i.size) < 0.01)
    src, dst = i[keep], j[keep]
    w = rng.integers(1, 4, src.size).astype(float)
    ours = kernels.label_propagation(src, dst, n, weight=w, seed=42)
    got = _array(label_propagation(spark, _edges(spark, src, dst, w), n), "label", n)
    assert adjusted_rand_score(ours, got) >= 0.99
    assert adjusted_rand_score(planted, got) >= 0.99


def test_downstream_totals_match_subtree_aggregates(spark) -> None:
    from sharegraph.spark.kernels import downstream_totals

    rng = np.random.default_rng(11)
    n = 200
    parent = np.array([-1 if v < 5 or rng.random() < 0.05 else rng.integers(0, v)
                       for v in range(n)])
    deep = np.arange(150, 200)  # a chain of 50 generations
    parent[deep[1:]] = deep[:-1]
    gmv = rng.uniform(0, 1000, n).round(2)
    cost = rng.uniform(0, 50, n).round(2)
    reach, height, (decayed, total, cost_total) = kernels.subtree_aggregates(
        kernels.break_cycles(parent), [gmv, gmv, cost], [0.5, 1.0, 1.0])
    rows = [(v, int(parent[v]), float(gmv[v]), float(cost[v])) for v in range(n)]
    forest = spark.createDataFrame(rows, "id BIGINT, parent BIGINT, gmv DOUBLE, cost DOUBLE")
    got = downstream_totals(spark, forest, ["gmv", "gmv", "cost"], [0.5, 1.0, 1.0]).toArrow()
    assert got.num_rows == n
    order = np.argsort(got.column("id").to_numpy())
    col = {c: got.column(c).to_numpy()[order] for c in got.column_names}
    assert (col["reach"] == reach).all() and (col["generations"] == height).all()
    for mine, want in ((col["sum_0"], decayed), (col["sum_1"], total), (col["sum_2"], cost_total)):
        np.testing.assert_allclose(mine, want, rtol=1e-12, atol=1e-9)
    assert height.max() >= 49


def test_downstream_totals_refuse_a_cycle(spark) -> None:
    from sharegraph.spark.kernels import downstream_totals

    forest = spark.createDataFrame([(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0), (3, -1, 1.0)],
                                   "id BIGINT, parent BIGINT, w DOUBLE")
    with pytest.raises(ValueError, match="cycle"):
        downstream_totals(spark, forest, ["w"], [1.0]).collect()
