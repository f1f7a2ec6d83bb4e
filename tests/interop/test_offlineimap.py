"""offlineimap3: sync two folders to a local Maildir and back.

offlineimap uploads local messages with APPEND and learns their UIDs from APPENDUID
(UIDPLUS); flags and deletions made locally go up with STORE and EXPUNGE. ``-d imap``
prints the IMAP dialogue (imaplib2's debug log), which a failure shows.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.interop import (
    describe,
    maildir_contents,
    maildir_deliver,
    maildir_files,
    message,
    require_program,
    run,
    seed,
    server_mailbox,
    set_maildir_flags,
)
from tests.helpers.server import PASSWORD, RunningServer


def write_config(home: Path, server: RunningServer) -> Path:
    mail = home / "Mail"
    mail.mkdir()
    (home / ".offlineimaprc").write_text(
        f"""\
[general]
accounts = test
metadata = {home}/.offlineimap
maxsyncaccounts = 1

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {mail}

[Repository remote]
type = IMAP
remotehost = {server.host}
remoteport = {server.port}
remoteuser = alice
remotepass = {PASSWORD}
ssl = no
starttls = no
timeout = 20
maxconnections = 1
folderfilter = lambda folder: folder in ["INBOX", "Work"]
"""
    )
    return mail


def offlineimap(home: Path) -> None:
    proc = run(
        ["offlineimap", "-c", str(home / ".offlineimaprc"), "-o", "-u", "basic", "-d", "imap"],
        home=home,
        timeout=60,
    )
    # offlineimap reports some failures only in its log, with a zero exit status.
    assert "ERROR" not in proc.stdout + proc.stderr, describe(proc)


def test_sync_to_maildir_and_back(server: RunningServer, home: Path) -> None:
    require_program("offlineimap")
    seed(server, "INBOX", "oi 1")
    seed(server, "INBOX", "oi 2", flags=("\\Flagged",))
    seed(server, "Work", "oi work")
    mail = write_config(home, server)

    offlineimap(home)
    assert maildir_contents(mail / "INBOX") == {"oi 1": "", "oi 2": "F"}
    assert maildir_contents(mail / "Work") == {"oi work": ""}

    inbox = maildir_files(mail / "INBOX")
    set_maildir_flags(inbox["oi 1"], "RS")
    inbox["oi 2"].unlink()
    maildir_deliver(mail / "Work", message("oi local"))
    seed(server, "INBOX", "oi server")

    offlineimap(home)
    assert server_mailbox(server, "INBOX") == {
        "oi 1": {"\\Seen", "\\Answered"},
        "oi server": set(),
    }
    assert server_mailbox(server, "Work") == {"oi work": set(), "oi local": set()}
    assert maildir_contents(mail / "INBOX") == {"oi 1": "RS", "oi server": ""}

    # Again: nothing changes, nothing is duplicated on either side.
    offlineimap(home)
    assert len(server_mailbox(server, "Work")) == 2
    assert maildir_contents(mail / "Work") == {"oi work": "", "oi local": ""}
