"""Agent lifecycle marts checked against plain pandas on a small hand-made world."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest

from sharegraph.core.config import Settings
from sharegraph.core.warehouse import ensure_schema
from sharegraph.metrics.lifecycle import (
    build_agent_cohorts,
    build_agent_funnel,
    build_upline_quality,
    check_cohort_bounds,
    check_funnel_order,
)
from tests.helpers import build_graph, insert_staging

T0 = datetime(2026, 1, 5, 12, 0)
END = datetime(2026, 8, 20, 12, 0)


def _world(with_agents: bool = True) -> tuple[duckdb.DuckDBPyConnection, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """An upline 'u' with 6 recruits r0..r5 (joined in January / February), who share, get
    clicks and sell at different times; one order at END fixes the data's last day."""
    agents = [dict(agent_id="u", joined_at=T0 - timedelta(days=3))]
    events, orders = [], []
    for i in range(6):
        joined = T0 + timedelta(days=12 * i)
        agents.append(dict(agent_id=f"r{i}", upline_id="u", joined_at=joined))
        if i == 5:
            continue  # r5 never shares
        for m in range(i + 1):  # r_i shares in i + 1 months, one share per month
            t = joined + timedelta(days=2 + 30 * m)
            events.append(dict(event_id=f"s{i}_{m}", event_type="share", share_id=f"s{i}_{m}",
                               actor_id=f"r{i}", occurred_at=t))
            if i >= 1:
                events.append(dict(event_id=f"c{i}_{m}", event_type="click", share_id=f"s{i}_{m}",
                                   actor_id=f"buyer{i}{m}", occurred_at=t + timedelta(hours=5)))
            if i >= 2:
                orders.append(dict(order_id=f"o{i}_{m}", customer_id=f"buyer{i}{m}",
                                   ordered_at=t + timedelta(hours=6), product_id="p", category="c",
                                   quantity=1, amount=10.0 * (i + m), channel="wechat",
                                   share_id=f"s{i}_{m}"))
    orders.append(dict(order_id="end", customer_id="z", ordered_at=END, product_id="p", category="c",
                       quantity=1, amount=1.0, channel="taobao"))
    con = duckdb.connect()
    ensure_schema(con)
    insert_staging(con, "orders", orders)
    insert_staging(con, "share_events", events)
    if with_agents:
        insert_staging(con, "agents", agents)
    build_graph(con)
    return con, pd.DataFrame(agents), pd.DataFrame(events), pd.DataFrame(orders)


def _expected_funnel(agents: pd.DataFrame, events: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    shares = events[events.event_type == "share"]
    clicks = events[events.event_type == "click"].merge(
        shares[["share_id", "actor_id"]].rename(columns={"actor_id": "sharer"}), on="share_id")
    sales = orders.dropna(subset=["share_id"]).merge(
        shares[["share_id", "actor_id"]].rename(columns={"actor_id": "sharer"}), on="share_id")
    out = agents.set_index("agent_id")[["joined_at"]].copy()
    out["first_share_at"] = shares.groupby("actor_id").occurred_at.min()
    out["first_click_at"] = clicks.groupby("sharer").occurred_at.min()
    out["first_sale_at"] = sales.groupby("sharer").ordered_at.min()
    act = pd.concat([shares.rename(columns={"actor_id": "a", "occurred_at": "t"})[["a", "t"]],
                     sales.rename(columns={"sharer": "a", "ordered_at": "t"})[["a", "t"]]])
    act["month"] = act.t.dt.to_period("M")
    out["active_months"] = act.groupby("a").month.nunique()
    out["last_active_at"] = act.groupby("a").t.max()
    out["active_months"] = out.active_months.fillna(0).astype(int)
    out["churned"] = out.last_active_at.isna() | (out.last_active_at < END - timedelta(days=30))
    return out


def test_funnel_matches_pandas() -> None:
    con, agents, events, orders = _world()
    n = build_agent_funnel(con, Settings())
    got = con.execute("SELECT * FROM marts.agent_funnel ORDER BY agent_id").df().set_index("agent_id")
    want = _expected_funnel(agents, events, orders)
    assert n == len(want) == 7
    for col in ("first_share_at", "first_click_at", "first_sale_at", "last_active_at"):
        pd.testing.assert_series_equal(got[col], want[col].reindex(got.index), check_names=False,
                                       check_dtype=False)
    assert (got.active_months == want.active_months.reindex(got.index)).all()
    assert (got.churned == want.churned.reindex(got.index)).all()
    days = (want.first_sale_at - want.joined_at).dt.total_seconds() / 86400
    assert got.days_to_first_sale.round(3).fillna(-1).tolist() == days.reindex(got.index).round(3).fillna(-1).tolist()
    assert (got.joined_at_source == "agents_file").all()
    assert got.loc["r0", "stage"] == "shared" and got.loc["r1", "stage"] == "clicked"
    assert got.loc["r4", "stage"] == "sold" and got.loc["r5", "stage"] == "joined"
    ok, text = check_funnel_order(con)
    assert ok, text
    build_agent_cohorts(con, Settings())
    ok, text = check_cohort_bounds(con)
    assert ok, text


def test_cohorts_and_upline_quality_match_pandas() -> None:
    con, agents, events, orders = _world()
    s = Settings()
    build_agent_funnel(con, s)
    build_agent_cohorts(con, s)
    build_upline_quality(con, s)
    f = _expected_funnel(agents, events, orders)
    shares = events[events.event_type == "share"]
    sales = orders.dropna(subset=["share_id"]).merge(
        shares[["share_id", "actor_id"]].rename(columns={"actor_id": "a"}), on="share_id")
    act = pd.concat([shares.rename(columns={"actor_id": "a", "occurred_at": "t"})[["a", "t"]],
                     sales.rename(columns={"ordered_at": "t"})[["a", "t"]]])
    act["month"] = act.t.dt.to_period("M")
    cohort = f.joined_at.dt.to_period("M")
    act["k"] = [(m - cohort[a]).n for a, m in zip(act.a, act.month, strict=True)]
    got = con.execute("SELECT * FROM marts.agent_cohorts").df()
    for row in got.itertuples():
        members = cohort[cohort == pd.Period(row.cohort_month, "M")].index
        active = act[act.a.isin(members) & (act.k == row.months_since_join)].a.nunique()
        assert row.cohort_size == len(members)
        assert row.active_agents == active
        assert row.retention == pytest.approx(active / len(members))
        gmv = sales[sales.a.isin(members)
                    & (sales.ordered_at.dt.to_period("M") - pd.Period(row.cohort_month, "M")).map(
                        lambda d: d.n) .eq(row.months_since_join)].amount.sum()
        assert float(row.gmv) == pytest.approx(gmv)
    # every observable cell is there: cohorts Jan and Feb, months up to August
    assert set(zip(got.cohort_month.astype(str), got.months_since_join, strict=True)) >= {("2026-01-01", 7), ("2026-02-01", 6)}
    q = con.execute("SELECT * FROM marts.upline_quality").df()
    assert q.upline_id.tolist() == ["u"]
    recruits = f.drop(index="u")
    assert q.recruits[0] == 6 and q.activated[0] == recruits.first_sale_at.notna().sum() == 3
    assert q.activation_rate[0] == pytest.approx(0.5)
    k3 = act[(act.k == 3) & act.a.isin(recruits.index)].a.nunique()
    assert q.retained[0] == k3 and q.retention_eligible[0] == 6
    assert q.retention_rate[0] == pytest.approx(k3 / 6)
    # fewer than min_recruits: no row
    build_upline_quality(con, Settings(min_recruits=7))
    assert con.execute("SELECT count(*) FROM marts.upline_quality").fetchone()[0] == 0


def test_without_agents_file_sharers_are_agents_joined_at_first_share() -> None:
    con, _agents, events, _orders = _world(with_agents=False)
    build_agent_funnel(con, Settings())
    got = con.execute("SELECT agent_id, joined_at, joined_at_source, first_share_at FROM marts.agent_funnel").df()
    assert set(got.agent_id) == set(events[events.event_type == "share"].actor_id)
    assert (got.joined_at_source == "first_share").all() and (got.joined_at == got.first_share_at).all()
