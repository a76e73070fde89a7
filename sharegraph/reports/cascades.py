"""Cascade explorer (cascades.html): the largest share cascades drawn as trees.

Reads marts.cascades (one row per cascade) and graph.share_nodes (one row per share). Each
tree: x = generation, one marker per share labelled with the sharer's pseudonym.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from sharegraph.core.config import Settings
from sharegraph.reports import figures
from sharegraph.reports.data import query
from sharegraph.reports.notes import explain, load_notes
from sharegraph.reports.page import (
    Col,
    Text,
    figure_html,
    html_table,
    no_data,
    section,
    write_page,
)
from sharegraph.reports.pseudonym import pseudonymize

FILE = "cascades.html"
TITLE = Text("传播链浏览", "Cascade explorer")
TREES = 6
"""Largest cascades drawn as trees."""
TREE_NODE_CAP = 300
"""Most shares drawn per tree (shallowest first, so every drawn share's parent is drawn)."""
SCATTER_CAP = 1000

TABLE = (
    Col("rank", "排名", "Rank", "int"),
    Col("root_actor", "发起人（化名）", "Started by (pseudonym)"),
    Col("category", "类目", "Category"),
    Col("product_id", "商品", "Product"),
    Col("channel", "渠道", "Channel"),
    Col("started_at", "开始时间", "Started"),
    Col("size", "规模", "Size", "int"),
    Col("depth", "深度", "Depth", "int"),
    Col("max_breadth", "最大宽度", "Max breadth", "int"),
    Col("structural_virality", "结构病毒性", "Structural virality", "float"),
    Col("clicks", "点击", "Clicks", "int"),
    Col("orders", "订单", "Orders", "int"),
    Col("gmv", "GMV", "GMV", "money"),
)

_ORDER = "size DESC, structural_virality DESC, root_share_id"


def cascade_table(con: duckdb.DuckDBPyConnection, settings: Settings) -> str:
    frame = query(
        con,
        # ranks over the capped rows only: a window over every cascade sorts them all (1.2 s
        # against 0.2 s at 3M cascades)
        f"""SELECT row_number() OVER (ORDER BY {_ORDER}) AS rank, root_actor_id AS root_actor,
                   category, product_id, channel, strftime(started_at, '%Y-%m-%d %H:%M') AS started_at,
                   size, depth, max_breadth, structural_virality, clicks, orders, gmv
            FROM (FROM marts.cascades ORDER BY {_ORDER} LIMIT {int(settings.report_row_cap)})
            ORDER BY {_ORDER}""",
    )
    total = query(con, "SELECT count(*) FROM marts.cascades")
    if frame is None or total is None:
        return no_data()
    frame = pseudonymize(frame, ["root_actor"], settings.pseudonym_key)
    return html_table(frame, TABLE, row_cap=settings.report_row_cap, table_id="cascade-table",
                      total_rows=int(total.item()))


def virality_scatter(con: duckdb.DuckDBPyConnection) -> figures.Block:
    frame = query(
        con,
        f"""SELECT size, structural_virality, depth FROM marts.cascades WHERE size >= 2
            ORDER BY {_ORDER} LIMIT {SCATTER_CAP}""",
    )
    return figures.size_virality_scatter(frame)


def largest_trees(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[tuple[str, figures.Block]]:
    """(section title, tree figure) for the ``TREES`` largest cascades with at least one reshare."""
    tops = query(
        con,
        f"""SELECT root_share_id, size, depth, structural_virality, category, channel
            FROM marts.cascades WHERE size >= 2 ORDER BY {_ORDER} LIMIT {TREES}""",
    )
    if tops is None or tops.height == 0:
        return [("", no_data("no cascade with a re-share"))]
    nodes = query(
        con,
        f"""SELECT root_share_id, share_id AS node, parent_share_id AS parent, depth AS generation,
                   actor_id AS label,
                   coalesce(channel, '–') || ' · ' || strftime(shared_at, '%Y-%m-%d %H:%M') AS hover
            FROM graph.share_nodes
            WHERE root_share_id IN (SELECT unnest(?::VARCHAR[]))
            QUALIFY row_number() OVER (PARTITION BY root_share_id ORDER BY depth, shared_at, share_id)
                    <= {TREE_NODE_CAP}""",
        [tops.get_column("root_share_id").to_list()],
    )
    if nodes is None:
        return [("", no_data())]
    nodes = pseudonymize(nodes, ["label"], settings.pseudonym_key)
    out = []
    for i, c in enumerate(tops.iter_rows(named=True), start=1):
        part = nodes.filter(pl.col("root_share_id") == c["root_share_id"]).drop("root_share_id")
        # Share ids are not personal, but they are opaque: draw by position, not by id.
        shown = min(c["size"], TREE_NODE_CAP)
        cut_zh = f"，显示前 {shown}" if c["size"] > shown else ""
        cut_en = f", first {shown} shown" if c["size"] > shown else ""
        cat = c["category"] or "–"
        title = (
            f"#{i} {cat}：规模 {c['size']:,}，深度 {c['depth']}，结构病毒性 {c['structural_virality']:.2f}{cut_zh}",
            f"#{i} {cat}: size {c['size']:,}, depth {c['depth']}, structural virality "
            f"{c['structural_virality']:.2f}{cut_en}",
        )
        out.append((f"#{i}", figures.cascade_tree(part, title)))
    return out


TREE_MEANS = Text("越往右的代越多，说明靠人传人裂变；只有第 0、1 代的宽树是一次广播。",
                  "Many generations to the right mean person-to-person fission; a wide tree with "
                  "only generations 0 and 1 is a single broadcast.")
VIRALITY_MEANS = Text("右上角：又大又靠裂变的传播链，值得复制；右下角：大但靠一次广播（通常是头部 KOL）。",
                      "Top right: large cascades that spread person to person, worth repeating; bottom "
                      "right: large but one broadcast (usually a top KOL).")


def render_cascades(con: duckdb.DuckDBPyConnection, settings: Settings, out_dir: Path, generated_at: str = "") -> Path:
    """Write cascades.html; returns its path (empty sections say why, from marts.table_notes)."""
    notes = load_notes(con)
    sources = ("marts.cascades", "graph.share_nodes")
    trees = "".join(
        figure_html(explain(block, notes, *sources), f"fig-tree-{i}", height=460, what=TREE_MEANS)
        for i, (_, block) in enumerate(largest_trees(con, settings), 1)
    )
    body = "".join([
        section(Text("最大传播链", "Largest cascades"), trees,
                Text(f"规模最大的 {TREES} 条传播链；横轴为代（0 = 首次分享），每个点是一次分享，"
                     f"悬停显示分享者化名；每棵树最多 {TREE_NODE_CAP} 个节点。",
                     f"The {TREES} largest cascades; x = generation (0 = original share), one marker "
                     f"per share, hover for the sharer's pseudonym; at most {TREE_NODE_CAP} nodes per tree."),
                "trees"),
        section(Text("规模与结构病毒性", "Size and structural virality"),
                figure_html(explain(virality_scatter(con), notes, *sources), "fig-virality",
                            what=VIRALITY_MEANS),
                Text("结构病毒性 = 传播树中节点两两平均距离（Goel 等 2016）：星形广播低，长链裂变高。"
                     f"显示有转发的最大 {SCATTER_CAP:,} 条传播链。",
                     "Structural virality = mean pairwise distance in the cascade tree (Goel et al. 2016): "
                     "low for broadcasts (stars), high for person-to-person chains."
                     f" The {SCATTER_CAP:,} largest cascades with a re-share."), "virality"),
        section(Text("传播链列表", "Cascades"), explain(cascade_table(con, settings), notes, *sources),
                sid="table"),
    ])
    return write_page(out_dir / FILE, TITLE, body, generated_at=generated_at, downloads=True)
