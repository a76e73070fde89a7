"""The export inbox: which delivered files are complete, and where they go once handled.

Daily exports arrive as ``<table>_<YYYY-MM-DD>[_<anything>].<ext>`` (ext as the ingest
accepts: csv, csv.gz, parquet, jsonl, ndjson) in one inbox directory. A file is *complete*
when its name is final (writers write ``*.tmp`` / ``*.part`` / dot-files and rename) and it
has not changed for ``settle_seconds``, or when a ``<name>.ready`` / ``<name>.done`` marker
sits beside it. Loaded files move to the archive (``<archive>/<YYYY-MM-DD>/<name>``);
files that cannot be read move to ``rejected/`` with a ``<name>.reason.txt``.

Every path is confined to its configured directory: names with separators or ``..`` are
refused, and a symlink is judged by where it resolves, so a link out of the inbox is never
opened or followed (it is moved, as a link, to ``rejected/``). See docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sharegraph.ingest.sources import EXTENSIONS, classify

log = logging.getLogger(__name__)

MARKERS = (".ready", ".done")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")
REASON_SUFFIX = ".reason.txt"
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:_.*)?$")


class InboxError(Exception):
    """A path escapes its directory, or a file cannot be moved; the message names it."""


@dataclass(frozen=True)
class InboxFile:
    """One complete export in the inbox: its table, export day and a change-sensitive key."""

    path: Path
    table: str
    day: date
    size: int
    mtime_ns: int

    @property
    def run_key(self) -> str:
        """Name + size + mtime: a re-delivered file (new mtime) triggers a new, idempotent load."""
        return f"{self.path.name}:{self.size}:{self.mtime_ns}"


@dataclass(frozen=True)
class Rejection:
    """A file in the inbox that will never load, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class InboxScan:
    ready: list[InboxFile]
    rejected: list[Rejection]
    waiting: list[Path]
    """Final-named files still changing (younger than ``settle_seconds``, no marker)."""


def confine(root: str | os.PathLike[str], name: str | os.PathLike[str], *, follow_links: bool = True) -> Path:
    """``root / name`` if it stays inside ``root`` after resolving symlinks, else InboxError.

    ``name`` must be a bare file name (no separator, not ``.``/``..``): callers never build
    paths from user-supplied relative paths. ``follow_links=False`` checks the name only, for
    moving a link itself (a rename never touches the link's target).
    """
    name = os.fspath(name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise InboxError(f"{name!r}: not a plain file name (no separators or '..' allowed)")
    base = Path(root).resolve()
    candidate = base / name
    if not follow_links:
        return candidate
    resolved = candidate.resolve()
    if not resolved.is_relative_to(base):
        raise InboxError(f"{candidate}: resolves to {resolved}, outside {base}")
    return candidate


def parse_name(name: str) -> tuple[str, date] | None:
    """``(table, export day)`` of ``<table>_<YYYY-MM-DD>[_x].<ext>``, else None."""
    src = classify(Path(name))
    if src is None:
        return None
    lower = name.lower()
    ext = next(e for e in EXTENSIONS if lower.endswith(e))
    rest = name[: -len(ext)][len(src.table) + 1:]
    match = _DATE.match(rest)
    if match is None:
        return None
    try:
        return src.table, date.fromisoformat(match.group(1))
    except ValueError:
        return None


def _is_temp(name: str) -> bool:
    lower = name.lower()
    return name.startswith((".", "~")) or lower.endswith(TEMP_SUFFIXES)


def scan(inbox: str | os.PathLike[str], *, settle_seconds: float = 2.0, now: float | None = None) -> InboxScan:
    """Classify the inbox: complete exports, files to reject (with reason), files in flight.

    Reads only directory metadata and opens each complete file for one byte (readability);
    never follows a symlink that resolves outside the inbox.
    """
    root = Path(inbox).resolve()
    now = time.time() if now is None else now
    ready: list[InboxFile] = []
    rejected: list[Rejection] = []
    waiting: list[Path] = []
    if not root.is_dir():
        return InboxScan(ready, rejected, waiting)
    names = sorted(os.listdir(root))
    present = set(names)
    for name in names:
        if _is_temp(name) or name.endswith(MARKERS) or name.endswith(REASON_SUFFIX):
            continue
        path = root / name
        try:
            confine(root, name)
        except InboxError as exc:
            rejected.append(Rejection(path, f"unsafe path: {exc}"))
            continue
        if path.is_dir():
            continue
        if not path.is_file():
            rejected.append(Rejection(path, "not a regular file"))
            continue
        parsed = parse_name(name)
        if parsed is None:
            exts = ", ".join(e.lstrip(".") for e in EXTENSIONS)
            rejected.append(Rejection(
                path, f"file name does not match <table>_<YYYY-MM-DD>.<ext> (ext one of {exts})"
            ))
            continue
        st = path.stat()
        marked = any(name + m in present for m in MARKERS)
        if not marked and now - st.st_mtime < settle_seconds:
            waiting.append(path)
            continue
        try:
            with open(path, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            rejected.append(Rejection(path, f"cannot read the file: {exc.strerror or exc}"))
            continue
        if st.st_size == 0:
            rejected.append(Rejection(path, "empty file (0 bytes)"))
            continue
        ready.append(InboxFile(path, parsed[0], parsed[1], st.st_size, st.st_mtime_ns))
    return InboxScan(ready, rejected, waiting)


def _move(src: Path, dest_dir: Path, root: Path) -> Path:
    """Rename ``src`` (inside ``root``) into ``dest_dir``, never overwriting an earlier file."""
    if src.parent.resolve() != root:
        raise InboxError(f"{src}: not directly inside {root}")
    src = confine(root, src.name, follow_links=False)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = confine(dest_dir, src.name, follow_links=False)
    if target.exists() or target.is_symlink():
        # keep the name parseable (<table>_<day>_<x>.<ext>) so an archived re-delivery reloads
        ext = next((e for e in EXTENSIONS if src.name.lower().endswith(e)), "")
        stem = src.name[: len(src.name) - len(ext)]
        target = confine(dest_dir, f"{stem}_redelivered-{time.time_ns()}{ext}", follow_links=False)
    os.replace(src, target)
    for marker in MARKERS:
        m = root / (src.name + marker)
        if m.is_file() and not m.is_symlink():
            os.replace(m, dest_dir / (target.name + marker))
    return target


def archive(path: Path, inbox: str | os.PathLike[str], archive_dir: str | os.PathLike[str], day: date) -> Path:
    """Move a loaded export to ``<archive>/<day>/``; returns its new path."""
    return _move(Path(path), Path(archive_dir).resolve() / day.isoformat(), Path(inbox).resolve())


def reject(path: Path, inbox: str | os.PathLike[str], rejected_dir: str | os.PathLike[str], reason: str) -> Path:
    """Move an unloadable file (or link, never its target) to ``rejected/`` with its reason."""
    target = _move(Path(path), Path(rejected_dir).resolve(), Path(inbox).resolve())
    note = target.with_name(target.name + REASON_SUFFIX)
    note.write_text(f"{path.name}: {reason}\n", encoding="utf-8")
    log.warning("rejected %s: %s", path.name, reason)
    return target


def day_files(inbox: str | os.PathLike[str], archive_dir: str | os.PathLike[str], day: date,
              *, settle_seconds: float = 0.0) -> list[InboxFile]:
    """Every complete export of ``day``: new ones in the inbox, then those already archived.

    Reloading archived files is harmless (loads are idempotent by natural key) and makes a
    re-run of a partition after a crash, or a backfill, complete.
    """
    new = [f for f in scan(inbox, settle_seconds=settle_seconds).ready if f.day == day]
    old_dir = Path(archive_dir).resolve() / day.isoformat()
    old = [f for f in scan(old_dir, settle_seconds=0.0).ready if f.day == day] if old_dir.is_dir() else []
    return [*old, *new]


@dataclass(frozen=True)
class DayLoad:
    """What one export day's load did: one dict per file (the raw.daily_exports rows)."""

    day: date
    files: list[dict]

    def total(self, column: str) -> int:
        return sum(int(f[column]) for f in self.files)

    @property
    def rejected(self) -> list[dict]:
        return [f for f in self.files if f["outcome"] == "rejected"]


def load_day(con, day: date, *, inbox: str | os.PathLike[str], archive_dir: str | os.PathLike[str],
             rejected_dir: str | os.PathLike[str], settings, settle_seconds: float = 0.0) -> DayLoad:
    """Load every export of ``day`` into staging, record it in raw.daily_exports, archive it.

    One row per file of the day in ``raw.daily_exports`` (grain: export day x file); the
    day's rows there are replaced (delete the partition, then insert), so a re-run is
    idempotent. Each file loads in its own transaction through ``ingest.load_file``, which
    is idempotent by natural key and skips content it has loaded before: a crash between
    files leaves whole files loaded and the re-run completes the day. Files that cannot be
    read move to ``rejected/`` with a reason; loaded ones move to ``<archive>/<day>/`` only
    after their load committed.
    """
    import polars as pl

    from sharegraph.core.warehouse import ensure_schema, fault_point
    from sharegraph.ingest.load import IngestError, flag_references, load_file

    ensure_schema(con)  # creates raw.daily_exports (documented there)
    files = day_files(inbox, archive_dir, day, settle_seconds=settle_seconds)
    inbox_root = Path(inbox).resolve()
    order = {t: i for i, t in enumerate(("products", "agents", "group_buys", "share_events", "orders"))}
    files.sort(key=lambda f: (order.get(f.table, 99), f.path.name))
    rows: list[dict] = []
    to_archive: list[InboxFile] = []
    for i, f in enumerate(files):
        if i == 1:
            fault_point("daily-load")
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        base = {"export_date": day, "table_name": f.table, "file_name": f.path.name,
                "processed_at": now, "reason": None}
        try:
            r = load_file(con, f.path, f.table, settings)
        except IngestError as exc:
            rows.append(base | {"batch_id": None, "outcome": "rejected", "rows_read": 0,
                                "rows_loaded": 0, "rows_quarantined": 0,
                                "rows_already_loaded": 0, "reason": str(exc)})
            if f.path.parent == inbox_root:
                reject(f.path, inbox_root, rejected_dir, str(exc))
            continue
        rows.append(base | {"batch_id": r.batch_id, "outcome": "same_content" if r.skipped else "loaded",
                            "rows_read": r.rows_read, "rows_loaded": r.rows_loaded,
                            "rows_quarantined": r.rows_quarantined,
                            "rows_already_loaded": r.rows_already_loaded})
        if f.path.parent == inbox_root:
            to_archive.append(f)
    frame = pl.DataFrame(rows, schema={
        "export_date": pl.Date, "table_name": pl.String, "file_name": pl.String,
        "processed_at": pl.String, "reason": pl.String, "batch_id": pl.String,
        "outcome": pl.String, "rows_read": pl.Int64, "rows_loaded": pl.Int64,
        "rows_quarantined": pl.Int64, "rows_already_loaded": pl.Int64,
    })
    con.register("_daily_rows", frame.to_arrow())
    con.execute("BEGIN TRANSACTION")
    try:
        if files:
            flag_references(con)
        con.execute("DELETE FROM raw.daily_exports WHERE export_date = ?", [day])
        fault_point("daily-record")  # crash tests: killed inside an open transaction
        con.execute(
            "INSERT INTO raw.daily_exports SELECT export_date, table_name, file_name, batch_id, "
            "outcome, rows_read, rows_loaded, rows_quarantined, rows_already_loaded, reason, "
            "CAST(processed_at AS TIMESTAMP) FROM _daily_rows"
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_daily_rows")
    for f in to_archive:
        archive(f.path, inbox_root, archive_dir, day)
    return DayLoad(day, rows)
