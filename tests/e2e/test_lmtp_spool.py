"""LMTP DATA streamed to a spool file (imapd/lmtp/sink.py): a message past
``literal_spool_size`` is written to ``DATA_DIR/spool`` as it arrives, delivered byte for
byte, and its file removed when the transaction is over, whatever happened; IMAP clients
are served meanwhile. A real server, smtplib/raw sockets and imapclient."""

from __future__ import annotations

import re
import socket
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from imapd.config import Config
from tests.e2e.test_lmtp import connect, imap, inbox, lmtp_address, lmtp_server
from tests.helpers.server import RunningServer

SPOOL_SIZE = 64 * 1024


@pytest.fixture
def running(server_factory: Any) -> RunningServer:
    limits = replace(Config().limits, literal_spool_size=SPOOL_SIZE)
    return lmtp_server(server_factory, limits=limits)


def spool_files(running: RunningServer) -> list[Path]:
    directory = running.config.data_dir / "spool"
    return sorted(directory.iterdir()) if directory.exists() else []


def wait_until_no_spool_files(running: RunningServer) -> None:
    """The server removes the file when it sees the connection end; wait for that (bounded:
    a file that stays fails the test)."""
    for _ in range(200):
        if not spool_files(running):
            return
        time.sleep(0.05)
    assert spool_files(running) == []


def big_message(lines: int) -> bytes:
    """Dot-started lines, bare LFs, a lone CR and 8-bit octets: all that DATA transforms."""
    body = b"".join(
        b".line %d \xc3\xa9 " % i + b"x" * (i % 97) + (b"\r\n" if i % 5 else b"\n")
        for i in range(lines)
    )
    return b"Subject: big\r\nX-Odd: a\rb\r\n\r\n" + body


def test_big_message_is_byte_exact_and_leaves_no_file(running: RunningServer) -> None:
    message = big_message(20_000)  # about 1.5 MB, over the 64 KiB threshold
    client = connect(running)
    # smtplib dot-stuffs bytes and sends them otherwise as they are: the server unstuffs and
    # makes bare LFs CRLF (a lone CR stays).
    assert client.sendmail("big@example.net", ["alice", "bob"], message) == {}
    client.quit()
    expected = b"Return-Path: <big@example.net>\r\n" + re.sub(rb"(?<!\r)\n", b"\r\n", message)
    assert b"\ra" not in expected and b"a\rb" in expected and expected.count(b"\n.line") == 20_000
    assert inbox(running, "alice") == [expected]
    assert inbox(running, "bob") == [expected]
    assert spool_files(running) == []


def test_raw_dot_stuffed_big_message_over_a_raw_socket(running: RunningServer) -> None:
    """The server's own unstuffing and bare-LF handling, past the threshold, from the wire."""
    raw = b"Subject: raw\r\n\r\n" + b"..stuffed\nbare\r\nlone\rcr\r\n" * 10_000
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        _expect(sock, b"220 ")
        sock.sendall(b"LHLO x\r\nMAIL FROM:<r@x>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        _expect(sock, b"354 ")
        sock.sendall(raw + b".\r\nQUIT\r\n")
        assert _expect(sock, b"221 ").startswith(b"250 2.0.0 <alice> Saved as UID 1")
    expected = b"Return-Path: <r@x>\r\nSubject: raw\r\n\r\n" + (
        b".stuffed\r\nbare\r\nlone\rcr\r\n" * 10_000
    )
    assert inbox(running, "alice") == [expected]
    assert spool_files(running) == []


def test_disconnect_mid_data_removes_the_file(running: RunningServer) -> None:
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        _expect(sock, b"220 ")
        sock.sendall(b"LHLO x\r\nMAIL FROM:<d@x>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        _expect(sock, b"354 ")
        sock.sendall(b"Subject: cut\r\n\r\n" + (b"y" * 200 + b"\r\n") * (4 * SPOOL_SIZE // 202))
        _wait_for_spool_file(running)  # the message is on disk while DATA goes on
        (path,) = spool_files(running)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for _ in range(200):  # written as it arrives: the threshold's worth is there soon
            if path.stat().st_size >= SPOOL_SIZE:
                break
            time.sleep(0.05)
        with path.open("rb") as f:
            assert f.read(40) == b"Return-Path: <d@x>\r\nSubject: cut\r\n\r\nyyyy"
    wait_until_no_spool_files(running)
    assert inbox(running, "alice") == []


def test_too_big_spooled_message_is_refused_and_removed(server_factory: Any) -> None:
    limits = replace(
        Config().limits, literal_spool_size=SPOOL_SIZE, max_literal_size=4 * SPOOL_SIZE
    )
    running = lmtp_server(server_factory, limits=limits)
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        _expect(sock, b"220 ")
        sock.sendall(b"LHLO x\r\nMAIL FROM:<t@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n")
        _expect(sock, b"354 ")
        sock.sendall((b"z" * 78 + b"\r\n") * (8 * SPOOL_SIZE // 80) + b".\r\nNOOP\r\n")
        replies = _expect(sock, b"250 2.0.0 OK")
        assert replies.count(b"552 5.3.4 ") == 2  # one per recipient (RFC 2033 §4.2)
    wait_until_no_spool_files(running)
    assert inbox(running, "alice") == [] and inbox(running, "bob") == []


def test_imap_is_served_while_a_big_data_is_in_flight(running: RunningServer) -> None:
    with socket.create_connection(lmtp_address(running), timeout=30) as sock:
        _expect(sock, b"220 ")
        sock.sendall(b"LHLO x\r\nMAIL FROM:<f@x>\r\nRCPT TO:<alice>\r\nDATA\r\n")
        _expect(sock, b"354 ")
        part = b"Subject: in flight\r\n\r\n" + (b"w" * 1000 + b"\r\n") * 2000
        sock.sendall(part)
        _wait_for_spool_file(running)
        # DATA is open, its message on disk: an IMAP client is served, and sees no message.
        client = imap(running)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.noop()[0].startswith(b"NOOP")
        client.logout()
        sock.sendall(b"end\r\n.\r\n")
        assert _expect(sock, b"250 ").startswith(b"250 2.0.0 <alice> Saved as UID 1")
    assert inbox(running, "alice") == [b"Return-Path: <f@x>\r\n" + part + b"end\r\n"]
    wait_until_no_spool_files(running)


def _expect(sock: socket.socket, start: bytes) -> bytes:
    """Read replies until a line starting with ``start`` has been read whole."""
    data = b""
    while True:
        lines = data.split(b"\r\n")
        if any(ln.startswith(start) for ln in lines[:-1]):
            return data
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk


def _wait_for_spool_file(running: RunningServer) -> None:
    for _ in range(200):
        if spool_files(running):
            return
        time.sleep(0.05)
    assert spool_files(running), "no spool file while a big DATA is in flight"


def test_spool_that_cannot_be_written_is_451_per_recipient(running: RunningServer) -> None:
    """The spool directory replaced by a file: creating the spool file fails like a full
    disk would; the rest of DATA is read and dropped, each recipient gets a temporary
    failure (the MTA retries) and the session goes on."""
    directory = running.config.data_dir / "spool"
    directory.rmdir()
    directory.write_bytes(b"not a directory")
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        _expect(sock, b"220 ")
        sock.sendall(b"LHLO x\r\nMAIL FROM:<e@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n")
        _expect(sock, b"354 ")
        sock.sendall((b"q" * 98 + b"\r\n") * (2 * SPOOL_SIZE // 100) + b".\r\nNOOP\r\n")
        replies = _expect(sock, b"250 2.0.0 OK")
        assert replies.count(b"451 4.3.0 ") == 2, replies
        # A small message needs no spool file: delivered.
        sock.sendall(b"MAIL FROM:<e@x>\r\nRCPT TO:<alice>\r\nDATA\r\nsmall\r\n.\r\n")
        assert b"250 2.0.0 <alice> Saved as UID 1" in _expect(sock, b"250 2.0.0 <alice>")
    assert inbox(running, "alice") == [b"Return-Path: <e@x>\r\nsmall\r\n"]
