"""getmail6: retrieve from IMAP into a Maildir, remember what was seen, then delete.

getmail's own Maildir destination refuses to deliver as root (CI runs as root), so the
destination is an external MDA, the venv's Python writing into the Maildir with the standard
library's ``mailbox.Maildir``; the IMAP side, which is what we test, is getmail's own.
getmail remembers retrieved messages by UIDVALIDITY/UID in its ``oldmail`` file, so a second
run retrieving only the new message checks that our UIDs are stable.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers.interop import (
    maildir_contents,
    require_program,
    run,
    seed,
    server_mailbox,
)
from tests.helpers.server import PASSWORD, RunningServer

DELIVER = "import mailbox, sys; mailbox.Maildir(sys.argv[1]).add(sys.stdin.buffer.read())"


def write_config(home: Path, server: RunningServer, *, delete: bool) -> Path:
    maildir = home / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    getmaildir = home / ".getmail"
    getmaildir.mkdir(exist_ok=True)
    (getmaildir / "getmailrc").write_text(
        f"""\
[retriever]
type = SimpleIMAPRetriever
server = {server.host}
port = {server.port}
username = alice
password = {PASSWORD}
mailboxes = ("INBOX", "Lists/python")
timeout = 20

[destination]
type = MDA_external
path = {sys.executable}
arguments = ("-c", "{DELIVER}", "{maildir}")
allow_root_commands = true

[options]
verbose = 2
read_all = false
delete = {"true" if delete else "false"}
"""
    )
    return maildir


def getmail(home: Path) -> str:
    proc = run(
        ["getmail", "--getmaildir", str(home / ".getmail"), "--rcfile", "getmailrc"],
        home=home,
        timeout=60,
    )
    return proc.stdout


def test_retrieve_into_maildir(server: RunningServer, home: Path) -> None:
    require_program("getmail")
    seed(server, "INBOX", "gm 1", "gm 2")
    seed(server, "Lists/python", "gm list")

    maildir = write_config(home, server, delete=False)
    getmail(home)
    assert maildir_contents(maildir) == {"gm 1": "", "gm 2": "", "gm list": ""}
    assert set(server_mailbox(server, "INBOX")) == {"gm 1", "gm 2"}

    # Only the new message comes on the second run.
    seed(server, "INBOX", "gm 3")
    getmail(home)
    assert maildir_contents(maildir) == {"gm 1": "", "gm 2": "", "gm 3": "", "gm list": ""}

    # With delete on, getmail removes what it has retrieved.
    write_config(home, server, delete=True)
    getmail(home)
    assert server_mailbox(server, "INBOX") == {}
    assert server_mailbox(server, "Lists/python") == {}
    assert len(maildir_contents(maildir)) == 4
