"""Parser table: input line(s) -> Command, or BAD / NO / BYE; each row fed three ways."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from imapd.protocol import commands as c
from imapd.protocol.connection import ContinueRequest, Fatal, Limits, Rejected
from imapd.protocol.errors import BadCommand
from imapd.protocol.parser import Cursor, parse_command, peek_command, sequence_set
from imapd.protocol.state import ALLOWED, Authenticated, NotAuthenticated, Selected, State
from imapd.protocol.values import FetchAtt as F
from imapd.protocol.values import SearchKey as K
from imapd.protocol.values import Secret, Section
from imapd.protocol.values import SequenceSet as S
from tests.protocol.context_rows import context_rows
from tests.protocol.feeding import connection, feed, three_ways
from tests.protocol.replace_rows import replace_rows
from tests.protocol.sort_rows import sort_rows
from tests.protocol.urlauth_rows import urlauth_rows


@dataclass(frozen=True)
class Bad:
    tag: str = "a"


@dataclass(frozen=True)
class No:
    code: str


@dataclass(frozen=True)
class Bye:
    pass


Expected = c.Command | Bad | No | Bye
NE = c.NotifyEvent

SELECTED = Selected("u", "INBOX", False)
UTC = dt.UTC


def one(n: int) -> S:
    return S(((n, n),))


def srch(
    *keys: K, uid: bool = False, charset: str | None = None, ret: tuple[str, ...] | None = None
) -> c.Search:
    return c.Search("a", uid, K("AND", children=keys), charset, ret)


ONE = S(((1, 1),))


def fetch(*atts: F, seqs: S = ONE, uid: bool = False, **kw: object) -> c.Fetch:
    return c.Fetch("a", uid, seqs, atts, **kw)  # type: ignore[arg-type]


# (id, input without the final CRLF, expected)
ROWS: list[tuple[str, bytes, Expected]] = [
    # -- any state
    ("capability", b"a CAPABILITY", c.Capability("a")),
    ("capability-lower", b"a capability", c.Capability("a")),
    ("noop", b"tag.1 NOOP", c.Noop("tag.1")),
    ("logout", b"a LOGOUT", c.Logout("a")),
    ("tag-with-bracket", b"a]1 NOOP", c.Noop("a]1")),
    ("id-nil", b"a ID NIL", c.Id("a", None)),
    (
        "id-params",
        b'a ID ("name" "x" "version" NIL)',
        c.Id("a", (("name", "x"), ("version", None))),
    ),
    ("id-empty", b"a ID ()", c.Id("a", ())),
    ("id-literal", b'a ID ({4}\r\nname "v")', c.Id("a", (("name", "v"),))),
    ("id-odd", b'a ID ("name")', Bad()),
    # -- not authenticated
    ("starttls", b"a STARTTLS", c.StartTLS("a")),
    ("login-atoms", b"a LOGIN user pass", c.Login("a", "user", Secret("pass"))),
    ("login-quoted", b'a LOGIN "us er" "p\\"a\\\\ss"', c.Login("a", "us er", Secret('p"a\\ss'))),
    ("login-literal", b"a LOGIN {4}\r\nuser {5}\r\np ass", c.Login("a", "user", Secret("p ass"))),
    ("login-nonsync", b"a LOGIN {4+}\r\nuser {5+}\r\np ass", c.Login("a", "user", Secret("p ass"))),
    (
        "login-utf8-literal",
        b"a LOGIN {5}\r\nj\xc3\xb6rg pw",
        c.Login("a", "j\u00f6rg", Secret("pw")),
    ),
    ("login-missing", b"a LOGIN user", Bad()),
    ("login-extra", b"a LOGIN user pass extra", Bad()),
    ("login-8bit-quoted", b'a LOGIN "j\xc3\xb6rg" pw', Bad()),
    ("login-nul-literal", b"a LOGIN {3}\r\na\x00b pw", Bad()),
    ("login-bad-escape", b'a LOGIN "a\\b" pw', Bad()),
    ("login-unterminated", b'a LOGIN "abc pw', Bad()),
    ("authenticate", b"a AUTHENTICATE plain", c.Authenticate("a", "PLAIN")),
    (
        "authenticate-ir",
        b"a AUTHENTICATE PLAIN AHUAcA==",
        c.Authenticate("a", "PLAIN", Secret("\x00u\x00p")),
    ),
    ("authenticate-ir-empty", b"a AUTHENTICATE PLAIN =", c.Authenticate("a", "PLAIN", Secret(""))),
    ("authenticate-ir-bad", b"a AUTHENTICATE PLAIN AHUAcA=", Bad()),
    ("authenticate-ir-junk", b"a AUTHENTICATE PLAIN !!!!", Bad()),
    # -- authenticated
    ("select", b"a SELECT INBOX", c.Select("a", "INBOX")),
    ("select-inbox-case", b"a select iNbOx", c.Select("a", "INBOX")),
    ("select-inbox-sub-keeps-case", b"a SELECT inbox/sub", c.Select("a", "inbox/sub")),
    ("examine", b'a EXAMINE "Sent Items"', c.Select("a", "Sent Items", readonly=True)),
    ("select-mutf7", b"a SELECT Entw&APw-rfe", c.Select("a", "Entw\u00fcrfe")),
    ("select-amp", b"a SELECT a&-b", c.Select("a", "a&b")),
    # a good astring that is not valid modified UTF-7: NO, never BAD (issue 16 item 3)
    ("select-bad-mutf7", b"a SELECT &Jjo", No("CANNOT")),
    ("select-ascii-in-b64", b"a SELECT &AGE-", No("CANNOT")),
    ("select-8bit-literal", b"a SELECT {2}\r\n\xc3\xbc", No("CANNOT")),
    ("select-bad-mutf7-then-garbage", b"a SELECT &Jjo (FOO)", Bad()),
    ("create-bad-mutf7", b'a CREATE "&Jjo"', No("CANNOT")),
    ("rename-bad-mutf7-new", b"a RENAME x &AGE-", No("CANNOT")),
    ("copy-bad-mutf7", b"a COPY 1 &Jjo", No("CANNOT")),
    ("list-bad-mutf7-pattern", b'a LIST "" &Jjo', c.List("a", "", ())),
    ("list-bad-mutf7-one-of-two", b'a LIST "" (&Jjo %)', c.List("a", "", ("%",), extended=True)),
    ("list-bad-mutf7-reference", b"a LIST &Jjo %", c.List("a", "", ())),
    ("lsub-bad-mutf7-pattern", b'a LSUB "" &AGE-*', c.List("a", "", (), lsub=True)),
    ("select-condstore", b"a SELECT INBOX (CONDSTORE)", c.Select("a", "INBOX", condstore=True)),
    (
        "select-qresync",
        b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))",
        c.Select(
            "a",
            "INBOX",
            qresync=c.QResyncParams(67890007, 20050715194045000, S(((41, 41), (43, 211)))),
        ),
    ),
    (
        "select-qresync-match",
        b"a EXAMINE x (QRESYNC (1 2 1:* (1:2 3:4)) CONDSTORE)",
        c.Select(
            "a",
            "x",
            True,
            True,
            c.QResyncParams(1, 2, S(((1, None),)), (S(((1, 2),)), S(((3, 4),)))),
        ),
    ),
    (
        "select-qresync-min",
        b"a SELECT x (QRESYNC (1 2))",
        c.Select("a", "x", qresync=c.QResyncParams(1, 2)),
    ),
    ("select-qresync-zero-modseq", b"a SELECT x (QRESYNC (1 0))", Bad()),
    ("select-dup-param", b"a SELECT x (CONDSTORE CONDSTORE)", Bad()),
    ("select-unknown-param", b"a SELECT x (FOO)", Bad()),
    ("create", b"a CREATE foo/bar", c.Create("a", "foo/bar")),
    (
        "create-use",
        b"a CREATE Drafts (USE (\\drafts \\Junk \\X))",
        c.Create("a", "Drafts", ("\\Drafts", "\\Junk", "\\X")),
    ),
    ("create-bad-param", b"a CREATE x (FOO (\\Drafts))", Bad()),
    ("delete", b"a DELETE foo", c.Delete("a", "foo")),
    ("rename", b"a RENAME foo {3}\r\nbar", c.Rename("a", "foo", "bar")),
    ("subscribe", b"a SUBSCRIBE foo", c.Subscribe("a", "foo")),
    ("unsubscribe", b"a UNSUBSCRIBE foo", c.Unsubscribe("a", "foo")),
    ("list", b'a LIST "" *', c.List("a", "", ("*",))),
    ("list-pattern", b"a LIST ~/Mail %/x]", c.List("a", "~/Mail", ("%/x]",))),
    ("list-empty", b'a LIST "" ""', c.List("a", "", ("",))),
    (
        "list-extended",
        b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("%" INBOX) '
        b"RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))",
        c.List(
            "a",
            "",
            ("%", "INBOX"),
            selection=("SUBSCRIBED", "RECURSIVEMATCH"),
            return_opts=("CHILDREN", "SPECIAL-USE", "STATUS"),
            status_items=("MESSAGES", "UNSEEN"),
            extended=True,
        ),
    ),
    (
        "list-special-use",
        b'a LIST (SPECIAL-USE) "" *',
        c.List("a", "", ("*",), selection=("SPECIAL-USE",), extended=True),
    ),
    ("list-return-only", b'a LIST "" % RETURN ()', c.List("a", "", ("%",), extended=True)),
    ("list-recursivematch-alone", b'a LIST (RECURSIVEMATCH) "" *', Bad()),
    ("list-unknown-select", b'a LIST (FOO) "" *', Bad()),
    ("list-unknown-return", b'a LIST "" * RETURN (FOO)', Bad()),
    ("list-unbalanced", b'a LIST "" ("%"', Bad()),
    # RFC 5258 §6 list-select-opts: (), (REMOTE), base options with RECURSIVEMATCH
    ("list-select-empty", b'a LIST () "" %', c.List("a", "", ("%",), extended=True)),
    (
        "list-remote",
        b'a LIST (REMOTE) "" %',
        c.List("a", "", ("%",), selection=("REMOTE",), extended=True),
    ),
    (
        "list-remote-subscribed-recursive",
        b'a list (subscribed remote recursivematch) "" *',
        c.List(
            "a", "", ("*",), selection=("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH"), extended=True
        ),
    ),
    (
        "list-special-use-recursive",
        b'a LIST (RECURSIVEMATCH SPECIAL-USE) "" *',
        c.List("a", "", ("*",), selection=("RECURSIVEMATCH", "SPECIAL-USE"), extended=True),
    ),
    (
        "list-duplicate-options",  # RFC 5258 §3: act as if given once
        b'a LIST (SUBSCRIBED SUBSCRIBED) "" * RETURN (CHILDREN CHILDREN)',
        c.List(
            "a", "", ("*",), selection=("SUBSCRIBED",), return_opts=("CHILDREN",), extended=True
        ),
    ),
    (
        "list-return-subscribed-status",  # RFC 5819 §3
        b'a LIST "" % RETURN (SUBSCRIBED STATUS (MESSAGES SIZE APPENDLIMIT))',
        c.List(
            "a",
            "",
            ("%",),
            return_opts=("SUBSCRIBED", "STATUS"),
            status_items=("MESSAGES", "SIZE", "APPENDLIMIT"),
            extended=True,
        ),
    ),
    (
        "list-patterns-literal",
        b'a LIST "" ({5}\r\nINBOX "Sent/%")',
        c.List("a", "", ("INBOX", "Sent/%"), extended=True),
    ),
    ("list-remote-recursivematch", b'a LIST (REMOTE RECURSIVEMATCH) "" *', Bad()),
    ("list-no-space-after-options", b'a LIST (SUBSCRIBED)"" %', Bad()),
    ("list-empty-patterns", b'a LIST "" ()', Bad()),
    ("list-status-empty", b'a LIST "" % RETURN (STATUS ())', Bad()),
    ("list-status-unknown-item", b'a LIST "" % RETURN (STATUS (FOO))', Bad()),
    ("list-status-no-items", b'a LIST "" % RETURN (STATUS)', Bad()),
    ("list-return-no-parens", b'a LIST "" % RETURN CHILDREN', Bad()),
    ("list-trailing-garbage", b'a LIST "" % FOO', Bad()),
    # RFC 8440 §5: return-option =/ "MYRIGHTS", with the others, in any case
    (
        "list-return-myrights",
        b'a LIST "" % RETURN (MYRIGHTS)',
        c.List("a", "", ("%",), return_opts=("MYRIGHTS",), extended=True),
    ),
    (
        "list-return-myrights-status",
        b'a list (subscribed) "" * return (myrights STATUS (MESSAGES) children myrights)',
        c.List(
            "a",
            "",
            ("*",),
            selection=("SUBSCRIBED",),
            return_opts=("MYRIGHTS", "STATUS", "CHILDREN"),
            status_items=("MESSAGES",),
            extended=True,
        ),
    ),
    ("list-myrights-as-selection", b'a LIST (MYRIGHTS) "" %', Bad()),
    ("list-myrights-argument", b'a LIST "" % RETURN (MYRIGHTS (l))', Bad()),
    ("list-myrights-quoted", b'a LIST "" % RETURN ("MYRIGHTS")', Bad()),
    ("list-myrights-prefix", b'a LIST "" % RETURN (MYRIGHTSX)', Bad()),
    ("list-myrights-unclosed", b'a LIST "" % RETURN (MYRIGHTS', Bad()),
    ("lsub-return-myrights", b'a LSUB "" % RETURN (MYRIGHTS)', Bad()),
    ("list-select-not-atom", b'a LIST ("SUBSCRIBED") "" %', Bad()),
    ("lsub", b'a LSUB "" %', c.List("a", "", ("%",), lsub=True)),
    (
        "status",
        b"a STATUS INBOX (messages UIDNEXT)",
        c.Status("a", "INBOX", ("MESSAGES", "UIDNEXT")),
    ),
    (
        "status-all",
        b"a STATUS x (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE DELETED)",
        c.Status(
            "a",
            "x",
            (
                "MESSAGES",
                "RECENT",
                "UIDNEXT",
                "UIDVALIDITY",
                "UNSEEN",
                "HIGHESTMODSEQ",
                "SIZE",
                "DELETED",
            ),
        ),
    ),
    ("status-unknown", b"a STATUS x (FOO)", Bad()),
    (  # RFC 8474 §4.3
        "status-mailboxid",
        b"a STATUS x (mailboxid MESSAGES)",
        c.Status("a", "x", ("MAILBOXID", "MESSAGES")),
    ),
    ("status-mailboxid-arg", b"a STATUS x (MAILBOXID F1)", Bad()),
    ("status-mailboxid-prefix", b"a STATUS x (MAILBOXIDS)", Bad()),
    (
        "status-size-deleted-appendlimit",  # RFC 8438, RFC 9051 §6.3.11, RFC 7889 §3
        b"a STATUS x (size deleted APPENDLIMIT)",
        c.Status("a", "x", ("SIZE", "DELETED", "APPENDLIMIT")),
    ),
    ("status-empty", b"a STATUS x ()", Bad()),
    (
        "append",
        b"a APPEND INBOX {3}\r\nabc",
        c.Append("a", "INBOX", (c.AppendMessage((), None, b"abc"),)),
    ),
    (
        "append-flags-date",
        b'a APPEND x (\\seen $Junk) "05-Feb-2021 13:01:02 -0130" {2+}\r\nhi',
        c.Append(
            "a",
            "x",
            (
                c.AppendMessage(
                    ("\\Seen", "$Junk"),
                    dt.datetime(
                        2021, 2, 5, 13, 1, 2, tzinfo=dt.timezone(-dt.timedelta(hours=1, minutes=30))
                    ),
                    b"hi",
                ),
            ),
        ),
    ),
    (
        "append-date-space",
        b'a APPEND x " 5-Feb-2021 13:01:02 +0000" {0}\r\n',
        c.Append(
            "a", "x", (c.AppendMessage((), dt.datetime(2021, 2, 5, 13, 1, 2, tzinfo=UTC), b""),)
        ),
    ),
    (
        "multiappend",
        b"a APPEND x {1}\r\na (\\Draft) {2}\r\nbc",
        c.Append(
            "a", "x", (c.AppendMessage((), None, b"a"), c.AppendMessage(("\\Draft",), None, b"bc"))
        ),
    ),
    (
        "append-literal8",
        b"a APPEND x ~{3}\r\na\x00b",
        c.Append("a", "x", (c.AppendMessage((), None, b"a\x00b"),)),
    ),
    (
        "append-crlf-content",
        b"a APPEND x {4}\r\n\r\n\r\n",
        c.Append("a", "x", (c.AppendMessage((), None, b"\r\n\r\n"),)),
    ),
    ("append-recent", b"a APPEND x (\\Recent) {1}\r\na", Bad()),
    ("append-star-flag", b"a APPEND x (\\*) {1}\r\na", Bad()),
    ("append-quoted-content", b'a APPEND x "abc"', Bad()),
    ("append-no-message", b"a APPEND x", Bad()),
    ("append-bad-date", b'a APPEND x "31-Feb-2021 13:01:02 +0000" {1}\r\na', Bad()),
    ("append-bad-time", b'a APPEND x "01-Feb-2021 25:01:02 +0000" {1}\r\na', Bad()),
    ("append-bad-zone", b'a APPEND x "01-Feb-2021 13:01:02 +0075" {1}\r\na', Bad()),
    ("append-bad-month", b'a APPEND x "01-Foo-2021 13:01:02 +0000" {1}\r\na', Bad()),
    ("namespace", b"a NAMESPACE", c.Namespace("a")),
    # ACL (RFC 4314 §3; rights are checked by the handler, so any astring parses)
    ("setacl", b"a SETACL INBOX/Drafts Chris +cda", c.SetAcl("a", "INBOX/Drafts", "Chris", "+cda")),
    (
        "setacl-quoted",
        b'a SetAcl "Other Users/alice/x" -bob ""',
        c.SetAcl("a", "Other Users/alice/x", "-bob", ""),
    ),
    ("setacl-literal-id", b"a SETACL x {3}\r\nbob lr", c.SetAcl("a", "x", "bob", "lr")),
    ("setacl-no-rights", b"a SETACL INBOX bob", Bad()),
    ("setacl-list-rights", b"a SETACL INBOX bob (lr)", Bad()),
    ("deleteacl", b"a DELETEACL INBOX anyone", c.DeleteAcl("a", "INBOX", "anyone")),
    ("deleteacl-extra", b"a DELETEACL INBOX bob lr", Bad()),
    ("deleteacl-no-id", b"a DELETEACL INBOX", Bad()),
    ("getacl", b"a getacl inbox", c.GetAcl("a", "INBOX")),
    ("getacl-none", b"a GETACL", Bad()),
    ("listrights", b"a LISTRIGHTS ~/Mail/saved smith", c.ListRights("a", "~/Mail/saved", "smith")),
    ("listrights-no-id", b"a LISTRIGHTS INBOX", Bad()),
    ("myrights", b"a MYRIGHTS INBOX", c.MyRights("a", "INBOX")),
    ("myrights-two", b"a MYRIGHTS INBOX x", Bad()),
    ("enable", b"a ENABLE condstore qresync", c.Enable("a", ("CONDSTORE", "QRESYNC"))),
    ("enable-none", b"a ENABLE", Bad()),
    ("idle", b"a IDLE", c.Idle("a")),
    # -- selected
    ("check", b"a CHECK", c.Check("a")),
    ("close", b"a CLOSE", c.Close("a")),
    ("unselect", b"a UNSELECT", c.Unselect("a")),
    ("expunge", b"a EXPUNGE", c.Expunge("a")),
    ("uid-expunge", b"a UID EXPUNGE 1:3,5", c.Expunge("a", S(((1, 3), (5, 5))))),
    ("copy", b"a COPY 1:* Trash", c.Copy("a", False, S(((1, None),)), "Trash")),
    ("uid-copy", b"a UID COPY $ Trash", c.Copy("a", True, S(saved=True), "Trash")),
    ("move", b"a MOVE 2,4:3 inbox", c.Copy("a", False, S(((2, 2), (4, 3))), "INBOX", move=True)),
    ("uid-move", b'a uid move * "x y"', c.Copy("a", True, S(((None, None),)), "x y", move=True)),
    ("uid-noop", b"a UID NOOP", Bad()),
    ("uid-nothing", b"a UID", Bad()),
    ("store", b"a STORE 1 FLAGS (\\Seen)", c.Store("a", False, one(1), "", False, ("\\Seen",))),
    (
        "store-add-silent",
        b"a STORE 1:2 +FLAGS.SILENT \\flagged foo",
        c.Store("a", False, S(((1, 2),)), "+", True, ("\\Flagged", "foo")),
    ),
    ("store-remove", b"a UID STORE 9 -flags ()", c.Store("a", True, one(9), "-", False, ())),
    (
        "store-unchangedsince",
        b"a STORE 1 (UNCHANGEDSINCE 0) FLAGS ($X)",
        c.Store("a", False, one(1), "", False, ("$X",), 0),
    ),
    ("store-recent", b"a STORE 1 +FLAGS (\\Recent)", Bad()),
    ("store-star", b"a STORE 1 +FLAGS (\\*)", Bad()),
    ("store-unknown-system-flag", b"a STORE 1 +FLAGS (\\Bogus)", Bad()),
    ("store-unknown-system-flag-bare", b"a UID STORE 1 -FLAGS.SILENT $Junk \\Bogus", Bad()),
    (
        "store-system-flags-any-case",
        b"a STORE 1 +FLAGS (\\SEEN \\answered $Junk)",
        c.Store("a", False, one(1), "+", False, ("\\Seen", "\\Answered", "$Junk")),
    ),
    ("store-bad-item", b"a STORE 1 LABELS (x)", Bad()),
    ("store-no-flags", b"a STORE 1 FLAGS", Bad()),
    ("store-8bit-flag", b"a STORE 1 FLAGS (f\xc3\xbc)", Bad()),
    # -- sequence sets
    ("seq-zero", b"a FETCH 0 FLAGS", Bad()),
    ("seq-leading-zero", b"a FETCH 01 FLAGS", Bad()),
    ("seq-huge", b"a FETCH 4294967296 FLAGS", Bad()),
    ("seq-max", b"a FETCH 4294967295 FLAGS", fetch(F("FLAGS"), seqs=one(4294967295))),
    ("seq-very-huge", b"a FETCH 99999999999999999999999999999 FLAGS", Bad()),
    ("seq-trailing-comma", b"a FETCH 1, FLAGS", Bad()),
    ("seq-empty-range", b"a FETCH 1: FLAGS", Bad()),
    ("seq-dollar-mixed", b"a FETCH $,1 FLAGS", Bad()),
    # -- fetch attributes
    (
        "fetch-all",
        b"a FETCH 1 ALL",
        fetch(F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE"), F("ENVELOPE")),
    ),
    ("fetch-fast", b"a FETCH 1 fast", fetch(F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE"))),
    (
        "fetch-full",
        b"a FETCH 1 FULL",
        fetch(F("FLAGS"), F("INTERNALDATE"), F("RFC822.SIZE"), F("ENVELOPE"), F("BODY")),
    ),
    ("fetch-macro-in-list", b"a FETCH 1 (ALL)", Bad()),
    # RFC 8474 §7: fetch-att =/ "EMAILID" / "THREADID"
    ("fetch-objectid", b"a FETCH 1 (emailid THREADID)", fetch(F("EMAILID"), F("THREADID"))),
    ("fetch-emailid-single", b"a FETCH 1 EMAILID", fetch(F("EMAILID"))),
    ("fetch-emailid-section", b"a FETCH 1 EMAILID[]", Bad()),
    ("fetch-emailid-arg", b"a FETCH 1 (EMAILID M1)", Bad()),
    ("fetch-emailids", b"a FETCH 1 (EMAILIDS)", Bad()),
    ("fetch-single", b"a FETCH 1 uid", fetch(F("UID"))),
    (
        "fetch-simple-atts",
        b"a FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE "
        b"RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ SAVEDATE)",
        fetch(
            *(
                F(n)
                for n in (
                    "ENVELOPE",
                    "FLAGS",
                    "INTERNALDATE",
                    "RFC822",
                    "RFC822.HEADER",
                    "RFC822.SIZE",
                    "RFC822.TEXT",
                    "BODY",
                    "BODYSTRUCTURE",
                    "UID",
                    "MODSEQ",
                    "SAVEDATE",
                )
            )
        ),
    ),
    ("fetch-body-empty", b"a FETCH 1 BODY[]", fetch(F("BODY", Section()))),
    (
        "fetch-body-peek-partial",
        b"a FETCH 1 BODY.PEEK[]<0.1024>",
        fetch(F("BODY", Section(), (0, 1024), True)),
    ),
    ("fetch-body-header", b"a FETCH 1 body[header]", fetch(F("BODY", Section((), "HEADER")))),
    ("fetch-body-text", b"a FETCH 1 BODY[TEXT]", fetch(F("BODY", Section((), "TEXT")))),
    ("fetch-body-part", b"a FETCH 1 BODY[1.2.3]", fetch(F("BODY", Section((1, 2, 3))))),
    ("fetch-body-part-mime", b"a FETCH 1 BODY[2.MIME]", fetch(F("BODY", Section((2,), "MIME")))),
    (
        "fetch-body-part-text",
        b"a FETCH 1 BODY[2.1.TEXT]",
        fetch(F("BODY", Section((2, 1), "TEXT"))),
    ),
    (
        "fetch-body-fields",
        b'a FETCH 1 BODY[HEADER.FIELDS (From "to" {7}\r\nSubject)]',
        fetch(F("BODY", Section((), "HEADER.FIELDS", ("FROM", "TO", "SUBJECT")))),
    ),
    (
        "fetch-body-fields-not",
        b"a FETCH 1 BODY.PEEK[1.HEADER.FIELDS.NOT (X)]",
        fetch(F("BODY", Section((1,), "HEADER.FIELDS.NOT", ("X",)), peek=True)),
    ),
    ("fetch-body-mime-top", b"a FETCH 1 BODY[MIME]", Bad()),
    ("fetch-body-part-zero", b"a FETCH 1 BODY[0]", Bad()),
    ("fetch-body-fields-empty", b"a FETCH 1 BODY[HEADER.FIELDS ()]", Bad()),
    ("fetch-body-unclosed", b"a FETCH 1 BODY[TEXT", Bad()),
    ("fetch-body-partial-zero", b"a FETCH 1 BODY[]<0.0>", Bad()),
    ("fetch-body-peek-bare", b"a FETCH 1 BODY.PEEK", Bad()),
    (
        "fetch-binary",
        b"a FETCH 1 (BINARY[1] BINARY.PEEK[]<5.6> BINARY.SIZE[2.1])",
        fetch(
            F("BINARY", Section((1,))),
            F("BINARY", Section(), (5, 6), True),
            F("BINARY.SIZE", Section((2, 1))),
        ),
    ),
    ("fetch-binary-text", b"a FETCH 1 BINARY[TEXT]", Bad()),
    # RFC 8970 §6: fetch-att =/ "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]
    ("fetch-preview", b"a FETCH 1 PREVIEW", fetch(F("PREVIEW"))),
    ("fetch-preview-lazy", b"a FETCH 1 PREVIEW (LAZY)", fetch(F("PREVIEW", lazy=True))),
    (
        "fetch-preview-lazy-list",
        b"a FETCH 1 (UID preview (lazy Lazy) FLAGS)",
        fetch(F("UID"), F("PREVIEW", lazy=True), F("FLAGS")),
    ),
    ("fetch-preview-both", b"a FETCH 1 (PREVIEW (LAZY) PREVIEW)", fetch(F("PREVIEW"))),
    (
        "fetch-preview-then-modifiers",
        b"a FETCH 1 PREVIEW (CHANGEDSINCE 7)",
        fetch(F("PREVIEW"), changedsince=7),
    ),
    ("fetch-preview-unknown-mod", b"a FETCH 1 PREVIEW (EAGER)", Bad()),
    ("fetch-preview-empty-mods", b"a FETCH 1 (PREVIEW ())", Bad()),
    ("fetch-preview-mixed-mods", b"a FETCH 1 (PREVIEW (LAZY EAGER))", Bad()),
    ("fetch-preview-no-space", b"a FETCH 1 (PREVIEW(LAZY))", Bad()),
    ("fetch-preview-trailing-space", b"a FETCH 1 (PREVIEW (LAZY ))", Bad()),
    ("fetch-preview-unclosed", b"a FETCH 1 (PREVIEW (LAZY)", Bad()),
    ("fetch-preview-lazy-prefix", b"a FETCH 1 (PREVIEW (LAZYX))", Bad()),
    ("fetch-preview-section", b"a FETCH 1 PREVIEW[]", Bad()),
    # RFC 3516 §7: section-binary = "[" [section-part] "]"; hostile shapes are BAD.
    ("fetch-binary-header", b"a FETCH 1 BINARY[HEADER]", Bad()),
    ("fetch-binary-mime", b"a FETCH 1 BINARY.PEEK[1.MIME]", Bad()),
    ("fetch-binary-part-text", b"a FETCH 1 BINARY[1.TEXT]", Bad()),
    ("fetch-binary-zero", b"a FETCH 1 BINARY[0]", Bad()),
    ("fetch-binary-trailing-dot", b"a FETCH 1 BINARY[1.]", Bad()),
    ("fetch-binary-leading-dot", b"a FETCH 1 BINARY[.1]", Bad()),
    ("fetch-binary-bare", b"a FETCH 1 BINARY", Bad()),
    ("fetch-binary-peek-bare", b"a FETCH 1 BINARY.PEEK", Bad()),
    ("fetch-binary-size-bare", b"a FETCH 1 BINARY.SIZE", Bad()),
    ("fetch-binary-size-partial", b"a FETCH 1 BINARY.SIZE[1]<0.5>", Bad()),
    ("fetch-binary-partial-one", b"a FETCH 1 BINARY[1]<5>", Bad()),
    ("fetch-binary-partial-zero", b"a FETCH 1 BINARY[1]<0.0>", Bad()),
    ("fetch-binary-partial-neg", b"a FETCH 1 BINARY[1]<-1.5>", Bad()),
    ("fetch-binary-unclosed", b"a FETCH 1 BINARY[1", Bad()),
    ("fetch-binary-space", b"a FETCH 1 BINARY[1 2]", Bad()),
    ("fetch-binary-huge-part", b"a FETCH 1 BINARY[99999999999999999999]", Bad()),
    ("fetch-binary-unknown-suffix", b"a FETCH 1 BINARY.FOO[1]", Bad()),
    (
        "fetch-binary-lower-case",
        b"a FETCH 1 (binary.peek[3]<0.9> binary.size[3])",
        fetch(F("BINARY", Section((3,)), (0, 9), True), F("BINARY.SIZE", Section((3,)))),
    ),
    (
        "fetch-changedsince",
        b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
        fetch(F("FLAGS"), seqs=S(((1, None),)), changedsince=12345),
    ),
    (
        "fetch-vanished",
        b"a UID FETCH 1:* FLAGS (VANISHED CHANGEDSINCE 1)",
        fetch(F("FLAGS"), seqs=S(((1, None),)), uid=True, changedsince=1, vanished=True),
    ),
    ("fetch-vanished-no-uid", b"a FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)", Bad()),
    ("fetch-vanished-alone", b"a UID FETCH 1:* FLAGS (VANISHED)", Bad()),
    ("fetch-changedsince-huge", b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)", Bad()),
    ("fetch-unknown-att", b"a FETCH 1 (FLAGS X-GM-LABELS)", Bad()),
    ("fetch-unbalanced", b"a FETCH 1 (FLAGS", Bad()),
    ("fetch-extra-paren", b"a FETCH 1 (FLAGS))", Bad()),
    ("fetch-no-atts", b"a FETCH 1", Bad()),
    ("fetch-empty-list", b"a FETCH 1 ()", Bad()),
    # -- search
    ("search-all", b"a SEARCH ALL", srch(K("ALL"))),
    ("uid-search", b"a UID SEARCH 1:5", srch(K("SEQSET", S(((1, 5),))), uid=True)),
    ("search-dollar", b"a SEARCH $", srch(K("SEQSET", S(saved=True)))),
    ("search-charset", b"a SEARCH CHARSET utf-8 SUBJECT {4}\r\n\xc3\xa9t\xc3", Bad()),
    (
        "search-charset-ok",
        b"a SEARCH CHARSET UTF-8 SUBJECT {3}\r\n\xc3\xa9t",
        srch(K("SUBJECT", "\u00e9t"), charset="UTF-8"),
    ),
    (
        "search-charset-ascii",
        b"a SEARCH CHARSET us-ascii TEXT x",
        srch(K("TEXT", "x"), charset="US-ASCII"),
    ),
    ("search-badcharset", b"a SEARCH CHARSET ISO-8859-1 TEXT x", No("BADCHARSET (UTF-8 US-ASCII)")),
    (
        "search-return",
        b"a SEARCH RETURN (MIN MAX ALL COUNT SAVE) SEEN",
        srch(K("SEEN"), ret=("MIN", "MAX", "ALL", "COUNT", "SAVE")),
    ),
    ("search-return-empty", b"a SEARCH RETURN () SEEN", srch(K("SEEN"), ret=())),
    (
        "search-return-charset",
        b"a UID SEARCH RETURN (COUNT) CHARSET UTF-8 ALL",
        srch(K("ALL"), uid=True, charset="UTF-8", ret=("COUNT",)),
    ),
    ("search-return-unknown", b"a SEARCH RETURN (PARTIAL) ALL", Bad()),
    (
        "search-flags",
        b"a SEARCH ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED "
        b"UNDELETED UNDRAFT UNFLAGGED UNSEEN SAVEDATESUPPORTED",
        srch(
            *(
                K(n)
                for n in (
                    "ANSWERED",
                    "DELETED",
                    "DRAFT",
                    "FLAGGED",
                    "NEW",
                    "OLD",
                    "RECENT",
                    "SEEN",
                    "UNANSWERED",
                    "UNDELETED",
                    "UNDRAFT",
                    "UNFLAGGED",
                    "UNSEEN",
                    "SAVEDATESUPPORTED",
                )
            )
        ),
    ),
    (
        "search-strings",
        b'a SEARCH BCC a BODY "b c" CC {1}\r\nc FROM d SUBJECT e TEXT f TO g',
        srch(
            K("BCC", "a"),
            K("BODY", "b c"),
            K("CC", "c"),
            K("FROM", "d"),
            K("SUBJECT", "e"),
            K("TEXT", "f"),
            K("TO", "g"),
        ),
    ),
    (
        "search-dates",
        b'a SEARCH BEFORE 1-Jan-2020 ON "02-feb-2021" SINCE 3-MAR-2022 '
        b"SENTBEFORE 4-Apr-2023 SENTON 5-May-2024 SENTSINCE 6-Jun-2025 "
        b"SAVEDBEFORE 7-Jul-2026 SAVEDON 8-Aug-2027 SAVEDSINCE 9-Sep-2028",
        srch(
            K("BEFORE", dt.date(2020, 1, 1)),
            K("ON", dt.date(2021, 2, 2)),
            K("SINCE", dt.date(2022, 3, 3)),
            K("SENTBEFORE", dt.date(2023, 4, 4)),
            K("SENTON", dt.date(2024, 5, 5)),
            K("SENTSINCE", dt.date(2025, 6, 6)),
            K("SAVEDBEFORE", dt.date(2026, 7, 7)),
            K("SAVEDON", dt.date(2027, 8, 8)),
            K("SAVEDSINCE", dt.date(2028, 9, 9)),
        ),
    ),
    ("search-bad-date", b"a SEARCH ON 32-Jan-2020", Bad()),
    ("search-bad-date-format", b"a SEARCH ON 2020-01-01", Bad()),
    ("search-bad-date-quote", b'a SEARCH ON "1-Jan-2020', Bad()),
    (
        "search-keyword",
        b"a SEARCH KEYWORD $Junk UNKEYWORD foo",
        srch(K("KEYWORD", "$Junk"), K("UNKEYWORD", "foo")),
    ),
    ("search-keyword-system", b"a SEARCH KEYWORD \\Seen", Bad()),
    (
        "search-size",
        b"a SEARCH LARGER 0 SMALLER 4294967295",
        srch(K("LARGER", 0), K("SMALLER", 4294967295)),
    ),
    # RFC 9051 §9: LARGER/SMALLER take number64 (63-bit sizes, Appendix D)
    ("search-size-64", b"a SEARCH LARGER 4294967296", srch(K("LARGER", 4294967296))),
    ("search-size-huge", b"a SEARCH LARGER 9223372036854775808", Bad()),
    ("search-size-digits", b"a SEARCH SMALLER 00000000000000000001", Bad()),
    ("search-within", b"a SEARCH OLDER 60 YOUNGER 1", srch(K("OLDER", 60), K("YOUNGER", 1))),
    ("search-within-zero", b"a SEARCH OLDER 0", Bad()),
    (
        "search-within-or-not",
        b"a UID SEARCH OR YOUNGER 5 NOT OLDER 4294967295",
        srch(
            K("OR", children=(K("YOUNGER", 5), K("NOT", children=(K("OLDER", 4294967295),)))),
            uid=True,
        ),
    ),
    ("search-within-missing", b"a SEARCH YOUNGER", Bad()),
    ("search-within-missing-sp", b"a SEARCH OLDER ", Bad()),
    ("search-within-negative", b"a SEARCH OLDER -5", Bad()),
    ("search-within-word", b"a SEARCH YOUNGER ten", Bad()),
    ("search-within-2^32", b"a SEARCH YOUNGER 4294967296", Bad()),
    ("search-within-huge", b"a SEARCH OLDER 99999999999999999999", Bad()),
    ("search-within-leading-zero", b"a SEARCH OLDER 060", Bad()),
    ("search-within-fraction", b"a SEARCH OLDER 1.5", Bad()),
    ("search-uid", b"a SEARCH UID 1,3:*", srch(K("UID", S(((1, 1), (3, None)))))),
    ("search-header", b'a SEARCH HEADER X-Spam "yes"', srch(K("HEADER", "yes", header="X-Spam"))),
    ("search-header-missing", b"a SEARCH HEADER X-Spam", Bad()),
    ("search-not", b"a SEARCH NOT SEEN", srch(K("NOT", children=(K("SEEN"),)))),
    (
        "search-or",
        b"a SEARCH OR SEEN (FLAGGED 1:2)",
        srch(
            K(
                "OR",
                children=(K("SEEN"), K("AND", children=(K("FLAGGED"), K("SEQSET", S(((1, 2),)))))),
            )
        ),
    ),
    ("search-or-one", b"a SEARCH OR SEEN", Bad()),
    ("search-modseq", b"a SEARCH MODSEQ 0", srch(K("MODSEQ", 0))),
    (
        "search-modseq-entry",
        b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338',
        srch(K("MODSEQ", 620162338, header="/flags/\\Draft")),
    ),
    (
        "search-modseq-entry-keyword",
        b'a SEARCH MODSEQ "/flags/$Junk" priv 5',
        srch(K("MODSEQ", 5, header="/flags/$Junk")),
    ),
    ("search-modseq-bad-type", b'a SEARCH MODSEQ "/flags/\\\\Seen" public 5', Bad()),
    ("search-modseq-bad-entry", b'a SEARCH MODSEQ "/foo" all 5', Bad()),
    # -- OBJECTID (RFC 8474 §7): search-key =/ "EMAILID" SP objectid / "THREADID" SP objectid,
    #    objectid = 1*255(ALPHA / DIGIT / "_" / "-")
    ("search-emailid", b"a SEARCH EMAILID M1_a-Z", srch(K("EMAILID", "M1_a-Z"))),
    (
        "search-threadid",
        b"a SEARCH NOT THREADID T9",
        srch(K("NOT", children=(K("THREADID", "T9"),))),
    ),
    ("search-emailid-255", b"a SEARCH EMAILID " + b"m" * 255, srch(K("EMAILID", "m" * 255))),
    ("search-emailid-256", b"a SEARCH EMAILID " + b"m" * 256, Bad()),
    ("search-emailid-missing", b"a SEARCH EMAILID", Bad()),
    ("search-emailid-empty", b"a SEARCH EMAILID ", Bad()),
    ("search-emailid-quoted", b'a SEARCH EMAILID "M1"', Bad()),
    ("search-emailid-literal", b"a SEARCH EMAILID {2}\r\nM1", Bad()),
    ("search-emailid-dot", b"a SEARCH EMAILID M1.2", Bad()),
    ("search-emailid-dollar", b"a SEARCH EMAILID M1$", Bad()),
    ("search-emailid-8bit", b"a SEARCH EMAILID M\xc3\xa9", Bad()),
    (
        "search-emailid-paren",
        b"a SEARCH (EMAILID M1)",
        srch(K("AND", children=(K("EMAILID", "M1"),))),
    ),
    ("search-threadid-list", b"a SEARCH THREADID (T1)", Bad()),
    ("search-unknown-key", b"a SEARCH FOO", Bad()),
    ("search-empty", b"a SEARCH", Bad()),
    ("search-empty-parens", b"a SEARCH ()", Bad()),
    ("search-unbalanced-open", b"a SEARCH (SEEN", Bad()),
    ("search-unbalanced-close", b"a SEARCH SEEN)", Bad()),
    (
        "search-nested",
        b"a SEARCH ((((SEEN))))",
        srch(
            K(
                "AND",
                children=(
                    K("AND", children=(K("AND", children=(K("AND", children=(K("SEEN"),)),)),)),
                ),
            )
        ),
    ),
    ("search-too-deep", b"a SEARCH " + b"(" * 40 + b"SEEN" + b")" * 40, Bad()),
    ("search-not-too-deep", b"a SEARCH " + b"NOT " * 40 + b"SEEN", Bad()),
    ("search-8bit-quoted", b'a SEARCH TEXT "\xc3\xa9"', Bad()),
    ("search-too-many-args", b"a SEARCH " + b" ".join([b"SEEN"] * 10001), Bad()),
    ("fetch-too-many-ranges", b"a FETCH " + b",".join([b"1"] * 10001) + b" FLAGS", Bad()),
    # -- hostile and malformed
    ("empty-line", b"", Bad("*")),
    ("only-tag", b"a", Bad()),
    ("tag-then-space", b"a ", Bad()),
    ("bad-tag-plus", b"a+ NOOP", Bad("*")),
    ("bad-tag-paren", b"( NOOP", Bad("*")),
    ("nul-in-line", b"a NO\x00OP", Bad()),
    ("nul-after", b"a NOOP\x00", Bad()),
    ("8bit-in-atom", b"a SELECT f\xc3\xbcr", Bad()),
    # -- METADATA (RFC 5464 §5)
    (
        "getmetadata-server",
        b'a GETMETADATA "" /shared/comment',
        c.GetMetadata("a", "", ("/shared/comment",)),
    ),
    (
        "getmetadata-list-options",
        b'a GETMETADATA (MAXSIZE 1024 depth Infinity) INBOX (/Shared/Comment "/private/x")',
        c.GetMetadata("a", "INBOX", ("/shared/comment", "/private/x"), None, 1024),
    ),
    (
        "getmetadata-depth-1",
        b"a GETMETADATA (DEPTH 1) inbox /private/filters/values",
        c.GetMetadata("a", "INBOX", ("/private/filters/values",), 1),
    ),
    (
        "getmetadata-unparenthesised",  # RFC 5464 §4.4.1's own examples (lenient)
        b'a GETMETADATA "INBOX" /private/comment /shared/comment',
        c.GetMetadata("a", "INBOX", ("/private/comment", "/shared/comment")),
    ),
    ("getmetadata-prefix", b'a GETMETADATA "" /shared', c.GetMetadata("a", "", ("/shared",))),
    (
        "getmetadata-options-after-mailbox",  # RFC 5464 §4.2.1-4.2.2's examples (lenient)
        b'a GETMETADATA "INBOX" (MAXSIZE 1024) (/shared/comment /private/comment)',
        c.GetMetadata("a", "INBOX", ("/shared/comment", "/private/comment"), 0, 1024),
    ),
    ("getmetadata-options-twice", b"a GETMETADATA (DEPTH 1) x (DEPTH 1) /shared/c", Bad()),
    ("getmetadata-no-entry", b'a GETMETADATA ""', Bad()),
    ("getmetadata-star", b'a GETMETADATA "" "/shared/*"', Bad()),
    ("getmetadata-percent", b'a GETMETADATA "" "/shared/a%"', Bad()),
    ("getmetadata-double-slash", b'a GETMETADATA "" /shared//comment', Bad()),
    ("getmetadata-trailing-slash", b'a GETMETADATA "" /shared/comment/', Bad()),
    ("getmetadata-no-slash", b'a GETMETADATA "" shared/comment', Bad()),
    ("getmetadata-bad-scope", b'a GETMETADATA "" /public/comment', Bad()),
    ("getmetadata-control", b'a GETMETADATA "" {5}\r\n/s\x01/c', Bad()),
    ("getmetadata-8bit", b'a GETMETADATA "" {16}\r\n/shared/comm\xc3\xa9nt', Bad()),
    ("getmetadata-depth-2", b'a GETMETADATA (DEPTH 2) "" /shared/comment', Bad()),
    ("getmetadata-option-twice", b'a GETMETADATA (DEPTH 1 DEPTH 0) "" /shared/c', Bad()),
    ("getmetadata-unknown-option", b'a GETMETADATA (FOO 1) "" /shared/c', Bad()),
    ("getmetadata-empty-options", b'a GETMETADATA () "" /shared/c', Bad()),
    ("getmetadata-maxsize-huge", b'a GETMETADATA (MAXSIZE 99999999999) "" /shared/c', Bad()),
    ("getmetadata-empty-entries", b'a GETMETADATA "" ()', Bad()),
    (
        "setmetadata",
        b'a SETMETADATA INBOX (/private/comment "My new comment" /shared/comment NIL)',
        c.SetMetadata(
            "a", "INBOX", (("/private/comment", b"My new comment"), ("/shared/comment", None))
        ),
    ),
    (
        "setmetadata-literal",  # RFC 5464 §4.3's multi-line example
        b"a SETMETADATA INBOX (/private/comment {35}\r\nMy new comment across\r\ntwo lines.\r\n)",
        c.SetMetadata(
            "a", "INBOX", (("/private/comment", b"My new comment across\r\ntwo lines.\r\n"),)
        ),
    ),
    (
        "setmetadata-literal8",
        b'a SETMETADATA "" (/private/vendor/x/blob ~{3}\r\na\x00b)',
        c.SetMetadata("a", "", (("/private/vendor/x/blob", b"a\x00b"),)),
    ),
    (
        "setmetadata-repeated",
        b'a SETMETADATA x (/shared/a "1" /SHARED/A "2")',
        c.SetMetadata("a", "x", (("/shared/a", b"2"),)),
    ),
    ("setmetadata-prefix-only", b'a SETMETADATA "" (/shared "x")', Bad()),
    ("setmetadata-vendor-short", b'a SETMETADATA "" (/shared/vendor/x "v")', Bad()),
    ("setmetadata-no-parens", b'a SETMETADATA "" /shared/comment "x"', Bad()),
    ("setmetadata-no-value", b'a SETMETADATA "" (/shared/comment)', Bad()),
    ("setmetadata-empty", b'a SETMETADATA "" ()', Bad()),
    ("setmetadata-atom-value", b'a SETMETADATA "" (/shared/comment x)', Bad()),
    ("setmetadata-unclosed", b'a SETMETADATA "" (/shared/comment "x"', Bad()),
    ("setmetadata-nul-literal", b'a SETMETADATA "" (/shared/c {3}\r\na\x00b)', Bad()),
    # -- COMPRESS (RFC 4978 §5)
    ("compress", b"a COMPRESS deflate", c.Compress("a")),
    ("compress-unknown", b"a COMPRESS LZ4", Bad()),
    ("compress-none", b"a COMPRESS", Bad()),
    ("compress-extra", b"a COMPRESS DEFLATE DEFLATE", Bad()),
    # -- XAPPLEPUSHSERVICE (Cyrus imapd.c; pairs in any order)
    (
        "aps-v2",
        b"a XAPPLEPUSHSERVICE aps-version 2 aps-account-id 0715A26B-CA09 aps-device-token"
        b' 2918390218 aps-subtopic com.apple.mobilemail mailboxes (INBOX "Notes")',
        c.XApplePushService(
            "a", 2, "0715A26B-CA09", "2918390218", "com.apple.mobilemail", ("INBOX", "Notes")
        ),
    ),
    (
        "aps-v2-any-order",
        b'a XApplePushService mailboxes (inbox) aps-subtopic "s" aps-device-token t'
        b' aps-account-id "x y" aps-version "2"',
        c.XApplePushService("a", 2, "x y", "t", "s", ("INBOX",)),
    ),
    (
        "aps-v1-defaults",
        b"a XAPPLEPUSHSERVICE aps-version 1 aps-account-id A aps-device-token T",
        c.XApplePushService("a", 1, "A", "T", "com.apple.mobilemail", ("INBOX",)),
    ),
    (
        "aps-empty-mailboxes",
        b"a XAPPLEPUSHSERVICE aps-version 2 aps-account-id A aps-device-token T"
        b" aps-subtopic s mailboxes ()",
        c.XApplePushService("a", 2, "A", "T", "s", ()),
    ),
    (  # keys are astrings, quoted or not (Cyrus's getastring; issue 16 item 7)
        "aps-quoted-keys",
        b'a XAPPLEPUSHSERVICE "aps-version" "2" "aps-account-id" A "APS-DEVICE-TOKEN" T'
        b' {12+}\r\naps-subtopic s "mailboxes" (INBOX)',
        c.XApplePushService("a", 2, "A", "T", "s", ("INBOX",)),
    ),
    ("aps-quoted-unknown-key", b'a XAPPLEPUSHSERVICE "aps-version" 1 "aps colour" red', Bad()),
    ("aps-none", b"a XAPPLEPUSHSERVICE", Bad()),
    ("aps-no-version", b"a XAPPLEPUSHSERVICE aps-account-id A aps-device-token T", Bad()),
    ("aps-v2-missing", b"a XAPPLEPUSHSERVICE aps-version 2 aps-account-id A", Bad()),
    ("aps-bad-version", b"a XAPPLEPUSHSERVICE aps-version two aps-account-id A", Bad()),
    ("aps-unknown-key", b"a XAPPLEPUSHSERVICE aps-version 1 aps-colour red", Bad()),
    ("aps-twice", b"a XAPPLEPUSHSERVICE aps-version 1 aps-version 1", Bad()),
    ("aps-odd", b"a XAPPLEPUSHSERVICE aps-version", Bad()),
    ("aps-unclosed", b"a XAPPLEPUSHSERVICE aps-version 2 mailboxes (INBOX", Bad()),
    # -- QUOTA (RFC 9208 §7): the §4.1 examples, then malformed ones
    ("getquota", b'a GETQUOTA "!partition/sda4"', c.GetQuota("a", "!partition/sda4")),
    ("getquota-empty-root", b'a GETQUOTA ""', c.GetQuota("a", "")),
    ("getquota-utf8-root", b'a GETQUOTA "j\xc3\xb6rg"', Bad()),
    ("getquota-literal-utf8", b"a GETQUOTA {5}\r\nj\xc3\xb6rg", c.GetQuota("a", "j\u00f6rg")),
    ("getquotaroot", b"a GETQUOTAROOT inbox", c.GetQuotaRoot("a", "INBOX")),
    ("getquotaroot-utf7", b"a GETQUOTAROOT Entw&APw-rfe", c.GetQuotaRoot("a", "Entw\u00fcrfe")),
    (
        "setquota",
        b'a SETQUOTA "#user/alice" (STORAGE 510)',
        c.SetQuota("a", "#user/alice", (("STORAGE", 510),)),
    ),
    (
        "setquota-two",
        b"a SETQUOTA alice (storage 1 MESSAGE 0)",
        c.SetQuota("a", "alice", (("STORAGE", 1), ("MESSAGE", 0))),
    ),
    ("setquota-none", b"a SETQUOTA alice ()", c.SetQuota("a", "alice", ())),
    (
        "setquota-other-resource",
        b"a SETQUOTA alice (MAILBOX 5)",
        c.SetQuota("a", "alice", (("MAILBOX", 5),)),
    ),
    (
        "setquota-number64",
        b"a SETQUOTA alice (STORAGE 9223372036854775807)",
        c.SetQuota("a", "alice", (("STORAGE", 2**63 - 1),)),
    ),
    ("setquota-too-big", b"a SETQUOTA alice (STORAGE 9223372036854775808)", Bad()),
    ("setquota-twice", b"a SETQUOTA alice (STORAGE 1 STORAGE 2)", Bad()),
    ("setquota-negative", b"a SETQUOTA alice (STORAGE -1)", Bad()),
    ("setquota-no-list", b"a SETQUOTA alice STORAGE 1", Bad()),
    ("setquota-no-limit", b"a SETQUOTA alice (STORAGE)", Bad()),
    ("setquota-unclosed", b"a SETQUOTA alice (STORAGE 1", Bad()),
    ("getquota-none", b"a GETQUOTA", Bad()),
    ("getquotaroot-none", b"a GETQUOTAROOT", Bad()),
    # -- UTF8=ACCEPT (RFC 6855 §4): the UTF8 APPEND data needs ENABLE first
    ("append-utf8-not-enabled", b"a APPEND x UTF8 (~{1}\r\na)", Bad()),
    ("8bit-tag", b"\xc3\xa9 NOOP", Bad("*")),
    ("double-space", b"a  NOOP", Bad()),
    ("trailing-space", b"a NOOP ", Bad()),
    ("cr-in-line", b"a NO\rOP", Bad()),
    ("literal-mid-line", b"a LOGIN {3} x", Bad()),
    ("literal-for-atom", b"a SEARCH {3}\r\nALL", Bad()),
    # non-synchronizing: read whole, then BAD from the parser (a synchronizing one is BAD
    # before its "+": test_connection.test_misplaced_literal8_is_bad_before_any_continuation)
    ("literal8-for-string", b"a LOGIN ~{1+}\r\nu p", Bad()),
    # -- NOTIFY (RFC 5465 §5, §6.1, §8; RFC 3501 §9; the readings of docs/notify.md)
    ("notify-none", b"a NOTIFY NONE", c.Notify("a", False, None)),
    ("notify-none-lower", b"a notify none", c.Notify("a", False, None)),
    (
        "notify-set-selected",
        b"a NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER]) messageexpunge))",
        c.Notify(
            "a",
            False,
            (
                c.NotifyGroup(
                    "selected",
                    (),
                    (
                        NE("MessageNew", (F("UID"), F("BODY", Section((), "HEADER"), peek=True))),
                        NE("MessageExpunge"),
                    ),
                ),
            ),
        ),
    ),
    (
        "notify-set-status-groups",
        b"a NOTIFY SET STATUS (SELECTED-DELAYED (MessageNew"
        b" MessageExpunge FlagChange)) (personal (MailboxName SubscriptionChange))"
        b" (subtree (Lists &AOQ-) NONE) (mailboxes inbox (MessageNew MessageExpunge))",
        c.Notify(
            "a",
            True,
            (
                c.NotifyGroup(
                    "selected-delayed",
                    (),
                    (NE("MessageNew"), NE("MessageExpunge"), NE("FlagChange")),
                ),
                c.NotifyGroup("personal", (), (NE("MailboxName"), NE("SubscriptionChange"))),
                c.NotifyGroup("subtree", ("Lists", "\u00e4"), None),
                c.NotifyGroup("mailboxes", ("INBOX",), (NE("MessageNew"), NE("MessageExpunge"))),
            ),
        ),
    ),
    (
        "notify-inboxes-subscribed",
        b"a NOTIFY SET (inboxes (MailboxMetadataChange)) (subscribed (ServerMetadataChange))",
        c.Notify(
            "a",
            False,
            (
                c.NotifyGroup("inboxes", (), (NE("MailboxMetadataChange"),)),
                c.NotifyGroup("subscribed", (), (NE("ServerMetadataChange"),)),
            ),
        ),
    ),
    (
        "notify-event-ext",
        b"a NOTIFY SET (personal (XFuture))",
        c.Notify("a", False, (c.NotifyGroup("personal", (), (NE("XFuture"),)),)),
    ),
    (
        "notify-annotation",
        b"a NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))",
        c.Notify(
            "a",
            False,
            (
                c.NotifyGroup(
                    "selected", (), (NE("MessageNew"), NE("MessageExpunge"), NE("AnnotationChange"))
                ),
            ),
        ),
    ),
    ("notify-set-alone", b"a NOTIFY SET", Bad()),
    ("notify-set-status-alone", b"a NOTIFY SET STATUS", Bad()),
    ("notify-none-extra", b"a NOTIFY NONE (selected (MessageNew MessageExpunge))", Bad()),
    ("notify-other-word", b"a NOTIFY GET (selected NONE)", Bad()),
    ("notify-bare", b"a NOTIFY", Bad()),
    ("notify-example-c1", b"a NOTIFY SET (selected MessageNew MessageExpunge)", Bad()),
    ("notify-empty-events", b"a NOTIFY SET (personal ())", Bad()),
    ("notify-empty-mailboxes", b"a NOTIFY SET (mailboxes () (MailboxName))", Bad()),
    ("notify-unknown-filter", b"a NOTIFY SET (everything (MailboxName))", Bad()),
    ("notify-subtree-no-name", b"a NOTIFY SET (subtree (MailboxName))", Bad()),
    ("notify-new-alone", b"a NOTIFY SET (personal (MessageNew))", Bad()),
    ("notify-expunge-alone", b"a NOTIFY SET (selected (MessageExpunge))", Bad()),
    ("notify-flag-alone", b"a NOTIFY SET (personal (FlagChange))", Bad()),
    ("notify-flag-half", b"a NOTIFY SET (personal (FlagChange MessageNew))", Bad()),
    ("notify-selected-mailbox-event", b"a NOTIFY SET (selected (MailboxName))", Bad()),
    ("notify-two-selected", b"a NOTIFY SET (selected NONE) (selected-delayed NONE)", Bad()),
    ("notify-atts-elsewhere", b"a NOTIFY SET (personal (MessageNew (UID) MessageExpunge))", Bad()),
    ("notify-atts-macro", b"a NOTIFY SET (selected (MessageNew (ALL) MessageExpunge))", Bad()),
    ("notify-atts-empty", b"a NOTIFY SET (selected (MessageNew () MessageExpunge))", Bad()),
    ("notify-unclosed", b"a NOTIFY SET (personal (MailboxName)", Bad()),
    ("notify-double-space", b"a NOTIFY SET (personal (MailboxName))  (inboxes NONE)", Bad()),
    ("unknown-authenticated", b"a XYZZY", Bad()),
]
ROWS += sort_rows(Bad, No)  # SORT and THREAD (RFC 5256): tests/protocol/sort_rows.py
ROWS += replace_rows(Bad)  # REPLACE (RFC 8508): tests/protocol/replace_rows.py
ROWS += context_rows(Bad)  # CONTEXT=SEARCH/SORT (RFC 5267 §4): tests/protocol/context_rows.py
ROWS += urlauth_rows(Bad)  # CATENATE, URLAUTH (RFC 4469, 4467): tests/protocol/urlauth_rows.py


def _state_for(data: bytes) -> State:
    """Selected, unless the command (if it has a known name) is for not-authenticated only."""
    try:
        _, kind = peek_command(data)
    except BadCommand:
        return SELECTED
    assert kind is not None
    return SELECTED if Selected in ALLOWED[kind] else NotAuthenticated()


def _check(all_events: Sequence[object], expected: Expected) -> None:
    events = [e for e in all_events if not isinstance(e, ContinueRequest)]
    assert len(events) == 1, events
    (event,) = events
    match expected:
        case Bad(tag):
            assert isinstance(event, Rejected), event
            assert (event.reply.tag, event.reply.status) == (tag, "BAD")
        case No(code):
            assert isinstance(event, Rejected), event
            assert (event.reply.tag, event.reply.status, event.reply.code) == ("a", "NO", code)
        case Bye():
            assert isinstance(event, Fatal), event
        case _:
            assert event == expected


CASES = [
    pytest.param(data, expected, pieces, id=f"{name}-{how}")
    for name, data, expected in ROWS
    for how, pieces in three_ways(data + b"\r\n", name)
    # The byte-at-a-time feed of the 10000-argument rows adds nothing but time.
    if not (how == "bytewise" and len(data) > 5000)
]


@pytest.mark.parametrize(("data", "expected", "pieces"), CASES)
def test_row(data: bytes, expected: Expected, pieces: list[bytes]) -> None:
    conn = connection(_state_for(data))
    _check(feed(conn, pieces), expected)


def test_rows_cover_every_command_type() -> None:
    seen = {type(e) for _, _, e in ROWS}
    assert set(ALLOWED) <= seen


@pytest.mark.parametrize(
    "name",
    ["ALL", "ANSWERED", "BCC", "BEFORE", "BODY", "CC", "DELETED", "DRAFT", "FLAGGED", "FROM",
     "HEADER", "KEYWORD", "LARGER", "NEW", "NOT", "OLD", "ON", "OR", "RECENT", "SEEN",
     "SENTBEFORE", "SENTON", "SENTSINCE", "SINCE", "SMALLER", "SUBJECT", "TEXT", "TO", "UID",
     "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNKEYWORD", "UNSEEN", "MODSEQ",
     "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE", "SAVEDATESUPPORTED", "OLDER", "YOUNGER", "SEQSET",
     "AND"],
)  # fmt: skip
def test_every_search_key_has_a_row(name: str) -> None:
    def names(k: K) -> set[str]:
        return {k.name}.union(*(names(ch) for ch in k.children))

    found: set[str] = set()
    for _, _, e in ROWS:
        if isinstance(e, c.Search):
            found |= names(e.key)
    assert name in found


def test_utf8_mode_mailbox_names_are_not_mutf7() -> None:
    conn = connection(Authenticated("u"))
    conn.utf8 = True
    events = feed(conn, [b'a SELECT "Entw\xc3\xbcrfe&AAA-"\r\nb CREATE f\xc3\xbcr\r\n'])
    assert events[0] == c.Select("a", "Entw\u00fcrfe&AAA-")
    # 8-bit atoms are still not atoms, even with UTF8=ACCEPT (RFC 6855 §3 extends quoted only).
    assert isinstance(events[1], Rejected)


def test_utf8_mode_append_utf8_data_and_no_charset() -> None:
    """RFC 6855 §4: APPEND ... UTF8 (literal8); §3: no SEARCH CHARSET once enabled."""
    conn = connection(SELECTED)
    conn.utf8 = True
    events = feed(
        conn,
        [
            b'a APPEND "Entw\xc3\xbcrfe" UTF8 (~{8}\r\nS: \xc3\xa9t\xc3\xa9)\r\n'
            b"b SEARCH CHARSET UTF-8 ALL\r\nc SEARCH ALL\r\n"
            b"d APPEND x UTF8 ({1}\r\na\r\n"
        ],
    )
    events = [e for e in events if not isinstance(e, ContinueRequest)]
    assert events[0] == c.Append(
        "a", "Entw\u00fcrfe", (c.AppendMessage((), None, "S: \u00e9t\u00e9".encode()),)
    )
    assert isinstance(events[1], Rejected)
    assert events[1].reply.status == "BAD"
    assert events[2] == c.Search("c", False, K("AND", children=(K("ALL"),)))
    assert isinstance(events[3], Rejected)  # the closing ")" is missing


def test_utf8_mode_rejects_invalid_utf8() -> None:
    conn = connection(Authenticated("u"))
    conn.utf8 = True
    (event,) = feed(conn, [b'a SELECT "\xff"\r\n'])
    assert isinstance(event, Rejected)
    assert event.reply.status == "BAD"


def test_parse_command_directly_reports_position_without_echo() -> None:
    with pytest.raises(Exception, match="Expected") as info:
        parse_command(b"a LOGIN secretuser")
    assert "secretuser" not in str(info.value)


def test_sequence_set_rule() -> None:
    cur = Cursor(b"1:*,7,9:3")
    assert sequence_set(cur) == S(((1, None), (7, 7), (9, 3)))
    assert cur.at_end()


def test_limits_are_configurable() -> None:
    conn = connection(SELECTED, Limits(max_depth=2, max_args=3))
    events = feed(conn, [b"a SEARCH ((SEEN))\r\nb SEARCH (SEEN)\r\nc FETCH 1,2,3,4 FLAGS\r\n"])
    assert [type(e) for e in events] == [Rejected, c.Search, Rejected]
