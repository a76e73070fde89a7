"""Value vocabularies of enumerated input columns: canonical values, zh/en synonyms, channel classes.

Real exports say 淘宝, 已退款 or ``success`` where the contract says taobao, refunded, filled.
Two kinds of column (docs/data-contract.md#values):

* **closed** (order status, group-buy status, event type): a value must be canonical or a
  synonym of one, else the row is quarantined (``unknown_value``); an unknown order status
  is never read as paid;
* **open** (channel): synonyms are applied, any other value loads as written (trimmed,
  lower-cased) and gets the channel class ``other``.

Built-in synonyms are extended by ``Settings.value_synonyms`` / ``channel_classes`` and by
the input's mapping file; the merged view is one ``Vocabulary``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sharegraph.core.sql import literal

CHANNEL_CLASS_NAMES = ("platform", "social", "other")

#: built-in channel classes. Platform: public marketplaces and content platforms (公域),
#: where the platform owns the buyer; social: private-domain WeChat channels (私域) where
#: agents and friends sell.
CHANNEL_CLASSES: dict[str, str] = {
    "taobao": "platform", "tmall": "platform", "jd": "platform", "pinduoduo": "platform",
    "douyin": "platform", "kuaishou": "platform", "xiaohongshu": "platform",
    "wechat": "social", "wechat_group": "social", "moments": "social",
    "miniprogram": "social", "group_buy": "social",
}

CHANNEL_SYNONYMS: dict[str, str] = {
    "淘宝": "taobao", "天猫": "tmall", "京东": "jd", "拼多多": "pinduoduo",
    "微信": "wechat", "朋友圈": "moments", "微信群": "wechat_group", "小程序": "miniprogram",
    "微信小程序": "miniprogram", "拼团": "group_buy", "抖音": "douyin", "快手": "kuaishou",
    "小红书": "xiaohongshu",
}

#: built-in synonyms per (table, column); keys are compared trimmed and lower-cased
SYNONYMS: dict[tuple[str, str], dict[str, str]] = {
    ("orders", "channel"): CHANNEL_SYNONYMS,
    ("share_events", "channel"): CHANNEL_SYNONYMS,
    ("orders", "status"): {
        "已付款": "paid", "已支付": "paid", "交易成功": "paid", "待发货": "paid",
        "已发货": "paid", "已完成": "paid", "success": "paid",
        "已退款": "refunded", "退款成功": "refunded",
        "已取消": "cancelled", "交易关闭": "cancelled", "closed": "cancelled",
    },
    ("group_buys", "status"): {
        "成团": "filled", "拼团成功": "filled", "success": "filled",
        "未成团": "failed", "拼团失败": "failed",
        "拼团中": "open", "进行中": "open",
    },
    ("share_events", "event_type"): {"分享": "share", "转发": "reshare", "点击": "click"},
}


class VocabularyError(ValueError):
    """A synonym or channel class that cannot be used; the message names where it came from."""


@dataclass(frozen=True)
class Vocabulary:
    """The merged synonyms and channel classes one load uses."""

    synonyms: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    channel_classes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        allowed: Mapping[tuple[str, str], tuple[str, ...] | None],
        extra_synonyms: Mapping[str, Mapping[str, Mapping[str, str]]] = (),
        extra_classes: Mapping[str, str] = (),
        source: str = "",
    ) -> Vocabulary:
        """Built-ins plus ``extra_synonyms`` (``{table: {column: {raw: canonical}}}``) and
        ``extra_classes`` (``{channel: class}``). ``allowed`` gives every enumerated column's
        closed value list (None for an open column); a synonym of a closed column must name one
        of its values."""
        synonyms = {k: dict(v) for k, v in SYNONYMS.items()}
        for table, columns in dict(extra_synonyms).items():
            for column, values in dict(columns).items():
                if (table, column) not in allowed:
                    raise VocabularyError(
                        f"{source}: value synonyms for {table}.{column}, which is not an "
                        f"enumerated column; those are: "
                        f"{', '.join(f'{t}.{c}' for t, c in allowed)}")
                closed = allowed[(table, column)]
                for raw, canonical in values.items():
                    canonical = str(canonical).strip().lower()
                    if closed is not None and canonical not in closed:
                        raise VocabularyError(
                            f"{source}: {table}.{column} synonym {raw!r} -> {canonical!r}: "
                            f"not one of {', '.join(closed)}")
                    synonyms.setdefault((table, column), {})[str(raw).strip().lower()] = canonical
        classes = dict(CHANNEL_CLASSES)
        for channel, klass in dict(extra_classes).items():
            klass = str(klass).strip().lower()
            if klass not in CHANNEL_CLASS_NAMES:
                raise VocabularyError(
                    f"{source}: channel {channel!r} has class {klass!r}; classes are "
                    f"{', '.join(CHANNEL_CLASS_NAMES)}")
            classes[str(channel).strip().lower()] = klass
        return cls(synonyms=synonyms, channel_classes=classes)

    def canonical_sql(self, table: str, column: str, lowered_sql: str) -> str:
        """SQL for the canonical form of trimmed, lower-cased text ``lowered_sql`` (a column
        reference: it is read once per synonym): the column's synonyms applied."""
        mapping = self.synonyms.get((table, column))
        if not mapping:
            return lowered_sql
        whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in mapping.items())
        return f"COALESCE(CASE {lowered_sql} {whens} END, {lowered_sql})"

    def channel_class_sql(self, channel_sql: str) -> str:
        """SQL for the class (platform / social / other) of a canonical channel value."""
        groups: dict[str, list[str]] = {}
        for channel, klass in self.channel_classes.items():
            groups.setdefault(klass, []).append(channel)
        whens = " ".join(
            f"WHEN {channel_sql} IN ({', '.join(literal(c) for c in sorted(chs))}) "
            f"THEN {literal(klass)}"
            for klass, chs in sorted(groups.items()) if klass != "other")
        return f"CASE {whens} ELSE 'other' END" if whens else "'other'"

    def describe(self, table: str, column: str, allowed: tuple[str, ...]) -> str:
        """The accepted values of a closed column and their synonyms, for error messages."""
        syn = self.synonyms.get((table, column), {})
        by_value = {v: [k for k, c in syn.items() if c == v] for v in allowed}
        return "; ".join(f"{v}" + (f" ({', '.join(ks)})" if ks else "")
                         for v, ks in by_value.items())
