"""sharegraph.metrics.cascades: the structural-virality kernel and marts.cascades, vs NetworkX."""

from __future__ import annotations

import importlib.util
import time
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import combinations

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest
from helpers import graph_contract_db, insert_staging
from hypothesis import given, settings
from hypothesis import strategies as st

from sharegraph.core.kernels import subtree_sizes
from sharegraph.metrics.cascades import (
    build_cascades,
    check_cascade_gmv,
    check_cascade_shape,
    structural_virality,
)

T0 = datetime(2025, 3, 1, 9, 0)


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    """graph.* tables of exactly the shared contract's shape (built by hand so these unit tests do
    not depend on the attribution / graph modules; the pipeline test below uses the real ones)."""
    c = graph_contract_db()
    yield c
    c.close()


def forest_from_parents(parent: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth and root of each node of a parent list whose parents precede their children."""
    depth = np.zeros(len(parent), dtype=np.int64)
    root = np.arange(len(parent))
    for v, p in enumerate(parent):
        if p >= 0:
            depth[v] = depth[p] + 1
            root[v] = root[p]
    return np.asarray(parent, dtype=np.int64), depth, root


def nx_trees(parent: np.ndarray) -> list[nx.Graph]:
    g = nx.Graph()
    g.add_nodes_from(range(parent.size))
    g.add_edges_from((int(v), int(p)) for v, p in enumerate(parent) if p >= 0)
    return [g.subgraph(c).copy() for c in nx.connected_components(g)]


def nx_virality(t: nx.Graph) -> float:
    n = t.number_of_nodes()
    return 0.0 if n == 1 else nx.average_shortest_path_length(t)


def load_forest(con: duckdb.DuckDBPyConnection, parent: np.ndarray, depth: np.ndarray,
                root: np.ndarray) -> None:
    ids = [f"s{i:05d}" for i in range(parent.size)]
    frame = pl.DataFrame({  # noqa: F841 - read by DuckDB
        "share_id": ids,
        "actor_id": [f"u{i % 97}" for i in range(parent.size)],
        "parent_share_id": [ids[p] if p >= 0 else None for p in parent.tolist()],
        "root_share_id": [ids[r] for r in root.tolist()],
        "depth": depth.astype(np.int32),
        "shared_at": [T0 + timedelta(minutes=i) for i in range(parent.size)],
        "product_id": "p1", "category": "beauty", "channel": "moments",
    })
    con.execute("INSERT INTO graph.share_nodes SELECT * FROM frame")


# ------------------------------------------------------------------------------ the kernel

@st.composite
def random_forests(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """A random forest (each node's parent is an earlier node or none) and a node relabelling."""
    n = draw(st.integers(1, 40))
    parent = [-1]
    for v in range(1, n):
        parent.append(draw(st.integers(-1, v - 1)))
    perm = draw(st.permutations(list(range(n))))
    return parent, perm


@settings(max_examples=200, deadline=None)
@given(random_forests())
def test_virality_and_subtree_sizes_match_networkx(case: tuple[list[int], list[int]]) -> None:
    parent_list, perm = case
    parent, depth, root = forest_from_parents(parent_list)
    # relabel nodes so parents no longer precede children (the kernel must not rely on order)
    perm = np.asarray(perm)
    inv = np.argsort(perm)
    p2 = np.where(parent[inv] >= 0, perm[np.maximum(parent[inv], 0)], -1)
    d2, r2 = depth[inv], perm[root[inv]]
    _, tree = np.unique(r2, return_inverse=True)
    nu = structural_virality(p2, d2, tree)
    sub = subtree_sizes(p2, d2)
    g = nx.DiGraph()
    g.add_nodes_from(range(p2.size))
    g.add_edges_from((int(p), int(v)) for v, p in enumerate(p2) if p >= 0)
    for v in range(p2.size):
        assert sub[v] == 1 + len(nx.descendants(g, v))
    for t in nx_trees(p2):
        k = tree[next(iter(t.nodes))]
        n = t.number_of_nodes()
        assert abs(nu[k] - nx_virality(t)) < 1e-9
        if n > 1:
            assert abs(nu[k] - nx.wiener_index(t) / (n * (n - 1) / 2)) < 1e-9
        assert (nu[k] == 0) == (n == 1)


def test_virality_known_shapes() -> None:
    # singleton, pair, star of 5 (2 - 2/n), chain of 6 ((n+1)/3), in one forest
    parent = np.array([-1, -1, 1, -1, 3, 3, 3, 3, -1, 8, 9, 10, 11, 12])
    depth = np.array([0, 0, 1, 0, 1, 1, 1, 1, 0, 1, 2, 3, 4, 5])
    tree = np.array([0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3])
    nu = structural_virality(parent, depth, tree)
    np.testing.assert_allclose(nu, [0.0, 1.0, 2 - 2 / 5, 7 / 3], rtol=0, atol=1e-12)


def test_inconsistent_depth_is_rejected() -> None:
    with pytest.raises(ValueError, match="inconsistent forest"):
        subtree_sizes(np.array([-1, 0, 1]), np.array([0, 1, 1]))


# ------------------------------------------------------------------------ marts.cascades

def test_cascade_shape_matches_networkx(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(7)
    parent_list: list[int] = []
    for _ in range(300):  # mostly singletons, some bushy or deep trees
        base = len(parent_list)
        n = 1 if rng.random() < 0.7 else int(rng.integers(2, 30))
        parent_list.append(-1)
        for v in range(1, n):
            lo = v - 1 if rng.random() < 0.3 else 0  # sometimes extend a chain
            parent_list.append(base + int(rng.integers(lo, v)))
    parent, depth, root = forest_from_parents(parent_list)
    load_forest(con, parent, depth, root)
    assert build_cascades(con) == int((parent < 0).sum())
    got = {r[0]: r[1:] for r in con.execute(
        "SELECT root_share_id, size, depth, max_breadth, structural_virality, reshares "
        "FROM marts.cascades").fetchall()}
    for t in nx_trees(parent):
        r = min(t.nodes, key=lambda v: depth[v])
        lengths = nx.single_source_shortest_path_length(t, r)
        breadth = np.bincount(list(lengths.values())).max()
        size, d, b, nu, reshares = got[f"s{r:05d}"]
        assert (size, d, b, reshares) == (t.number_of_nodes(), max(lengths.values()), breadth,
                                          t.number_of_nodes() - 1)
        assert abs(nu - nx_virality(t)) < 1e-9
    assert check_cascade_shape(con)[0]


def test_cascade_clicks_orders_and_gmv(con: duckdb.DuckDBPyConnection) -> None:
    # cascade A: a1 (alice) -> a2 (bob) -> a3 (carol); cascade B: b1 (dave) alone
    con.execute("""
        INSERT INTO graph.share_nodes VALUES
          ('a1', 'alice', NULL, 'a1', 0, '2025-03-01 09:00', 'p1', 'tea', 'moments'),
          ('a2', 'bob', 'a1', 'a1', 1, '2025-03-01 10:00', 'p1', 'tea', 'wechat_group'),
          ('a3', 'carol', 'a2', 'a1', 2, '2025-03-02 10:00', 'p1', 'tea', 'moments'),
          ('b1', 'dave', NULL, 'b1', 0, '2025-03-03 09:00', 'p2', 'toys', 'qq')
    """)
    insert_staging(con, "share_events", [
        {"event_id": f"c{i}", "event_type": "click", "share_id": s, "actor_id": who,
         "occurred_at": T0 + timedelta(hours=i)}
        for i, (s, who) in enumerate([("a1", "x"), ("a2", "x"), ("a3", "y"), ("b1", "z")])
    ])
    insert_staging(con, "products", [{"product_id": "p1", "category": "tea", "merchant_id": "m1"}])
    con.execute("""
        INSERT INTO graph.attributed_orders VALUES
          -- two lines of one paid order through bob's share: 1 order, ¥30
          ('o1', 1, 'x', 'm1', 'p1', 'tea', '2025-03-01 11:00', 10.00, 1, 'wechat', 'paid', true,
           'a2', 'bob', 'share_id', true, 0.5, 2),
          ('o1', 2, 'x', 'm1', 'p1', 'tea', '2025-03-01 11:00', 20.00, 1, 'wechat', 'paid', true,
           'a2', 'bob', 'share_id', false, 1, 0),
          -- refunded: no GMV
          ('o2', 1, 'y', 'm1', 'p1', 'tea', '2025-03-02 11:00', 99.00, 1, 'wechat', 'refunded',
           false, 'a3', NULL, 'unpaid', false, 0, 0),
          -- paid by last click on carol's share
          ('o3', 1, 'y', 'm1', 'p1', 'tea', '2025-03-02 12:00', 5.50, 1, 'moments', 'paid', true,
           'a3', 'carol', 'last_click', true, 0.28, 2),
          -- organic: no share
          ('o4', 1, 'z', 'm2', 'p2', 'toys', '2025-03-03 12:00', 40.00, 1, 'jd', 'paid', true,
           NULL, NULL, 'organic', true, 0, 0)
    """)
    assert build_cascades(con) == 2
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT root_share_id, root_actor_id, merchant_id, size, depth, max_breadth, "
        "structural_virality, clicks, clickers, orders, buyers, gmv, sharers FROM marts.cascades"
    ).fetchall()}
    assert rows["a1"] == ("alice", "m1", 3, 2, 1, pytest.approx(4 / 3), 3, 2, 2, 2,
                          Decimal("35.50"), 3)
    # merchant of p2 comes from the orders when staging.products does not list it
    assert rows["b1"] == ("dave", "m2", 1, 0, 1, 0.0, 1, 1, 0, 0, Decimal("0.00"), 1)
    assert check_cascade_gmv(con) == (True, "cascade GMV ¥35.50 <= attributed GMV ¥35.50")
    assert check_cascade_shape(con)[0]
    # the checks catch a broken mart
    con.execute("UPDATE marts.cascades SET gmv = gmv + 1, structural_virality = 0 "
                "WHERE root_share_id = 'a1'")
    assert not check_cascade_gmv(con)[0]
    ok, text = check_cascade_shape(con)
    assert not ok and "not exactly when size = 1" in text


def test_cascade_counts_an_order_once_whatever_its_lines_say(con: duckdb.DuckDBPyConnection) -> None:
    """A dirty export can give one order number to lines of two buyers: the cascade counts one
    order and two buyers (distinct order ids and customers, as counted by hand)."""
    con.execute("""INSERT INTO graph.share_nodes VALUES
        ('s1', 'alice', NULL, 's1', 0, '2025-03-01 09:00', 'p1', 'tea', 'moments')""")
    con.execute("""
        INSERT INTO graph.attributed_orders VALUES
          ('o9', 1, 'x', 'm1', 'p1', 'tea', '2025-03-01 11:00', 10.00, 1, 'wechat', 'paid', true,
           's1', 'alice', 'share_id', true, 0.5, 2),
          ('o9', 2, 'y', 'm1', 'p1', 'tea', '2025-03-01 11:00', 20.00, 1, 'wechat', 'paid', true,
           's1', 'alice', 'share_id', true, 1, 0),
          ('o8', 1, 'x', 'm1', 'p1', 'tea', '2025-03-02 11:00', 5.00, 1, 'wechat', 'paid', true,
           's1', 'alice', 'share_id', false, 0.25, 2)
    """)
    assert build_cascades(con) == 1
    assert con.execute("SELECT orders, buyers, gmv FROM marts.cascades").fetchone() == (
        2, 2, Decimal("35.00"))


def test_empty_inputs(con: duckdb.DuckDBPyConnection) -> None:
    assert build_cascades(con) == 0
    assert check_cascade_shape(con)[0] and check_cascade_gmv(con)[0]
    comments = con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'cascades'"
                           ).fetchall()
    assert comments and all(c[0] for c in comments)


def test_many_cascades_are_fast(con: duckdb.DuckDBPyConnection) -> None:
    """300k cascades (90% singletons): one vectorised pass, no per-cascade Python."""
    rng = np.random.default_rng(3)
    sizes = np.where(rng.random(300_000) < 0.9, 1, rng.integers(2, 12, 300_000))
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    local = np.arange(sizes.sum()) - starts
    # each non-root node hangs under a random earlier node of its own tree
    parent = np.where(local == 0, -1, starts + (rng.random(local.size) * local).astype(np.int64))
    depth = np.zeros(parent.size, dtype=np.int64)
    for _ in range(int(sizes.max())):  # relax depths (max tree size rounds, vectorised)
        depth = np.where(parent >= 0, depth[np.maximum(parent, 0)] + 1, 0)
    frame = pl.DataFrame({  # noqa: F841 - read by DuckDB
        "node": np.arange(parent.size), "parent": parent, "root": starts,
        "depth": depth.astype(np.int32),
    })
    con.execute("""
        INSERT INTO graph.share_nodes (share_id, actor_id, parent_share_id, root_share_id,
                                       depth, shared_at)
        SELECT node::VARCHAR, node::VARCHAR, CASE WHEN parent >= 0 THEN parent::VARCHAR END,
               root::VARCHAR, depth, TIMESTAMP '2025-03-01 09:00' FROM frame
    """)
    t = time.perf_counter()
    assert build_cascades(con) == 300_000
    elapsed = time.perf_counter() - t
    assert elapsed < 20, f"build_cascades took {elapsed:.1f} s"
    assert check_cascade_shape(con)[0]
    # spot-check a few non-trivial trees against NetworkX
    got = dict(con.execute("SELECT root_share_id, structural_virality FROM marts.cascades "
                           "WHERE size > 2 ORDER BY root_share_id LIMIT 20").fetchall())
    for root_id, nu in got.items():
        r = int(root_id)
        members = np.flatnonzero(starts == r)
        g = nx.Graph()
        g.add_nodes_from(members.tolist())
        g.add_edges_from((int(v), int(parent[v])) for v in members if parent[v] >= 0)
        assert abs(nu - nx.average_shortest_path_length(g)) < 1e-9


def test_pairs_formula_is_mean_over_unordered_pairs() -> None:
    # a tiny hand check of the definition: path a-b-c plus leaf d under b
    t = nx.Graph([("a", "b"), ("b", "c"), ("b", "d")])
    d = [nx.shortest_path_length(t, u, v) for u, v in combinations(t.nodes, 2)]
    nu = structural_virality(np.array([-1, 0, 1, 1]), np.array([0, 1, 2, 2]), np.zeros(4, int))
    assert nu[0] == pytest.approx(sum(d) / len(d))


@pytest.mark.skipif(importlib.util.find_spec("sharegraph.demo.generate") is None,
                    reason="the demo generator is not there yet")
def test_pipeline_cascades(pipeline_run: dict) -> None:
    """On the generated world: every share node in one cascade, checks passed, GMV bounded."""
    result = pipeline_run["result"]
    checks = [e for e in result.get_asset_check_evaluations()
              if e.asset_key.path == ["marts", "cascades"]]
    assert checks and all(e.passed for e in checks)
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as c:
        n_nodes, n_cascades, total, trivial, nontrivial_nu = c.execute("""
            SELECT (SELECT count(*) FROM graph.share_nodes), count(*), sum(size),
                   count(*) FILTER (WHERE size = 1),
                   count(*) FILTER (WHERE size > 1 AND structural_virality >= 1)
            FROM marts.cascades""").fetchone()
        assert total == n_nodes and n_cascades > 0
        assert nontrivial_nu == n_cascades - trivial  # every tree of >= 2 nodes has nu >= 1
        # the largest cascade against NetworkX
        root = c.execute("SELECT root_share_id FROM marts.cascades ORDER BY size DESC, "
                         "root_share_id LIMIT 1").fetchone()[0]
        edges = c.execute("SELECT share_id, parent_share_id FROM graph.share_nodes "
                          "WHERE root_share_id = ? AND parent_share_id IS NOT NULL",
                          [root]).fetchall()
        nu = c.execute("SELECT structural_virality FROM marts.cascades WHERE root_share_id = ?",
                       [root]).fetchone()[0]
    if edges:
        assert abs(nu - nx.average_shortest_path_length(nx.Graph(edges))) < 1e-9
