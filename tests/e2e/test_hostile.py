"""Hostile input through a real server (issue 14): each attack gets the RFC's answer, and
another client's NOOP is answered while it runs ("no client can stall others").

Against the old code these fail by timeout (the socket timeouts below), not by a speed
threshold: the LIST ran for hours, the SEARCH answered NO [SERVERBUG]."""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from typing import Any

import pytest

from imapd.protocol.connection import Limits
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

#: The issue's attack: near-misses make a backtracking matcher take exponential time.
EVIL_PATTERN = "*%*%*%*%*%*%*%*%*%*%*%*%*%*%*Z"


def client(server: RunningServer, timeout: float = 20.0, user: str = "alice") -> RawClient:
    c = RawClient.connect(server.host, server.port, timeout=timeout)
    c.login(user, PASSWORD)
    return c


def noop_answered(server: RunningServer, user: str = "bob") -> None:
    """A second client logs in and its NOOP completes (the socket times out after 20 s
    when the event loop is stalled)."""
    other = client(server, user=user)
    assert other.command("n1", "NOOP")[-1].startswith("n1 OK")
    other.close()


def test_list_near_miss_pattern_is_linear(server: RunningServer) -> None:
    c = client(server)
    c.ok("c1", "CREATE aaaaaaaaaaaaaaaaaaaa")
    c.ok("c2", "CREATE aaaaaaaaaaaaaaaaaaaaZ")
    c.line(f'l1 LIST "" "{EVIL_PATTERN}"')
    noop_answered(server)
    out = c.until_tagged("l1")
    assert out[-1].startswith("l1 OK"), out
    assert [r for r in out if r.startswith("* LIST")] == [
        '* LIST (\\HasNoChildren) "/" "aaaaaaaaaaaaaaaaaaaaZ"'
    ]
    c.line(f'l2 LSUB "" "{EVIL_PATTERN}"')
    c.line(f'l3 LIST (SUBSCRIBED) "" ("{EVIL_PATTERN}" "%")')
    assert c.until_tagged("l2")[-1].startswith("l2 OK")
    assert c.until_tagged("l3")[-1].startswith("l3 OK")
    noop_answered(server)


def test_list_with_many_wildcards_and_long_names(server: RunningServer) -> None:
    c = client(server)
    name = "a" * 200
    c.ok("c1", f"CREATE {name}")
    c.line(f'l1 LIST "" "{"%a" * 300}Z"')
    noop_answered(server)
    assert c.until_tagged("l1")[-1].startswith("l1 OK")


def _or_chain(n: int, key: str = "SUBJECT") -> str:
    """``OR SUBJECT s0 OR SUBJECT s1 ... SUBJECT sn``: n nested ORs."""
    return " ".join(f"OR {key} s{i}" for i in range(n)) + f" {key} s{n}"


def test_search_long_or_chain_answers(server: RunningServer) -> None:
    """31 nested ORs (inside max_depth) overflowed SQLite's parser stack: NO [SERVERBUG]."""
    c = client(server)
    c.append("a1", "INBOX", "Subject: s7\r\n\r\nbody\r\n")
    c.append("a2", "INBOX", "Subject: other\r\n\r\nbody\r\n")
    c.ok("s", "SELECT INBOX")
    for key in ("SUBJECT", "BODY", "FROM", "KEYWORD"):
        out = c.command("q1", f"SEARCH {_or_chain(31, key)}")
        assert out[-1].startswith("q1 OK"), out
        if key == "SUBJECT":
            assert "* SEARCH 1" in out
    # Alternating OR / AND / NOT to the parser's depth limit also compiles.
    deep = "SUBJECT s7"
    for i in range(15):
        deep = f"OR (NOT SUBJECT x{i} {deep}) SUBJECT y{i}"
    out = c.command("q2", f"SEARCH {deep}")
    assert out[-1].startswith("q2 OK") and "* SEARCH 1" in out, out
    noop_answered(server)


def test_search_key_count_is_bounded(server_factory: Any) -> None:
    srv = server_factory()
    srv.add_user("alice")
    srv.add_user("bob")
    c = client(srv)
    c.ok("s", "SELECT INBOX")
    c.append("a1", "INBOX", "Subject: k1 k2 k3\r\n\r\nbody\r\n")
    # Many keys: below the limit (1000) they run, as a balanced SQL tree...
    out = c.command("q1", "SEARCH " + " ".join(f"SUBJECT k{i % 3 + 1}" for i in range(990)))
    assert out[-1].startswith("q1 OK") and "* SEARCH 1" in out, out
    out = c.command("q2", "SEARCH " + " ".join(f"OR SUBJECT x{i} BODY y{i}" for i in range(300)))
    assert out[-1].startswith("q2 OK"), out[-1]
    # ... past it they get the RFC 5530 answer, never SERVERBUG.
    out = c.command("q3", "SEARCH " + " ".join(f"SUBJECT k{i}" for i in range(1100)))
    assert out[-1].startswith("q3 NO [LIMIT]"), out[-1]
    noop_answered(srv)


def test_compressed_noop_bomb_ends_with_bye(server: RunningServer) -> None:
    """64 MB of NOOPs deflate to ~64 kB. Before: the session inflated its unconsumed tail
    without ever letting the loop turn (others waited) and ran all 8 million NOOPs. Now
    other sessions run meanwhile and the inflate ratio limit ends it with BYE."""
    c = client(server, timeout=30)
    assert c.command("z", "COMPRESS DEFLATE")[-1].startswith("z OK")
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    wire = bomb.compress(b"a NOOP\r\n" * 8_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(wire) < 200_000
    sender = threading.Thread(target=_send_quietly, args=(c.sock, wire), daemon=True)
    sender.start()
    noop_answered(server)
    inflate = zlib.decompressobj(-15)
    seen = b""
    while b"* BYE" not in seen:
        chunk = c.sock.recv(65536)
        if not chunk:
            break
        seen = seen[-100:] + inflate.decompress(chunk)
    assert b"* BYE" in seen and b"Compression ratio limit" in seen
    sender.join(30)
    noop_answered(server)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


def test_mailbox_name_limits(server_factory: Any) -> None:
    srv = server_factory(limits=Limits(max_mailbox_name=100, max_mailbox_level=20))
    srv.add_user("alice")
    srv.add_user("bob")
    c = client(srv)
    c.ok("c0", "CREATE " + "/".join(["b" * 20] * 4))  # 83 octets, levels of 20: fits
    out = c.command("c1", "CREATE " + "a" * 101)
    assert out[-1].startswith("c1 NO [LIMIT]"), out
    out = c.command("c2", "CREATE " + "a" * 21)
    assert out[-1].startswith("c2 NO [LIMIT]"), out
    out = c.command("c3", "RENAME INBOX " + "a" * 21)
    assert out[-1].startswith("c3 NO [LIMIT]"), out
    # Modified UTF-7: the limit is on the name's UTF-8 octets (8 x "é" = 16 octets fits).
    c.ok("c4", 'CREATE "&AOkA6QDpAOkA6QDpAOkA6Q-"')
    for command in ("SELECT", "EXAMINE", "DELETE", "SUBSCRIBE", "GETACL", "MYRIGHTS"):
        out = c.command("x", f"{command} {'a' * 101}")
        assert out[-1].startswith("x NO [NONEXISTENT]"), (command, out)
    out = c.command("x", f"STATUS {'a' * 101} (MESSAGES)")
    assert out[-1].startswith("x NO [NONEXISTENT]"), out
    out = c.command("x", f'LIST "" {"a" * 400}')
    assert out[-1].startswith("x NO [LIMIT]"), out
    assert c.command("x", 'LIST "" *')[-1].startswith("x OK")


@pytest.mark.parametrize("size", [900_000, 10_000_000])
def test_ten_megabyte_mailbox_name_is_cheap(server: RunningServer, size: int) -> None:
    """A 10 MB name was accepted and every command naming it stalled the loop for
    1.6-4.2 s (decoded per character); now it is refused before decoding. A name literal of
    at least `literal_spool_size` (1 MiB) is refused as such ([TOOBIG]: only messages are
    spooled); a smaller one by the name limits."""
    c = client(server, timeout=60)
    name = b"a" * size
    for tag, command in (("c1", b"CREATE"), ("c2", b"SELECT"), ("c3", b"APPEND")):
        tail = b" {1+}\r\nx" if command == b"APPEND" else b""
        c.send(tag.encode() + b" " + command + b" {%d+}\r\n" % len(name) + name + tail + b"\r\n")
        noop_answered(server)
        out = c.until_tagged(tag)
        if size >= Limits().literal_spool_size:
            code = "[TOOBIG]"
        else:
            code = "[LIMIT]" if command == b"CREATE" else "[NONEXISTENT]"
        assert out[-1].startswith(f"{tag} NO {code}"), out
    assert c.command("n", "NOOP")[-1].startswith("n OK")


def test_keywords_per_mailbox_are_limited(server_factory: Any) -> None:
    """101,122 keywords were accepted and every SELECT then listed them all (issue 14)."""
    srv = server_factory(limits=Limits(max_keywords=10))
    srv.add_user("alice")
    srv.add_user("bob")
    c = client(srv)
    for i in range(3):
        c.append(f"a{i}", "INBOX", f"Subject: {i}\r\n\r\nbody\r\n")
    c.ok("s1", "SELECT INBOX")
    c.ok("k1", "STORE 1 +FLAGS (" + " ".join(f"kw{i}" for i in range(8)) + ")")
    out = c.command("k2", "STORE 2 +FLAGS (kw0 KW1 new1 new2 new3)")  # 3 new: 11 > 10
    assert out[-1].startswith("k2 NO [LIMIT]"), out
    out = c.command("k3", "STORE 2 FLAGS (" + " ".join(f"x{i}" for i in range(1000)) + ")")
    assert out[-1].startswith("k3 NO [LIMIT]"), out
    assert not any("x1" in r for r in c.command("f", "FETCH 2 FLAGS"))
    c.ok("k4", "STORE 2 +FLAGS (kw0 KW1 new1 new2)")  # exactly 10: fine
    out = c.command("a3", "APPEND INBOX (more) {9+}\r\nSubj: x\r\n")
    assert out[-1].startswith("a3 NO [LIMIT]"), out
    c.ok("u", "UNSELECT")
    # Not selected: the store counts the keywords; known ones are still fine.
    out = c.command("a4", "APPEND INBOX (other) {9+}\r\nSubj: x\r\n")
    assert out[-1].startswith("a4 NO [LIMIT]"), out
    c.ok("a5", "APPEND INBOX (kw3 \\Seen) {9+}\r\nSubj: x\r\n")
    # PERMANENTFLAGS no longer offers \* (RFC 3501 §7.1).
    out = c.ok("s2", "SELECT INBOX")
    perm = next(r for r in out if "PERMANENTFLAGS" in r)
    assert "\\*" not in perm and "kw7" in perm, perm
    # A mailbox with room still offers it.
    c.ok("c", "CREATE Other")
    c.ok("o1", "APPEND Other (o1 o2 o3) {9+}\r\nSubj: x\r\n")
    perm = next(r for r in c.ok("s3", "SELECT Other") if "PERMANENTFLAGS" in r)
    assert "\\*" in perm, perm
    # COPY/MOVE bring their keywords: refused past the target's limit, fine within it.
    c.ok("u", "UNSELECT")
    c.append("a6", "Other", "Subject: plain\r\n\r\nbody\r\n")
    c.ok("s4", "SELECT Other")
    out = c.command("m1", "COPY 1 INBOX")
    assert out[-1].startswith("m1 NO [LIMIT]"), out
    c.ok("m2", "COPY 2 INBOX")  # no keywords on it
    c.ok("m3", "MOVE 2 INBOX")
    noop_answered(srv)
