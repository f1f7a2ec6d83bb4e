"""A revoke that commits between an APPEND/COPY/MOVE's rights check and its write is
honoured (RFC 4314 §4, issue 15): the handler resolves the target once and checks its
rights, and the store checks them again inside the write transaction.

The window is made real without touching the server: this test holds the SQLite write lock
on the server's file (as another process, `imapd acl` say, would), so bob's command does
its lookup (a read, which WAL allows) and then waits for the lock in its write. Inside
that same transaction the test revokes bob's ``i`` and commits; bob's write then runs.
If the lookup came late (a slow machine), it sees the revoke itself and the answer is the
same: the test never fails wrongly, and fails whenever the write trusts the earlier check.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from tests.helpers.raw_session import MSG, Session
from tests.helpers.server import RunningServer

BOX = '"Other Users/alice/Team"'
NOPERM = "NO [NOPERM] Permission denied"
LOOKUP_WINDOW = 0.5  # seconds given to bob's command to reach its write (see the module)


@pytest.fixture
def team(server: RunningServer) -> Iterator[tuple[Session, Session]]:
    """alice owns "Team" (one message) with ``lri`` for bob; bob has INBOX selected with
    one message."""
    alice, bob = Session(server, "alice"), Session(server, "bob")
    alice.ok("CREATE Team")
    assert alice.append("Team").startswith("OK")
    alice.ok("SETACL Team bob lri")
    assert bob.append("INBOX").startswith("OK")
    bob.ok("SELECT INBOX")
    yield alice, bob
    alice.raw.close()
    bob.raw.close()


def _revoke_while_blocked(server: RunningServer, bob: Session, command: bytes) -> str:
    """Send bob's ``command`` (tag ``r``) while holding the write lock, revoke bob's
    ``i`` on Team in that transaction, commit, and return bob's tagged answer."""
    db = sqlite3.connect(server.config.db_path, timeout=10, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        bob.raw.send(command)
        time.sleep(LOOKUP_WINDOW)
        db.execute(
            "UPDATE acl SET rights = 'lr' WHERE identifier = 'bob' AND mailbox_id ="
            " (SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.owner_id"
            " WHERE u.name = 'alice' AND m.name = 'Team')"
        )
        db.execute("COMMIT")
    finally:
        db.close()
    return bob.raw.until_tagged("r")[-1][2:]


def _team_messages(alice: Session) -> int:
    untagged = alice.ok("STATUS Team (MESSAGES)")
    return int(untagged[-1].rsplit(" ", 1)[1].rstrip(")"))


def test_append_honours_a_revoke_committed_after_its_check(
    server: RunningServer, team: tuple[Session, Session]
) -> None:
    alice, bob = team
    data = MSG.encode()
    command = f"r APPEND {BOX} (\\Seen) {{{len(data)}+}}\r\n".encode() + data + b"\r\n"
    assert _revoke_while_blocked(server, bob, command) == NOPERM
    assert _team_messages(alice) == 1  # nothing written
    assert bob.append(BOX) == NOPERM  # and the plain path says the same


@pytest.mark.parametrize("verb", ["COPY", "MOVE"])
def test_copy_and_move_honour_a_revoke_committed_after_their_check(
    server: RunningServer, team: tuple[Session, Session], verb: str
) -> None:
    alice, bob = team
    if verb == "MOVE":
        bob.ok("SELECT INBOX")  # own mailbox: t and e are there
    assert _revoke_while_blocked(server, bob, f"r {verb} 1 {BOX}\r\n".encode()) == NOPERM
    assert _team_messages(alice) == 1
    assert any("1 EXISTS" in line for line in bob.ok("SELECT INBOX"))  # MOVE took nothing
