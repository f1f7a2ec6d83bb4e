"""mbsync (isync): two-way sync of several folders with a local Maildir.

Messages, flags and deletions travel both ways; a folder created locally appears on the
server; a nested folder ("/" delimiter) maps to a nested Maildir. mbsync's ``-Dn`` prints the
IMAP dialogue, which a failure shows.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.interop import (
    bulk_append,
    imap,
    maildir_contents,
    maildir_deliver,
    maildir_files,
    message,
    require_program,
    run,
    seed,
    server_folders,
    server_mailbox,
    set_maildir_flags,
)
from tests.helpers.server import PASSWORD, RunningServer


def write_config(home: Path, server: RunningServer) -> Path:
    mail = home / "Mail"
    mail.mkdir()
    rc = home / ".mbsyncrc"
    rc.write_text(
        f"""\
IMAPAccount test
Host {server.host}
Port {server.port}
User alice
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN
Timeout 20

IMAPStore remote
Account test

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns INBOX Work Lists/* Projects
Create Both
Remove None
Expunge Both
Sync All
SyncState *
"""
    )
    rc.chmod(0o600)
    return mail


def mbsync(home: Path) -> None:
    run(["mbsync", "-Dn", "-c", str(home / ".mbsyncrc"), "test"], home=home, timeout=60)


def test_two_way_sync(server: RunningServer, home: Path) -> None:
    require_program("mbsync")
    seed(server, "INBOX", "inbox 1", "inbox 2", "inbox 3")
    seed(server, "Work", "work 1", flags=("\\Flagged",))
    seed(server, "Work", "work 2")
    seed(server, "Lists/python", "list 1")
    mail = write_config(home, server)

    mbsync(home)
    assert maildir_contents(mail / "INBOX") == {"inbox 1": "", "inbox 2": "", "inbox 3": ""}
    assert maildir_contents(mail / "Work") == {"work 1": "F", "work 2": ""}
    assert maildir_contents(mail / "Lists/python") == {"list 1": ""}

    # Local changes: read one, delete one, a new message, a new folder.
    inbox = maildir_files(mail / "INBOX")
    set_maildir_flags(inbox["inbox 1"], "S")
    inbox["inbox 2"].unlink()
    maildir_deliver(mail / "Work", message("local 1"))
    maildir_deliver(mail / "Projects", message("project 1"), flags="S")
    # Server changes: flag one, delete one, a new message.
    with imap(server) as c:
        c.select_folder("INBOX")
        c.add_flags(c.search(["SUBJECT", "inbox 3"]), ["\\Flagged"])
        c.append("INBOX", message("server new"))
        c.select_folder("Work")
        gone = c.search(["SUBJECT", "work 2"])
        c.delete_messages(gone)
        c.uid_expunge(gone)

    mbsync(home)
    assert server_mailbox(server, "INBOX") == {
        "inbox 1": {"\\Seen"},
        "inbox 3": {"\\Flagged"},
        "server new": set(),
    }
    assert server_mailbox(server, "Work") == {"work 1": {"\\Flagged"}, "local 1": set()}
    assert "Projects" in server_folders(server)
    assert server_mailbox(server, "Projects") == {"project 1": {"\\Seen"}}
    assert maildir_contents(mail / "INBOX") == {"inbox 1": "S", "inbox 3": "F", "server new": ""}
    assert maildir_contents(mail / "Work") == {"work 1": "F", "local 1": ""}

    # A third run has nothing to do: no duplicates either way.
    mbsync(home)
    assert len(server_mailbox(server, "INBOX")) == 3
    assert len(maildir_contents(mail / "INBOX")) == 3
    assert len(server_mailbox(server, "Work")) == 2


def test_many_messages_both_ways(server: RunningServer, home: Path) -> None:
    """Hundreds of messages each way: mbsync pipelines its FETCHes and APPENDs (LITERAL+)."""
    require_program("mbsync")
    # (Not imapclient's multiappend: 4.1 puts two spaces between its literals, which RFC
    # 3502's grammar does not allow and we answer BAD.)
    bulk_append(server, "INBOX", [message(f"bulk down {i}") for i in range(300)])
    mail = write_config(home, server)
    for i in range(100):
        maildir_deliver(mail / "Work", message(f"bulk up {i}", "x" * (i * 100)))

    mbsync(home)
    assert len(maildir_contents(mail / "INBOX")) == 300
    assert set(server_mailbox(server, "Work")) == {f"bulk up {i}" for i in range(100)}
    with imap(server) as c:
        c.select_folder("Work", readonly=True)
        texts = c.fetch(c.search(["ALL"]), ["BODY.PEEK[TEXT]"])
    # mbsync adds an X-TUID header to what it uploads; the bodies arrive intact.
    assert sorted(len(v[b"BODY[TEXT]"]) for v in texts.values()) == sorted(
        len(message(f"bulk up {i}", "x" * (i * 100)).split(b"\r\n\r\n", 1)[1]) for i in range(100)
    )
