"""End-to-end tests of every RFC 3501 command through imapclient against a real server."""

from __future__ import annotations

import datetime as dt

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError

from tests.e2e.messages import NESTED, SIMPLE, numbered
from tests.helpers.imap import client
from tests.helpers.server import PASSWORD, RunningServer

BOTH_BACKENDS = True  # tests/conftest.py: SQLite and PostgreSQL (issue 18)


@pytest.mark.sqlite_only  # CAPABILITY, NAMESPACE, ID: no store involved
def test_capabilities_and_namespace(server: RunningServer) -> None:
    c = client(server)
    caps = c.capabilities()
    for cap in (b"IMAP4REV1", b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"LITERAL+"):
        assert cap in caps
    ns = c.namespace()
    assert ns.personal == (("", "/"),)
    server_id = c.id_({"name": "pytest"})[0]
    assert dict(zip(server_id[::2], server_id[1::2], strict=True))[b"name"] == b"imapd"
    c.logout()


@pytest.mark.sqlite_only  # both backends' defaults: tests/store/test_mailboxes.py
def test_new_user_has_special_use_mailboxes(server: RunningServer) -> None:
    c = client(server)
    folders = {name: flags for flags, _, name in c.list_folders()}
    assert set(folders) >= {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}
    assert b"\\Drafts" in folders["Drafts"]
    assert b"\\Trash" in folders["Trash"]
    assert c.find_special_folder(b"\\Sent") == "Sent"
    subscribed = {name for _, _, name in c.list_sub_folders()}
    assert "Sent" in subscribed
    c.logout()


def test_create_delete_rename_subscribe(server: RunningServer) -> None:
    c = client(server)
    c.create_folder("Projects/2026/Q4")
    # RFC 3501 §6.3.8: reference and pattern are joined as they are.
    names = [name for _, _, name in c.list_folders("", "Projects")]
    assert names == ["Projects"]
    all_names = [name for _, _, name in c.list_folders("Projects/", "*")]
    assert all_names == ["Projects/2026", "Projects/2026/Q4"]
    assert [n for _, _, n in c.list_folders("Projects/", "%")] == ["Projects/2026"]
    flags = {name: fl for fl, _, name in c.list_folders("Projects*")}
    assert b"\\HasChildren" in flags["Projects"]
    assert b"\\HasNoChildren" in flags["Projects/2026/Q4"]
    with pytest.raises(IMAPClientError, match="ALREADYEXISTS"):
        c.create_folder("Projects")
    c.rename_folder("Projects", "Work")
    assert {n for _, _, n in c.list_folders("Work*")} == {"Work", "Work/2026", "Work/2026/Q4"}
    assert c.list_folders("Projects*") == []
    c.subscribe_folder("Work/2026")
    assert "Work/2026" in {n for _, _, n in c.list_sub_folders()}
    c.unsubscribe_folder("Work/2026")
    assert "Work/2026" not in {n for _, _, n in c.list_sub_folders()}
    # RFC 3501 §6.3.4: deleting a mailbox with children leaves it \Noselect.
    c.delete_folder("Work/2026")
    flags = {name: fl for fl, _, name in c.list_folders("Work*")}
    assert b"\\Noselect" in flags["Work/2026"]
    with pytest.raises(IMAPClientError):
        c.select_folder("Work/2026")
    c.delete_folder("Work/2026/Q4")
    c.delete_folder("Work/2026")
    assert {n for _, _, n in c.list_folders("Work*")} == {"Work"}
    with pytest.raises(IMAPClientError):
        c.delete_folder("INBOX")
    with pytest.raises(IMAPClientError, match="NONEXISTENT"):
        c.delete_folder("Nope")
    c.logout()


def test_unicode_mailbox_names(server: RunningServer) -> None:
    c = client(server)
    c.create_folder("Réunions/日本")
    names = {n for _, _, n in c.list_folders()}
    assert "Réunions/日本" in names
    c.select_folder("Réunions/日本")
    c.logout()


@pytest.mark.sqlite_only  # each backend's INBOX case rule: tests/store/test_mailboxes.py
def test_inbox_is_case_insensitive(server: RunningServer) -> None:
    c = client(server)
    info = c.select_folder("inbox")
    assert b"UIDVALIDITY" in info
    c.logout()


def test_append_status_and_fetch(server: RunningServer) -> None:
    c = client(server)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    result = c.append("INBOX", SIMPLE, flags=[imapclient.SEEN, b"$Work"], msg_time=when)
    assert b"APPENDUID" in result
    c.append("INBOX", NESTED)
    status = c.folder_status("INBOX", ["MESSAGES", "UNSEEN", "UIDNEXT", "RECENT"])
    assert status[b"MESSAGES"] == 2
    assert status[b"UNSEEN"] == 1
    assert status[b"UIDNEXT"] == 3
    c.select_folder("INBOX")
    data = c.fetch([1, 2], ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "UID"])
    first = data[1]
    assert set(first[b"FLAGS"]) >= {b"\\Seen", b"$Work"}
    assert first[b"RFC822.SIZE"] == len(SIMPLE)
    # imapclient converts INTERNALDATE to the local time zone, without tzinfo.
    assert first[b"INTERNALDATE"].astimezone(dt.UTC) == when
    env = first[b"ENVELOPE"]
    assert env.subject == b"Lunch on Friday"
    assert env.from_[0].mailbox == b"alice" and env.from_[0].host == b"example.org"
    assert env.from_[0].name == b"Alice Example"
    assert [a.mailbox for a in env.to] == [b"bob", b"carol"]
    assert env.message_id == b"<lunch-1@example.org>"
    assert env.sender == env.from_
    body = c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    assert body == SIMPLE
    c.logout()


@pytest.mark.sqlite_only  # made at APPEND (store/mime.py); both: tests/store/test_messages.py
def test_bodystructure_of_nested_multipart(server: RunningServer) -> None:
    c = client(server)
    c.append("INBOX", NESTED)
    c.select_folder("INBOX", readonly=True)
    bs = c.fetch([1], ["BODYSTRUCTURE"])[1][b"BODYSTRUCTURE"]
    assert bs.is_multipart
    parts, subtype = bs[0], bs[1]
    assert subtype == b"MIXED"
    alternative = parts[0]
    assert alternative.is_multipart and alternative[1] == b"ALTERNATIVE"
    plain = alternative[0][0]
    assert plain[0] == b"TEXT" and plain[1] == b"PLAIN"
    assert plain[2] == (b"CHARSET", b"utf-8")
    assert plain[5] == b"QUOTED-PRINTABLE"
    rfc822 = parts[1]
    assert rfc822[0] == b"MESSAGE" and rfc822[1] == b"RFC822"
    inner_env = rfc822[7]
    assert inner_env[1] == b"Quarterly figures"
    inner_body = rfc822[8]
    assert inner_body[2] == b"MIXED"
    attachment = inner_body[1]
    assert attachment[0] == b"APPLICATION" and attachment[5] == b"BASE64"
    body = c.fetch([1], ["BODY"])[1][b"BODY"]
    assert body.is_multipart
    c.logout()


def test_body_sections_and_partial(server: RunningServer) -> None:
    c = client(server)
    c.append("INBOX", NESTED)
    c.select_folder("INBOX")
    sections = {
        "BODY.PEEK[1.1]": b"Caf=C3=A9 report attached.",
        "BODY.PEEK[1.2]": b"<p>Caf\xc3\xa9 report attached.</p>",
        "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]": b"Subject: Quarterly figures\r\n\r\n",
        "BODY.PEEK[2.1]": b"Figures inside.",
        "BODY.PEEK[2.2]": b"AAECAwQFBgcICQ==",
        "BODY.PEEK[1.1.MIME]": (
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ),
    }
    for item, expected in sections.items():
        data = c.fetch([1], [item])[1]
        key = item.replace(".PEEK", "").encode()
        assert data[key] == expected, item
    header = c.fetch([1], ["BODY.PEEK[HEADER.FIELDS.NOT (FROM TO DATE MESSAGE-ID MIME-VERSION)]"])
    text = next(v for k, v in header[1].items() if k.startswith(b"BODY["))
    assert b"Subject: Forwarded report" in text and b"From:" not in text
    partial = c.fetch([1], ["BODY.PEEK[]<0.4>"])[1]
    assert partial[b"BODY[]<0>"] == NESTED[:4]
    rfc822 = c.fetch([1], ["RFC822.HEADER", "RFC822.TEXT"])[1]
    split = NESTED.index(b"\r\n\r\n") + 4
    assert rfc822[b"RFC822.HEADER"] == NESTED[:split]
    assert rfc822[b"RFC822.TEXT"] == NESTED[split:]
    assert b"\\Seen" in c.get_flags([1])[1]  # RFC822.TEXT is not a PEEK
    c.logout()


def test_store_flags_and_peek(server: RunningServer) -> None:
    c = client(server)
    for i in range(1, 4):
        c.append("INBOX", numbered(i))
    c.select_folder("INBOX")
    c.fetch([1], ["BODY.PEEK[]"])
    assert b"\\Seen" not in c.get_flags([1])[1]
    c.fetch([1], ["BODY[]"])
    assert b"\\Seen" in c.get_flags([1])[1]
    c.add_flags([2, 3], [imapclient.FLAGGED, b"$Label1"])
    assert set(c.get_flags([2])[2]) >= {b"\\Flagged", b"$Label1"}
    c.remove_flags([2], [b"$Label1"])
    assert b"$Label1" not in c.get_flags([2])[2]
    c.set_flags([3], [imapclient.ANSWERED])
    assert set(c.get_flags([3])[3]) - {b"\\Recent"} == {b"\\Answered"}
    c.logout()


def test_search_keys(server: RunningServer) -> None:
    c = client(server)
    c.append("INBOX", SIMPLE, msg_time=dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC))
    c.append("INBOX", NESTED, flags=[imapclient.FLAGGED])
    for i in range(3, 6):
        c.append("INBOX", numbered(i, body="needle" if i == 4 else "hay"))
    c.select_folder("INBOX")
    c.add_flags([5], [imapclient.SEEN, imapclient.DELETED])
    assert c.search(["ALL"]) == [1, 2, 3, 4, 5]
    assert c.search(["FLAGGED"]) == [2]
    assert c.search(["UNSEEN"]) == [1, 2, 3, 4]
    assert c.search(["DELETED"]) == [5]
    assert c.search(["SUBJECT", "lunch"]) == [1]
    assert c.search(["FROM", "alice@example.org"]) == [1]
    assert c.search(["FROM", "Alice Example"]) == [1]
    assert c.search(["TO", "carol"]) == [1]
    assert c.search(["BODY", "needle"]) == [4]
    assert c.search(["TEXT", "Quarterly"]) == [2]
    assert c.search(["HEADER", "Message-ID", "m3@"]) == [3]
    assert c.search(["LARGER", 900]) == [2]
    assert c.search(["SMALLER", 200]) == [3, 4, 5]
    assert c.search(["BEFORE", dt.date(2026, 1, 1)]) == [1]
    assert c.search(["SENTON", dt.date(2026, 11, 6)]) == [1]
    assert c.search(["OR", "FLAGGED", "DELETED"]) == [2, 5]
    assert c.search(["NOT", "OR", "FLAGGED", "DELETED"]) == [1, 3, 4]
    assert c.search(["2:4", "UNFLAGGED"]) == [3, 4]
    assert c.search(["UID", "4:*"]) == [4, 5]
    assert c.search(["BODY", "café"], charset="UTF-8") == [2]
    assert c.search(["KEYWORD", "$Nope"]) == []
    c.remove_flags([1], [imapclient.SEEN])
    with pytest.raises(IMAPClientError, match="BADCHARSET"):
        c.search(["BODY", "x"], charset="KOI8-R")
    c.logout()


def test_copy_move_expunge_uidplus(server: RunningServer) -> None:
    c = client(server)
    for i in range(1, 6):
        c.append("INBOX", numbered(i))
    c.create_folder("Kept")
    c.select_folder("INBOX")
    c.copy([1, 2], "Kept")
    assert c.folder_status("Kept", ["MESSAGES"])[b"MESSAGES"] == 2
    c.move([3], "Kept")
    assert c.search(["ALL"]) == [1, 2, 4, 5]  # imapclient works with UIDs
    assert c.folder_status("Kept", ["MESSAGES"])[b"MESSAGES"] == 3
    with pytest.raises(IMAPClientError, match="TRYCREATE"):
        c.copy([1], "Missing")
    c.add_flags([1, 2], [imapclient.DELETED])
    c.uid_expunge([1])
    assert c.search(["ALL"]) == [2, 4, 5]
    c.expunge()
    assert c.search(["ALL"]) == [4, 5]
    c.select_folder("Kept", readonly=True)
    subjects = [env[b"ENVELOPE"].subject for env in c.fetch([1, 2, 3], ["ENVELOPE"]).values()]
    assert subjects == [b"Message 1", b"Message 2", b"Message 3"]
    with pytest.raises(IMAPClientError):
        c.add_flags([1], [imapclient.DELETED])
    c.logout()


def test_close_expunges_and_unselect_does_not(server: RunningServer) -> None:
    c = client(server)
    for i in range(1, 4):
        c.append("INBOX", numbered(i))
    c.select_folder("INBOX")
    c.add_flags([1], [imapclient.DELETED])
    c.unselect_folder()
    assert c.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 3
    c.select_folder("INBOX")
    c.close_folder()
    assert c.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 2
    c.logout()


def test_idle_sees_other_session(server: RunningServer) -> None:
    watcher = client(server)
    writer = client(server)
    watcher.select_folder("INBOX")
    watcher.idle()
    writer.append("INBOX", numbered(1))
    responses = watcher.idle_check(timeout=5)
    watcher.idle_done()
    assert (1, b"EXISTS") in responses
    watcher.logout()
    writer.logout()


def test_users_are_isolated(server: RunningServer) -> None:
    a = client(server, "alice")
    b = client(server, "bob")
    a.create_folder("Private")
    a.append("INBOX", numbered(1))
    assert "Private" not in {n for _, _, n in b.list_folders()}
    assert b.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 0
    a.logout()
    b.logout()


@pytest.mark.sqlite_only  # LITERAL+ framing; both multi-appends: tests/store/test_messages.py
def test_multiappend_and_literal_plus_via_raw(server: RunningServer) -> None:
    from tests.rawclient import RawClient

    raw = RawClient.connect(server.host, server.port)
    raw.login("alice", PASSWORD)
    a, b = numbered(1), numbered(2)
    raw.send(b"m1 APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(a), a, len(b), b))
    tagged = raw.until_tagged("m1")[-1]
    assert tagged.startswith("m1 OK [APPENDUID ") and tagged.split()[4].rstrip("]") == "1:2"
    raw.close()
