"""XAPPLEPUSHSERVICE end to end: advertised only with aps_topic, after login; the reply and
the ApplePushRegistered change."""

from __future__ import annotations

import imaplib
import json
from typing import Any

import imapclient
import pytest

from tests.helpers.server import PASSWORD, RunningServer

TOPIC = "com.apple.mail.XServer.0123abcd"
REGISTER = (
    "aps-version 2 aps-account-id 0715A26B-CA09-4730-A419-793000CA982E aps-device-token"
    " 2918390218931890821908309283098109381029309829018310983092892829 aps-subtopic"
    ' com.apple.mobilemail mailboxes (INBOX "Notes" Gone)'
)


# imaplib's xatom would register the command for the current state only.
imaplib.Commands.setdefault("XAPPLEPUSHSERVICE", ("AUTH", "SELECTED"))


def login(running: RunningServer) -> imaplib.IMAP4:
    c = imaplib.IMAP4(running.host, running.port, timeout=10)
    c.login("alice", PASSWORD)
    return c


def test_advertised_only_after_login_with_topic(server_factory: Any) -> None:
    running: RunningServer = server_factory(aps_topic=TOPIC)
    running.add_user("alice")
    c = imapclient.IMAPClient(running.host, port=running.port, ssl=False, timeout=10)
    assert b"XAPPLEPUSHSERVICE" not in c.capabilities()
    c.login("alice", PASSWORD)
    assert b"XAPPLEPUSHSERVICE" in c.capabilities()
    c.logout()


def test_not_advertised_nor_accepted_without_topic(server: RunningServer) -> None:
    c = login(server)
    assert "XAPPLEPUSHSERVICE" not in c.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):
        c.xatom("XAPPLEPUSHSERVICE", REGISTER)
    c.logout()


def test_register(server_factory: Any) -> None:
    running: RunningServer = server_factory(aps_topic=TOPIC)
    running.add_user("alice")
    c = login(running)
    c.create("Notes")
    typ, data = c.xatom("XAPPLEPUSHSERVICE", REGISTER)
    assert typ == "OK", data
    assert c.untagged_responses.pop("XAPPLEPUSHSERVICE") == [
        f'aps-version "2" aps-topic "{TOPIC}"'.encode()
    ]
    c.select("INBOX")  # also allowed in the selected state
    typ, _ = c.xatom("XAPPLEPUSHSERVICE", "aps-version 1 aps-account-id A aps-device-token T")
    assert typ == "OK"
    typ, _ = c.xatom(
        "XAPPLEPUSHSERVICE",
        "aps-version 3 aps-account-id A aps-device-token T aps-subtopic s mailboxes ()",
    )
    assert typ == "NO"
    with pytest.raises(imaplib.IMAP4.error, match="Missing"):
        c.xatom("XAPPLEPUSHSERVICE", "aps-version 2 aps-account-id A")
    c.logout()
    rows = running.call(running.server.store.change_log())
    pushes = [json.loads(p) for _, kind, p in rows if kind == "ApplePushRegistered"]
    assert [p["aps_version"] for p in pushes] == [2, 1]
    first = pushes[0]
    assert first["user"] == "alice"
    assert first["account_id"] == "0715A26B-CA09-4730-A419-793000CA982E"
    assert first["device_token"].startswith("29183902")
    assert first["subtopic"] == "com.apple.mobilemail"
    assert first["mailboxes"] == ["INBOX", "Notes"]  # Gone does not exist
    assert first["origin"]["service"] == "imap" and first["origin"]["user"] == "alice"
    assert pushes[1]["mailboxes"] == ["INBOX"]
    devices = running.call(running.server.store.push_devices())
    assert len(devices) == 2


def test_keys_are_astrings_quoted_or_not(server_factory: Any) -> None:
    """Cyrus (getastring) and Dovecot read XAPPLEPUSHSERVICE's keys as astrings: a client
    that quotes them ("aps-version" "2" ...) registers as one that does not (was BAD)."""
    running: RunningServer = server_factory(aps_topic=TOPIC)
    running.add_user("alice")
    c = login(running)
    typ, data = c.xatom(
        "XAPPLEPUSHSERVICE",
        '"aps-version" "2" "aps-account-id" "A-1" "aps-device-token" "T1" "aps-subtopic"'
        ' "com.apple.mobilemail" "mailboxes" ("INBOX")',
    )
    assert typ == "OK", data
    c.logout()
    rows = running.call(running.server.store.change_log())
    [push] = [json.loads(p) for _, kind, p in rows if kind == "ApplePushRegistered"]
    assert (push["aps_version"], push["account_id"], push["device_token"]) == (2, "A-1", "T1")
    assert push["mailboxes"] == ["INBOX"]
