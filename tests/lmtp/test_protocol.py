"""The sans-IO LMTP protocol (RFC 2033): transcripts driven by a scripted driver, each fed
whole, byte by byte and in random pieces, plus hostile input."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from imapd.lmtp.protocol import (
    DATA_CHUNK,
    NEED_DATA,
    AcceptedRecipient,
    Close,
    ConnectionClosed,
    LmtpConnection,
    LmtpLimits,
    Message,
    MessageData,
    MessageStart,
    ProtocolMisuse,
    Recipient,
    Reply,
    Send,
    local_part,
    recipient_candidates,
    return_path,
)

USERS = {"alice", "bob", "carol@example.org"}


def reference_content(body: bytes) -> bytes:
    """The whole-buffer transformation DATA had before it streamed: ``body`` is the raw DATA
    up to the final "." line (its line end included), the result what is delivered."""
    content = (b"\n" + body).replace(b"\n.", b"\n")[1:]
    return re.sub(rb"(?<!\r)\n", b"\r\n", content)


@dataclass
class Delivered:
    """A message as the driver assembles it from `MessageStart`, `MessageData`, `Message`."""

    sender: str
    recipients: tuple[AcceptedRecipient, ...]
    content: bytes


def run(
    data: bytes,
    *,
    pieces: Callable[[bytes], list[bytes]] | None = None,
    limits: LmtpLimits | None = None,
) -> tuple[bytes, list[Delivered]]:
    """Drive a connection like the server does: resolve RCPTs against USERS, accept every
    message with a 250 per recipient. Returns everything written and the messages."""
    conn = LmtpConnection("mx.test", limits)
    out = bytearray()
    messages: list[Delivered] = []
    content: bytearray | None = None
    chunks = pieces(data) if pieces else [data]
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            match event:
                case Send():
                    out += event.to_bytes()
                    if event.replies[0].code == 552:
                        content = None  # a refused DATA ends without Message
                case Recipient(candidates=candidates):
                    user = next((c for c in candidates if c in USERS), None)
                    out += conn.accept_recipient(user) if user else conn.refuse_recipient()
                case MessageStart():
                    assert content is None
                    content = bytearray()
                case MessageData(data=data):
                    assert content is not None and data
                    content += data
                case Message(recipients=rcpts):
                    assert content is not None and event.size == len(content)
                    messages.append(Delivered(event.sender, rcpts, bytes(content)))
                    content = None
                    out += conn.finish_message(
                        [Reply.of(250, f"2.0.0 <{r.address}> ok") for r in rcpts]
                    )
                case Close(reply=reply):
                    out += reply.to_bytes()
                    return bytes(out), messages
                case ConnectionClosed():
                    return bytes(out), messages
    return bytes(out), messages


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def randomly(data: bytes) -> list[bytes]:
    rng = random.Random(len(data))
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 7)
        out.append(data[i : i + n])
        i += n
    return out


FEEDS = pytest.mark.parametrize(
    "pieces", [whole, bytewise, randomly], ids=["whole", "bytewise", "random"]
)


def codes(out: bytes) -> list[str]:
    """The reply codes, one per reply (continuation lines of a multiline reply skipped)."""
    return [line[:3] for line in out.decode().split("\r\n") if len(line) > 3 and line[3] == " "]


@FEEDS
def test_lhlo_advertises_extensions(pieces: Callable[[bytes], list[bytes]]) -> None:
    out, _ = run(
        b"LHLO client.test\r\nQUIT\r\n", pieces=pieces, limits=LmtpLimits(max_message_size=12345)
    )
    assert out == (
        b"250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
        b"250 SIZE 12345\r\n221 2.0.0 mx.test closing connection\r\n"
    )


@FEEDS
def test_rfc2033_example(pieces: Callable[[bytes], list[bytes]]) -> None:
    """RFC 2033 §4.2: one reply per successful RCPT after the final ".", in RCPT order."""
    script = (
        b"LHLO foo.edu\r\n"
        b"MAIL FROM:<chris@bar.com>\r\n"
        b"RCPT TO:<alice@foo.edu>\r\n"
        b"RCPT TO:<jones@foo.edu>\r\n"
        b"RCPT TO:<bob@foo.edu>\r\n"
        b"DATA\r\n"
        b"Subject: hi\r\n\r\nBlah blah blah...\r\n.\r\n"
        b"QUIT\r\n"
    )
    out, messages = run(script, pieces=pieces)
    assert codes(out) == ["250", "250", "250", "550", "250", "354", "250", "250", "221"]
    assert b"550 5.1.1 No such user here\r\n" in out
    assert out.index(b"<alice@foo.edu> ok") < out.index(b"<bob@foo.edu> ok")
    (msg,) = messages
    assert msg.sender == "chris@bar.com"
    assert msg.recipients == (
        AcceptedRecipient("alice@foo.edu", "alice"),
        AcceptedRecipient("bob@foo.edu", "bob"),
    )
    assert msg.content == b"Subject: hi\r\n\r\nBlah blah blah...\r\n"


@FEEDS
def test_dot_unstuffing_and_final_dot(pieces: Callable[[bytes], list[bytes]]) -> None:
    script = (
        b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\n"
        b"..starts with a dot\r\n...two dots\r\n. not the end\r\nlast\r\n.\r\nQUIT\r\n"
    )
    out, messages = run(script, pieces=pieces)
    assert codes(out) == ["250", "250", "250", "354", "250", "221"]
    assert messages[0].content == b".starts with a dot\r\n..two dots\r\n not the end\r\nlast\r\n"
    assert messages[0].sender == ""


@FEEDS
def test_empty_message_and_eight_bit(pieces: Callable[[bytes], list[bytes]]) -> None:
    script = (
        b"LHLO x\r\nMAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<bob@x>\r\nDATA\r\n.\r\n"
        b"MAIL FROM:<a@b>\r\nRCPT TO:<bob@x>\r\nDATA\r\n"
        b"Subject: caf\xc3\xa9\r\n\r\n\xff\xfe binary-ish\r\n.\r\n"
    )
    out, messages = run(script, pieces=pieces)
    assert codes(out) == ["250", "250", "250", "354", "250", "250", "250", "354", "250"]
    assert messages[0].content == b""
    assert messages[1].content == b"Subject: caf\xc3\xa9\r\n\r\n\xff\xfe binary-ish\r\n"


@FEEDS
def test_bare_lf_tolerated_and_made_crlf(pieces: Callable[[bytes], list[bytes]]) -> None:
    out, messages = run(
        b"LHLO x\nMAIL FROM:<a@b>\nRCPT TO:<alice>\nDATA\nline\n..x\n.\n", pieces=pieces
    )
    assert codes(out) == ["250", "250", "250", "354", "250"]
    assert messages[0].content == b"line\r\n.x\r\n"


@FEEDS
def test_size_limit(pieces: Callable[[bytes], list[bytes]]) -> None:
    limits = LmtpLimits(max_message_size=20)
    script = (
        b"LHLO x\r\nMAIL FROM:<a@b> SIZE=21\r\nMAIL FROM:<a@b> SIZE=20\r\n"
        b"RCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n"
        + b"x" * 30
        + b"\r\n" * 20
        + b".\r\nNOOP\r\n"
    )
    out, messages = run(script, pieces=pieces, limits=limits)
    # SIZE= over the limit at MAIL; the too-big DATA: one 552 per recipient, then go on.
    assert codes(out) == ["250", "552", "250", "250", "250", "354", "552", "552", "250"]
    assert b"552 5.3.4 " in out
    assert messages == []


def test_size_limit_keeps_memory_bounded() -> None:
    conn = LmtpConnection("mx", LmtpLimits(max_message_size=1000))
    conn.receive_data(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a>\r\n")
    assert isinstance(conn.next_event(), Send)
    assert isinstance(conn.next_event(), Send)
    assert isinstance(conn.next_event(), Recipient)
    conn.accept_recipient("a")
    conn.receive_data(b"DATA\r\n")
    assert conn.next_event() == Send(Reply.of(354, "Start mail input; end with <CRLF>.<CRLF>"))
    assert conn.next_event() == MessageStart("")
    handed_out = 0
    for _ in range(400):
        conn.receive_data(b"y" * 499 + b"\r")
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, MessageData)
            handed_out += len(event.data)
        assert len(conn._data) <= 4 and not conn._buf
    # Octets past the limit are never handed out (the driver keeps at most the limit).
    assert 0 < handed_out <= 1000
    conn.receive_data(b"\n.\r\n")
    event = conn.next_event()
    assert isinstance(event, Send)
    assert [r.code for r in event.replies] == [552]


def test_data_is_handed_out_in_bounded_slices() -> None:
    """A client that sends a whole big message at once still gets it transformed a slice
    per event (the driver serves other clients between reads)."""
    conn = LmtpConnection("mx", LmtpLimits(max_message_size=10 * DATA_CHUNK))
    conn.receive_data(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a>\r\n")
    conn.next_event()
    conn.next_event()
    assert isinstance(conn.next_event(), Recipient)
    conn.accept_recipient("a")
    body = (b"line\n.dot\r\n" * (4 * DATA_CHUNK // 11))[: 4 * DATA_CHUNK]
    conn.receive_data(b"DATA\r\n" + body + b"\r\n.\r\nNOOP\r\n")
    assert isinstance(conn.next_event(), Send)
    assert conn.next_event() == MessageStart("s@x")
    got = bytearray()
    while isinstance(event := conn.next_event(), MessageData):
        assert len(event.data) <= 2 * DATA_CHUNK  # bare LFs made CRLF: at most twice as long
        got += event.data
    assert isinstance(event, Message) and event.size == len(got)
    assert bytes(got) == reference_content(body + b"\r\n")
    conn.finish_message([Reply.of(250, "ok")])
    assert conn.next_event() == Send(Reply.of(250, "2.0.0 OK"))


@FEEDS
def test_pipelined_commands_keep_order(pieces: Callable[[bytes], list[bytes]]) -> None:
    script = (
        b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody@x>\r\nRCPT TO:<carol@example.org>\r\n"
        b"RCPT TO:<alice+lists@x>\r\nDATA\r\nhello\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n"
    )
    out, messages = run(script, pieces=pieces)
    assert codes(out) == [
        "250",
        "250",
        "550",
        "250",
        "250",
        "354",
        "250",
        "250",
        "250",
        "250",
        "221",
    ]
    assert [r.user for r in messages[0].recipients] == ["carol@example.org", "alice"]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"HELO x", "500"),  # RFC 2033 §4.1
        (b"EHLO x", "500"),
        (b"VRFY alice", "502"),
        (b"EXPN list", "502"),
        (b"BDAT 10 LAST", "502"),
        (b"XYZZY", "500"),
        (b"", "500"),
        (b"LHLO", "501"),
        (b"MAIL FROM:<a@b>", "503"),  # before LHLO
        (b"RCPT TO:<a@b>", "503"),
        (b"DATA", "503"),
        (b"RSET now", "501"),
        (b"NOOP anything", "250"),
        (b"\x00\x01\x02", "501"),
        (b"\xff\xfe LHLO", "501"),
    ],
)
def test_single_lines(line: bytes, code: str) -> None:
    out, _ = run(line + b"\r\n")
    assert codes(out) == [code]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"MAIL FROM:a@b", "501"),
        (b"MAIL FROM:<a@b", "501"),
        (b"MAIL TO:<a@b>", "501"),
        (b"MAIL FROM:<a@b>x", "501"),
        (b"MAIL FROM:<a@b> SIZE=big", "501"),
        (b"MAIL FROM:<a@b> BODY=BINARYMIME", "501"),
        (b"MAIL FROM:<a@b> SMTPUTF8", "555"),
        (b"MAIL FROM: <a@b>", "250"),  # lenient, as Postfix
        (b"mail from:<@relay.example:a@b>", "250"),  # source route ignored
        (b'MAIL FROM:<"john doe"@b>', "250"),
    ],
)
def test_mail_syntax(line: bytes, code: str) -> None:
    out, _ = run(b"LHLO x\r\n" + line + b"\r\n")
    assert codes(out) == ["250", code]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"RCPT TO:<>", "501"),
        (b"RCPT TO:alice", "501"),
        (b"RCPT TO:<alice> NOTIFY=NEVER", "555"),
        (b"RCPT TO:<ALICE@x>", "550"),  # user names are exact
        (b"RCPT TO:<bob@anywhere>", "250"),
        (b'RCPT TO:<"bob"@x>', "250"),
    ],
)
def test_rcpt_syntax(line: bytes, code: str) -> None:
    out, _ = run(b"LHLO x\r\nMAIL FROM:<>\r\n" + line + b"\r\n")
    assert codes(out) == ["250", "250", code]


def test_data_without_valid_recipient_is_503() -> None:
    """RFC 2033 §4.2: DATA fails with 503 when no RCPT succeeded."""
    out, _ = run(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<nobody>\r\nDATA\r\n")
    assert codes(out) == ["250", "250", "550", "503"]


def test_nested_mail_and_rset() -> None:
    out, _ = run(b"LHLO x\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\nRSET\r\nMAIL FROM:<>\r\n")
    assert codes(out) == ["250", "250", "503", "250", "250"]


def test_overlong_command_line() -> None:
    limits = LmtpLimits(max_command_line=100)
    out, _ = run(b"LHLO x\r\nNOOP " + b"a" * 500 + b"\r\nNOOP\r\n", limits=limits)
    assert codes(out) == ["250", "500", "250"]
    assert b"Line too long" in out


def test_too_many_recipients() -> None:
    limits = LmtpLimits(max_recipients=2)
    out, _ = run(b"LHLO x\r\nMAIL FROM:<>\r\n" + b"RCPT TO:<alice>\r\n" * 3, limits=limits)
    assert codes(out) == ["250", "250", "250", "250", "452"]


def test_too_many_errors_closes() -> None:
    out, _ = run(b"GARBAGE\r\n" * 30, limits=LmtpLimits(max_errors=5))
    assert codes(out) == ["500"] * 4 + ["421"]


def test_eof_mid_data_is_closed_without_message() -> None:
    out, messages = run(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\npartial")
    assert codes(out) == ["250", "250", "250", "354"]
    assert messages == []


def test_driver_misuse_is_caught() -> None:
    conn = LmtpConnection()
    with pytest.raises(ProtocolMisuse):
        conn.accept_recipient("x")
    conn.receive_data(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a>\r\nNOOP\r\n")
    conn.next_event()
    conn.next_event()
    assert isinstance(conn.next_event(), Recipient)
    with pytest.raises(ProtocolMisuse):
        conn.next_event()
    with pytest.raises(ProtocolMisuse):
        conn.refuse_recipient(Reply.of(250, "no"))


def test_never_crashes_on_random_bytes() -> None:
    rng = random.Random(2033)
    alphabet = [
        b"\r\n",
        b".",
        b"<",
        b">",
        b":",
        b" ",
        b"LHLO x",
        b"MAIL FROM",
        b"RCPT TO",
        b"DATA",
        b"\x00",
        b"\xff",
        b"RSET",
        b"SIZE=",
        b"@",
    ]
    for _ in range(300):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        out, _ = run(data, pieces=randomly)
        assert all(c.isdigit() for c in codes(out))


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice", ("alice",)),
        ("alice@example.org", ("alice@example.org", "alice")),
        ("alice+lists@example.org", ("alice+lists@example.org", "alice+lists", "alice")),
        ('"john doe"@example.org', ('"john doe"@example.org', "john doe")),
        ("+x@example.org", ("+x@example.org", "+x")),
    ],
)
def test_recipient_candidates(address: str, expected: tuple[str, ...]) -> None:
    assert recipient_candidates(address) == expected


def test_local_part_and_return_path() -> None:
    assert local_part('"a\\"b"@x') == 'a"b'
    assert return_path("a@b") == b"Return-Path: <a@b>\r\n"
    assert return_path("") == b"Return-Path: <>\r\n"
    assert return_path("a\r\nX-Evil: 1") == b"Return-Path: <aX-Evil: 1>\r\n"
