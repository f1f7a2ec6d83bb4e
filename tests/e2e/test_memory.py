"""What slow or hostile clients may make the server hold: a client that stops reading is cut
off after ``write_timeout``; big literals go to a spool file, not memory, and the file is
removed whatever becomes of the upload (issue 14, finding 3)."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from tests.helpers.server import PASSWORD, RunningServer
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


def selected_with_window(srv: RunningServer, rcvbuf: int) -> RawClient:
    """alice logged in, INBOX selected, over a socket whose receive buffer is ``rcvbuf``
    octets (set before connecting, so the TCP window is small from the start)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((srv.host, srv.port))
    client = RawClient(sock)
    client.login("alice", PASSWORD)
    client.ok("s1", "SELECT INBOX")
    return client


def test_client_that_stops_reading_is_cut_off(
    server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = server_factory(write_timeout=1.0)
    srv.add_user("alice")
    c = login(srv)
    assert append_sync(c, "a1", big_message(BIG))[-1].startswith("a1 OK")
    c.close()
    # A small receive buffer, then FETCHes that the client never reads.
    slow = selected_with_window(srv, 4096)
    sock = slow.sock
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


def test_client_that_reads_no_pushed_responses_is_cut_off(
    server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Unsolicited responses (NOTIFY MessageNew with the message's body) wait on the same
    bounded drain as replies."""
    srv = server_factory(write_timeout=1.0, notify_write_high_water=10**9)
    srv.add_user("alice")
    listener = selected_with_window(srv, 4096)
    listener.ok("n1", "NOTIFY SET (selected (MessageNew (BODY.PEEK[]) MessageExpunge))")
    caplog.set_level(logging.INFO, logger="imapd.session")
    writer = login(srv)
    for i in range(6):
        assert append_sync(writer, f"a{i}", big_message(BIG // 3, str(i)))[-1].startswith(
            f"a{i} OK"
        )
    assert wait_for(lambda: "write timeout" in caplog.text, 20), "pushes pile up unbounded"
    assert listener.closed()
    writer.ok("n2", "NOOP")


def test_reading_slowly_is_progress_not_a_stall(server_factory: Any) -> None:
    """Progress is the buffer shrinking: a client reading big FETCHes in small sips gets
    all of them, although, once the kernel's buffers are full, one wait for the output
    to drain lasts longer than write_timeout: the kernel wakes a writer only once much
    of its send buffer is free, seconds at 200 KB/s (hence SIOCOUTQ)."""
    srv = server_factory(write_timeout=1.5)
    srv.add_user("alice")
    c = login(srv)
    data = big_message(BIG)
    assert append_sync(c, "a1", data)[-1].startswith("a1 OK")
    c.close()
    c = selected_with_window(srv, 65536)
    sock = c.sock
    c.send(b"f1 FETCH 1 BODY.PEEK[]\r\nf2 FETCH 1 BODY.PEEK[]\r\n")
    got = bytearray()
    start = time.monotonic()
    while not got.endswith(b"f2 OK FETCH completed\r\n"):
        slow = time.monotonic() - start < 5  # several write_timeouts in all
        chunk = sock.recv(4096 if slow else 1 << 20)
        assert chunk, "the server closed the connection of a client that reads"
        got += chunk
        if slow:
            time.sleep(0.02)
    assert got.count(data) == 2


# --- big literals go to a spool file --------------------------------------------------------
SPOOL_AT = 64 * 1024


def spool_files(srv: RunningServer) -> list[Any]:
    spool = srv.config.data_dir / "spool"
    return sorted(spool.iterdir()) if spool.exists() else []


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def fetch_bodies(c: RawClient, tag: str, mailbox: str = "INBOX") -> list[bytes]:
    c.ok(tag + "s", f"EXAMINE {mailbox}")
    c.line(f"{tag} FETCH 1:* BODY.PEEK[]")
    bodies: list[bytes] = []
    while True:
        resp = c.response_bytes()
        if resp.startswith(tag.encode() + b" "):
            assert b" OK " in resp, resp
            return bodies
        head, _, rest = resp.partition(b"}\r\n")
        assert head.startswith(b"* ") and b"BODY[] {" in head, head[:80]
        bodies.append(rest[: int(head.rsplit(b"{", 1)[1])])


def test_big_literal_is_spooled_to_a_private_file_and_removed(server_factory: Any) -> None:
    srv = server_factory(limits=replace_limits(literal_spool_size=SPOOL_AT))
    srv.add_user("alice")
    c = login(srv)
    data = big_message(300_000)
    c.line(f"a1 APPEND INBOX {{{len(data)}}}")
    assert c.response().startswith("+")
    c.send(data[:150_000])
    assert wait_for(lambda: len(spool_files(srv)) == 1), "no spool file during the upload"
    (path,) = spool_files(srv)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    c.send(data[150_000:] + b"\r\n")
    assert c.until_tagged("a1")[-1].startswith("a1 OK [APPENDUID")
    assert wait_for(lambda: spool_files(srv) == [])
    assert fetch_bodies(c, "f1") == [data]


def test_multiappend_of_spooled_literals_round_trips_byte_exact(server_factory: Any) -> None:
    srv = server_factory(limits=replace_limits(literal_spool_size=SPOOL_AT))
    srv.add_user("alice")
    c = login(srv)
    messages = [
        big_message(200_000, "a"),
        b"Subject: small\r\n\r\nhi\r\n",
        big_message(250_001, "b"),
        big_message(SPOOL_AT, "c"),
    ]
    # Synchronizing and LITERAL+ literals mixed, as clients send them.
    c.line(f"a1 APPEND INBOX (\\Seen) {{{len(messages[0])}}}")
    assert c.response().startswith("+")
    c.send(
        messages[0]
        + f" {{{len(messages[1])}+}}\r\n".encode()
        + messages[1]
        + f" {{{len(messages[2])}}}\r\n".encode()
    )
    assert c.response().startswith("+")
    c.send(messages[2] + f" {{{len(messages[3])}+}}\r\n".encode() + messages[3] + b"\r\n")
    reply = c.until_tagged("a1")[-1]
    assert reply.startswith("a1 OK [APPENDUID") and " 1:4]" in reply, reply
    assert wait_for(lambda: spool_files(srv) == [])
    assert fetch_bodies(c, "f1") == messages


def test_failed_multiappend_of_spooled_literals_appends_nothing(server_factory: Any) -> None:
    """RFC 3502: all or none, and the spool files go either way."""
    srv = server_factory(limits=replace_limits(literal_spool_size=SPOOL_AT))
    srv.add_user("alice")
    c = login(srv)
    one, two = big_message(100_000, "a"), big_message(100_000, "b")
    c.send(
        f"a1 APPEND Nowhere {{{len(one)}+}}\r\n".encode()
        + one
        + f" {{{len(two)}+}}\r\n".encode()
        + two
        + b"\r\n"
    )
    assert c.until_tagged("a1")[-1].startswith("a1 NO [TRYCREATE]")
    assert wait_for(lambda: spool_files(srv) == [])
    # A connection lost in the middle of the second literal: nothing was appended.
    c.send(
        f"a2 APPEND INBOX {{{len(one)}+}}\r\n".encode()
        + one
        + f" {{{len(two)}+}}\r\n".encode()
        + two[:50_000]
    )
    assert wait_for(lambda: len(spool_files(srv)) == 2)
    c.close()
    assert wait_for(lambda: spool_files(srv) == []), "spool files outlive their connection"
    other = login(srv)
    assert "* 0 EXISTS" in other.ok("s1", "SELECT INBOX")


def test_stalled_upload_is_ended_and_its_spool_removed(server_factory: Any) -> None:
    srv = server_factory(limits=replace_limits(literal_spool_size=SPOOL_AT), literal_timeout=1.0)
    srv.add_user("alice")
    c = login(srv)
    c.line("a1 APPEND INBOX {30000000}")
    assert c.response().startswith("+")
    c.send(b"x" * 200_000)
    assert wait_for(lambda: len(spool_files(srv)) == 1)
    assert c.closed(timeout=10), "a stalled upload holds its connection"
    assert wait_for(lambda: spool_files(srv) == [])


def test_spooled_literal_outside_append_is_too_big(server_factory: Any) -> None:
    srv = server_factory(limits=replace_limits(literal_spool_size=SPOOL_AT))
    srv.add_user("alice")
    c = login(srv)
    c.ok("s1", "SELECT INBOX")
    c.line(f"a1 SEARCH TEXT {{{SPOOL_AT}}}")
    assert c.response().startswith("+")
    c.send(b"x" * SPOOL_AT + b"\r\n")
    assert c.until_tagged("a1")[-1].startswith("a1 NO [TOOBIG]")
    assert wait_for(lambda: spool_files(srv) == [])
    c.ok("n1", "NOOP")


def test_literals_of_one_command_are_limited_together(server_factory: Any) -> None:
    srv = server_factory(limits=replace_limits(max_literal_total=150_000))
    srv.add_user("alice")
    c = login(srv)
    one = big_message(100_000, "a")
    c.line(f"a1 APPEND INBOX {{{len(one)}}}")
    assert c.response().startswith("+")
    c.send(one + f" {{{len(one)}}}\r\n".encode())
    assert c.response().startswith("a1 NO [TOOBIG]")  # the second one is never sent
    assert "* 0 EXISTS" in c.ok("s1", "SELECT INBOX")  # and nothing was appended
    c.send(f"a2 APPEND INBOX {{{len(one)}+}}\r\n".encode() + one + f" {{{len(one)}+}}\r\n".encode())
    assert c.response().startswith("* BYE [TOOBIG]")  # RFC 7888 §4: LITERAL+ over a limit
    assert c.closed()


def replace_limits(**changes: int) -> Any:
    from dataclasses import replace

    from imapd.protocol.connection import Limits

    return replace(Limits(), **changes)


def test_big_fetch_written_in_pieces_is_byte_exact(server_factory: Any) -> None:
    """Big literals go out uncopied and in slices: with and without COMPRESS=DEFLATE,
    two in one response, each exactly as stored."""
    from tests.helpers.deflate import DeflateClient

    srv = server_factory()
    srv.add_user("alice")
    c = login(srv)
    data = big_message(700_001, "q")
    assert append_sync(c, "a1", data)[-1].startswith("a1 OK")
    body = data[data.index(b"\r\n\r\n") + 4 :]
    c.ok("s1", "SELECT INBOX")
    expect = b"* 1 FETCH (BODY[] {%d}\r\n%s BODY[TEXT] {%d}\r\n%s)" % (
        len(data),
        data,
        len(body),
        body,
    )
    c.line("f1 FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT])")
    assert c.response_bytes() == expect
    assert c.until_tagged("f1")[-1].startswith("f1 OK")
    assert c.command("z", "COMPRESS DEFLATE") == ["z OK DEFLATE active"]
    z = DeflateClient(c)
    assert z.command("f3", b"FETCH 1 (BODY.PEEK[] BODY.PEEK[TEXT])") == [
        expect,
        b"f3 OK FETCH completed",
    ]
    assert z.command("n", b"NOOP") == [b"n OK NOOP completed"]


def test_fetch_of_many_big_messages_reads_them_a_few_at_a_time(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content is read in batches of at most FETCH_OCTETS (or one message): every message
    still comes out whole and in order, also when one alone is over the bound."""
    from imapd.commands import fetch

    monkeypatch.setattr(fetch, "FETCH_OCTETS", 150_000)
    srv = server_factory()
    srv.add_user("alice")
    c = login(srv)
    sizes = [60_000, 70_000, 200_000, 10_000, 80_000, 90_000]
    messages = [big_message(n, str(i)) for i, n in enumerate(sizes)]
    for i, m in enumerate(messages):
        assert append_sync(c, f"a{i}", m)[-1].startswith(f"a{i} OK")
    assert fetch_bodies(c, "f1") == messages


def test_spool_that_cannot_be_written_fails_the_command_not_the_server(
    server_factory: Any,
) -> None:
    srv = server_factory(limits=replace_limits(literal_spool_size=SPOOL_AT))
    srv.add_user("alice")
    spool = srv.config.data_dir / "spool"
    spool.rmdir()
    spool.write_text("not a directory")  # as unwritable as a full disk
    c = login(srv)
    data = big_message(200_000)
    c.send(f"a1 APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    assert c.until_tagged("a1")[-1].startswith("a1 NO [UNAVAILABLE]")
    spool.unlink()
    assert append_sync(c, "a2", data)[-1].startswith("a2 OK")
    assert fetch_bodies(c, "f1") == [data]


def test_spooled_metadata_value_gets_maxsize_or_is_kept(server_factory: Any) -> None:
    """RFC 5464 §4.3: a value over metadata_max_size is NO [METADATA MAXSIZE n], also when
    it was big enough to be spooled; one within it is stored from its spool file."""
    srv = server_factory(
        limits=replace_limits(literal_spool_size=SPOOL_AT), metadata_max_size=100_000
    )
    srv.add_user("alice")
    c = login(srv)
    value = b"v" * 90_000
    replies = []
    for tag, size in (("m1", 150_000), ("m2", len(value))):
        c.line(f"{tag} SETMETADATA INBOX (/private/comment {{{size}}}")
        assert c.response().startswith("+")
        c.send(value[:size].ljust(size, b"v") + b")\r\n")
        replies.append(c.until_tagged(tag)[-1])
    assert replies[0].startswith("m1 NO [METADATA MAXSIZE 100000]"), replies
    assert replies[1].startswith("m2 OK"), replies
    out = c.ok("g1", "GETMETADATA INBOX /private/comment")
    assert out[0].encode() == b'* METADATA "INBOX" (/private/comment {90000}\r\n' + value + b")"
    assert wait_for(lambda: spool_files(srv) == [])


def test_spool_files_a_crash_left_are_removed_at_start(server_factory: Any, tmp_path: Any) -> None:
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    spool.chmod(0o755)
    (spool / "literal-left-by-kill-9").write_bytes(b"x" * 1000)
    srv = server_factory()
    assert spool_files(srv) == []
    assert spool.stat().st_mode & 0o777 == 0o700


def test_client_gone_in_the_middle_of_a_big_fetch(server_factory: Any) -> None:
    """The slices stop at the first lost write: no error logged, others served."""
    srv = server_factory()
    srv.add_user("alice")
    c = login(srv)
    assert append_sync(c, "a1", big_message(BIG))[-1].startswith("a1 OK")
    c.ok("s1", "SELECT INBOX")
    c.line("f1 FETCH 1 BODY.PEEK[]")
    c.sock.recv(1000)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST: the server's next writes fail
    other = login(srv)
    other.ok("s2", "SELECT INBOX")
    assert fetch_bodies(other, "f2") == [big_message(BIG)]


def test_big_messages_added_after_select_still_bound_the_fetch_batches(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mailbox small at SELECT needs no size query per FETCH batch (the view's octets
    bound); messages delivered afterwards raise that bound, so batches are cut again."""
    from imapd.commands import fetch

    monkeypatch.setattr(fetch, "FETCH_OCTETS", 150_000)
    srv = server_factory()
    srv.add_user("alice")
    c = login(srv)
    small = [big_message(1_000, "s")]
    assert append_sync(c, "a0", small[0])[-1].startswith("a0 OK")
    c.ok("s", "SELECT INBOX")
    other = login(srv)
    later = [big_message(n, str(i)) for i, n in enumerate([90_000, 120_000, 70_000])]
    for i, m in enumerate(later):
        assert append_sync(other, f"b{i}", m)[-1].startswith(f"b{i} OK")
    c.ok("n", "NOOP")  # the three EXISTS: the view learns of them (and of their sizes)
    c.line("f1 FETCH 1:* BODY.PEEK[]")
    bodies: list[bytes] = []
    while not (resp := c.response_bytes()).startswith(b"f1 "):
        head, _, rest = resp.partition(b"}\r\n")
        bodies.append(rest[: int(head.rsplit(b"{", 1)[1])])
    assert b" OK " in resp
    assert bodies == small + later
