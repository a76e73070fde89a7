"""The ``sharegraph`` command line: generate a demo world, validate exports, run the pipeline,
query the published warehouse.

Dagster is imported only by ``run`` and ``demo`` (inside the command), so ``--help`` and the
library stay light.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from sharegraph import __version__
from sharegraph.core import paths


def _say(message: str) -> None:
    print(f"[sharegraph] {message}", file=sys.stderr, flush=True)


def _positive_int(text: str) -> int:
    value = int(text.replace("_", ""))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def cmd_generate(args: argparse.Namespace) -> int:
    from sharegraph.demo.generate import generate_world

    truth = generate_world(
        args.out, seed=args.seed, people=args.people, orders=args.orders, fmt=args.format, progress=_say
    )
    _say(f"planted truth (never read by the pipeline): {Path(args.out).resolve() / 'truth.json'}")
    _say(f"{len(truth.get('top_agents_downstream', []))} planted top agents, "
         f"{len(truth.get('category_pairs', []))} planted category pairs")
    return 0


def _reject_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1 (0.05 = 5%), got {text}")
    return value


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Settings given on the command line; they win over the config file and environment."""
    rate = getattr(args, "max_reject_rate", None)
    out: dict[str, object] = {} if rate is None else {"max_reject_rate": rate}
    if getattr(args, "engine", None):
        out["engine"] = args.engine
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    from sharegraph.core.config import Settings
    from sharegraph.ingest.validate import validate_inputs

    settings = Settings.load(args.config).with_values(_overrides(args), source="command line")
    report = validate_inputs(Path(args.input), settings)
    print(report.render())
    return 0 if report.ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    reports = Path(args.reports) if args.reports else None
    return _run(args.input if paths.is_uri(args.input) else Path(args.input),
                Path(args.warehouse), reports, args)


def cmd_demo(args: argparse.Namespace) -> int:
    input_dir = paths.default_input_dir()
    if args.regenerate or not any(input_dir.glob("orders.*")):
        from sharegraph.demo.generate import generate_world

        _say(f"generating the demo world ({args.orders:,} orders, seed {args.seed}) into {input_dir}")
        generate_world(input_dir, seed=args.seed, people=args.people, orders=args.orders, progress=_say)
    return _run(input_dir, paths.default_warehouse(), None, args)


def _run(input_dir: Path | str, warehouse: Path, reports: Path | None,
         args: argparse.Namespace) -> int:
    """Run the pipeline with the console report (pipelines.console); Dagster loads only here.
    A URI input (``s3a://…``) is checked by the Spark engine that reads it."""
    if isinstance(input_dir, Path) and not input_dir.is_dir():
        _say(f"error: input directory {input_dir} does not exist")
        return 2
    from pipelines.console import run_and_report

    return run_and_report(input_dir=input_dir, warehouse=warehouse, reports_dir=reports,
                          config_file=args.config, settings_overrides=_overrides(args),
                          verbose=args.verbose)


def cmd_sql(args: argparse.Namespace) -> int:
    from pipelines import query

    con = _open_published(args.warehouse)
    if con is None:
        return 2
    try:
        done = list(query.results(con, args.query))
        shown = [(q, f) for q, f in done if f is not None]
        for i, (statement, frame) in enumerate(shown, start=1):
            last = i == len(shown)
            if args.format in ("csv", "json", "parquet"):
                if last or args.out is None:
                    query.write(frame, args.format, Path(args.out) if args.out and last else None,
                                sys.stdout)
                continue
            if len(shown) > 1:
                print(f"-- {i}: {' '.join(statement.split())[:100]}")
            print(query.render(frame, args.layout, args.max_rows))
        if args.out:
            _say(f"wrote {Path(args.out).resolve()}")
    except Exception as exc:  # noqa: BLE001 - SQL errors are the user's to read
        _say(f"error: {exc}")
        return 1
    finally:
        con.close()
    return 0


def cmd_reveal(args: argparse.Namespace) -> int:
    from sharegraph.core.config import Settings
    from sharegraph.reports.pseudonym import KEY_FILE, read_key, reveal

    home = Path(args.warehouse).resolve().parent
    key = Settings.load(args.config).pseudonym_key or read_key(home)
    if not key:
        _say(f"error: no pseudonym key: neither pseudonym_key in the config nor {home / KEY_FILE}")
        return 2
    con = _open_published(args.warehouse)
    if con is None:
        return 2
    try:
        people = [r[0] for r in con.execute("SELECT person_id FROM graph.people").fetchall()]
    finally:
        con.close()
    found = reveal(args.pseudonym, people, key)
    if not found:
        _say(f"{args.pseudonym}: no person of this warehouse has this pseudonym under this key")
        return 1
    print("\n".join(found))
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    import code

    con = _open_published(args.warehouse)
    if con is None:
        return 2
    banner = (
        f"sharegraph shell on {Path(args.warehouse).resolve()} (read-only)\n"
        "  q('SELECT ...')  run SQL and print the result;  con  the DuckDB connection\n"
        "  tables: q('SELECT schema_name, table_name, comment FROM duckdb_tables()')"
    )

    def q(sql: str) -> None:
        con.sql(sql).show(max_rows=50, max_width=200)

    try:
        code.interact(banner=banner, local={"con": con, "q": q}, exitmsg="")
    finally:
        con.close()
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Replay the period's credited orders under each payout scheme (docs/simulator.md)."""
    import json

    from sharegraph.metrics.simulate import load_schemes, simulate

    try:
        schemes = load_schemes(args.scheme)
    except (OSError, ValueError) as exc:
        _say(f"error: scheme file {args.scheme}: {exc}")
        return 2
    start, _, end = (args.period or ":").partition(":")
    con = _open_published(args.warehouse)
    if con is None:
        return 2
    try:
        result = simulate(con, schemes, (start or None, end or None), elasticity=args.elasticity)
    finally:
        con.close()
    if args.report:
        from sharegraph.reports.planning import render_simulator

        render_simulator(result, Path(args.report))
        _say(f"report: {Path(args.report).resolve()}")
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
        return 0
    for line in result.assumptions + [f"WARNING: {w}" for w in result.warnings]:
        print(line)
    print(f"period {result.period[0]} .. {result.period[1]}; compared with {result.current!r}")
    print(f"{'scheme':<16}{'payout ¥':>14}{'payout/GMV':>11}{'paid':>7}{'gini':>7}{'top10':>7}"
          f"{'win':>6}{'lose':>6}{'net ¥':>13}")
    for r in result.schemes:
        vs = r["vs_current"]
        print(f"{r['name']:<16}{r['total_payout']:>14,.2f}{(r['payout_to_gmv'] or 0):>11.2%}"
              f"{r['agents_paid']:>7}{(r['gini'] or 0):>7.3f}{(r['top10_share'] or 0):>7.1%}"
              f"{vs['winners']:>6}{vs['losers']:>6}{vs['net']:>13,.2f}")
    print("\nmonth       scheme           payout ¥")
    for m in result.monthly:
        print(f"{m['month'][:7]:<12}{m['scheme']:<16}{m['payout']:>12,.2f}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Seeds for a launch by IMM on the diffusion model learned from past cascades (docs/planner.md)."""
    import json

    from sharegraph.metrics.planner import learn_model, plan_seeds

    con = _open_published(args.warehouse)
    if con is None:
        return 2
    try:
        model = learn_model(con, category=args.category, merchant=args.merchant)
    finally:
        con.close()
    if model.graph.src.size == 0:
        _say("error: no share, click or credited-order ties in this scope; nothing to learn from")
        return 1
    plan = plan_seeds(model, args.k)
    if args.json:
        print(json.dumps(plan.to_json(), ensure_ascii=False, indent=1))
        return 0
    print(f"method: {plan.method}")
    print(f"{'#':>3} {'person_id':<16}{'marginal buyers':>16}{'marginal ¥':>14}")
    for i, s in enumerate(plan.seeds, start=1):
        print(f"{i:>3} {s['person_id']:<16}{s['marginal_buyers']:>16.2f}{s['marginal_gmv']:>14,.2f}")
    print(f"expected buyers {plan.expected_buyers:.1f} (95% interval {plan.buyers_low:.1f}-"
          f"{plan.buyers_high:.1f}), expected GMV ¥{plan.expected_gmv:,.2f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every report table as CSV and each page as zh/en Excel workbooks (docs/reports.md)."""
    from sharegraph.core.config import Settings
    from sharegraph.reports.exports import write_exports
    from sharegraph.reports.pseudonym import resolve_key

    con = _open_published(args.warehouse)
    if con is None:
        return 2
    settings = Settings.load(args.config)
    key = resolve_key(settings.pseudonym_key, Path(args.warehouse).resolve().parent)
    try:
        written = write_exports(con, settings.with_values({"pseudonym_key": key}), Path(args.out))
    finally:
        con.close()
    _say(f"wrote {len(written)} files under {(Path(args.out) / 'exports').resolve()}")
    return 0


def _open_published(warehouse: str):  # -> duckdb.DuckDBPyConnection | None
    from sharegraph.core.config import Settings
    from sharegraph.core.warehouse import connect

    path = Path(warehouse)
    if not path.is_file():
        _say(f"error: no published warehouse at {path.resolve()}; run `sharegraph run` (or `make demo`) first")
        return None
    return connect(path, read_only=True, timezone=Settings.load().timezone)


def _add_reject_rate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-reject-rate", type=_reject_rate, metavar="RATE",
                        help="fail a file whose rejected rows exceed this share of its rows, 0..1 "
                        "(default: max_reject_rate of the settings, 0.05)")


def _add_run_output(parser: argparse.ArgumentParser) -> None:
    _add_reject_rate(parser)
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="stream Dagster's event log (and tracebacks) to the terminal; it always "
                        "goes to logs/run-*.log beside the warehouse")


def _add_warehouse(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warehouse", help="published DuckDB file (default: the configured warehouse, state/sharegraph.duckdb)")


def _add_pipeline_commands(sub: argparse._SubParsersAction) -> None:
    """generate, validate, run, demo: the commands that make or load data."""
    gen = sub.add_parser("generate", help="write a seeded demo world (orders, shares, products, agents, group buys, truth.json)",
                         description="Write a deterministic demo world of social commerce with planted ground truth.")
    gen.add_argument("--out", required=True, help="output directory (created if missing)")
    gen.add_argument("--seed", type=int, default=7, help="random seed (default 7); same seed, same files")
    gen.add_argument("--people", type=_positive_int, default=20_000, help="number of people (default 20000)")
    gen.add_argument("--orders", type=_positive_int, default=200_000, help="number of order lines (default 200000)")
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv", help="file format (default csv)")
    gen.set_defaults(func=cmd_generate)

    val = sub.add_parser("validate", help="check export files against the data contract without loading",
                         description="Check files against the data contract; exit 0 when every row is loadable, 1 otherwise.")
    val.add_argument("--input", required=True, help="directory of export files (orders.csv, share_events.csv, ...)")
    val.add_argument("--config", help="settings file (sharegraph.toml)")
    _add_reject_rate(val)
    val.set_defaults(func=cmd_validate)

    run = sub.add_parser("run", help="run the pipeline (Dagster, in-process) into a DuckDB warehouse",
                         description="Load, validate, attribute, score and report; publish the warehouse atomically at the end of a good run.")
    run.add_argument("--input", required=True,
                     help="directory of export files; with --engine spark also a URI Spark and "
                          "pyarrow read (s3a://bucket/exports, hdfs://..., file:///...)")
    run.add_argument("--warehouse", required=True, help="published DuckDB file analysts open (working file lives beside it)")
    run.add_argument("--reports", help="directory for the HTML reports (default: reports/ beside the warehouse, or SHAREGRAPH_REPORTS)")
    run.add_argument("--config", help="settings file (sharegraph.toml)")
    run.add_argument("--engine", choices=("duckdb", "spark"),
                     help="duckdb (default, in-process) or spark (pip extra [spark] and Java; "
                     "settings in [sharegraph.spark], docs/engines.md); default: the setting engine")
    _add_run_output(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="generate the demo world and run the pipeline into the state directory",
                          description="generate + run into ./state (SHAREGRAPH_STATE): demo-input/, sharegraph.duckdb, reports/.")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--people", type=_positive_int, default=20_000, help="number of people (default 20000)")
    demo.add_argument("--orders", type=_positive_int, default=200_000, help="number of order lines (default 200000)")
    demo.add_argument("--regenerate", action="store_true", help="regenerate the demo world even if present")
    demo.add_argument("--config", help="settings file (sharegraph.toml)")
    _add_run_output(demo)
    demo.set_defaults(func=cmd_demo)


def _add_analyst_commands(sub: argparse._SubParsersAction) -> None:
    """sql, reveal, export, shell: read the published warehouse."""
    sql = sub.add_parser("sql", help="run a SQL query on the published warehouse (read-only)",
                         description="Run SQL statements on the published snapshot, read-only; "
                         "every statement's result is shown with all its columns (vertically when "
                         "it does not fit the terminal). Floats are rounded for display only.")
    sql.add_argument("query", help='e.g. "SELECT * FROM marts.agent_influence ORDER BY downstream_gmv DESC LIMIT 10"')
    _add_warehouse(sql)
    sql.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table",
                     help="table (for reading) or csv / json / parquet (exact values; parquet needs --out)")
    sql.add_argument("--layout", choices=("auto", "table", "vertical"), default="auto",
                     help="table format: one line per row, one line per column, or auto (default)")
    sql.add_argument("--out", help="write the last statement's result to this file (csv, json, parquet)")
    sql.add_argument("--max-rows", type=int, default=40, help="rows shown in table format (default 40)")
    sql.set_defaults(func=cmd_sql)

    rev = sub.add_parser("reveal", help="map a report pseudonym (P-...) back to the person id, with the key",
                         description="Find the person behind a pseudonym of the reports. Needs the "
                         "pseudonym key: pseudonym_key in the config, else pseudonym.key beside the warehouse.")
    rev.add_argument("pseudonym", help="e.g. P-3f9a0c2b71d4e856")
    _add_warehouse(rev)
    rev.add_argument("--config", help="settings file (sharegraph.toml)")
    rev.set_defaults(func=cmd_reveal)

    exp = sub.add_parser("export", help="write every report table as CSV and each page as Excel (zh and en)",
                         description="Write <out>/exports/: csv/<page>/<table>.csv and {zh,en}/<page>.xlsx "
                         "(headers in that language, ¥ formats, frozen header row), people pseudonymised.")
    _add_warehouse(exp)
    exp.add_argument("--out", required=True, help="directory to write exports/ into")
    exp.add_argument("--config", help="settings file (sharegraph.toml)")
    exp.set_defaults(func=cmd_export)

    shell = sub.add_parser("shell", help="interactive Python shell with a read-only connection to the published warehouse",
                           description="Open the published snapshot read-only in an interactive shell.")
    _add_warehouse(shell)
    shell.set_defaults(func=cmd_shell)


def _add_planning_commands(sub: argparse._SubParsersAction) -> None:
    """simulate, plan: decide the next launch and incentive scheme."""
    sim = sub.add_parser("simulate", help="replay credited orders under other commission schemes",
                         description="Replay the period's paid, credited orders and agent upline under "
                         "each scheme of a TOML file (docs/simulator.md).")
    _add_warehouse(sim)
    sim.add_argument("--scheme", required=True, help="TOML file of [[scheme]] tables")
    sim.add_argument("--period", help="START:END local dates, inclusive (YYYY-MM-DD:YYYY-MM-DD; either may be empty)")
    sim.add_argument("--elasticity", type=float, default=0.0,
                     help="ASSUMPTION: response of activity to payout (default 0 = pure replay)")
    sim.add_argument("--report", help="also write the side-by-side HTML page here")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(func=cmd_simulate)

    plan = sub.add_parser("plan", help="choose launch seeds by influence maximisation (IMM)",
                          description="Learn a diffusion model from past cascades and pick k seeds "
                          "with IMM (docs/planner.md).")
    _add_warehouse(plan)
    plan.add_argument("--k", type=_positive_int, default=20, help="number of seeds (default 20)")
    plan.add_argument("--category", help="learn from and plan for this category only")
    plan.add_argument("--merchant", help="learn from and plan for this merchant only")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.set_defaults(func=cmd_plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sharegraph",
        description="Social-commerce analytics: orders and share events -> DuckDB warehouse, "
        "referral graph, agent influence, category affinity, Plotly reports.",
    )
    parser.add_argument("--version", action="version", version=f"sharegraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_pipeline_commands(sub)
    _add_analyst_commands(sub)
    _add_planning_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "warehouse", "") is None:  # resolved only when needed: a broken
        args.warehouse = str(paths.default_warehouse())  # sharegraph.toml must not break --help
    return args.func(args)


#: the collector's thresholds for a ``sharegraph`` process (Python's default is 700, 10, 10):
#: importing Dagster leaves ~300k tracked objects, and at the default every full collection
#: walked them all again (six times in a small run, ~0.35 s); Python objects here are
#: bookkeeping, the data lives in DuckDB and Arrow
GC_THRESHOLDS = (10_000, 10, 10)


def entry() -> None:
    """The ``sharegraph`` command (console script and ``python -m pipelines.cli``): ``main``
    with the garbage collector set for a short-lived process. At exit the objects are frozen,
    so that the interpreter's shutdown does not walk them again (~0.45 s of a small run);
    they are freed with the process. Tests call ``main`` and keep Python's defaults."""
    gc.set_threshold(*GC_THRESHOLDS)
    rc = main()
    gc.freeze()
    sys.exit(rc)


if __name__ == "__main__":
    entry()
