"""IMAP4rev2 (RFC 9051) and UIDONLY (RFC 9586) through a real server: the transcripts of
tests/transcripts/rev2/ and real clients (imaplib, imapclient). IMAP4rev2 is advertised
only while `imapd.rev2.ADVERTISE_IMAP4REV2` is True (it needs BINARY): these tests set it
for their server (in-process, so the flag is read by it), either way."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from imapd import rev2
from tests.helpers.interop import message
from tests.helpers.server import PASSWORD, RunningServer
from tests.helpers.transcript import run_transcript
from tests.rawclient import RawClient

HERE = Path(__file__).parent.parent / "transcripts" / "rev2"
TRANSCRIPTS = sorted(HERE.glob("*.imap"))


@pytest.fixture
def advertised(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(rev2, "ADVERTISE_IMAP4REV2", True)
    yield


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(advertised: None, server: RunningServer, path: Path) -> None:
    run_transcript(server, path)


def _caps(client: RawClient, tag: str) -> list[str]:
    line = client.ok(tag, "CAPABILITY")[0]
    assert line.startswith("* CAPABILITY "), line
    return line.split()[2:]


def test_capability_unchanged_by_enable(advertised: None, server: RunningServer) -> None:
    """RFC 9051 §6.3.1: "The server MUST NOT change the CAPABILITY list as a result of
    executing ENABLE"; Appendix A: IMAP4rev1 and IMAP4rev2 both advertised."""
    c = server.raw()
    before = _caps(c, "a1")
    assert {"IMAP4rev1", "IMAP4rev2", "UIDONLY"} <= set(before)
    assert "LITERAL+" in before and "LITERAL-" not in before  # RFC 7888 §5: never both
    assert c.ok("a2", "ENABLE IMAP4rev2 UIDONLY")[0] == "* ENABLED IMAP4rev2 UIDONLY"
    assert _caps(c, "a3") == before
    c.close()


def test_not_advertised_not_enabled(monkeypatch: pytest.MonkeyPatch, server: RunningServer) -> None:
    """Behind its flag (imapd/rev2.py), IMAP4rev2 is neither advertised nor ENABLE-able
    (RFC 9051 §6.3.1: an argument the server does not support is ignored), and SEARCH
    keeps its IMAP4rev1 answer."""
    monkeypatch.setattr(rev2, "ADVERTISE_IMAP4REV2", False)
    c = server.raw()
    assert "IMAP4rev2" not in _caps(c, "a1")
    assert c.ok("a2", "ENABLE IMAP4rev2")[0] == "* ENABLED"
    c.append("a3", "INBOX", "Subject: x\r\n\r\nx\r\n")
    c.ok("a4", "SELECT INBOX")
    assert c.ok("a5", "SEARCH ALL")[0] == "* SEARCH 1"
    c.close()


def test_nonsync_literal_above_4096(advertised: None, server: RunningServer) -> None:
    """RFC 9051 §4.3: non-synchronizing literals are LITERAL-'s "unless otherwise specified
    in an IMAP extension"; LITERAL+ (advertised) is such an extension: 5000 octets pass."""
    c = server.raw()
    c.ok("a1", "ENABLE IMAP4rev2")
    body = "Subject: big\r\n\r\n" + "x" * 5000 + "\r\n"
    c.append("a2", "INBOX", body)
    assert c.ok("a3", "STATUS INBOX (MESSAGES SIZE)")[0] == (
        f'* STATUS "INBOX" (MESSAGES 1 SIZE {len(body)})'
    )
    c.close()


def test_notify_messagenew_uidonly(advertised: None, server: RunningServer) -> None:
    """RFC 9051 §7.5.2 (Appendix E item 21): an unsolicited FETCH carries UID; RFC 9586
    §3.6: under UIDONLY it is a UIDFETCH, and an expunge a VANISHED (RFC 5465 §5.2-5.3)."""
    c = server.raw()
    c.ok("a1", "ENABLE IMAP4rev2 UIDONLY")
    c.ok("a2", "SELECT INBOX")
    c.ok("a3", "NOTIFY SET (SELECTED (MessageNew (FLAGS) MessageExpunge FlagChange))")
    other = server.raw()
    other.append("b1", "INBOX", "Subject: n\r\n\r\nn\r\n")
    assert c.response() == "* 1 EXISTS"
    assert c.response() == "* 1 UIDFETCH (FLAGS () UID 1)"
    other.ok("b2", "SELECT INBOX")
    other.ok("b3", "STORE 1 +FLAGS (\\Deleted)")
    assert c.response() == "* 1 UIDFETCH (UID 1 FLAGS (\\Deleted))"
    other.ok("b4", "EXPUNGE")
    assert c.response() == "* VANISHED 1"
    c.close()
    other.close()


def test_imaplib_round_trip(advertised: None, server: RunningServer) -> None:
    """imaplib (stdlib) with ENABLE IMAP4rev2 through the real server: SELECT carries LIST
    and no RECENT (RFC 9051 §6.3.2), SEARCH answers ESEARCH (§6.4.4), FETCH FLAGS has no
    \\Recent, EXPUNGE, MOVE with COPYUID, STATUS DELETED."""
    c = imaplib.IMAP4(server.host, server.port, timeout=15)
    data: list[Any]
    try:
        assert c.login("alice", PASSWORD)[0] == "OK"
        assert "IMAP4REV2" in c.capabilities
        typ, _ = c.enable("IMAP4rev2")
        assert typ == "OK" and c.response("ENABLED") == ("ENABLED", [b"IMAP4rev2"])
        assert c.create("Rev2")[0] == "OK"
        for n in range(3):
            assert c.append("Rev2", None, None, message(f"rev2 {n}"))[0] == "OK"
        typ, data = c.select("Rev2")
        assert (typ, data) == ("OK", [b"3"])
        assert c.response("LIST") == ("LIST", [b'(\\HasNoChildren) "/" "Rev2"'])
        assert c.response("RECENT") == ("RECENT", [None])
        typ, data = c.search(None, "ALL")
        assert (typ, data) == ("OK", [None])  # no SEARCH response...
        esearch = c.response("ESEARCH")[1][0]
        assert isinstance(esearch, bytes)
        assert esearch.endswith(b") ALL 1:3") and esearch.startswith(b'(TAG "')  # ...ESEARCH
        typ, data = c.fetch("1:3", "(FLAGS)")
        assert typ == "OK" and data == [b"1 (FLAGS ())", b"2 (FLAGS ())", b"3 (FLAGS ())"]
        assert c.store("2", "+FLAGS", r"(\Deleted)")[0] == "OK"
        typ, data = c.status("Rev2", "(MESSAGES DELETED)")
        assert typ == "OK" and data == [b'"Rev2" (MESSAGES 3 DELETED 1)']
        assert c.expunge() == ("OK", [b"2"])
        typ, data = c._simple_command("UID", "MOVE", "3", "Archive")
        assert typ == "OK"
        assert c.response("OK")[1][0].startswith(b"[COPYUID ")
        assert c.close()[0] == "OK"
    finally:
        c.logout()


def test_imapclient_round_trip(advertised: None, server: RunningServer) -> None:
    """imapclient with ENABLE IMAP4rev2: folder listing, SELECT, FETCH and flags."""
    client = IMAPClient(server.host, port=server.port, ssl=False, timeout=15)
    try:
        client.login("alice", PASSWORD)
        assert b"IMAP4REV2" in client.capabilities()
        assert client.enable("IMAP4rev2") == [b"IMAP4rev2"]
        client.append("INBOX", message("imapclient rev2"), flags=[b"\\Flagged"])
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] == 1 and b"RECENT" not in info
        fetched = client.fetch([1], ["FLAGS", "RFC822.SIZE"])
        assert fetched[1][b"FLAGS"] == (b"\\Flagged",)
        client.add_flags([1], [b"$Forwarded"])  # RFC 9051 §2.3.2 keywords (item 15)
        assert set(client.get_flags([1])[1]) == {b"\\Flagged", b"$Forwarded"}
        assert client.folder_status("INBOX", ["MESSAGES", "SIZE"])[b"MESSAGES"] == 1
    finally:
        client.logout()
