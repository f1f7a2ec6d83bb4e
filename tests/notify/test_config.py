"""The event options in the TOML file: Cyrus's names, defaults, errors naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapd.config import ConfigError, load


def test_defaults_are_the_examples() -> None:
    config = load(None)
    assert config.event_notifier == "log"
    assert "messageContent" not in config.event_extra_params
    assert {"timestamp", "vnd.cmu.sessionId", "bodyStructure"} <= set(config.event_extra_params)
    assert config.event_exclude_specialuse == ("\\Junk",)
    assert "applepushservice" in config.event_groups


def test_toml_and_flag_override(tmp_path: Path) -> None:
    path = tmp_path / "imapd.toml"
    path.write_text(
        'servername = "imap.example.org"\nnotifysocket = "/run/a"\n'
        'event_groups = "message flags"\nevent_extra_params = ["timestamp", "messageContent"]\n'
        'event_exclude_flags = "$Junk"\nevent_exclude_specialuse = "ALL"\n'
        'event_content_inclusion_mode = "header"\nevent_content_size = 100\n'
        'event_notifier = "external"\n'
    )
    config = load(path, notify_socket="/run/b")
    assert config.notify_socket == "/run/b"
    assert config.event_groups == ("message", "flags")
    assert config.event_extra_params == ("timestamp", "messageContent")
    assert config.event_exclude_flags == ("$Junk",)
    assert config.event_exclude_specialuse == ("ALL",)
    assert (config.event_content_inclusion_mode, config.event_content_size) == ("header", 100)
    assert config.event_notifier == "external"


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ('event_groups = "message bogus"', "event_groups"),
        ('event_extra_params = "uidnext nope"', "event_extra_params"),
        ('event_content_inclusion_mode = "all"', "event_content_inclusion_mode"),
        ("event_content_size = -1", "event_content_size"),
        ("event_exclude_flags = 3", "event_exclude_flags"),
        ("write_timeout = 0", "write_timeout"),
        ("literal_timeout = -1", "literal_timeout"),
        ("[limits]\nliteral_spool_size = 0", "literal_spool_size"),
    ],
)
def test_errors_name_the_option(tmp_path: Path, line: str, option: str) -> None:
    path = tmp_path / "imapd.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=option):
        load(path)
