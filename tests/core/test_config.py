"""Settings: defaults, file and environment overrides, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sharegraph.core.config import Settings


def test_defaults_match_the_documented_business_rules() -> None:
    s = Settings()
    assert s.attribution_window_days == 7
    assert s.commission_rate == 0.05
    assert s.red_packet_yuan == 2.0
    assert s.timezone == "Asia/Shanghai"


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "sharegraph.toml"
    cfg.write_text("[sharegraph]\nattribution_window_days = 3\ndownstream_decay = 0.25\n", encoding="utf-8")
    monkeypatch.setenv("SHAREGRAPH_DOWNSTREAM_DECAY", "0.75")
    s = Settings.load(cfg)
    assert s.attribution_window_days == 3
    assert s.downstream_decay == 0.75


def test_unknown_or_mistyped_setting_names_the_source(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sharegraph]\nattribution_window = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.toml: unknown setting 'attribution_window'"):
        Settings.load(cfg)
    cfg.write_text("[sharegraph]\nattribution_window_days = 'a week'\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'attribution_window_days' = 'a week' is not a int"):
        Settings.load(cfg)


def test_every_setting_is_a_field_with_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths, the inbox and the daily partitions are settings too; their variables keep the
    names they had (SHAREGRAPH_<FIELD>)."""
    for name, value in {"STATE": "/srv/sg", "WAREHOUSE": "/srv/wh.duckdb", "INPUT": "/srv/in",
                        "REPORTS": "/srv/rep", "INBOX": "/srv/inbox", "ARCHIVE": "/srv/arch",
                        "REJECTED": "/srv/rej", "INBOX_SETTLE_S": "0", "DAILY_START": "2025-01-01",
                        "TIMEZONE": "UTC"}.items():
        monkeypatch.setenv(f"SHAREGRAPH_{name}", value)
    s = Settings.load()
    assert (s.state, s.warehouse, s.input, s.reports) == ("/srv/sg", "/srv/wh.duckdb", "/srv/in", "/srv/rep")
    assert (s.inbox, s.archive, s.rejected) == ("/srv/inbox", "/srv/arch", "/srv/rej")
    assert (s.inbox_settle_s, s.daily_start, s.timezone) == (0.0, "2025-01-01", "UTC")


def test_paths_follow_the_settings(tmp_path: Path) -> None:
    from sharegraph.core import paths

    s = Settings().with_values({"state": str(tmp_path / "st"), "archive": str(tmp_path / "a")})
    assert paths.state_dir(s) == tmp_path / "st"
    assert paths.warehouse(s) == paths.default_warehouse(s) == tmp_path / "st" / "sharegraph.duckdb"
    assert paths.input_dir(s) == paths.default_input_dir(s) == tmp_path / "st" / "demo-input"
    assert paths.reports_dir_for(tmp_path / "x" / "wh.duckdb", s) == tmp_path / "x" / "reports"
    assert (paths.inbox_dir(s), paths.archive_dir(s)) == (tmp_path / "st" / "inbox", tmp_path / "a")
    s = s.with_values({"warehouse": str(tmp_path / "w.duckdb"), "reports": str(tmp_path / "r")})
    assert paths.warehouse(s) == tmp_path / "w.duckdb"
    assert paths.default_warehouse(s) == tmp_path / "st" / "sharegraph.duckdb"  # the demo's
    assert paths.reports_dir_for(tmp_path / "x" / "wh.duckdb", s) == tmp_path / "r"
    assert paths.input_dir(s.with_values({"input": "s3a://bucket/exports"})) == "s3a://bucket/exports"
    assert paths.input_dir(s.with_values({"input": str(tmp_path / "in")})) == tmp_path / "in"


def test_a_timezone_in_the_file_is_used_and_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "sharegraph.toml"
    cfg.write_text('[sharegraph]\ntimezone = "America/New_York"\n', encoding="utf-8")
    assert Settings.load(cfg).timezone == "America/New_York"
    cfg.write_text("[sharegraph]\ntimezone = \"Asia/Shanghai'; DROP TABLE x; --\"\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        Settings.load(cfg)
    assert str(info.value) == (f"{cfg}: timezone \"Asia/Shanghai'; DROP TABLE x; --\" is not a time "
                               "zone of the IANA database (e.g. Asia/Shanghai, UTC)")


@pytest.mark.parametrize("name, value, message", [
    ("timezone", "Mars/Olympus", "is not a time zone"),
    ("timezone", "../../etc/passwd", "is not a time zone"),
    ("daily_start", "2024-13-01", "is not a date (YYYY-MM-DD)"),
    ("inbox_settle_s", "-1", "is negative"),
    ("max_reject_rate", "1.5", "is not in 0..1"),
])
def test_bad_values_from_the_environment_name_it(name: str, value: str, message: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"SHAREGRAPH_{name.upper()}", value)
    with pytest.raises(ValueError, match=rf"^environment: {name}.*{re.escape(message)}"):
        Settings.load()


def test_settings_are_validated_however_they_are_made() -> None:
    with pytest.raises(ValueError, match="is not a time zone"):
        Settings(timezone="UTC'; SELECT 1; --")


def test_the_timezone_is_bound_not_pasted_into_sql(tmp_path: Path) -> None:
    """connect() sets the session zone with a parameter: a quote cannot end the statement."""
    import duckdb

    from sharegraph.core.warehouse import connect

    con = connect(tmp_path / "wh.duckdb", timezone="Asia/Shanghai")
    con.execute("CREATE TABLE x (a INTEGER)")
    con.close()
    with pytest.raises(duckdb.Error, match="Unknown TimeZone"):
        connect(tmp_path / "wh.duckdb", timezone="UTC'; DROP TABLE x; --")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM x").fetchone() == (0,)
    con.close()
