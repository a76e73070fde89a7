"""The data contract: input tables, their canonical columns, types and rules.

One source of truth for the generator (what it writes), the ingest (what it validates and
how it types), the staging DDL and the docs. See docs/data-contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sharegraph.core.vocabulary import CHANNEL_CLASSES

ORDER_STATUSES = ("paid", "refunded", "cancelled")
#: built-in channel values by class; channels are an open set (sharegraph/core/vocabulary.py)
PLATFORM_CHANNELS = tuple(c for c, k in CHANNEL_CLASSES.items() if k == "platform")
SOCIAL_CHANNELS = tuple(c for c, k in CHANNEL_CLASSES.items() if k == "social")
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
    open_set: bool = False

    @property
    def enumerated(self) -> bool:
        return self.allowed is not None or self.open_set

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
        Column("channel", "text", required=True, open_set=True, description="Sales channel, an open set: zh/en synonyms are mapped (淘宝 -> taobao); staging.channels gives each value's class (platform, social, other)."),
        Column("merchant_id", "text", default="default", description="Merchant selling the line; when absent (stored as the default), the product's merchant in the products file, else one default merchant."),
        Column("referrer_id", "text", description="Person credited for the sale by the source system, if any."),
        Column("share_id", "text", description="The share link that led to the order, if known."),
        Column("group_id", "text", description="The group buy (拼团) the order joined, if any."),
        Column("status", "text", default="paid", allowed=ORDER_STATUSES, description="paid / refunded / cancelled (synonyms such as 已付款, 已退款, 交易关闭 are mapped; an unknown status is quarantined, never read as paid)."),
        Column("commission", "money", description="Commission paid to the credited agent for this line, ¥ (optional; else computed at the configured rate)."),
        Column("red_packet", "money", description="Share red packet paid for this line, ¥ (optional; else the configured amount for share-attributed orders)."),
    ),
    # header aliases seen in Taobao/Tmall (订单报表), Youzan (有赞订单导出), WeChat shop (微信小店)
    # and Pinduoduo exports; earlier entries win when a file has several headers for a column
    aliases={
        "订单号": "order_id", "订单编号": "order_id", "订单id": "order_id", "主订单编号": "order_id",
        "行号": "line_no", "商品行号": "line_no",
        "客户id": "customer_id", "买家id": "customer_id", "会员id": "customer_id",
        "用户id": "customer_id", "买家会员名": "customer_id", "买家昵称": "customer_id",
        "买家": "customer_id", "客户": "customer_id", "手机号": "customer_id",
        "买家手机号": "customer_id", "openid": "customer_id",
        "下单时间": "ordered_at", "订单创建时间": "ordered_at", "创建时间": "ordered_at",
        "下单日期": "ordered_at", "订单时间": "ordered_at", "付款时间": "ordered_at",
        "支付时间": "ordered_at",
        "商品id": "product_id", "商品编号": "product_id", "宝贝id": "product_id",
        "商品编码": "product_id", "商家编码": "product_id", "sku id": "product_id",
        "skuid": "product_id",
        "类目": "category", "品类": "category", "商品类目": "category", "商品分类": "category",
        "分类": "category", "一级类目": "category",
        "数量": "quantity", "商品数量": "quantity", "购买数量": "quantity", "宝贝数量": "quantity",
        "件数": "quantity",
        "实付金额": "amount", "实付款": "amount", "买家实际支付金额": "amount",
        "实际支付金额": "amount", "支付金额": "amount", "实收金额": "amount", "实付": "amount",
        "渠道": "channel", "来源渠道": "channel", "订单来源": "channel", "销售渠道": "channel",
        "下单渠道": "channel",
        "商家": "merchant_id", "商家id": "merchant_id", "店铺": "merchant_id",
        "店铺id": "merchant_id", "店铺名称": "merchant_id", "商户": "merchant_id",
        "推荐人": "referrer_id", "分销员": "referrer_id", "分销员id": "referrer_id",
        "推广员": "referrer_id", "推广员id": "referrer_id", "推客": "referrer_id",
        "邀请人": "referrer_id",
        "分享id": "share_id", "分享链接id": "share_id",
        "拼团id": "group_id", "团id": "group_id", "拼团编号": "group_id",
        "订单状态": "status", "交易状态": "status", "状态": "status",
        "佣金": "commission", "分销佣金": "commission", "推广佣金": "commission",
        "红包": "red_packet", "分享红包": "red_packet",
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
        Column("channel", "text", open_set=True, description="Where it was shared, an open set: moments, wechat_group, wechat_chat, qq, weibo, ... (synonyms such as 朋友圈 are mapped)."),
    ),
    aliases={"事件id": "event_id", "事件类型": "event_type", "类型": "event_type",
             "分享id": "share_id", "用户": "actor_id", "用户id": "actor_id", "会员id": "actor_id",
             "时间": "occurred_at", "发生时间": "occurred_at", "上级分享id": "parent_share_id",
             "商品id": "product_id", "类目": "category", "渠道": "channel"},
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
    aliases={"商品名称": "product_name", "商品id": "product_id", "商品编号": "product_id",
             "宝贝id": "product_id", "类目": "category", "商品类目": "category",
             "分类": "category", "店铺": "merchant_id", "商家": "merchant_id",
             "价格": "price", "售价": "price", "零售价": "price", "代理价": "agent_price",
             "分销价": "agent_price"},
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
    aliases={"代理id": "agent_id", "分销员id": "agent_id", "推广员id": "agent_id",
             "上级": "upline_id", "上级id": "upline_id", "邀请人": "upline_id",
             "加入时间": "joined_at", "成为分销员时间": "joined_at", "等级": "level"},
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
        Column("status", "text", required=True, allowed=GROUP_BUY_STATUSES, description="open / filled / failed (failed groups are refunded); synonyms such as 成团, 未成团, 拼团中, success are mapped."),
    ),
    aliases={"拼团id": "group_id", "团id": "group_id", "团长": "initiator_id",
             "开团人": "initiator_id", "商品id": "product_id", "成团人数": "target_size",
             "开团时间": "opened_at", "结束时间": "closed_at", "成团时间": "closed_at",
             "拼团状态": "status", "状态": "status"},
)

TABLES: dict[str, Table] = {t.name: t for t in (ORDERS, SHARE_EVENTS, PRODUCTS, AGENTS, GROUP_BUYS)}

#: every enumerated column: its closed value list, or None for an open set
ENUMERATED: dict[tuple[str, str], tuple[str, ...] | None] = {
    (t.name, c.name): c.allowed for t in TABLES.values() for c in t.columns if c.enumerated
}


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
