"""The framer alone: line ends, literals, limits, modes."""

from __future__ import annotations

import time

import pytest

from imapd.protocol.framing import (
    FRAME_EOF,
    FRAME_NEED_DATA,
    Frame,
    FrameEvent,
    FrameFatal,
    Framer,
    FrameRejected,
    LiteralChunk,
    Mode,
    ModeLine,
    ModeLineTooLong,
    SyncLiteral,
    read_tag,
)
from imapd.protocol.values import SpooledLiteral


def framer(line: int = 100, literal: int = 50, discard: int = 1000) -> Framer:
    return Framer(max_line_length=line, max_literal_size=literal, max_discard_length=discard)


def events(f: Framer, *, accept: bool = True) -> list[FrameEvent]:
    out: list[FrameEvent] = []
    while (e := f.next_event()) not in (FRAME_NEED_DATA, FRAME_EOF):
        out.append(e)
        if isinstance(e, SyncLiteral):
            f.accept_literal() if accept else f.reject_command()
        if isinstance(e, FrameFatal):
            break
    return out


def test_simple_line() -> None:
    f = framer()
    f.feed(b"a NOOP\r\nb NOOP\r\n")
    assert events(f) == [Frame(b"a NOOP", (), "a"), Frame(b"b NOOP", (), "b")]


def test_bare_lf_ends_a_line() -> None:
    f = framer()
    f.feed(b"a NOOP\n")
    assert events(f) == [Frame(b"a NOOP", (), "a")]


def test_partial_line_needs_data() -> None:
    f = framer()
    f.feed(b"a NO")
    assert f.next_event() is FRAME_NEED_DATA
    f.feed(b"OP\r")
    assert f.next_event() is FRAME_NEED_DATA
    f.feed(b"\n")
    assert f.next_event() == Frame(b"a NOOP", (), "a")


def test_sync_literal_then_rest_of_line() -> None:
    f = framer()
    f.feed(b"a LOGIN {3}\r\n")
    assert f.next_event() == SyncLiteral(b"a LOGIN {3}", "a", 3)
    f.accept_literal()
    assert f.next_event() is FRAME_NEED_DATA
    f.feed(b"u\r\n pw\r\n")
    assert f.next_event() == Frame(b"a LOGIN {3} pw", ((11, b"u\r\n"),), "a")


def test_nonsync_and_literal8_and_empty_literal() -> None:
    f = framer()
    f.feed(b"a APPEND x {2+}\r\nab ~{1+}\r\n\x00 {0}\r\n\r\n")
    assert events(f) == [
        SyncLiteral(b"a APPEND x {2+} ~{1+} {0}", "a", 0),
        Frame(b"a APPEND x {2+} ~{1+} {0}", ((15, b"ab"), (21, b"\x00"), (25, b"")), "a"),
    ]


def test_literal_marker_only_at_end_of_line() -> None:
    f = framer()
    f.feed(b"a LOGIN {3} x\r\n")
    assert events(f) == [Frame(b"a LOGIN {3} x", (), "a")]


def test_rejecting_a_sync_literal_drops_the_command() -> None:
    f = framer()
    f.feed(b"a APPEND x {5}\r\nb NOOP\r\n")
    assert events(f, accept=False) == [
        SyncLiteral(b"a APPEND x {5}", "a", 5),
        Frame(b"b NOOP", (), "b"),
    ]


def test_sync_literal_too_big_is_refused_before_it_is_sent() -> None:
    f = framer(literal=10)
    f.feed(b"a APPEND x {11}\r\nb NOOP\r\n")
    assert events(f) == [
        FrameRejected("a", "NO", "Literal too big", "TOOBIG"),
        Frame(b"b NOOP", (), "b"),
    ]


def test_huge_literal_count() -> None:
    f = framer()
    f.feed(b"a APPEND x {99999999999999999999}\r\n")
    assert events(f) == [FrameRejected("a", "NO", "Literal too big", "TOOBIG")]


def test_absurd_literal_count_is_not_a_literal() -> None:
    # More than 20 digits cannot be a length: the line is left for the parser to reject.
    f = framer()
    f.feed(b"a APPEND x {999999999999999999999}\r\n")
    assert events(f) == [Frame(b"a APPEND x {999999999999999999999}", (), "a")]


def test_nonsync_literal_too_big_is_fatal() -> None:
    f = framer(literal=10)
    f.feed(b"a APPEND x {11+}\r\n")
    assert events(f) == [FrameFatal("Literal too big", "TOOBIG")]


def test_literals_per_command_are_bounded() -> None:
    # scripts/fuzz: ~20,000 "{0}" literals fit in a 64 kB line; each cost framing work and a
    # continuation, and one such command stalled every client for 0.5-3 s.
    f = Framer(max_line_length=100, max_literal_size=50, max_discard_length=1000, max_literals=2)
    f.feed(b"a APPEND x {1+}\r\na {1+}\r\nb {1+}\r\nc {1+}\r\nd\r\nb NOOP\r\n")
    assert events(f) == [FrameRejected("a", "BAD", "Too many literals"), Frame(b"b NOOP", (), "b")]
    f = Framer(max_line_length=100, max_literal_size=50, max_discard_length=1000, max_literals=2)
    f.feed(b"a APPEND x {1}\r\na {1}\r\nb {1}\r\nc NOOP\r\n")  # no "+" for the third
    assert events(f) == [
        SyncLiteral(b"a APPEND x {1}", "a", 1),
        SyncLiteral(b"a APPEND x {1} {1}", "a", 1),
        FrameRejected("a", "BAD", "Too many literals"),
        Frame(b"c NOOP", (), "c"),
    ]
    f = Framer(max_line_length=100, max_literal_size=50, max_discard_length=1000, max_literals=2)
    f.feed(b"a APPEND x {1+}\r\na {1+}\r\nb\r\n")  # at the limit: a command as usual
    assert [type(e) for e in events(f)] == [Frame]


def test_line_too_long_is_rejected_and_stream_stays_in_sync() -> None:
    f = framer(line=20)
    f.feed(b"a SEARCH " + b"X" * 50 + b"\r\nb NOOP\r\n")
    assert events(f) == [FrameRejected("a", "BAD", "Line too long"), Frame(b"b NOOP", (), "b")]


def test_line_too_long_bytewise() -> None:
    f = framer(line=20)
    out: list[FrameEvent] = []
    for b in b"a SEARCH " + b"X" * 50 + b"\r\nb NOOP\r\n":
        f.feed(bytes([b]))
        out.extend(events(f))
    assert out == [FrameRejected("a", "BAD", "Line too long"), Frame(b"b NOOP", (), "b")]


def test_too_long_counts_all_lines_of_a_command_but_not_literals() -> None:
    f = framer(line=30, literal=100)
    f.feed(b"a LOGIN {60+}\r\n" + b"x" * 60 + b" pw\r\n")
    assert [type(e) for e in events(f)] == [Frame]
    f = framer(line=20)
    f.feed(b"a LOGIN {1+}\r\nx " + b"y" * 20 + b"\r\nb NOOP\r\n")
    assert events(f) == [FrameRejected("a", "BAD", "Line too long"), Frame(b"b NOOP", (), "b")]


def test_overlong_line_ending_in_nonsync_literal_skips_the_literal() -> None:
    f = framer(line=20)
    f.feed(b"a APPEND " + b"x" * 30 + b" {5+}\r\nb NOO\r\nc NOOP\r\n")
    assert events(f) == [FrameRejected("a", "BAD", "Line too long"), Frame(b"c NOOP", (), "c")]


def test_overlong_line_ending_in_sync_literal_is_answered_at_once() -> None:
    f = framer(line=20)
    f.feed(b"a APPEND " + b"x" * 30 + b" {5}\r\nc NOOP\r\n")
    assert events(f) == [FrameRejected("a", "BAD", "Line too long"), Frame(b"c NOOP", (), "c")]


def test_endless_line_is_fatal() -> None:
    f = framer(line=20, discard=100)
    f.feed(b"a " + b"x" * 50)
    assert events(f) == []
    f.feed(b"x" * 200)
    assert events(f) == [FrameFatal("Line too long")]


def test_byte_at_a_time_is_linear() -> None:
    f = framer(line=300_000)
    data = b"a SEARCH " + b"X" * 200_000 + b"\r\n"
    start = time.perf_counter()
    for i in range(len(data)):
        f.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert f.next_event() is FRAME_NEED_DATA
    assert isinstance(f.next_event(), Frame)
    assert time.perf_counter() - start < 5


def test_idle_mode() -> None:
    f = framer()
    f.set_mode(Mode.IDLE, "i1")
    f.feed(b"DONE\r\na NOOP\r\n")
    assert events(f) == [ModeLine(Mode.IDLE, "i1", b"DONE"), Frame(b"a NOOP", (), "a")]
    assert f.mode is Mode.COMMAND


def test_idle_mode_overlong_line() -> None:
    f = framer(line=10)
    f.set_mode(Mode.IDLE, "i1")
    f.feed(b"D" * 30 + b"\r\na NOOP\r\n")
    assert events(f) == [ModeLineTooLong(Mode.IDLE, "i1"), Frame(b"a NOOP", (), "a")]


def test_sasl_mode_ignores_literal_markers() -> None:
    f = framer()
    f.set_mode(Mode.SASL, "s")
    f.feed(b"{5}\r\n")
    assert events(f) == [ModeLine(Mode.SASL, "s", b"{5}")]


def test_set_mode_mid_command_is_a_bug() -> None:
    f = framer()
    f.feed(b"a LOGIN {1+}\r\n")
    assert f.next_event() is FRAME_NEED_DATA
    with pytest.raises(RuntimeError):
        f.set_mode(Mode.IDLE, "x")


def test_decision_required_before_next_event() -> None:
    f = framer()
    f.feed(b"a LOGIN {1}\r\n")
    assert isinstance(f.next_event(), SyncLiteral)
    with pytest.raises(RuntimeError):
        f.next_event()


def test_eof() -> None:
    f = framer()
    f.feed(b"a NOOP\r\nb NO")
    f.feed(b"")
    assert f.next_event() == Frame(b"a NOOP", (), "a")
    assert f.next_event() is FRAME_EOF
    assert f.next_event() is FRAME_EOF


def test_take_buffered() -> None:
    f = framer()
    f.feed(b"a STARTTLS\r\n\x16\x03\x01")
    assert isinstance(f.next_event(), Frame)
    assert f.take_buffered() == b"\x16\x03\x01"
    assert f.next_event() is FRAME_NEED_DATA


@pytest.mark.parametrize(
    ("line", "tag"),
    [
        (b"a NOOP", "a"),
        (b"a", "a"),
        (b"a+ NOOP", None),
        (b"", None),
        (b"* OK", None),
        (b"x]y z", "x]y"),
    ],
)
def test_read_tag(line: bytes, tag: str | None) -> None:
    assert read_tag(line) == tag


def test_big_literals_leave_in_chunks_and_are_not_kept() -> None:
    """At spool_size octets a literal is handed out as it arrives (first chunk marked),
    the frame holding a SpooledLiteral for it; smaller ones stay inline."""
    f = Framer(max_line_length=100, max_literal_size=50, max_discard_length=1000, spool_size=5)
    f.feed(b"a APPEND x {6+}\r\nabc")
    assert events(f) == [LiteralChunk(b"abc", True, 6)]
    f.feed(b"def {2}\r\n")
    assert events(f) == [
        LiteralChunk(b"def", False, 6),
        SyncLiteral(b"a APPEND x {6+} {2}", "a", 2),
    ]
    f.feed(b"gh {5+}\r\n12345\r\n")
    assert events(f) == [
        LiteralChunk(b"12345", True, 5),
        Frame(
            b"a APPEND x {6+} {2} {5+}",
            ((15, SpooledLiteral(0, 6)), (19, b"gh"), (24, SpooledLiteral(1, 5))),
            "a",
        ),
    ]
    assert not f.in_literal


def test_literals_of_one_command_are_limited_together() -> None:
    f = Framer(
        max_line_length=100, max_literal_size=50, max_discard_length=1000, max_literal_total=60
    )
    f.feed(b"a APPEND x {40+}\r\n" + b"x" * 40 + b" {30}\r\n")
    assert events(f) == [FrameRejected("a", "NO", "Literal too big", "TOOBIG")]
    f.feed(b"b APPEND x {40+}\r\n" + b"x" * 40 + b" {30+}\r\n")
    assert events(f) == [FrameFatal("Literal too big", "TOOBIG")]
