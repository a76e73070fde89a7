"""Settings: defaults, file and environment overrides, clear errors."""

from __future__ import annotations

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
