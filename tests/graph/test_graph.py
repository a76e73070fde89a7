"""graph.* tables and NetworkX loaders (sharegraph/graph/{shares,upline,people,anomalies,views}.py, sharegraph/core/kernels.py forest kernel)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import networkx as nx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sharegraph.core.kernels import break_cycles
from sharegraph.core.warehouse import ensure_schema
from sharegraph.graph.shares import share_depths_ok
from sharegraph.graph.upline import upline_is_forest
from sharegraph.graph.views import load_cascade_tree, load_downline, load_referral_graph
from tests.helpers import build_graph, insert_staging

T0 = datetime(2025, 3, 1)


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_schema(con)
    return con


def _share(sid: str, actor: str, parent: str | None) -> dict:
    return dict(event_id=f"e{sid}", event_type="reshare" if parent else "share", share_id=sid,
                actor_id=actor, occurred_at=T0, parent_share_id=parent)


def test_break_cycles_vs_networkx() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(1, 60))
        parent = rng.integers(-1, n, size=n)  # random functional graph: cycles likely
        f = break_cycles(parent)
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        keep = f.parent >= 0
        g.add_edges_from(zip(f.parent[keep].tolist(), np.flatnonzero(keep).tolist(), strict=True))
        assert nx.is_forest(g)
        # only cut edges changed, one per cycle of the original graph
        orig = nx.DiGraph([(int(p), i) for i, p in enumerate(parent) if p >= 0])
        assert int(f.cut.sum()) == len(list(nx.simple_cycles(orig)))
        assert np.all((f.parent == parent) | f.cut)
        for r in np.flatnonzero(f.parent < 0):
            lengths = nx.single_source_shortest_path_length(g, int(r))
            for node, d in lengths.items():
                assert f.depth[node] == d and f.root[node] == r


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-2, 14), min_size=1, max_size=15))
def test_share_nodes_roots_depth_zero_and_no_hang(parents: list[int]) -> None:
    # -2 = dangling parent, -1 = root, k = share k (self-loops and cycles allowed)
    rows = [_share(f"s{i:02d}", f"u{i % 4}",
                   None if p == -1 else ("ghost" if p == -2 else f"s{p % len(parents):02d}"))
            for i, p in enumerate(parents)]
    con = _con()
    insert_staging(con, "share_events", rows)
    build_graph(con)
    assert share_depths_ok(con) == (True, 0)
    assert con.execute("SELECT count(*) FROM graph.share_nodes WHERE depth = 0 "
                       "AND parent_share_id IS NOT NULL").fetchall()[0][0] == 0
    flagged = con.execute("SELECT count(*) FROM graph.share_nodes WHERE flag IS NOT NULL").fetchall()[0][0]
    share_anoms = con.execute("SELECT count(*) FROM graph.anomalies WHERE entity = 'share'").fetchall()[0][0]
    assert flagged == share_anoms


def test_bad_input_flagged() -> None:
    con = _con()
    insert_staging(con, "share_events", [
        _share("a", "P", "b"), _share("b", "Q", "c"), _share("c", "R", "a"),  # cycle
        _share("d", "R", "d"), _share("e", "R", "zz"), _share("f", "P", "a"),
        dict(event_id="k1", event_type="click", share_id="f", actor_id="X", occurred_at=T0),
    ])
    insert_staging(con, "agents", [dict(agent_id="A", upline_id="B"), dict(agent_id="B", upline_id="C"),
                                   dict(agent_id="C", upline_id="A"), dict(agent_id="Y", upline_id="Y"),
                                   dict(agent_id="Z", upline_id="nobody"), dict(agent_id="W", upline_id="A")])
    orders = [
        ("o1", "X", "P", None), ("o2", "P", "X", None),  # referral 2-cycle X <-> P
        ("o3", "Q", "Q", None),                           # self-referral
        ("o4", "R", None, "missing"),                      # dangling order share
        ("o5", "A", "B", None), ("o6", "B", "A", None),   # acquisition cycle over agents
    ]
    insert_staging(con, "orders", [dict(order_id=o, customer_id=c, ordered_at=T0 + timedelta(days=i),
                                        product_id="p", category="x", quantity=1, amount="3.00",
                                        channel="wechat", referrer_id=r, share_id=s)
                                   for i, (o, c, r, s) in enumerate(orders)])
    build_graph(con)
    kinds = dict(con.execute("SELECT kind, count(*) FROM graph.anomalies GROUP BY 1").fetchall())
    assert kinds == {"share_cycle": 1, "share_self_loop": 1, "dangling_parent_share": 1,
                     "upline_cycle": 1, "upline_self_loop": 1, "dangling_upline": 1,
                     "self_referral": 1, "dangling_order_share": 1, "referral_cycle": 2,
                     # X <-> P acquired each other (agents A, B hang by upline only)
                     "network_cycle": 1}
    cut = con.execute("SELECT id, related_id FROM graph.anomalies WHERE kind = 'upline_cycle'").fetchall()
    assert cut == [("A", "B")]  # cut at the smallest agent id
    assert upline_is_forest(con) == (True, 0)
    assert share_depths_ok(con) == (True, 0)
    depth = dict(con.execute("SELECT agent_id, depth FROM graph.agent_upline").fetchall())
    assert depth == {"A": 0, "C": 1, "B": 2, "W": 1, "Y": 0, "Z": 0}
    assert dict(con.execute("SELECT share_id, depth FROM graph.share_nodes").fetchall()) == \
        {"a": 0, "c": 1, "b": 2, "f": 1, "d": 0, "e": 0}
    # network forest is acyclic: every non-root's depth = parent's + 1
    bad = con.execute("""SELECT count(*) FROM graph.people p LEFT JOIN graph.people q
                         ON q.person_id = p.network_parent_id
                         WHERE (p.network_parent_id IS NULL AND p.network_depth <> 0)
                            OR (p.network_parent_id IS NOT NULL
                                AND p.network_depth <> q.network_depth + 1)""").fetchall()[0][0]
    assert bad == 0


def _random_orders(rng: np.random.Generator, n_people: int, n_orders: int) -> list[dict]:
    return [dict(order_id=f"o{k}", customer_id=f"p{rng.integers(n_people)}",
                 ordered_at=T0 + timedelta(hours=int(rng.integers(1000))), product_id="p",
                 category="x", quantity=1, amount=f"{rng.integers(1, 500)}.{rng.integers(100):02d}",
                 channel="wechat", merchant_id=f"m{rng.integers(2)}",
                 referrer_id=f"p{rng.integers(n_people)}",
                 status=str(rng.choice(["paid", "paid", "paid", "refunded"])))
            for k in range(n_orders)]


def test_referral_graph_loader_matches_tables() -> None:
    rng = np.random.default_rng(7)
    con = _con()
    insert_staging(con, "orders", _random_orders(rng, 30, 200))
    insert_staging(con, "agents", [dict(agent_id=f"p{i}", upline_id=f"p{i // 3}" if i else None)
                                   for i in range(12)])
    build_graph(con)
    g = load_referral_graph(con)
    want = con.execute("""SELECT credited_id, customer_id, count(DISTINCT order_id), sum(amount)::DOUBLE
                          FROM graph.attributed_orders WHERE is_paid AND credited_id IS NOT NULL
                          GROUP BY ALL""").fetchall()
    assert g.number_of_edges() == len(want)
    for s, b, n, gmv in want:
        assert g[s][b]["orders"] == n and abs(g[s][b]["gmv"] - gmv) < 1e-6
    assert all("role" in d for _, d in g.nodes(data=True))
    assert not any(u == v for u, v in g.edges)
    g0 = load_referral_graph(con, merchant="m0")
    gmv0 = con.execute("SELECT sum(gmv)::DOUBLE FROM graph.referral_edges WHERE merchant_id = 'm0'").fetchall()[0][0]
    assert abs(sum(d["gmv"] for *_, d in g0.edges(data=True)) - gmv0) < 1e-6
    down = load_downline(con, "p1")
    up = nx.DiGraph([(f"p{i // 3}", f"p{i}") for i in range(1, 12)])
    assert set(down.nodes) == {"p1"} | nx.descendants(up, "p1")
    assert dict(down.nodes(data="depth")) == nx.single_source_shortest_path_length(up, "p1")


def test_cascade_tree_loader() -> None:
    con = _con()
    insert_staging(con, "share_events", [_share("r", "A", None), _share("x", "B", "r"),
                                         _share("y", "C", "x"), _share("z", "D", "r")])
    build_graph(con)
    t = load_cascade_tree(con, "r")
    assert set(t.edges) == {("r", "x"), ("x", "y"), ("r", "z")}
    assert dict(t.nodes(data="depth")) == nx.single_source_shortest_path_length(t, "r")
    assert t.nodes["y"]["actor_id"] == "C"


def test_empty_tables() -> None:
    con = _con()
    build_graph(con)
    for t in ("people", "share_nodes", "agent_upline", "referral_edges", "anomalies"):
        assert con.execute(f"SELECT count(*) FROM graph.{t}").fetchall()[0][0] == 0
    assert load_referral_graph(con).number_of_nodes() == 0
