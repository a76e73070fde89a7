"""The published ``marts.agent_influence.pagerank`` column equals igraph's PRPACK solve to 1e-9
on every person (issue: the old stopping rule allowed ~1e-6 per node on large graphs).

The reference graph is rebuilt here from ``graph.referral_edges`` with igraph, not with the
pipeline's kernel: buyer -> credited person, weight = credited GMV summed over merchants,
over the people that appear on an edge; everyone else has 0.
"""

from __future__ import annotations

import duckdb
import igraph as ig
import numpy as np


def test_mart_pagerank_matches_igraph_prpack(pipeline_run: dict) -> None:
    with duckdb.connect(str(pipeline_run["warehouse"]), read_only=True) as con:
        edges = con.execute("""SELECT buyer_id, sharer_id, sum(gmv)::DOUBLE
            FROM graph.referral_edges GROUP BY ALL""").fetchall()
        mart = dict(con.execute("SELECT person_id, pagerank FROM marts.agent_influence").fetchall())
    names = sorted({p for b, s, _ in edges for p in (b, s)})
    index = {p: i for i, p in enumerate(names)}
    g = ig.Graph(n=len(names), edges=[(index[b], index[s]) for b, s, _ in edges], directed=True)
    g.es["weight"] = [w for *_, w in edges]
    want = dict(zip(names, g.pagerank(damping=0.85, weights="weight", implementation="prpack"),
                    strict=True))
    assert len(want) > 1000
    diff = np.array([abs(mart[p] - want.get(p, 0.0)) for p in mart])
    assert diff.max() < 1e-9, f"max |pagerank - igraph| = {diff.max():.3g}"
    assert sum(want.values()) > 0.999999
