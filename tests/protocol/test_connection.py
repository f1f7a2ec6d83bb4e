"""ServerConnection: literal flow, limits, IDLE, SASL, EOF, abuse rules, the state walk."""

from __future__ import annotations

import pytest

from imapd.protocol import commands as c
from imapd.protocol.connection import (
    NEED_DATA,
    ConnectionClosed,
    ContinueRequest,
    Fatal,
    IdleDone,
    Limits,
    Rejected,
    SaslResponse,
    ServerConnection,
)
from imapd.protocol.framing import Mode
from imapd.protocol.responses import (
    Continuation,
    MailboxName,
    Response,
    Tagged,
    Untagged,
    UntaggedStatus,
)
from imapd.protocol.state import (
    ALLOWED,
    Authenticated,
    IllegalTransition,
    Logout,
    NotAuthenticated,
    Selected,
    State,
)
from imapd.protocol.values import FetchAtt, Secret, SequenceSet
from tests.protocol.feeding import connection, drain, feed

SELECTED = Selected("u", "INBOX", False)


def test_pipelined_commands_come_out_in_order() -> None:
    conn = connection()
    events = feed(conn, [b"a NOOP\r\nb CAPABILITY\r\nc ID NIL\r\nd LOGOUT\r\n"])
    assert events == [c.Noop("a"), c.Capability("b"), c.Id("c", None), c.Logout("d")]


def test_sync_literal_flow() -> None:
    conn = connection()
    conn.receive_data(b"a LOGIN {4}\r\n")
    assert conn.next_event() == ContinueRequest("Ready for literal data")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"us")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"er {2}\r\n")
    assert conn.next_event() == ContinueRequest("Ready for literal data")
    conn.receive_data(b"pw\r\n")
    assert conn.next_event() == c.Login("a", "user", Secret("pw"))
    assert conn.next_event() is NEED_DATA


def test_continue_request_only_when_the_framer_reaches_the_literal() -> None:
    conn = connection()
    conn.receive_data(b"a NOOP\r\nb LOGIN {4}\r\n")
    assert conn.next_event() == c.Noop("a")
    assert isinstance(conn.next_event(), ContinueRequest)


def test_nonsync_literal_needs_no_continuation() -> None:
    conn = connection(Authenticated("u"))
    events = feed(conn, [b"a APPEND INBOX {5+}\r\nhello\r\n"])
    assert events == [c.Append("a", "INBOX", (c.AppendMessage((), None, b"hello"),))]


def test_toobig_sync_literal_and_next_pipelined_command() -> None:
    conn = connection(Authenticated("u"), Limits(max_literal_size=10))
    events = feed(conn, [b"a APPEND INBOX {11}\r\nb NOOP\r\n"])
    assert events == [Rejected(Tagged("a", "NO", "Literal too big", "TOOBIG")), c.Noop("b")]


def test_oversize_nonsync_literal_is_fatal() -> None:
    conn = connection(Authenticated("u"), Limits(max_literal_size=10))
    events = feed(conn, [b"a APPEND INBOX {11+}\r\n01234567890\r\nb NOOP\r\n"])
    assert events == [Fatal(UntaggedStatus("BYE", "Literal too big", "TOOBIG"))]
    assert conn.next_event() is NEED_DATA


def test_literal_limit_is_lower_before_authentication() -> None:
    limits = Limits(max_literal_size=100, max_literal_size_unauthenticated=10)
    conn = connection(None, limits)
    events = feed(conn, [b"a LOGIN {11}\r\nb LOGIN {11+}\r\n"])
    assert events == [
        Rejected(Tagged("a", "NO", "Literal too big", "TOOBIG")),
        Fatal(UntaggedStatus("BYE", "Literal too big", "TOOBIG")),
    ]
    conn = connection(Authenticated("u"), limits)
    assert feed(conn, [b"a APPEND x {11}\r\n"]) == [ContinueRequest("Ready for literal data")]


def test_too_many_literals_in_one_command_is_bad() -> None:
    # scripts/fuzz: the default bound, through the connection (MULTIAPPEND up to it works).
    conn = connection(Authenticated("u"))
    limit = Limits().max_literals
    ok = b"a APPEND INBOX" + b" {1+}\r\nx" * limit + b"\r\n"
    (append,) = feed(conn, [ok])
    assert isinstance(append, c.Append) and len(append.messages) == limit
    over = b"b APPEND INBOX" + b" {1+}\r\nx" * (limit + 1) + b"\r\nc NOOP\r\n"
    assert feed(conn, [over]) == [Rejected(Tagged("b", "BAD", "Too many literals")), c.Noop("c")]


def test_line_too_long() -> None:
    conn = connection(SELECTED, Limits(max_line_length=100))
    events = feed(conn, [b"a SEARCH " + b"SEEN " * 40 + b"\r\nb NOOP\r\n"])
    assert events == [Rejected(Tagged("a", "BAD", "Line too long")), c.Noop("b")]


def test_literal_refused_before_continuation_when_command_cannot_run() -> None:
    conn = connection()  # APPEND is not allowed before authentication
    events = feed(conn, [b"a APPEND INBOX {5}\r\nb NOOP\r\n"])
    assert events == [
        Rejected(Tagged("a", "BAD", "Command not allowed in this state")),
        c.Noop("b"),
    ]


MISPLACED_LITERAL8 = Rejected(
    Tagged("a", "BAD", "literal8 (~{n}) is only allowed as APPEND or SETMETADATA data")
)


@pytest.mark.parametrize(
    "line",
    [
        b"a SELECT ~{5}",
        b'a LIST "" ~{5}',
        b"a LIST ~{5}",
        b"a CREATE ~{5}",
        b"a APPEND ~{5}",
        b"a APPEND x (~{5}",
        b"a STATUS ~{5}",
        b"a SETMETADATA ~{5}",
        b"a SETMETADATA x (~{5}",
        b'a LIST "" (~{5}',
    ],
)
def test_misplaced_literal8_is_bad_before_any_continuation(line: bytes) -> None:
    """RFC 3516 §4.4: literal8 is the grammar of APPEND's message data (and RFC 5464's
    SETMETADATA values) only; where the grammar cannot take it the command is BAD at once:
    no "+" inviting the client to upload up to the literal limit first (issue 16 item 11)."""
    conn = connection(Authenticated("u"))
    events = feed(conn, [line + b"\r\nb NOOP\r\n"])
    assert events == [MISPLACED_LITERAL8, c.Noop("b")]


@pytest.mark.parametrize(
    "line",
    [
        b"a APPEND x ~{5}",
        b"a APPEND {1+}\r\nx ~{5}",
        b"a APPEND x (\\Seen) ~{5}",
        b'a APPEND x "01-Jan-2026 00:00:00 +0000" ~{5}',
        b"a APPEND x {1+}\r\ny ~{5}",
    ],
)
def test_literal8_as_append_data_is_invited(line: bytes) -> None:
    conn = connection(Authenticated("u"))
    assert feed(conn, [line + b"\r\n"]) == [ContinueRequest("Ready for literal data")]


def test_literal8_as_setmetadata_value_is_invited() -> None:
    conn = connection(Authenticated("u"))
    assert feed(conn, [b"a SETMETADATA x (/private/comment ~{5}\r\n"]) == [
        ContinueRequest("Ready for literal data")
    ]


def test_literal8_in_append_utf8_is_invited() -> None:
    conn = connection(Authenticated("u"))
    conn.utf8 = True
    assert feed(conn, [b"a APPEND x UTF8 (~{5}\r\n"]) == [ContinueRequest("Ready for literal data")]


def test_literal_of_unknown_command_before_login_is_fatal() -> None:
    conn = connection()
    events = feed(conn, [b"a XAPPEND {5}\r\n"])
    assert events == [Fatal(UntaggedStatus("BYE", "Unknown command"))]


def test_unknown_command_before_login_is_fatal() -> None:
    conn = connection()
    events = feed(conn, [b"GET / HTTP/1.1\r\nHost: x\r\n"])
    assert events == [Fatal(UntaggedStatus("BYE", "Unknown command"))]
    conn.receive_data(b"a NOOP\r\n")
    assert conn.next_event() is NEED_DATA


def test_unknown_command_after_login_is_bad() -> None:
    conn = connection(Authenticated("u"))
    assert feed(conn, [b"a XYZZY\r\n"]) == [Rejected(Tagged("a", "BAD", "Unknown command"))]


def test_too_many_bad_commands() -> None:
    conn = connection(Authenticated("u"), Limits(max_bad_commands=3))
    events = feed(conn, [b"a FETCH\r\n" * 3 + b"b NOOP\r\n" + b"a FETCH\r\n" * 4])
    kinds = [type(e) for e in events]
    assert kinds == [Rejected] * 3 + [c.Noop] + [Rejected] * 3 + [Fatal]
    fatal = events[-1]
    assert isinstance(fatal, Fatal)
    assert fatal.reply.status == "BYE"


def test_idle_done() -> None:
    conn = connection(Authenticated("u"))
    assert feed(conn, [b"i1 IDLE\r\n"]) == [c.Idle("i1")]
    conn.start_idle("i1")
    assert conn.mode is Mode.IDLE
    assert feed(conn, [b"do", b"ne\r\na NOOP\r\n"]) == [IdleDone(), c.Noop("a")]
    assert conn.mode.name == "COMMAND"


def test_idle_other_line_is_bad_and_ends_idle() -> None:
    conn = connection(Authenticated("u"))
    feed(conn, [b"i1 IDLE\r\n"])
    conn.start_idle("i1")
    assert feed(conn, [b"a NOOP\r\nb NOOP\r\n"]) == [
        Rejected(Tagged("i1", "BAD", "Expected DONE")),
        c.Noop("b"),
    ]


def test_idle_data_already_buffered_when_idle_starts() -> None:
    conn = connection(Authenticated("u"))
    conn.receive_data(b"i1 IDLE\r\nDONE\r\n")
    assert conn.next_event() == c.Idle("i1")
    conn.start_idle("i1")
    assert conn.next_event() == IdleDone()


def test_sasl_exchange() -> None:
    conn = connection()
    assert feed(conn, [b"a AUTHENTICATE PLAIN\r\n"]) == [c.Authenticate("a", "PLAIN")]
    conn.start_sasl("a")
    assert feed(conn, [b"AHVzZXIAcHc=\r\n"]) == [SaslResponse(Secret("\x00user\x00pw"))]
    assert conn.mode is Mode.COMMAND
    conn.start_sasl("a")
    assert feed(conn, [b"\r\n"]) == [SaslResponse(Secret(""))]


def test_sasl_cancel() -> None:
    conn = connection()
    feed(conn, [b"a AUTHENTICATE LOGIN\r\n"])
    conn.start_sasl("a")
    assert feed(conn, [b"*\r\n"]) == [SaslResponse(None)]


def test_sasl_malformed_base64() -> None:
    conn = connection()
    feed(conn, [b"a AUTHENTICATE PLAIN\r\n"])
    conn.start_sasl("a")
    assert feed(conn, [b"AHVz!ZXI=\r\nb NOOP\r\n"]) == [
        Rejected(Tagged("a", "BAD", "Malformed base64")),
        c.Noop("b"),
    ]


def test_sasl_binary_response_is_lossless() -> None:
    conn = connection()
    conn.start_sasl("a")
    (event,) = feed(conn, [b"/w==\r\n"])
    assert isinstance(event, SaslResponse)
    assert event.data is not None
    assert event.data.reveal().encode("utf-8", "surrogateescape") == b"\xff"


def test_eof_after_buffered_commands() -> None:
    conn = connection()
    conn.receive_data(b"a NOOP\r\nb NOO")
    conn.receive_data(b"")
    assert conn.next_event() == c.Noop("a")
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()
    with pytest.raises(RuntimeError):
        conn.receive_data(b"x")


def test_eof_in_the_middle_of_a_literal() -> None:
    conn = connection()
    assert feed(conn, [b"a LOGIN {10}\r\nabc"]) == [ContinueRequest("Ready for literal data")]
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()


def test_badcharset_is_a_tagged_no() -> None:
    conn = connection(SELECTED)
    (event,) = feed(conn, [b"a SEARCH CHARSET KOI8-R TEXT x\r\n"])
    assert event == Rejected(
        Tagged("a", "NO", "Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    )


def test_take_buffered_data_for_starttls() -> None:
    conn = connection()
    conn.receive_data(b"a STARTTLS\r\nb LOGIN u p\r\n")
    assert conn.next_event() == c.StartTLS("a")
    assert conn.take_buffered_data() == b"b LOGIN u p\r\n"
    assert conn.next_event() is NEED_DATA


def test_send_serializes_with_utf8_setting() -> None:
    conn = connection()
    out: list[Response] = [Untagged((MailboxName("Entw\u00fcrfe"),)), Continuation("go")]
    assert conn.send(out) == b'* "Entw&APw-rfe"\r\n+ go\r\n'
    conn.utf8 = True
    assert conn.send(out) == '* "Entw\u00fcrfe"\r\n+ go\r\n'.encode()


def test_utf8_mode_applies_to_parsing() -> None:
    conn = connection(Authenticated("u"))
    conn.utf8 = True
    assert feed(conn, ['a SELECT "Entw\u00fcrfe"\r\n'.encode()]) == [c.Select("a", "Entw\u00fcrfe")]


# -- states ------------------------------------------------------------------------------------

SAMPLES: dict[type[c.Command], bytes] = {
    c.Capability: b"a CAPABILITY",
    c.Noop: b"a NOOP",
    c.Logout: b"a LOGOUT",
    c.StartTLS: b"a STARTTLS",
    c.Authenticate: b"a AUTHENTICATE PLAIN",
    c.Login: b"a LOGIN u p",
    c.Select: b"a SELECT INBOX",
    c.Create: b"a CREATE x",
    c.Delete: b"a DELETE x",
    c.Rename: b"a RENAME x y",
    c.Subscribe: b"a SUBSCRIBE x",
    c.Unsubscribe: b"a UNSUBSCRIBE x",
    c.List: b'a LIST "" *',
    c.Status: b"a STATUS x (MESSAGES)",
    c.Append: b"a APPEND x {1+}\r\nm",
    c.Check: b"a CHECK",
    c.Close: b"a CLOSE",
    c.Unselect: b"a UNSELECT",
    c.Expunge: b"a UID EXPUNGE 1",
    c.Search: b"a UID SEARCH ALL",
    c.Fetch: b"a FETCH 1 FLAGS",
    c.Store: b"a STORE 1 +FLAGS \\Seen",
    c.Copy: b"a UID MOVE 1 x",
    c.Idle: b"a IDLE",
    c.Namespace: b"a NAMESPACE",
    c.SetAcl: b"a SETACL INBOX bob lr",
    c.DeleteAcl: b"a DELETEACL INBOX bob",
    c.GetAcl: b"a GETACL INBOX",
    c.ListRights: b"a LISTRIGHTS INBOX bob",
    c.MyRights: b"a MYRIGHTS INBOX",
    c.Enable: b"a ENABLE CONDSTORE",
    c.Id: b"a ID NIL",
    c.GetMetadata: b'a GETMETADATA "" /shared/comment',
    c.SetMetadata: b"a SETMETADATA INBOX (/private/comment NIL)",
    c.Compress: b"a COMPRESS DEFLATE",
    c.XApplePushService: b"a XAPPLEPUSHSERVICE aps-version 1 aps-account-id A aps-device-token T",
    c.GetQuota: b"a GETQUOTA alice",
    c.GetQuotaRoot: b"a GETQUOTAROOT INBOX",
    c.SetQuota: b"a SETQUOTA alice (STORAGE 512)",
    c.Notify: b"a NOTIFY SET (selected (MessageNew MessageExpunge))",
    c.Sort: b"a SORT (DATE) UTF-8 ALL",
    c.CancelUpdate: b'a CANCELUPDATE "B01"',  # RFC 5267 §4.3.5
    c.Thread: b"a THREAD REFERENCES UTF-8 ALL",
    c.Replace: b"a REPLACE 1 x {1+}\r\nz",  # RFC 8508 §3.5: selected only
    c.GenUrlAuth: b'a GENURLAUTH "imap://u@h/x/;UID=1;URLAUTH=anonymous" INTERNAL',  # RFC 4467
    c.ResetKey: b"a RESETKEY",
    c.UrlFetch: b'a URLFETCH "imap://u@h/x/;UID=1"',
}

STATES: list[State] = [NotAuthenticated(), Authenticated("u"), SELECTED, Logout()]


def test_samples_cover_every_command_type() -> None:
    assert set(SAMPLES) == set(ALLOWED)


@pytest.mark.parametrize("state", STATES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.__name__)
def test_state_walk(state: State, kind: type[c.Command]) -> None:
    conn = ServerConnection()
    steps: dict[type, list[State]] = {
        NotAuthenticated: [],
        Authenticated: [Authenticated("u")],
        Selected: [Authenticated("u"), SELECTED],
        Logout: [Logout()],
    }
    for step in steps[type(state)]:
        conn.set_state(step)
    assert conn.state == state
    conn.receive_data(SAMPLES[kind] + b"\r\n")
    events = drain(conn)
    if type(state) in ALLOWED[kind]:
        assert len(events) == 1
        assert type(events[0]) is kind
    else:
        assert events == [Rejected(Tagged("a", "BAD", "Command not allowed in this state"))]


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (NotAuthenticated(), Authenticated("u"), True),
        (NotAuthenticated(), SELECTED, False),
        (Authenticated("u"), SELECTED, True),
        (SELECTED, Selected("u", "x", True), True),
        (SELECTED, Authenticated("u"), True),
        (SELECTED, NotAuthenticated(), False),
        (Authenticated("u"), NotAuthenticated(), False),
        (SELECTED, Logout(), True),
        (Logout(), Logout(), False),
        (Logout(), NotAuthenticated(), False),
    ],
)
def test_transitions(old: State, new: State, ok: bool) -> None:
    conn = connection(old)
    if ok:
        conn.set_state(new)
        assert conn.state == new
    else:
        with pytest.raises(IllegalTransition):
            conn.set_state(new)


def test_uid_forms_share_types() -> None:
    conn = connection(SELECTED)
    events = feed(conn, [b"a UID FETCH 1 UID\r\nb EXPUNGE\r\n"])
    assert events == [
        c.Fetch("a", True, SequenceSet(((1, 1),)), (FetchAtt("UID"),)),
        c.Expunge("b"),
    ]
