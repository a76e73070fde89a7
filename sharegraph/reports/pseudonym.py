"""Pseudonyms for people in reports: a stable keyed hash, never the raw id.

``pseudonym(id) = "P-" + hex(HMAC-SHA256(Settings.pseudonym_key, id))[:8]``. Stable across
runs and reports with the same key (so a person can be followed from the leaderboard to a
cascade), unlinkable to the raw id without the key (a plain hash of a phone number could be
reversed by enumerating numbers). Set your own ``pseudonym_key`` (sharegraph.toml or
``SHAREGRAPH_PSEUDONYM_KEY``); rotating it changes every pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

PREFIX = "P-"
HEX_CHARS = 8


def pseudonym(person_id: object, key: str) -> str | None:
    """The pseudonym of one person id (None stays None)."""
    if person_id is None:
        return None
    digest = hmac.new(key.encode("utf-8"), str(person_id).encode("utf-8"), hashlib.sha256)
    return PREFIX + digest.hexdigest()[:HEX_CHARS]


def pseudonymize(frame: pl.DataFrame, columns: list[str], key: str) -> pl.DataFrame:
    """Replace each named id column by its pseudonym (columns absent from the frame are skipped).

    HMAC runs once per distinct id (reports render capped frames, so this is small), then a
    vectorised ``replace_strict`` maps the column.
    """
    present = [c for c in columns if c in frame.columns]
    if not present or frame.height == 0:
        return frame.with_columns(pl.col(c).cast(pl.String) for c in present)
    distinct = (
        pl.concat([frame.get_column(c).cast(pl.String) for c in present])
        .drop_nulls()
        .unique()
        .to_list()
    )
    mapping = {v: pseudonym(v, key) for v in distinct}
    return frame.with_columns(
        pl.col(c).cast(pl.String).replace_strict(mapping, default=None, return_dtype=pl.String)
        for c in present
    )
