"""Converters from the real public datasets to sharegraph input files, and independent figures.

The raw files live outside the repository in ``../shared/data/real`` (see its README); they
are read in place and never copied. Each converter writes what a real export of that
platform would look like: raw source values (channel ``beibei`` / ``ciao`` / ``ciaodvd``,
group status ``success`` / ``failed``), not our canonical vocabulary, so the tests exercise
the ingest's synonym handling. The ``expected_*`` functions compute the figures straight
from the raw files with polars, without sharegraph's SQL or definitions, so the tests can
compare the pipeline's marts against them. Assumptions are documented in docs/real-data.md.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import scipy.io

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
"""``/work/shared/data/real`` next to the repository: read in place, never copied."""

AMOUNT = "1.00"
"""None of the datasets has prices: every order line is a constant ¥1.00."""

BEIBEI_SPLITS = (("test", "test.txt.gz", True), ("tune", "tune.txt.gz", True),
                 ("invalid", "invalid.txt.gz", False))
"""(split, file, successful): the test and tune splits hold successful groups, ``invalid`` the failed ones."""
BEIBEI_EPOCH = datetime(2020, 1, 1)
"""BeiBei has no timestamps: group k (0-based, in split order) opens at this instant + k minutes."""
BEIBEI_FAILED_AFTER_HOURS = 24
"""A failed group closes (and its initiator is refunded) this many hours after it opened."""
BEIBEI_TARGET_SIZE = 2
"""BeiBei gives no target size; a group succeeds with at least one participant, so initiator + 1."""
BEIBEI_CATEGORY = "母婴"
"""BeiBei has no categories: one category for the whole set (BeiBei sells mother-and-baby goods)."""
CIAO_RATING_VARIABLE = "rating"


class RealDataMissing(FileNotFoundError):
    """A raw dataset file is not where the data README says; tests skip with this message."""


def require(*paths: Path) -> None:
    """Raise RealDataMissing naming the first raw file that is absent."""
    for path in paths:
        if not path.is_file():
            raise RealDataMissing(f"{path.name} not found at {path.parent} (real data is not copied into the repo)")


# ------------------------------------------------------------------------------------ BeiBei

def beibei_paths(root: Path = REAL_DIR) -> list[Path]:
    """The three BeiBei split files."""
    return [root / "beibei" / name for _, name, _ in BEIBEI_SPLITS]


def read_beibei_groups(root: Path = REAL_DIR, initiator_mod: int = 1) -> pl.DataFrame:
    """One row per raw line = one group: split, line, initiator, item, participants, success.

    ``initiator_mod`` > 1 keeps only groups whose numeric initiator id is divisible by it: a
    deterministic subset that keeps every kept initiator's groups whole, so per-initiator
    figures on the subset equal those on the full set.
    """
    require(*beibei_paths(root))
    frames = []
    for split, name, success in BEIBEI_SPLITS:
        text = gzip.decompress((root / "beibei" / name).read_bytes()).decode("ascii")
        tokens = pl.Series("tokens", text.splitlines()).str.strip_chars().str.split("\t")
        frames.append(
            pl.DataFrame(tokens)
            .filter(pl.col("tokens").list.len() >= 2)
            .with_row_index("line", offset=1)
            .select(
                pl.lit(split).alias("split"),
                pl.col("line").cast(pl.Int64),
                pl.col("tokens").list.get(0).alias("initiator"),
                pl.col("tokens").list.get(1).alias("item"),
                pl.col("tokens").list.slice(2).alias("participants"),
                pl.lit(success).alias("success"),
            )
        )
    groups = pl.concat(frames).with_row_index("k")
    if initiator_mod > 1:
        groups = groups.filter(pl.col("initiator").cast(pl.Int64) % initiator_mod == 0)
    return groups


def write_beibei(out: Path, root: Path = REAL_DIR, initiator_mod: int = 1,
                 item_categories: bool = False) -> dict[str, int]:
    """Write ``orders.csv`` and ``group_buys.csv`` for the BeiBei groups into ``out``.

    Every group gets an id ``<split>-<line>``; its initiator buys the item when opening it
    (refunded when the group fails), each participant buys it one minute after the previous
    member, credited to the initiator (``referrer_id``). ``item_categories`` makes every item
    its own category (about 30k leaf categories: the many-categories benchmark) instead of
    one category for the whole set. Returns the number of rows written.
    """
    out.mkdir(parents=True, exist_ok=True)
    fmt = "%Y-%m-%d %H:%M:%S"
    groups = read_beibei_groups(root, initiator_mod).with_columns(
        group_id=pl.format("{}-{}", "split", "line"),
        opened=pl.lit(BEIBEI_EPOCH) + pl.duration(minutes=pl.col("k")),
    )
    members = (
        groups.select("group_id", "initiator", "item", "opened", "success",
                      pl.concat_list(pl.col("initiator"), "participants").alias("member"))
        .explode("member")
        .with_columns(j=pl.int_range(pl.len()).over("group_id"))
    )
    orders = members.select(
        order_id=pl.format("{}-{}", "group_id", "j"),
        line_no=pl.lit(1),
        customer_id="member",
        ordered_at=(pl.col("opened") + pl.duration(minutes=pl.col("j"))).dt.strftime(fmt),
        product_id="item",
        category=pl.format("item-{}", "item") if item_categories else pl.lit(BEIBEI_CATEGORY),
        quantity=pl.lit(1),
        amount=pl.lit(AMOUNT),
        channel=pl.lit("beibei"),
        referrer_id=pl.when(pl.col("j") > 0).then(pl.col("initiator")),
        group_id="group_id",
        status=pl.when(pl.col("success")).then(pl.lit("paid")).otherwise(pl.lit("refunded")),
    )
    group_buys = groups.select(
        "group_id",
        initiator_id="initiator",
        product_id="item",
        target_size=pl.lit(BEIBEI_TARGET_SIZE),
        opened_at=pl.col("opened").dt.strftime(fmt),
        closed_at=pl.when(pl.col("success"))
        .then(pl.col("opened") + pl.duration(minutes=pl.col("participants").list.len()))
        .otherwise(pl.col("opened") + pl.duration(hours=BEIBEI_FAILED_AFTER_HOURS))
        .dt.strftime(fmt),
        status=pl.when(pl.col("success")).then(pl.lit("success")).otherwise(pl.lit("failed")),
    )
    orders.write_csv(out / "orders.csv")
    group_buys.write_csv(out / "group_buys.csv")
    return {"orders": orders.height, "group_buys": group_buys.height}


@dataclass(frozen=True)
class BeibeiFigures:
    """Group-buy figures computed straight from the raw BeiBei lines."""

    groups: int
    successes: int
    failures: int
    success_rate: float
    top_initiators: list[tuple[str, int]]
    """(initiator, distinct participants other than the initiator), most first, ties by id."""


def expected_beibei(root: Path = REAL_DIR, initiator_mod: int = 1, top: int = 10) -> BeibeiFigures:
    """Count lines per split and distinct participants per initiator, in plain polars."""
    groups = read_beibei_groups(root, initiator_mod)
    successes = int(groups["success"].sum())
    failures = groups.height - successes
    buyers = (
        groups.select("initiator", "participants").explode("participants")
        .filter(pl.col("participants").is_not_null() & (pl.col("participants") != pl.col("initiator")))
        .group_by("initiator").agg(pl.col("participants").n_unique().alias("buyers"))
        .sort(["buyers", "initiator"], descending=[True, False])
        .head(top)
    )
    return BeibeiFigures(
        groups=groups.height,
        successes=successes,
        failures=failures,
        success_rate=successes / (successes + failures),
        top_initiators=[(r[0], int(r[1])) for r in buyers.iter_rows()],
    )


# -------------------------------------------------------------------------------------- Ciao

def ciao_path(root: Path = REAL_DIR) -> Path:
    return root / "ciao" / "rating_with_timestamp.mat"


def read_ciao(root: Path = REAL_DIR) -> pl.DataFrame:
    """The Ciao review matrix (userid, productid, categoryid, rating, helpfulness, time)."""
    require(ciao_path(root))
    matrix = scipy.io.loadmat(str(ciao_path(root)))[CIAO_RATING_VARIABLE]
    names = ["userid", "productid", "categoryid", "rating", "helpfulness", "time"]
    return pl.DataFrame(matrix, schema=names, orient="row").with_row_index("row", offset=1)


def write_ciao(out: Path, root: Path = REAL_DIR) -> dict[str, int]:
    """Write ``orders.csv``: one paid line per review, category = the raw Ciao category id.

    A review stands for a purchase; the order id is the 1-based row of the review matrix
    (Ciao has no review id); times are the raw Unix seconds written as UTC (``Z``).
    """
    out.mkdir(parents=True, exist_ok=True)
    reviews = read_ciao(root)
    orders = reviews.select(
        order_id=pl.format("ciao-{}", "row"),
        customer_id=pl.col("userid").cast(pl.Utf8),
        ordered_at=pl.from_epoch("time", time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        product_id=pl.col("productid").cast(pl.Utf8),
        category=pl.col("categoryid").cast(pl.Utf8),
        quantity=pl.lit(1),
        amount=pl.lit(AMOUNT),
        channel=pl.lit("ciao"),
    )
    orders.write_csv(out / "orders.csv")
    return {"orders": orders.height}


def ciao_category_names(root: Path = REAL_DIR) -> dict[str, str]:
    """Category id -> name from ``catalog_ciao.txt`` (for the docs; unverified upstream)."""
    path = root / "ciao" / "catalog_ciao.txt"
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return dict(line.strip().split(" ", 1) for line in lines if line.strip())


# ----------------------------------------------------------------------------------- CiaoDVD

def ciaodvd_path(root: Path = REAL_DIR) -> Path:
    return root / "ciaodvd" / "movie-ratings.txt.gz"


def read_ciaodvd(root: Path = REAL_DIR) -> pl.DataFrame:
    """The CiaoDVD ratings (userID, movieID, genreID, reviewID, rating, date), all as text."""
    require(ciaodvd_path(root))
    names = ["userID", "movieID", "genreID", "reviewID", "rating", "date"]
    return pl.read_csv(ciaodvd_path(root), has_header=False, new_columns=names,
                       schema_overrides=dict.fromkeys(names, pl.Utf8))


def write_ciaodvd(out: Path, root: Path = REAL_DIR) -> dict[str, int]:
    """Write ``orders.csv``: one paid line per rating, order id = reviewID, category = genreID.

    The raw date (``YYYY-MM-DD``, no time) is written as is: the contract accepts a date.
    """
    out.mkdir(parents=True, exist_ok=True)
    orders = read_ciaodvd(root).select(
        order_id="reviewID",
        customer_id="userID",
        ordered_at="date",
        product_id="movieID",
        category="genreID",
        quantity=pl.lit(1),
        amount=pl.lit(AMOUNT),
        channel=pl.lit("ciaodvd"),
    )
    orders.write_csv(out / "orders.csv")
    return {"orders": orders.height}


# ------------------------------------------------------------------------ category affinity

def expected_pair_lifts(purchases: pl.DataFrame, min_common: int = 20) -> pl.DataFrame:
    """Customer-level lift of every ordered category pair (A != B) with >= ``min_common``
    customers who bought both.

    ``purchases`` has columns ``customer`` and ``category`` (one row per purchase). The
    universe is every customer with a purchase; lift = P(A and B) / (P(A) P(B)) over it.
    """
    items = purchases.select("customer", "category").unique()
    n_total = items["customer"].n_unique()
    n_cat = items.group_by("category").agg(pl.len().alias("n"))
    pairs = (
        items.join(items, on="customer", suffix="_b")
        .filter(pl.col("category") != pl.col("category_b"))
        .group_by(pl.col("category").alias("a"), pl.col("category_b").alias("b"))
        .agg(pl.len().alias("n_ab"))
        .filter(pl.col("n_ab") >= min_common)
        .join(n_cat.rename({"category": "a", "n": "n_a"}), on="a")
        .join(n_cat.rename({"category": "b", "n": "n_b"}), on="b")
        .with_columns(n_total=pl.lit(n_total, dtype=pl.Int64))
    )
    p = lambda c: pl.col(c) / pl.col("n_total")  # noqa: E731 - a one-line helper
    return (
        pairs.with_columns(lift=p("n_ab") / (p("n_a") * p("n_b")))
        .select("a", "b", "n_ab", "n_a", "n_b", "n_total", "lift")
        .sort(["lift", "a", "b"], descending=[True, False, False])
    )


def expected_ciao(root: Path = REAL_DIR, min_common: int = 20) -> pl.DataFrame:
    """Pair lifts straight from the Ciao matrix: a customer bought every category they reviewed."""
    reviews = read_ciao(root).select(customer=pl.col("userid").cast(pl.Utf8),
                                     category=pl.col("categoryid").cast(pl.Utf8))
    return expected_pair_lifts(reviews, min_common)


def expected_ciaodvd(root: Path = REAL_DIR, min_common: int = 20) -> pl.DataFrame:
    """Pair lifts straight from the CiaoDVD ratings: a customer bought every genre they rated."""
    ratings = read_ciaodvd(root).select(customer="userID", category="genreID")
    return expected_pair_lifts(ratings, min_common)
