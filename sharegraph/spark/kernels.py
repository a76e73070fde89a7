"""Graph kernels on Spark: DataFrame iterations, one ``localCheckpoint()`` per iteration.

The Spark twins of :mod:`sharegraph.core.kernels` (same definitions, tested against them in
``tests/spark/test_kernels.py``): weighted PageRank, connected components, modularity-aware
label propagation (LPAm) and downstream (downline) totals over a forest by pointer doubling.
Nodes are integers ``0..n-1`` in a column ``id`` (PageRank, LPA) or any integer ids (CC,
forest). Every iteration cuts the plan with ``localCheckpoint()`` so the lineage (and the
planner's work) stays one iteration deep; the per-iteration cost is a shuffle of the edges
(docs/scale-out.md). pyspark is imported by the caller's session; these functions take
DataFrames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _F():
    from pyspark.sql import functions as F

    return F


def _cut(df: DataFrame) -> DataFrame:
    """Materialise ``df`` on the executors and drop its lineage (one job).

    The checkpointed plan would keep the size estimate of the plan that made it, and Spark
    estimates a join's size as the product of its inputs', so over the iterations the
    estimate grows without bound (a BigInteger of millions of digits: the driver runs out of
    memory after a few dozen LPA rounds). The checkpoint's rows are therefore wrapped in a
    new DataFrame (JVM side, no Python rows) that carries no estimate.
    """
    from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame

    ck = df.localCheckpoint(eager=True)
    session = df.sparkSession
    fresh = session._jsparkSession.createDataFrame(ck._jdf.rdd(), ck._jdf.schema())
    return ClassicDataFrame(fresh, session)


def pagerank(spark: SparkSession, edges: DataFrame, n: int, alpha: float = 0.85,
             tol: float = 1e-10, max_iter: int = 1000) -> DataFrame:
    """Weighted PageRank of nodes ``0..n-1``: DataFrame ``(id, rank)``.

    ``edges``: ``(src, dst, weight)``. Same definition and stopping rule as
    :func:`sharegraph.core.kernels.pagerank`: rank flows along out-edges in proportion to
    weight (parallel edges summed), dangling nodes spread their rank uniformly, uniform
    teleport; stops at the first iteration whose L1 change is below ``tol``. Two jobs per
    iteration: the new ranks, checkpointed (a shuffle of the edges by ``dst``), then one
    aggregate giving the L1 change and the next dangling mass. (Caching instead of a
    checkpoint per iteration was tried: the ranks appear twice in each iteration's plan, so
    the cached plans double in size every iteration and the driver ran out of memory
    printing them.)
    """
    F = _F()
    if n == 0:
        return spark.createDataFrame([], "id BIGINT, rank DOUBLE")
    e = edges.groupBy("src", "dst").agg(F.sum(F.col("weight").cast("double")).alias("w"))
    out = e.groupBy("src").agg(F.sum("w").alias("out_w"))
    p = _cut(e.join(out, "src").select("src", "dst", (F.col("w") / F.col("out_w")).alias("p")))
    nodes = spark.range(n).join(out.select(F.col("src").alias("id"), F.lit(False).alias("d0")),
                                "id", "left")
    x = _cut(nodes.select("id", F.col("d0").isNull().alias("dangling"),
                          F.lit(1.0 / n).alias("rank")))
    dangling_mass = float(x.where("dangling").agg(F.coalesce(F.sum("rank"), F.lit(0.0))).first()[0])
    for _ in range(max_iter):
        flow = (p.join(x.select(F.col("id").alias("src"), "rank"), "src")
                .groupBy("dst").agg(F.sum(F.col("p") * F.col("rank")).alias("inflow")))
        new = _cut(
            x.join(flow.withColumnRenamed("dst", "id"), "id", "left").select(
                "id", "dangling",
                F.col("rank").alias("prev"),
                (F.lit(alpha) * (F.coalesce(F.col("inflow"), F.lit(0.0))
                                 + F.lit(dangling_mass / n))
                 + F.lit((1.0 - alpha) / n)).alias("rank"),
            )
        )
        diff, dangling_mass = new.agg(
            F.sum(F.abs(F.col("rank") - F.col("prev"))),
            F.coalesce(F.sum(F.when(F.col("dangling"), F.col("rank"))), F.lit(0.0)),
        ).first()
        x = new.drop("prev")
        if diff < tol:
            return x.select("id", "rank")
    raise RuntimeError(f"pagerank did not converge in {max_iter} iterations")


def connected_components(spark: SparkSession, edges: DataFrame,
                         nodes: DataFrame | None = None, max_iter: int = 10_000) -> DataFrame:
    """Weakly connected components: DataFrame ``(id, component)``, component = smallest id.

    ``edges``: ``(src, dst)`` (direction ignored); ``nodes``: optional ``(id)`` to include
    isolated nodes. Min-label propagation with pointer jumping: each round every node takes
    the smallest label among itself and its neighbours, then the label of its label (which
    halves long chains); stops when no label changes. Rounds grow with the diameter (about
    log of it with the jump); one checkpoint per round.
    """
    F = _F()
    und = _cut(edges.select("src", "dst").union(edges.select("dst", "src"))
               .where(F.col("src") != F.col("dst")).distinct())
    ids = und.select(F.col("src").alias("id"))
    if nodes is not None:
        ids = ids.union(nodes.select("id"))
    lab = _cut(ids.distinct().select("id", F.col("id").alias("c")))
    for _ in range(max_iter):
        nb = (und.join(lab.select(F.col("id").alias("dst"), "c"), "dst")
              .groupBy("src").agg(F.min("c").alias("m")))
        step = (lab.join(nb.withColumnRenamed("src", "id"), "id", "left")
                .select("id", F.least("c", F.coalesce("m", "c")).alias("c")))
        # pointer jump: a node's new label takes its label's label
        jumped = step.alias("a").join(step.alias("b"), F.col("a.c") == F.col("b.id"), "left") \
            .select(F.col("a.id").alias("id"),
                    F.least(F.col("a.c"), F.coalesce(F.col("b.c"), F.col("a.c"))).alias("c"))
        new = _cut(jumped)
        changed = new.join(lab.withColumnRenamed("c", "old"), "id") \
            .where(F.col("c") != F.col("old")).limit(1).count()
        lab = new
        if changed == 0:
            return lab.withColumnRenamed("c", "component")
    raise RuntimeError(f"connected components did not converge in {max_iter} rounds")


def label_propagation(spark: SparkSession, edges: DataFrame, n: int, max_iter: int = 16,
                      resolution: float = 1.0, seed: int = 42, classes: int = 2,
                      tol: float = 1e-3, q_tol: float = 5e-3) -> DataFrame:
    """Communities of an undirected weighted graph by LPAm: DataFrame ``(id, label)``.

    The definition of :func:`sharegraph.core.kernels.label_propagation`: a node moves to the
    neighbouring label ``c`` maximising ``w(i, c) - resolution * k_i * K_c / 2m`` (``K_c``
    without i) when that beats staying; semi-synchronous, the nodes split into ``classes``
    update classes by a seeded hash that move in turn; stops after a sweep that moved at most
    ``tol`` x the non-isolated nodes or raised modularity by less than ``q_tol``, or after
    ``max_iter`` rounds. One difference, by design: ties between equally good labels go to
    the smallest label, not a random draw, so the partition agrees with the NumPy kernel's
    up to tie-breaks (the parity test asks ARI >= 0.99, as the issue allows). Isolated nodes
    keep their own label. Labels are returned dense 0..k-1 in order of the lowest node.
    """
    F = _F()
    from pyspark.sql import Window

    e = edges.select(F.col("src").cast("long"), F.col("dst").cast("long"),
                     F.coalesce(F.col("weight").cast("double"), F.lit(1.0)).alias("w")) \
        .where((F.col("src") != F.col("dst")) & (F.col("w") > 0))
    adj = _cut(e.union(e.select("dst", "src", "w")).groupBy("src", "dst").agg(F.sum("w").alias("w")))
    k = adj.groupBy("src").agg(F.sum("w").alias("k")).withColumnRenamed("src", "id")
    m2 = float(k.agg(F.coalesce(F.sum("k"), F.lit(0.0))).first()[0])
    nodes = spark.range(n).join(k, "id", "left").select(
        "id", F.coalesce("k", F.lit(0.0)).alias("k"),
        (F.abs(F.hash(F.col("id"), F.lit(seed))) % classes).alias("cls"))
    lab = _cut(nodes.select("id", "k", "cls", F.col("id").alias("label")))
    if m2 == 0:
        return _dense(lab)
    scale = resolution / m2
    n_active = lab.where(F.col("k") > 0).count()

    def modularity(lab: DataFrame) -> float:
        inside = adj.join(lab.select(F.col("id").alias("src"), F.col("label").alias("ls")), "src") \
            .join(lab.select(F.col("id").alias("dst"), F.col("label").alias("ld")), "dst") \
            .where(F.col("ls") == F.col("ld")).agg(F.coalesce(F.sum("w"), F.lit(0.0))).first()[0]
        tot2 = lab.groupBy("label").agg(F.sum("k").alias("t")) \
            .agg(F.coalesce(F.sum((F.col("t") / m2) ** 2), F.lit(0.0))).first()[0]
        return float(inside) / m2 - resolution * float(tot2)

    q = -resolution * float(nodes.agg(F.coalesce(F.sum((F.col("k") / m2) ** 2),
                                                   F.lit(0.0))).first()[0])
    moved_in_sweep = 0
    for it in range(max_iter):
        c = it % classes
        tot = lab.groupBy("label").agg(F.sum("k").alias("tot"))
        me = lab.where(F.col("cls") == c).select("id", "k", F.col("label").alias("cur"))
        wic = (adj.join(me.withColumnRenamed("id", "src"), "src")
               .join(lab.select(F.col("id").alias("dst"), "label"), "dst")
               .groupBy("src", "k", "cur", "label").agg(F.sum("w").alias("wic")))
        cand = wic.join(tot, "label").select(
            F.col("src").alias("id"), "cur", "label",
            (F.col("wic") - F.lit(scale) * F.col("k")
             * (F.col("tot") - F.when(F.col("label") == F.col("cur"), F.col("k"))
                .otherwise(F.lit(0.0)))).alias("gain"))
        stay = me.join(tot.withColumnRenamed("label", "cur"), "cur").join(
            wic.where(F.col("label") == F.col("cur")).select(F.col("src").alias("id"), "wic"),
            "id", "left").select(
            "id", (F.coalesce("wic", F.lit(0.0))
                   - F.lit(scale) * F.col("k") * (F.col("tot") - F.col("k"))).alias("stay"))
        best = cand.withColumn("r", F.row_number().over(
            Window.partitionBy("id").orderBy(F.col("gain").desc(), F.col("label").asc()))) \
            .where("r = 1").join(stay, "id") \
            .where(F.col("gain") > F.col("stay") + F.lit(1e-12) * (F.lit(1.0) + F.abs("stay"))) \
            .select("id", F.col("label").alias("to"))
        best = _cut(best)
        moved = best.count()
        if moved:
            lab = _cut(lab.join(best, "id", "left").select(
                "id", "k", "cls", F.coalesce("to", "label").alias("label")))
        moved_in_sweep += moved
        if c == classes - 1:
            if moved_in_sweep <= tol * n_active:
                break
            q, q_before = modularity(lab), q
            if q - q_before < q_tol:
                break
            moved_in_sweep = 0
    return _dense(lab)


def _dense(lab: DataFrame) -> DataFrame:
    """Labels renumbered 0..k-1 in order of each label's lowest node."""
    F = _F()
    from pyspark.sql import Window

    first = lab.groupBy("label").agg(F.min("id").alias("lo"))
    rank = first.select("label", (F.row_number().over(Window.orderBy("lo")) - 1).alias("dense"))
    return lab.join(rank, "label").select("id", F.col("dense").cast("long").alias("label"))


def downstream_totals(spark: SparkSession, forest: DataFrame, weights: list[str],
                      decays: list[float]) -> DataFrame:
    """Downline totals over a forest by pointer doubling: DataFrame ``(id, reach,
    generations, sum_<j>...)``, one row per node of ``forest``.

    ``forest``: ``(id, parent, <weights...>)``, parent NULL (or negative) for a root; it
    must be acyclic (graph.people's network forest is, by construction). The Spark twin of
    :func:`sharegraph.core.kernels.subtree_aggregates`: ``sum_j[p] = Σ_{d descendant of p at
    generation g >= 1} decays[j]**(g-1) * w_j[d]``, ``reach`` = descendants, ``generations`` =
    subtree height. Round k joins the (node, ancestor, distance) pairs known so far onto
    each node's 2**k-th ancestor, so after ceil(log2(depth)) + 1 rounds every (node,
    ancestor) pair is known; then one aggregate per ancestor. Rows: the sum of all depths.
    Raises ``ValueError`` on a cycle (the 2**k-th ancestors never run out).
    """
    F = _F()
    if len(weights) != len(decays):
        raise ValueError("downstream_totals: one decay per weight")
    f = forest.select(F.col("id").cast("long").alias("id"),
                      F.when(F.col("parent") >= 0, F.col("parent").cast("long")).alias("parent"),
                      *[F.col(w).cast("double").alias(f"w_{j}") for j, w in enumerate(weights)])
    f = _cut(f)
    up = f.where(F.col("parent").isNotNull()).select("id", F.col("parent").alias("anc"))
    pairs = _cut(up.select("id", "anc", F.lit(1).cast("long").alias("d")))
    jump = _cut(up.select("id", F.col("anc").alias("j")))
    n = max(f.count(), 2)
    step = 1
    for _ in range(int(math.ceil(math.log2(n))) + 2):
        if jump.limit(1).count() == 0:
            break
        further = jump.join(pairs.select(F.col("id").alias("j"), F.col("anc").alias("a2"),
                                         F.col("d").alias("d2")), "j") \
            .select("id", F.col("a2").alias("anc"), (F.col("d2") + F.lit(step)).alias("d"))
        pairs = _cut(pairs.union(further))
        jump = _cut(jump.alias("x").join(jump.alias("y"), F.col("x.j") == F.col("y.id"))
                    .select(F.col("x.id").alias("id"), F.col("y.j").alias("j")))
        step *= 2
    else:
        if jump.limit(1).count():
            raise ValueError("downstream_totals: the parent relation has a cycle")
    wcols = f.select("id", *[f"w_{j}" for j in range(len(weights))])
    agg = pairs.join(wcols, "id").groupBy("anc").agg(
        F.count("*").alias("reach"), F.max("d").alias("generations"),
        *[F.sum(F.col(f"w_{j}") * F.pow(F.lit(float(dec)), F.col("d") - 1)).alias(f"sum_{j}")
          for j, dec in enumerate(decays)])
    return f.select("id").join(agg.withColumnRenamed("anc", "id"), "id", "left").select(
        "id", F.coalesce("reach", F.lit(0)).cast("long").alias("reach"),
        F.coalesce("generations", F.lit(0)).cast("long").alias("generations"),
        *[F.coalesce(f"sum_{j}", F.lit(0.0)).alias(f"sum_{j}") for j in range(len(weights))])
