"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154), STATUS=SIZE
(RFC 8438) and APPENDLIMIT (RFC 7889) end to end, with parsed responses.

imapclient has no extended LIST: its imaplib connection sends the command and imapclient's
own response parser reads the answer, so assertions are on values, not bytes (the exact
exchanges are in tests/transcripts/list_*.imap). The pure renderers NOTIFY reuses are
checked here against the bytes RFC 5258 §5 and RFC 5465 §5.4 show.
"""

from __future__ import annotations

from typing import Any

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_response

from imapd.commands.mailbox import mailbox_attributes
from imapd.protocol.connection import Limits
from imapd.protocol.serializer import serialize
from imapd.replies import list_response, oldname_response
from store.api import MailboxInfo
from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer
from tests.rawclient import RawClient

Parsed = list[Any]


def extended_list(c: imapclient.IMAPClient, *args: str) -> tuple[Parsed, Parsed]:
    """LIST with raw arguments: (LIST responses, STATUS responses), each parsed."""
    imap = c._imap
    typ, data = imap._simple_command("LIST", *args)
    assert typ == "OK", data
    _, lists = imap._untagged_response(typ, data, "LIST")
    _, statuses = imap._untagged_response(typ, [None], "STATUS")
    return parse_list(lists), [parse_response([s]) for s in statuses if s]


def parse_list(lines: list[Any]) -> Parsed:
    out = []
    for line in lines:
        if not line:
            continue
        out.append(parse_response([line] if isinstance(line, bytes) else list(line)))
    return out


def names(lists: Parsed) -> list[str]:
    return [item[2].decode() if isinstance(item[2], bytes) else str(item[2]) for item in lists]


def by_name(lists: Parsed) -> dict[str, tuple[bytes, ...]]:
    return dict(zip(names(lists), (tuple(item[0]) for item in lists), strict=True))


def test_capabilities(server: RunningServer) -> None:
    c = client(server)
    caps = c.capabilities()
    for cap in (
        b"LIST-EXTENDED",
        b"LIST-STATUS",
        b"SPECIAL-USE",
        b"STATUS=SIZE",
        b"APPENDLIMIT=67108864",
    ):
        assert cap in caps, cap
    c.logout()


def test_selection_and_return_options(server: RunningServer) -> None:
    c = client(server)
    c.create_folder("Fruit/Apple")
    c.create_folder("Fruit/Banana")
    c.subscribe_folder("Fruit/Banana")
    c.create_folder("Gone")
    c.subscribe_folder("Gone")
    c.delete_folder("Gone")
    lists, _ = extended_list(c, "(SUBSCRIBED)", '""', "*")
    got = by_name(lists)
    assert got["Fruit/Banana"] == (b"\\Subscribed",)
    assert got["Gone"] == (b"\\Subscribed", b"\\NonExistent")
    assert "Fruit" not in got and "Fruit/Apple" not in got
    # RECURSIVEMATCH: the unsubscribed parent comes back with CHILDINFO
    imap = c._imap
    typ, data = imap._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "F%")
    _, lines = imap._untagged_response(typ, data, "LIST")
    [fruit] = parse_list(lines)
    assert fruit[:3] == ((), b"/", b"Fruit")
    assert fruit[3] == (b"CHILDINFO", (b"SUBSCRIBED",))
    # CHILDREN and SUBSCRIBED return options over every mailbox
    lists, _ = extended_list(c, '""', "Fruit*", "RETURN", "(CHILDREN SUBSCRIBED)")
    assert by_name(lists) == {
        "Fruit": (b"\\HasChildren",),
        "Fruit/Apple": (b"\\HasNoChildren",),
        "Fruit/Banana": (b"\\HasNoChildren", b"\\Subscribed"),
    }
    c.logout()


def test_list_status_follows_other_sessions(server: RunningServer) -> None:
    a, b = client(server), client(server)
    draft, more = b"Subject: draft\r\n\r\nbody\r\n", b"Subject: more\r\n\r\nbody\r\n"
    a.append("Drafts", draft)
    b.append("Drafts", more, flags=[b"\\Seen", b"\\Deleted"])
    lists, statuses = extended_list(
        a, '""', '("INBOX" "Drafts")', "RETURN", "(STATUS (MESSAGES UNSEEN SIZE DELETED))"
    )
    assert names(lists) == ["INBOX", "Drafts"]
    values = {s[0]: dict(zip(s[1][::2], s[1][1::2], strict=True)) for s in statuses}
    assert values[b"Drafts"] == {
        b"MESSAGES": 2,
        b"UNSEEN": 1,
        b"SIZE": len(draft) + len(more),
        b"DELETED": 1,
    }
    assert values[b"INBOX"][b"MESSAGES"] == 0
    # imapclient's STATUS agrees (RFC 8438 SIZE, RFC 9051 DELETED, RFC 7889 APPENDLIMIT)
    status = a.folder_status("Drafts", [b"MESSAGES", b"SIZE", b"DELETED", b"APPENDLIMIT"])
    assert status[b"SIZE"] == values[b"Drafts"][b"SIZE"]
    assert status[b"DELETED"] == 1
    assert status[b"APPENDLIMIT"] == 64 * 1024 * 1024
    a.logout()
    b.logout()


def test_special_use_selection(server: RunningServer) -> None:
    c = client(server)
    c.create_folder("Old")
    lists, statuses = extended_list(c, "(SPECIAL-USE)", '""', "*", "RETURN", "(STATUS (MESSAGES))")
    assert by_name(lists) == {
        "Archive": (b"\\Archive",),
        "Drafts": (b"\\Drafts",),
        "Junk": (b"\\Junk",),
        "Sent": (b"\\Sent",),
        "Trash": (b"\\Trash",),
    }
    assert len(statuses) == 5
    # the plain LIST keeps special-use attributes, so imapclient's helper finds them
    assert c.find_special_folder(imapclient.imapclient.DRAFTS) == "Drafts"
    c.logout()


def test_empty_pattern_is_only_special_in_a_plain_list(server: RunningServer) -> None:
    c = client(server)
    imap = c._imap
    typ, data = imap._simple_command("LIST", '""', '""')
    _, lines = imap._untagged_response(typ, data, "LIST")
    assert parse_list(lines) == [((b"\\Noselect",), b"/", b"")]
    typ, data = imap._simple_command("LIST", "()", '""', '""')
    _, lines = imap._untagged_response(typ, data, "LIST")
    assert parse_list(lines) == []
    c.logout()


def test_appendlimit_and_toobig(server_factory: Any) -> None:
    srv = server_factory(limits=Limits(max_literal_size=2000))
    srv.add_user("alice")
    c = client(srv)
    assert b"APPENDLIMIT=2000" in c.capabilities()
    assert c.folder_status("INBOX", [b"APPENDLIMIT"])[b"APPENDLIMIT"] == 2000
    with pytest.raises(IMAPClientError, match="TOOBIG"):
        c.append("INBOX", b"Subject: big\r\n\r\n" + b"x" * 3000)
    c.append("INBOX", b"Subject: small\r\n\r\n" + b"x" * 1000)
    assert c.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] == 1
    c.logout()
    raw = RawClient.connect(srv.host, srv.port)
    raw.login("alice", PASSWORD)
    raw.line("a1 APPEND INBOX {2001}")
    assert raw.response().startswith("a1 NO [TOOBIG]")
    assert raw.command("a2", 'LIST "" INBOX RETURN (STATUS (APPENDLIMIT))')[:2] == [
        '* LIST () "/" "INBOX"',
        '* STATUS "INBOX" (APPENDLIMIT 2000)',
    ]
    raw.close()


def info(name: str, **kw: Any) -> MailboxInfo:
    values: dict[str, Any] = {
        "id": 1,
        "owner_id": 1,
        "owner": "alice",
        "name": name,
        "uidvalidity": 1,
        "uidnext": 1,
        "highestmodseq": 1,
        "messages": 0,
        "unseen": 0,
        "recent": 0,
        "size": 0,
    }
    values.update(kw)
    return MailboxInfo(**values)


def test_pure_list_renderers() -> None:
    """The functions NOTIFY reuses render what RFC 5258 §5 and RFC 5465 §5.4 show."""
    attrs = mailbox_attributes(info("Foo"), children=True, subscribed=True, special_use=False)
    assert serialize(list_response(attrs, "Foo", (("CHILDINFO", ("SUBSCRIBED",)),))) == (
        b'* LIST (\\HasChildren \\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    )
    assert serialize(oldname_response("NewMailbox", "OldMailbox")) == (
        b'* LIST () "/" "NewMailbox" ("OLDNAME" ("OldMailbox"))\r\n'
    )
    assert serialize(oldname_response("Entw\u00fcrfe", "Alt", ("\\Subscribed",))) == (
        b'* LIST (\\Subscribed) "/" "Entw&APw-rfe" ("OLDNAME" ("Alt"))\r\n'
    )
    assert serialize(oldname_response("Entw\u00fcrfe", "Alt"), utf8=True) == (
        '* LIST () "/" "Entw\u00fcrfe" ("OLDNAME" ("Alt"))\r\n'.encode()
    )
    sent = info("Sent", special_use=("\\Sent",))
    assert mailbox_attributes(sent, children=False) == ("\\Sent", "\\HasNoChildren")
    assert mailbox_attributes(None, subscribed=True) == ("\\Subscribed", "\\NonExistent")
    placeholder = info("p", selectable=False)
    assert mailbox_attributes(placeholder) == ("\\Noselect",)
    assert mailbox_attributes(placeholder, extended=True) == ("\\NonExistent",)
