"""DATA streamed (imapd/lmtp/protocol.py): for any input split at any points, the octets
handed out in `MessageData` events are what the whole-buffer transformation made of the
whole DATA before it streamed (final "." line, dot-unstuffing, bare LF made CRLF), the
size limit refuses exactly the messages that transformation found too big, and the input
after the final "." is read as commands."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.lmtp.protocol import (
    NEED_DATA,
    LmtpConnection,
    LmtpLimits,
    Message,
    MessageData,
    MessageStart,
    Recipient,
    Reply,
    Send,
)

_TERMINATOR = re.compile(rb"\n\.\r?\n")
_BARE_LF = re.compile(rb"(?<!\r)\n")
HEAD = b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a>\r\nDATA\r\n"


def whole_buffer(data: bytes) -> tuple[bytes, bytes] | None:
    """The transformation DATA made before it streamed (the whole DATA in one buffer
    behind a sentinel LF): (content, what follows the final "." line), or None without one."""
    buf = b"\n" + data
    m = _TERMINATOR.search(buf)
    if m is None:
        return None
    content = buf[: m.start() + 1].replace(b"\n.", b"\n")[1:]
    return _BARE_LF.sub(b"\r\n", content), buf[m.end() :]


def drive(pieces: list[bytes], max_size: int) -> tuple[bytes | None, list[int], int]:
    """Feed ``pieces``; returns (the delivered content or None, the reply codes after the
    354, the largest MessageData)."""
    conn = LmtpConnection("mx", LmtpLimits(max_message_size=max_size))
    codes: list[int] = []
    content: bytearray | None = None
    delivered: bytes | None = None
    largest = 0
    after_354 = False
    for piece in [*pieces, b""]:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            match event:
                case Send(replies=replies):
                    if after_354:
                        codes += [r.code for r in replies]
                    after_354 = after_354 or replies[0].code == 354
                case Recipient():
                    conn.accept_recipient("a")
                case MessageStart(sender=sender):
                    assert sender == "s@x" and content is None
                    content = bytearray()
                case MessageData(data=data):
                    assert content is not None and data
                    largest = max(largest, len(data))
                    content += data
                case Message(size=size):
                    assert content is not None and size == len(content)
                    delivered = bytes(content)
                    codes += [250]
                    conn.finish_message([Reply.of(250, "2.0.0 ok")])
                case _:
                    return delivered, codes, largest
    return delivered, codes, largest


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


#: Mostly the octets that matter to the framing, so boundaries fall everywhere among them.
DATA = st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"x", b"\r\n", b"\r\n.", b"\n.\n", b"\xff"])
    | st.binary(max_size=3),
    max_size=60,
).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(data=DATA, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_streamed_equals_whole_buffer(data: bytes, cuts: list[int]) -> None:
    stream = data + b"\r\n.\r\nNOOP\r\n"  # a final "." line is always there, maybe earlier
    expected = whole_buffer(stream)
    assert expected is not None
    content, rest = expected
    delivered, codes, _ = drive(split(HEAD + stream, cuts), 1 << 20)
    assert delivered == content
    # What follows the final "." is commands: NOOP when data held no earlier final line.
    assert codes[0] == 250
    if rest == b"NOOP\r\n":
        assert codes == [250, 250]


@settings(max_examples=300, deadline=None)
@given(
    data=DATA,
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    max_size=st.integers(min_value=0, max_value=40),
)
def test_size_limit_as_whole_buffer(data: bytes, cuts: list[int], max_size: int) -> None:
    stream = data + b"\r\n.\r\nNOOP\r\n"
    expected = whole_buffer(stream)
    assert expected is not None
    content, _ = expected
    delivered, codes, _ = drive(split(HEAD + stream, cuts), max_size)
    if len(content) > max_size:
        assert delivered is None and codes[0] == 552
    else:
        assert delivered == content and codes[0] == 250


@settings(max_examples=100, deadline=None)
@given(data=DATA, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_no_final_line_no_message(data: bytes, cuts: list[int]) -> None:
    """EOF before the final "." line: no message, whatever was handed out."""
    if whole_buffer(data) is not None:
        return
    delivered, codes, _ = drive(split(HEAD + data, cuts), 1 << 20)
    assert delivered is None and codes == []


def test_big_input_at_once_is_sliced() -> None:
    body = b"a.\n..b\r\n" * 100_000
    delivered, codes, largest = drive([HEAD + body + b".\r\n"], 1 << 24)
    expected = whole_buffer(body + b".\r\n")
    assert expected is not None and delivered == expected[0] and codes == [250]
    assert largest <= 2 * 65536
