"""METADATA (RFC 5464) end to end: imaplib sends the commands (neither it nor imapclient has
METADATA helpers) and imapclient's parser reads the replies; raw sockets where octets matter.
The RFC's own examples are in tests/transcripts/metadata_*.imap."""

from __future__ import annotations

import imaplib
from pathlib import Path
from typing import Any

import imapclient
from imapclient.response_parser import parse_response

from store.changes import MetadataChanged, from_json
from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

# imaplib refuses commands it does not know; RFC 5464 §4.2-4.3: authenticated or selected.
for _name in ("GETMETADATA", "SETMETADATA"):
    imaplib.Commands.setdefault(_name, ("AUTH", "SELECTED"))


def command(c: imapclient.IMAPClient, name: str, *args: str) -> tuple[str, str, list[Any]]:
    """(status, tagged text, parsed METADATA responses)."""
    imap = c._imap
    # imaplib also files "[METADATA ...]" response codes under METADATA: start clean.
    imap.untagged_responses.pop("METADATA", None)
    typ, data = imap._simple_command(name, *args)
    _, lines = imap._untagged_response(typ, [None], "METADATA")
    # ...and the tagged reply's code: data responses start with the (quoted) mailbox name.
    data_lines = [ln for ln in lines if ln and (ln if isinstance(ln, bytes) else ln[0])[:1] == b'"']
    parsed = [parse_response([ln] if isinstance(ln, bytes) else list(ln)) for ln in data_lines]
    text = data[-1].decode() if data and isinstance(data[-1], bytes) else ""
    return typ, text, parsed


def entries(parsed: list[Any]) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for _mailbox, values in parsed:
        out.update(zip(values[::2], values[1::2], strict=True))
    return out


def test_capabilities(server: RunningServer) -> None:
    c = client(server)
    assert {b"METADATA", b"METADATA-SERVER"} <= set(c.capabilities())
    c.logout()


def test_shared_server_entries_by_admin_seen_by_all(server: RunningServer) -> None:
    server.call(server.server.store.create_user("root", PASSWORD, admin=True))
    root, alice = client(server, "root"), client(server)
    typ, _, _ = command(root, "SETMETADATA", '""', '(/shared/comment "Shared comment")')
    assert typ == "OK"
    typ, _, parsed = command(alice, "GETMETADATA", '""', "/shared/comment")
    assert typ == "OK"
    assert parsed == [(b"", (b"/shared/comment", b"Shared comment"))]
    typ, text, _ = command(alice, "SETMETADATA", '""', '(/shared/comment "mine now")')
    assert typ == "NO" and "[NOPERM]" in text
    typ, text, _ = command(root, "SETMETADATA", '""', '(/shared/admin "mailto:r@example.org")')
    assert typ == "NO" and "[NOPERM]" in text
    root.logout()
    alice.logout()


def test_mailbox_entries_in_selected_state_and_change_log(server: RunningServer) -> None:
    c = client(server)
    c.create_folder("Work")
    c.select_folder("Work")
    typ, _, _ = command(
        c,
        "SETMETADATA",
        "Work",
        '(/private/vendor/vendor.example/color "blue" /shared/comment "Work stuff")',
    )
    assert typ == "OK"
    typ, text, parsed = command(c, "GETMETADATA", "(DEPTH infinity)", "Work", "(/private /shared)")
    assert typ == "OK", text
    assert entries(parsed) == {
        b"/private/vendor/vendor.example/color": b"blue",
        b"/shared/comment": b"Work stuff",
    }
    rows = server.call(server.server.store.change_log())
    changes = [
        from_json(kind, seq, payload) for seq, kind, payload in rows if kind == "MetadataChanged"
    ]
    assert len(changes) == 1
    [change] = changes
    assert isinstance(change, MetadataChanged)
    assert change.user == "alice" and change.mailbox is not None
    assert change.mailbox.name == "Work"
    assert change.entries == ("/private/vendor/vendor.example/color", "/shared/comment")
    c.logout()


def test_limits(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory(metadata_max_size=10, metadata_max_entries=3, metadata_private=True)
    srv.add_user("alice")
    c = client(srv)
    typ, text, _ = command(c, "SETMETADATA", "INBOX", '(/shared/a "0123456789A")')
    assert (typ, text.split("]")[0]) == ("NO", "[METADATA MAXSIZE 10")
    typ, _, _ = command(c, "SETMETADATA", "INBOX", '(/shared/a "1" /shared/b "2" /private/c "3")')
    assert typ == "OK"
    typ, text, _ = command(c, "SETMETADATA", "INBOX", '(/shared/b "two" /shared/d "4")')
    assert (typ, text.split("]")[0]) == ("NO", "[METADATA TOOMANY")
    # nothing of the refused command was set (RFC 5464 §4.3)
    _, _, parsed = command(c, "GETMETADATA", "INBOX", "(/shared/b /shared/d)")
    assert entries(parsed) == {b"/shared/b": b"2", b"/shared/d": None}
    typ, text, parsed = command(c, "GETMETADATA", "(MAXSIZE 0)", "INBOX", "/shared/a")
    assert typ == "OK" and text.startswith("[METADATA LONGENTRIES 1]") and parsed == []
    c.logout()
    srv2 = server_factory(metadata_private=False, data_dir=tmp_path / "private-off")
    srv2.add_user("alice")
    c = client(srv2)
    typ, text, _ = command(c, "SETMETADATA", "INBOX", '(/shared/a "1" /private/c "3")')
    assert typ == "NO" and text.startswith("[METADATA NOPRIVATE]")
    c.logout()


def test_binary_value_round_trip(server: RunningServer) -> None:
    raw = RawClient.connect(server.host, server.port)
    raw.login("alice", PASSWORD)
    value = b"\x00\x01\xff\r\nbinary"
    raw.send(b"a SETMETADATA INBOX (/private/blob ~{%d+}\r\n%s)\r\n" % (len(value), value))
    assert raw.until_tagged("a")[-1] == "a OK SETMETADATA completed"
    raw.send(b"b GETMETADATA INBOX /private/blob\r\n")
    assert raw.response_bytes() == (
        b'* METADATA "INBOX" (/private/blob ~{%d}\r\n%s)' % (len(value), value)
    )
    assert raw.response() == "b OK GETMETADATA completed"
    # not UTF-8, no NUL: a plain literal
    raw.send(b"c SETMETADATA INBOX (/private/latin1 {3+}\r\n\xe9t\xe9)\r\n")
    assert raw.until_tagged("c")[-1].startswith("c OK")
    raw.send(b"d GETMETADATA INBOX /private/latin1\r\n")
    assert raw.response_bytes() == b'* METADATA "INBOX" (/private/latin1 {3}\r\n\xe9t\xe9)'
    raw.close()
