"""The Python IMAP libraries people script with: imapclient, imaplib, aioimaplib.

Each runs a user's session through the library's own high-level API (its parsing of our
answers is what is tested); the result is checked through a separate connection. tests/e2e
covers the protocol in depth with imapclient and imaplib; this is the library's-eye view.
"""

from __future__ import annotations

import asyncio
import imaplib
import time
from datetime import UTC, datetime
from typing import Any

from imapclient import imapclient as imapclient_module

from tests.helpers.interop import (
    imap,
    message,
    require_module,
    seed,
    server_folders,
    server_mailbox,
)
from tests.helpers.server import PASSWORD, RunningServer

UTF8_MESSAGE = (
    "From: Zoë <zoe@example.org>\r\n"
    "To: alice@example.org\r\n"
    "Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Crème brûlée à 8 heures.\r\n"
).encode()


def test_imapclient(server: RunningServer) -> None:
    seed(server, "INBOX", "ic 1", "ic 2", "ic 3")
    with imap(server) as c:
        assert b"IMAP4REV1" in c.capabilities()
        personal = c.namespace().personal
        assert personal[0][1] == "/"
        assert c.find_special_folder(imapclient_module.SENT) == "Sent"
        assert c.find_special_folder(imapclient_module.TRASH) == "Trash"

        # Non-ASCII and nested folder names (modified UTF-7 both ways).
        c.create_folder("Entwürfe/2026")
        names = [name for _f, _d, name in c.list_folders("Entwürfe")]
        assert "Entwürfe/2026" in names
        when = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
        c.append("Entwürfe/2026", UTF8_MESSAGE, flags=[b"\\Draft"], msg_time=when)
        status = c.folder_status("Entwürfe/2026", ["MESSAGES", "UNSEEN", "UIDNEXT"])
        assert status[b"MESSAGES"] == 1 and status[b"UNSEEN"] == 1

        info = c.select_folder("INBOX")
        assert info[b"EXISTS"] == 3
        uids = c.search(["SUBJECT", "ic"])
        assert len(uids) == 3
        fetched = c.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE"])
        subjects = sorted(fetched[u][b"ENVELOPE"].subject.decode() for u in uids)
        assert subjects == ["ic 1", "ic 2", "ic 3"]
        assert all(fetched[u][b"BODYSTRUCTURE"][0].lower() == b"text" for u in uids)

        c.add_flags(uids[:1], [b"\\Flagged", b"$Label1"])
        c.copy(uids[1:2], "Archive")
        c.move(uids[2:3], "Trash")
        assert sorted(c.search(["ALL"])) == uids[:2]

        c.select_folder("Entwürfe/2026", readonly=True)
        (draft,) = c.search(["ALL"])
        data = c.fetch([draft], ["ENVELOPE", "INTERNALDATE", "BODY.PEEK[TEXT]"])[draft]
        assert data[b"ENVELOPE"].subject == b"=?utf-8?q?Caf=C3=A9?="
        assert data[b"INTERNALDATE"].astimezone(UTC) == when
        assert data[b"BODY[TEXT]"].decode() == "Crème brûlée à 8 heures.\r\n"

    assert server_mailbox(server, "INBOX") == {"ic 1": {"\\Flagged", "$Label1"}, "ic 2": set()}
    assert server_mailbox(server, "Archive") == {"ic 2": set()}
    assert server_mailbox(server, "Trash") == {"ic 3": set()}


def test_imapclient_idle_sees_append_and_expunge(server: RunningServer) -> None:
    seed(server, "INBOX", "idle 1")
    with imap(server) as c, imap(server) as other:
        c.select_folder("INBOX")
        c.idle()
        other.append("INBOX", message("idle 2"))
        responses = c.idle_check(timeout=10)
        assert (2, b"EXISTS") in responses
        other.select_folder("INBOX")
        other.delete_messages(other.search(["SUBJECT", "idle 1"]))
        other.expunge()
        # The \Deleted flag change and the EXPUNGE are two commits: they may arrive in two
        # reads, and idle_check returns after the first.
        responses = []
        deadline = time.monotonic() + 10
        while (1, b"EXPUNGE") not in responses and time.monotonic() < deadline:
            responses += c.idle_check(timeout=max(0.1, deadline - time.monotonic()))
        assert (1, b"EXPUNGE") in responses
        c.idle_done()
        assert c.search(["ALL"]) != []
        assert c.noop()[0].startswith(b"NOOP")


def test_imaplib(server: RunningServer) -> None:
    c = imaplib.IMAP4(server.host, server.port, timeout=15)
    data: list[Any]
    try:
        typ, _ = c.authenticate("PLAIN", lambda _: f"\0alice\0{PASSWORD}".encode())
        assert typ == "OK"
        assert c.create("Lib")[0] == "OK"
        assert c.subscribe("Lib")[0] == "OK"
        typ, data = c.append(
            "Lib", r"(\Flagged)", imaplib.Time2Internaldate(1_800_000_000), UTF8_MESSAGE
        )
        assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
        typ, data = c.append("Lib", None, None, message("lib plain"))
        assert typ == "OK"
        typ, data = c.lsub('""', "Lib")
        assert typ == "OK" and data[0].rsplit(b" ", 1)[-1].strip(b'"') == b"Lib"

        typ, data = c.select("Lib")
        assert (typ, data) == ("OK", [b"2"])
        typ, data = c.fetch("1", "(BODY[HEADER.FIELDS (FROM)] BODY[TEXT])")
        assert typ == "OK"
        header, text = (part[1] for part in data if isinstance(part, tuple))
        assert header == "From: Zoë <zoe@example.org>\r\n\r\n".encode()
        assert text == "Crème brûlée à 8 heures.\r\n".encode()
        typ, data = c.uid("SEARCH", "UNSEEN")  # fetching BODY[...] set \Seen on message 1
        assert typ == "OK" and len(data[0].split()) == 1
        assert c.store("2", "+FLAGS", r"(\Deleted)")[0] == "OK"
        typ, data = c.expunge()
        assert (typ, data) == ("OK", [b"2"])
        assert c.rename("Lib", "Library")[0] == "OK"
        assert c.close()[0] == "OK"
        typ, data = c.status("Library", "(MESSAGES UNSEEN)")
        assert typ == "OK" and b"MESSAGES 1" in data[0] and b"UNSEEN 0" in data[0]
    finally:
        c.logout()
    assert "Library" in server_folders(server)
    assert server_mailbox(server, "Library") == {"Café": {"\\Flagged", "\\Seen"}}


async def test_aioimaplib(server: RunningServer) -> None:
    aioimaplib = require_module("aioimaplib")
    seed(server, "INBOX", "aio 1")
    client = aioimaplib.IMAP4(host=server.host, port=server.port, timeout=15)
    await client.wait_hello_from_server()
    try:
        assert (await client.login("alice", PASSWORD)).result == "OK"
        response = await client.select("INBOX")
        assert response.result == "OK"
        assert any(line.endswith(b"1 EXISTS") for line in response.lines)

        idle = await client.idle_start(timeout=10)
        # Deliver from another connection (a thread: imapclient is blocking).
        await asyncio.to_thread(seed, server, "INBOX", "aio 2")
        pushed = await asyncio.wait_for(client.wait_server_push(), 10)
        assert b"2 EXISTS" in pushed
        client.idle_done()
        assert (await asyncio.wait_for(idle, 10)).result == "OK"

        response = await client.uid("fetch", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert response.result == "OK"
        assert b"Subject: aio 2" in b"".join(bytes(x) for x in response.lines)
        response = await client.uid_search("SUBJECT", '"aio 1"')
        (uid,) = response.lines[0].split()[0:1] or [b""]
        assert uid
        assert (await client.uid("move", uid.decode(), "Archive")).result == "OK"
        response = await client.append(message("aio 3"), mailbox="INBOX", flags=r"(\Seen)")
        assert response.result == "OK"
    finally:
        await client.logout()
    assert server_mailbox(server, "INBOX") == {"aio 2": set(), "aio 3": {"\\Seen"}}
    assert server_mailbox(server, "Archive") == {"aio 1": set()}
