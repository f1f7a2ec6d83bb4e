"""Expiry end to end: the server's timer (an IDLE client sees the EXPUNGE) and the CLI
(`imapd mailbox set-expire/get-expire`, `imapd expire`) on the running server's data."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from imapd import cli
from tests.e2e.messages import SIMPLE
from tests.helpers.imap import client
from tests.helpers.server import RunningServer


def age(running: RunningServer, uid: int, savedate: str = "2001-01-01T00:00:00+00:00") -> None:
    """Make a message look saved long ago (the test's stand-in for waiting days)."""
    with sqlite3.connect(running.config.db_path, timeout=10) as db:
        db.execute(
            "UPDATE messages SET savedate = ? WHERE uid = ? AND mailbox_id ="
            " (SELECT m.id FROM mailboxes m JOIN users u ON u.id = m.owner_id"
            " WHERE u.name = 'alice' AND m.name = 'INBOX')",
            (savedate, uid),
        )


def test_timer_expires_and_idle_sees_expunge(server_factory: Any) -> None:
    running: RunningServer = server_factory(expire_interval=0.05)
    running.add_user("alice")
    c = client(running)
    c.append("INBOX", SIMPLE)
    c.append("INBOX", SIMPLE)
    age(running, 1)
    c.select_folder("INBOX")
    c.idle()
    store = running.server.store
    user = running.call(store.get_user("alice"))
    running.call(store.set_retention(user.id, "INBOX", 30))
    responses = c.idle_check(timeout=5)
    c.idle_done()
    assert (1, b"EXPUNGE") in responses
    assert c.search("ALL") == [2]
    c.logout()


def test_cli_while_server_runs(server_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    running: RunningServer = server_factory(expire_interval=0)
    running.add_user("alice")
    c = client(running)
    c.append("INBOX", SIMPLE)
    c.append("INBOX", SIMPLE)
    c.logout()
    age(running, 2)
    data = ["--data-dir", str(running.config.data_dir)]
    assert cli.main(["mailbox", "get-expire", "alice", "INBOX", *data]) == 0
    assert capsys.readouterr().out == "alice INBOX: no expiry\n"
    assert cli.main(["mailbox", "set-expire", "alice", "inbox", "7", *data]) == 0
    assert capsys.readouterr().out == "alice INBOX: expire after 7 days\n"
    assert cli.main(["mailbox", "get-expire", "alice", "INBOX", *data]) == 0
    assert capsys.readouterr().out == "alice INBOX: expire after 7 days\n"
    assert cli.main(["expire", *data]) == 0
    assert capsys.readouterr().out == "expired 1 message\n"
    assert cli.main(["expire", *data]) == 0
    assert capsys.readouterr().out == "expired 0 messages\n"
    c = client(running)
    c.select_folder("INBOX")
    assert c.search("ALL") == [1]
    c.logout()
    assert cli.main(["mailbox", "set-expire", "alice", "INBOX", "none", *data]) == 0
    assert capsys.readouterr().out == "alice INBOX: no expiry\n"
    assert cli.main(["mailbox", "set-expire", "alice", "Nope", "3", *data]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["mailbox", "set-expire", "alice", "INBOX", "-3", *data])
