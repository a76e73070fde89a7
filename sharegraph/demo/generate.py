"""Seeded demo world: a social-commerce business with planted, recoverable ground truth.

``generate_world`` writes orders, share events, products, agents and group buys with exactly
the canonical columns of :mod:`sharegraph.core.contract`, plus ``truth.json`` naming what was
planted (top agents, category affinities, spill-over, expansion gaps, a self-referral ring,
circle owners). The pipeline's tests assert that it recovers that truth. The world model and
every planted signal are described in docs/demo-world.md.

Design choices that keep the signals clean at small scale:

* Which categories each person buys is drawn *first* (independent Bernoulli per category,
  plus planted pairs with a solved-for lift); every order is then assigned to one of those
  (person, category) pairs. Unrelated categories are therefore independent over customers
  (lift ~ 1) however skewed purchase counts are, and planted pairs have their intended lift.
* Share cascades are built *around* share-driven orders (orders of one product close in
  time form one cascade), so a cascade's product is the product its buyers bought.
* The top-agent truth is computed from the written data with the pipeline's own
  attribution rule (share_id -> sharer, else the buyer's last click within 7 days, else
  referrer_id; paid orders only), and the planted KOLs win it by construction.

Everything is vectorised NumPy/Polars; one ``numpy.random.Generator`` seeded with ``seed``
drives it, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from sharegraph.core.contract import TABLES

PERIOD = ("2026-01-01", "2026-10-31")
_BASE = int(datetime(2026, 1, 1).timestamp() - datetime(1970, 1, 1).timestamp())
_T0 = datetime(2026, 1, 1)
DAY = 86_400
HOUR = 3_600
T_END = 304 * DAY - 1  # 2026-10-31 23:59:59, seconds after 2026-01-01 00:00:00
ATTRIBUTION_WINDOW_S = 7 * DAY
COMMISSION_RATE = 0.05
RED_PACKET_CENTS = 200
N_TOP_AGENTS = 20

# -- catalogue --------------------------------------------------------------------------------
# category: (base price ¥, base share of people buying it)
CATEGORIES: dict[str, tuple[float, float]] = {
    "服装": (159, 0.18), "面膜": (89, 0.09), "水果": (69, 0.16), "地方特产": (99, 0.09),
    "母婴": (129, 0.10), "玩具": (119, 0.08), "茶叶": (199, 0.12), "月饼": (168, 0.08),
    "数码": (599, 0.15), "家电": (459, 0.09), "家具": (599, 0.06), "美妆": (139, 0.10),
    "零食": (39, 0.13), "酒水": (259, 0.08), "家纺": (219, 0.07), "鞋靴": (239, 0.09),
    "箱包": (299, 0.06), "宠物": (89, 0.07), "图书": (49, 0.08), "文具": (29, 0.07),
    "厨具": (149, 0.07), "保健品": (239, 0.08), "护肤": (189, 0.10), "香水": (399, 0.05),
    "运动": (199, 0.08), "户外": (329, 0.06), "珠宝": (569, 0.05), "手表": (659, 0.05),
    "眼镜": (359, 0.05), "生鲜": (79, 0.12), "粮油": (59, 0.11), "日用百货": (35, 0.13),
}
CATEGORY_NAMES = list(CATEGORIES)

# planted affinity pairs over customers: (a, b, intended lift, directional a-then-b?)
PLANTED_PAIRS = [
    ("服装", "面膜", 3.0, True),
    ("水果", "地方特产", 3.0, False),
    ("母婴", "玩具", 4.0, True),
    ("茶叶", "月饼", 3.5, True),
    ("数码", "家电", 2.5, False),
]
DIRECTIONAL_DAYS = 30
SPILLOVER_PAIRS = [("服装", "面膜"), ("零食", "酒水")]
SPILLOVER_SHARE = 0.4  # share of the bought category's orders preceded by a planted click

# merchant_id: (name, specialist categories (weight 3), other categories (weight 1))
MERCHANTS: dict[str, tuple[str, list[str], list[str]]] = {
    "m01": ("江南服饰旗舰店", ["服装", "鞋靴", "箱包"], ["珠宝", "手表", "眼镜", "运动", "户外"]),
    "m02": ("山野鲜果园", ["水果", "生鲜", "粮油"], ["零食", "酒水"]),
    "m03": ("贝贝母婴馆", ["母婴", "宠物", "图书"], ["家纺", "日用百货", "文具"]),
    "m04": ("茗香茶庄", ["茶叶", "保健品"], ["酒水", "零食"]),
    "m05": ("优选生活百货", ["面膜", "地方特产", "玩具", "月饼", "家电", "家具", "美妆", "护肤",
                        "香水", "厨具"],
            ["服装", "水果", "母婴", "茶叶", "数码", "日用百货", "家纺"]),
    "m06": ("极客数码专营店", ["数码"], ["手表", "眼镜", "文具"]),
}
_STYLES = ["经典款", "热销款", "礼盒装", "家庭装", "限定款", "新品"]

SHARE_CHANNEL_NAMES = ["moments", "wechat_group", "wechat_chat", "miniprogram", "qq", "weibo"]
_SHARE_CHANNEL_P = [0.35, 0.30, 0.20, 0.10, 0.03, 0.02]
# order channel for an order through a share posted on share channel i
_ORDER_CHANNEL_OF_SHARE = ["moments", "wechat_group", "wechat", "miniprogram", "miniprogram",
                           "wechat"]
ORDER_CHANNEL_NAMES = ["taobao", "tmall", "jd", "pinduoduo", "wechat", "wechat_group", "moments",
                       "miniprogram", "group_buy"]
_PLATFORM = [0, 1, 2, 3]
_PLATFORM_P = [0.40, 0.30, 0.25, 0.05]
_SOCIAL = [4, 5, 6, 7]
_SOCIAL_P = [0.40, 0.20, 0.20, 0.20]

# order kinds
ORGANIC, REFERRAL, SHARED, GROUP, RING = 0, 1, 2, 3, 4
STATUS_NAMES = ["paid", "refunded", "cancelled"]
GROUP_STATUS_NAMES = ["open", "filled", "failed"]


def generate_world(
    out: Path | str,
    *,
    seed: int = 7,
    people: int = 20_000,
    orders: int = 200_000,
    fmt: str = "csv",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a seeded demo world into ``out`` and return its ground truth (also truth.json).

    Files: orders, share_events, products, agents, group_buys (``.csv`` UTF-8 with
    'YYYY-MM-DD HH:MM:SS' timestamps and 2-decimal money, or ``.parquet``), truth.json and
    truth_circles.csv (person_id, circle: the planted circle of every person).
    ``people`` counts customers and agents together; ``orders`` is the number of order lines
    written. Same arguments -> byte-identical files.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', not {fmt!r}")
    if people < 500:
        raise ValueError(f"people must be >= 500 (got {people}): the planted structure needs room")
    if orders < 4 * people // 5 or orders < 2_000:
        raise ValueError(f"orders must be >= max(2000, 0.8 * people) (got {orders} for {people} people)")
    say = progress or (lambda _msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()

    cat = _catalogue(rng)
    pop = _people(rng, people)
    say(f"people: {people:,} ({pop['n_agents']:,} agents, {len(pop['owners']):,} circles)")
    inc = _incidence(rng, people, orders, cat)
    od = _orders(rng, orders, pop, cat, inc)
    ev = _cascades(rng, od, pop, cat)
    _spillover(rng, od, ev, pop, cat)
    _repair_times(ev)
    _finish_orders(rng, od, ev, cat)
    attributed = _attribute(od, ev)
    truth = _truth(seed, people, orders, pop, cat, od, attributed)

    ids = _ids(rng, pop, ev)
    person = ids["person"]
    for key in ("top_agents_downstream", "top_agents_direct", "ring_members", "circle_owners"):
        truth[key] = person.gather(truth[key]).to_list()
    frames = _frames(pop, cat, od, ev, ids, attributed, fmt)
    truth.update(_plant_integrity(frames, pop, od, ids, attributed, seed, fmt))
    for name, frame in frames.items():
        _write(frame, out / f"{name}.{fmt}", fmt)
        say(f"{name}: {frame.height:,} rows written")
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n",
                                    encoding="utf-8")
    # planted circle of every person (agents included), index into truth["circle_owners"];
    # not a contract table name, so the ingest never reads it
    circles = pl.DataFrame({"person_id": person, "circle": pop["circle"].astype(np.int32)})
    circles.sort("person_id").write_csv(out / "truth_circles.csv")
    say(f"demo world written to {out} in {time.perf_counter() - t0:.1f} s")
    return truth


# -- catalogue, people, agents, circles ---------------------------------------------------------

def _catalogue(rng: np.random.Generator) -> dict:
    """Products per (merchant, category) the merchant sells; merchant weights per category."""
    n_cat = len(CATEGORY_NAMES)
    cidx = {c: i for i, c in enumerate(CATEGORY_NAMES)}
    weight = np.zeros((n_cat, len(MERCHANTS)))
    for m, (_name, special, other) in enumerate(MERCHANTS.values()):
        for c in special:
            weight[cidx[c], m] = 3.0
        for c in other:
            weight[cidx[c], m] = 1.0
    assert (weight.sum(1) > 0).all(), "every category needs a merchant"
    mc_m, mc_c = np.nonzero(weight.T)  # (merchant, category) sold, sorted by merchant
    n_prod = rng.integers(2, 6, size=mc_m.size)
    p_merchant = np.repeat(mc_m, n_prod)
    p_cat = np.repeat(mc_c, n_prod)
    p_style = np.arange(p_merchant.size) - np.repeat(np.cumsum(n_prod) - n_prod, n_prod)
    base = np.array([CATEGORIES[c][0] for c in CATEGORY_NAMES])
    price = np.round(base[p_cat] * rng.lognormal(0.0, 0.2, p_cat.size)) - 0.1
    price_cents = np.maximum(np.round(price * 100), 990).astype(np.int64)
    # product lookup: products of (merchant, category) are contiguous; skewed popularity
    key = p_merchant * n_cat + p_cat
    mc_start = np.full(len(MERCHANTS) * n_cat, -1)
    mc_count = np.zeros(len(MERCHANTS) * n_cat, dtype=np.int64)
    first = np.r_[True, key[1:] != key[:-1]]
    mc_start[key[first]] = np.nonzero(first)[0]
    np.add.at(mc_count, key, 1)
    cum = np.cumsum(weight, axis=1) / weight.sum(1, keepdims=True)
    return {
        "weight": weight, "cum": cum, "p_merchant": p_merchant, "p_cat": p_cat,
        "p_style": p_style, "price_cents": price_cents, "mc_start": mc_start,
        "mc_count": mc_count, "n_cat": n_cat, "cidx": cidx,
    }


def _pick_product(rng: np.random.Generator, cat: dict, merchant: np.ndarray,
                  category: np.ndarray) -> np.ndarray:
    """A product of ``merchant`` in ``category``, skewed to its first (best-selling) items."""
    key = merchant * cat["n_cat"] + category
    start, count = cat["mc_start"][key], cat["mc_count"][key]
    assert (start >= 0).all()
    return start + np.floor(rng.random(key.size) ** 2.5 * count).astype(np.int64)


def _pick_merchant(rng: np.random.Generator, cat: dict, category: np.ndarray) -> np.ndarray:
    u = rng.random(category.size)
    return (u[:, None] > cat["cum"][category]).sum(axis=1)


def _people(rng: np.random.Generator, n: int) -> dict:
    """Agents 0..A-1 (KOLs 0..19, their downlines, ordinary agents), customers A..n-1;
    circles with one owner each; agent upline forest, join times and sales weights."""
    n_agents = max(150, n // 10)
    # KOL downlines: graded sizes, 60% of agents
    n_down = int(0.60 * n_agents)
    grade = 1.0 - 0.015 * np.arange(N_TOP_AGENTS)
    sizes = np.maximum(np.floor(grade / grade.sum() * n_down).astype(np.int64), 5)
    n_down = int(sizes.sum())
    kol_of = np.repeat(np.arange(N_TOP_AGENTS), sizes)
    pos = np.arange(n_down) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    n1 = np.ceil(0.72 * sizes).astype(np.int64)[kol_of]
    n2 = np.ceil(0.22 * sizes).astype(np.int64)[kol_of]
    block0 = N_TOP_AGENTS + np.repeat(np.cumsum(sizes) - sizes, sizes)
    up_down = np.where(pos < n1, kol_of,  # generation 1: recruited by the KOL
                       np.where(pos < n1 + n2, block0 + (pos - n1) % n1,  # gen 2, round robin
                                block0 + n1 + (pos - n1 - n2) % n2))  # gen 3
    # ordinary agents: small trees inside blocks of 8 (no block can rival a KOL downline)
    n_ord = n_agents - N_TOP_AGENTS - n_down
    o = np.arange(n_ord)
    opos = o % 8
    ostart = o - opos
    oup = ostart + np.floor(rng.random(n_ord) * opos).astype(np.int64)
    oroot = (opos == 0) | (rng.random(n_ord) < 0.35)
    first_ord = N_TOP_AGENTS + n_down
    up_ord = np.where(oroot, -1, first_ord + oup)
    upline = np.r_[np.full(N_TOP_AGENTS, -1), up_down, up_ord].astype(np.int64)
    # self-referral ring: a chain of 4 ordinary agents in one block
    ring_block = first_ord + 8 * rng.integers(0, max(n_ord // 8 - 1, 1))
    ring = np.arange(ring_block, ring_block + 4)
    upline[ring] = np.r_[-1, ring[:-1]]

    depth = _depths(upline)
    joined = np.zeros(n_agents, dtype=np.int64)
    joined[:N_TOP_AGENTS] = rng.integers(0, 5 * DAY, N_TOP_AGENTS)
    ordinary_root = (upline < 0) & (np.arange(n_agents) >= N_TOP_AGENTS)
    joined[ordinary_root] = rng.integers(0, 60 * DAY, int(ordinary_root.sum()))
    for d in range(1, int(depth.max()) + 1):
        at = np.nonzero(depth == d)[0]
        joined[at] = joined[upline[at]] + rng.integers(DAY // 2, 10 * DAY, at.size)

    weight = np.empty(n_agents)
    weight[:N_TOP_AGENTS] = 12.0 * (1.0 - 0.02 * np.arange(N_TOP_AGENTS))
    weight[N_TOP_AGENTS:first_ord] = (6.0 * (1.0 - 0.015 * kol_of)
                                      * rng.lognormal(0.0, 0.2, n_down))
    weight[first_ord:] = rng.lognormal(0.0, 0.3, n_ord)
    weight[ring] = 1.0

    # circles: heavy-tailed sizes; the owner is a non-agent member
    n_circles = max(8, n // 100)
    csize_w = rng.pareto(1.5, n_circles) + 1.0
    circle = rng.choice(n_circles, size=n, p=csize_w / csize_w.sum())
    circle[:n_circles] = np.arange(n_circles)  # no empty circle
    circle[n_agents:n_agents + n_circles] = np.arange(n_circles)
    order = np.lexsort((rng.random(n), np.arange(n) < n_agents, circle))
    first = np.r_[True, circle[order][1:] != circle[order][:-1]]
    owners = order[first]
    csorted = np.argsort(circle, kind="stable")
    ccount = np.bincount(circle, minlength=n_circles)
    cstart = np.cumsum(ccount) - ccount
    return {
        "n": n, "n_agents": n_agents, "upline": upline, "depth": depth, "joined": joined,
        "weight": weight, "wcum": np.cumsum(weight) / weight.sum(), "ring": ring,
        "circle": circle, "owners": owners, "csorted": csorted, "cstart": cstart,
        "ccount": ccount,
    }


def _depths(upline: np.ndarray) -> np.ndarray:
    """Depth of each node in the upline forest (0 for roots), one vectorised step per level."""
    depth = np.zeros(upline.size, dtype=np.int64)
    cur = upline.copy()
    while (cur >= 0).any():
        has = cur >= 0
        depth[has] += 1
        cur[has] = upline[cur[has]]
    return depth


def _pick_agent(rng: np.random.Generator, pop: dict, size: int) -> np.ndarray:
    """Agents drawn in proportion to their sales weight (KOLs and their downlines sell most)."""
    return np.searchsorted(pop["wcum"], rng.random(size) * pop["wcum"][-1], side="right")


def _pick_in_circle(rng: np.random.Generator, pop: dict, circles: np.ndarray,
                    exclude: np.ndarray | None = None) -> np.ndarray:
    """A random member of each circle, avoiding ``exclude`` (the next member instead)."""
    count = pop["ccount"][circles]
    k = np.floor(rng.random(circles.size) * count).astype(np.int64)
    who = pop["csorted"][pop["cstart"][circles] + k]
    if exclude is not None:
        clash = (who == exclude) & (count > 1)
        k2 = (k[clash] + 1) % count[clash]
        who[clash] = pop["csorted"][pop["cstart"][circles[clash]] + k2]
    return who


# -- what people buy ------------------------------------------------------------------------------

def _incidence(rng: np.random.Generator, n: int, n_orders: int, cat: dict) -> dict:
    """(person, category) pairs bought: independent draws, then planted pairs added with the
    probability that gives the intended lift L = P(A and B) / (P(A) P(B)) over people.

    For base rates a = P(A), b0 = P(B) and added share x of A-buyers: L = (b0 + x)/(b0 + a x),
    so x = b0 (L - 1) / (1 - L a)."""
    p = np.array([CATEGORIES[c][1] for c in CATEGORY_NAMES])
    scale = min(1.0, 0.6 * n_orders / (n * 3.4))  # keep first orders <= 60% of all orders
    p = p * scale
    inc = np.empty((n, p.size), dtype=bool)
    for j in range(p.size):  # one column per category (32), keeps memory at n bytes per step
        inc[:, j] = rng.random(n) < p[j]
    cidx = cat["cidx"]
    for a, b, lift, _directional in PLANTED_PAIRS:
        pa, pb = p[cidx[a]], p[cidx[b]]
        x = pb * (lift - 1.0) / (1.0 - lift * pa)
        q = x / (1.0 - pb)
        assert 0 < q < 1
        inc[:, cidx[b]] |= inc[:, cidx[a]] & (rng.random(n) < q)
    person, category = np.nonzero(inc)
    return {"inc": inc, "person": person, "category": category}


def _orders(rng: np.random.Generator, n_orders: int, pop: dict, cat: dict, inc: dict) -> dict:
    """Every order line: first order per (person, category) pair, group-buy and ring orders,
    then repeat orders on the pairs of heavy-tailed active people; then its cause.

    The steps draw from ``rng`` in a fixed order (that order is the world: same seed, same
    files), so a step must not be moved or skipped."""
    person, category = inc["person"], inc["category"]
    n_pairs = person.size
    pair_merchant = _pick_merchant(rng, cat, category)
    first = _first_purchases(rng, cat, inc)
    gb = _group_buys(rng, n_orders, cat, category)
    ring = _ring_orders(rng, n_orders, pop, cat)
    gm_group, r_who = gb["member_group"], ring["who"]
    n_extra = n_orders - n_pairs - gm_group.size - r_who.size
    if n_extra < 0:
        raise ValueError(f"orders={n_orders} too few for {pop['n']} people; use more orders")
    extra_pair, extra_time = _repeat_orders(rng, n_extra, pop, person, first)

    pair = np.r_[np.arange(n_pairs), extra_pair, gb["member_pair"]]
    od = {
        "person": np.r_[person[pair], r_who],
        "category": np.r_[category[pair], ring["category"]],
        "t": np.r_[first, extra_time, gb["member_time"],
                   rng.integers(5 * DAY, T_END, r_who.size)],
        "kind": np.r_[np.full(n_pairs + n_extra, ORGANIC), np.full(gm_group.size, GROUP),
                      np.full(r_who.size, RING)],
        "group": np.r_[np.full(n_pairs + n_extra, -1), gm_group, np.full(r_who.size, -1)],
        "group_pos": np.r_[np.full(n_pairs + n_extra, -1), gb["member_pos"],
                           np.full(r_who.size, -1)],
        "referrer": np.r_[np.full(n_pairs + n_extra + gm_group.size, -1), ring["referrer"]],
    }
    merchant = np.r_[pair_merchant[pair], _pick_merchant(rng, cat, ring["category"])]
    merchant[n_pairs + n_extra:n_pairs + n_extra + gm_group.size] = gb["merchant"][gm_group]
    product = _pick_product(rng, cat, merchant, od["category"])
    is_g = od["kind"] == GROUP
    product[is_g] = gb["product"][od["group"][is_g]]
    od["product"] = product
    od["merchant"] = cat["p_merchant"][product]
    _draw_causes(rng, od, pop)
    od["groups"] = {"initiator": od["person"][np.nonzero(is_g & (od["group_pos"] == 0))[0]],
                    "product": gb["product"], "target": gb["target"], "opened": gb["opened"],
                    "closed": gb["closed"], "status": gb["status"], "members": gb["members"]}
    return od


def _first_purchases(rng: np.random.Generator, cat: dict, inc: dict) -> np.ndarray:
    """First purchase time per (person, category) pair; for the planted directional pairs
    A -> B, B comes 1..29 days after A (docs/demo-world.md)."""
    person = inc["person"]
    first = rng.integers(3 * DAY, T_END - HOUR, person.size)
    cidx, matrix = cat["cidx"], inc["inc"]
    for a, b, _lift, directional in PLANTED_PAIRS:
        if not directional:
            continue
        ia, ib = cidx[a], cidx[b]
        both = np.nonzero(matrix[:, ia] & matrix[:, ib])[0]
        row0 = np.searchsorted(person, both)
        pa = row0 + np.count_nonzero(matrix[both, :ia], axis=1)
        pb = row0 + np.count_nonzero(matrix[both, :ib], axis=1)
        first[pa] = rng.integers(3 * DAY, T_END - (DIRECTIONAL_DAYS + 1) * DAY, both.size)
        first[pb] = first[pa] + rng.integers(DAY, (DIRECTIONAL_DAYS - 1) * DAY, both.size)
    return first


def _group_buys(rng: np.random.Generator, n_orders: int, cat: dict,
                category: np.ndarray) -> dict:
    """Group buys (拼团) and their member orders: members are people who buy the group's
    category anyway (``member_pair`` indexes the (person, category) pairs)."""
    n_groups = max(20, n_orders // 70)
    target = rng.choice([2, 3, 4, 5], size=n_groups, p=[0.35, 0.35, 0.2, 0.1])
    gstatus = rng.choice([0, 1, 2], size=n_groups, p=[0.05, 0.67, 0.28])
    members = np.where(gstatus == 1, target,
                       1 + np.floor(rng.random(n_groups) * (target - 1)).astype(np.int64))
    pair_cat_order = np.argsort(category, kind="stable")
    cat_count = np.bincount(category, minlength=cat["n_cat"])
    cat_start = np.cumsum(cat_count) - cat_count
    gcat = rng.choice(cat["n_cat"], size=n_groups, p=cat_count / cat_count.sum())
    gmerchant = _pick_merchant(rng, cat, gcat)
    gproduct = _pick_product(rng, cat, gmerchant, gcat)
    opened = np.where(gstatus == 0, T_END - rng.integers(2 * HOUR, 40 * HOUR, n_groups),
                      rng.integers(3 * DAY, T_END - 3 * DAY, n_groups))
    gm_group = np.repeat(np.arange(n_groups), members)
    gm_pos = np.arange(gm_group.size) - np.repeat(np.cumsum(members) - members, members)
    gm_pair = pair_cat_order[cat_start[gcat[gm_group]]
                             + np.floor(rng.random(gm_group.size)
                                        * cat_count[gcat[gm_group]]).astype(np.int64)]
    offset = rng.integers(15 * 60, 23 * HOUR, gm_group.size)
    offset = offset[np.lexsort((offset, gm_group))]  # ascending within each group
    gm_time = opened[gm_group] + np.where(gm_pos == 0, 0, offset)
    gm_time = np.minimum(gm_time, T_END)
    last_join = np.full(n_groups, 0, dtype=np.int64)
    np.maximum.at(last_join, gm_group, gm_time)
    closed = np.where(gstatus == 1, last_join, np.where(gstatus == 2, opened + DAY, -1))
    return {"target": target, "status": gstatus, "members": members, "merchant": gmerchant,
            "product": gproduct, "opened": opened, "closed": closed, "member_group": gm_group,
            "member_pos": gm_pos, "member_pair": gm_pair, "member_time": gm_time}


def _ring_orders(rng: np.random.Generator, n_orders: int, pop: dict, cat: dict) -> dict:
    """Self-referral ring: each member orders repeatedly, crediting itself or the next member."""
    ring = pop["ring"]
    n_ring_each = max(8, n_orders // 2000)
    r_who = np.repeat(ring, n_ring_each)
    r_ref = np.where(rng.random(r_who.size) < 0.5, r_who,
                     np.roll(ring, -1)[np.repeat(np.arange(ring.size), n_ring_each)])
    r_cat = rng.choice(cat["n_cat"], size=r_who.size)
    return {"who": r_who, "referrer": r_ref, "category": r_cat}


def _repeat_orders(rng: np.random.Generator, n_extra: int, pop: dict, person: np.ndarray,
                   first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat orders: pairs drawn by their person's heavy-tailed activity, each after the
    pair's first purchase. Returns (pair index, time) per repeat order."""
    activity = rng.lognormal(0.0, 1.1, pop["n"])
    w = np.cumsum(activity[person])
    extra_pair = np.searchsorted(w, rng.random(n_extra) * w[-1], side="right")
    extra_time = first[extra_pair] + np.floor(
        rng.random(n_extra) * (T_END - first[extra_pair])).astype(np.int64)
    return extra_pair, extra_time


def _draw_causes(rng: np.random.Generator, od: dict, pop: dict) -> None:
    """Causes of ordinary orders: 35% through a share, 12% credited to an agent, rest organic."""
    u = rng.random(od["t"].size)
    plain = od["kind"] == ORGANIC
    od["kind"][plain & (u < 0.35)] = SHARED
    ref = plain & (u >= 0.35) & (u < 0.47)
    od["kind"][ref] = REFERRAL
    od["referrer"][ref] = _pick_agent(rng, pop, int(ref.sum()))


# -- share cascades -----------------------------------------------------------------------------

def _cascades(rng: np.random.Generator, od: dict, pop: dict, cat: dict) -> dict:
    """Share trees around share-driven orders, plus non-converting clicks, leaf re-shares and
    dud shares. Returns share nodes (share / reshare events) and click events.

    Share-driven orders of one product close in time (gap <= 7 days, product virality sets
    how often a run breaks) form one cascade; half of the filled/failed group buys form a
    cascade rooted at the initiator's share (fission). A buyer clicks the root, or, mostly,
    a re-share by someone in the buyer's own circle: an earlier buyer from that circle or a
    friend (often the circle owner) who re-shared. Converting clicks are thus mostly between
    friends; non-converting clicks are added so that conversion is ~35% for same-circle
    clicks and ~10% for the rest.

    The steps draw from ``rng`` in a fixed order; each adds its arrays to ``c``, the
    converting orders of every cascade (one entry per order in ``c["rows"]``)."""
    c = _cascade_runs(rng, od, cat)
    _cascade_roots(rng, od, pop, c)
    _click_times(rng, od, c)
    _click_modes(rng, pop, c)
    _click_nodes(rng, pop, c)
    _tree_nodes(rng, c)
    nc = _non_converting(rng, pop, c)
    dud = _dud_shares(rng, od, pop, cat, c["n_casc"])

    leaf, leaf_parent, n_dud = nc["leaf"], nc["leaf_parent"], dud["actor"].size
    n_all = c["n_nodes"] + leaf.size
    node_casc = c["node_casc"]
    node_product = np.r_[c["root_product"][node_casc], c["root_product"][node_casc[leaf_parent]]]
    nodes = {
        "actor": np.r_[c["actor"], nc["actor"][leaf], dud["actor"]],
        "t": np.r_[c["node_t"], nc["leaf_t"], dud["t"]],
        "parent": np.r_[c["parent"], leaf_parent, np.full(n_dud, -1)],
        "product": np.r_[node_product, dud["product"]],
        "root": np.r_[c["node_kind"] == 0, np.zeros(leaf.size, bool), np.ones(n_dud, bool)],
    }
    dud_ids = n_all + np.arange(n_dud)
    dud_clicks = dud["clicked"]
    clicks = {
        "node": np.r_[c["clicked"], nc["node"], dud_ids[dud_clicks]],
        "actor": np.r_[c["buyer"], nc["actor"], rng.integers(0, pop["n"], dud_clicks.size)],
        "t": np.r_[c["click_t"], nc["t"], np.minimum(dud["t"][dud_clicks]
                                                     + rng.integers(60, DAY, dud_clicks.size),
                                                     T_END)],
    }
    rows = c["rows"]
    order_node = np.full(od["t"].size, -1)
    order_node[rows] = c["clicked"]
    order_click = np.full(od["t"].size, -1)
    order_click[rows] = np.arange(rows.size)  # index into clicks (converting clicks first)
    return {"nodes": nodes, "clicks": clicks, "order_node": order_node,
            "order_click": order_click, "n_converting": rows.size}


def _cascade_runs(rng: np.random.Generator, od: dict, cat: dict) -> dict:
    """Which cascade each converting order belongs to: free cascades are runs of one
    product's share-driven orders; group cascades (ids after the free ones) are the member
    orders of half of the group buys. Orders sorted by cascade, then time."""
    groups = od["groups"]
    n_groups = groups["target"].size
    fission = (rng.random(n_groups) < 0.5) & (groups["members"] >= 2)
    gmem = np.nonzero((od["kind"] == GROUP) & (od["group_pos"] >= 1))[0]
    gmem = gmem[fission[od["group"][gmem]]]

    shared = np.nonzero(od["kind"] == SHARED)[0]
    s = shared[np.lexsort((od["t"][shared], od["product"][shared]))]
    n_products = cat["p_cat"].size
    virality = rng.pareto(1.1, n_products)
    brk = np.clip(1.0 / (1.0 + 4.0 * virality), 0.02, 0.95)
    prod = od["product"][s]
    ts = od["t"][s]
    new = np.r_[True, (prod[1:] != prod[:-1]) | (ts[1:] - ts[:-1] > 7 * DAY)
                | (rng.random(s.size - 1) < brk[prod[1:]])]
    casc_free = np.cumsum(new) - 1
    n_free = int(new.sum())
    gids = np.nonzero(fission)[0]
    gcasc = np.full(n_groups, -1)
    gcasc[gids] = n_free + np.arange(gids.size)
    rows = np.r_[s, gmem]
    casc = np.r_[casc_free, gcasc[od["group"][gmem]]]
    srt = np.lexsort((od["t"][rows], casc))
    rows, casc = rows[srt], casc[srt]
    newc = np.r_[True, casc[1:] != casc[:-1]]
    return {"rows": rows, "casc": casc, "n_free": n_free, "n_casc": n_free + gids.size,
            "gids": gids, "t": od["t"][rows], "buyer": od["person"][rows],
            "newc": newc, "k": _pos_in_runs(newc), "first_rows": np.nonzero(newc)[0]}


def _cascade_roots(rng: np.random.Generator, od: dict, pop: dict, c: dict) -> None:
    """Root actor of each cascade: an agent (45%), the owner of the first buyer's circle
    (20%) or a friend (35%), never the first buyer; a group cascade's is its initiator."""
    n_casc, first_rows = c["n_casc"], c["first_rows"]
    c["z"] = z = pop["circle"][c["buyer"]]
    buyer0 = c["buyer"][first_rows]
    u = rng.random(n_casc)
    root_actor = np.where(
        u < 0.45, _pick_agent(rng, pop, n_casc),
        np.where(u < 0.65, pop["owners"][z[first_rows]],
                 _pick_in_circle(rng, pop, z[first_rows], buyer0)))
    root_actor[root_actor == buyer0] = pop["owners"][z[first_rows]][root_actor == buyer0]
    c["is_gc"] = is_gc = np.arange(n_casc) >= c["n_free"]
    root_actor[is_gc] = od["groups"]["initiator"][c["gids"]]
    c["root_actor"] = root_actor
    c["root_product"] = od["product"][c["rows"][first_rows]]


def _click_times(rng: np.random.Generator, od: dict, c: dict) -> None:
    """Click and root times: a click precedes its order and follows the previous order; a
    group cascade's root share follows the group's opening by 1-10 minutes."""
    t, casc, newc, is_gc, gids = c["t"], c["casc"], c["newc"], c["is_gc"], c["gids"]
    n_casc, n_free = c["n_casc"], c["n_free"]
    t_prev = np.r_[0, t[:-1]]
    g_open = np.full(n_casc, -1)
    g_open[n_free:] = od["groups"]["opened"][gids] + rng.integers(60, 600, gids.size)
    root_t = np.empty(n_casc, dtype=np.int64)
    gap = np.where(newc, np.where(is_gc[casc], t - g_open[casc], 12 * HOUR), t - t_prev)
    d = np.maximum(np.minimum(rng.integers(120, 6 * HOUR, t.size), gap // 2), 1)
    click_t = t - d
    root_t[:] = np.where(is_gc, g_open,
                         np.maximum(click_t[c["first_rows"]]
                                    - rng.integers(600, 12 * HOUR, n_casc), 0))
    c["click_t"], c["root_t"] = click_t, root_t


_ROOT, _PREV, _FRIEND, _ANCHOR = 0, 1, 2, 3
"""Where an order's click lands: the root share, the re-share of the previous buyer from
the same circle, a new re-share by a friend, or the node the circle's first order used."""


def _click_modes(rng: np.random.Generator, pop: dict, c: dict) -> None:
    """The mode of each converting click (``_ROOT`` .. ``_ANCHOR``), with the previous order
    of the same circle in the cascade (``prev_same``) and its first one (``g0``)."""
    t, z, casc, k, buyer = c["t"], c["z"], c["casc"], c["k"], c["buyer"]
    zr = pop["circle"][c["root_actor"]][casc]
    gkey = np.lexsort((t, z, casc))
    newg = np.r_[True, (casc[gkey][1:] != casc[gkey][:-1]) | (z[gkey][1:] != z[gkey][:-1])]
    g = np.empty(t.size, dtype=np.int64)
    g[gkey] = _pos_in_runs(newg)
    prev_same = np.full(t.size, -1)
    prev_same[gkey[1:]] = np.where(newg[1:], -1, gkey[:-1])
    g0 = np.empty(t.size, dtype=np.int64)
    g0[gkey] = gkey[np.maximum.accumulate(np.where(newg, np.arange(t.size), 0))]
    same = z == zr
    u = rng.random(t.size)
    mode = np.where(k == 0, _ROOT,
           np.where(g == 0, np.where(same | (u < 0.15), _ROOT, _FRIEND),
           np.where(u < 0.6, _PREV, np.where(same, _ROOT, _ANCHOR))))
    mode[(mode == _PREV) & (buyer[np.maximum(prev_same, 0)] == buyer)] = _ANCHOR
    c["mode"], c["prev_same"], c["g0"] = mode, prev_same, g0


def _click_nodes(rng: np.random.Generator, pop: dict, c: dict) -> None:
    """The node each converting click lands on. Friend nodes: a member of the buyer's circle
    (owner 30%) re-shares the root or the previous buyer's re-share; buyer re-share nodes
    are made where a PREV click or a friend needs them. Node ids: cascade roots, then buyer
    re-shares, then friend re-shares."""
    mode, prev_same, z, buyer, n_casc = c["mode"], c["prev_same"], c["z"], c["buyer"], c["n_casc"]
    size = mode.size
    fr = np.nonzero(mode == _FRIEND)[0]
    f_actor = np.where(rng.random(fr.size) < 0.3, pop["owners"][z[fr]],
                       _pick_in_circle(rng, pop, z[fr], buyer[fr]))
    f_actor[f_actor == buyer[fr]] = pop["owners"][z[fr]][f_actor == buyer[fr]]
    f_on_prev = rng.random(fr.size) < 0.4  # else on the root
    need = np.zeros(size, dtype=bool)
    need[prev_same[mode == _PREV]] = True
    need[fr[f_on_prev] - 1] = True
    bnode_rows = np.nonzero(need)[0]
    bnode_id = np.full(size, -1)
    bnode_id[bnode_rows] = n_casc + np.arange(bnode_rows.size)
    fnode_id = n_casc + bnode_rows.size + np.arange(fr.size)

    clicked = np.empty(size, dtype=np.int64)
    clicked[mode == _ROOT] = c["casc"][mode == _ROOT]
    pv = mode == _PREV
    clicked[pv] = bnode_id[prev_same[pv]]
    clicked[fr] = fnode_id
    an = np.nonzero(mode == _ANCHOR)[0]
    clicked[an] = clicked[c["g0"][an]]  # the g==0 order's node (root or friend), set above
    c.update(fr=fr, f_actor=f_actor, f_on_prev=f_on_prev, bnode_rows=bnode_rows,
             bnode_id=bnode_id, fnode_id=fnode_id, clicked=clicked,
             n_nodes=n_casc + bnode_rows.size + fr.size)


def _tree_nodes(rng: np.random.Generator, c: dict) -> None:
    """The cascade trees' nodes: actor, parent, cascade and time. A buyer re-shares after
    their order and before every child click or re-share; a friend between the parent's
    post and the click on the friend's re-share."""
    n_casc, n_nodes, casc = c["n_casc"], c["n_nodes"], c["casc"]
    bnode_rows, fr, fnode_id = c["bnode_rows"], c["fr"], c["fnode_id"]
    click_t, clicked = c["click_t"], c["clicked"]
    parent = np.full(n_nodes, -1)
    actor = np.empty(n_nodes, dtype=np.int64)
    node_t = np.empty(n_nodes, dtype=np.int64)
    node_casc = np.empty(n_nodes, dtype=np.int64)
    actor[:n_casc] = c["root_actor"]
    node_t[:n_casc] = c["root_t"]
    node_casc[:n_casc] = np.arange(n_casc)
    bn = n_casc + np.arange(bnode_rows.size)
    actor[bn] = c["buyer"][bnode_rows]
    node_casc[bn] = casc[bnode_rows]
    parent[bn] = clicked[bnode_rows]
    actor[fnode_id] = c["f_actor"]
    node_casc[fnode_id] = casc[fr]
    parent[fnode_id] = np.where(c["f_on_prev"], c["bnode_id"][fr - 1], casc[fr])
    child_bound = np.full(n_nodes, np.iinfo(np.int64).max)
    np.minimum.at(child_bound, clicked, click_t)
    np.minimum.at(child_bound, parent[fnode_id], click_t[fr])
    lo = c["t"][bnode_rows]
    hi = child_bound[bn]
    node_t[bn] = lo + ((hi - lo) * rng.uniform(0.2, 0.8, bn.size)).astype(np.int64)
    pt = node_t[parent[fnode_id]]
    node_t[fnode_id] = pt + ((click_t[fr] - pt) * rng.uniform(0.2, 0.8, fr.size)).astype(np.int64)
    c.update(parent=parent, actor=actor, node_t=node_t, node_casc=node_casc,
             node_kind=np.r_[np.zeros(n_casc, dtype=np.int8),
                             np.ones(n_nodes - n_casc, dtype=np.int8)])


def _non_converting(rng: np.random.Generator, pop: dict, c: dict) -> dict:
    """Non-converting clicks, mostly by people outside the sharer's circle, sized so that
    conversion is ~35% inside the circle and ~10% outside; 8% of those clickers re-share
    (leaves: breadth without sales)."""
    circle, actor, n_nodes = pop["circle"], c["actor"], c["n_nodes"]
    conv_in = int((circle[actor[c["clicked"]]] == c["z"]).sum())
    conv_out = c["t"].size - conv_in
    n_in = int(conv_in * (1 / 0.35 - 1))
    n_out = int(conv_out * (1 / 0.10 - 1))
    nc_node = np.r_[rng.integers(0, n_nodes, n_in), rng.integers(0, n_nodes, n_out)]
    nc_actor = np.r_[_pick_in_circle(rng, pop, circle[actor[nc_node[:n_in]]], actor[nc_node[:n_in]]),
                     rng.integers(0, pop["n"], n_out)]
    nc_t = np.minimum(c["node_t"][nc_node]
                      + rng.exponential(8 * HOUR, nc_node.size).astype(np.int64) + 30, T_END)
    leaf = np.nonzero(rng.random(nc_node.size) < 0.08)[0]
    leaf_t = np.minimum(nc_t[leaf] + rng.integers(30, 2 * HOUR, leaf.size), T_END)
    return {"node": nc_node, "actor": nc_actor, "t": nc_t, "leaf": leaf,
            "leaf_parent": nc_node[leaf], "leaf_t": leaf_t}


def _dud_shares(rng: np.random.Generator, od: dict, pop: dict, cat: dict, n_casc: int) -> dict:
    """Dud shares: posts nobody re-shares (most cascades have size 1); 15% get a click
    (``clicked``: their positions)."""
    n_dud = int(1.5 * n_casc)
    dud_actor = np.where(rng.random(n_dud) < 0.4, _pick_agent(rng, pop, n_dud),
                         rng.integers(0, pop["n"], n_dud))
    dud_cat = rng.choice(cat["n_cat"], size=n_dud,
                         p=np.bincount(od["category"], minlength=cat["n_cat"]) / od["t"].size)
    dud_product = _pick_product(rng, cat, _pick_merchant(rng, cat, dud_cat), dud_cat)
    dud_t = rng.integers(0, T_END - DAY, n_dud)
    dud_clicks = np.nonzero(rng.random(n_dud) < 0.15)[0]
    return {"actor": dud_actor, "product": dud_product, "t": dud_t, "clicked": dud_clicks}


def _pos_in_runs(new: np.ndarray) -> np.ndarray:
    """Position of each element within its run, runs starting where ``new`` is True."""
    idx = np.arange(new.size)
    return idx - np.maximum.accumulate(np.where(new, idx, 0))


def _spillover(rng: np.random.Generator, od: dict, ev: dict, pop: dict, cat: dict) -> None:
    """Impulse spill-over: before a share of orders of the *bought* category, the buyer
    clicked a friend's new share of a product of the *shared* category (2 h .. 3 days before)."""
    nodes, clicks = ev["nodes"], ev["clicks"]
    cidx = cat["cidx"]
    add_nodes = {"actor": [], "t": [], "parent": [], "product": [], "root": []}
    add_clicks = {"node": [], "actor": [], "t": []}
    n_nodes = nodes["t"].size
    for a, b in SPILLOVER_PAIRS:  # a handful of planted pairs
        rows = np.nonzero((od["category"] == cidx[b]) & (od["kind"] != GROUP))[0]
        rows = rows[rng.random(rows.size) < SPILLOVER_SHARE]
        t = od["t"][rows]
        buyer = od["person"][rows]
        ct = t - np.minimum(rng.integers(2 * HOUR, 3 * DAY, rows.size), t - HOUR)
        st = np.maximum(ct - rng.integers(600, 12 * HOUR, rows.size), 0)
        sharer = _pick_in_circle(rng, pop, pop["circle"][buyer], buyer)
        acat = np.full(rows.size, cidx[a])
        product = _pick_product(rng, cat, _pick_merchant(rng, cat, acat), acat)
        ids = n_nodes + np.arange(rows.size)
        n_nodes += rows.size
        for key, val in (("actor", sharer), ("t", st), ("parent", np.full(rows.size, -1)),
                         ("product", product), ("root", np.ones(rows.size, bool))):
            add_nodes[key].append(val)
        for key, val in (("node", ids), ("actor", buyer), ("t", ct)):
            add_clicks[key].append(val)
    for key, vals in add_nodes.items():
        nodes[key] = np.concatenate([nodes[key], *vals])
    for key, vals in add_clicks.items():
        clicks[key] = np.concatenate([clicks[key], *vals])


def _repair_times(ev: dict) -> None:
    """Second-level ties (two orders in the same second, the period end) can put a post a
    second after a click on it; pull such posts (and, up the tree, their parents) back."""
    t, parent = ev["nodes"]["t"], ev["nodes"]["parent"]
    np.minimum.at(t, ev["clicks"]["node"], ev["clicks"]["t"])
    child = np.nonzero(parent >= 0)[0]
    while True:  # at most the cascade depth
        late = t[parent[child]] > t[child]
        if not late.any():
            break
        np.minimum.at(t, parent[child[late]], t[child[late]])


# -- statuses, channels, amounts, share_id omission --------------------------------------------

def _finish_orders(rng: np.random.Generator, od: dict, ev: dict, cat: dict) -> None:
    n = od["t"].size
    kind = od["kind"]
    nodes, clicks = ev["nodes"], ev["clicks"]
    # ~20% of share-driven orders lose their share_id, where the buyer's last click within
    # the window is still the click that caused the order (no later click before the order)
    order_by_click = np.lexsort((clicks["t"], clicks["actor"]))
    nxt = np.full(clicks["t"].size, np.iinfo(np.int64).max)
    same_actor = clicks["actor"][order_by_click][1:] == clicks["actor"][order_by_click][:-1]
    nxt[order_by_click[:-1][same_actor]] = clicks["t"][order_by_click][1:][same_actor]
    cand = np.nonzero((kind == SHARED) & (rng.random(n) < 0.22))[0]
    ck = ev["order_click"][cand]
    ok = nxt[ck] > od["t"][cand]
    od["share_node"] = ev["order_node"].copy()
    od["share_node"][cand[ok]] = -1
    od["omitted"] = np.zeros(n, dtype=bool)
    od["omitted"][cand[ok]] = True

    # status: failed group buys refunded; otherwise mostly paid
    st = rng.choice(3, size=n, p=[0.92, 0.05, 0.03])
    g = od["group"]
    gstatus = od["groups"]["status"]
    is_g = g >= 0
    st[is_g] = np.where(gstatus[g[is_g]] == 2, 1, np.where(rng.random(int(is_g.sum())) < 0.97,
                                                           0, 1))
    st[kind == RING] = 0
    od["status"] = st

    # channel: share-driven via the share's channel; group buys; organic orders of repeat
    # customers migrate from platforms to social channels over the period
    share_chan = rng.choice(len(SHARE_CHANNEL_NAMES), size=nodes["t"].size, p=_SHARE_CHANNEL_P)
    nodes["channel"] = share_chan
    order_of_share = np.array([ORDER_CHANNEL_NAMES.index(c) for c in _ORDER_CHANNEL_OF_SHARE])
    person_orders = np.bincount(od["person"])
    by_person = np.lexsort((od["t"], od["person"]))
    first_of_person = np.zeros(n, dtype=bool)
    first_of_person[by_person[np.r_[True, od["person"][by_person][1:]
                                    != od["person"][by_person][:-1]]]] = True
    repeat = (person_orders[od["person"]] >= 2) & ~first_of_person
    frac = od["t"] / T_END
    p_social = np.where(repeat, 0.10 + 0.65 * frac, 0.08)
    social = rng.random(n) < p_social
    chan = np.where(social, rng.choice(_SOCIAL, size=n, p=_SOCIAL_P),
                    rng.choice(_PLATFORM, size=n, p=_PLATFORM_P))
    chan[kind == REFERRAL] = np.where(rng.random(int((kind == REFERRAL).sum())) < 0.7, 4, 7)
    sh = np.nonzero(ev["order_node"] >= 0)[0]
    chan[sh] = order_of_share[share_chan[ev["order_node"][sh]]]
    chan[kind == RING] = 4
    chan[is_g] = ORDER_CHANNEL_NAMES.index("group_buy")
    od["channel"] = chan

    cheap = cat["price_cents"][od["product"]] < 20_000  # several units only of cheap items
    qty = np.where(cheap & (rng.random(n) < 0.2), rng.integers(2, 4, n), 1)
    qty[is_g] = 1
    od["qty"] = qty


def _attribute(od: dict, ev: dict) -> dict:
    """The pipeline's attribution rule on the generated data (docs/demo-world.md):
    share_id -> the share's (re)poster; else the buyer's last click within 7 days -> that
    share's poster; else referrer_id. Returns the credited person per order (-1 = none) and
    whether the credit came through a share."""
    nodes, clicks = ev["nodes"], ev["clicks"]
    n = od["t"].size
    credited = np.full(n, -1)
    via_share = np.zeros(n, dtype=bool)
    has = od["share_node"] >= 0
    credited[has] = nodes["actor"][od["share_node"][has]]
    via_share[has] = True
    rest = np.nonzero(~has)[0]
    left = pl.DataFrame({"row": rest, "person": od["person"][rest], "t": od["t"][rest]}).sort("t")
    right = pl.DataFrame({"person": clicks["actor"], "t": clicks["t"],
                          "node": clicks["node"]}).sort("t")
    hit = left.join_asof(right, on="t", by="person", strategy="backward",
                         tolerance=ATTRIBUTION_WINDOW_S, check_sortedness=False)
    hit = hit.filter(pl.col("node").is_not_null())
    r = hit["row"].to_numpy()
    credited[r] = nodes["actor"][hit["node"].to_numpy()]
    via_share[r] = True
    ref = (credited < 0) & (od["referrer"] >= 0)
    credited[ref] = od["referrer"][ref]
    return {"credited": credited, "via_share": via_share, "last_click_rows": r}


# -- truth ---------------------------------------------------------------------------------------

def _truth(seed: int, people: int, n_orders: int, pop: dict, cat: dict, od: dict,
           att: dict) -> dict:
    """Ground truth. Top agents are *computed* from the data with the definitions the
    pipeline implements and are, by construction, the 20 planted KOLs."""
    price = cat["price_cents"][od["product"]]
    amount = price * od["qty"]
    is_g = od["kind"] == GROUP
    amount[is_g] = np.round(amount[is_g] * 0.85).astype(np.int64)
    od["amount_cents"] = amount
    paid = od["status"] == 0
    credited = att["credited"]
    agent_credit = paid & (credited >= 0) & (credited < pop["n_agents"])
    direct = np.bincount(credited[agent_credit], weights=amount[agent_credit] / 100.0,
                         minlength=pop["n_agents"])
    down = downstream_gmv(pop["upline"], direct, decay=0.5)
    pop["direct_gmv"], pop["downstream_gmv"] = direct, down
    top_down = np.argsort(-down, kind="stable")[:N_TOP_AGENTS]
    top_direct = np.argsort(-direct, kind="stable")[:N_TOP_AGENTS]
    pop["top_down"], pop["top_direct"] = top_down, top_direct
    expansion = {}
    for mid, (_n, special, other) in MERCHANTS.items():
        sells = set(special) | set(other)
        for a, b, _lift, _d in PLANTED_PAIRS:
            if a in sells and b not in sells:
                expansion[mid] = b
    return {
        "seed": seed, "people": people, "orders": n_orders, "period": list(PERIOD),
        "top_agents_downstream": top_down,  # ids filled in by _ids
        "top_agents_direct": top_direct,
        "category_pairs": [{"a": a, "b": b, "lift": lift} for a, b, lift, _d in PLANTED_PAIRS],
        "directional_pairs": [{"a": a, "b": b, "days": DIRECTIONAL_DAYS}
                              for a, b, _l, d in PLANTED_PAIRS if d],
        "spillover_pairs": [{"shared": a, "bought": b} for a, b in SPILLOVER_PAIRS],
        "expected_expansion": expansion,
        "ring_members": pop["ring"],
        "circle_owners": pop["owners"],
        "merchants": [{"merchant_id": m, "merchant_name": v[0],
                       "categories": sorted(set(v[1]) | set(v[2]), key=CATEGORY_NAMES.index)}
                      for m, v in MERCHANTS.items()],
        "categories": CATEGORY_NAMES,
    }


def downstream_gmv(upline: np.ndarray, direct: np.ndarray, decay: float = 0.5) -> np.ndarray:
    """Downstream GMV per agent: sum over descendants d at generation g >= 1 of
    decay**(g-1) * direct[d], computed leaves-up with one bincount per depth level."""
    depth = _depths(upline)
    down = np.zeros(direct.size)
    for level in range(int(depth.max()), 0, -1):
        at = np.nonzero(depth == level)[0]
        down += np.bincount(upline[at], weights=direct[at] + decay * down[at],
                            minlength=direct.size)
    return down


# -- ids and frames -----------------------------------------------------------------------------

def _id_series(prefix: str, numbers: np.ndarray, width: int) -> pl.Series:
    """``prefix`` + zero-padded number, e.g. c000123 (wider when the numbers need it)."""
    width = max(width, len(str(int(numbers.max()) if numbers.size else 0)))
    digits = pl.Series("id", numbers.astype(np.int64)).cast(pl.String).str.zfill(width)
    return pl.select((pl.lit(prefix) + digits).alias("id")).to_series()


def _gather(ids: pl.Series, idx: np.ndarray) -> pl.Series:
    """ids[idx] with -1 -> null."""
    ext = pl.concat([ids, pl.Series(ids.name, [None], dtype=pl.String)])
    return ext.gather(np.where(idx < 0, ids.len(), idx))


def _ids(rng: np.random.Generator, pop: dict, ev: dict) -> dict:
    """String ids. People get shuffled numbers so ids do not reveal roles; orders, shares and
    events are numbered in time order."""
    n, na = pop["n"], pop["n_agents"]
    agent_num = rng.permutation(na) + 1
    cust_num = rng.permutation(n - na) + 1
    person = pl.concat([_id_series("a", agent_num, 5), _id_series("c", cust_num, 6)])
    nodes = ev["nodes"]
    node_order = np.lexsort((np.arange(nodes["t"].size), nodes["t"]))
    node_rank = np.empty_like(node_order)
    node_rank[node_order] = np.arange(node_order.size)
    share = _id_series("s", node_rank + 1, 8)
    return {"person": person, "share": share}


def _ts(seconds: np.ndarray) -> pl.Series:
    return pl.from_epoch(pl.Series(seconds.astype(np.int64) + _BASE), time_unit="s")


def _money(cents: np.ndarray, fmt: str) -> pl.Series:
    s = pl.Series(cents.astype(np.float64) / 100.0)
    return s.cast(pl.Decimal(18, 2)) if fmt == "parquet" else s


def _frames(pop: dict, cat: dict, od: dict, ev: dict, ids: dict, att: dict,
            fmt: str) -> dict[str, pl.DataFrame]:
    """The five contract tables as frames with exactly the contract's columns."""
    prod_ids = _id_series("p", np.arange(1, cat["p_cat"].size + 1), 4)
    frames = {"orders": _orders_frame(pop, cat, od, ids, att, prod_ids, fmt),
              "share_events": _events_frame(cat, ev, ids, prod_ids),
              "products": _products_frame(cat, prod_ids, fmt),
              "agents": _agents_frame(pop, ids["person"]),
              "group_buys": _group_buys_frame(od, ids["person"], prod_ids)}
    for name, frame in frames.items():
        assert frame.columns == TABLES[name].column_names, (name, frame.columns)
    return frames


def _orders_frame(pop: dict, cat: dict, od: dict, ids: dict, att: dict, prod_ids: pl.Series,
                  fmt: str) -> pl.DataFrame:
    """Order lines numbered in time order; commission and red packet paid on credited paid
    lines only (NULL otherwise)."""
    person, share = ids["person"], ids["share"]
    n = od["t"].size
    o = np.lexsort((np.arange(n), od["t"]))
    paid = od["status"][o] == 0
    amount = od["amount_cents"][o]
    cred = att["credited"][o]
    commission = np.where(paid & (cred >= 0) & (cred < pop["n_agents"]),
                          np.round(amount * COMMISSION_RATE), -1).astype(np.int64)
    red = np.where(paid & att["via_share"][o], RED_PACKET_CENTS, -1)
    gnum = od["group"][o]
    orders = pl.DataFrame({
        "order_id": _id_series("o", np.arange(1, n + 1), 8),
        "line_no": pl.Series(np.ones(n, dtype=np.int32)),
        "customer_id": person.gather(od["person"][o]),
        "ordered_at": _ts(od["t"][o]),
        "product_id": prod_ids.gather(od["product"][o]),
        "category": pl.Series(CATEGORY_NAMES).gather(od["category"][o]),
        "quantity": pl.Series(od["qty"][o].astype(np.int32)),
        "amount": _money(amount, fmt),
        "channel": pl.Series(ORDER_CHANNEL_NAMES).gather(od["channel"][o]),
        "merchant_id": pl.Series(list(MERCHANTS)).gather(od["merchant"][o]),
        "referrer_id": _gather(person, od["referrer"][o]),
        "share_id": _gather(share, od["share_node"][o]),
        "group_id": _gather(_id_series("g", np.arange(1, od["groups"]["target"].size + 1), 6),
                            gnum),
        "status": pl.Series(STATUS_NAMES).gather(od["status"][o]),
        "commission": _money(np.maximum(commission, 0), fmt),
        "red_packet": _money(np.maximum(red, 0), fmt),
    })
    return orders.with_columns(
        orders["commission"].set(pl.Series(commission < 0), None),
        orders["red_packet"].set(pl.Series(red < 0), None),
    )


def _events_frame(cat: dict, ev: dict, ids: dict, prod_ids: pl.Series) -> pl.DataFrame:
    """Shares, re-shares and clicks, numbered in time order (posts before clicks at equal
    times)."""
    person, share = ids["person"], ids["share"]
    nodes, clicks = ev["nodes"], ev["clicks"]
    n_nodes = nodes["t"].size
    n_clicks = clicks["t"].size
    e_t = np.r_[nodes["t"], clicks["t"]]
    is_click = np.r_[np.zeros(n_nodes, bool), np.ones(n_clicks, bool)]
    node_of = np.r_[np.arange(n_nodes), clicks["node"]]
    e_type = np.where(is_click, 2, np.where(np.r_[nodes["root"], np.zeros(n_clicks, bool)], 0, 1))
    parent = np.where(is_click | (e_type == 0), -1, np.r_[nodes["parent"],
                                                          np.zeros(n_clicks, np.int64)])
    e = np.argsort(e_t, kind="stable")  # posts before clicks at equal times
    e_product = nodes["product"][node_of[e]]
    return pl.DataFrame({
        "event_id": _id_series("e", np.arange(1, e.size + 1), 8),
        "event_type": pl.Series(["share", "reshare", "click"]).gather(e_type[e]),
        "share_id": share.gather(node_of[e]),
        "actor_id": person.gather(np.r_[nodes["actor"], clicks["actor"]][e]),
        "occurred_at": _ts(e_t[e]),
        "parent_share_id": _gather(share, parent[e]),
        "product_id": prod_ids.gather(e_product),
        "category": pl.Series(CATEGORY_NAMES).gather(cat["p_cat"][e_product]),
        "channel": pl.Series(SHARE_CHANNEL_NAMES).gather(nodes["channel"][node_of[e]]),
    })


def _products_frame(cat: dict, prod_ids: pl.Series, fmt: str) -> pl.DataFrame:
    """The catalogue; the agent price is 70% of the list price, to ten cents."""
    mids = list(MERCHANTS)
    return pl.DataFrame({
        "product_id": prod_ids,
        "product_name": pl.Series([MERCHANTS[mids[m]][0][:2] + _STYLES[s] + CATEGORY_NAMES[c]
                                   for m, s, c in zip(cat["p_merchant"], cat["p_style"],
                                                      cat["p_cat"], strict=True)]),
        "category": pl.Series(CATEGORY_NAMES).gather(cat["p_cat"]),
        "merchant_id": pl.Series(mids).gather(cat["p_merchant"]),
        "merchant_name": pl.Series([v[0] for v in MERCHANTS.values()]).gather(cat["p_merchant"]),
        "price": _money(cat["price_cents"], fmt),
        "agent_price": _money(np.round(cat["price_cents"] * 0.7 / 10) * 10, fmt),
    })


def _agents_frame(pop: dict, person: pl.Series) -> pl.DataFrame:
    """Agents with their upline, join time and level (depth + 1), sorted by id."""
    return pl.DataFrame({
        "agent_id": person.head(pop["n_agents"]),
        "upline_id": _gather(person, pop["upline"]),
        "joined_at": _ts(pop["joined"]),
        "level": pl.Series((pop["depth"] + 1).astype(np.int32)),
    }).sort("agent_id")


def _group_buys_frame(od: dict, person: pl.Series, prod_ids: pl.Series) -> pl.DataFrame:
    """Group buys; an open group has no closed_at."""
    g = od["groups"]
    ng = g["target"].size
    return pl.DataFrame({
        "group_id": _id_series("g", np.arange(1, ng + 1), 6),
        "initiator_id": person.gather(g["initiator"]),
        "product_id": prod_ids.gather(g["product"]),
        "target_size": pl.Series(g["target"].astype(np.int32)),
        "opened_at": _ts(g["opened"]),
        "closed_at": _ts(np.maximum(g["closed"], 0)).set(pl.Series(g["closed"] < 0), None),
        "status": pl.Series(GROUP_STATUS_NAMES).gather(g["status"]),
    })


# -- referral-integrity patterns (docs/integrity.md) -------------------------------------------

INTEGRITY_PER_RULE = 3
"""Agents planted per integrity rule (self-referral, ring, refund abuse, click burst)."""


def _plant_integrity(frames: dict[str, pl.DataFrame], pop: dict, od: dict, ids: dict,
                     att: dict, seed: int, fmt: str) -> dict:
    """Plant the four integrity patterns into the written frames, after everything else.

    Drawn from their own generator (``default_rng([seed, 15])``), so every other planted
    signal and truth stays as it was; the order count is unchanged (existing order lines are
    re-pointed, none added). Only ordinary agents outside the KOL downlines and the ring take
    part, each in one pattern. Returns the new truth keys (person ids).
    """
    rng = np.random.default_rng([seed, 15])
    person = ids["person"]
    events = frames["share_events"]
    q = _integrity_pools(frames, pop, od, att, person)
    selfr, ring, abusers, bursters = _integrity_agents(rng, q)
    lines = _order_lines(frames["orders"])
    own_clicks = _plant_self_referral(lines, q, selfr, person, events)
    _plant_ring(lines, q, ring, person)
    _plant_refund_abuse(rng, lines, q, abusers, person, pop["n_agents"])
    farm_clicks = _plant_click_bursts(rng, lines, q, bursters, pop, person, events)
    frames["orders"] = _integrity_orders(frames["orders"], lines, fmt)
    frames["share_events"] = _with_clicks(events, own_clicks + farm_clicks)
    ids_of = lambda idx: person.gather(idx).to_list()  # noqa: E731
    return {"self_referrers": ids_of(selfr), "referral_ring": ids_of(ring),
            "refund_abusers": ids_of(abusers), "click_bursters": ids_of(bursters)}


def _integrity_pools(frames: dict[str, pl.DataFrame], pop: dict, od: dict, att: dict,
                     person: pl.Series) -> dict:
    """What the patterns may use. Per written order line (time order): ``free`` organic paid
    lines nobody is credited for (no referrer, share, group or payout), the buyer, the
    credited person; per person: own free lines, credited paid lines, whether they shared."""
    na = pop["n_agents"]
    root = np.arange(na)
    up = pop["upline"]
    for _ in range(int(pop["depth"].max()) + 1):
        root = np.where(up[root] >= 0, up[root], root)
    ordinary = np.flatnonzero((root >= N_TOP_AGENTS) & (np.arange(na) >= N_TOP_AGENTS))
    ordinary = np.setdiff1d(ordinary, pop["ring"])
    orders, events = frames["orders"], frames["share_events"]
    n = od["t"].size
    o = np.lexsort((np.arange(n), od["t"]))
    cred = att["credited"][o]
    free = (orders["status"].to_numpy() == "paid") & orders["referrer_id"].is_null().to_numpy() \
        & orders["share_id"].is_null().to_numpy() & orders["group_id"].is_null().to_numpy() \
        & orders["commission"].is_null().to_numpy() & orders["red_packet"].is_null().to_numpy()
    buyer = od["person"][o]
    credited_paid = (orders["status"].to_numpy() == "paid") & (cred >= 0) \
        & orders["group_id"].is_null().to_numpy()
    posts = _own_shares(events)
    sharer_of = dict(zip(posts["share_id"].to_list(), posts["actor_id"].to_list(), strict=True))
    # a hashed lookup: np.isin on string (object) arrays compares pairwise (19 s at 1M orders)
    has_share = person.head(na).is_in(pl.Series(list(set(sharer_of.values()))).implode()).to_numpy()
    return {"ordinary": ordinary, "row": np.arange(n), "free": free, "buyer": buyer,
            "cred": cred, "credited_paid": credited_paid, "ot": od["t"][o],
            "own_free": np.bincount(buyer[free], minlength=pop["n"]),
            "n_credited": np.bincount(cred[credited_paid], minlength=pop["n"]),
            "has_share": has_share}


def _integrity_agents(rng: np.random.Generator,
                      q: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Who plants which pattern (each agent one): self-referrers and ring members need own
    free orders, abusers are the most credited, bursters need a share of their own. A tiny
    world may hold fewer suitable agents: then fewer are planted (a ring needs 2)."""
    k = INTEGRITY_PER_RULE
    ordinary, has_share = q["ordinary"], q["has_share"]
    pool = rng.permutation(ordinary[q["own_free"][ordinary] >= 3])
    selfr = pool[has_share[pool]][:k]
    ring = np.setdiff1d(pool, selfr)[:k]
    ring = ring if ring.size >= 2 else ring[:0]
    rest = np.setdiff1d(ordinary, np.r_[selfr, ring])
    abusers = rest[np.argsort(-q["n_credited"][rest], kind="stable")][:k]
    rest = np.setdiff1d(rest, abusers)
    bursters = rng.permutation(rest[has_share[rest]])[:k]
    return selfr, ring, abusers, bursters


def _order_lines(orders: pl.DataFrame) -> dict:
    """The order columns the patterns rewrite, as Python lists (one entry per line), plus
    the amounts, times and a ``used`` mask so no line takes part in two patterns."""
    return {"referrer": orders["referrer_id"].to_list(), "share": orders["share_id"].to_list(),
            "customer": orders["customer_id"].to_list(), "status": orders["status"].to_list(),
            "commission": orders["commission"].to_list(), "red": orders["red_packet"].to_list(),
            "amount": orders["amount"].cast(pl.Float64).to_numpy(),
            "t": orders["ordered_at"].to_list(), "used": np.zeros(orders.height, dtype=bool)}


def _pay(lines: dict, r: int, via_share: bool) -> None:
    """Line ``r`` pays commission, and a red packet when it came through a share."""
    lines["commission"][r] = round(float(lines["amount"][r]) * COMMISSION_RATE, 2)
    lines["red"][r] = RED_PACKET_CENTS / 100 if via_share else None


def _own_shares(events: pl.DataFrame) -> pl.DataFrame:
    """Share posts (not re-shares or clicks)."""
    return events.filter(pl.col("event_type") == "share")


def _plant_self_referral(lines: dict, q: dict, selfr: np.ndarray, person: pl.Series,
                         events: pl.DataFrame) -> list[tuple[str, str, int]]:
    """Up to 6 own organic orders per agent, alternately with the agent as referrer and
    through the agent's first share (opened by the agent 30 minutes before). Returns the
    added clicks (share_id, actor_id, seconds)."""
    shares_by = (_own_shares(events)
                 .group_by("actor_id").agg(pl.col("share_id").sort_by("occurred_at").first(),
                                           pl.col("occurred_at").min()))
    first_share = {a: (sid, at) for a, sid, at in shares_by.iter_rows()}
    own_clicks: list[tuple[str, str, int]] = []
    for a in selfr:
        pid = person[int(a)]
        rows = q["row"][q["free"] & (q["buyer"] == a)][:6]
        sid, at = first_share[pid]
        for j, r in enumerate(rows):
            if j % 2 and lines["t"][r] > at + timedelta(hours=1):
                lines["share"][r] = sid
                _pay(lines, r, True)
                own_clicks.append((sid, pid, int((lines["t"][r] - _T0).total_seconds()) - 30 * 60))
            else:
                lines["referrer"][r] = pid
                _pay(lines, r, False)
        lines["used"][rows] = True
    return own_clicks


def _plant_ring(lines: dict, q: dict, ring: np.ndarray, person: pl.Series) -> None:
    """Each ring member's organic orders credited to the next member (a -> b -> c -> a)."""
    for j, a in enumerate(ring):
        rows = q["row"][q["free"] & (q["buyer"] == a)][:5]
        for r in rows:
            lines["referrer"][r] = person[int(ring[(j + 1) % ring.size])]
            _pay(lines, r, False)
        lines["used"][rows] = True


def _plant_refund_abuse(rng: np.random.Generator, lines: dict, q: dict, abusers: np.ndarray,
                        person: pl.Series, na: int) -> None:
    """Most of each abuser's credited orders refunded, plus other customers' orders placed
    through the abuser's referral link and refunded."""
    row, used = q["row"], lines["used"]
    extra = max(12, row.size // 2500)
    for a in abusers:
        own = row[q["credited_paid"] & (q["cred"] == a)]
        own = own[rng.random(own.size) < 0.6]
        others = rng.permutation(row[q["free"] & ~used & (q["buyer"] >= na)])[:extra]
        for r in others:
            lines["referrer"][r] = person[int(a)]
        for r in np.r_[own, others]:
            lines["status"][r], lines["commission"][r], lines["red"][r] = "refunded", None, None
        used[np.r_[own, others]] = True


def _plant_click_bursts(rng: np.random.Generator, lines: dict, q: dict, bursters: np.ndarray,
                        pop: dict, person: pl.Series,
                        events: pl.DataFrame) -> list[tuple[str, str, int]]:
    """One share per agent gets 30-60 clicks from new accounts within 5 minutes, and the
    first of those accounts places an order through it. Returns the added clicks
    (share_id, actor_id, seconds); the new accounts are numbered after the customers."""
    own = (_own_shares(events).sort("occurred_at")
           .group_by("actor_id", maintain_order=True).agg("share_id", "occurred_at"))
    own_shares = {a: list(zip(sids, ats, strict=True)) for a, sids, ats in own.iter_rows()}
    na = pop["n_agents"]
    n_cust = pop["n"] - na
    row, ot, used = q["row"], q["ot"], lines["used"]
    farm_clicks: list[tuple[str, str, int]] = []
    n_farm = 0

    def farm_id(j: int) -> str:  # new accounts, numbered after the customers: c003601, ...
        return f"c{n_cust + j:0{max(6, len(str(n_cust)))}d}"

    for a in bursters:
        pid = person[int(a)]
        pool = row[q["free"] & ~used & (q["buyer"] >= na)]
        sid, s0, cand = None, 0, pool[:0]
        for share_id, at in own_shares[pid]:
            sid, s0 = share_id, int((at - _T0).total_seconds())
            cand = pool[(ot[pool] > s0 + 2 * HOUR) & (ot[pool] < s0 + 6 * DAY)]
            if cand.size:
                break
        r = int(rng.choice(cand)) if cand.size else -1
        start = (max(s0 + 60, int(ot[r]) - int(rng.integers(30 * 60, 6 * HOUR))) if r >= 0
                 else s0 + int(rng.integers(HOUR, DAY)))
        size = int(rng.integers(30, 61))
        first = n_farm + 1
        for off in np.sort(rng.integers(0, 300, size)):
            n_farm += 1
            farm_clicks.append((sid, farm_id(n_farm), min(start + int(off), T_END)))
        if r >= 0:
            lines["customer"][r] = farm_id(first)
            lines["share"][r] = sid
            _pay(lines, r, True)
            used[r] = True
    return farm_clicks


def _integrity_orders(orders: pl.DataFrame, lines: dict, fmt: str) -> pl.DataFrame:
    """The orders frame with the rewritten columns."""
    money = (lambda v: pl.Series(v, dtype=pl.Float64).cast(pl.Decimal(18, 2))) if fmt == "parquet" \
        else (lambda v: pl.Series(v, dtype=pl.Float64))
    return orders.with_columns(
        referrer_id=pl.Series(lines["referrer"], dtype=pl.String),
        share_id=pl.Series(lines["share"], dtype=pl.String),
        customer_id=pl.Series(lines["customer"], dtype=pl.String),
        status=pl.Series(lines["status"], dtype=pl.String),
        commission=money(lines["commission"]), red_packet=money(lines["red"]))


def _with_clicks(events: pl.DataFrame, added: list[tuple[str, str, int]]) -> pl.DataFrame:
    """Share events with the added clicks (share_id, actor_id, seconds) merged in time order
    and every event renumbered."""
    meta = events.select("share_id", "product_id", "category", "channel").unique("share_id")
    fc = pl.DataFrame({"share_id": [c[0] for c in added], "actor_id": [c[1] for c in added],
                       "occurred_at": _ts(np.array([c[2] for c in added], dtype=np.int64))})
    fc = fc.join(meta, on="share_id", how="left").with_columns(
        event_type=pl.lit("click"), parent_share_id=pl.lit(None, dtype=pl.String),
        event_id=pl.lit(""))
    merged = pl.concat([events, fc.select(events.columns)], how="vertical_relaxed")
    return merged.sort("occurred_at", maintain_order=True).with_columns(
        event_id=_id_series("e", np.arange(1, merged.height + 1), 8))


def _write(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        frame.write_parquet(path, statistics=False)
    else:
        frame.write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S", float_precision=2,
                        null_value="")
