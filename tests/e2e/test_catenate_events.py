"""A CATENATE APPEND emits the same MessageAppend as a plain APPEND of the same octets
(RFC 5423 §4.1: the event is about the message appended, not how it was sent), and a
failed one (BADURL) none."""

from __future__ import annotations

from typing import Any

from tests.e2e.messages import SIMPLE
from tests.helpers.server import PASSWORD
from tests.notify.listener import Listener
from tests.rawclient import RawClient

SERVERNAME = "imap.example.org"
# Fields that differ between two appends of the same message, by design.
VARYING = {
    "uri",
    "modseq",
    "timestamp",
    "messages",
    "vnd.cmu.unseenMessages",
    "uidnext",
    "vnd.cmu.sessionId",
    "clientPort",
}


def test_catenate_append_event_equals_plain_append(server_factory: Any) -> None:
    lis = Listener()
    try:
        server = server_factory(notify_socket=lis.path, servername=SERVERNAME)
        server.add_user("alice")
        assert [e["event"] for e in lis.take(6)] == ["MailboxCreate"] * 6
        c = RawClient.connect(server.host, server.port)
        c.login("alice", PASSWORD)
        assert lis.next()["event"] == "Login"
        c.send(f"a1 APPEND INBOX {{{len(SIMPLE)}+}}\r\n".encode() + SIMPLE + b"\r\n")
        assert c.until_tagged("a1")[-1].startswith("a1 OK")
        plain = lis.next()
        head = SIMPLE[: SIMPLE.index(b"\r\n\r\n")]  # then its TEXT section by URL
        c.send(
            f"a2 APPEND INBOX CATENATE (TEXT {{{len(head) + 4}+}}\r\n".encode()
            + head
            + b'\r\n\r\n URL "/INBOX/;UID=1/;SECTION=TEXT")\r\n'
        )
        assert c.until_tagged("a2")[-1].startswith("a2 OK")
        built = lis.next()
        assert plain["event"] == built["event"] == "MessageAppend"
        assert built["uri"].endswith("/;UID=2") and built["messages"] == 2
        assert {k: v for k, v in plain.items() if k not in VARYING} == {
            k: v for k, v in built.items() if k not in VARYING
        }
        out = c.command("a3", 'APPEND INBOX CATENATE (URL "/INBOX/;UID=9")')
        assert out[-1].startswith("a3 NO [BADURL ")
        c.command("a4", "LOGOUT")
        assert lis.next()["event"] == "Logout"  # nothing for the failed APPEND before it
    finally:
        lis.cleanup()
