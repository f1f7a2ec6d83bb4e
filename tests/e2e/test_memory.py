"""What slow or hostile clients may make the server hold: a client that stops reading is cut
off after ``write_timeout``; big literals go to a spool file, not memory, and the file is
removed whatever becomes of the upload (issue 14, finding 3)."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from tests.conftest import PASSWORD, RunningServer
from tests.rawclient import RawClient

BIG = 3 * 1024 * 1024


def big_message(size: int, seed: str = "x") -> bytes:
    head = f"From: a@example.org\r\nSubject: big {seed}\r\n\r\n".encode()
    line = (seed * 76 + "\r\n").encode()
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head)]


def login(srv: RunningServer) -> RawClient:
    c = RawClient.connect(srv.host, srv.port)
    c.login("alice", PASSWORD)
    return c


def append_sync(c: RawClient, tag: str, data: bytes, mailbox: str = "INBOX") -> list[str]:
    c.line(f"{tag} APPEND {mailbox} {{{len(data)}}}")
    assert c.response().startswith("+")
    c.send(data + b"\r\n")
    return c.until_tagged(tag)


def test_client_that_stops_reading_is_cut_off(
    server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = server_factory(write_timeout=1.0)
    srv.add_user("alice")
    c = login(srv)
    assert append_sync(c, "a1", big_message(BIG))[-1].startswith("a1 OK")
    c.close()
    # A small receive buffer, then FETCHes that the client never reads.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((srv.host, srv.port))
    slow = RawClient(sock)
    slow.login("alice", PASSWORD)
    slow.ok("s1", "SELECT INBOX")
    caplog.set_level(logging.INFO, logger="imapd.session")
    slow.send(b"".join(b"f%d FETCH 1 BODY.PEEK[]\r\n" % i for i in range(8)))
    deadline = time.monotonic() + 20
    while "write timeout" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    stalled = [r.getMessage() for r in caplog.records if "write timeout" in r.getMessage()]
    assert stalled, "the server still waits on a client that reads nothing"
    assert "alice" in stalled[0] and "127.0.0.1:" in stalled[0], stalled
    # The client finds the connection closed before all it asked for arrived.
    received = b""
    sock.settimeout(10)
    try:
        while chunk := sock.recv(1 << 20):
            received += chunk
    except ConnectionError:
        pass
    assert received.count(b" OK FETCH completed") < 8
    # Others are served meanwhile and afterwards.
    other = login(srv)
    other.ok("n1", "NOOP")


def test_reading_slowly_is_progress_not_a_stall(server_factory: Any) -> None:
    """Progress is the buffer shrinking: a client reading a big FETCH in small sips over
    several write_timeouts gets all of it."""
    srv = server_factory(write_timeout=0.6)
    srv.add_user("alice")
    c = login(srv)
    data = big_message(BIG)
    assert append_sync(c, "a1", data)[-1].startswith("a1 OK")
    c.close()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect((srv.host, srv.port))
    c = RawClient(sock)
    c.login("alice", PASSWORD)
    c.ok("s1", "SELECT INBOX")
    c.line("f1 FETCH 1 BODY.PEEK[]")
    got = b""
    start = time.monotonic()
    while not got.endswith(b"f1 OK FETCH completed\r\n"):
        chunk = sock.recv(16384)
        assert chunk, "the server closed the connection of a client that reads"
        got += chunk
        if time.monotonic() - start < 2.5:  # longer than write_timeout in all
            time.sleep(0.03)
    assert data in got
