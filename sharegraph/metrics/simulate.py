"""Commission simulator: replay the real credited orders under other payout schemes.

What a growth team asks before changing the commission plan: "what would we have paid, to
whom, and who wins or loses?" (docs/simulator.md). The replay takes the period's paid,
credited order lines of ``graph.attributed_orders`` (refunded / cancelled lines excluded, as
attribution already credits nobody for them), the agent forest of ``graph.agent_upline`` and
``staging.products.agent_price``, and computes every scheme's payout set-based in DuckDB:

* ``commission_rate`` — of each credited paid line's amount, to the credited person;
* ``tiers`` — ``[[threshold, rate], ...]``: a person's whole month at the rate of the highest
  threshold their credited paid GMV that month reaches (replaces ``commission_rate``);
* ``red_packet`` — ¥ per share-attributed paid order (rule share_id / last_click), to the sharer;
* ``levels`` — multi-level distribution: level i's upline of the credited agent earns
  ``levels[i-1]`` of that line;
* ``agent_price_differential`` — 代理价差: a credited agent earns the line's amount minus
  ``agent_price × quantity`` (never below 0).

Money is DECIMAL(18,2): every component is rounded half-up to the cent **per line** (per order
for red packets) and then summed exactly. Behaviour is assumed not to change (a replay); an
optional elasticity scales each person's activity by (payout ratio)^elasticity, labelled as an
assumption. Schemes deeper than three levels (the seller plus more than two uplines) are
flagged: WeChat and Chinese regulators treat them as pyramid-selling (传销) risk.
"""

from __future__ import annotations

import math
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
import pyarrow as pa

CENT = Decimal("0.01")
MAX_SAFE_LEVELS = 2
"""Uplines paid beyond the seller before a scheme is flagged: seller + 2 uplines = three levels
(三级分销), the limit WeChat's rules and the 《禁止传销条例》 practice draw."""
SHARE_RULES = ("share_id", "last_click")
SCHEME_KEYS = {"name", "current", "commission_rate", "red_packet", "tiers", "levels",
               "agent_price_differential"}
ASSUMPTION_REPLAY = ("Replay: everyone is assumed to behave exactly as they did (same shares, "
                     "clicks and orders) under every scheme.")


@dataclass(frozen=True)
class Scheme:
    """One payout scheme (see the module docstring for the meaning of each field)."""

    name: str
    current: bool = False
    commission_rate: Decimal = Decimal(0)
    red_packet: Decimal = Decimal(0)
    tiers: tuple[tuple[Decimal, Decimal], ...] = ()
    levels: tuple[Decimal, ...] = ()
    agent_price_differential: bool = False

    @property
    def depth(self) -> int:
        """Levels of distribution counting the seller as the first."""
        return 1 + len(self.levels)


@dataclass
class SimulationResult:
    """Per-scheme totals, the monthly table, warnings and the stated assumptions."""

    period: tuple[str, str]
    current: str
    elasticity: float
    schemes: list[dict[str, object]]
    monthly: list[dict[str, object]]
    warnings: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """Plain JSON types (money as float ¥ rounded to the cent)."""
        def plain(v: object) -> object:
            if isinstance(v, Decimal):
                return float(v)
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [plain(x) for x in v]
            return v
        return plain(asdict(self))  # type: ignore[return-value]


def _money(value: object, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what}: {value!r} must be a finite number >= 0")
    return d


def _rate(value: object, what: str) -> Decimal:
    d = _money(value, what)
    if d > 1:
        raise ValueError(f"{what}: {value!r} is a share of the amount and must be in 0..1 (0.05 = 5%)")
    return d


def parse_schemes(data: dict[str, object]) -> list[Scheme]:
    """Schemes from a parsed TOML document (``[[scheme]]`` tables), validated."""
    raw = data.get("scheme")
    if not isinstance(raw, list) or not raw:
        raise ValueError("the scheme file needs at least one [[scheme]] table")
    out: list[Scheme] = []
    for i, s in enumerate(raw, start=1):
        if not isinstance(s, dict):
            raise ValueError(f"scheme {i}: not a table")
        unknown = set(s) - SCHEME_KEYS
        name = str(s.get("name") or f"scheme_{i}")
        if unknown:
            raise ValueError(f"scheme {name!r}: unknown keys {sorted(unknown)}; known: {sorted(SCHEME_KEYS)}")
        if "tiers" in s and "commission_rate" in s:
            raise ValueError(f"scheme {name!r}: give commission_rate or tiers, not both")
        tiers = []
        for t in s.get("tiers", []):
            if not isinstance(t, list) or len(t) != 2:
                raise ValueError(f"scheme {name!r}: each tier is [threshold_yuan, rate]")
            tiers.append((_money(t[0], f"{name} tier threshold"), _rate(t[1], f"{name} tier rate")))
        thresholds = [t[0] for t in tiers]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError(f"scheme {name!r}: tier thresholds must be distinct")
        out.append(Scheme(
            name=name,
            current=bool(s.get("current", False)),
            commission_rate=_rate(s.get("commission_rate", 0), f"{name} commission_rate"),
            red_packet=_money(s.get("red_packet", 0), f"{name} red_packet").quantize(CENT),
            tiers=tuple(sorted(tiers)),
            levels=tuple(_rate(x, f"{name} levels") for x in s.get("levels", [])),
            agent_price_differential=bool(s.get("agent_price_differential", False)),
        ))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"scheme names must be distinct: {names}")
    if sum(s.current for s in out) > 1:
        raise ValueError("at most one scheme may be marked current = true")
    return out


def load_schemes(path: str | Path) -> list[Scheme]:
    """Read and validate a scheme TOML file."""
    with open(path, "rb") as fh:
        return parse_schemes(tomllib.load(fh))


def depth_warnings(schemes: list[Scheme]) -> list[str]:
    """One sentence per scheme deeper than three levels (pyramid-selling / 传销 risk)."""
    return [
        f"scheme {s.name!r} pays {len(s.levels)} upline levels ({s.depth} levels with the seller): "
        "more than three levels of distribution is treated as pyramid selling (传销) by Chinese "
        "regulators and platform rules; check with counsel before launching it"
        for s in schemes if len(s.levels) > MAX_SAFE_LEVELS
    ]


def _register_schemes(con: duckdb.DuckDBPyConnection, schemes: list[Scheme]) -> None:
    """Scheme parameters as three small temp tables, so one statement serves every scheme."""
    dec = pa.decimal128(18, 6)
    base = pa.table({
        "scheme": [s.name for s in schemes],
        "ord": list(range(len(schemes))),
        "commission_rate": pa.array([s.commission_rate for s in schemes], dec),
        "red_packet": pa.array([s.red_packet for s in schemes], dec),
        "has_tiers": [bool(s.tiers) for s in schemes],
        "differential": [s.agent_price_differential for s in schemes],
    })
    tiers = pa.table({
        "scheme": [s.name for s in schemes for _ in s.tiers],
        "threshold": pa.array([t[0] for s in schemes for t in s.tiers], dec),
        "rate": pa.array([t[1] for s in schemes for t in s.tiers], dec),
    })
    levels = pa.table({
        "scheme": [s.name for s in schemes for _ in s.levels],
        "level": pa.array([i + 1 for s in schemes for i in range(len(s.levels))], pa.int32()),
        "rate": pa.array([r for s in schemes for r in s.levels], dec),
    })
    for name, table in (("_sim_scheme", base), ("_sim_tier", tiers), ("_sim_level", levels)):
        con.register(f"{name}_arrow", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
        con.unregister(f"{name}_arrow")


def _has(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str | None = None) -> bool:
    sql = ("SELECT count(*) FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?"
           + (" AND column_name = ?" if column else ""))
    args = [schema, table] + ([column] if column else [])
    return con.execute(sql, args).fetchall()[0][0] > 0


def build_payouts(con: duckdb.DuckDBPyConnection, schemes: list[Scheme],
                  period: tuple[str | None, str | None] = (None, None)) -> None:
    """Temp tables ``_sim_lines`` (the replayed lines) and ``_sim_payout`` (one row per scheme,
    payee, month and component with ¥ DECIMAL(18,2)), set-based.

    ``period``: inclusive local dates ``YYYY-MM-DD`` on ``ordered_at`` (None = open end).
    """
    _register_schemes(con, schemes)
    start, end = period
    agent_price = ("(SELECT product_id, any_value(agent_price) AS agent_price "
                   "FROM staging.products GROUP BY product_id)"
                   if _has(con, "staging", "products", "agent_price")
                   else "(SELECT NULL::VARCHAR AS product_id, NULL::DECIMAL(18,2) AS agent_price)")
    upline = ("graph.agent_upline" if _has(con, "graph", "agent_upline")
              else "(SELECT NULL::VARCHAR AS agent_id, NULL::VARCHAR AS upline_id)")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _sim_lines AS
        -- grain: one row per paid, credited order line in the period
        SELECT a.order_id, a.line_no, a.credited_id, a.customer_id, a.amount,
               coalesce(a.quantity, 1) AS quantity, a.rule,
               CAST(date_trunc('month', a.ordered_at) AS DATE) AS month,
               u.agent_id IS NOT NULL AS is_agent, p.agent_price
        FROM graph.attributed_orders a
        LEFT JOIN {upline} u ON u.agent_id = a.credited_id
        LEFT JOIN {agent_price} p ON p.product_id = a.product_id
        WHERE a.is_paid AND a.credited_id IS NOT NULL
          AND (CAST(? AS DATE) IS NULL OR a.ordered_at >= CAST(? AS DATE))
          AND (CAST(? AS DATE) IS NULL OR a.ordered_at < CAST(? AS DATE) + INTERVAL 1 DAY)
        """,
        [start, start, end, end],
    )
    max_level = max((len(s.levels) for s in schemes), default=0)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _sim_payout AS
        WITH RECURSIVE anc(agent_id, ancestor_id, level) AS (
            -- one row per (agent, upline at level 1..{max_level}); the forest is acyclic
            SELECT agent_id, upline_id, 1 FROM {upline}
            WHERE upline_id IS NOT NULL AND {max_level} >= 1
            UNION ALL
            SELECT anc.agent_id, u.upline_id, anc.level + 1
            FROM anc JOIN {upline} u ON u.agent_id = anc.ancestor_id
            WHERE u.upline_id IS NOT NULL AND anc.level < {max_level}
        ),
        month_gmv AS (  -- one row per (person, month): credited paid GMV, for tiers
            SELECT credited_id, month, sum(amount) AS gmv FROM _sim_lines GROUP BY ALL
        ),
        tier_rate AS (  -- one row per (tiered scheme, person, month): highest threshold reached
            SELECT t.scheme, g.credited_id, g.month, arg_max(t.rate, t.threshold) AS rate
            FROM month_gmv g JOIN _sim_tier t ON t.threshold <= g.gmv
            GROUP BY ALL
        ),
        parts AS (
            SELECT s.scheme, l.credited_id AS person_id, l.month, 'commission' AS component,
                   round(l.amount * CASE WHEN s.has_tiers THEN coalesce(r.rate, 0)
                                         ELSE s.commission_rate END, 2) AS yuan
            FROM _sim_lines l CROSS JOIN _sim_scheme s
            LEFT JOIN tier_rate r ON r.scheme = s.scheme AND r.credited_id = l.credited_id
                                 AND r.month = l.month
            UNION ALL  -- one red packet per share-attributed paid order
            SELECT s.scheme, o.credited_id, o.month, 'red_packet', s.red_packet
            FROM (SELECT DISTINCT order_id, credited_id, month FROM _sim_lines
                  WHERE rule IN ('share_id', 'last_click')) o
            JOIN _sim_scheme s ON s.red_packet > 0
            UNION ALL  -- multi-level: the credited agent's upline at each paid level
            SELECT v.scheme, anc.ancestor_id, l.month, 'level_' || v.level,
                   round(l.amount * v.rate, 2)
            FROM _sim_lines l JOIN anc ON anc.agent_id = l.credited_id
            JOIN _sim_level v ON v.level = anc.level
            UNION ALL  -- agent price differential (代理价差) on the agent's own sales
            SELECT s.scheme, l.credited_id, l.month, 'differential',
                   round(greatest(l.amount - l.agent_price * l.quantity, 0), 2)
            FROM _sim_lines l JOIN _sim_scheme s ON s.differential
            WHERE l.is_agent AND l.agent_price IS NOT NULL
        )
        SELECT scheme, person_id, month, component, CAST(sum(yuan) AS DECIMAL(18,2)) AS yuan
        FROM parts GROUP BY ALL
        """
    )


def _gini(values: list[float]) -> float | None:
    """Gini of non-negative payouts (0 = equal, → 1 = one person takes all)."""
    n = len(values)
    total = sum(values)
    if n == 0 or total <= 0:
        return None
    xs = sorted(values)
    return sum((2 * i - n + 1) * x for i, x in enumerate(xs)) / (n * total)


def simulate(con: duckdb.DuckDBPyConnection, schemes: list[Scheme],
             period: tuple[str | None, str | None] = (None, None),
             elasticity: float = 0.0) -> SimulationResult:
    """Replay the period under every scheme; compare each with the scheme in force (the one
    marked ``current``, else the first)."""
    if not schemes:
        raise ValueError("no schemes to simulate")
    if not math.isfinite(elasticity):
        raise ValueError("elasticity must be finite")
    warns = depth_warnings(schemes)
    for w in warns:
        warnings.warn(w, stacklevel=2)
    current = next((s.name for s in schemes if s.current), schemes[0].name)
    build_payouts(con, schemes, period)
    gmv = con.execute("SELECT coalesce(sum(amount), 0) FROM _sim_lines").fetchall()[0][0]
    paid_gmv = _period_paid_gmv(con, period)
    per = _person_payouts(con, schemes)
    components = {
        (scheme, comp): yuan
        for scheme, comp, yuan in con.execute(
            "SELECT scheme, component, sum(yuan) FROM _sim_payout GROUP BY ALL").fetchall()
    }
    rows: list[dict[str, object]] = []
    for s in schemes:
        row = _scheme_row(s, per[s.name], per[current], components, current, gmv, paid_gmv)
        if elasticity:
            row["elastic"] = _elastic(per[s.name], per[current], elasticity, paid_gmv)
        rows.append(row)
    monthly = _monthly(con)
    for t in ("_sim_scheme", "_sim_tier", "_sim_level"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    start, end = period
    return SimulationResult(
        period=(start or _bound(con, "min"), end or _bound(con, "max")), current=current,
        elasticity=elasticity, schemes=rows, monthly=monthly, warnings=warns,
        assumptions=_assumptions(elasticity),
    )


def _person_payouts(con: duckdb.DuckDBPyConnection,
                    schemes: list[Scheme]) -> dict[str, dict[str, tuple[Decimal, Decimal]]]:
    """Per scheme, per paid person: (payout, credited GMV), both ¥."""
    person = con.execute(
        """
        -- one row per (scheme, person): payout and credited GMV
        WITH p AS (SELECT scheme, person_id, sum(yuan) AS payout FROM _sim_payout GROUP BY ALL),
        g AS (SELECT credited_id AS person_id, sum(amount) AS gmv FROM _sim_lines GROUP BY ALL)
        SELECT s.scheme, p.person_id, p.payout, coalesce(g.gmv, 0) AS gmv
        FROM _sim_scheme s JOIN p USING (scheme) LEFT JOIN g USING (person_id)
        ORDER BY s.ord, p.person_id
        """
    ).fetchall()
    per: dict[str, dict[str, tuple[Decimal, Decimal]]] = {s.name: {} for s in schemes}
    for scheme, pid, payout, pgmv in person:
        per[scheme][pid] = (payout, pgmv)
    return per


def _scheme_row(s: Scheme, pays: dict[str, tuple[Decimal, Decimal]],
                base: dict[str, tuple[Decimal, Decimal]], components: dict[tuple[str, str], Decimal],
                current: str, gmv: Decimal, paid_gmv: Decimal) -> dict[str, object]:
    """One scheme's totals, spread and components, and who wins or loses against the scheme
    in force (``base``: its payouts per person)."""
    paid = {k: v[0] for k, v in pays.items() if v[0] > 0}
    total = sum(paid.values(), Decimal("0.00"))
    top = sorted(paid.values(), reverse=True)[:10]
    people = set(pays) | set(base)
    deltas = {p: pays.get(p, (Decimal(0),))[0] - base.get(p, (Decimal(0),))[0] for p in people}
    win = [d for d in deltas.values() if d > 0]
    lose = [d for d in deltas.values() if d < 0]
    return {
        "name": s.name,
        "is_current": s.name == current,
        "depth": s.depth,
        "total_payout": total,
        "gmv": paid_gmv,
        "credited_gmv": gmv,
        "payout_to_gmv": float(total / paid_gmv) if paid_gmv else None,
        "agents_paid": len(paid),
        "gini": _gini([float(v) for v in paid.values()]),
        "top10_share": float(sum(top, Decimal(0)) / total) if total else None,
        "components": {c: components.get((s.name, c), Decimal("0.00"))
                       for c in sorted({c for (n, c) in components if n == s.name})},
        "vs_current": {
            "winners": len(win), "losers": len(lose),
            "unchanged": sum(1 for d in deltas.values() if d == 0),
            "gained": sum(win, Decimal("0.00")), "lost": -sum(lose, Decimal("0.00")),
            "net": total - sum((v[0] for v in base.values()), Decimal("0.00")),
            "largest_gain": max(win, default=Decimal("0.00")),
            "largest_loss": -min(lose, default=Decimal("0.00")),
        },
    }


def _monthly(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """One row per (scheme, month): payout, payees and credited GMV."""
    return [
        {"scheme": sc, "month": str(m), "payout": pay, "payees": n, "credited_gmv": g}
        for sc, m, pay, n, g in con.execute(
            """
            -- one row per (scheme, month)
            WITH p AS (SELECT scheme, month, sum(yuan) AS payout,
                              count(DISTINCT person_id) FILTER (WHERE yuan > 0) AS payees
                       FROM _sim_payout GROUP BY ALL),
            g AS (SELECT month, sum(amount) AS gmv FROM _sim_lines GROUP BY ALL)
            SELECT s.scheme, g.month, coalesce(p.payout, 0), coalesce(p.payees, 0), g.gmv
            FROM _sim_scheme s CROSS JOIN g
            LEFT JOIN p ON p.scheme = s.scheme AND p.month = g.month
            ORDER BY s.ord, g.month
            """
        ).fetchall()
    ]


def _assumptions(elasticity: float) -> list[str]:
    """The assumptions the result rests on, stated with it."""
    assumptions = [ASSUMPTION_REPLAY]
    if elasticity:
        assumptions.append(
            f"ASSUMPTION elasticity = {elasticity:g}: each person's credited activity (GMV and "
            "payout) is scaled by (payout under the scheme / payout under the current scheme) ** "
            "elasticity, once, without network effects; a guess to explore, not a measurement.")
    return assumptions


def _bound(con: duckdb.DuckDBPyConnection, fn: str) -> str:
    v = con.execute(f"SELECT CAST({fn}(ordered_at) AS DATE) FROM graph.attributed_orders").fetchall()[0][0]
    return "" if v is None else str(v)


def _period_paid_gmv(con: duckdb.DuckDBPyConnection, period: tuple[str | None, str | None]) -> Decimal:
    start, end = period
    return con.execute(
        """SELECT coalesce(sum(amount), 0) FROM graph.attributed_orders
           WHERE is_paid
             AND (CAST(? AS DATE) IS NULL OR ordered_at >= CAST(? AS DATE))
             AND (CAST(? AS DATE) IS NULL OR ordered_at < CAST(? AS DATE) + INTERVAL 1 DAY)""",
        [start, start, end, end],
    ).fetchall()[0][0]


def _elastic(pays: dict[str, tuple[Decimal, Decimal]], base: dict[str, tuple[Decimal, Decimal]],
             elasticity: float, paid_gmv: Decimal) -> dict[str, object]:
    """Totals with each person's activity scaled by (payout ratio) ** elasticity (assumption);
    people without a payout under either scheme keep factor 1."""
    payout = 0.0
    total_gmv = float(paid_gmv)
    for pid, (pay, pgmv) in pays.items():
        before = float(base.get(pid, (Decimal(0),))[0])
        factor = (float(pay) / before) ** elasticity if before > 0 and pay > 0 else 1.0
        payout += float(pay) * factor
        total_gmv += float(pgmv) * (factor - 1.0)
    return {"total_payout": round(payout, 2), "gmv": round(total_gmv, 2),
            "payout_to_gmv": payout / total_gmv if total_gmv else None,
            "label": "assumption (elasticity), not a replay"}
