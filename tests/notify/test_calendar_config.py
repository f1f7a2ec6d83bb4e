"""The calendar options (docs/calendar.md): ``calendar_alarm_lookback`` and the test-only
``calendar_test_clock``, from TOML and the environment, and refused when invalid."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.config import ConfigError, load


def test_defaults() -> None:
    config = load(None)
    assert config.calendar_alarm_lookback == 3600.0
    assert config.calendar_test_clock is None


def test_toml_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "imapd.toml"
    path.write_text('calendar_alarm_lookback = 600\ncalendar_test_clock = "2026-03-02T09:00Z"\n')
    config = load(path)
    assert (config.calendar_alarm_lookback, config.calendar_test_clock) == (
        600.0,
        "2026-03-02T09:00Z",
    )
    config = load(None, {"IMAPD_CALENDAR_ALARM_LOOKBACK": "120"})
    assert config.calendar_alarm_lookback == 120.0


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("calendar_alarm_lookback = -1", "calendar_alarm_lookback"),
        ('calendar_alarm_lookback = "1h"', "calendar_alarm_lookback"),
        ('calendar_test_clock = "2026-03-02T09:00"', "calendar_test_clock"),  # no offset
        ('calendar_test_clock = "tomorrow"', "calendar_test_clock"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, line: str, option: str) -> None:
    path = tmp_path / "imapd.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=option):
        load(path)
