"""Launch planner: learn a diffusion model from past cascades, choose seeds by IMM.

Model (docs/planner.md): independent cascade with a node coin on the *observed* audience graph.
An edge ``u → v`` exists when v clicked one of u's shares or bought credited to u (share or
referral), or v is u's direct downline agent. One share by u makes v buy with probability

    p[u→v] = click[u] · convert[u]

where ``click[u]`` = clicks per audience member per share and ``convert[u]`` = purchases per
click (exposure) through u; a buyer v re-shares with probability ``reshare[v]`` (share-credited
purchases followed by v's own (re)share of the product within 7 days). Every rate is a Beta
posterior mean whose prior is the pooled rate of the person's main category (empirical Bayes,
prior strength ``KAPPA``), so people with little history shrink to their category's mean.
Seeds: :func:`sharegraph.metrics.imm.imm` (Tang, Shi & Xiao 2015).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.core.sql import literal, table_exists
from sharegraph.core.warehouse import finish_table
from sharegraph.graph import audience
from sharegraph.graph.clicks import click_edges_sql
from sharegraph.graph.shares import NODES
from sharegraph.metrics import imm as imm_mod

KAPPA = 20.0
"""Beta prior strength (pseudo-trials) of the click, conversion and re-share rates."""
DEFAULT_K = 20
"""Seeds in the configured default plan (marts.launch_plan)."""
SHARE_RULES = ("share_id", "last_click")


@dataclass
class LearnedModel:
    """The learned model: person ids, the diffusion graph and the per-person estimates."""

    ids: list[str]
    graph: imm_mod.DiffusionGraph
    people: pl.DataFrame
    scope: dict[str, str | None] = field(default_factory=dict)


def _scope_sql(alias: str, category: str | None, merchant: str | None, before: str | None,
               time_col: str, product_merchant: bool = False) -> str:
    cond = []
    if category is not None:
        cond.append(f"{alias}.category = {literal(category)}")
    if merchant is not None:
        cond.append(f"{alias}.product_id IN (SELECT product_id FROM staging.products "
                    f"WHERE merchant_id = {literal(merchant)})" if product_merchant
                    else f"{alias}.merchant_id = {literal(merchant)}")
    if before is not None:
        cond.append(f"{alias}.{time_col} < CAST({literal(before)} AS TIMESTAMP)")
    return " AND ".join(cond) or "TRUE"


def learn_model(con: duckdb.DuckDBPyConnection, category: str | None = None, merchant: str | None = None,
                before: str | None = None, kappa: float = KAPPA) -> LearnedModel:
    """Estimate the per-person rates and the audience graph from staging.share_events and
    graph.attributed_orders (only events and orders before ``before`` when given).

    Unscoped, they are ``graph.person_activity`` and ``graph.audience_edges``, which the
    pipeline keeps up to date; a scope (or a warehouse without them) computes the same with
    their SQL (:mod:`sharegraph.graph.audience`) on its own events and lines."""
    scope = {"category": category, "merchant": merchant, "before": before}
    scoped = any(scope.values()) or not table_exists(con, audience.ACTIVITY)
    if not scoped:
        people_rel = audience.ACTIVITY
        edges_rel = f"(SELECT sharer_id AS sharer, viewer_id AS viewer FROM {audience.EDGES})"
    else:
        _stage_scope(con, category, merchant, before)
        _stage_model_inputs(con)
        people_rel, edges_rel = "_pl_people", "_pl_edges"
    people = con.sql(f"SELECT * FROM {people_rel} ORDER BY person_id").pl()
    src, dst = _audience_edges(con, people_rel, edges_rel)
    if scoped:
        for t in ("_pl_shares", "_pl_edges", "_pl_people"):
            con.execute(f"DROP TABLE {t}")
        for v in ("_pl_ev", "_pl_od"):
            con.execute(f"DROP VIEW {v}")
    return _fit(people, src, dst, kappa, scope)


def _stage_scope(con: duckdb.DuckDBPyConnection, category: str | None, merchant: str | None,
                 before: str | None) -> None:
    """Temp views ``_pl_ev`` (share events) and ``_pl_od`` (paid attributed order lines) of
    the scope: the category, the merchant, before the cut-off. Views, not copies: every
    reader below scans only the columns it needs, with the scope pushed down."""
    ev_where = _scope_sql("e", category, merchant, before, "occurred_at", product_merchant=True)
    od_where = _scope_sql("a", category, merchant, before, "ordered_at")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _pl_ev AS
        SELECT e.event_type, e.share_id, e.actor_id, e.occurred_at, e.product_id, e.category
        FROM staging.share_events e WHERE {ev_where}
        """)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _pl_od AS
        SELECT a.order_id, a.customer_id, a.credited_id, a.rule, a.ordered_at, a.product_id,
               a.category, a.amount
        FROM graph.attributed_orders a WHERE a.is_paid AND {od_where}
        """)


def _stage_model_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """Temp tables of the scope, as graph.audience_edges and graph.person_activity are of
    everything: ``_pl_shares`` (one row per share or re-share event: its actor),
    ``_pl_edges(sharer, viewer, clicks, buys, referred)`` (clicks on the shares in scope by
    others than their sharer, credited paid orders, agent upline edges) and ``_pl_people``."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _pl_shares AS
        SELECT share_id, actor_id AS sharer, category, product_id, occurred_at FROM _pl_ev
        WHERE event_type IN ('share', 'reshare')
        """)
    in_scope = f"(SELECT * FROM {NODES} WHERE share_id IN (SELECT share_id FROM _pl_shares))"
    clicks = f"({click_edges_sql('_pl_ev', in_scope)}) AS k(sharer, viewer, n)"
    upline = audience.UPLINE_EDGES if table_exists(con, audience.UPLINE) else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pl_edges AS {audience.edges_sql(clicks, '_pl_od', upline)}")
    con.execute("CREATE OR REPLACE TEMP TABLE _pl_people AS "
                + audience.activity_sql("_pl_od", "_pl_shares", "_pl_edges"))


def _audience_edges(con: duckdb.DuckDBPyConnection, people: str, edges: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The ``edges`` (sharer, viewer) as positions in person_id order of ``people`` (int32),
    sorted, so the edge order is fixed: the same RR samples for the same seed."""
    tab = con.sql(
        f"""
        WITH idx AS (SELECT person_id, (row_number() OVER (ORDER BY person_id) - 1)::INTEGER AS i
                     FROM {people})
        SELECT s.i AS src, v.i AS dst
        FROM {edges} e JOIN idx s ON s.person_id = e.sharer JOIN idx v ON v.person_id = e.viewer
        ORDER BY src, dst
        """
    ).pl()
    return (tab["src"].to_numpy().astype(np.int32, copy=False),
            tab["dst"].to_numpy().astype(np.int32, copy=False))


def _shrink(succ: np.ndarray, trials: np.ndarray, group: np.ndarray, kappa: float) -> np.ndarray:
    """Beta posterior means with the pooled rate of each group as the prior mean."""
    gs = np.bincount(group, weights=succ)
    gt = np.bincount(group, weights=trials)
    total = succ.sum() / max(trials.sum(), 1.0)
    prior = np.where(gt > 0, gs / np.maximum(gt, 1e-12), total)
    prior = np.clip(prior, 1e-6, 1 - 1e-6)
    return (succ + kappa * prior[group]) / (trials + kappa)


def _fit(people: pl.DataFrame, src: np.ndarray, dst: np.ndarray, kappa: float,
         scope: dict[str, str | None]) -> LearnedModel:
    ids = people["person_id"].to_list()
    n = len(ids)
    col = {c: people[c].cast(pl.Float64).to_numpy()
           for c in ("shares", "clicks", "buys", "referred", "audience", "share_purchases",
                     "reshared", "orders", "spent")}
    group = people["category"].cast(pl.Categorical).to_physical().to_numpy()  # a code per category
    exposures = np.maximum(col["shares"] * col["audience"], col["clicks"])
    click = _shrink(col["clicks"], exposures, group, kappa)
    trials = np.maximum(col["clicks"] + col["referred"], col["buys"])
    convert = _shrink(col["buys"], trials, group, kappa)
    reshare = _shrink(np.minimum(col["reshared"], col["share_purchases"]), col["share_purchases"], group, kappa)
    mean_value = col["spent"].sum() / max(col["orders"].sum(), 1.0)
    value = (col["spent"] + 5.0 * mean_value) / (col["orders"] + 5.0)
    prob = np.clip(click[src] * convert[src], 0, 1)
    g = imm_mod.DiffusionGraph(n, src, dst, prob, reshare, value)
    table = people.with_columns(click_rate=click, conversion_rate=convert, reshare_rate=reshare,
                                order_value=value)
    return LearnedModel(ids, g, table, scope)


@dataclass
class Plan:
    seeds: list[dict[str, object]]
    expected_buyers: float
    buyers_low: float
    buyers_high: float
    expected_gmv: float
    method: str
    rr_sets: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {"seeds": self.seeds, "expected_buyers": self.expected_buyers,
                "expected_buyers_interval": [self.buyers_low, self.buyers_high],
                "expected_gmv": self.expected_gmv, "method": self.method, "rr_sets": self.rr_sets,
                "seconds": self.seconds}


def plan_seeds(model: LearnedModel, k: int, seed: int = 42, eps: float = 0.5,
               max_rr: int | None = None, mem_budget: float = imm_mod.MEM_BUDGET) -> Plan:
    """IMM seeds in pick order with marginal expected buyers and ¥ (from the selection RR
    sets), and the set's expected reach re-estimated on fresh RR sets with a 95% interval.
    θ is IMM's own (the guarantee certified) unless ``max_rr`` or ``mem_budget`` caps it."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    g = model.graph
    cand = np.bincount(g.src, minlength=g.n) > 0
    rev = g.reverse_index()
    res = imm_mod.imm(g, k, rng, eps=eps, max_rr=max_rr, candidates=cand, mem_budget=mem_budget, rev=rev)
    scale = g.n / max(res.rr.count, 1)
    seeds = [{"person_id": model.ids[u], "marginal_buyers": c * scale, "marginal_gmv": v * scale}
             for u, c, v in zip(res.cover.seeds, res.cover.covered, res.cover.covered_value, strict=True)]
    theta = res.rr.count
    fresh = imm_mod.sample_rr_sets(g, min(max(theta, 50_000), 1_000_000), rng, rev)
    buyers, lo, hi, gmv = imm_mod.coverage_estimate(fresh, g.n, res.cover.seeds, g.value)
    method = (f"IMM (Tang, Shi & Xiao 2015), eps={eps}, {theta:,} RR sets"
              + (" (capped: guarantee weaker than eps)" if res.capped else ""))
    return Plan(seeds, buyers, lo, hi, gmv, method, theta, time.perf_counter() - t0)


LAUNCH_PLAN_DOC = {
    "rank": "Pick order (1 = first seed chosen by the greedy step of IMM).",
    "person_id": "The seed: who should share the launch.",
    "marginal_buyers": "Expected extra buyers this seed adds to the seeds before it.",
    "marginal_gmv": "Expected extra GMV of those buyers, ¥.",
    "expected_buyers": "Expected buyers of the whole seed set (fresh RR sets), same on every row.",
    "buyers_low": "Lower end of the 95% Wilson interval of expected_buyers.",
    "buyers_high": "Upper end of the 95% Wilson interval of expected_buyers.",
    "expected_gmv": "Expected GMV of the whole seed set, ¥.",
    "method": "Algorithm and RR-set count.",
}


def build_launch_plan(con: duckdb.DuckDBPyConnection, settings: Settings | None = None,
                      k: int = DEFAULT_K) -> int:
    """``marts.launch_plan``: the configured default plan (all categories and merchants)."""
    has = con.execute("SELECT count(*) FROM staging.share_events").fetchall()[0][0]
    rows: list[dict[str, object]] = []
    if has:
        model = learn_model(con)
        if model.graph.src.size:
            p = plan_seeds(model, k)
            rows = [{"rank": i + 1, **s, "expected_buyers": p.expected_buyers, "buyers_low": p.buyers_low,
                     "buyers_high": p.buyers_high, "expected_gmv": p.expected_gmv, "method": p.method}
                    for i, s in enumerate(p.seeds)]
    schema = {"rank": pl.Int32, "person_id": pl.String, "marginal_buyers": pl.Float64,
              "marginal_gmv": pl.Float64, "expected_buyers": pl.Float64, "buyers_low": pl.Float64,
              "buyers_high": pl.Float64, "expected_gmv": pl.Float64, "method": pl.String}
    con.register("_plan_rows", pl.DataFrame(rows, schema=schema))
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute("CREATE OR REPLACE TABLE marts.launch_plan AS SELECT * FROM _plan_rows")
    con.unregister("_plan_rows")
    return finish_table(con, "marts.launch_plan",
                        f"One row per seed of the default launch plan (k={k}): IMM on the diffusion model "
                        "learned from past cascades (docs/planner.md).", LAUNCH_PLAN_DOC)
