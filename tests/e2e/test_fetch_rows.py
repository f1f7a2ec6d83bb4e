"""FETCH rendered from rows and FETCH rendered from records send the same octets (issue 17).

The row path (imapd/fetch_rows.py) serves imaptest's FETCH mix; adding BODY.PEEK[TEXT] to
the same attribute list sends the FETCH down the record path (a section the rows do not
hold). Over odd messages (8-bit and UTF-8 headers, NUL octets, folded and colon-less
fields, nested MIME), on both stores, each mix's answer must equal the record path's with
its BODY[TEXT] item cut off: EXAMINEd (non-PEEK bodies set no \\Seen there, RFC 3501
§6.3.2), with UTF8=ACCEPT, under UIDONLY (RFC 9586), and selected (\\Recent shown).
"""

from __future__ import annotations

import re

from tests.helpers.server import RunningServer
from tests.protocol.test_fetch_rows import MESSAGES_ODD
from tests.rawclient import RawClient

BOTH_BACKENDS = True

MIXES = [
    "UID FLAGS ENVELOPE INTERNALDATE",
    "BODY BODYSTRUCTURE RFC822.SIZE",
    "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)] ENVELOPE",
    "FLAGS BODY.PEEK[HEADER.FIELDS.NOT (TO X-NO-COLON)] UID",
    "BODY.PEEK[HEADER]<2.10> RFC822.HEADER BODYSTRUCTURE",
    "BODY.PEEK[] RFC822.SIZE",
    "BODY[]<3.9> INTERNALDATE BODY[HEADER.FIELDS (SUBJECT)]",
    "RFC822 FLAGS",
]
_TAIL = re.compile(rb" BODY\[TEXT\] \{(\d+)\}\r\n")


def _session(server: RunningServer, setup: list[str]) -> RawClient:
    c = server.raw()
    for i, line in enumerate(setup):
        c.ok(f"s{i}", line)
    return c


def _answers(c: RawClient, fetch: str) -> list[bytes]:
    c.line("f " + fetch)
    out: list[bytes] = []
    while not (resp := c.response_bytes()).startswith(b"f "):
        out.append(resp)
    assert resp.startswith(b"f OK"), resp
    return out


def _without_text(resp: bytes) -> bytes:
    """``resp`` less its last item, `` BODY[TEXT] {n}\\r\\n<n octets>``."""
    for m in reversed(list(_TAIL.finditer(resp))):
        if m.end() + int(m.group(1)) + 1 == len(resp):
            return resp[: m.start()] + b")"
    raise AssertionError(resp)


def test_row_and_record_paths_send_the_same(server: RunningServer) -> None:
    c = server.raw()
    stored = 0
    for i, message in enumerate(MESSAGES_ODD):
        c.send(b"a%d APPEND INBOX (\\Flagged $Work) {%d+}\r\n" % (i, len(message)) + message)
        c.send(b"\r\n")
        stored += c.until_tagged(f"a{i}")[-1].startswith(f"a{i} OK")
    c.close()
    assert stored >= len(MESSAGES_ODD) - 2  # the empty message may be refused
    sessions = [
        ["EXAMINE INBOX"],
        ["ENABLE UTF8=ACCEPT", "EXAMINE INBOX"],
        ["ENABLE UIDONLY", "EXAMINE INBOX"],
        ["SELECT INBOX"],  # claims \Recent; only PEEK mixes (a \Seen set would differ)
    ]
    for setup in sessions:
        c = _session(server, setup)
        fetch = "UID FETCH 1:*" if "UIDONLY" in setup[0] else "FETCH 1:*"
        for mix in MIXES:
            if setup[0] == "SELECT INBOX" and ("BODY[" in mix or "RFC822 " in mix + " "):
                continue
            rows = _answers(c, f"{fetch} ({mix})")
            records = _answers(c, f"{fetch} ({mix} BODY.PEEK[TEXT])")
            assert len(rows) == stored, (setup, mix)
            assert rows == [_without_text(r) for r in records], (setup, mix)
            if setup[0] == "SELECT INBOX":
                assert all(b"\\Recent" in r for r in rows if b"FLAGS" in r), mix
        if setup[0] == "EXAMINE INBOX":  # RFC822 and BODY[] set no \Seen there
            assert all(b"\\Seen" not in r for r in _answers(c, "FETCH 1:* FLAGS"))
        c.close()
