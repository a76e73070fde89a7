"""The whole pipeline on the real public datasets (BeiBei, Ciao, CiaoDVD), checked against
figures computed independently from the raw files (tests/realdata.py).

The raw files are read in place from ``../shared/data/real`` and never copied; every test
skips with the reason when they are absent. The exports feed raw source values (channel
``beibei``, group status ``success``) and rely on the default vocabulary. The default run
uses a deterministic BeiBei subset (initiator id divisible by 10); the full BeiBei set is
marked slow. Figures are in docs/real-data.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests import realdata

BEIBEI_SUBSET_MOD = 10
"""Default run: BeiBei groups whose initiator id is divisible by this (about 1/10 of the set)."""
LIFT_TOLERANCE = 1e-9
MIN_COMMON = 20
"""Settings.min_pair_customers default: pairs with at least this many common customers."""


def _run_pipeline(
    tmp_path_factory: pytest.TempPathFactory, name: str, write: Callable[[Path], dict[str, int]]
) -> tuple[Path, dict[str, int]]:
    """Convert one dataset into a fresh input dir and run the real pipeline on it."""
    from pipelines.run import run_pipeline

    out = tmp_path_factory.mktemp(name)
    try:
        written = write(out / "input")
    except realdata.RealDataMissing as exc:
        pytest.skip(f"{name}: {exc}; expected under {realdata.REAL_DIR}")
    os.environ.setdefault("DAGSTER_HOME", str(out / "dagster"))
    result = run_pipeline(input_dir=out / "input", warehouse=out / "wh.duckdb",
                          reports_dir=out / "reports")
    assert result.success
    return out / "wh.duckdb", written


@pytest.fixture(scope="module")
def beibei(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, int]]]:
    """Warehouse of the BeiBei subset and the row counts written."""
    wh, written = _run_pipeline(
        tmp_path_factory, "beibei",
        lambda out: realdata.write_beibei(out, initiator_mod=BEIBEI_SUBSET_MOD))
    con = duckdb.connect(str(wh), read_only=True)
    yield con, written
    con.close()


@pytest.fixture(scope="module")
def ciao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, int]]]:
    wh, written = _run_pipeline(tmp_path_factory, "ciao", realdata.write_ciao)
    con = duckdb.connect(str(wh), read_only=True)
    yield con, written
    con.close()


@pytest.fixture(scope="module")
def ciaodvd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, int]]]:
    wh, written = _run_pipeline(tmp_path_factory, "ciaodvd", realdata.write_ciaodvd)
    con = duckdb.connect(str(wh), read_only=True)
    yield con, written
    con.close()


# ------------------------------------------------------------------------------ assertions

def assert_loaded_whole(con: duckdb.DuckDBPyConnection, written: dict[str, int]) -> None:
    """Every written row is in staging: nothing rejected, nothing flagged."""
    rejected = con.execute(
        "SELECT table_name, rule, count(*) FROM quarantine.rejected_rows GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    flagged = con.execute(
        "SELECT table_name, rule, count(*) FROM quarantine.flagged_rows GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rejected == [], f"rows quarantined: {rejected}"
    assert flagged == [], f"rows flagged: {flagged}"
    for table, rows in written.items():
        assert con.execute(f"SELECT count(*) FROM staging.{table}").fetchone()[0] == rows, table


def assert_group_buys(con: duckdb.DuckDBPyConnection, expected: realdata.BeibeiFigures) -> None:
    """Group counts, success rate and top initiators in the marts equal the raw figures."""
    groups, filled, failed, open_ = con.execute(
        "SELECT sum(groups), sum(filled_groups), sum(failed_groups), sum(open_groups) "
        "FROM marts.group_buy_summary"
    ).fetchone()
    assert (groups, filled, failed, open_) == (expected.groups, expected.successes, expected.failures, 0)
    assert con.execute("SELECT count(*) FROM marts.group_buys").fetchone()[0] == expected.groups
    status = dict(con.execute("SELECT status, count(*) FROM marts.group_buys GROUP BY 1").fetchall())
    assert status == {"filled": expected.successes, "failed": expected.failures}
    assert abs(filled / (filled + failed) - expected.success_rate) <= 1e-12
    # the monthly success rate is filled / (filled + failed) of its month
    monthly = con.execute(
        "SELECT count(*) FROM marts.group_buy_summary "
        "WHERE abs(success_rate - filled_groups / (filled_groups + failed_groups)) > 1e-12"
    ).fetchone()[0]
    assert monthly == 0
    top = con.execute(
        "SELECT person_id, direct_buyers FROM marts.agent_influence "
        "ORDER BY direct_buyers DESC, person_id LIMIT ?", [len(expected.top_initiators)]
    ).fetchall()
    assert [(p, int(n)) for p, n in top] == expected.top_initiators
    # failed groups were refunded in full: nothing paid stands on them
    assert con.execute("SELECT sum(failed_paid_yuan) FROM marts.group_buy_summary").fetchone()[0] == 0


def assert_lifts(con: duckdb.DuckDBPyConnection, expected: pl.DataFrame) -> None:
    """Customer-level pairs with >= MIN_COMMON common customers equal the raw ones, lift to 1e-9."""
    got = con.sql(
        "SELECT category_a AS a, category_b AS b, n_ab, n_a, n_b, n_total, lift "
        "FROM marts.category_affinity "
        "WHERE scope = 'all' AND basis = 'customer' AND n_ab >= ?", params=[MIN_COMMON]
    ).pl()
    assert got.height == expected.height > 0
    joined = expected.join(got, on=["a", "b"], how="full", suffix="_wh", coalesce=True)
    missing = joined.filter(pl.col("lift").is_null() | pl.col("lift_wh").is_null())
    assert missing.height == 0, f"pairs in one side only:\n{missing}"
    for col in ("n_ab", "n_a", "n_b", "n_total"):
        diff = joined.filter(pl.col(col).cast(pl.Int64) != pl.col(f"{col}_wh").cast(pl.Int64))
        assert diff.height == 0, f"{col} differs:\n{diff}"
    worst = joined.select((pl.col("lift") - pl.col("lift_wh")).abs().max()).item()
    assert worst <= LIFT_TOLERANCE, f"largest lift difference {worst}"
    # meets_min_count is the same threshold (Settings.min_pair_customers default 20)
    assert con.execute(
        "SELECT count(*) FROM marts.category_affinity "
        "WHERE scope = 'all' AND basis = 'customer' AND meets_min_count <> (n_ab >= ?)", [MIN_COMMON]
    ).fetchone()[0] == 0


# ----------------------------------------------------------------------------------- BeiBei

def test_beibei_loads_raw_values_whole(beibei: tuple[duckdb.DuckDBPyConnection, dict[str, int]]) -> None:
    """channel 'beibei' (open set) and group status 'success'/'failed' load without quarantine."""
    con, written = beibei
    assert_loaded_whole(con, written)
    assert con.execute("SELECT DISTINCT channel FROM staging.orders").fetchall() == [("beibei",)]
    assert con.execute("SELECT DISTINCT status FROM staging.group_buys ORDER BY 1").fetchall() == [
        ("failed",), ("filled",)]


def test_beibei_group_buys_match_raw(beibei: tuple[duckdb.DuckDBPyConnection, dict[str, int]]) -> None:
    con, _ = beibei
    assert_group_buys(con, realdata.expected_beibei(initiator_mod=BEIBEI_SUBSET_MOD))


@pytest.mark.slow
def test_beibei_full_set_matches_raw(tmp_path_factory: pytest.TempPathFactory) -> None:
    """All 544k groups (about 880k order lines): the figures quoted in docs/real-data.md."""
    wh, written = _run_pipeline(tmp_path_factory, "beibei_full", realdata.write_beibei)
    with duckdb.connect(str(wh), read_only=True) as con:
        assert_loaded_whole(con, written)
        assert_group_buys(con, realdata.expected_beibei())


# ------------------------------------------------------------------------- Ciao and CiaoDVD

def test_ciao_loads_whole(ciao: tuple[duckdb.DuckDBPyConnection, dict[str, int]]) -> None:
    con, written = ciao
    assert_loaded_whole(con, written)
    assert con.execute("SELECT DISTINCT channel FROM staging.orders").fetchall() == [("ciao",)]


def test_ciao_pair_lifts_match_raw(ciao: tuple[duckdb.DuckDBPyConnection, dict[str, int]]) -> None:
    con, _ = ciao
    assert_lifts(con, realdata.expected_ciao(min_common=MIN_COMMON))


def test_ciaodvd_loads_whole(ciaodvd: tuple[duckdb.DuckDBPyConnection, dict[str, int]]) -> None:
    con, written = ciaodvd
    assert_loaded_whole(con, written)
    assert con.execute("SELECT DISTINCT channel FROM staging.orders").fetchall() == [("ciaodvd",)]


def test_ciaodvd_pair_lifts_match_raw(ciaodvd: tuple[duckdb.DuckDBPyConnection, dict[str, int]]) -> None:
    con, _ = ciaodvd
    assert_lifts(con, realdata.expected_ciaodvd(min_common=MIN_COMMON))
