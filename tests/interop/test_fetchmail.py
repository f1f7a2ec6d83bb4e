"""fetchmail: download and delete; ``--idle`` sees a message delivered while it idles.

Messages go to a tiny MDA script that writes each one to a file. ``-v -v`` prints every
IMAP command and response (``IMAP>``/``IMAP<``), which a failure shows.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers.interop import (
    client_env,
    imap,
    message,
    require_program,
    run,
    seed,
    server_mailbox,
    subject_of,
    tail,
    wait_for,
)
from tests.helpers.server import PASSWORD, RunningServer


def write_config(home: Path, server: RunningServer, folder: str = "INBOX") -> Path:
    out = home / "delivered"
    out.mkdir()
    mda = home / "mda"
    mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp -p {out} msg.XXXXXX)"\n')
    mda.chmod(0o755)
    rc = home / ".fetchmailrc"
    rc.write_text(
        f"""\
set no syslog
poll {server.host} service {server.port} protocol IMAP auth password timeout 20
  user "alice" password "{PASSWORD}" is "alice" here
  folder "{folder}"
  fetchall
  nokeep
  sslproto ''
  mda "{mda}"
"""
    )
    rc.chmod(0o600)  # fetchmail refuses a readable rc file
    return out


def delivered(out: Path) -> list[str]:
    return sorted(subject_of(f.read_bytes()) for f in out.iterdir())


def test_download_and_delete(server: RunningServer, home: Path) -> None:
    require_program("fetchmail")
    seed(server, "INBOX", "fm 1", "fm 2")
    seed(server, "INBOX", "fm read", flags=("\\Seen",))
    out = write_config(home, server)

    run(
        ["fetchmail", "-f", str(home / ".fetchmailrc"), "-v", "-v", "--nosyslog"],
        home=home,
        timeout=60,
    )

    assert delivered(out) == ["fm 1", "fm 2", "fm read"]
    assert server_mailbox(server, "INBOX") == {}


def test_idle_sees_a_message_appended_meanwhile(server: RunningServer, home: Path) -> None:
    require_program("fetchmail")
    seed(server, "INBOX", "before idle")
    out = write_config(home, server)
    log_path = home / "fetchmail.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["fetchmail", "-f", str(home / ".fetchmailrc"), "-v", "-v", "--nosyslog", "--idle"],
            cwd=home,
            env=client_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def log_text() -> str:
            return log_path.read_text(errors="replace")

        def explain() -> str:
            return "--- fetchmail log\n" + tail(log_text())

        def idling() -> bool:
            # After the first poll fetchmail sends IDLE; the continuation means we idle.
            return re.search(r"IMAP> \S+ IDLE\n(.*\n)*?fetchmail: IMAP< \+", log_text()) is not None

        wait_for(idling, timeout=30, what="fetchmail to enter IDLE", explain=explain)
        assert delivered(out) == ["before idle"]
        with imap(server) as c:
            c.append("INBOX", message("during idle"))
        wait_for(
            lambda: len(list(out.iterdir())) == 2,
            timeout=30,
            what="the message appended during IDLE to be delivered",
            explain=explain,
        )
        assert delivered(out) == ["before idle", "during idle"]
        wait_for(
            lambda: server_mailbox(server, "INBOX") == {},
            timeout=30,
            what="fetchmail to delete the message on the server",
            explain=explain,
        )
        assert proc.poll() is None, explain()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
