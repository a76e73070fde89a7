"""The data contract: input tables, their canonical columns, types and rules.

One source of truth for the generator (what it writes), the ingest (what it validates and
how it types), the staging DDL and the docs. See docs/data-contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ORDER_STATUSES = ("paid", "refunded", "cancelled")
ORDER_CHANNELS = (
    "taobao", "tmall", "jd", "pinduoduo",  # platform channels
    "wechat", "wechat_group", "moments", "miniprogram", "group_buy",  # social channels
)
PLATFORM_CHANNELS = ("taobao", "tmall", "jd", "pinduoduo")
SOCIAL_CHANNELS = ("wechat", "wechat_group", "moments", "miniprogram", "group_buy")
EVENT_TYPES = ("share", "reshare", "click")
GROUP_BUY_STATUSES = ("open", "filled", "failed")


@dataclass(frozen=True)
class Column:
    """One canonical column of an input table.

    ``kind`` is the logical type the ingest validates against: text, int, money, number,
    timestamp. ``allowed`` lists the accepted values of an enumerated text column.
    """

    name: str
    kind: str
    required: bool = False
    allowed: tuple[str, ...] | None = None
    default: str | None = None
    description: str = ""

    @property
    def sql_type(self) -> str:
        return {
            "text": "VARCHAR",
            "int": "INTEGER",
            "money": "DECIMAL(18,2)",
            "number": "DOUBLE",
            "timestamp": "TIMESTAMP",
        }[self.kind]


@dataclass(frozen=True)
class Table:
    """One input table: its columns, natural key and whether a run needs it."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool
    description: str
    time_column: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


ORDERS = Table(
    name="orders",
    description="One row per order line: who bought what, when, for how much, through which channel and whose share.",
    required=True,
    key=("order_id", "line_no"),
    time_column="ordered_at",
    columns=(
        Column("order_id", "text", required=True, description="Order number from the source system."),
        Column("line_no", "int", default="1", description="Line within the order (1 when the order has one line)."),
        Column("customer_id", "text", required=True, description="Buyer (often a phone number or WeChat id in real exports)."),
        Column("ordered_at", "timestamp", required=True, description="When the order was placed, local time in the configured zone (default Asia/Shanghai)."),
        Column("product_id", "text", required=True, description="Product bought."),
        Column("category", "text", description="Product category; required unless the products file gives it."),
        Column("quantity", "int", required=True, description="Units bought, >= 1."),
        Column("amount", "money", required=True, description="Paid amount of the line in CNY (¥), >= 0."),
        Column("channel", "text", required=True, allowed=ORDER_CHANNELS, description="Sales channel: platform (taobao, tmall, jd, pinduoduo) or social (wechat, wechat_group, moments, miniprogram, group_buy)."),
        Column("merchant_id", "text", default="default", description="Merchant selling the line (one default merchant when absent)."),
        Column("referrer_id", "text", description="Person credited for the sale by the source system, if any."),
        Column("share_id", "text", description="The share link that led to the order, if known."),
        Column("group_id", "text", description="The group buy (拼团) the order joined, if any."),
        Column("status", "text", default="paid", allowed=ORDER_STATUSES, description="paid / refunded / cancelled."),
        Column("commission", "money", description="Commission paid to the credited agent for this line, ¥ (optional; else computed at the configured rate)."),
        Column("red_packet", "money", description="Share red packet paid for this line, ¥ (optional; else the configured amount for share-attributed orders)."),
    ),
    aliases={
        "订单号": "order_id", "订单编号": "order_id", "行号": "line_no", "客户id": "customer_id",
        "买家": "customer_id", "下单时间": "ordered_at", "商品id": "product_id", "商品编号": "product_id",
        "类目": "category", "品类": "category", "数量": "quantity", "实付金额": "amount",
        "渠道": "channel", "商家": "merchant_id", "推荐人": "referrer_id", "分享id": "share_id",
        "拼团id": "group_id", "状态": "status", "佣金": "commission", "红包": "red_packet",
    },
)

SHARE_EVENTS = Table(
    name="share_events",
    description="One row per share, re-share or click of a shared link.",
    required=False,
    key=("event_id",),
    time_column="occurred_at",
    columns=(
        Column("event_id", "text", required=True, description="Event id, unique."),
        Column("event_type", "text", required=True, allowed=EVENT_TYPES, description="share (a new post), reshare (re-post of a share) or click (someone opened a share)."),
        Column("share_id", "text", required=True, description="The shared link; for a click, the share clicked."),
        Column("actor_id", "text", required=True, description="Who shared, re-shared or clicked."),
        Column("occurred_at", "timestamp", required=True, description="When it happened, local time in the configured zone."),
        Column("parent_share_id", "text", description="For a reshare: the share it re-shares."),
        Column("product_id", "text", description="Product shared (optional)."),
        Column("category", "text", description="Category shared (optional; else from the product)."),
        Column("channel", "text", description="Where it was shared: moments, wechat_group, wechat_chat, qq, weibo, ..."),
    ),
    aliases={"事件id": "event_id", "事件类型": "event_type", "分享id": "share_id", "用户": "actor_id",
             "时间": "occurred_at", "上级分享id": "parent_share_id"},
)

PRODUCTS = Table(
    name="products",
    description="One row per product: its category, merchant and prices.",
    required=False,
    key=("product_id",),
    columns=(
        Column("product_id", "text", required=True, description="Product id."),
        Column("product_name", "text", description="Product name as the merchant lists it."),
        Column("category", "text", required=True, description="Category."),
        Column("merchant_id", "text", default="default", description="Merchant selling it."),
        Column("merchant_name", "text", description="Merchant's display name."),
        Column("price", "money", description="List price, ¥."),
        Column("agent_price", "money", description="Price to agents, ¥."),
    ),
    aliases={"商品名称": "product_name", "商品id": "product_id", "类目": "category", "价格": "price"},
)

AGENTS = Table(
    name="agents",
    description="One row per agent (代理): who recruited them (upline), when, at which level.",
    required=False,
    key=("agent_id",),
    time_column="joined_at",
    columns=(
        Column("agent_id", "text", required=True, description="Agent id."),
        Column("upline_id", "text", description="Agent who recruited this one (empty for a top agent)."),
        Column("joined_at", "timestamp", description="When the agent joined."),
        Column("level", "int", description="Agent level (1 = top)."),
    ),
    aliases={"代理id": "agent_id", "上级": "upline_id", "加入时间": "joined_at", "等级": "level"},
)

GROUP_BUYS = Table(
    name="group_buys",
    description="One row per group buy (拼团): who opened it, target size, when it opened and closed, outcome.",
    required=False,
    key=("group_id",),
    time_column="opened_at",
    columns=(
        Column("group_id", "text", required=True, description="Group buy id."),
        Column("initiator_id", "text", required=True, description="Who opened the group."),
        Column("product_id", "text", description="Product of the group buy."),
        Column("target_size", "int", required=True, description="Members needed to fill the group."),
        Column("opened_at", "timestamp", required=True, description="When the group opened."),
        Column("closed_at", "timestamp", description="When it filled or expired."),
        Column("status", "text", required=True, allowed=GROUP_BUY_STATUSES, description="open / filled / failed (failed groups are refunded)."),
    ),
    aliases={"拼团id": "group_id", "团长": "initiator_id", "成团人数": "target_size"},
)

TABLES: dict[str, Table] = {t.name: t for t in (ORDERS, SHARE_EVENTS, PRODUCTS, AGENTS, GROUP_BUYS)}


def staging_ddl(table: Table) -> str:
    """CREATE TABLE statement for ``staging.<table>``: typed canonical columns plus lineage.

    No PRIMARY KEY: an ART index slows 10M-row loads several-fold; the ingest merges by
    natural key (anti-join) and an asset check asserts the key is unique.
    """
    cols = [f"    {c.name} {c.sql_type}" for c in table.columns]
    cols += [
        "    source_file VARCHAR NOT NULL",
        "    source_row BIGINT NOT NULL",
        "    batch_id VARCHAR NOT NULL",
        "    loaded_at TIMESTAMP NOT NULL",
    ]
    return f"CREATE TABLE IF NOT EXISTS staging.{table.name} (\n" + ",\n".join(cols) + "\n)"
