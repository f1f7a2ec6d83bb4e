"""neomutt, driven through tmux as a person would: open INBOX over imap://, read, delete, sync.

The screen is polled (``tmux capture-pane``) with a deadline after every key, never slept
for. neomutt's ``-d 5`` log holds the whole IMAP dialogue, which a failure shows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.interop import (
    client_env,
    imap,
    message,
    require_program,
    server_mailbox,
    tail,
    wait_for,
)
from tests.helpers.server import PASSWORD, RunningServer


class Tmux:
    """One tmux server on a private socket, running one program in a fixed-size window."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.socket = home / "tmux.sock"
        self.short_dir: str | None = None
        if len(str(self.socket)) > 100:  # AF_UNIX paths are limited to ~108 bytes
            self.short_dir = tempfile.mkdtemp(prefix="tmux-")
            self.socket = Path(self.short_dir) / "s"
        self.env = client_env(home)
        self.log_glob = "neomutt.log*"

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=15,
            check=check,
        )

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-s", "main", "-x", "160", "-y", "40", command)

    def screen(self) -> str:
        result = self.tmux("capture-pane", "-p", "-t", "main", check=False)
        return result.stdout if result.returncode == 0 else ""

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "main", check=False).returncode == 0

    def explain(self) -> str:
        logs = sorted(self.home.glob(self.log_glob))
        log = tail(logs[-1].read_text(errors="replace"), 80) if logs else "(no log)"
        dialogue = "\n".join(line for line in log.splitlines() if "socket_" in line)
        return f"--- screen\n{self.screen()}\n--- neomutt IMAP dialogue (tail)\n{dialogue}"

    def wait_screen(self, pattern: str, what: str) -> None:
        wait_for(
            lambda: re.search(pattern, self.screen(), re.MULTILINE),
            timeout=20,
            what=what,
            explain=self.explain,
        )

    def stop(self) -> None:
        if self.socket.exists():
            self.tmux("kill-server", check=False)
        if self.short_dir is not None:
            shutil.rmtree(self.short_dir, ignore_errors=True)


@pytest.fixture
def tmux(home: Path) -> Iterator[Tmux]:
    require_program("tmux")
    t = Tmux(home)
    yield t
    t.stop()


def write_muttrc(
    home: Path, server: RunningServer, *, header_cache: str = "", extra: str = ""
) -> Path:
    rc = home / "muttrc"
    rc.write_text(
        extra
        + f"""\
set folder = "imap://alice@{server.host}:{server.port}/"
set spoolfile = "+INBOX"
set imap_pass = "{PASSWORD}"
set ssl_starttls = no
set ssl_force_tls = no
set sort = unsorted
set delete = yes
set quit = yes
set mark_old = no
set wait_key = no
set help = no
set imap_idle = no
set header_cache = "{header_cache}"
set message_cachedir = ""
set timeout = 600
"""
    )
    return rc


def index_line(number: int, flags: str = r"\S*") -> str:
    """A regex for message ``number``'s line in the index (number, then flag column)."""
    return rf"^\s*{number}\s+{flags}\s"


def test_read_delete_and_sync(server: RunningServer, home: Path, tmux: Tmux) -> None:
    require_program("neomutt")
    with imap(server) as c:
        for i in (1, 2, 3):
            c.append("INBOX", message(f"mutt test {i}", f"body number {i}"))
    rc = write_muttrc(home, server)
    tmux.start(f"neomutt -n -F {rc} -d 5 -l {home}/neomutt.log")

    tmux.wait_screen(r"mutt test 3", "the index of INBOX")
    tmux.wait_screen(r"Msgs:3", "the status line")
    # Jump to message 1 and read it.
    tmux.keys("1", "Enter")
    tmux.keys("Enter")
    tmux.wait_screen(r"^body number 1", "message 1 in the pager")
    tmux.keys("q")
    tmux.wait_screen(index_line(2, "N"), "the index again")
    # Jump to message 2 and delete it, then sync.
    tmux.keys("2", "Enter", "d")
    tmux.wait_screen(index_line(2, r"N?D"), "message 2 marked deleted")
    tmux.keys("$")
    tmux.wait_screen(r"Msgs:2", "the mailbox synced")

    expected = {"mutt test 1": {"\\Seen"}, "mutt test 3": set()}
    wait_for(
        lambda: server_mailbox(server, "INBOX") == expected,
        timeout=20,
        what="the server to show the read and the deletion",
        explain=tmux.explain,
    )
    tmux.keys("q")
    wait_for(lambda: not tmux.alive(), timeout=20, what="neomutt to quit", explain=tmux.explain)
    assert server_mailbox(server, "INBOX") == expected


def test_reopen_with_header_cache_condstore_and_qresync(
    server: RunningServer, home: Path, tmux: Tmux
) -> None:
    """With a header cache, neomutt resynchronises from it on the next open: CONDSTORE
    (FETCH CHANGEDSINCE) and QRESYNC (SELECT ... QRESYNC, VANISHED) when we announce them."""
    require_program("neomutt")
    with imap(server) as c:
        for i in (1, 2, 3):
            c.append("INBOX", message(f"mutt test {i}", f"body number {i}"))
    (home / "hcache").mkdir()
    extra = "set imap_condstore = yes\nset imap_qresync = yes\n"
    rc = write_muttrc(home, server, header_cache=f"{home}/hcache/", extra=extra)
    command = f"neomutt -n -F {rc} -d 5 -l {home}/neomutt.log"

    tmux.start(command)
    tmux.wait_screen(r"Msgs:3", "the index of INBOX")
    tmux.keys("q")
    wait_for(lambda: not tmux.alive(), timeout=20, what="neomutt to quit", explain=tmux.explain)
    assert any((home / "hcache").iterdir()), "neomutt wrote no header cache"

    # Meanwhile, elsewhere: flag one, expunge one, deliver one.
    with imap(server) as c:
        c.select_folder("INBOX")
        c.add_flags(c.search(["SUBJECT", "mutt test 1"]), ["\\Flagged"])
        gone = c.search(["SUBJECT", "mutt test 2"])
        c.delete_messages(gone)
        c.uid_expunge(gone)
        c.append("INBOX", message("mutt test 4", "body number 4"))

    tmux.start(command)
    tmux.wait_screen(r"Msgs:3", "the index of INBOX after the changes")
    tmux.wait_screen(r"mutt test 4", "the new message")
    tmux.wait_screen(r"!.*mutt test 1", "message 1 shown flagged")
    assert "mutt test 2" not in tmux.screen(), tmux.explain()
    tmux.keys("3", "Enter", "Enter")
    tmux.wait_screen(r"^body number 4", "message 4 in the pager")
    tmux.keys("q")
    tmux.wait_screen(r"Msgs:3", "the index again")
    tmux.keys("q")
    wait_for(lambda: not tmux.alive(), timeout=20, what="neomutt to quit", explain=tmux.explain)
    assert server_mailbox(server, "INBOX") == {
        "mutt test 1": {"\\Flagged"},
        "mutt test 3": set(),
        "mutt test 4": {"\\Seen"},
    }
    log = "".join(p.read_text(errors="replace") for p in home.glob("neomutt.log*"))
    # The resynchronisation went through CONDSTORE/QRESYNC, not a full reload.
    assert "ENABLED QRESYNC" in log and "CHANGEDSINCE" in log, tmux.explain()
