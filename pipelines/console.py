"""What ``sharegraph run`` shows a person: a progress bar while it runs, then one line per
stage, a per-file table, the asset checks and where the results are; or, when it fails, one
sentence naming the file and the reason first.

Dagster's own event log (every DEBUG event, tracebacks included) goes to a log file beside
the warehouse instead of the terminal; ``--verbose`` also streams it live.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb

from sharegraph.core import paths
from sharegraph.core.config import Settings
from sharegraph.core.warehouse import (
    WarehouseError,
    WarehousePaths,
    check_writable,
    restore_working,
)

#: stages (asset groups) in data-flow order; groups not listed follow in the order they ran
STAGE_ORDER = ("ingest", "graph", "marts", "influence", "affinity", "reports", "publish")
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
KEEP_LOGS = 50


# --------------------------------------------------------------------------- the run's shape


@dataclass(frozen=True)
class PlanShape:
    """Which stage (asset group) each step belongs to; from the definitions, before the run."""

    stage_of_step: Mapping[str, str]
    stage_of_key: Mapping[dg.AssetKey, str]

    @property
    def steps(self) -> int:
        return len(self.stage_of_step)

    @classmethod
    def load(cls) -> PlanShape:
        from pipelines.definitions import load_pipeline

        found, checks = load_pipeline()
        stage_of_key: dict[dg.AssetKey, str] = {}
        stage_of_step: dict[str, str] = {}
        for a in found:
            for key in a.keys:
                stage_of_key[key] = a.group_names_by_key.get(key, "default")
            stage_of_step[a.node_def.name] = stage_of_key[next(iter(a.keys))]
        for c in checks:
            target = next(iter(c.check_keys)).asset_key
            stage_of_step[c.node_def.name] = stage_of_key.get(target, "checks")
        return cls(stage_of_step, stage_of_key)


# --------------------------------------------------------------------------- live side


class QuietFileHandler(logging.FileHandler):
    """A log file that stops writing, silently, when its disk fails (full, gone): a broken
    log must never turn a good run into a failed one or print logging's own tracebacks."""

    broken = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.broken = True


class _Bar:
    """A rich progress bar over all steps, on the terminal the run started on; silent when
    that is not a terminal (or with --verbose, where the event log streams instead)."""

    def __init__(self, stream: IO[str] | None, total: int) -> None:
        self._progress = None
        self._task = None
        if stream is None or not stream.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=stream, force_terminal=True)
        self._progress = Progress(
            TextColumn("{task.description}", style="bold"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True,
        )
        self._task = self._progress.add_task("starting the run", total=total)

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text[:60])

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)


#: the Spark engine's logger: its progress lines become the bar's text (engine = "spark")
SPARK_LOGGER = "sharegraph.spark"


class RunObserver(logging.Handler):
    """Sees every Dagster event of the run (as the run's logger): times each step and moves
    the progress bar; the ingest's messages ("loading orders.csv ...") become its text, and
    so do the Spark stages' progress lines."""

    def __init__(self, shape: PlanShape, bar: _Bar) -> None:
        super().__init__(logging.DEBUG)
        self.shape = shape
        self.bar = bar
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(SPARK_LOGGER):  # the Spark stages, before the Dagster job
            self.bar.describe(f"spark: {record.getMessage()}")
            return
        meta = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key")
        event = meta.get("dagster_event")
        if not step:
            return
        stage = self.shape.stage_of_step.get(step, step)
        kind = event.event_type_value if event is not None else None
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            self.bar.describe(f"{stage}: {step.replace('__', '/')}")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            if step in self.started:
                self.seconds[step] = time.perf_counter() - self.started[step]
            self.bar.advance()
        elif event is None:
            self.bar.describe(f"{stage}: {meta.get('orig_message', '')}")


# --------------------------------------------------------------------------- summary side


@dataclass
class StageLine:
    name: str
    assets: int = 0
    rows: int | None = None
    seconds: float = 0.0
    checks_passed: int = 0
    checks_failed: int = 0
    checks_failed_error: int = 0
    failed: bool = False


@dataclass
class Summary:
    """What the run did, from its events: stages in run order, checks, skipped files."""

    stages: list[StageLine] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)  # AssetCheckEvaluation
    files_skipped: int = 0


def summarize(result: dg.ExecuteInProcessResult, shape: PlanShape, seconds: Mapping[str, float]) -> Summary:
    stages: dict[str, StageLine] = {}

    def stage(name: str) -> StageLine:
        return stages.setdefault(name, StageLine(name))

    summary = Summary()
    for event in result.all_events:
        step = event.step_key
        name = shape.stage_of_step.get(step or "", "")
        kind = event.event_type_value
        if kind == "STEP_START" and name:
            stage(name).seconds += seconds.get(step, 0.0)
        elif kind == "STEP_FAILURE" and name:
            stage(name).failed = True
        elif kind == "ASSET_MATERIALIZATION":
            line = stage(shape.stage_of_key.get(event.asset_key, name or "other"))
            line.assets += 1
            metadata = event.step_materialization_data.materialization.metadata
            rows = _int(metadata.get("rows"))
            if rows is not None:
                line.rows = (line.rows or 0) + rows
            summary.files_skipped += _int(metadata.get("files_skipped_already_loaded")) or 0
    summary.checks = list(result.get_asset_check_evaluations())
    for evaluation in summary.checks:
        line = stage(shape.stage_of_key.get(evaluation.asset_key, "checks"))
        if evaluation.passed:
            line.checks_passed += 1
        else:
            line.checks_failed += 1
            line.checks_failed_error += getattr(evaluation.severity, "value", "") == "ERROR"
    summary.stages = list(stages.values())
    ran = set(stages)
    summary.not_run = [s for s in _ordered(set(shape.stage_of_step.values())) if s not in ran]
    return summary


def _ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in STAGE_ORDER if s in names] + sorted(names - set(STAGE_ORDER))


def _int(value: object) -> int | None:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _marks(stream: IO[str]) -> tuple[str, str]:
    """✓/✗ where the terminal can show them, ok/FAILED elsewhere."""
    try:
        "✓✗".encode(getattr(stream, "encoding", None) or "ascii")
        return "✓", "✗"
    except (UnicodeEncodeError, LookupError):
        return "ok", "FAILED"


def stage_lines(summary: Summary, stream: IO[str], engine: str = "duckdb") -> list[str]:
    """One line per stage that ran. After a successful run with engine "spark" the stages
    that did not run in the job are the ones Spark computed before it, and are named so."""
    ok, bad = _marks(stream)
    width = max((len(s.name) for s in summary.stages), default=6)
    out = []
    for s in summary.stages:
        mark = bad if s.failed or s.checks_failed_error else ok
        rows = f"{s.rows:>12,} rows" if s.rows is not None else " " * 17
        assets = f"{s.assets} asset{'s' if s.assets != 1 else ''}" if s.assets else "failed" if s.failed else ""
        checks = s.checks_passed + s.checks_failed
        check_text = f"   checks {s.checks_passed}/{checks}" if checks else ""
        out.append(f"  {mark} {s.name:<{width}}  {assets:<9} {rows} {s.seconds:>7.1f} s{check_text}")
    if summary.not_run:
        label = "on Spark, before the job" if engine == "spark" else "not run"
        out.append(f"  {label}: {', '.join(summary.not_run)}")
    return out


def check_lines(summary: Summary, limit: int = 8) -> list[str]:
    failed = [e for e in summary.checks if not e.passed]
    passed = len(summary.checks) - len(failed)
    out = [f"asset checks: {passed} passed, {len(failed)} failed"]
    for e in failed[:limit]:
        severity = getattr(e.severity, "value", e.severity)
        out.append(f"  failed ({severity}): {e.asset_key.to_user_string()} {e.check_name}: {e.description or ''}".rstrip())
    if len(failed) > limit:
        out.append(f"  ... and {len(failed) - limit} more (see the log)")
    return out


@dataclass(frozen=True)
class FileRow:
    source_file: str
    table: str
    read: int
    loaded: int
    updated: int
    already: int
    quarantined: int
    flagged: int
    notes: str | None = None
    """Unmapped and look-alike headers of the file (quarantine.batches.notes)."""


def file_rows(published: Path, since: datetime) -> list[FileRow]:
    """This run's batches (started at/after ``since``, local time of the warehouse) from the
    published snapshot, with their flagged rows."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        cols = {c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'quarantine' "
            "AND table_name = 'batches'").fetchall()}
        if not cols:
            return []
        updated = "b.rows_updated" if "rows_updated" in cols else "0"
        notes = "b.notes" if "notes" in cols else "NULL"
        rows = con.execute(
            f"""SELECT b.source_file, b.table_name, b.rows_read, b.rows_loaded, {updated},
                   b.rows_already_loaded, b.rows_quarantined, coalesce(f.n, 0), {notes}
            FROM quarantine.batches b
            LEFT JOIN (SELECT batch_id, count(DISTINCT source_row) AS n
                       FROM quarantine.flagged_rows GROUP BY batch_id) f USING (batch_id)
            WHERE b.started_at >= ?
            ORDER BY b.started_at, b.source_file""",
            [since],
        ).fetchall()
    finally:
        con.close()
    return [FileRow(*r) for r in rows]


def other_channels(published: Path, limit: int = 6) -> str | None:
    """'N order lines in channels of class other: x, y' when staging.channels exists and has any."""
    con = duckdb.connect(str(published), read_only=True)
    try:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'staging' AND table_name = 'channels'"
        ).fetchone()[0]
        if not exists:
            return None
        rows = con.execute(
            "SELECT channel, order_lines FROM staging.channels WHERE channel_class = 'other' "
            "ORDER BY order_lines DESC, channel").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if not rows:
        return None
    total = sum(int(n or 0) for _, n in rows)
    names = ", ".join(str(c) for c, _ in rows[:limit]) + (", ..." if len(rows) > limit else "")
    return f"{total:,} order lines in channels of class other: {names}"


_HOW = {"full": "rebuilt in full", "update": "updated for the new batches", "current": "already current"}


def maintained_line(published: Path) -> str | None:
    """How this run brought the incrementally maintained tables up to date
    (``meta.build_state``, docs/performance.md#daily-runs): a user loading a daily file wants
    to see that it was an update, and when a table was rebuilt instead."""
    from sharegraph.core.increments import last_builds

    with duckdb.connect(str(published), read_only=True) as con:
        builds = last_builds(con)
    by_how: dict[str, list[str]] = {}
    for table, how in builds.items():
        by_how.setdefault(_HOW.get(how, how), []).append(table)
    return ("maintained tables: " + "; ".join(f"{how}: {', '.join(tables)}"
                                              for how, tables in by_how.items())
            if builds else None)


def file_table(rows: Sequence[FileRow]) -> list[str]:
    header = ("file", "table", "read", "loaded", "updated", "already", "quarantined", "flagged")
    body = [(r.source_file, r.table, *(f"{n:,}" for n in (r.read, r.loaded, r.updated, r.already,
                                                             r.quarantined, r.flagged))) for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return "  " + "  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w)
                                for i, (v, w) in enumerate(zip(row, widths, strict=True)))

    return [fmt(header), *(fmt(r) for r in body)]


# --------------------------------------------------------------------------- failure side


def failure_reason(result: dg.ExecuteInProcessResult, input_dir: Path) -> str:
    """The one-sentence reason of a failed run: the first failed ERROR check, else the first
    failed step's own exception (not Dagster's wrapper), else Dagster's run failure."""
    failed = [e for e in result.get_asset_check_evaluations()
              if not e.passed and getattr(e.severity, "value", "") == "ERROR"]
    if failed:
        e = failed[0]
        more = f" (and {len(failed) - 1} more failed checks)" if len(failed) > 1 else ""
        return f"check {e.check_name} on {e.asset_key.to_user_string()} failed: {e.description}{more}"
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            return _relative(_reason_from_info(error), input_dir)
    for event in result.all_events:
        if event.event_type_value == "RUN_FAILURE":
            error = getattr(event.event_specific_data, "error", None)
            return _relative(_reason_from_info(error) if error else (event.message or "the run failed"), input_dir)
    return "the run failed"


def _reason_from_info(info: Any) -> str:
    chain = []
    node = info
    while node is not None and len(chain) < 20:
        chain.append(node)
        node = node.cause or node.context
    mine = [n for n in chain if not (n.cls_name or "").startswith("Dagster")]
    pick = mine[0] if mine else chain[-1]
    text = _first_line(pick.message, pick.cls_name)
    below = pick.cause or pick.context
    if below is not None:
        detail = _first_line(below.message, below.cls_name)
        if detail and detail not in text:
            text = f"{text} ({detail})"
    return text


def _first_line(message: str, cls_name: str | None) -> str:
    """'pkg.mod.Cls: text...' -> 'text' for sharegraph's own errors, 'Cls: text' otherwise."""
    head, sep, rest = message.strip().partition(": ")
    if sep and cls_name and head.split(".")[-1] == cls_name:
        message = rest if head.startswith("sharegraph.") else f"{cls_name}: {rest}"
    return (message.strip().splitlines() or [""])[0].strip()


def reason_from_exception(exc: BaseException, input_dir: Path) -> str:
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and len(chain) < 20:
        chain.append(node)
        node = node.__cause__
    mine = [e for e in chain if not type(e).__module__.startswith("dagster")]
    pick = mine[0] if mine else chain[-1]
    own = type(pick).__module__.startswith("sharegraph") or isinstance(pick, ValueError)
    text = (str(pick).strip().splitlines() or [""])[0]
    if not own or not text:
        text = f"{type(pick).__name__}: {text}".rstrip(": ")
    return _relative(text, input_dir)


def _relative(text: str, input_dir: Path) -> str:
    """File names inside the input directory the user named read as plain names."""
    return text.replace(f"{input_dir}{os.sep}", "")


# --------------------------------------------------------------------------- the command


def _new_log_file(warehouse: Path) -> Path | None:
    logs = paths.logs_dir_for(warehouse)
    try:
        logs.mkdir(parents=True, exist_ok=True)
        old = sorted(logs.glob("run-*.log"))
        for stale in old[: max(0, len(old) - KEEP_LOGS + 1)]:
            stale.unlink(missing_ok=True)
    except OSError:
        return None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = logs / f"run-{stamp}.log"
    return path if not path.exists() else logs / f"run-{stamp}-{os.getpid()}.log"


def _terminal_stream(stream: IO[str]) -> IO[str] | None:
    """A private handle on the terminal the run started on: Dagster's log capture points the
    process's stdout/stderr at files while steps run, which would hide the bar."""
    try:
        return os.fdopen(os.dup(stream.fileno()), "w", buffering=1, encoding=getattr(stream, "encoding", None))
    except (OSError, ValueError, AttributeError):
        return None


@contextmanager
def _run_logging(
    log_path: Path | None, out: IO[str], verbose: bool, shape: PlanShape
) -> Iterator[tuple[logging.Logger, RunObserver]]:
    """The run's event logger: to the log file, live to the terminal with --verbose, and to
    the observer (timings, progress bar); the library's own logging joins the file. Undone on
    exit, so nothing leaks into a later run in the same process."""
    event_logger = logging.getLogger("sharegraph.run.events")
    event_logger.setLevel(logging.DEBUG)
    event_logger.propagate = False
    handlers: list[logging.Handler] = []
    if log_path is not None:
        file_handler = QuietFileHandler(log_path, encoding="utf-8", delay=True)
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handlers.append(file_handler)
    terminal = _terminal_stream(out)
    if verbose:
        live = logging.StreamHandler(terminal or out)
        live.setFormatter(logging.Formatter(LOG_FORMAT))
        handlers.append(live)
    bar = _Bar(None if verbose else terminal, shape.steps)
    observer = RunObserver(shape, bar)
    library = logging.getLogger("sharegraph")
    library_level = library.level
    library.setLevel(logging.INFO)
    for h in (*handlers, observer):
        event_logger.addHandler(h)
    for h in handlers:
        library.addHandler(h)
    logging.getLogger(SPARK_LOGGER).addHandler(observer)
    try:
        with bar:
            yield event_logger, observer
    finally:
        logging.getLogger(SPARK_LOGGER).removeHandler(observer)
        for h in handlers:
            library.removeHandler(h)
        library.setLevel(library_level)
        for h in (*handlers, observer):
            event_logger.removeHandler(h)
            h.close()
        if terminal is not None:
            terminal.close()


def run_and_report(
    *,
    input_dir: Path,
    warehouse: Path,
    reports_dir: Path | None,
    config_file: str | None,
    settings_overrides: Mapping[str, object] | None = None,
    verbose: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Run the pipeline and tell a person how it went: 0 on success, 1 on failure, 130 when
    interrupted."""
    from pipelines.run import run_pipeline

    out = out or sys.stderr
    input_dir = paths.input_location(input_dir)
    warehouse = warehouse.expanduser().resolve()
    began = time.perf_counter()

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    try:  # what can be wrong before anything is written: say it, create nothing
        settings = Settings.load(config_file)
        if settings_overrides:
            settings = settings.with_values(dict(settings_overrides), source="command line")
        where = WarehousePaths.of(warehouse)
        check_writable(where)
        if restore_working(where):
            say(f"note: {warehouse.name} had no working file beside it: this run continues from "
                "the published snapshot (copied as the working file)")
    except (WarehouseError, ValueError, OSError) as exc:
        say(f"error: {reason_from_exception(exc, input_dir)}; the published warehouse is unchanged.")
        return 1
    reports = (reports_dir or paths.reports_dir_for(warehouse, settings)).expanduser().resolve()

    log_path = _new_log_file(warehouse)
    log_line = f"log: {log_path}" if log_path is not None else "log: (none: the log directory is not writable)"
    shape = PlanShape.load()
    since = datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    result: dg.ExecuteInProcessResult | None = None
    crash: Exception | None = None
    try:
        with _run_logging(log_path, out, verbose, shape) as (event_logger, observer):
            try:
                result = run_pipeline(
                    input_dir=input_dir, warehouse=warehouse, reports_dir=reports, config_file=config_file,
                    settings_overrides=settings_overrides, event_logger=event_logger, raise_on_error=False,
                )
            except Exception as exc:  # noqa: BLE001 - any failure becomes one sentence; the trace goes to the log
                crash = exc
                event_logger.error("the run failed before or outside Dagster's steps", exc_info=exc)
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
        say("error: interrupted; the published warehouse is unchanged.")
        say(log_line)
        return 130

    summary = summarize(result, shape, observer.seconds) if result is not None else None
    if summary is None or not result.success:
        reason = failure_reason(result, input_dir) if crash is None and result is not None else (
            reason_from_exception(crash or RuntimeError("the run returned no result"), input_dir))
        say(f"error: {reason.rstrip('.')}; the published warehouse is unchanged.")
        if crash is not None and verbose:
            say("".join(traceback.format_exception(crash)).rstrip())
        if summary is not None:
            for line in [*stage_lines(summary, out), *(check_lines(summary) if summary.checks else [])]:
                say(line)
        say(f"{log_line}  (Dagster's event log with the trace; --verbose shows it live)")
        return 1

    for line in stage_lines(summary, out, settings.engine):
        say(line)
    published = WarehousePaths.of(warehouse).published
    for line in _load_lines(published, since, summary):
        say(line)
    maintained = maintained_line(published)
    if maintained:
        say(f"  {maintained}")
    say()
    for line in check_lines(summary):
        say(line)
    index = reports / "index.html"
    say(f"warehouse (open read-only): {published}")
    say(f"reports: {index if index.exists() else reports}")
    say(log_line)
    run = result.dagster_run
    say(f"done in {time.perf_counter() - began:.1f} s (Dagster run {run.run_id[:8]} of job {run.job_name})")
    return 0


def _load_lines(published: Path, since: datetime, summary: Summary) -> list[str]:
    """The per-file table of this run's loads and the notes under it."""
    try:
        rows = file_rows(published, since)
        channels = other_channels(published)
    except duckdb.Error as exc:
        return [f"  (no per-file table: {exc})"]
    out = ["", *(file_table(rows) if rows else [])]
    if summary.files_skipped:
        out.append(f"  {summary.files_skipped} file(s) skipped: the same content was loaded before")
    if any(r.quarantined for r in rows):
        out.append('  quarantined rows and why: sharegraph sql "SELECT * FROM quarantine.rejected_rows" '
                   f"--warehouse {published}")
    if channels:
        out.append(f"  {channels}")
    out += [f"  {r.source_file}: {r.notes}" for r in rows if r.notes]
    return out
