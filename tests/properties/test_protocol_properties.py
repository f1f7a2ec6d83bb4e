"""Hypothesis: the connection never crashes, splitting never matters, values round-trip."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapd.protocol import commands as c
from imapd.protocol.connection import (
    NEED_DATA,
    ConnectionClosed,
    ContinueRequest,
    Event,
    Fatal,
    IdleDone,
    Limits,
    Rejected,
    SaslResponse,
    ServerConnection,
)
from imapd.protocol.parser import Cursor, sequence_set
from imapd.protocol.responses import MailboxName
from imapd.protocol.serializer import serialize_string, serialize_value
from imapd.protocol.state import Authenticated, NotAuthenticated, Selected, State
from imapd.protocol.utf7 import decode, encode
from imapd.protocol.values import SequenceSet

COMMAND_TYPES = tuple(c.Command.__args__)
ALLOWED_EVENTS = (
    *COMMAND_TYPES,
    Rejected,
    Fatal,
    ContinueRequest,
    IdleDone,
    SaslResponse,
    ConnectionClosed,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

STATES: list[State] = [NotAuthenticated(), Authenticated("u"), Selected("u", "INBOX", False)]

# Fragments that steer random input into interesting places.
TOKENS = [
    b"a ",
    b"b1 ",
    b"UID ",
    b"FETCH ",
    b"SEARCH ",
    b"STORE ",
    b"APPEND ",
    b"LOGIN ",
    b"SELECT ",
    b"LIST ",
    b"ID ",
    b"IDLE",
    b"AUTHENTICATE PLAIN",
    b"NOOP",
    b"1:*",
    b"$",
    b" ",
    b"(",
    b")",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"~{1}\r\n",
    b"{99999999999}\r\n",
    b"\r\n",
    b"\n",
    b'"',
    b"\\",
    b"BODY[",
    b"]",
    b"<0.5>",
    b"NOT ",
    b"OR ",
    b"&",
    b"-",
    b"\x00",
    b"\xff",
    b"INBOX",
    b"DONE",
]
fuzz_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=5)), max_size=40).map(b"".join),
)


def run(conn: ServerConnection, pieces: list[bytes], eof: bool) -> list[Event]:
    events: list[Event] = []
    done = False
    for piece in [*(p for p in pieces if p), *([b""] if eof else [])]:
        if done:
            break
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, ALLOWED_EVENTS), event
            events.append(event)
            if isinstance(event, Fatal | ConnectionClosed):
                done = True
                break
            if isinstance(event, c.Idle):
                conn.start_idle(event.tag)
            elif isinstance(event, c.Authenticate):
                conn.start_sasl(event.tag)
    return events


def make(state: State, limits: Limits) -> ServerConnection:
    conn = ServerConnection(limits)
    if not isinstance(state, NotAuthenticated):
        conn.set_state(Authenticated("u"))
    if isinstance(state, Selected):
        conn.set_state(state)
    return conn


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({p % (len(data) + 1) for p in points})
    pieces, last = [], 0
    for b in bounds:
        pieces.append(data[last:b])
        last = b
    pieces.append(data[last:])
    return [p for p in pieces if p]


@FAST
@given(
    data=fuzz_bytes,
    points=st.lists(st.integers(min_value=0), max_size=6),
    state=st.sampled_from(STATES),
    utf8=st.booleans(),
    eof=st.booleans(),
)
def test_any_bytes_any_split_same_events_never_raise(
    data: bytes, points: list[int], state: State, utf8: bool, eof: bool
) -> None:
    whole = make(state, Limits())
    whole.utf8 = utf8
    split = make(state, Limits())
    split.utf8 = utf8
    expected = run(whole, [data], eof)
    assert run(split, cut(data, points), eof) == expected
    bytewise = make(state, Limits())
    bytewise.utf8 = utf8
    assert run(bytewise, [data[i : i + 1] for i in range(len(data))], eof) == expected


@FAST
@given(
    data=fuzz_bytes,
    points=st.lists(st.integers(min_value=0), max_size=6),
    state=st.sampled_from(STATES),
)
def test_tiny_limits_never_raise(data: bytes, points: list[int], state: State) -> None:
    limits = Limits(
        max_line_length=12,
        max_literal_size=4,
        max_depth=2,
        max_args=3,
        max_bad_commands=3,
        max_discard_length=20,
    )
    run(make(state, limits), cut(data, points), True)


no_nul_text = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=1200
)


@FAST
@given(s=no_nul_text, utf8=st.booleans())
def test_string_round_trip(s: str, utf8: bool) -> None:
    conn = make(NotAuthenticated(), Limits())
    conn.utf8 = utf8
    wire = b"a LOGIN " + serialize_string(s, utf8=utf8) + b" x\r\n"
    events = [e for e in run(conn, [wire], False) if not isinstance(e, ContinueRequest)]
    assert len(events) == 1
    assert isinstance(events[0], c.Login)
    assert events[0].user == s


@FAST
@given(
    name=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60),
    utf8=st.booleans(),
)
def test_mailbox_round_trip(name: str, utf8: bool) -> None:
    conn = make(Authenticated("u"), Limits())
    conn.utf8 = utf8
    wire = b"a SELECT " + serialize_value(MailboxName(name), utf8=utf8) + b"\r\n"
    events = [e for e in run(conn, [wire], False) if not isinstance(e, ContinueRequest)]
    expected = "INBOX" if name.upper() == "INBOX" else name
    assert events == [c.Select("a", expected)]


seq_numbers = st.one_of(st.none(), st.integers(min_value=1, max_value=2**32 - 1))
sequence_sets = st.one_of(
    st.just(SequenceSet(saved=True)),
    st.lists(st.tuples(seq_numbers, seq_numbers), min_size=1, max_size=20).map(
        lambda rs: SequenceSet(tuple(rs))
    ),
)


@FAST
@given(seqs=sequence_sets)
def test_sequence_set_round_trip(seqs: SequenceSet) -> None:
    cur = Cursor(str(seqs).encode())
    assert sequence_set(cur) == seqs
    assert cur.at_end()
    conn = make(Selected("u", "INBOX", False), Limits())
    (event,) = run(conn, [f"a UID FETCH {seqs} FLAGS\r\n".encode()], False)
    assert isinstance(event, c.Fetch)
    assert event.sequence_set == seqs


@FAST
@given(s=st.text(st.characters(exclude_categories=["Cs"])))
def test_mutf7_round_trip(s: str) -> None:
    wire = encode(s)
    assert wire.isascii()
    assert decode(wire) == s


@FAST
@given(wire=st.text(st.sampled_from("&-AaBZz09+,/ .%*\x7f"), max_size=30))
def test_mutf7_decode_is_canonical(wire: str) -> None:
    try:
        text = decode(wire)
    except ValueError:
        return
    assert encode(text) == wire


@FAST
@given(
    when=st.datetimes(
        min_value=dt.datetime(1000, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds)
        max_value=dt.datetime(9999, 12, 31),  # noqa: DTZ001
        timezones=st.sampled_from(
            [
                dt.UTC,
                dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
                dt.timezone(dt.timedelta(hours=14)),
            ]
        ),
    )
)
def test_append_date_time_round_trip(when: dt.datetime) -> None:
    when = when.replace(microsecond=0)
    offset = when.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    text = when.strftime(f"%d-%b-%Y %H:%M:%S {zone}")
    conn = make(Authenticated("u"), Limits())
    (event,) = run(conn, [f'a APPEND x "{text}" {{1+}}\r\nm\r\n'.encode()], False)
    assert isinstance(event, c.Append)
    assert event.messages[0].date == when
