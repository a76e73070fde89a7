"""Pseudonyms for people in reports: a stable keyed hash, never the raw id.

``pseudonym(id) = "P-" + hex(HMAC-SHA256(key, id))[:16]``: 64 bits, so 2M people collide
with probability ~1e-7 (32 bits collide at that size). Stable across runs and reports with
the same key (a person can be followed from the leaderboard to a cascade), unlinkable to the
raw id without the key (a plain hash of a phone number could be reversed by enumerating
numbers). There is no public default key: ``Settings.pseudonym_key`` when set, else a random
key generated on first use into ``pseudonym.key`` beside the warehouse (mode 0600). Whoever
holds the key maps a pseudonym back with ``sharegraph reveal`` (:func:`reveal`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import polars as pl

PREFIX = "P-"
HEX_CHARS = 16
KEY_FILE = "pseudonym.key"


def resolve_key(configured: str, state_dir: Path) -> str:
    """The configured key, else the key in ``state_dir/pseudonym.key`` (:func:`read_key`),
    created (0600) when missing."""
    key = configured or read_key(state_dir)
    if key:
        return key
    path = Path(state_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


def read_key(state_dir: Path) -> str | None:
    """The key in ``state_dir/pseudonym.key``, None when there is none. Refuses a key file
    others can read: the key is what keeps pseudonyms private."""
    path = Path(state_dir) / KEY_FILE
    if not path.is_file():
        return None
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path}: the pseudonym key must be readable by its owner "
                              f"only (chmod 600 {path})")
    return path.read_text(encoding="utf-8").strip()


def reveal(alias: str, candidates: Iterable[object], key: str) -> list[str]:
    """Every candidate person id whose pseudonym is ``alias`` (normally one)."""
    alias = alias.strip()
    return [str(c) for c in candidates if c is not None and pseudonym(c, key) == alias]


def pseudonym(person_id: object, key: str) -> str | None:
    """The pseudonym of one person id (None stays None)."""
    if person_id is None:
        return None
    if not key:
        raise ValueError("no pseudonym key: set pseudonym_key or call resolve_key() first")
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
