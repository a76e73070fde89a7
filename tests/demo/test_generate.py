"""The demo world: deterministic, contract-shaped, and its planted truth really is in the data.

Every planted signal is re-measured here from the written files with an independent
computation (DuckDB / Polars / NetworkX), never with the generator's own code.
Generating the small world takes about a second; a 1M-order world about 11 s (docs/demo-world.md).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest

from sharegraph.core.contract import SOCIAL_CHANNELS, TABLES
from sharegraph.core.vocabulary import CHANNEL_CLASSES
from sharegraph.demo.generate import generate_world

NAMES = ("orders", "share_events", "products", "agents", "group_buys")
START, END = datetime(2026, 1, 1), datetime(2026, 10, 31, 23, 59, 59)


_DTYPE = {"text": pl.String, "int": pl.Int64, "money": pl.Float64, "number": pl.Float64,
          "timestamp": pl.Datetime("us")}


def _read(world: Path, name: str) -> pl.DataFrame:
    schema = {c.name: _DTYPE[c.kind] for c in TABLES[name].columns}
    return pl.read_csv(world / f"{name}.csv", schema=schema)


@pytest.fixture(scope="module")
def w(small_world: Path) -> dict[str, pl.DataFrame]:
    return {name: _read(small_world, name) for name in NAMES}


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_differs(small_world: Path, tmp_path: Path) -> None:
    again = generate_world(tmp_path / "again", seed=11, people=4000, orders=30_000)
    assert _digest(tmp_path / "again") == _digest(small_world)
    assert again["seed"] == 11
    generate_world(tmp_path / "other", seed=12, people=4000, orders=30_000)
    other = _digest(tmp_path / "other")
    assert other["orders.csv"] != _digest(small_world)["orders.csv"]


def test_columns_match_contract_csv_and_parquet(w: dict, small_world: Path, tmp_path: Path) -> None:
    for name in NAMES:
        header = (small_world / f"{name}.csv").read_text(encoding="utf-8").split("\n", 1)[0]
        assert header.split(",") == TABLES[name].column_names, name
    generate_world(tmp_path / "pq", seed=3, people=1000, orders=6000, fmt="parquet")
    first = _digest(tmp_path / "pq")
    for name in NAMES:
        frame = pl.read_parquet(tmp_path / "pq" / f"{name}.parquet")
        assert frame.columns == TABLES[name].column_names, name
        assert frame.height > 0
    assert pl.read_parquet(tmp_path / "pq" / "orders.parquet")["amount"].dtype == pl.Decimal(18, 2)
    generate_world(tmp_path / "pq", seed=3, people=1000, orders=6000, fmt="parquet")
    assert _digest(tmp_path / "pq") == first


def test_csv_formats_and_row_counts(w: dict, small_world: Path, small_truth: dict) -> None:
    orders = w["orders"]
    assert orders.height == small_truth["orders"] == 30_000
    assert orders["order_id"].n_unique() == orders.height
    assert w["share_events"]["event_id"].n_unique() == w["share_events"].height
    line = (small_world / "orders.csv").read_text(encoding="utf-8").split("\n")[1].split(",")
    assert len(line[3]) == 19 and line[3][10] == " "  # 'YYYY-MM-DD HH:MM:SS'
    assert line[7].split(".")[1].__len__() == 2  # money with 2 decimals
    assert orders["customer_id"].str.contains(r"^[ac]\d{5,}$").all()
    assert w["agents"]["agent_id"].str.contains(r"^a\d{5}$").all()
    assert orders["order_id"].str.starts_with("o").all()
    assert w["share_events"]["share_id"].str.starts_with("s").all()
    assert w["products"]["product_id"].str.starts_with("p").all()
    assert set(orders["status"]) == {"paid", "refunded", "cancelled"}
    assert (orders["status"] == "paid").mean() > 0.85
    assert set(orders["channel"]) <= set(CHANNEL_CLASSES)  # every demo channel has a built-in class
    assert (orders["quantity"] >= 1).all() and (orders["amount"] > 0).all()


def test_timestamps_in_period(w: dict) -> None:
    for name, col in (("orders", "ordered_at"), ("share_events", "occurred_at"),
                      ("agents", "joined_at"), ("group_buys", "opened_at"),
                      ("group_buys", "closed_at")):
        s = w[name][col].drop_nulls()
        assert s.dtype == pl.Datetime, (name, col)
        assert s.min() >= START and s.max() <= END, (name, col)


def test_referential_sanity(w: dict) -> None:
    orders, ev, products = w["orders"], w["share_events"], w["products"]
    posts = ev.filter(pl.col("event_type") != "click")
    assert posts["share_id"].n_unique() == posts.height  # one post per share id
    assert set(orders["share_id"].drop_nulls()) <= set(posts["share_id"])
    assert set(ev["share_id"]) <= set(posts["share_id"])
    reshares = posts.filter(pl.col("event_type") == "reshare")
    assert reshares["parent_share_id"].null_count() == 0
    assert posts.filter(pl.col("event_type") == "share")["parent_share_id"].null_count() == (
        posts.filter(pl.col("event_type") == "share").height)
    # a re-share and a click come after the post they point at
    post_t = posts.select("share_id", pl.col("occurred_at").alias("post_t"))
    rs = reshares.join(post_t, left_on="parent_share_id", right_on="share_id")
    assert rs.height == reshares.height and (rs["occurred_at"] >= rs["post_t"]).all()
    clicks = ev.filter(pl.col("event_type") == "click").join(post_t, on="share_id")
    assert (clicks["occurred_at"] >= clicks["post_t"]).all()
    assert set(orders["product_id"]) <= set(products["product_id"])
    assert set(ev["product_id"]) <= set(products["product_id"])
    assert set(orders["group_id"].drop_nulls()) <= set(w["group_buys"]["group_id"])
    cat = orders.join(products.select("product_id", pl.col("category").alias("pc")), on="product_id")
    assert (cat["category"] == cat["pc"]).all()
    agents = w["agents"]
    assert set(agents["upline_id"].drop_nulls()) <= set(agents["agent_id"])
    assert set(orders["referrer_id"].drop_nulls()) <= set(agents["agent_id"])


def test_share_orders_follow_a_click_and_last_click_cases_exist(w: dict) -> None:
    """Every order carrying share_id follows the buyer's click on that share within 7 days;
    plenty of orders without share_id are attributable through the buyer's last click."""
    orders, ev = w["orders"], w["share_events"]
    clicks = ev.filter(pl.col("event_type") == "click").select(
        pl.col("actor_id").alias("customer_id"), "share_id", pl.col("occurred_at").alias("ct"))
    with_share = orders.filter(pl.col("share_id").is_not_null())
    hit = (with_share.join(clicks, on=["customer_id", "share_id"])
           .filter((pl.col("ct") <= pl.col("ordered_at"))
                   & (pl.col("ct") >= pl.col("ordered_at") - pl.duration(days=7)))
           ["order_id"].n_unique())
    assert hit == with_share.height
    no_share = orders.filter(pl.col("share_id").is_null()).sort("ordered_at")
    last = no_share.join_asof(clicks.sort("ct"), left_on="ordered_at", right_on="ct",
                              by="customer_id", strategy="backward", tolerance="7d",
                              check_sortedness=False)
    assert last["ct"].is_not_null().sum() > 0.2 * with_share.height
    assert orders.filter(pl.col("share_id").is_null() & pl.col("referrer_id").is_not_null()).height > 0


def _customer_lift(world: Path) -> pl.DataFrame:
    """Lift over customers, one plain DuckDB query: one row per unordered category pair."""
    return duckdb.sql(f"""
        WITH cc AS (SELECT DISTINCT customer_id, category
                    FROM read_csv('{world / "orders.csv"}') WHERE status = 'paid'),
             n AS (SELECT count(DISTINCT customer_id) AS n FROM cc),
             m AS (SELECT category, count(*) AS k FROM cc GROUP BY category),
             pair AS (SELECT a.category AS a, b.category AS b, count(*) AS k
                      FROM cc a JOIN cc b ON a.customer_id = b.customer_id AND a.category < b.category
                      GROUP BY ALL)
        SELECT pair.a, pair.b, pair.k AS both_customers,
               pair.k * n.n / (ma.k * mb.k)::DOUBLE AS lift
        FROM pair, n, m ma, m mb WHERE ma.category = pair.a AND mb.category = pair.b
    """).pl()


def test_planted_category_lift(small_world: Path, small_truth: dict) -> None:
    lift = _customer_lift(small_world)
    planted = {tuple(sorted((p["a"], p["b"]))): p["lift"] for p in small_truth["category_pairs"]}
    got = {(a, b): v for a, b, v in lift.select("a", "b", "lift").iter_rows()}
    for pair, intended in planted.items():
        assert got[pair] >= 2.0, (pair, got[pair])
        assert abs(got[pair] / intended - 1) < 0.35, (pair, got[pair], intended)
    planted_cats = {c for pair in planted for c in pair}
    unrelated = lift.filter(~pl.struct("a", "b").map_elements(
        lambda r: (r["a"], r["b"]) in planted, return_dtype=pl.Boolean)
        & (pl.col("both_customers") >= 20))
    assert unrelated.height > 200
    assert 0.8 <= unrelated["lift"].median() <= 1.25
    # pairs among non-planted categories stay near independence
    far = unrelated.filter(~pl.col("a").is_in(planted_cats) & ~pl.col("b").is_in(planted_cats))
    assert far["lift"].quantile(0.95) < 1.6


def test_directional_pairs(w: dict, small_truth: dict) -> None:
    firsts = (w["orders"].group_by("customer_id", "category").agg(pl.col("ordered_at").min()))
    directional = {(p["a"], p["b"]) for p in small_truth["directional_pairs"]}
    for p in small_truth["category_pairs"]:
        a = firsts.filter(pl.col("category") == p["a"])
        b = firsts.filter(pl.col("category") == p["b"])
        both = a.join(b, on="customer_id", suffix="_b")
        gap = (both["ordered_at_b"] - both["ordered_at"]).dt.total_days()
        a_first_within = ((gap > 0) & (gap <= 30)).mean()
        if (p["a"], p["b"]) in directional:
            assert a_first_within > 0.6, (p, a_first_within)
        else:
            assert a_first_within < 0.35, (p, a_first_within)


def test_spillover_click_then_buy(w: dict, small_truth: dict) -> None:
    """Clicking a shared category-A product is followed by buying B within 3 days far more
    often than clicking a share of any other category."""
    ev, orders = w["share_events"], w["orders"]
    clicks = ev.filter(pl.col("event_type") == "click").select(
        pl.col("actor_id").alias("customer_id"), pl.col("category").alias("clicked"),
        pl.col("occurred_at").alias("ct"))
    for sp in small_truth["spillover_pairs"]:
        bought = orders.filter(pl.col("category") == sp["bought"]).select(
            "customer_id", "ordered_at")
        j = clicks.join(bought, on="customer_id", how="left").with_columns(
            hit=(pl.col("ordered_at") > pl.col("ct"))
            & (pl.col("ordered_at") <= pl.col("ct") + pl.duration(days=3)))
        rate = (j.group_by("customer_id", "ct", "clicked").agg(pl.col("hit").any())
                .group_by(pl.col("clicked") == sp["shared"]).agg(pl.col("hit").mean()))
        r = dict(zip(rate["clicked"], rate["hit"], strict=True))
        assert r[True] > 2.5 * r[False], (sp, r)


def _direct_gmv(w: dict, last_click: bool) -> pl.DataFrame:
    """Paid GMV credited per person: share_id -> the share's poster, else (optionally) the
    buyer's last click within 7 days -> that share's poster, else referrer_id."""
    orders, ev = w["orders"].filter(pl.col("status") == "paid"), w["share_events"]
    poster = ev.filter(pl.col("event_type") != "click").select("share_id",
                                                                 pl.col("actor_id").alias("sharer"))
    clicks = ev.filter(pl.col("event_type") == "click").select(
        pl.col("actor_id").alias("customer_id"), pl.col("share_id").alias("click_share"),
        pl.col("occurred_at").alias("ct")).sort("ct")
    o = orders.sort("ordered_at")
    if last_click:
        o = o.join_asof(clicks, left_on="ordered_at", right_on="ct", by="customer_id",
                        strategy="backward", tolerance="7d", check_sortedness=False)
    else:
        o = o.with_columns(click_share=pl.lit(None, dtype=pl.String))
    o = o.with_columns(via=pl.coalesce("share_id", "click_share")).join(
        poster, left_on="via", right_on="share_id", how="left")
    return (o.with_columns(person=pl.coalesce("sharer", "referrer_id"))
            .filter(pl.col("person").is_not_null())
            .group_by("person").agg(pl.col("amount").sum().alias("gmv")))


def _downstream_nx(agents: pl.DataFrame, direct: dict[str, float]) -> dict[str, float]:
    """Downstream GMV with decay 0.5 per generation, by BFS depths in NetworkX."""
    g = nx.DiGraph()
    g.add_nodes_from(agents["agent_id"])
    g.add_edges_from(agents.filter(pl.col("upline_id").is_not_null())
                     .select("upline_id", "agent_id").iter_rows())
    assert nx.is_forest(g)
    out = {}
    for a in g.nodes:
        dist = nx.single_source_shortest_path_length(g, a)
        out[a] = sum(0.5 ** (d - 1) * direct.get(x, 0.0) for x, d in dist.items() if d >= 1)
    return out


def test_planted_top_agents_are_top_by_downstream_gmv(w: dict, small_truth: dict) -> None:
    agents = w["agents"]
    agent_ids = set(agents["agent_id"])
    for last_click in (True, False):
        direct = {p: g for p, g in _direct_gmv(w, last_click).iter_rows() if p in agent_ids}
        down = _downstream_nx(agents, direct)
        ranked = sorted(down, key=lambda a: -down[a])
        assert set(ranked[:20]) == set(small_truth["top_agents_downstream"]), last_click
        # a clear margin: the 20th planted agent beats the best of the rest by >= 1.5x
        assert down[ranked[19]] >= 1.5 * down[ranked[20]], (down[ranked[19]], down[ranked[20]])
        if last_click:  # the pipeline's definition: same order as truth
            assert ranked[:20] == small_truth["top_agents_downstream"]
            top_direct = sorted(direct, key=lambda a: -direct[a])[:20]
            assert top_direct == small_truth["top_agents_direct"]
    # KOLs have large, heavy-tailed downlines
    kids = agents.group_by("upline_id").len()
    top_kids = kids.filter(pl.col("upline_id").is_in(small_truth["top_agents_downstream"]))
    assert top_kids["len"].min() >= 5
    assert agents["level"].max() >= 3


def test_commission_and_red_packet(w: dict) -> None:
    o = w["orders"]
    assert o.filter(pl.col("status") != "paid")["commission"].null_count() == (
        o.filter(pl.col("status") != "paid").height)
    with_c = o.filter(pl.col("commission").is_not_null())
    assert with_c.height > 0.15 * o.height
    assert ((with_c["commission"] - with_c["amount"] * 0.05).abs() <= 0.006).all()
    rp = o["red_packet"].drop_nulls()
    assert rp.len() > 0.25 * o.height and (rp == 2.0).all()
    assert o.filter(pl.col("share_id").is_not_null() & (pl.col("status") == "paid"))[
        "red_packet"].null_count() == 0


def test_cascades_heavy_tailed(w: dict) -> None:
    """Cascade = a share and all re-shares below it; size = number of posts."""
    posts = w["share_events"].filter(pl.col("event_type") != "click")
    g = nx.DiGraph()
    g.add_nodes_from(posts["share_id"])
    g.add_edges_from(posts.filter(pl.col("parent_share_id").is_not_null())
                     .select("parent_share_id", "share_id").iter_rows())
    assert nx.is_forest(g)
    roots = posts.filter(pl.col("event_type") == "share")["share_id"]
    sizes = np.array([len(nx.descendants(g, r)) + 1 for r in roots])
    depths = [max(nx.single_source_shortest_path_length(g, r).values()) for r in roots]
    assert (sizes == 1).mean() > 0.6
    assert sizes.max() >= 20
    assert max(depths) >= 4
    assert np.quantile(sizes, 0.999) > 5 * np.median(sizes)


def test_group_buys(w: dict) -> None:
    gb, o = w["group_buys"], w["orders"]
    assert {"filled", "failed"} <= set(gb["status"])
    assert gb["target_size"].is_between(2, 5).all()
    members = o.filter(pl.col("group_id").is_not_null())
    assert (members["channel"] == "group_buy").all()
    joined = members.join(gb, on="group_id", suffix="_g")
    failed = joined.filter(pl.col("status_g") == "failed")
    assert failed.height > 0 and (failed["status"] == "refunded").all()
    size = members.group_by("group_id").len().join(gb, on="group_id")
    filled = size.filter(pl.col("status") == "filled")
    assert (filled["len"] == filled["target_size"]).all()
    assert (size.filter(pl.col("status") != "filled")["len"]
            < size.filter(pl.col("status") != "filled")["target_size"]).all()
    assert gb.filter(pl.col("status") == "open")["closed_at"].null_count() == (
        gb.filter(pl.col("status") == "open").height)
    # fission: members join through shares of the group's product
    assert members["share_id"].is_not_null().sum() > 0.2 * members.height


def test_channel_migration_of_repeat_customers(w: dict) -> None:
    o = w["orders"]
    repeat = o.group_by("customer_id").len().filter(pl.col("len") >= 2)["customer_id"]
    by_month = (o.filter(pl.col("customer_id").is_in(repeat.implode()))
                .group_by(pl.col("ordered_at").dt.month().alias("m"))
                .agg(pl.col("channel").is_in(SOCIAL_CHANNELS).mean().alias("social"))
                .sort("m"))
    social = by_month["social"].to_numpy()
    assert social[-3:].mean() > social[:3].mean() + 0.15, social
    assert np.corrcoef(np.arange(social.size), social)[0, 1] > 0.9
    assert {"taobao", "tmall", "jd"} <= set(o["channel"])


def test_ring_and_truth_shape(w: dict, small_truth: dict) -> None:
    assert set(small_truth) == {
        "seed", "people", "orders", "period", "top_agents_downstream", "top_agents_direct",
        "category_pairs", "directional_pairs", "spillover_pairs", "expected_expansion",
        "ring_members", "circle_owners", "merchants", "categories",
        "self_referrers", "referral_ring", "refund_abusers", "click_bursters"}
    assert small_truth["period"] == ["2026-01-01", "2026-10-31"]
    ring = small_truth["ring_members"]
    assert 3 <= len(ring) <= 5 and set(ring) <= set(w["agents"]["agent_id"])
    ro = w["orders"].filter(pl.col("customer_id").is_in(ring) & pl.col("referrer_id").is_in(ring))
    assert ro.height >= 3 * len(ring)
    assert ro.filter(pl.col("customer_id") == pl.col("referrer_id")).height > 0
    assert len(small_truth["top_agents_downstream"]) == len(small_truth["top_agents_direct"]) == 20
    assert 4 <= len(small_truth["category_pairs"]) <= 6
    assert all(2 <= p["lift"] <= 5 for p in small_truth["category_pairs"])
    owners = small_truth["circle_owners"]
    assert 0 < len(owners) <= 0.02 * small_truth["people"]
    # circle owners are high-authority sharers: their posts get far more clicks than average
    ev = w["share_events"]
    posts = ev.filter(pl.col("event_type") != "click").select("share_id", "actor_id")
    clicks = ev.filter(pl.col("event_type") == "click").group_by("share_id").len()
    per_actor = (posts.join(clicks, on="share_id", how="left").group_by("actor_id")
                 .agg(pl.col("len").fill_null(0).sum()))
    owner_clicks = per_actor.filter(pl.col("actor_id").is_in(owners))["len"].mean()
    assert owner_clicks > 3 * per_actor["len"].mean()


def test_truth_circles_file(small_world: Path, small_truth: dict, w: dict) -> None:
    """truth_circles.csv: every person once, circles index circle_owners (each owner in its
    own circle), ignored by the ingest; friends click each other, so clicks stay in-circle."""
    from sharegraph.ingest.sources import classify, discover

    path = small_world / "truth_circles.csv"
    assert classify(path) is None
    assert all(path not in [f.path for f in files] for files in discover(small_world).values())
    tc = pl.read_csv(path, schema_overrides={"person_id": pl.String})
    assert tc.columns == ["person_id", "circle"] and tc["person_id"].is_unique().all()
    assert tc.height == small_truth["people"] and tc["person_id"].is_sorted()
    owners = small_truth["circle_owners"]
    assert sorted(tc["circle"].unique().to_list()) == list(range(len(owners)))
    own = pl.DataFrame({"person_id": owners}).join(tc, on="person_id", how="left")
    assert own["circle"].to_list() == list(range(len(owners)))
    # clicks are mostly within a circle; random pairs would match ~1/len(owners)
    ev = w["share_events"]
    poster = ev.filter(pl.col("event_type") != "click").select("share_id", poster="actor_id")
    pairs = (ev.filter(pl.col("event_type") == "click").join(poster, on="share_id")
             .join(tc, left_on="actor_id", right_on="person_id")
             .join(tc, left_on="poster", right_on="person_id", suffix="_poster"))
    assert (pairs["circle"] == pairs["circle_poster"]).mean() > 0.3


def test_merchants_have_gaps_and_expected_expansion_is_consistent(w: dict, small_truth: dict) -> None:
    sells = w["products"].group_by("merchant_id").agg(pl.col("category").unique())
    sells = {m: set(c) for m, c in sells.iter_rows()}
    n_cat = len(small_truth["categories"])
    assert n_cat >= 30 and set(w["products"]["category"]) == set(small_truth["categories"])
    assert all(len(c) < n_cat for c in sells.values())
    assert 4 <= len(sells) <= 7
    assert w["products"]["merchant_name"].str.contains(r"[\u4e00-\u9fff]").all()
    expected = small_truth["expected_expansion"]
    assert len(expected) >= 4
    for m, b in expected.items():
        a = next(p["a"] for p in small_truth["category_pairs"] if p["b"] == b)
        assert a in sells[m] and b not in sells[m]
    for m, cats in sells.items():  # every merchant selling A without B is listed
        for p in small_truth["category_pairs"]:
            if p["a"] in cats and p["b"] not in cats:
                assert expected.get(m) == p["b"]
