"""LMTP delivery (RFC 2033) end to end: Python's smtplib.LMTP and a raw socket against the
real server, over TCP and a UNIX socket, checked through IMAP (imapclient) and the change log."""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imapclient
import pytest

from tests.e2e.messages import SIMPLE
from tests.helpers.server import PASSWORD, RunningServer


def lmtp_server(server_factory: Any, where: str = "127.0.0.1:0", **kw: Any) -> RunningServer:
    running: RunningServer = server_factory(lmtp=where, **kw)
    running.add_user("alice")
    running.add_user("bob")
    return running


def lmtp_address(running: RunningServer) -> tuple[str, int]:
    assert running.server.lmtp is not None
    addr = running.server.lmtp.addresses[0]
    assert isinstance(addr, tuple)
    return addr


def connect(running: RunningServer) -> smtplib.LMTP:
    host, port = lmtp_address(running)
    client = smtplib.LMTP(host, port, timeout=10)
    code, _ = client.ehlo()  # LMTP's LHLO (smtplib.LMTP)
    assert code == 250
    return client


def imap(running: RunningServer, user: str = "alice") -> imapclient.IMAPClient:
    c = imapclient.IMAPClient(running.host, port=running.port, ssl=False, timeout=10)
    c.login(user, PASSWORD)
    return c


def inbox(running: RunningServer, user: str = "alice") -> list[bytes]:
    c = imapclient.IMAPClient(running.host, port=running.port, ssl=False, timeout=10)
    c.login(user, PASSWORD)
    c.select_folder("INBOX", readonly=True)
    uids = c.search("ALL")
    data = c.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
    c.logout()
    return [data[u][b"BODY[]"] for u in sorted(uids)]


@pytest.fixture
def running(server_factory: Any) -> RunningServer:
    return lmtp_server(server_factory)


def test_lhlo_and_delivery_to_inbox(running: RunningServer) -> None:
    client = connect(running)
    assert client.does_esmtp
    for ext in ("pipelining", "enhancedstatuscodes", "8bitmime", "size"):
        assert client.has_extn(ext), ext
    assert int(client.esmtp_features["size"]) == running.config.limits.max_literal_size
    refused = client.sendmail("sender@example.net", ["alice@example.org"], SIMPLE)
    assert refused == {}
    client.quit()
    (message,) = inbox(running)
    # Return-Path prepended, the message otherwise byte for byte.
    assert message == b"Return-Path: <sender@example.net>\r\n" + SIMPLE


def test_delivery_is_a_deliver_change_from_lmtp(running: RunningServer) -> None:
    client = connect(running)
    client.sendmail("", ["bob"], SIMPLE)
    client.quit()
    rows = running.call(running.server.store.change_log())
    added = [json.loads(p) for _, kind, p in rows if kind == "MessagesAdded"]
    assert len(added) == 1
    assert added[0]["kind"] == "deliver"
    assert added[0]["origin"]["service"] == "lmtp"
    assert added[0]["origin"]["user"] == "bob"
    assert added[0]["mailbox"]["owner"] == "bob"
    assert added[0]["mailbox"]["name"] == "INBOX"


def test_multiple_recipients_one_unknown(running: RunningServer) -> None:
    client = connect(running)
    assert client.mail("sender@example.net")[0] == 250
    assert client.rcpt("alice@example.org")[0] == 250
    code, text = client.rcpt("nobody@example.org")
    assert (code, text[:5]) == (550, b"5.1.1")
    assert client.rcpt("bob+news@example.org")[0] == 250  # +detail -> bob's INBOX
    # smtplib.LMTP reads one reply after DATA; RFC 2033 §4.2 sends one per good RCPT.
    first = client.data(SIMPLE)
    second = client.getreply()
    assert first[0] == 250 and b"alice@example.org" in first[1]
    assert second[0] == 250 and b"bob+news@example.org" in second[1]
    assert client.noop()[0] == 250  # the conversation is still in step
    client.quit()
    assert len(inbox(running, "alice")) == 1
    assert len(inbox(running, "bob")) == 1


def test_same_user_twice_gets_one_copy_two_replies(running: RunningServer) -> None:
    client = connect(running)
    client.mail("s@x")
    client.rcpt("alice")
    client.rcpt("alice+x@example.org")
    assert client.data(SIMPLE)[0] == 250
    assert client.getreply()[0] == 250
    client.quit()
    assert len(inbox(running, "alice")) == 1


def test_all_recipients_unknown(running: RunningServer) -> None:
    client = connect(running)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("s@x", ["ghost@example.org"], SIMPLE)
    client.quit()


def test_dot_stuffing_and_eight_bit(running: RunningServer) -> None:
    body = (
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b".\r\n..\r\n.leading dot\r\ncaf\xc3\xa9 \xe2\x82\xac\r\n"
    )
    client = connect(running)
    client.sendmail("s@x", ["alice"], body, mail_options=["BODY=8BITMIME"])
    client.quit()
    (message,) = inbox(running)
    assert message == b"Return-Path: <s@x>\r\n" + body


def test_size_limit(server_factory: Any) -> None:
    from dataclasses import replace

    from imapd.config import Config

    limits = replace(Config().limits, max_literal_size=2000)
    running = lmtp_server(server_factory, limits=limits)
    client = connect(running)
    assert int(client.esmtp_features["size"]) == 2000
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail("s@x", ["alice"], b"x" * 3000)  # smtplib sends SIZE=3000
    assert refused.value.smtp_code == 552
    client.rset()
    # Without SIZE=, the limit applies at the end of DATA: 552 5.3.4 per recipient.
    client.mail("s@x")
    client.rcpt("alice")
    code, text = client.data(b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 40)
    assert (code, text[:5]) == (552, b"5.3.4")
    assert client.noop()[0] == 250
    client.sendmail("s@x", ["alice"], b"Subject: small\r\n\r\nok\r\n")
    client.quit()
    assert len(inbox(running)) == 1


def _read_replies(sock: socket.socket, until: bytes) -> bytes:
    data = b""
    while not data.endswith(until):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_pipelined_raw(running: RunningServer) -> None:
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        assert _read_replies(sock, b"\r\n").startswith(b"220 ")
        sock.sendall(
            b"LHLO client\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\n"
            b"RCPT TO:<nobody>\r\nRCPT TO:<bob>\r\nDATA\r\n"
        )
        replies = _read_replies(sock, b"354 Start mail input; end with <CRLF>.<CRLF>\r\n")
        lines = replies.split(b"\r\n")
        assert [ln[:3] for ln in lines if ln[3:4] == b" "] == [
            b"250",
            b"250",
            b"250",
            b"550",
            b"250",
            b"354",
        ]
        sock.sendall(b"Subject: pipelined\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        rest = _read_replies(sock, b"closing connection\r\n")
        assert [ln[:3] for ln in rest.split(b"\r\n") if ln] == [b"250", b"250", b"221"]
    assert inbox(running, "alice") == [b"Return-Path: <a@b>\r\nSubject: pipelined\r\n\r\n.dot\r\n"]


def test_malformed_input_gets_5xx_not_a_traceback(running: RunningServer) -> None:
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        _read_replies(sock, b"\r\n")
        sock.sendall(
            b"HELO x\r\n\x00\xff\r\nMAIL FROM:<\r\nLHLO x\r\nMAIL FROM:garbage\r\n"
            b"VRFY alice\r\nQUIT\r\n"
        )
        out = _read_replies(sock, b"closing connection\r\n")
    codes = [ln[:3] for ln in out.split(b"\r\n") if ln[3:4] == b" "]
    assert codes == [b"500", b"501", b"503", b"250", b"501", b"502", b"221"]


def test_idle_session_sees_delivery(running: RunningServer) -> None:
    watcher = imap(running)
    watcher.select_folder("INBOX")
    watcher.idle()
    client = connect(running)
    client.sendmail("s@x", ["alice"], SIMPLE)
    client.quit()
    responses = watcher.idle_check(timeout=5)
    watcher.idle_done()
    assert (1, b"EXISTS") in responses
    assert watcher.fetch([1], ["ENVELOPE"])[1][b"ENVELOPE"].subject == b"Lunch on Friday"
    watcher.logout()


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket path fits sun_path (108 octets)."""
    if len(str(tmp_path)) < 80:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="lmtp", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_unix_socket(server_factory: Any, short_dir: Path) -> None:
    path = short_dir / "lmtp.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    running = lmtp_server(server_factory, where=str(path))
    assert running.server.lmtp is not None
    assert running.server.lmtp.addresses == [str(path)]
    client = smtplib.LMTP(str(path), timeout=10)
    client.sendmail("s@x", ["alice", "bob"], SIMPLE)
    client.getreply()  # bob's reply (smtplib reads only the first)
    client.quit()
    assert len(inbox(running, "alice")) == 1
    assert len(inbox(running, "bob")) == 1
    running.call(running.server.lmtp.close(1.0))  # what shutdown does for LMTP
    assert not path.exists()


def test_close_says_421_to_idle_connections(running: RunningServer) -> None:
    with socket.create_connection(lmtp_address(running), timeout=10) as sock:
        _read_replies(sock, b"\r\n")
        sock.sendall(b"LHLO x\r\n")
        _read_replies(sock, b"250 SIZE %d\r\n" % running.config.limits.max_literal_size)
        assert running.server.lmtp is not None
        running.call(running.server.lmtp.close(1.0))
        assert _read_replies(sock, b"\r\n") == b"421 4.3.2 Service shutting down\r\n"
