"""Access control (RFC 4314) end to end: every command's rights check, allowed and refused,
over raw sessions against a real server; that a mailbox without ``l`` stays unknown through
LIST, STATUS, SELECT errors, NAMESPACE and the updates a session receives; two sessions on
one mailbox of another user; admins and shared mailboxes; the AclChange event.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.raw_session import Session
from tests.helpers.server import RunningServer
from tests.notify.listener import Listener, example_keys

BOTH_BACKENDS = True  # tests/conftest.py: SQLite and PostgreSQL (issue 18)

BOX = '"Other Users/alice/Team"'
MISSING = "NO [NONEXISTENT] Mailbox does not exist"
NOPERM = "NO [NOPERM] Permission denied"


@pytest.fixture
def team(server: RunningServer) -> Iterator[tuple[Session, Session]]:
    """alice owns "Team" (one message); bob is logged in too, with no rights yet."""
    alice, bob = Session(server, "alice"), Session(server, "bob")
    alice.ok("CREATE Team")
    assert alice.append("Team").startswith("OK")
    yield alice, bob
    alice.raw.close()
    bob.raw.close()


def grant(alice: Session, rights: str, who: str = "bob") -> None:
    alice.ok(f"SETACL Team {who} {rights}")


def flags_of(s: Session, mailbox: str) -> str:
    s.ok(f"EXAMINE {mailbox}")
    [fetch] = [ln for ln in s.ok("FETCH 1 FLAGS") if "FETCH" in ln]
    s.ok("UNSELECT")
    return fetch[fetch.index("FLAGS (") + 7 : fetch.index(")")]


# --- a mailbox without l (or r) does not exist ----------------------------------------------
def test_hidden_mailbox_answers_as_missing_everywhere(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "sw")  # rights, but neither l nor r: still unknown
    for command in (
        f"SELECT {BOX}",
        f"EXAMINE {BOX}",
        f"STATUS {BOX} (MESSAGES)",
        f"GETACL {BOX}",
        f"MYRIGHTS {BOX}",
        f"LISTRIGHTS {BOX} bob",
        f"SETACL {BOX} bob lr",
        f"DELETE {BOX}",
        f"SUBSCRIBE {BOX}",
        f"GETMETADATA {BOX} /shared/comment",
    ):
        hidden = bob.status(command)
        missing = bob.status(command.replace("Team", "NoSuchBox"))
        assert hidden == missing == MISSING, command
    assert bob.append(BOX) == bob.append('"Other Users/alice/NoSuchBox"')
    assert bob.append(BOX).startswith("NO [TRYCREATE]")
    listed = bob.ok('LIST "" "*"') + bob.ok('LIST "" "%"') + bob.ok('LIST "" "Other Users/%"')
    assert not [ln for ln in listed if "alice" in ln or "Other Users" in ln]
    assert bob.ok("NAMESPACE") == [
        '* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared/" "/"))'
    ]
    # unknown users and namespace roots say the same
    assert bob.status('SELECT "Other Users/nobody/INBOX"') == MISSING
    assert bob.status('SELECT "Other Users/alice"') == MISSING
    assert bob.status('STATUS "Shared" (MESSAGES)') == MISSING


@pytest.mark.sqlite_only  # the bus's per-user filter (notify/), backend-irrelevant
def test_hidden_mailbox_changes_never_reach_others(team: tuple[Session, Session]) -> None:
    alice, bob = team
    bob.ok("SELECT INBOX")
    bob.raw.line("i IDLE")
    assert bob.raw.response().startswith("+")
    assert alice.append("Team").startswith("OK")
    alice.ok("CREATE Team/Secret")
    alice.ok("SETACL Team anyone p")
    assert bob.raw.quiet(0.3) == b""
    bob.raw.line("DONE")
    assert bob.raw.until_tagged("i") == ["i OK IDLE terminated"]


# --- rights, command by command -------------------------------------------------------------
def test_list_and_lsub_need_l(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "r")
    assert not [ln for ln in bob.ok('LIST "" "*"') if "Team" in ln]
    assert bob.ok(f"STATUS {BOX} (MESSAGES)") == [f"* STATUS {BOX} (MESSAGES 1)"]
    grant(alice, "l")
    assert f'* LIST (\\HasNoChildren) "/" {BOX}' in bob.ok('LIST "" "*"')
    assert bob.status(f"STATUS {BOX} (MESSAGES)") == NOPERM  # l without r
    bob.ok(f"SUBSCRIBE {BOX}")
    assert f'* LSUB () "/" {BOX}' in bob.ok('LSUB "" "*"')
    # LIST-STATUS leaves out a mailbox it may list but not read (RFC 5819)
    lines = bob.ok('LIST "" "Other Users/*" RETURN (STATUS (MESSAGES))')
    assert not [ln for ln in lines if ln.startswith("* STATUS")]
    grant(alice, "lr")
    lines = bob.ok('LIST "" "Other Users/*" RETURN (STATUS (MESSAGES))')
    assert f"* STATUS {BOX} (MESSAGES 1)" in lines
    bob.ok(f"UNSUBSCRIBE {BOX}")
    alice.ok("DELETEACL Team bob")
    # not subscribed: OK (RFC 9051 §6.3.8), and no rights asked
    assert bob.status(f"UNSUBSCRIBE {BOX}").startswith("OK")


@pytest.mark.sqlite_only  # a handler's rights check; backends' rights: tests/store/test_acl.py
def test_select_and_examine_need_r(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "l")
    assert bob.status(f"SELECT {BOX}") == NOPERM
    assert bob.status(f"EXAMINE {BOX}") == NOPERM
    grant(alice, "lr")
    assert bob.status(f"EXAMINE {BOX}").startswith("OK [READ-ONLY]")
    # RFC 4314 §5.2: without i, e, s, w, t a SELECT is read-only too
    lines, status = bob.run(f"SELECT {BOX}")
    assert status.startswith("OK [READ-ONLY]")
    assert "* OK [PERMANENTFLAGS ()] Read-only mailbox" in lines
    grant(alice, "lrs")
    lines, status = bob.run(f"SELECT {BOX}")
    assert status.startswith("OK [READ-WRITE]")
    assert "* OK [PERMANENTFLAGS (\\Seen)] Flags permitted" in lines
    grant(alice, "lrswt")
    lines = bob.ok(f"SELECT {BOX}")
    assert (
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted"
    ) in lines


@pytest.mark.sqlite_only  # a handler's rights check; backends' rights: tests/store/test_acl.py
@pytest.mark.parametrize(
    ("rights", "store", "allowed"),
    [
        ("lrs", "+FLAGS (\\Seen)", True),
        ("lrwt", "+FLAGS (\\Seen)", False),
        ("lrt", "+FLAGS (\\Deleted)", True),
        ("lrsw", "+FLAGS (\\Deleted)", False),
        ("lrw", "+FLAGS ($Label \\Flagged)", True),
        ("lrst", "-FLAGS ($Label)", False),
        ("lrswt", "FLAGS (\\Seen)", True),
        ("lrsw", "FLAGS (\\Seen)", False),
    ],
)
def test_store_needs_the_flags_right(
    team: tuple[Session, Session], rights: str, store: str, allowed: bool
) -> None:
    alice, bob = team
    grant(alice, rights)
    bob.ok(f"SELECT {BOX}")
    status = bob.status(f"STORE 1 {store}")
    assert status.startswith("OK") if allowed else status == NOPERM


@pytest.mark.sqlite_only  # the handler drops the flags; backends' rights: tests/store/test_acl.py
def test_store_keeps_the_flags_it_may_change(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "lrs")
    bob.ok(f"SELECT {BOX}")
    lines = bob.ok("STORE 1 +FLAGS (\\Seen \\Deleted $Label)")
    assert lines == ["* 1 FETCH (FLAGS (\\Seen \\Recent))"]


@pytest.mark.sqlite_only  # a handler's rights check; backends' rights: tests/store/test_acl.py
def test_fetch_sets_seen_only_with_s(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "lrw")
    bob.ok(f"SELECT {BOX}")
    bob.ok("FETCH 1 BODY[]")
    assert flags_of(alice, "Team") == ""
    grant(alice, "lrws")
    bob.ok(f"SELECT {BOX}")
    bob.ok("FETCH 1 BODY[]")
    assert flags_of(alice, "Team") == "\\Seen"


def test_append_needs_i_and_drops_flags_without_rights(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "lr")
    assert bob.append(BOX) == NOPERM
    grant(alice, "lri")
    assert bob.append(BOX, "\\Seen \\Deleted $Label").startswith("OK [APPENDUID")
    grant(alice, "lrist")
    assert bob.append(BOX, "\\Seen \\Deleted $Label").startswith("OK [APPENDUID")
    alice.ok("SELECT Team")
    lines = [
        ln.replace(" \\Recent", "").replace("\\Recent", "") for ln in alice.ok("FETCH 2:3 FLAGS")
    ]
    assert lines[-2:] == ["* 2 FETCH (FLAGS ())", "* 3 FETCH (FLAGS (\\Deleted \\Seen))"]


def test_copy_needs_i_on_the_target_and_keeps_allowed_flags(
    team: tuple[Session, Session],
) -> None:
    alice, bob = team
    bob.ok("SELECT INBOX")
    assert bob.append("INBOX", "\\Seen \\Flagged").startswith("OK")
    bob.ok("NOOP")
    assert bob.status(f"COPY 1 {BOX}").startswith("NO [TRYCREATE]")  # hidden
    grant(alice, "lr")
    assert bob.status(f"COPY 1 {BOX}") == NOPERM
    grant(alice, "lris")
    assert bob.status(f"COPY 1 {BOX}").startswith("OK [COPYUID")
    alice.ok("SELECT Team")
    fetched = alice.ok("FETCH 2 FLAGS")[-1]
    assert fetched == "* 2 FETCH (FLAGS (\\Seen \\Recent))"  # no w: \\Flagged lost


def test_expunge_close_and_move_need_e(team: tuple[Session, Session]) -> None:
    alice, bob = team
    alice.ok("SELECT Team")
    alice.ok("STORE 1 +FLAGS (\\Deleted)")
    alice.ok("UNSELECT")
    grant(alice, "lrsw")
    bob.ok(f"SELECT {BOX}")
    assert bob.status("EXPUNGE") == NOPERM
    assert bob.status("UID EXPUNGE 1") == NOPERM
    assert bob.status("MOVE 1 INBOX") == NOPERM  # RFC 6851 §4.2: t and e as well
    bob.ok("CLOSE")  # RFC 4314 §4: no e, no expunge, still OK
    assert alice.ok("STATUS Team (MESSAGES)") == ['* STATUS "Team" (MESSAGES 1)']
    grant(alice, "lrswte")
    bob.ok(f"SELECT {BOX}")
    assert bob.status("MOVE 1 INBOX").startswith("OK")
    assert alice.ok("STATUS Team (MESSAGES)") == ['* STATUS "Team" (MESSAGES 0)']
    assert bob.ok("STATUS INBOX (MESSAGES)") == ['* STATUS "INBOX" (MESSAGES 1)']


def test_create_needs_k_on_the_parent(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "lr")
    assert bob.status('CREATE "Other Users/alice/Team/Sub"') == NOPERM
    assert bob.status('CREATE "Other Users/alice/Elsewhere"') == NOPERM
    grant(alice, "lrk")
    bob.ok('CREATE "Other Users/alice/Team/Sub/Deeper"')
    lines = alice.ok('LIST "" "Team*"')
    assert '* LIST (\\HasChildren) "/" "Team/Sub"' in lines
    # RFC 4314 §4: a new mailbox inherits its parent's ACL
    assert alice.ok("GETACL Team/Sub/Deeper") == [
        '* ACL "Team/Sub/Deeper" alice lrswipkxteacd bob lrkc'
    ]


def test_delete_and_rename_need_x(team: tuple[Session, Session]) -> None:
    alice, bob = team
    alice.ok("CREATE Team/Old")
    alice.ok("SETACL Team/Old bob lr")
    assert bob.status('DELETE "Other Users/alice/Team/Old"') == NOPERM
    assert bob.status('RENAME "Other Users/alice/Team/Old" "Other Users/alice/Team/New"') == NOPERM
    alice.ok("SETACL Team/Old bob lrx")
    assert (
        bob.status('RENAME "Other Users/alice/Team/Old" "Other Users/alice/Team/New"') == NOPERM
    )  # no k on Team
    grant(alice, "lrk")
    bob.ok('RENAME "Other Users/alice/Team/Old" "Other Users/alice/Team/New"')
    assert bob.status('RENAME "Other Users/alice/Team/New" Mine').startswith("NO")
    bob.ok('DELETE "Other Users/alice/Team/New"')
    assert alice.status("SELECT Team/New") == MISSING


def test_setacl_getacl_listrights_need_a(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "lr")
    for command in (
        f"SETACL {BOX} bob lrswi",
        f"DELETEACL {BOX} bob",
        f"GETACL {BOX}",
        f"LISTRIGHTS {BOX} bob",
    ):
        assert bob.status(command) == NOPERM, command
    assert bob.ok(f"MYRIGHTS {BOX}") == [f"* MYRIGHTS {BOX} lr"]
    grant(alice, "lra")
    bob.ok(f"SETACL {BOX} anyone l")
    assert bob.ok(f"GETACL {BOX}") == [f"* ACL {BOX} alice lrswipkxteacd anyone l bob lra"]
    assert bob.ok(f"LISTRIGHTS {BOX} alice") == [f"* LISTRIGHTS {BOX} alice lrswipkxteacd"]
    assert bob.status(f"SETACL {BOX} alice lr").startswith("NO [CANNOT]")


def test_negative_rights_and_anyone(server: RunningServer, team: tuple[Session, Session]) -> None:
    alice, bob = team
    server.add_user("carol")
    carol = Session(server, "carol")
    alice.ok("SETACL Team anyone lr")
    assert carol.ok(f"MYRIGHTS {BOX}") == [f"* MYRIGHTS {BOX} lr"]
    alice.ok("SETACL Team -carol r")
    assert carol.ok(f"MYRIGHTS {BOX}") == [f"* MYRIGHTS {BOX} l"]
    assert carol.status(f"SELECT {BOX}") == NOPERM
    assert bob.status(f"EXAMINE {BOX}").startswith("OK")
    alice.ok("SETACL Team -carol +l")
    assert carol.status(f"SELECT {BOX}") == MISSING  # neither l nor r left
    carol.raw.close()


@pytest.mark.sqlite_only  # a handler's rights check; backends' rights: tests/store/test_acl.py
def test_metadata_needs_l_and_a_content_right(team: tuple[Session, Session]) -> None:
    alice, bob = team
    alice.ok('SETMETADATA Team (/shared/comment "team")')
    grant(alice, "l")
    assert bob.status(f"GETMETADATA {BOX} /shared/comment") == NOPERM
    grant(alice, "lr")
    assert bob.ok(f"GETMETADATA {BOX} /shared/comment") == [
        f'* METADATA {BOX} (/shared/comment "team")'
    ]


# --- two sessions on alice's mailbox ---------------------------------------------------------
def test_bob_sees_alices_append_and_flag_changes(team: tuple[Session, Session]) -> None:
    alice, bob = team
    grant(alice, "lrs")
    bob.ok(f"SELECT {BOX}")
    bob.raw.line("i IDLE")
    assert bob.raw.response().startswith("+")
    assert alice.append("Team").startswith("OK")
    assert bob.raw.response() == "* 2 EXISTS"
    assert bob.raw.response() == "* 2 RECENT"
    alice.ok("SELECT Team")
    alice.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert bob.raw.response() == "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))"
    bob.raw.line("DONE")
    assert bob.raw.until_tagged("i") == ["i OK IDLE terminated"]


# --- admins and shared mailboxes --------------------------------------------------------------
def test_admins_create_shared_mailboxes_and_administer_any_acl(
    server: RunningServer,
    team: tuple[Session, Session],
) -> None:
    alice, bob = team
    assert bob.status('CREATE "Shared/News"') == NOPERM
    server.call(server.server.store.set_admin("bob", True))
    bob.ok('CREATE "Shared/News"')
    assert bob.ok('MYRIGHTS "Shared/News"') == ['* MYRIGHTS "Shared/News" lrswipkxteacd']
    bob.ok('SETACL "Shared/News" anyone lrs')
    assert bob.ok('GETACL "Shared/News"') == ['* ACL "Shared/News" anyone lrs']
    # an admin administers the ACL of any mailbox, without reading it
    bob.ok(f"SETACL {BOX} bob lr")
    assert bob.ok(f"MYRIGHTS {BOX}") == [f"* MYRIGHTS {BOX} lra"]
    assert alice.ok('LIST "" "Shared*"') == [
        '* LIST (\\HasChildren \\Noselect) "/" "Shared"',
        '* LIST (\\HasNoChildren) "/" "Shared/News"',
    ]
    assert alice.append('"Shared/News"') == NOPERM
    assert alice.status('CREATE "Shared/Mine"') == NOPERM
    server.call(server.server.store.set_admin("bob", False))
    assert bob.status('CREATE "Shared/Other"') == NOPERM
    assert bob.status(f"GETACL {BOX}") == NOPERM  # the implicit a went with the flag


# --- the AclChange event ---------------------------------------------------------------------
@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.cleanup()


def test_acl_change_events(server_factory: Any, listener: Listener) -> None:
    running: RunningServer = server_factory(
        notify_socket=listener.path, servername="imap.example.org"
    )
    running.add_user("alice")
    listener.take(6)  # MailboxCreate of alice's mailboxes
    alice = Session(running, "alice")
    assert listener.next()["event"] == "Login"
    alice.ok("CREATE Team")
    created = listener.next()
    uri = created["uri"]
    assert uri.startswith("imap://alice@imap.example.org/Team;UIDVALIDITY=")
    alice.ok("SETACL Team bob +lrd")
    alice.ok("SETACL Team -anyone w")
    alice.ok("DELETEACL Team bob")
    assert alice.status("SETACL Team bob lQ").startswith("BAD")  # no event for failures
    alice.raw.close()
    events = listener.take(4)
    keys = example_keys("AclChange")
    setacl, negative, deleteacl, logout = events
    assert logout["event"] == "Logout"
    for event in (setacl, negative):
        assert list(event) == [
            "event",
            "timestamp",
            "service",
            "mailboxID",
            "uri",
            "pid",
            "aclSubject",
            "aclRights",
            "user",
            "vnd.cmu.sessionId",
        ]
        assert set(event) == keys
    assert set(deleteacl) == keys - {"aclRights"}
    assert [e["event"] for e in (setacl, negative, deleteacl)] == ["AclChange"] * 3
    for event in (setacl, negative, deleteacl):
        assert event["mailboxID"] == event["uri"] == uri
        assert event["user"] == "alice"
        assert event["service"] == "imap"
    assert (setacl["aclSubject"], setacl["aclRights"]) == ("bob", "+lrte")
    assert (negative["aclSubject"], negative["aclRights"]) == ("-anyone", "w")
    assert deleteacl["aclSubject"] == "bob"
