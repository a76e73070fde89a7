# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Influence exploration (影响力探索)
#
# **Purpose.** Who really drives sales — directly, and through the people they brought in?
# This notebook reads the *published* warehouse (read-only, never the pipeline's working
# file), ranks people by direct vs downstream GMV, then loads the attribution graph into
# NetworkX to look at its shape (degree distribution, components, the top person's ego
# network), re-derives our PageRank column with `nx.pagerank`, draws the top agent's downline
# and checks the largest share cascade's structural virality against `nx.wiener_index`.
# Definitions: `docs/influence.md`, `docs/growth-metrics.md`.
#
# **How to open.** It is a jupytext percent script:
# - as a notebook: `jupytext --to notebook notebooks/01_influence_exploration.py`
#   then open the `.ipynb` in Jupyter;
# - as a script: `SHAREGRAPH_WAREHOUSE=state/sharegraph.duckdb
#   .venv/bin/python notebooks/01_influence_exploration.py`.
#
# The warehouse path comes from `SHAREGRAPH_WAREHOUSE` (default `state/sharegraph.duckdb`,
# what `make demo` / `sharegraph run` publishes). The `assert`s are invariants: the test
# suite executes this notebook, so a broken invariant fails the build.

# %%
from collections import Counter
from math import comb

import networkx as nx
import polars as pl

from sharegraph.graph.views import load_cascade_tree, load_downline, load_referral_graph
from sharegraph.notebook import open_published

pl.Config.set_tbl_rows(15)
pl.Config.set_tbl_cols(12)
pl.Config.set_fmt_str_lengths(60)

# The published warehouse, read-only (SHAREGRAPH_WAREHOUSE, default state/sharegraph.duckdb),
# and the run's Settings.
WAREHOUSE, settings, con = open_published()


def q(sql: str, params: list | None = None) -> pl.DataFrame:
    """Run SQL on the warehouse and return a polars frame (via Arrow)."""
    return con.sql(sql, params=params).pl()


# %% [markdown]
# ## 1. Direct vs downstream GMV
# `direct_gmv` is paid GMV credited to the person (¥); `downstream_gmv` sums the direct GMV
# of everyone below them in the influence network (upline for agents, acquirer otherwise),
# generation g weighted by `decay^(g-1)`. Agents typically sell little themselves and a lot
# through their downline; KOL customers the other way round.

# %%
influence = q(
    """
    SELECT person_id, role, is_agent, agent_level,
           direct_gmv::DOUBLE AS direct_gmv, downstream_gmv, influence_gmv,
           downstream_reach, downstream_generations, new_customers, pagerank_rank, roi
    FROM marts.agent_influence
    """
)
top_direct = influence.sort(["direct_gmv", "person_id"], descending=[True, False]).head(10)
top_downstream = influence.sort(["downstream_gmv", "person_id"], descending=[True, False]).head(10)
print("Top 10 by direct GMV (¥)")
print(top_direct.select("person_id", "role", "direct_gmv", "downstream_gmv", "new_customers"))
print("Top 10 by downstream GMV (¥, decayed)")
print(top_downstream.select("person_id", "role", "direct_gmv", "downstream_gmv",
                            "downstream_reach", "downstream_generations"))

# influence_gmv is defined as direct + decayed downstream (each column rounded to the cent)
gap = influence["influence_gmv"] - influence["direct_gmv"] - influence["downstream_gmv"]
assert gap.abs().max() <= 0.015
# a leaf of the network forest has no downstream GMV
leaves = influence.filter(pl.col("downstream_reach") == 0)
assert leaves.is_empty() or leaves["downstream_gmv"].abs().max() == 0.0

# %%
# Who leads each list: agents lead downstream, customers (KOLs) lead direct?
print(pl.concat([
    top_direct.group_by("role").len().with_columns(pl.lit("top10_direct").alias("list")),
    top_downstream.group_by("role").len().with_columns(pl.lit("top10_downstream").alias("list")),
]).sort("list", "role"))

top_agent = (
    influence.filter(pl.col("is_agent"))
    .sort(["downstream_gmv", "person_id"], descending=[True, False])["person_id"][0]
)
top_person = top_direct["person_id"][0]
print(f"top agent by downstream GMV: {top_agent}")
print(f"top person by direct GMV: {top_person}")

# %% [markdown]
# ## 2. The attribution graph in NetworkX
# `load_referral_graph(con)` gives a `DiGraph` with edges **sharer → buyer** (edge attributes
# `orders`, `gmv` in ¥, summed over merchants) and node attribute `role`.

# %%
g = load_referral_graph(con)
n_edges_sql = q("SELECT count(*) AS n FROM (SELECT DISTINCT sharer_id, buyer_id "
                "FROM graph.referral_edges)")["n"][0]
gmv_sql = q("SELECT sum(gmv)::DOUBLE AS gmv FROM graph.referral_edges")["gmv"][0]
print(f"nodes {g.number_of_nodes():,}  edges {g.number_of_edges():,}  "
      f"GMV on edges ¥{g.size(weight='gmv'):,.2f}")
assert g.number_of_edges() == n_edges_sql
assert abs(g.size(weight="gmv") - gmv_sql) < 0.01 * max(1.0, gmv_sql) / 1e4
# attributed GMV in the marts equals GMV on the graph's edges
attributed = q("SELECT sum(amount)::DOUBLE AS v FROM graph.attributed_orders "
               "WHERE is_paid AND credited_id IS NOT NULL")["v"][0]
assert abs(attributed - gmv_sql) < 0.01

# %% [markdown]
# ### Degree distribution
# Out-degree = distinct buyers a person was credited for; in-degree = distinct people
# credited for a buyer. A heavy tail of out-degree is the KOL signature.

# %%
out_deg = pl.DataFrame({"person_id": list(g.nodes), "out_degree": [d for _, d in g.out_degree()],
                        "in_degree": [d for _, d in g.in_degree()]})
dist = (
    out_deg.filter(pl.col("out_degree") > 0)
    .with_columns(bucket=pl.when(pl.col("out_degree") >= 32).then(pl.lit("32+"))
                  .when(pl.col("out_degree") >= 8).then(pl.lit("8-31"))
                  .when(pl.col("out_degree") >= 2).then(pl.lit("2-7"))
                  .otherwise(pl.lit("1")))
    .group_by("bucket").agg(people=pl.len(), buyers=pl.col("out_degree").sum())
    .sort("people", descending=True)
)
print(dist)
print(out_deg.select(pl.col("out_degree", "in_degree").max().name.suffix("_max"),
                     pl.col("out_degree").filter(pl.col("out_degree") > 0).median()
                     .alias("median_out_degree_of_sharers")))
# out-degree in NetworkX == direct_buyers in the mart (distinct buyers credited)
check = out_deg.join(
    q("SELECT person_id, direct_buyers FROM marts.agent_influence WHERE direct_buyers > 0"),
    on="person_id",
)
assert check.height > 0 and (check["out_degree"] == check["direct_buyers"]).all()

# %% [markdown]
# ### Weakly connected components
# Is the attribution graph one market or many islands?

# %%
wcc = sorted(nx.weakly_connected_components(g), key=len, reverse=True)
sizes = Counter(len(c) for c in wcc)
print(f"{len(wcc):,} weakly connected components; largest {len(wcc[0]):,} nodes "
      f"({len(wcc[0]) / g.number_of_nodes():.1%} of the graph)")
print(pl.DataFrame({"size": list(sizes), "components": list(sizes.values())})
      .sort("size", descending=True).head(10))
assert sum(len(c) for c in wcc) == g.number_of_nodes()

# %% [markdown]
# ### Ego network of the top person
# Everyone within one hop of the person with the most direct GMV (either direction).

# %%
ego = nx.ego_graph(g, top_person, radius=1, undirected=True)
ego_buyers = set(g.successors(top_person))
print(f"ego network of {top_person}: {ego.number_of_nodes()} nodes, {ego.number_of_edges()} edges; "
      f"{len(ego_buyers)} buyers credited, {len(set(g.predecessors(top_person)))} people credited "
      f"for {top_person}'s own purchases")
ego_gmv = sum(d["gmv"] for _, _, d in g.out_edges(top_person, data=True))
print(f"GMV on {top_person}'s out-edges: ¥{ego_gmv:,.2f}")
assert abs(ego_gmv - top_direct["direct_gmv"][0]) < 0.01
roles = Counter(nx.get_node_attributes(ego, "role").values())
print("roles in the ego network:", dict(roles))

# %% [markdown]
# ## 3. PageRank: our column vs NetworkX
# `marts.agent_influence.pagerank` is GMV-weighted PageRank on **buyer → credited person**
# edges (docs/influence.md), i.e. `nx.pagerank` on the *reversed* referral graph. We compute
# it again here and require agreement to 1e-9. NetworkX stops when the L1 change is below
# n·tol (its default tol=1e-6 leaves errors ~1e-4 per node here); the pipeline stops on an
# absolute L1 change of 1e-10 (error <= 5.7e-10 per node), so we ask NetworkX for an absolute
# 1e-12 to compare with a tighter reference.

# %%
pr_nx = nx.pagerank(g.reverse(copy=False), alpha=settings.pagerank_alpha, weight="gmv",
                    tol=1e-12 / max(g.number_of_nodes(), 1), max_iter=5000)
ours = q("SELECT person_id, pagerank, pagerank_rank FROM marts.agent_influence")
cmp = ours.join(pl.DataFrame({"person_id": list(pr_nx), "pagerank_nx": list(pr_nx.values())}),
                on="person_id", how="left").with_columns(pl.col("pagerank_nx").fill_null(0.0))
max_diff = (cmp["pagerank"] - cmp["pagerank_nx"]).abs().max()
print(f"max |ours - networkx| = {max_diff:.2e} over {cmp.height:,} people")
print(cmp.sort("pagerank_rank").head(10))
assert max_diff < 1e-9
assert abs(sum(pr_nx.values()) - 1.0) < 1e-9

# %% [markdown]
# ## 4. Downline tree of the top agent
# `load_downline(con, agent_id)` returns the agent and everyone recruited below it
# (edge upline → agent, node attribute `depth`).

# %%
down = load_downline(con, top_agent)
levels = Counter(nx.get_node_attributes(down, "depth").values())
print(f"downline of {top_agent}: {down.number_of_nodes() - 1} agents below, "
      f"{max(levels)} levels deep")
print(pl.DataFrame({"generation": list(levels), "agents": list(levels.values())})
      .sort("generation"))
assert nx.is_arborescence(down)
assert down.in_degree(top_agent) == 0

# %%
# Which agents in the downline sell the most themselves? (direct GMV, ¥)
down_ids = pl.DataFrame({"person_id": list(down.nodes),
                         "generation": [down.nodes[v]["depth"] for v in down.nodes]})
print(down_ids.join(influence.select("person_id", "agent_level", "direct_gmv", "downstream_gmv"),
                    on="person_id", how="left")
      .sort("direct_gmv", descending=True, nulls_last=True).head(10))
# an agent's downline in the upline forest is part of its influence-network subtree
reach = influence.filter(pl.col("person_id") == top_agent)["downstream_reach"][0]
assert reach >= down.number_of_nodes() - 1

# %% [markdown]
# ## 5. The largest share cascade
# A cascade is the tree of shares and re-shares grown from one original share.
# Structural virality (Goel et al. 2016) = mean shortest-path distance over all pairs of nodes
# of the undirected tree = Wiener index / C(n, 2).

# %%
cascades = q(
    """
    SELECT root_share_id, root_actor_id, category, channel, size, depth, max_breadth,
           structural_virality, clicks, orders, gmv::DOUBLE AS gmv
    FROM marts.cascades ORDER BY size DESC, structural_virality DESC, root_share_id LIMIT 10
    """
)
print(cascades)
largest = cascades.row(0, named=True)
tree = load_cascade_tree(con, largest["root_share_id"])
und = tree.to_undirected()
virality_nx = nx.wiener_index(und) / comb(und.number_of_nodes(), 2)
print(f"cascade {largest['root_share_id']}: size {tree.number_of_nodes()}, "
      f"depth {max(nx.get_node_attributes(tree, 'depth').values())}, "
      f"virality ours {largest['structural_virality']:.4f} vs networkx {virality_nx:.4f}")
assert tree.number_of_nodes() == largest["size"]
assert nx.is_arborescence(tree)
assert abs(virality_nx - largest["structural_virality"]) < 1e-9

# %%
# Breadth by generation: does it fan out early (broadcast) or chain along (viral)?
gen = Counter(nx.get_node_attributes(tree, "depth").values())
print(pl.DataFrame({"depth": list(gen), "shares": list(gen.values())}).sort("depth"))
assert max(gen.values()) == largest["max_breadth"]

# %%
con.close()
