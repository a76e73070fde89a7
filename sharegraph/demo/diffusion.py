"""A demo world whose cascades come from an explicit diffusion process (docs/planner.md).

Separate from :func:`sharegraph.demo.generate.generate_world` (whose world and planted truths
stay unchanged): :func:`generate_diffusion_world` draws a friend graph and true per-person
parameters, then runs many historical campaigns through the launch planner's own model class —
a seed shares; each friend of a sharer ``u`` clicks with probability ``click[u]``; a click
converts with probability ``convert[u]``; a buyer ``v`` re-shares with probability
``reshare[v]`` (independent cascade with a node coin). Everything is written as contract files
(orders, share_events, products) plus ``truth.json`` (the parameters) and
``truth_edges.csv`` (the friend graph), so a test can score seeds under the true process.

Planted on purpose:
* ``stars``: people with large audiences and good conversion (the true best seeds);
* ``decoys``: very large audiences that click a lot but almost never buy;
* ``twins``: two strong sharers with the same audience (the second adds little).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

PERIOD_START = datetime(2026, 1, 1)
PERIOD_DAYS = 300
CATEGORIES = (("茶叶", "m04", 128.0), ("水果", "m02", 59.0), ("母婴", "m03", 199.0))


def _friends(rng: np.random.Generator, n: int, community: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed friend edges: log-normal out-degree (median 6), 80% inside the community."""
    deg = np.clip(np.round(rng.lognormal(np.log(6), 0.6, n)), 1, 40).astype(np.int64)
    src = np.repeat(np.arange(n), deg)
    home = src // community
    local = rng.random(src.size) < 0.8
    dst = np.where(local, home * community + rng.integers(0, community, src.size),
                   rng.integers(0, n, src.size))
    dst = np.minimum(dst, n - 1)
    return src, dst


def generate_diffusion_world(out: str | Path, seed: int = 3, people: int = 3000,
                             campaigns: int = 40_000) -> dict[str, object]:
    """Write the world into ``out``; returns the truth (also in truth.json).

    The steps draw from one ``numpy.random.Generator`` in a fixed order, so the same
    arguments give byte-identical files."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = people
    w = _people(rng, n)
    src, dst = w["src"], w["dst"]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])

    ids = np.array([f"u{i:06d}" for i in range(n)])
    products = [(f"p{j:03d}", cat, merchant, round(price * (0.8 + 0.1 * j), 2))
                for j, (cat, merchant, price) in enumerate(CATEGORIES)]
    ev, od = _run_campaigns(rng, w, indptr, campaigns, len(products))
    _write_events(out, ev, ids, products)
    _write_orders(out, od, ids, products)
    pl.DataFrame({
        "product_id": [p[0] for p in products], "product_name": [f"{p[1]}爆款" for p in products],
        "category": [p[1] for p in products], "merchant_id": [p[2] for p in products],
        "merchant_name": [p[2] for p in products], "price": [f"{p[3]:.2f}" for p in products],
        "agent_price": [f"{p[3] * 0.7:.2f}" for p in products],
    }).write_csv(out / "products.csv")
    pl.DataFrame({"src": ids[src], "dst": ids[dst]}).write_csv(out / "truth_edges.csv")
    click, convert, reshare = w["click"], w["convert"], w["reshare"]
    truth: dict[str, object] = {
        "seed": seed, "people": n, "campaigns": campaigns,
        "period": [str(PERIOD_START.date()), str((PERIOD_START + timedelta(days=PERIOD_DAYS)).date())],
        "model": "independent cascade with node coin: share -> friend clicks (click[u]) -> "
                 "buys (convert[u]) -> re-shares (reshare[v])",
        "mean_order_yuan": float(np.mean([p[3] for p in products])),
        "stars": ids[w["stars"]].tolist(), "decoys": ids[w["decoys"]].tolist(),
        "twins": ids[w["twins"]].tolist(),
        "params": {"person_id": ids.tolist(), "click": click.round(6).tolist(),
                   "convert": convert.round(6).tolist(), "reshare": reshare.round(6).tolist()},
    }
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
    return truth


def _people(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The friend graph (deduplicated ``src`` -> ``dst``, no self edges, sorted by source)
    and the true per-person parameters, with the planted stars, decoys and twins."""
    src, dst = _friends(rng, n, 50)
    click = rng.beta(2, 8, n)
    convert = rng.beta(1.5, 12, n)
    reshare = rng.beta(1.2, 5, n)
    perm = rng.permutation(n)
    stars, decoys, twins = perm[:15], perm[15:25], perm[25:27]
    extra_s, extra_d = [], []
    for u in stars:  # big, well-converting audiences
        a = rng.choice(n, size=int(rng.integers(60, 110)), replace=False)
        extra_s.append(np.full(a.size, u)), extra_d.append(a)
    click[stars], convert[stars] = rng.uniform(0.25, 0.35, stars.size), rng.uniform(0.2, 0.3, stars.size)
    for u in decoys:  # many clicks, poor conversion
        a = rng.choice(n, size=150, replace=False)
        extra_s.append(np.full(a.size, u)), extra_d.append(a)
    click[decoys], convert[decoys] = 0.9, 0.005
    shared = rng.choice(n, size=120, replace=False)  # the twins' common audience
    for u in twins:
        extra_s.append(np.full(shared.size, u)), extra_d.append(shared)
    click[twins], convert[twins] = 0.3, 0.3
    src = np.concatenate([src, *extra_s])
    dst = np.concatenate([dst, *extra_d])
    keep = src != dst
    key = np.unique(src[keep] * n + dst[keep])
    return {"src": key // n, "dst": key % n, "click": click, "convert": convert,
            "reshare": reshare, "stars": stars, "decoys": decoys, "twins": twins}


def _run_campaigns(rng: np.random.Generator, w: dict[str, np.ndarray], indptr: np.ndarray,
                   campaigns: int, n_products: int) -> tuple[dict[str, list], dict[str, list]]:
    """Run every historical campaign through the true process, one generation at a time.

    Returns the share events (type, share number, actor, time in days, parent, product) and
    the orders (customer, time in days, product, share number), as lists; a person buys at
    most once per campaign."""
    dst, click, convert, reshare = w["dst"], w["click"], w["convert"], w["reshare"]
    ev: dict[str, list] = {k: [] for k in ("type", "share", "actor", "time", "parent", "product")}
    od: dict[str, list] = {k: [] for k in ("customer", "time", "product", "share")}
    share_no = 0
    roots = rng.integers(0, indptr.size - 1, campaigns)  # indptr has one entry per person + 1
    starts = np.sort(rng.uniform(0, PERIOD_DAYS - 10, campaigns))
    prods = rng.integers(0, n_products, campaigns)
    for c in range(campaigns):
        sharers = np.array([roots[c]])
        parents = np.array([-1])
        times = np.array([starts[c]])
        bought = {int(roots[c])}
        while sharers.size:
            sids = np.arange(share_no, share_no + sharers.size)
            share_no += sharers.size
            ev["type"] += ["share" if p < 0 else "reshare" for p in parents]
            ev["share"] += sids.tolist()
            ev["actor"] += sharers.tolist()
            ev["time"] += times.tolist()
            ev["parent"] += parents.tolist()
            ev["product"] += [prods[c]] * sharers.size
            deg = indptr[sharers + 1] - indptr[sharers]
            owner = np.repeat(np.arange(sharers.size), deg)
            pos = np.repeat(indptr[sharers] - np.cumsum(deg) + deg, deg) + np.arange(int(deg.sum()))
            friend = dst[pos]
            clicked = rng.random(friend.size) < click[sharers[owner]]
            owner, friend = owner[clicked], friend[clicked]
            ctime = times[owner] + rng.uniform(0.01, 1.0, owner.size)
            ev["type"] += ["click"] * owner.size
            ev["share"] += sids[owner].tolist()
            ev["actor"] += friend.tolist()
            ev["time"] += ctime.tolist()
            ev["parent"] += [-1] * owner.size
            ev["product"] += [prods[c]] * owner.size
            buys = rng.random(owner.size) < convert[sharers[owner]]
            b_owner, b_friend, b_time = owner[buys], friend[buys], ctime[buys] + 0.01
            _, first = np.unique(b_friend, return_index=True)  # one purchase per person
            new = [i for i in first if int(b_friend[i]) not in bought]
            b_owner, b_friend, b_time = b_owner[new], b_friend[new], b_time[new]
            bought.update(b_friend.tolist())
            od["customer"] += b_friend.tolist()
            od["time"] += b_time.tolist()
            od["product"] += [prods[c]] * b_friend.size
            od["share"] += sids[b_owner].tolist()
            again = rng.random(b_friend.size) < reshare[b_friend]
            sharers, parents = b_friend[again], sids[b_owner[again]]
            times = b_time[again] + rng.uniform(0.05, 1.0, int(again.sum()))
    return ev, od


def _ts(days: list[float]) -> list[datetime]:
    """Days after the period start -> wall times, to the second."""
    return [PERIOD_START + timedelta(seconds=int(d * 86400)) for d in days]


def _product_column(column: str, products: list[tuple], field: int) -> pl.Expr:
    """The product index in ``column`` replaced by one field of the product tuple."""
    return pl.col(column).replace_strict(list(range(len(products))), [p[field] for p in products])


def _write_events(out: Path, ev: dict[str, list], ids: np.ndarray, products: list[tuple]) -> None:
    """share_events.csv, numbered in time order."""
    frame = pl.DataFrame({
        "event_type": ev["type"], "share_no": ev["share"], "actor_id": ids[np.array(ev["actor"])],
        "occurred_at": _ts(ev["time"]), "parent_no": ev["parent"], "product": ev["product"],
    }).sort(["occurred_at", "share_no"])
    frame = frame.with_columns(
        pl.format("e{}", pl.int_range(1, pl.len() + 1).cast(pl.Utf8).str.zfill(8)).alias("event_id"),
        pl.format("s{}", pl.col("share_no").cast(pl.Utf8).str.zfill(8)).alias("share_id"),
        pl.when(pl.col("parent_no") >= 0)
          .then(pl.format("s{}", pl.col("parent_no").cast(pl.Utf8).str.zfill(8))).alias("parent_share_id"),
        _product_column("product", products, 0).alias("product_id"),
        _product_column("product", products, 1).alias("category"),
        pl.lit("wechat_chat").alias("channel"),
    )
    frame.select("event_id", "event_type", "share_id", "actor_id",
                 pl.col("occurred_at").dt.strftime("%Y-%m-%d %H:%M:%S"), "parent_share_id",
                 "product_id", "category", "channel").write_csv(out / "share_events.csv")


def _write_orders(out: Path, od: dict[str, list], ids: np.ndarray, products: list[tuple]) -> None:
    """orders.csv: one paid line per purchase, numbered in time order."""
    frame = pl.DataFrame({
        "customer_id": ids[np.array(od["customer"], dtype=np.int64)], "ordered_at": _ts(od["time"]),
        "product": od["product"], "share_no": od["share"],
    }).sort(["ordered_at", "customer_id"])
    frame = frame.with_columns(
        pl.format("o{}", pl.int_range(1, pl.len() + 1).cast(pl.Utf8).str.zfill(8)).alias("order_id"),
        pl.lit(1).alias("line_no"),
        pl.col("ordered_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
        _product_column("product", products, 0).alias("product_id"),
        _product_column("product", products, 1).alias("category"),
        pl.lit(1).alias("quantity"),
        _product_column("product", products, 3)
          .map_elements(lambda x: f"{x:.2f}", return_dtype=pl.Utf8).alias("amount"),
        pl.lit("wechat").alias("channel"),
        _product_column("product", products, 2).alias("merchant_id"),
        pl.format("s{}", pl.col("share_no").cast(pl.Utf8).str.zfill(8)).alias("share_id"),
        pl.lit("paid").alias("status"),
    )
    frame.select("order_id", "line_no", "customer_id", "ordered_at", "product_id", "category",
                 "quantity", "amount", "channel", "merchant_id", "share_id",
                 "status").write_csv(out / "orders.csv")


def true_graph(world: str | Path, ids: list[str] | None = None):  # -> imm.DiffusionGraph
    """The true process as a :class:`~sharegraph.metrics.imm.DiffusionGraph` over ``ids``
    (default: the world's people in order); edge prob = click[u] × convert[u]."""
    from sharegraph.metrics.imm import DiffusionGraph

    world = Path(world)
    truth = json.loads((world / "truth.json").read_text(encoding="utf-8"))
    p = truth["params"]
    ids = ids or p["person_id"]
    index = {pid: i for i, pid in enumerate(ids)}
    pos = np.array([index.get(pid, -1) for pid in p["person_id"]])
    n = len(ids)
    click = np.zeros(n)
    convert = np.zeros(n)
    reshare = np.zeros(n)
    ok = pos >= 0
    click[pos[ok]] = np.array(p["click"])[ok]
    convert[pos[ok]] = np.array(p["convert"])[ok]
    reshare[pos[ok]] = np.array(p["reshare"])[ok]
    edges = pl.read_csv(world / "truth_edges.csv")
    s = np.array([index.get(x, -1) for x in edges["src"].to_list()])
    d = np.array([index.get(x, -1) for x in edges["dst"].to_list()])
    keep = (s >= 0) & (d >= 0)
    s, d = s[keep].astype(np.int32), d[keep].astype(np.int32)
    return DiffusionGraph(n, s, d, click[s] * convert[s], reshare,
                          np.full(n, float(truth["mean_order_yuan"])))
